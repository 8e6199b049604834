"""PSFEx against Piff, per object, side by side: what drawing with each CCD model costs, and
whether Piff's two ways of giving a PSF agree.

Usage (from the repository root)::

    .venv/bin/python benchmarks/psf_cost.py                 # 200 objects per kind and model
    .venv/bin/python benchmarks/psf_cost.py --nobj 1000

The models are real: a synthetic single-epoch survey (``demo/synth_se.py``, bands i and z, one
exposure of 256 x 512 CCDs) with, per CCD, a PSFEx model made by SExtractor + psfex and a Piff
model fit by piff to the same stars (PixelGrid 17 x 17 at 0.30", BasisPolynomial order 1; the
z model also in IZ_COLOR, as Y6's). It is cached in ``/tmp/bench-cache/piff-survey``.

On each CCD, ``--nobj`` positions uniform over the chip are drawn as a star (the PSF alone),
an exponential galaxy (hlr 0.4") and a truncated de Vaucouleurs galaxy (hlr 1", q 0.5), as
``draw.draw_objects_into`` draws them (PSF convolved, ``no_pixel``, the injection's GSParams,
81^2 stamps), with:

- **psfex**: ``draw.PsfexGrid.profile`` (the k-grid PSFEx profile, what coadd and Y3 runs use);
- **piff profile**: ``piff_psf.PiffModel.profile`` (``psf.get_profile``, apodized PixelGrid);
- **piff stamp**: eastlake's ``DES_Piff`` (the model drawn on a 53^2 stamp in the local WCS,
  Lanczos-15 ``InterpolatedImage``).

Prints CPU ms per object (best of 3; PSF evaluation + draw), the ratio to PSFEx, and, for
the two Piff ways, ``max |stamp - stamp'| / flux`` and the HSM centroid and size differences.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import galsim  # noqa: E402
import numpy as np  # noqa: E402

from balrog_runner.demo.synth_se import SkyDensities, make_se_survey  # noqa: E402
from balrog_runner.injection import chips, draw, piff_psf  # noqa: E402

CACHE = Path("/tmp/bench-cache/piff-survey")
SHAPES = {
    "star": None,
    "exp": galsim.Exponential(half_light_radius=0.4),
    "deV": galsim.Sersic(4.0, half_light_radius=1.0, trunc=5.0).shear(q=0.5, beta=0.3 * galsim.radians),
}
GSPARAMS = draw.DrawOptions().gsparams


def survey():
    return make_se_survey("DES0002+0001", CACHE, tile_size=200, bands=("i", "z"), det=False, n_exposures=1,
                          ccd_shape=(256, 512), gap=(24, 18), dither=(8.0, 8.0), seed=8, compress=False, piff=True,
                          sky=SkyDensities(galaxies=0, faint_stars=0, bright_stars_per_ccd=60, bright_min_sep=30))


def draw_one(psf, chip: chips.Chip, shape, x: float, y: float, color: float | None) -> galsim.ImageF:
    ix, iy = math.floor(x + 0.5), math.floor(y + 0.5)
    pos = galsim.PositionD(x, y)
    local = chip.wcs.local(pos)
    prof = psf.profile(pos, local, color)
    obj = prof if shape is None else galsim.Convolve(shape, prof, gsparams=GSPARAMS)
    image = galsim.ImageF(galsim.BoundsI(ix - 40, ix + 40, iy - 40, iy + 40), wcs=local)
    obj.drawImage(image, method="no_pixel", offset=(x - ix, y - iy))
    return image


def timed(fn, repeat: int = 3) -> float:
    best = math.inf
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nobj", type=int, default=200, help="objects per kind and model (default: %(default)s)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    se = survey().se_set
    rng = np.random.default_rng(3)
    print(f"{'CCD':<18} {'kind':<5} {'psfex ms':>9} {'piff ms':>8} {'stamp ms':>9} {'piff/psfex':>10} "
          f"{'stamp/psfex':>11} | {'max|diff|/flux':>14} {'dcen px':>8} {'dsize':>8}")
    for band in ("i", "z"):
        image = se.band(band)[0]
        chip = chips.read_chip(image, require_gain=False)
        psfex = chips.load_chip_psfs([chip], "psfex", draw.DrawOptions())[0]
        prof_model = piff_psf.load_piff(image.piff, method="profile")
        stamp_model = piff_psf.load_piff(image.piff, method="stamp")
        x = rng.uniform(20, chip.nx - 20, args.nobj)
        y = rng.uniform(20, chip.ny - 20, args.nobj)
        color = 0.3 if prof_model.color else None
        for kind, shape in SHAPES.items():
            cost = {}
            for label, model in (("psfex", psfex), ("profile", prof_model), ("stamp", stamp_model)):
                def run(m=model, c=chip, s=shape, k=color, xs=x, ys=y):
                    return [draw_one(m, c, s, a, b, k) for a, b in zip(xs, ys, strict=True)]

                cost[label] = timed(run) / args.nobj * 1e3
            diffs, dcen, dsize = [], [], []
            for a, b in zip(x[:50], y[:50], strict=True):
                one = draw_one(prof_model, chip, shape, a, b, color)
                two = draw_one(stamp_model, chip, shape, a, b, color)
                diffs.append(np.abs(one.array - two.array).max() / one.array.sum())
                m1, m2 = one.FindAdaptiveMom(), two.FindAdaptiveMom()
                dcen.append(math.hypot(m1.moments_centroid.x - m2.moments_centroid.x,
                                       m1.moments_centroid.y - m2.moments_centroid.y))
                dsize.append(m2.moments_sigma / m1.moments_sigma - 1)
            print(f"{image.key:<18} {kind:<5} {cost['psfex']:9.2f} {cost['profile']:8.2f} {cost['stamp']:9.2f} "
                  f"{cost['profile'] / cost['psfex']:10.2f} {cost['stamp'] / cost['psfex']:11.2f} | "
                  f"{max(diffs):14.2e} {max(dcen):8.4f} {max(np.abs(dsize)):8.1e}")
    print("ms: CPU per object, PSF evaluation + draw (best of 3); piff = get_profile (what drawing uses), "
          "stamp = eastlake's DES_Piff; the last three columns compare piff and stamp over 50 objects")
    return 0


if __name__ == "__main__":
    sys.exit(main())
