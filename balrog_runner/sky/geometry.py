"""DES tile geometry: tile names, the DES tiling, unique areas and tile WCS (offline).

Everything here works without the DESDM database. The DES tiling (DESIGN.md section 2) is
rebuilt from its rule, so a list of tile names is enough to know every tile's centre,
unique-area bounds and WCS; tile tables in the DESDM conventions (Y1 lower-case ``urall``...,
Y3 ``COADDTILE_GEOM`` upper-case ``URAMIN``... with ``CROSSRA0``) are read as well.

The gotcha this module exists to get right: a tile whose unique area straddles RA = 0
(e.g. DES2359+0001). :class:`Tile` always stores such a tile in the Y3 ``CROSSRA0``
convention -- ``uramin`` is the bound just past 0, ``uramax`` the bound just below 360, and
the unique area is ``ra >= uramax or ra < uramin`` -- whatever convention the table used.

Another gotcha: the ``ra, dec`` columns of DESDM's name lists (tiles/*.fits) are the sky
position of pixel (5000, 5000), half a pixel (~3.7e-5 deg) from the true centre at CRPIX
5000.5; the tiling's centres agree with them to better than 1e-4 deg.

All angles are in degrees unless a name says otherwise.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..atomic import atomic_path
from ..errors import ConfigError, InputFileError, OutputError, TileError

log = logging.getLogger(__name__)

#: A DES coadd tile name: ``DESHHMM+DDMM`` or ``DESHHMM-DDMM`` (centre RA in hours and
#: minutes, Dec in degrees and arcminutes, truncated).
TILENAME_RE = re.compile(r"^DES(?P<hh>[0-2]\d)(?P<mm>[0-5]\d)(?P<sign>[+-])(?P<dd>[0-8]\d)(?P<am>[0-5]\d)$")

#: Pixel scale of a DES coadd tile, arcsec/pixel.
PIXELSCALE = 0.263
#: Size of a DES coadd tile, pixels per axis.
NAXIS = 10000
#: Width of a full tile, degrees (0.263" x 10000).
TILE_WIDTH = PIXELSCALE * NAXIS / 3600.0
#: First ring centre and the southern limit of the tiling, degrees.
DEC_START = 30.0
DEC_END = -85.0
#: RA of the first tile centre of every ring, degrees.
RA_START = 275.0

# Names truncate the centre: add this (arcmin / time-minutes) before flooring so that a
# centre sitting exactly on a minute (DES2359+0001 is at Dec = 1/60 deg) is not pushed
# below it by float rounding.
_TRUNC_EPS = 1e-7


def is_des_tilename(name: str) -> bool:
    """True when ``name`` has the form of a DES tile name (no shell metacharacters possible)."""
    return isinstance(name, str) and TILENAME_RE.fullmatch(name) is not None


def overlap_deg(dec: float) -> float:
    """Overlap between neighbouring tiles at declination ``dec`` (degrees), in degrees.

    1 arcmin for |Dec| < 74, 2' below 82.5, 5' below 87.6 and 10' beyond (DES tiling rule).
    """
    a = abs(dec)
    if a < 74.0:
        return 1.0 / 60.0
    if a < 82.5:
        return 2.0 / 60.0
    if a < 87.6:
        return 5.0 / 60.0
    return 10.0 / 60.0


# ---------------------------------------------------------------------------------------
# Tiles


@dataclass(frozen=True)
class Tile:
    """One DES coadd tile with the meaning of DESDM's Y3 ``COADDTILE_GEOM`` row.

    ``uramin <= ra < uramax`` and ``udecmin <= dec < udecmax`` is the unique area (degrees),
    except when ``crossra0``: then ``uramin`` is the upper bound just past RA = 0 and
    ``uramax`` the lower bound just below 360, and the area is ``ra >= uramax or ra < uramin``.
    Gotcha: the last tile of a ring (just west of RA 275) closes onto the first tile's lower
    bound, so its unique area is narrower than the others and may not contain its own centre.
    ``pixelscale`` is arcsec/pixel; ``crpix1/2`` are 1-based FITS pixels.
    """

    tilename: str
    ra_cent: float
    dec_cent: float
    uramin: float
    uramax: float
    udecmin: float
    udecmax: float
    crossra0: bool = False
    pixelscale: float = PIXELSCALE
    naxis1: int = NAXIS
    naxis2: int = NAXIS
    crpix1: float = (NAXIS + 1) / 2.0
    crpix2: float = (NAXIS + 1) / 2.0

    @property
    def ra_lower(self) -> float:
        """Lower (western) RA bound of the unique area in [0, 360), degrees."""
        return self.uramax if self.crossra0 else self.uramin

    @property
    def ra_width(self) -> float:
        """RA extent of the unique area, degrees (always positive, RA = 0 handled)."""
        if self.crossra0:
            return (360.0 - self.uramax) + self.uramin
        return self.uramax - self.uramin

    @property
    def area_deg2(self) -> float:
        """Solid angle of the unique area, deg^2: (180/pi) dRA (sin dec2 - sin dec1)."""
        return unique_area_deg2(self)

    def contains(self, ra: float | np.ndarray, dec: float | np.ndarray) -> bool | np.ndarray:
        """Whether (ra, dec) in degrees lies in the half-open unique area.

        Half-open bounds (``[min, max)`` in RA and Dec) make a point on an edge shared by
        two tiles belong to exactly one of them. RA is taken modulo 360.
        """
        ra = np.mod(ra, 360.0)
        dec = np.asarray(dec)
        in_dec = (dec >= self.udecmin) & (dec < self.udecmax)
        if self.crossra0:
            in_ra = (ra >= self.uramax) | (ra < self.uramin)
        else:
            in_ra = (ra >= self.uramin) & (ra < self.uramax)
        res = in_dec & in_ra
        return bool(res) if np.ndim(res) == 0 else res

    def wcs_header(self, naxis1: int | None = None, naxis2: int | None = None) -> fits.Header:
        """A TAN WCS header centred on the tile at its pixel scale (no rotation).

        Without arguments this is the full DES tile (10000 x 10000, CRPIX 5000.5). A smaller
        synthetic tile (``naxis1`` x ``naxis2`` pixels) keeps the centre and the pixel scale
        and puts CRPIX at its own centre, ``(n + 1) / 2``.
        """
        n1 = self.naxis1 if naxis1 is None else int(naxis1)
        n2 = self.naxis2 if naxis2 is None else int(naxis2)
        if n1 <= 0 or n2 <= 0:
            raise TileError(f"image size must be positive pixels, got {n1} x {n2}")
        c1 = self.crpix1 if naxis1 is None else (n1 + 1) / 2.0
        c2 = self.crpix2 if naxis2 is None else (n2 + 1) / 2.0
        scale = self.pixelscale / 3600.0
        h = fits.Header()
        h["NAXIS"] = 2
        h["NAXIS1"] = (n1, "pixels")
        h["NAXIS2"] = (n2, "pixels")
        h["CTYPE1"] = "RA---TAN"
        h["CTYPE2"] = "DEC--TAN"
        h["CUNIT1"] = "deg"
        h["CUNIT2"] = "deg"
        h["CRVAL1"] = (float(self.ra_cent), "tile centre RA, deg")
        h["CRVAL2"] = (float(self.dec_cent), "tile centre Dec, deg")
        h["CRPIX1"] = (float(c1), "1-based pixel")
        h["CRPIX2"] = (float(c2), "1-based pixel")
        h["CD1_1"] = -scale
        h["CD1_2"] = 0.0
        h["CD2_1"] = 0.0
        h["CD2_2"] = scale
        h["EQUINOX"] = 2000.0
        h["RADESYS"] = "ICRS"
        h["TILENAME"] = self.tilename
        return h


def cutout_tile(tile: Tile, naxis1: int, naxis2: int | None = None, margin: float = 0.0) -> Tile:
    """A smaller tile around ``tile``'s centre whose unique area is its own image footprint.

    For synthetic surveys (tests, the demo) whose images are ``naxis1`` x ``naxis2`` pixels
    instead of 10000^2: positions generated inside this tile's unique area all land on the
    image, at least ``margin`` pixels from its edges. The name, centre and pixel scale stay
    those of the real DES tile, so ``balrog_index`` values and WCS are the real ones.
    """
    naxis2 = naxis1 if naxis2 is None else naxis2
    if naxis1 <= 2 * margin or naxis2 <= 2 * margin:
        raise TileError(f"cutout of {naxis1} x {naxis2} pixels leaves nothing inside a {margin}-pixel margin")
    half_dec = (naxis2 / 2.0 - margin) * tile.pixelscale / 3600.0
    half_ra = (naxis1 / 2.0 - margin) * tile.pixelscale / 3600.0 / np.cos(np.deg2rad(tile.dec_cent))
    # An RA/Dec box is not a pixel box: its RA edges converge towards the pole and the TAN
    # projection curves them. For cutouts of a few thousand pixels the excursion is below
    # a pixel or two (about tan|dec| * size^2 * scale / 2), which the margin absorbs.
    lo, hi, cross = normalize_ra_bounds(tile.ra_cent - half_ra, tile.ra_cent + half_ra)
    return replace(
        tile, uramin=lo, uramax=hi, crossra0=cross,
        udecmin=tile.dec_cent - half_dec, udecmax=tile.dec_cent + half_dec,
        naxis1=int(naxis1), naxis2=int(naxis2), crpix1=(naxis1 + 1) / 2.0, crpix2=(naxis2 + 1) / 2.0,
    )


def unique_area_deg2(tile: Tile) -> float:
    """Solid angle of a tile's unique area in deg^2 (RA = 0 tiles handled)."""
    d1, d2 = math.radians(tile.udecmin), math.radians(tile.udecmax)
    return math.degrees(1.0) * tile.ra_width * (math.sin(d2) - math.sin(d1))


