"""A tile's coadd pixel grid, from DESDM's tile geometry table: what a single-epoch set is re-coadded onto.

DESDM's coadd pipeline takes a tile's grid from ``COADDTILE_GEOM`` (``RA_CENT``, ``DEC_CENT``,
``PIXELSCALE``, ``NAXIS1``, ``NAXIS2``; DarkEnergySurvey/MEPipelineAppIntg coadd_query.py
``query_coadd_geometry``, from ``<schema>.coaddtile_geom``), and SWarps every tile onto it
with ``CENTER`` the tile centre. Single-epoch injection re-coadds onto the same grid, so
``balrog-inputs --single-epoch`` reads each tile's row and records the grid in the manifest;
the fetch copies it into the tile's ``se_set.json``. A real DES tile's row is the 10000^2 grid
at 0.263"; a synthetic survey's (the demo's, the tests') is its own smaller one, so its
re-coadd is the size of its images, not 10000^2 pixels of empty sky.

A tile without a row gets the DES tiling's grid (:func:`balrog_runner.sky.geometry.des_tile`:
the same 10000^2 grid a real row has), recorded as such; a name that is not a tile of the
tiling either has no grid, and ``balrog-inputs`` fails naming it. A row that is not a grid (no
positive size or scale, a non-finite centre) is an error naming the tile and the table;
two rows for one tile are too, unless they agree.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import sqlalchemy as sa

from ..errors import InputFileError, TileError
from ..sky import geometry
from .desdm import DesdmTables, chunks
from .single_epoch import CoaddGrid

log = logging.getLogger(__name__)

#: Where a manifest's grid came from (its ``source``).
FROM_TABLE = "COADDTILE_GEOM"
FROM_TILING = "DES tiling"
GRID_SOURCES = (FROM_TABLE, FROM_TILING)


def tiling_grid(tile: str) -> CoaddGrid:
    """The DES tiling's grid of ``tile`` (10000^2 at 0.263", centred on the tile's centre)."""
    t = geometry.des_tile(tile)
    return CoaddGrid(ra=t.ra_cent, dec=t.dec_cent, naxis1=t.naxis1, naxis2=t.naxis2, pixel_scale=t.pixelscale)


def grid_from_row(row: Mapping, where: str) -> CoaddGrid:
    """A :class:`CoaddGrid` of one ``COADDTILE_GEOM`` row; an InputFileError naming ``where`` if it is none."""
    try:
        ra, dec, scale = (float(row[k]) for k in ("ra_cent", "dec_cent", "pixelscale"))
        n1, n2 = (row[k] for k in ("naxis1", "naxis2"))
        ok_sizes = all(isinstance(n, int | float) and float(n).is_integer() and n > 0 for n in (n1, n2))
    except (KeyError, TypeError, ValueError):
        ok_sizes = False
        ra = dec = scale = math.nan
        n1 = n2 = None
    if not (ok_sizes and math.isfinite(ra) and -90.0 <= dec <= 90.0 and math.isfinite(scale) and scale > 0):
        shown = {k: row.get(k) for k in ("ra_cent", "dec_cent", "pixelscale", "naxis1", "naxis2")}
        raise InputFileError(f"{where}: {shown} is not a tile grid (needs a finite centre, PIXELSCALE > 0 "
                             "arcsec and NAXIS1, NAXIS2 > 0 pixels)")
    return CoaddGrid(ra=ra % 360.0, dec=dec, naxis1=int(n1), naxis2=int(n2), pixel_scale=scale)


def grid_query(t: DesdmTables) -> sa.Select:
    """The grid columns of the tiles' ``COADDTILE_GEOM`` rows; binds ``tiles`` (expanding)."""
    g = t.coaddtile_geom
    return sa.select(g.c.tilename, g.c.ra_cent, g.c.dec_cent, g.c.pixelscale, g.c.naxis1, g.c.naxis2).where(
        g.c.tilename.in_(sa.bindparam("tiles", expanding=True)))


def lookup_grids(conn: sa.Connection, t: DesdmTables, tiles: Sequence[str], chunk: int, label: str
                 ) -> tuple[dict[str, CoaddGrid], dict[str, str]]:
    """Each tile's grid and where it came from (:data:`GRID_SOURCES`), one query per chunk of tiles.

    ``label`` names the tables in errors (schema, prefix). A tile with no row that is not a
    tile of the DES tiling either has no grid (it is left out of both).
    """
    g = t.coaddtile_geom
    query = grid_query(t)
    grids: dict[str, CoaddGrid] = {}
    for part in chunks(tiles, chunk):
        for row in conn.execute(query, {"tiles": list(part)}).mappings():
            tile = str(row["tilename"]).strip()
            grid = grid_from_row(row, f"tile {tile} in {g.name} ({label})")
            if tile in grids and grids[tile] != grid:
                raise InputFileError(f"tile {tile} has two different rows in {g.name} ({label}): "
                                     f"{grids[tile].as_dict()} and {grid.as_dict()}")
            grids[tile] = grid
    sources = {tile: FROM_TABLE for tile in grids}
    missing = [tile for tile in tiles if tile not in grids]
    for tile in missing:
        try:
            grids[tile] = tiling_grid(tile)
        except TileError:
            continue  # no grid: the caller names the tile with its other problems
        sources[tile] = FROM_TILING
    if missing:
        log.warning("%d tile(s) have no row in %s (%s); their re-coadd grid is the DES tiling's 10000^2: %s",
                    len(missing), g.name, label, ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
    return grids, sources


__all__ = ["FROM_TABLE", "FROM_TILING", "GRID_SOURCES", "grid_from_row", "grid_query", "lookup_grids", "tiling_grid"]
