"""``balrog-tiles``: turn a list of DES tile names into a full Y3 geometry table.

The geometry (centre, unique-area bounds, CROSSRA0, WCS) comes from the DES tiling rule,
or from the input table itself when it already has Y1/Y3 bounds.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError
from ..sky import geometry
from ._common import add_logging_options, run_command

PROG = "balrog-tiles"
log = logging.getLogger(PROG)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Turn a list of DES tile names into a full Y3 geometry table (centre, "
        "unique-area bounds, CROSSRA0, WCS), from the DES tiling rule or the input table's own bounds.")
    p.add_argument("--tiles", metavar="FILE", help="tile list or table (FITS or CSV/text; Y1, Y3 or names only)")
    p.add_argument("--tilecol", metavar="NAME", help="tile-name column of --tiles (default: tilename, any case)")
    p.add_argument("--tile", "--tilenames", dest="tilenames", metavar="NAME", nargs="+", action="extend",
                   help="DES tile names (DESHHMM+DDMM); with --tiles, a subset of it (repeatable)")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="output table; .fits/.fit for FITS, .csv for CSV (angles in degrees, PIXELSCALE in arcsec/pixel)")
    add_logging_options(p)
    return p


def load_tiles(tiles: str | None, tilecol: str | None, tilenames: Sequence[str] | None) -> list[geometry.Tile]:
    """Tiles from ``--tiles`` and/or ``--tilenames`` (shared with ``balrog-positions``)."""
    if tiles is None and not tilenames:
        raise ConfigError("give --tiles FILE and/or --tilenames NAME ...")
    if tiles is None:
        if tilecol is not None:
            raise ConfigError("--tilecol needs --tiles")
        names = list(dict.fromkeys(tilenames))
        return [geometry.des_tile(n) for n in names]
    table = geometry.read_tile_table(tiles, tilecol=tilecol)
    if tilenames:
        return geometry.select_tiles(table, dict.fromkeys(tilenames), f"tile file {tiles}")
    return table


def _action(args: argparse.Namespace) -> int:
    tiles = load_tiles(args.tiles, args.tilecol, args.tilenames)
    path = geometry.write_tile_table(tiles, args.output)
    ncross = sum(t.crossra0 for t in tiles)
    print(f"{PROG}: wrote {len(tiles)} tiles ({ncross} crossing RA=0) to {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(PROG, build_parser(), _action, argv, outputs=lambda a: [Path(a.output).parent])


if __name__ == "__main__":
    raise SystemExit(main())