# ---------------------------------------------------------------------------------------
# Names


def parse_tilename(name: str) -> tuple[int, int]:
    """Split a DES name into (RA in whole time-minutes, signed Dec in whole arcminutes).

    The sign is kept separately from the magnitude because ``-0000`` (Dec just below 0)
    differs from ``+0000``: the Dec code is ``+a`` for ``+`` and ``-(a + 1)`` for ``-``.
    """
    m = TILENAME_RE.fullmatch(name) if isinstance(name, str) else None
    if m is None:
        raise TileError(f"{name!r} is not a DES tile name (expected DESHHMM+DDMM or DESHHMM-DDMM)")
    ra_min = int(m["hh"]) * 60 + int(m["mm"])
    if ra_min >= 24 * 60:
        raise TileError(f"{name!r} is not a DES tile name (RA hours must be below 24)")
    amin = int(m["dd"]) * 60 + int(m["am"])
    return ra_min, (amin if m["sign"] == "+" else -(amin + 1))


def _name_codes(ra: float, dec: float) -> tuple[int, int]:
    ra_min = int(math.floor((ra % 360.0) * 4.0 + _TRUNC_EPS)) % (24 * 60)
    amin = int(math.floor(abs(dec) * 60.0 + _TRUNC_EPS))
    return ra_min, (amin if dec >= 0 else -(amin + 1))


