#!/usr/bin/env python3
"""DES tiles of an RA/Dec box or of a HEALPix footprint, as a tile table for balrog-positions.

Two ways to say where (all angles in degrees):

- ``--ra RAMIN RAMAX --dec DECMIN DECMAX``: the tiles whose unique area overlaps the box
  (``--select centre``: whose unique-area centre lies in it). The box runs east from RAMIN
  to RAMAX, so ``--ra 350 10`` is the 20 deg wide box through RA = 0 and ``--ra 0 360`` the
  full circle.
- ``--healpix MAP.fits``: the tiles whose unique-area centre or any of its four corners falls
  in a pixel with a value > 0 (``healpy.read_map``; any NSIDE and ordering; UNSEEN is < 0).
  A footprint smaller than a tile that holds none of those five points is missed: use a
  map at least as coarse as the tiles (NSIDE <= 64, ~0.8 deg pixels) or the box mode.

The tiles come from the DES tiling rule (``balrog_runner.sky.geometry.des_tiling``; ~61,000
tiles from Dec +30 to -85), so no database is needed. The output is a Y3
``COADDTILE_GEOM``-style table (``.fits``/``.fit`` or ``.csv``; RA=0 tiles flagged
``CROSSRA0 = 'Y'``) or a plain name list (``.txt``), sorted by tile name, ready for
``balrog-positions --tiles FILE`` and ``run['tiles']``.

The tiling also covers sky DES never observed. Tiles whose unique-area centre lies outside
the DES wide-field footprint (the final "round19" outline, ``balrog_runner.sky.footprint``) get a
warning on stderr, since DESDM has no coadd images for them; the output is still written
unless ``--footprint-only`` asks to keep only the tiles inside.

Examples::

    python aux/tiles_in_region.py --ra 350 10 --dec -1 1 -o stripe82-bit.fits
    python aux/tiles_in_region.py --healpix footprint_nside64.fits -o footprint-tiles.csv
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from balrog_runner.atomic import atomic_write_text  # noqa: E402
from balrog_runner.errors import BalrogError, ConfigError, InputFileError  # noqa: E402
from balrog_runner.sky import footprint, geometry  # noqa: E402

PROG = "tiles_in_region.py"
log = logging.getLogger(PROG)


# ----------------------------------------------------------------------------- geometry


def ra_arc(ramin: float, ramax: float) -> tuple[float, float]:
    """(start in [0, 360), width in degrees) of the RA range going east from ramin to ramax."""
    for v in (ramin, ramax):
        if not math.isfinite(v):
            raise ConfigError(f"--ra values must be finite degrees, got {ramin} {ramax}")
    span = ramax - ramin
    if span >= 360.0:
        return 0.0, 360.0
    width = span % 360.0
    if width == 0.0:
        raise ConfigError(f"--ra {ramin:g} {ramax:g} is an empty range (use 0 360 for the full circle)")
    return ramin % 360.0, width


def _arcs_overlap(a: float, wa: float, b: float, wb: float) -> bool:
    """Whether the half-open RA arcs [a, a+wa) and [b, b+wb) share a positive length."""
    return (a - b) % 360.0 < wb or (b - a) % 360.0 < wa


def _in_arc(ra: float, start: float, width: float) -> bool:
    return (ra - start) % 360.0 < width or width >= 360.0


def unique_centre(tile: geometry.Tile) -> tuple[float, float]:
    """Centre of a tile's unique area (RA, Dec) in degrees, RA in [0, 360)."""
    return (tile.ra_lower + tile.ra_width / 2.0) % 360.0, (tile.udecmin + tile.udecmax) / 2.0


def unique_corners(tile: geometry.Tile) -> list[tuple[float, float]]:
    """The four corners of a tile's unique area (RA in [0, 360), Dec), degrees."""
    lo = tile.ra_lower
    hi = (lo + tile.ra_width) % 360.0
    return [(lo, tile.udecmin), (hi, tile.udecmin), (lo, tile.udecmax), (hi, tile.udecmax)]


