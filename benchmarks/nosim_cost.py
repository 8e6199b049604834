"""Benchmark the once-per-tile nosim run: every detection model-fitted (before) against model
fitting only near the campaign's positions (after, ``run['nosim-restrict']``), side by side.

Usage (from the repository root)::

    .venv/bin/python benchmarks/nosim_cost.py --size 2048,4096      # both sizes, one table
    .venv/bin/python benchmarks/nosim_cost.py --size 10000 --realizations 100 --skip-before

For each ``--size`` a synthetic tile (g r i z Y + det, real PSFEx models;
``synth.make_synthetic_tile``) is made once in ``<workdir>/tile-<size>`` (the cache
``measure_cost.py`` uses too) and measured with DESDM's parameter file (``config/default.param``):

- **before**: ``measure.measure_nosim`` as the runner called it until now, every detection
  with every column (12 SExtractor runs: 5 bands + det);
- **after**, for two position files made by the real generators on the tile's footprint
  (``geometry.cutout_tile``), ``--realizations`` realizations each: **random** positions at
  the density of ``--ngal`` per 10000^2 tile, and a **lattice** (``--spacing`` arcsec, one
  grid per realization, Y3's placement); ``fit_near`` is every position of the file, in pixels
  as the runner computes them (``nosim.pixel_positions``).

CPU is this process's plus its children's (SExtractor) user + system time; wall is elapsed.
Each realization's nosim catalog (``measure.nosim_for_realization`` with truth x, y of that
realization's rows) is cut from the before and the after catalogs and compared column by
column (NaN = NaN); "identical" says whether every realization's catalog is. The before run
does not depend on the positions, so it is measured once per size. ``--skip-before`` measures
the after runs alone (the before run at 10000^2 is over an hour: take its figure from
``measure_cost.py``, which runs the same SExtractor set on every detection of the same tile);
the table then has no before columns and no identity check ("not checked": the identity is
checked at 2048^2 and 4096^2). Prints a table; writes nothing but the cached tile.
"""

from __future__ import annotations

import argparse
import logging
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import fitsio  # noqa: E402
import numpy as np  # noqa: E402

from balrog_runner.demo import synth  # noqa: E402
from balrog_runner.measurement import astromatic, measure, nosim  # noqa: E402
from balrog_runner.sky import geometry, positions  # noqa: E402

TILE = "DES0002+0209"
BANDS = ("g", "r", "i", "z", "Y")
log = logging.getLogger("benchmarks.nosim_cost")


def tile_files(workdir: Path, size: int) -> tuple[dict[str, Path], dict[str, Path]]:
    """(images, psfs) of the cached tile, made first if needed (minutes at 10000^2)."""
    folder = workdir / f"tile-{size}"
    marker = folder / "done"
    if not marker.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        t0 = time.perf_counter()
        synth.make_synthetic_tile(TILE, folder, size=size, seed=3, compress=False)
        marker.write_text(f"{time.perf_counter() - t0:.1f}\n")
    images = {b: folder / f"{TILE}_{b}.fits" for b in (*BANDS, "det")}
    return images, {b: folder / f"{TILE}_{b}_psfcat.psf" for b in images}


def position_files(size: int, ngal: int, realizations: int, spacing: float) -> dict[str, positions.Positions]:
    """The random and lattice positions of the tile's footprint, as a position file holds them."""
    cut = geometry.cutout_tile(geometry.des_tile(TILE), size, margin=20)
    per_real = max(1, round(ngal * (size / geometry.NAXIS) ** 2))
    random = positions.tile_positions(cut, positions.PositionParams(seed=5, pertile=per_real * realizations))
    lattice = np.concatenate(list(positions.iter_lattice(cut, positions.PositionParams(
        seed=5, lattice=spacing, realizations=realizations))))
    return {
        "random": positions.Positions(TILE, random["ra"], random["dec"], random["balrog_index"], {},
                                      np.repeat(np.arange(realizations, dtype=np.int32), per_real)),
        "lattice": positions.Positions(TILE, lattice["ra"], lattice["dec"], lattice["balrog_index"], {},
                                       lattice["realization"]),
    }


def timed(fn, *args, **kwargs) -> tuple[float, float]:
    """(CPU seconds of this process and its children, wall seconds) of ``fn(*args, **kwargs)``."""
    def cpu() -> float:
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    c0, w0 = cpu(), time.perf_counter()
    fn(*args, **kwargs)
    return cpu() - c0, time.perf_counter() - w0