def tilename_from_centre(ra: float, dec: float) -> str:
    """The DES name of a tile centred at (ra, dec) degrees: truncated hours/minutes, deg/arcmin."""
    ra_min, dcode = _name_codes(ra, dec)
    sign = "+" if dcode >= 0 else "-"
    amin = dcode if dcode >= 0 else -dcode - 1
    return f"DES{ra_min // 60:02d}{ra_min % 60:02d}{sign}{amin // 60:02d}{amin % 60:02d}"


# ---------------------------------------------------------------------------------------
# The DES tiling


@dataclass(frozen=True)
class _Ring:
    index: int
    dec: float
    udecmin: float
    udecmax: float
    step: float  # RA step between centres, degrees
    ntiles: int

    def centre_ra(self, k: int) -> float:
        return (RA_START + k * self.step) % 360.0

    def boundary(self, j: int) -> float:
        """Lower RA bound of tile ``j`` in [0, 360); j == ntiles closes onto tile 0."""
        if j == self.ntiles:
            j = 0
        return (RA_START + (j - 0.5) * self.step) % 360.0


@functools.lru_cache(maxsize=1)
def _rings() -> tuple[_Ring, ...]:
    """All Dec rings of the DES tiling, north to south.

    Centres step by -(W - overlap) from +30 to -85, with the overlap of the ring the step
    starts from. Within a run of constant step the centre is ``start - j * step`` (one
    rounding, not an accumulated sum). Dec boundaries between rings are the midpoints of
    neighbouring centres, computed once and shared, so the rings tile the sky exactly.
    """
    decs: list[float] = []
    seg_start, seg_step, j = DEC_START, TILE_WIDTH - overlap_deg(DEC_START), 0
    while True:
        dec = seg_start - j * seg_step
        if dec < DEC_END - 1e-9:
            break
        decs.append(dec)
        step = TILE_WIDTH - overlap_deg(dec)
        if step != seg_step:
            seg_start, seg_step, j = dec, step, 0
        j += 1
    mids = [(a + b) / 2.0 for a, b in zip(decs[:-1], decs[1:], strict=True)]
    rings = []
    for i, dec in enumerate(decs):
        h = TILE_WIDTH - overlap_deg(dec)
        top = mids[i - 1] if i > 0 else dec + h / 2.0
        bottom = mids[i] if i < len(decs) - 1 else dec - h / 2.0
        step = h / math.cos(math.radians(dec))
        ntiles = math.ceil(360.0 / step - 1e-9)
        rings.append(_Ring(i, dec, bottom, top, step, ntiles))
    return tuple(rings)


