"""Benchmark what SExtractor costs per band of a sim realization, side by side in one run:
the quick parameter set, DESDM's model-fitting set on every detection (the old default),
and DESDM's set restricted to the injected objects (ASSOC MATCHED, the new default).

Usage (from the repository root)::

    .venv/bin/python benchmarks/measure_cost.py --size 10000 --workdir /tmp/bm   # a real tile's size
    .venv/bin/python benchmarks/measure_cost.py --size 2048                      # quick look

The synthetic tile (g r i z Y + det, real PSFEx models; ``synth.make_synthetic_tile``) is
made once in ``<workdir>/tile`` and reused by later runs with the same ``--workdir`` and
size; ``--ngal`` stars and galaxies are injected into the r band at isolated positions
(GalSim, the band's PSF) and the r band is measured in dual-image mode against the tile's
det image with both PSFEx models, one SExtractor process on one core. The detection image is
not rebuilt (a SWarp per run at 10000^2 would dominate), so the restricted run associates
with the positions of ``--ngal`` detections of the unrestricted run (what the sim runs see:
about ``ngal`` detected injected objects among the tile's real ones), and its rows are
compared column by column with the unrestricted run's (the table says whether every value
is identical). Prints a table; writes nothing but the cached tile.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import fitsio  # noqa: E402
import numpy as np  # noqa: E402

from balrog_runner.campaign.config_keys import config_dir  # noqa: E402
from balrog_runner.demo import synth  # noqa: E402
from balrog_runner.measurement import astromatic, measure

TILE = "DES0002+0209"
log = logging.getLogger("benchmarks.measure_cost")


def tile_files(workdir: Path, size: int):
    """The cached tile, or a new one (minutes at 10000^2)."""
    folder = workdir / f"tile-{size}"
    marker = folder / "done"
    if marker.is_file():
        return _reload(folder)
    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    tile = synth.make_synthetic_tile(TILE, folder, size=size, seed=3, compress=False)
    marker.write_text(f"{time.perf_counter() - t0:.1f}\n")
    return tile


def _reload(folder: Path):
    images = {b: folder / f"{TILE}_{b}.fits" for b in ("g", "r", "i", "z", "Y", "det")}
    psfs = {b: folder / f"{TILE}_{b}_psfcat.psf" for b in images}
    return type("Tile", (), {"images": images, "psfs": psfs})()


def inject(tile, band: str, out: Path, ngal: int, size: int, seed: int = 7) -> np.ndarray:
    """Stars (every third) and exponential galaxies into one band; returns their 1-based x, y."""
    rng = np.random.default_rng(seed)
    xy = synth._isolated_positions(rng, ngal, size, margin=30, min_sep=25)
    mags = rng.uniform(18.0, 24.0, len(xy))
    hlr = np.where(np.arange(len(xy)) % 3 == 0, 0.0, rng.uniform(0.3, 1.5, len(xy)))
    synth.add_sources(tile.images[band], out, xy, mags, synth.PSF_FWHM[band], hlr)
    return np.asarray(xy, dtype=float)


def run_band(tile, band: str, image: Path, setup, workdir: Path, name: str,
             restrict: np.ndarray | None) -> tuple[float, np.ndarray]:
    """One dual-image SExtractor run of ``image`` (band, or the det image on itself)."""
    extra = {}
    if restrict is not None:
        setup, extra = measure.assoc_overrides(setup, {}, [band], restrict, workdir)
    t0 = time.perf_counter()
    cat = astromatic.run_sextractor(
        (tile.images["det"], 0), workdir / f"{name}.fits", measurement=(image, 0),
        detection_weight=(tile.images["det"], 2), measurement_weight=(image, 2),
        psf=tile.psfs[band], detection_psf=tile.psfs["det"], setup=setup, workdir=workdir, extra=extra.get(band))
    seconds = time.perf_counter() - t0
    return seconds, fitsio.read(str(cat))


def identical(full: np.ndarray, part: np.ndarray, xy: np.ndarray) -> bool:
    """The restricted run's rows equal the full run's rows at the same detections (matched on
    the exact X_IMAGE, Y_IMAGE pair: SExtractor renumbers the kept rows)."""
    index = {(float(x), float(y)): i for i, (x, y) in enumerate(zip(full["X_IMAGE"], full["Y_IMAGE"], strict=True))}
    rows = [index.get((float(x), float(y))) for x, y in zip(part["X_IMAGE"], part["Y_IMAGE"], strict=True)]
    if any(r is None for r in rows):
        return False
    sub = full[rows]
    for name in part.dtype.names:
        if name in ("NUMBER", "NUMBER_ASSOC"):
            continue
        if not np.array_equal(sub[name], part[name], equal_nan=part[name].dtype.kind == "f"):
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=4096, help="tile side, pixels (DES: 10000)")
    parser.add_argument("--ngal", type=int, default=1000, help="objects injected (default 1000)")
    parser.add_argument("--bands", default="r", help="comma-separated bands to measure, of g,r,i,z,Y,det "
                        "(default r; all six is what a realization measures)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/balrog-bench-measure"),
                        help="where the synthetic tile is cached between runs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    bands = [b for b in args.bands.split(",") if b]
    args.workdir.mkdir(parents=True, exist_ok=True)
    tile = tile_files(args.workdir, args.size)
    scratch = args.workdir / "scratch"
    light = dataclasses.replace(astromatic.LIGHT_SEXTRACTOR, param=config_dir() / "light.param")
    desdm = astromatic.DEFAULT_SEXTRACTOR
    rows, totals = [], np.zeros(3)
    for band in bands:
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        if band == "det":
            image = Path(tile.images["det"])
        else:
            image = scratch / f"{band}_injected.fits"
            inject(tile, band, image, args.ngal, args.size)
        t_light, _ = run_band(tile, band, image, light, scratch, "light", None)
        t_full, full = run_band(tile, band, image, desdm, scratch, "full", None)
        pick = np.random.default_rng(1).choice(len(full), min(args.ngal, len(full)), replace=False)
        targets = np.column_stack([full["X_IMAGE"][pick], full["Y_IMAGE"][pick]])
        t_part, part = run_band(tile, band, image, desdm, scratch, "part", targets)
        rows.append((band, len(full), t_light, t_full, len(part), t_part, "yes" if identical(full, part, targets) else "NO"))
        totals += (t_light, t_full, t_part)
    print(f"\nSExtractor per image of a sim realization, dual-image with the det image and both PSFs, "
          f"{args.size}^2 synthetic tile, one core, seconds")
    print(f"{'band':<5} {'detections':>10} {'light.param':>12} {'default.param':>14} {'restricted':>11} "
          f"{'rows':>6}  identical")
    for band, n, tl, tf, npart, tp, same in rows:
        print(f"{band:<5} {n:10d} {tl:12.1f} {tf:14.1f} {tp:11.1f} {npart:6d}  {same}")
    print(f"{'total':<5} {'':>10} {totals[0]:12.1f} {totals[1]:14.1f} {totals[2]:11.1f}")
    print(f"\nrestricted / unrestricted model fitting: {totals[2] / totals[1]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