def realization_catalogs(wide: np.ndarray, pos: positions.Positions, xy: np.ndarray) -> list[np.ndarray]:
    """Every realization's nosim catalog cut from a tile-wide one."""
    out = []
    for j in np.unique(pos.row_realization):
        rows = pos.row_realization == j
        truth = np.zeros(int(rows.sum()), dtype=[("balrog_index", "i8"), ("x", "f8"), ("y", "f8")])
        truth["balrog_index"] = pos.balrog_index[rows]
        truth["x"], truth["y"] = xy[rows, 0], xy[rows, 1]
        out.append(measure.nosim_for_realization(wide, truth, tilename=TILE, realization=int(j),
                                                 indexstart=int(truth["balrog_index"][0])))
    return out


def identical(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    for x, y in zip(a, b, strict=True):
        if x.dtype != y.dtype or len(x) != len(y):
            return False
        for name in x.dtype.names:
            if not np.array_equal(x[name], y[name], equal_nan=x[name].dtype.kind == "f"):
                return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="2048,4096", help="comma-separated tile sides, pixels (DES: 10000)")
    parser.add_argument("--realizations", type=int, default=100, help="realizations in each position file")
    parser.add_argument("--ngal", type=int, default=1000, help="random objects per realization of a 10000^2 "
                        "tile (scaled by area to smaller tiles)")
    parser.add_argument("--spacing", type=float, default=30.0, help="lattice spacing, arcsec (Y3: 30)")
    parser.add_argument("--skip-before", action="store_true",
                        help="do not run the before (every detection model-fitted): no identity check")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-cache"),
                        help="where the synthetic tiles are cached between runs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    setup = astromatic.DEFAULT_SEXTRACTOR
    rows = []
    for size in [int(s) for s in args.size.split(",") if s]:
        images, psfs = tile_files(args.workdir, size)
        with tempfile.TemporaryDirectory(prefix="nosim-cost-", dir=args.workdir) as scratch:
            scratch = Path(scratch)
            before, cpu0, wall0 = None, float("nan"), float("nan")
            if not args.skip_before:
                before_path = scratch / "before.fits"
                cpu0, wall0 = timed(measure.measure_nosim, images, psfs, before_path, setup=setup, workdir=scratch)
                before = fitsio.read(str(before_path))
            for placement, pos in position_files(size, args.ngal, args.realizations, args.spacing).items():
                xy = np.concatenate(list(nosim.pixel_positions(images[BANDS[0]], pos.ra, pos.dec)))
                after_path = scratch / f"after_{placement}.fits"
                cpu1, wall1 = timed(measure.measure_nosim, images, psfs, after_path, setup=setup, workdir=scratch,
                                    fit_near=xy)
                after = fitsio.read(str(after_path))
                fitted = int(after[nosim.FITTED_COLUMN].sum()) if nosim.FITTED_COLUMN in after.dtype.names else len(after)
                kept_catalogs = realization_catalogs(after, pos, xy)
                same = None if before is None else identical(realization_catalogs(before, pos, xy), kept_catalogs)
                kept = sum(len(c) for c in kept_catalogs)
                rows.append((size, placement, len(pos.ra), len(after), fitted, kept, cpu0, cpu1, wall0, wall1, same))
    print(f"\nnosim once per tile, DESDM default.param, {args.realizations} realizations per position file, "
          f"CPU = user + system seconds of this process and SExtractor")
    print(f"{'size':>6} {'placement':<8} {'positions':>9} {'detections':>10} {'fitted':>7} {'kept rows':>9} "
          f"{'CPU before':>10} {'CPU after':>9} {'change':>7} {'wall before':>11} {'wall after':>10}  identical")
    for size, placement, npos, ndet, nfit, kept, c0, c1, w0, w1, same in rows:
        print(f"{size:>6} {placement:<8} {npos:9d} {ndet:10d} {nfit:7d} {kept:9d} {c0:10.1f} {c1:9.1f} "
              f"{100 * (c1 / c0 - 1):+6.0f}% {w0:11.1f} {w1:10.1f}  "
              f"{'not checked' if same is None else 'yes' if same else 'NO'}")
    if args.skip_before:
        print("--skip-before: the before run (every detection model-fitted) was not measured, nor the identity")
    return 0


if __name__ == "__main__":
    sys.exit(main())
