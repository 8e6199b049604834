"""Injection speed: objects drawn per second, ours against a bare GalSim drawImage loop.

Both draw the same objects (default population: bulge+disk galaxies and stars) with the PSFEx
model at each object's position (recentred, ``method='no_pixel'``) into a ``--size`` x
``--size`` image per band; the bare loop (``getPSF`` per object) has no flags, clipping
bookkeeping, seeds or flux sums. Ours is timed twice, side by side: **before**, ``stepk`` and
``maxk`` of the PSF computed per object (``DrawOptions(psf_grid=0)``, what ``getPSF`` does),
and **after**, shared by the cells of a 1000-pixel grid (``draw.PsfexGrid``, the default).
Also timed: our full :func:`inject_realization` (reading and writing the FITS images,
Poisson noise on), before and after. Times are CPU seconds of this process (the machine is
shared), best of ``--repeat`` interleaved rounds. Prints a table; target: ours >= 0.9x the
bare rate.

    .venv/bin/python benchmarks/inject.py --size 4096 --nobj 300
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import galsim
import numpy as np
from astropy.io import fits

from balrog_runner.injection.draw import (
    DrawOptions,
    draw_objects_into,
    galaxy_profile,
    inject_realization,
    load_psf,
    psfex_centre_shift,
)
from balrog_runner.injection.population import DEFAULT_BANDS, OBJTYPE_STAR, make_objects

REPO = Path(__file__).resolve().parents[1]
PSF = REPO / "tests" / "data" / "des_example.psf"
RA0, DEC0, SCALE = 359.953, 0.0167, 0.263  # DES2359+0001, arcsec/pixel


def header(size: int) -> fits.Header:
    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRVAL1"], h["CRVAL2"] = RA0, DEC0
    h["CRPIX1"] = h["CRPIX2"] = (size + 1) / 2
    h["CD1_1"], h["CD2_2"], h["CD1_2"], h["CD2_1"] = -SCALE / 3600, SCALE / 3600, 0.0, 0.0
    h["SEXMGZPT"], h["GAIN"] = 30.0, 4.0
    return h


def bare_loop(image: galsim.Image, wcs, psf, objects, band: str, zp: float) -> None:
    """The minimal loop: profile, PSF, convolve, draw a stamp, add it where it overlaps."""
    cols = objects.columns
    x, y = wcs.radecToxy(cols["ra"], cols["dec"], units="deg")
    dx, dy = psfex_centre_shift(psf)
    opts = DrawOptions()
    psf_half = 0.5 * max(psf.basis.shape[1:]) * psf.sample_scale + 3 * psf.sample_scale
    for i in range(len(objects)):
        pos = galsim.PositionD(x[i], y[i])
        local = wcs.local(pos)
        p = local.profileToWorld(psf.getPSF(pos).shift(-dx, -dy))
        flux = 10 ** ((zp - cols[f"mag_{band}"][i]) / 2.5)
        if cols["objtype"][i] == OBJTYPE_STAR:
            obj, r = p, 0.0
        else:
            obj = galsim.Convolve(galaxy_profile(objects, i, opts), p, gsparams=opts.gsparams)
            r = opts.trunc_factor * max(cols[f"hlr_{c}"][i] for c in objects.components)
        half = int(math.ceil(r / SCALE + psf_half + opts.stamp_margin))
        ix, iy = int(math.floor(x[i] + 0.5)), int(math.floor(y[i] + 0.5))
        stamp = galsim.ImageF(galsim.BoundsI(ix - half, ix + half, iy - half, iy + half), wcs=local)
        obj.withFlux(flux).drawImage(stamp, method="no_pixel", offset=(x[i] - ix, y[i] - iy))
        b = stamp.bounds & image.bounds
        if b.isDefined():
            image[b] += stamp[b]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096, help="image side, pixels")
    ap.add_argument("--nobj", type=int, default=300, help="objects per realization")
    ap.add_argument("--repeat", type=int, default=3, help="timing repeats (best is kept)")
    args = ap.parse_args()
    size, n, bands = args.size, args.nobj, DEFAULT_BANDS
    margin = 100 * SCALE / 3600
    half_deg = size / 2 * SCALE / 3600
    rng = np.random.default_rng(1)
    ra = (RA0 + rng.uniform(-half_deg + margin, half_deg - margin, n)) % 360
    dec = DEC0 + rng.uniform(-half_deg + margin, half_deg - margin, n)
    objects = make_objects(ra, dec, np.arange(n), bands=bands, indexstart=0, tilename="DES2359+0001")
    hdr = header(size)
    wcs = galsim.GSFitsWCS(header=hdr)
    psf = load_psf(PSF)
    after = DrawOptions(poisson_noise=False)
    before = DrawOptions(poisson_noise=False, psf_grid=0)

    def run_bare() -> None:
        for b in bands:
            bare_loop(galsim.ImageF(size, size, xmin=1, ymin=1), wcs, psf, objects, b, 30.0)

    def run_ours(noise: bool, options: DrawOptions = after) -> None:
        for b in bands:
            draw_objects_into(galsim.ImageF(size, size, xmin=1, ymin=1), wcs, psf, objects, b, 30.0, 4.0,
                              12345 if noise else None, options)

    with tempfile.TemporaryDirectory(dir=REPO / "benchmarks") as tmp:
        tmp = Path(tmp)
        sky = np.random.default_rng(2).normal(0, 3, (size, size)).astype(np.float32)
        images = {}
        for b in bands:
            images[b] = tmp / f"in_{b}.fits"
            fits.HDUList([fits.PrimaryHDU(sky, header=hdr), fits.ImageHDU(np.zeros((size, size), np.int32), name="MSK"),
                          fits.ImageHDU(np.ones((size, size), np.float32), name="WGT")]).writeto(images[b])
        outs = {b: tmp / f"out_{b}.fits" for b in bands}
        psfs = dict.fromkeys(bands, PSF)
        methods = [
            ("bare GalSim loop", run_bare),
            ("before: draw_objects_into, no noise", lambda: run_ours(False, before)),
            ("after:  draw_objects_into, no noise", lambda: run_ours(False)),
            ("before: draw_objects_into, Poisson noise", lambda: run_ours(True, before)),
            ("after:  draw_objects_into, Poisson noise", lambda: run_ours(True)),
            ("before: inject_realization (FITS in/out, noise)",
             lambda: inject_realization(images, psfs, objects, outs, draw_options=DrawOptions(psf_grid=0))),
            ("after:  inject_realization (FITS in/out, noise)", lambda: inject_realization(images, psfs, objects, outs)),
        ]
        run_bare()  # warm-up: GalSim builds its Sersic tables once per (n, truncation) on first use
        best = dict.fromkeys((name for name, _ in methods), math.inf)
        for _ in range(args.repeat):  # interleaved, so a busy neighbour slows every method alike
            for name, fn in methods:
                t0 = time.process_time()
                fn()
                best[name] = min(best[name], time.process_time() - t0)
        rows = list(best.items())

    bare = rows[0][1]
    total = n * len(bands)
    print(f"\n{n} objects x {len(bands)} bands on {size}x{size} images "
          f"({int(np.sum(objects['objtype'] == OBJTYPE_STAR))} stars), best of {args.repeat}\n")
    print(f"{'method':50s} {'CPU [s]':>8s} {'ms/object':>10s} {'objects/s':>10s} {'vs bare':>8s}")
    for name, t in rows:
        print(f"{name:50s} {t:8.2f} {1000 * t / total:10.2f} {total / t:10.1f} {bare / t:8.2f}")


if __name__ == "__main__":
    main()