@functools.lru_cache(maxsize=1)
def _ring_by_deccode() -> dict[int, _Ring]:
    return {_name_codes(0.0, r.dec)[1]: r for r in _rings()}


def _tile_from_ring(ring: _Ring, k: int) -> Tile:
    lo, hi = ring.boundary(k), ring.boundary(k + 1)
    ra = ring.centre_ra(k)
    return Tile(
        tilename=tilename_from_centre(ra, ring.dec),
        ra_cent=ra,
        dec_cent=ring.dec,
        uramin=hi if hi < lo else lo,
        uramax=lo if hi < lo else hi,
        udecmin=ring.udecmin,
        udecmax=ring.udecmax,
        crossra0=hi < lo,
    )


@functools.lru_cache(maxsize=4096)
def des_tile(name: str) -> Tile:
    """The tile called ``name`` in the DES tiling, with its unique area and WCS parameters.

    Names are truncated centres, so the ring is the one whose centre truncates to the name's
    Dec and the tile the RA step whose centre truncates to the name's RA; a well-formed
    name that no tile truncates to is a :class:`TileError`.
    """
    ra_min, dcode = parse_tilename(name)
    ring = _ring_by_deccode().get(dcode)
    if ring is not None:
        approx = ((ra_min / 4.0 - RA_START) % 360.0) / ring.step
        for k in (math.floor(approx), math.ceil(approx), math.floor(approx) - 1):
            k %= ring.ntiles
            if _name_codes(ring.centre_ra(k), 0.0)[0] == ra_min:
                return _tile_from_ring(ring, k)
    raise TileError(f"{name} is not a tile of the DES tiling (no tile centre truncates to that name)")


def des_tiling() -> Iterator[Tile]:
    """Every tile of the DES tiling, ring by ring from the north (about 80,000 tiles)."""
    for ring in _rings():
        for k in range(ring.ntiles):
            yield _tile_from_ring(ring, k)