def tiles_in_box(ramin: float, ramax: float, decmin: float, decmax: float, select: str = "overlap",
                 tiling: Iterable[geometry.Tile] | None = None) -> list[geometry.Tile]:
    """DES tiles of an RA/Dec box (degrees; RA from ramin east to ramax, may wrap through 0).

    ``select='overlap'``: unique area and box share a positive area; ``'centre'``: the
    unique-area centre lies in the box (each sky point then has at most one tile).
    """
    if not decmin < decmax:
        raise ConfigError(f"--dec {decmin:g} {decmax:g}: DECMIN must be below DECMAX (degrees)")
    if decmin < -90.0 or decmax > 90.0:
        raise ConfigError(f"--dec {decmin:g} {decmax:g}: declinations lie within -90..90 degrees")
    if select not in ("overlap", "centre"):
        raise ConfigError(f"select {select!r}: allowed overlap, centre")
    start, width = ra_arc(ramin, ramax)
    out = []
    for tile in geometry.des_tiling() if tiling is None else tiling:
        if select == "overlap":
            if tile.udecmax <= decmin or tile.udecmin >= decmax:
                continue
            if _arcs_overlap(tile.ra_lower, tile.ra_width, start, width):
                out.append(tile)
        else:
            ra, dec = unique_centre(tile)
            if decmin <= dec < decmax and _in_arc(ra, start, width):
                out.append(tile)
    return sorted(out, key=lambda t: t.tilename)


def read_healpix_map(path: str | Path, field: int = 0):
    """(values in RING order, nside) of a HEALPix map FITS file."""
    import healpy as hp

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"HEALPix map {path} does not exist")
    try:
        from astropy.io import fits

        with fits.open(path) as hdus:
            header = hdus[1].header if len(hdus) > 1 else hdus[0].header
        partial = str(header.get("INDXSCHM", "IMPLICIT")).strip().upper() == "EXPLICIT"
        values = hp.read_map(str(path), field=field, dtype=None, partial=partial)
    except Exception as exc:  # healpy raises a zoo (OSError, ValueError, KeyError, IndexError)
        raise InputFileError(f"cannot read HEALPix map {path} (field {field}): {exc}") from None
    values = np.asarray(values)
    return values, hp.npix2nside(values.size)


def tiles_in_healpix(values: np.ndarray, nest: bool = False,
                     tiling: Iterable[geometry.Tile] | None = None) -> list[geometry.Tile]:
    """DES tiles whose unique-area centre or a corner lies in a pixel > 0 of a HEALPix map."""
    import healpy as hp

    values = np.asarray(values)
    nside = hp.npix2nside(values.size)
    tiles = list(geometry.des_tiling() if tiling is None else tiling)
    points = np.array([[unique_centre(t), *unique_corners(t)] for t in tiles], dtype=float)  # (n, 5, 2)
    pix = hp.ang2pix(nside, points[..., 0], points[..., 1], nest=nest, lonlat=True)
    good = np.asarray(values[pix] > 0, dtype=bool)  # NaN and UNSEEN (-1.6e30) are not > 0
    keep = good.any(axis=1)
    return sorted((t for t, k in zip(tiles, keep, strict=True) if k), key=lambda t: t.tilename)


def outside_footprint(tiles: Sequence[geometry.Tile]) -> list[geometry.Tile]:
    """The tiles whose unique-area centre lies outside the DES round19 footprint."""
    if not tiles:
        return []
    centres = np.array([unique_centre(t) for t in tiles], dtype=float)
    inside = footprint.in_des_footprint(centres[:, 0], centres[:, 1])
    return [t for t, ok in zip(tiles, inside, strict=True) if not ok]


