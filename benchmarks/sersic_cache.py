"""Sersic index grid: drawing speed with a catalog's continuous indices against rounded ones.

GalSim builds a Sersic profile's Hankel-transform table once per distinct (n, trunc) and
keeps it in a small LRU cache, so a continuum of indices (as in the COSMOS Mock Catalog)
builds a table for almost every object, while indices rounded to 0.1
(:func:`balrog_runner.injection.catalog_columns.round_sersic_n`, what ``make_objects`` does) reuse
a few dozen. The same objects (one Sersic component, n uniform in [0.5, 4.5], hlr 0.3-1.2
arcsec, mag 19-23) are drawn with the real DES PSFEx model into a ``--size`` image, once
with continuous n and once rounded, each in a fresh process (cold caches, no sharing).
Prints a table (CPU seconds of the drawing process, so a busy machine does not skew it):
the profile build (``galsim.Sersic`` + its tables, what the cache saves), the drawing
(PSF convolution, FFT, stamps), their slowdowns against the rounded run, and how far the
drawn stamp sums are from the catalog fluxes (they should agree equally well).

    .venv/bin/python benchmarks/sersic_cache.py --nobj 300 --size 1024
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PSF = REPO / "tests" / "data" / "des_example.psf"
RA0, DEC0, SCALE, ZP = 10.0, -1.0, 0.263, 30.0  # arcsec/pixel, mag


def objects(nobj: int, size: int, seed: int, rounded: bool):
    """One realization of single-Sersic galaxies; ``rounded`` as make_objects would draw them."""
    from astropy.io import fits
    from astropy.wcs import WCS

    from balrog_runner.injection.catalog_columns import round_sersic_n
    from balrog_runner.injection.population import ObjectTable

    rng = np.random.default_rng(seed)
    h = header(size)
    x, y = rng.uniform(30, size - 30, nobj), rng.uniform(30, size - 30, nobj)
    ra, dec = WCS(fits.Header(h)).all_pix2world(x, y, 1)
    n = rng.uniform(0.5, 4.5, nobj)
    cols = {
        "ra": np.asarray(ra), "dec": np.asarray(dec), "balrog_index": np.arange(nobj),
        "objtype": np.zeros(nobj, dtype=np.int16), "g1": np.zeros(nobj), "g2": np.zeros(nobj),
        "magnification": np.ones(nobj), "mag_i": rng.uniform(19, 23, nobj),
        "sersic_n_sersic": round_sersic_n(n) if rounded else n, "hlr_sersic": rng.uniform(0.3, 1.2, nobj),
        "q_sersic": rng.uniform(0.3, 1.0, nobj), "beta_sersic": rng.uniform(0, 180, nobj),
        "flux_frac_sersic": np.ones(nobj),
    }
    return ObjectTable(columns=cols, bands=("i",), components=("sersic",))


def header(size: int) -> dict:
    return {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": RA0, "CRVAL2": DEC0,
            "CRPIX1": (size + 1) / 2, "CRPIX2": (size + 1) / 2, "CD1_1": -SCALE / 3600, "CD2_2": SCALE / 3600,
            "CD1_2": 0.0, "CD2_1": 0.0}


def one(nobj: int, size: int, seed: int, rounded: bool) -> dict:
    """Draw once in this process (cold caches); the numbers as a dict."""
    import galsim
    from astropy.io import fits

    from balrog_runner.injection.draw import DrawOptions, draw_objects_into, load_psf, unit_profiles

    objs = objects(nobj, size, seed, rounded)
    psf = load_psf(PSF)
    wcs = galsim.GSFitsWCS(header=fits.Header(header(size)))
    image = galsim.ImageF(size, size, xmin=1, ymin=1)
    options = DrawOptions(poisson_noise=False)
    # CPU seconds of this process: the machine may be shared, wall time would measure the neighbours.
    t0 = time.process_time()
    profiles = unit_profiles(objs, options)
    for prof in profiles[0]:
        _ = (prof.maxk, prof.stepk)  # builds the Sersic tables (GalSim does this lazily, on first use)
    t1 = time.process_time()
    res = draw_objects_into(image, wcs, psf, objs, "i", ZP, None, None, options, profiles=profiles)
    t2 = time.process_time()
    ok = res.flags == 0
    return {"distinct_n": int(len(np.unique(objs["sersic_n_sersic"]))), "build": t1 - t0, "draw": t2 - t1,
            "flux_dev": float(np.max(np.abs(res.flux_noised[ok] / res.flux[ok] - 1))),
            "drawn": res.flux_noised.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nobj", type=int, default=200, help="galaxies drawn (default 200)")
    parser.add_argument("--size", type=int, default=1024, help="image side, pixels (default 1024)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--child", choices=("continuous", "rounded"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one(args.nobj, args.size, args.seed, args.child == "rounded")))
        return
    rows = {}
    for kind in ("continuous", "rounded"):
        out = subprocess.run([sys.executable, __file__, "--nobj", str(args.nobj), "--size", str(args.size),
                              "--seed", str(args.seed), "--child", kind], capture_output=True, text=True, check=True)
        rows[kind] = json.loads(out.stdout.strip().splitlines()[-1])
    base = rows["rounded"]
    print(f"{'sersic n':<12}{'objects':>8}{'distinct n':>12}{'build s':>9}{'draw s':>9}{'total s':>9}"
          f"{'build x':>9}{'total x':>9}{'max |drawn/catalog-1|':>23}")
    for kind, r in rows.items():
        total = r["build"] + r["draw"]
        print(f"{kind:<12}{args.nobj:>8}{r['distinct_n']:>12}{r['build']:>9.2f}{r['draw']:>9.2f}{total:>9.2f}"
              f"{r['build'] / base['build']:>8.1f}x{total / (base['build'] + base['draw']):>8.1f}x{r['flux_dev']:>23.2e}")
    drawn_c, drawn_r = np.array(rows["continuous"]["drawn"]), np.array(rows["rounded"]["drawn"])
    good = (drawn_c > 0) & (drawn_r > 0)
    print(f"drawn flux, rounded / continuous: median {np.median(drawn_r[good] / drawn_c[good]):.5f}, "
          f"max deviation {np.max(np.abs(drawn_r[good] / drawn_c[good] - 1)):.2e}")


if __name__ == "__main__":
    main()