def tile_at(ra: float, dec: float) -> Tile:
    """The DES tile whose unique area contains (ra, dec) degrees (half-open bounds)."""
    rings = _rings()
    if not rings[-1].udecmin <= dec < rings[0].udecmax:
        raise TileError(f"Dec {dec} deg is outside the DES tiling ({rings[-1].udecmin:.4f} to {rings[0].udecmax:.4f} deg)")
    ring = next(r for r in rings if r.udecmin <= dec)
    ra = ra % 360.0
    k = int(((ra - ring.boundary(0)) % 360.0) // ring.step)
    for cand in (k, k - 1, k + 1):
        tile = _tile_from_ring(ring, min(max(cand, 0), ring.ntiles - 1))
        if tile.contains(ra, dec):
            return tile
    raise AssertionError(f"no tile found for ({ra}, {dec})")  # the tiling has no gaps


def tile_number(name: str) -> int:
    """A campaign-stable integer for a DES tile name, from the name alone (0 to 15,551,999).

    ``(ra_minutes * 2 + south) * 5400 + dec_arcmin``: distinct names give distinct numbers,
    and the number never depends on which other tiles are in a list.
    """
    ra_min, dcode = parse_tilename(name)
    south = 1 if dcode < 0 else 0
    amin = dcode if dcode >= 0 else -dcode - 1
    return (ra_min * 2 + south) * 5400 + amin


# ---------------------------------------------------------------------------------------
# Tile tables

_Y3 = ("uramin", "uramax", "udecmin", "udecmax")
_Y1 = ("urall", "uraur", "udecll", "udecur")

#: Columns of a Y3 ``COADDTILE_GEOM`` table, as :func:`tiles_to_table` writes them.
Y3_COLUMNS = (
    "TILENAME", "RA_CENT", "DEC_CENT", "URAMIN", "URAMAX", "UDECMIN", "UDECMAX", "CROSSRA0",
    "PIXELSCALE", "NAXIS1", "NAXIS2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2",
    "CD1_1", "CD1_2", "CD2_1", "CD2_2",
)  # fmt: skip


def normalize_ra_bounds(lo: float, hi: float, crossra0: bool | None = None) -> tuple[float, float, bool]:
    """Bring unique-area RA bounds from any DES convention to the Y3 one.

    Accepts the Y3 ``CROSSRA0`` convention (either order), bounds above 360 or below 0
    (older tables), and Y1 ``urall > uraur`` wrapping. Returns ``(uramin, uramax, crossra0)``
    as :class:`Tile` stores them.
    """
    if crossra0:
        a, b = sorted((lo % 360.0, hi % 360.0))
        return a, b, True
    if hi > 360.0 or lo < 0.0:
        lo_w, hi_w = lo % 360.0, hi % 360.0
        if hi_w == 0.0:
            return lo_w, 360.0, False
        return hi_w, lo_w, True
    if lo > hi:  # Y1 wrapping: lower-left RA just below 360, upper-right just past 0
        return hi, lo, True
    return lo, hi, False


def _as_str(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip()


def _as_bool(value: object) -> bool:
    text = _as_str(value).upper()
    if text in ("Y", "YES", "T", "TRUE", "1"):
        return True
    if text in ("N", "NO", "F", "FALSE", "0", ""):
        return False
    raise ValueError(f"CROSSRA0 value {text!r} is not Y/N")


def _check_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"tile file {path} does not exist")
    if not path.is_file():
        raise InputFileError(f"tile file {path} is not a regular file")
    return path


def _read_table(path: Path):
    """Read a FITS or CSV/text table with astropy; a bare list of names needs no header."""
    from astropy.table import Table

    try:
        if _is_fits(path):
            return Table.read(path, format="fits", character_as_bytes=False)
        lines = [ln.strip() for ln in path.read_text().splitlines()]
        lines = [ln for ln in lines if ln and not ln.startswith("#")]
        if not lines:
            raise InputFileError(f"tile file {path} holds no tiles")
        first = re.split(r"[\s,]+", lines[0])[0].strip("'\"")
        if is_des_tilename(first):
            kwargs = {"delimiter": ","} if "," in lines[0] else {}
            return Table.read(lines, format="ascii.no_header", guess=False, **kwargs)
        return Table.read(path, format="ascii")
    except InputFileError:
        raise
    except (OSError, ValueError, TypeError, IndexError, UnicodeDecodeError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputFileError(f"cannot read tile file {path}: {msg} (expected a FITS or CSV/text table)") from exc


def _is_fits(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(9) == b"SIMPLE  ="


def _find_column(table, path: Path, tilecol: str | None) -> str:
    lower = {c.lower(): c for c in table.colnames}
    if tilecol is not None:
        if tilecol in table.colnames:
            return tilecol
        if tilecol.lower() in lower:
            return lower[tilecol.lower()]
        raise InputFileError(f"tile file {path} has no column {tilecol!r} (columns: {', '.join(table.colnames)})")
    if "tilename" in lower:
        return lower["tilename"]
    if table.colnames and table.colnames[0] == "col1":  # headerless list
        return "col1"
    raise InputFileError(
        f"tile file {path} has no 'tilename' column (columns: {', '.join(table.colnames)}); choose one with --tilecol"
    )


def _names(table, col: str, path: Path) -> list[str]:
    names = [_as_str(v) for v in table[col]]
    seen: set[str] = set()
    for i, name in enumerate(names):
        if not is_des_tilename(name):
            raise TileError(f"row {i + 1} of {path}: {name!r} is not a DES tile name (expected DESHHMM+DDMM or DESHHMM-DDMM)")
        if name in seen:
            raise TileError(f"tile {name} appears more than once in {path}")
        seen.add(name)
    return names


def read_tilenames(path: str | os.PathLike, tilecol: str | None = None) -> list[str]:
    """The tile names of a tile file (any convention), in file order, validated."""
    path = _check_path(path)
    table = _read_table(path)
    return _names(table, _find_column(table, path, tilecol), path)


def read_tile_table(path: str | os.PathLike, tilecol: str | None = None) -> list[Tile]:
    """Read a tile table (FITS or CSV/text) in any DES convention into :class:`Tile` objects.

    - Y3 ``COADDTILE_GEOM`` (``URAMIN, URAMAX, UDECMIN, UDECMAX`` [+ ``CROSSRA0``, ``RA_CENT``...],
      any case), including RA = 0 tiles stored with ``CROSSRA0 = 'Y'`` or with a bound
      beyond 360;
    - Y1 (``urall, uraur, udecll, udecur``, lower-case);
    - name-only lists (``tilename``, optionally ``ra, dec``; or a bare list of names): the
      geometry comes from the DES tiling, and given centres are checked against it.

    ``tilecol`` names the tile-name column (default: ``tilename`` in any case).
    """
    path = _check_path(path)
    table = _read_table(path)
    col = _find_column(table, path, tilecol)
    names = _names(table, col, path)
    lower = {c.lower(): c for c in table.colnames}
    if all(c in lower for c in _Y3):
        convention = "y3"
    elif all(c in lower for c in _Y1):
        convention = "y1"
    else:
        convention = "names"
    log.debug("%s: %d tiles, %s convention", path, len(names), convention)
    tiles = []
    for i, name in enumerate(names):
        try:
            if convention == "names":
                tile = des_tile(name)
                _check_centre(tile, table, lower, i, path)
            else:
                tile = _tile_from_row(name, table[i], lower, convention)
        except (ValueError, TypeError, KeyError) as exc:
            if isinstance(exc, TileError):
                raise TileError(f"row {i + 1} of {path}: {exc}") from exc
            raise InputFileError(f"row {i + 1} ({name}) of tile file {path} is malformed: {exc}") from exc
        tiles.append(tile)
    return tiles


def _check_centre(tile: Tile, table, lower: dict[str, str], i: int, path: Path) -> None:
    for rc, dc in (("ra_cent", "dec_cent"), ("ra", "dec")):
        if rc in lower and dc in lower:
            ra, dec = float(table[lower[rc]][i]), float(table[lower[dc]][i])
            dra = abs((ra - tile.ra_cent + 180.0) % 360.0 - 180.0) * math.cos(math.radians(dec))
            if not (dra < 1e-3 and abs(dec - tile.dec_cent) < 1e-3):
                log.warning("%s: %s centre (%.5f, %.5f) differs from the DES tiling's (%.5f, %.5f) deg",
                            path, tile.tilename, ra, dec, tile.ra_cent, tile.dec_cent)
            return


def _tile_from_row(name: str, row, lower: dict[str, str], convention: str) -> Tile:
    def get(key: str, default: float | None = None) -> float:
        if key not in lower:
            if default is None:
                raise KeyError(f"missing column {key}")
            return default
        value = float(row[lower[key]])
        if not math.isfinite(value):
            raise ValueError(f"{lower[key]} is not a finite number")
        return value

    if convention == "y3":
        lo, hi, d1, d2 = (get(k) for k in _Y3)
        flag = _as_bool(row[lower["crossra0"]]) if "crossra0" in lower else None
    else:
        lo, hi, d1, d2 = (get(k) for k in _Y1)
        flag = None
    uramin, uramax, cross = normalize_ra_bounds(lo, hi, flag)
    d1, d2 = min(d1, d2), max(d1, d2)
    if not (-90.0 <= d1 < d2 <= 90.0):
        raise ValueError(f"Dec bounds {d1}, {d2} are not within [-90, 90] deg")
    width = (360.0 - uramax + uramin) if cross else (uramax - uramin)
    if not 0.0 < width < 180.0:
        raise ValueError(f"RA bounds {lo}, {hi} do not make a tile")
    mid_ra = ((uramax if cross else uramin) + width / 2.0) % 360.0
    ra_key, dec_key = ("ra_cent", "dec_cent") if convention == "y3" else ("ra", "dec")
    n1 = int(get("naxis1", NAXIS))
    n2 = int(get("naxis2", NAXIS))
    return Tile(
        tilename=name,
        ra_cent=get(ra_key, mid_ra) % 360.0,
        dec_cent=get(dec_key, (d1 + d2) / 2.0),
        uramin=uramin,
        uramax=uramax,
        udecmin=d1,
        udecmax=d2,
        crossra0=cross,
        pixelscale=get("pixelscale", PIXELSCALE),
        naxis1=n1,
        naxis2=n2,
        crpix1=get("crpix1", (n1 + 1) / 2.0),
        crpix2=get("crpix2", (n2 + 1) / 2.0),
    )


def select_tiles(tiles: Sequence[Tile], names: Iterable[str], source: str) -> list[Tile]:
    """The tiles called ``names`` (in that order) from ``tiles``; unknown names are an error."""
    by_name = {t.tilename: t for t in tiles}
    out = []
    for name in names:
        if not is_des_tilename(name):
            raise TileError(f"{name!r} is not a DES tile name (expected DESHHMM+DDMM or DESHHMM-DDMM)")
        if name not in by_name:
            raise TileError(f"tile {name} is not in {source}")
        out.append(by_name[name])
    return out


def tiles_to_table(tiles: Sequence[Tile]):
    """An astropy Table with the Y3 ``COADDTILE_GEOM`` columns for ``tiles``."""
    from astropy.table import Table

    scale = np.array([t.pixelscale for t in tiles], dtype=float) / 3600.0
    cols = {
        "TILENAME": np.array([t.tilename for t in tiles], dtype="U12"),
        "RA_CENT": [t.ra_cent for t in tiles],
        "DEC_CENT": [t.dec_cent for t in tiles],
        "URAMIN": [t.uramin for t in tiles],
        "URAMAX": [t.uramax for t in tiles],
        "UDECMIN": [t.udecmin for t in tiles],
        "UDECMAX": [t.udecmax for t in tiles],
        "CROSSRA0": np.array(["Y" if t.crossra0 else "N" for t in tiles], dtype="U1"),
        "PIXELSCALE": [t.pixelscale for t in tiles],
        "NAXIS1": np.array([t.naxis1 for t in tiles], dtype=np.int32),
        "NAXIS2": np.array([t.naxis2 for t in tiles], dtype=np.int32),
        "CRPIX1": [t.crpix1 for t in tiles],
        "CRPIX2": [t.crpix2 for t in tiles],
        "CRVAL1": [t.ra_cent for t in tiles],
        "CRVAL2": [t.dec_cent for t in tiles],
        "CD1_1": -scale,
        "CD1_2": np.zeros(len(tiles)),
        "CD2_1": np.zeros(len(tiles)),
        "CD2_2": scale,
    }
    table = Table()
    for name in Y3_COLUMNS:
        table[name] = np.asarray(cols[name], dtype=None if name in ("TILENAME", "CROSSRA0", "NAXIS1", "NAXIS2") else np.float64)
    return table


def write_tile_table(tiles: Sequence[Tile], path: str | os.PathLike) -> Path:
    """Write ``tiles`` as a Y3 geometry table, FITS (``.fits``/``.fit``) or CSV (``.csv``), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    formats = {".fits": "fits", ".fit": "fits", ".csv": "ascii.csv"}
    if suffix not in formats:
        raise ConfigError(f"output {path} must end in .fits, .fit or .csv (the format follows the suffix)")
    table = tiles_to_table(tiles)
    with atomic_path(path) as tmp:
        try:
            table.write(tmp, format=formats[suffix])
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc}") from exc
    return path