def check_footprint(tiles: list[geometry.Tile], where: str,
                    footprint_only: bool = False) -> list[geometry.Tile]:
    """Warn about tiles outside the DES footprint (DESDM has no coadds there); the tiles to write.

    Without ``footprint_only`` every tile is kept (a warning, not an error: the user may know
    better, e.g. a future or a special survey area). With it, only the tiles inside are kept,
    and a region with none inside is an error.
    """
    outside = outside_footprint(tiles)
    fp = f"the DES wide-field footprint ({footprint.FOOTPRINT_NAME})"
    if footprint_only:
        if len(outside) == len(tiles):
            raise ConfigError(f"no DES tile in {where} lies inside {fp} (--footprint-only)")
        dropped = {t.tilename for t in outside}
        if dropped:
            log.info("dropped %d of %d tiles outside %s", len(dropped), len(tiles), fp)
        return [t for t in tiles if t.tilename not in dropped]
    if outside and len(outside) == len(tiles):
        log.warning("%s lies outside %s: DES has no coadd images there (%d tiles written anyway)",
                    where, fp, len(tiles))
    elif outside:
        names = ", ".join(t.tilename for t in outside[:5]) + (", ..." if len(outside) > 5 else "")
        log.warning("%d of %d tiles in %s lie outside %s, where DES has no coadd images: %s "
                    "(written anyway; --footprint-only keeps only the tiles inside)",
                    len(outside), len(tiles), where, fp, names)
    return tiles


def write_tiles(tiles: Sequence[geometry.Tile], path: str | Path) -> Path:
    """A Y3 table (.fits/.fit/.csv, :func:`geometry.write_tile_table`) or a name list (.txt)."""
    path = Path(path)
    if path.suffix.lower() == ".txt":
        return atomic_write_text(path, "".join(f"{t.tilename}\n" for t in tiles))
    return geometry.write_tile_table(tiles, path)


# ----------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0],
                                epilog="Angles in degrees. See the module docstring for the selection rules.")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--ra", nargs=2, type=float, metavar=("RAMIN", "RAMAX"),
                       help="RA range in degrees, east from RAMIN to RAMAX (350 10 wraps through 0; 0 360 = all)")
    where.add_argument("--healpix", metavar="MAP", help="HEALPix map FITS file; pixels > 0 are the footprint")
    p.add_argument("--dec", nargs=2, type=float, metavar=("DECMIN", "DECMAX"),
                   help="Dec range in degrees (with --ra; default -90 90)")
    p.add_argument("--select", choices=("overlap", "centre"), default="overlap",
                   help="with --ra: tiles whose unique area overlaps the box, or whose unique-area centre is "
                        "in it (default: %(default)s)")
    p.add_argument("--field", type=int, default=0, help="with --healpix: map column to read (default: %(default)s)")
    p.add_argument("--footprint-only", action="store_true",
                   help="keep only the tiles whose unique-area centre lies inside the DES wide-field "
                        "footprint (round19); default: keep all and warn about those outside")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="tile table: .fits/.fit or .csv (Y3 columns, degrees), or .txt (names, one a line)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.ra is not None:
            decmin, decmax = args.dec if args.dec is not None else (-90.0, 90.0)
            tiles = tiles_in_box(args.ra[0], args.ra[1], decmin, decmax, args.select)
            where = f"RA {args.ra[0]:g}..{args.ra[1]:g}, Dec {decmin:g}..{decmax:g} deg"
        else:
            if args.dec is not None:
                raise ConfigError("--dec goes with --ra, not with --healpix")
            values, nside = read_healpix_map(args.healpix, args.field)
            tiles = tiles_in_healpix(values)
            where = f"{args.healpix} (NSIDE {nside}, {int(np.sum(values > 0))} pixels > 0)"
        if not tiles:
            raise ConfigError(f"no DES tile in {where}")
        ntiles = len(tiles)
        tiles = check_footprint(tiles, where, args.footprint_only)
        out = write_tiles(tiles, args.output)
    except BalrogError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    if not args.quiet:
        area = sum(t.area_deg2 for t in tiles)
        ncross = sum(t.crossra0 for t in tiles)
        dropped = f", {ntiles - len(tiles)} outside the DES footprint dropped" if ntiles > len(tiles) else ""
        print(f"{PROG}: {len(tiles)} tiles ({area:.2f} deg^2 of unique area, {ncross} crossing RA=0{dropped}) "
              f"in {where} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
