"""Detections on one synthetic detection image under the runner's old SExtractor defaults and
DESDM's (Y3, Y6), side by side in one run.

Usage (from the repository root; the tile is the one ``measure_cost.py`` caches)::

    .venv/bin/python benchmarks/detection_config.py --size 2048 --workdir /tmp/bench-cache

Each row runs SExtractor once in single-image mode on the tile's riz CHI-MEAN detection image
(``synth.make_synthetic_tile``, seed 3) with the shipped ``config/default.sex`` and the row's
keys on the command line, so every row states all the keys that differ between the rows and
does not depend on what ``default.sex`` currently holds:

- ``v0.1``: what a campaign got before DESDM's values were adopted (the ``sex-filter`` default
  ``default.conv``, DETECT_MINAREA 6, DETECT_THRESH / ANALYSIS_THRESH 1.5, PHOT_AUTOAPERS 0,0,
  BACKPHOTO_TYPE LOCAL, SATUR_LEVEL 1e9);
- ``v0.1 + gauss_3.0_7x7``: the same with DESDM's filter only (the issue's 1,546 vs 1,339);
- ``DESDM Y3``: DESDM's Y3 coadd values (the new ``config/default.sex``);
- ``DESDM Y6``: eastlake's Y6 command-line values (0.8 sigma, DEBLEND_NTHRESH 64).

The tile's objects are known (the synthetic star and galaxy tables are re-drawn from the
tile's seed), so each detection is called *true* when a star or galaxy lies within 2 px of it
(the runner's association radius) and *unmatched* otherwise (noise peaks, deblended pieces of
one object, positions pulled off by blending); the recovered fractions count objects with a
detection within 2 px, by r magnitude. Prints a table; writes nothing but the cached tile.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for p in (str(REPO), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

import fitsio  # noqa: E402
import numpy as np  # noqa: E402
from measure_cost import tile_files  # noqa: E402
from scipy.spatial import cKDTree  # noqa: E402

from balrog_runner.demo import synth  # noqa: E402
from balrog_runner.measurement import astromatic  # noqa: E402

log = logging.getLogger("benchmarks.detection_config")

#: The tile seed measure_cost.tile_files uses.
TILE_SEED = 3
MATCH_RADIUS_PIX = 2.0
SHARE = astromatic.SEXTRACTOR_SHARE

#: Every key that differs between the rows, given explicitly in every row.
VARIANTS: dict[str, tuple[Path, dict[str, str]]] = {
    "v0.1 (default.conv)": (SHARE / "default.conv", {
        "DETECT_MINAREA": "6", "DETECT_THRESH": "1.5", "ANALYSIS_THRESH": "1.5", "DEBLEND_NTHRESH": "32",
        "PHOT_AUTOAPERS": "0.0,0.0", "BACKPHOTO_TYPE": "LOCAL", "SATUR_LEVEL": "1.0e9"}),
    "v0.1 + gauss_3.0_7x7": (SHARE / "gauss_3.0_7x7.conv", {
        "DETECT_MINAREA": "6", "DETECT_THRESH": "1.5", "ANALYSIS_THRESH": "1.5", "DEBLEND_NTHRESH": "32",
        "PHOT_AUTOAPERS": "0.0,0.0", "BACKPHOTO_TYPE": "LOCAL", "SATUR_LEVEL": "1.0e9"}),
    "DESDM Y3": (SHARE / "gauss_3.0_7x7.conv", {
        "DETECT_MINAREA": "4", "DETECT_THRESH": "1.1", "ANALYSIS_THRESH": "1.1", "DEBLEND_NTHRESH": "32",
        "PHOT_AUTOAPERS": "0.0,7.41", "BACKPHOTO_TYPE": "GLOBAL", "SATUR_LEVEL": "50000.0"}),
    "DESDM Y6": (SHARE / "gauss_3.0_7x7.conv", {
        "DETECT_MINAREA": "4", "DETECT_THRESH": "0.8", "ANALYSIS_THRESH": "0.8", "DEBLEND_NTHRESH": "64",
        "PHOT_AUTOAPERS": "0.0,7.41", "BACKPHOTO_TYPE": "GLOBAL", "SATUR_LEVEL": "50000.0"}),
}

#: r-magnitude bins of the recovered fractions.
MAG_BINS = ((17.0, 22.0), (22.0, 23.5), (23.5, 24.5), (24.5, 25.5))


def truth_table(size: int) -> tuple[np.ndarray, np.ndarray]:
    """The tile's stars and galaxies: 1-based x, y (pixels) and r magnitude."""
    stars, gals = synth._make_objects(np.random.default_rng([TILE_SEED, 7]), size, synth.DEFAULT_BANDS)
    xy = np.concatenate([np.column_stack([stars["x"], stars["y"]]), np.column_stack([gals["x"], gals["y"]])])
    mag = np.concatenate([stars["mag_r"], gals["mag_r"]])
    return xy, mag


def write_param(path: Path) -> Path:
    """A parameter list with what the count needs (the counts do not depend on it)."""
    path.write_text("NUMBER\nX_IMAGE\nY_IMAGE\nFLUX_AUTO\nFLAGS\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2048, help="tile side, pixels (DES: 10000)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-cache"),
                        help="where the synthetic tile is cached between runs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    args.workdir.mkdir(parents=True, exist_ok=True)
    tile = tile_files(args.workdir, args.size)
    det = Path(tile.images["det"])
    scratch = args.workdir / "scratch-detection-config"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    param = write_param(scratch / "count.param")
    truth_xy, truth_mag = truth_table(args.size)
    tree = cKDTree(truth_xy)
    rows = []
    for name, (conv, keys) in VARIANTS.items():
        setup = dataclasses.replace(astromatic.DEFAULT_SEXTRACTOR, param=param, filter=conv, overrides=keys)
        t0 = time.perf_counter()
        cat = astromatic.run_sextractor((det, 0), scratch / "cat.fits", detection_weight=(det, 2),
                                        setup=setup, workdir=scratch)
        seconds = time.perf_counter() - t0
        data = fitsio.read(str(cat))
        xy = np.column_stack([data["X_IMAGE"], data["Y_IMAGE"]])
        dist, _ = tree.query(xy, k=1, distance_upper_bound=MATCH_RADIUS_PIX)
        true = int(np.isfinite(dist).sum())
        found = np.isfinite(cKDTree(xy).query(truth_xy, k=1, distance_upper_bound=MATCH_RADIUS_PIX)[0])
        fractions = []
        for lo, hi in MAG_BINS:
            sel = (truth_mag >= lo) & (truth_mag < hi)
            fractions.append(found[sel].mean() if sel.any() else float("nan"))
        rows.append((name, len(data), true, len(data) - true, fractions, seconds))
    print(f"\nSExtractor on the riz detection image of a {args.size}^2 synthetic tile "
          f"({len(truth_xy)} stars and galaxies), single-image mode, one core")
    bins = " ".join(f"{f'r {lo:g}-{hi:g}':>10}" for lo, hi in MAG_BINS)
    print(f"{'configuration':<22} {'detections':>10} {'true':>6} {'unmatched':>9} {bins} {'seconds':>8}")
    for name, n, true, other, fractions, seconds in rows:
        cells = " ".join(f"{f:10.3f}" for f in fractions)
        print(f"{name:<22} {n:10d} {true:6d} {other:9d} {cells} {seconds:8.1f}")
    print(f"(true = a tile object within {MATCH_RADIUS_PIX:g} px; the r columns: fraction of the tile's "
          "objects in that magnitude range with a detection within it)")
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
