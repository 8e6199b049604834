"""What keeping objects off masked pixels costs a realization: the memory-mapped lookup of the
MSK and WGT pixels under each object (:mod:`balrog_runner.injection.masking`) against reading both planes
of every band in full, on the tile ``measure_cost.py`` caches.

Usage (from the repository root)::

    .venv/bin/python benchmarks/mask_lookup.py --size 10000 --workdir /tmp/bm10k

"cold" drops the page cache first (root only; skipped otherwise): the first realization after a
fetch finds the pages cached by funpack and nosim, so "warm" is the usual case.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
for p in (str(HERE.parent), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

import fitsio  # noqa: E402
from measure_cost import TILE, tile_files  # noqa: E402

from balrog_runner.injection import masking  # noqa: E402
from balrog_runner.sky import geometry, positions

BANDS = ("g", "r", "i", "z", "Y")


def drop_caches() -> bool:
    if os.geteuid() != 0:
        return False
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as fh:
        fh.write("3\n")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2048, help="tile side, pixels (DES: 10000)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/balrog-bench-measure"))
    parser.add_argument("--spacing", type=float, default=30.0, help="lattice spacing, arcsec (default 30)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    tile = tile_files(args.workdir, args.size)
    images = {b: Path(tile.images[b]) for b in BANDS}
    geo = geometry.des_tile(TILE)
    geo = geo if args.size == geometry.NAXIS else geometry.cutout_tile(geo, args.size, margin=16)
    grid = next(positions.iter_lattice(geo, positions.PositionParams(seed=1, lattice=args.spacing, realizations=1)))
    rows = []
    for label, cold in (("lookup, cold cache", True), ("lookup, warm cache", False)):
        if cold and not drop_caches():
            continue
        t0 = time.perf_counter()
        masked = masking.masked_centres(images, grid["ra"], grid["dec"], None)
        rows.append((label, time.perf_counter() - t0, int(masked.sum())))
    t0 = time.perf_counter()
    for b in BANDS:
        fitsio.read(str(images[b]), ext=1)
        fitsio.read(str(images[b]), ext=2)
    rows.append(("read MSK + WGT in full (warm)", time.perf_counter() - t0, None))
    print(f"\n{len(grid)} objects ({args.spacing:g}\" lattice), {len(BANDS)} bands of {args.size}^2")
    print("| what | seconds | masked |\n|---|---|---|")
    for label, seconds, n in rows:
        print(f"| {label} | {seconds:.2f} | {'' if n is None else n} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
