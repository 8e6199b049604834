"""``balrog-merge``: a campaign's catalogs as one file per tile, or one file for the campaign.

Each tile's realizations (truth, match, sim and nosim catalogs) are joined on
``balrog_index`` (balrog_runner.merge) into ``<TILE>/<TILE>_merged.fits`` (or ``--outdir``,
``--format``), or all tiles into the one ``--output`` file; ``--columns`` keeps only the
columns an analysis needs. Re-running skips what is up to date and finishes what a killed
run left. ``--remove-catalogs`` deletes a tile's per-realization files once its merged file
was read back and found to hold them exactly (what ``run['merge-tile']`` does on the node).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from ..errors import BalrogError, ConfigError, DiskError
from ..leftovers import remove_stale_temporaries
from ..merge import campaign as merge_campaign
from ..merge import formats
from ..merge import tile as merge_tile
from ..merge.join import ColumnSelection
from ..merge.read import merged_tile_path
from ..node.tilelock import TileLock
from ._common import add_logging_options, run_command

PROG = "balrog-merge"
log = logging.getLogger(PROG)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Merge a campaign's per-realization catalogs (truth, match, sim, nosim, joined on "
        "balrog_index) into one file per tile, or one file for the campaign: FITS, HDF5 or Parquet.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="campaign outdir(s) or tile directories")
    where = p.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", metavar="FILE",
                       help="one file for every tile found (format from the suffix: .fits, .h5/.hdf5, .parquet; "
                            "default: one file per tile)")
    where.add_argument("--outdir", metavar="DIR",
                       help="write the per-tile files to DIR/<TILE>_merged.<ext> (default: each tile's own "
                            "directory, <TILE>/<TILE>_merged.<ext>, under the tile's lock); one balrog-merge per "
                            "DIR at a time")
    p.add_argument("--format", choices=formats.FORMATS,
                   help="fits, hdf5 (h5py) or parquet (pyarrow) (default: --output's suffix, else fits)")
    p.add_argument("--columns", action="append", default=[], metavar="LIST",
                   help="keep only these columns: comma-separated names or shell patterns, case-insensitive; a "
                        "base name keeps every band (MAG_AUTO -> MAG_AUTO_G ... MAG_AUTO_DET); repeatable "
                        "(default: every column)")
    p.add_argument("--columns-file", metavar="FILE", help="names or patterns, one per line (# comments)")
    p.add_argument("--remove-catalogs", action="store_true",
                   help="after a tile's own <TILE>_merged.fits (every column) is written and read back, delete its "
                        "per-realization catalogs, as run['merge-tile'] does")
    p.add_argument("--force", action="store_true", help="merge again where the merged file is up to date")
    add_logging_options(p)
    return p


def _selection(args: argparse.Namespace) -> ColumnSelection | None:
    values = list(args.columns)
    if args.columns_file:
        path = Path(args.columns_file)
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise ConfigError(f"--columns-file {path}: {exc.strerror or exc}") from None
        values += [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]
        if not values:
            raise ConfigError(f"--columns-file {path} lists no column")
    return ColumnSelection.parse(values) if values else None


def _action(args: argparse.Namespace) -> int:
    select = _selection(args)
    fmt = args.format or (formats.format_for(args.output) if args.output else "fits")
    formats.require_library(fmt)
    if args.remove_catalogs and (args.output or args.outdir or select is not None or fmt != "fits"):
        raise ConfigError("--remove-catalogs needs each tile's own FITS file with every column: no --output, "
                          "--outdir, --columns or another --format")
    tiles = merge_campaign.find_tiles(args.paths)
    if args.output:
        return _one_file(args, tiles, fmt, select)
    return _per_tile(args, tiles, fmt, select)


def _one_file(args, tiles, fmt: str, select) -> int:
    output = Path(args.output)
    parts = merge_campaign.parts_dir(output)
    parts.mkdir(parents=True, exist_ok=True)
    with TileLock.acquire(parts, f"merge of {output.name}"):
        remove_stale_temporaries(output.parent, {output.name})  # a killed run's, ours: we hold the lock
        done = merge_campaign.merge_campaign(tiles, output, fmt, select, force=args.force)
    rows = ", ".join(f"{n} {t}" for t, n in done.rows.items())
    print(f"{done.status}: {output} ({done.tiles} tiles, {done.realizations} realizations{'; ' + rows if rows else ''}"
          f"; {done.parts_made} tile parts made, {done.parts_reused} reused"
          + (f"; {len(done.skipped)} tiles without a complete realization" if done.skipped else "") + ")")
    return 0


def _per_tile(args, tiles, fmt: str, select) -> int:
    merged = up = removed = 0
    failed: list[tuple[str, str]] = []
    disk_full = False
    for tile_dir, tile in tiles:
        output = Path(args.outdir) / merged_tile_path(tile_dir, tile, fmt).name if args.outdir else None
        try:
            if output is None:  # writing into the tile directory: not while a runner works there
                with TileLock.acquire(tile_dir, tile):
                    remove_stale_temporaries(tile_dir, {merged_tile_path(tile_dir, tile, fmt).name, "catalogs"})
                    done = merge_tile.merge_tile(tile_dir, tile, fmt=fmt, select=select, force=args.force)
                    if args.remove_catalogs:
                        removed += merge_tile.remove_catalogs(tile_dir, done)
            else:  # one balrog-merge per --outdir at a time
                remove_stale_temporaries(output.parent, {output.name})
                done = merge_tile.merge_tile(tile_dir, tile, output=output, fmt=fmt, select=select, force=args.force)
        except BalrogError as exc:
            log.error("tile %s: %s", tile, exc)
            failed.append((tile, str(exc)))
            disk_full = disk_full or isinstance(exc, DiskError)
            continue
        merged += done.status == "merged"
        up += done.status == "up to date"
    print(f"merged {merged} tiles; {up} up to date; {len(failed)} failed"
          + (f"; removed {removed} per-realization catalogs" if args.remove_catalogs else ""))
    for tile, why in failed:
        print(f"  failed {tile}: {why}")
    if not failed:
        return 0
    return DiskError.exit_code if disk_full else 1  # a full disk needs the user, a busy tile a later run


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(PROG, build_parser(), _action, argv,
                       outputs=lambda a: [Path(a.output).parent if a.output else a.outdir])


if __name__ == "__main__":
    raise SystemExit(main())
