"""Benchmark the build-time position check of ``balrog-jobs``: headers only against every row.

``balrog-jobs`` used to open each tile's position file and read its header; it now also
reads every row with the node's reader (finite positions on the sky) and plans the tile's
realizations with the node's code. Prints, for N real DES tiles with ``ngal x realizations``
positions each (``balrog-positions --pertile``), the wall time of both passes over the same
files in the same run, cold-ish (first pass after writing) and warm (page cache).

    .venv/bin/python benchmarks/preflight.py [--tiles 1000] [--ngal 1000] [--realizations 10]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

from balrog_runner.campaign import preflight
from balrog_runner.campaign.config import Config
from balrog_runner.campaign.config_keys import default_run
from balrog_runner.sky import geometry, positions


def campaign(posdir: Path, tiles: list[str], ngal: int, realizations: int) -> Config:
    run = default_run()
    run.update(pos=str(posdir), ngal=ngal, realizations=realizations)
    return Config(run=run, balrog={}, db={}, tiles=tiles)


def time_pass(cfg: Config, rows: bool) -> float:
    t0 = time.perf_counter()
    for tile in cfg.tiles:
        path = Path(cfg.run["pos"]) / f"{tile}.fits"
        preflight.check_position_header(cfg, path)
        if rows:
            preflight.check_position_rows(cfg, tile, path)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=1000, help="number of tiles (default: %(default)s)")
    parser.add_argument("--ngal", type=int, default=1000, help="objects per realization (default: %(default)s)")
    parser.add_argument("--realizations", type=int, default=10, help="realizations per tile (default: %(default)s)")
    args = parser.parse_args()

    tiles = list(itertools.islice((t for t in geometry.des_tiling() if -60 < t.dec_cent < 0), args.tiles))
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        posdir = Path(tmp) / "pos"
        params = positions.PositionParams(seed=1, pertile=args.ngal * args.realizations)
        t0 = time.perf_counter()
        positions.run_campaign(lambda: tiles, params, posdir)
        write = time.perf_counter() - t0
        cfg = campaign(posdir, [t.tilename for t in tiles], args.ngal, args.realizations)
        size = sum(p.stat().st_size for p in posdir.glob("*.fits"))
        results = []
        for label in ("first", "warm"):
            results.append((label, time_pass(cfg, rows=False), time_pass(cfg, rows=True)))
    print(f"{len(tiles)} position files of {args.ngal * args.realizations} rows ({size / 2**20:.0f} MiB, written "
          f"in {write:.1f} s)")
    print(f"{'pass':<8}{'headers only [s]':>18}{'headers + rows + plan [s]':>28}{'ratio':>8}{'per tile [ms]':>15}")
    for label, head, full in results:
        print(f"{label:<8}{head:>18.2f}{full:>28.2f}{full / head:>8.2f}{1000 * full / len(tiles):>15.2f}")


if __name__ == "__main__":
    main()
