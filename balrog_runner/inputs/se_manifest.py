"""The single-epoch inputs manifest: every tile's CCD images, PSFEx models and zero points.

``balrog-inputs --single-epoch`` (:mod:`balrog_runner.inputs.desdm_se`) asks DESDM once, on a
login node, which CCD images went into each tile and writes this file; the nodes fetch from
it with no database (:mod:`balrog_runner.inputs.fetch_se`). Each image is DESDM's
``coadd_nwgint`` file (HDUs SCI, WGT, WGT_ME, MSK) with its PSFEx model and zero point.

A tile has ~100-200 CCD images per band, so a campaign's manifest is large: as one JSON
object, 500 tiles are 228 MB that take 5.4 s and 600 MB of memory to parse (measured),
and every tile's runner would parse all of it. The file is therefore JSON Lines: the first
line is a JSON object, the header (the same fields as a coadd manifest, version 2, with
``"mode": "single-epoch"``), whose ``tiles`` gives each tile's byte range in the rest of the
file and its image count per band; then one line per CCD image, a tile's lines together,
and one line per CCD ``balrog-inputs --drop-incomplete`` left out::

    {"format": "balrog-inputs-manifest", "version": 2, "mode": "single-epoch", "release": "Y3A2_COADD",
     "input_tag": "Y3A1_FINALCUT", "zeropoint": "ZEROPOINT FGCM v2.0", "database": "oracle+oracledb://me:***@...",
     "era": "y3", "schema": "prod", "prefix": "", "archive_name": "desar2home", "created": "...",
     "bands": ["g", "r", "i", "z", "Y"],
     "tiles": {"DES0002+0209": {"offset": 0, "length": 412345, "images": {"g": 187, ...}, "dropped": 1,
                                  "grid": {"ra": 0.5, "dec": 2.15, "naxis1": 10000, "naxis2": 10000,
                                           "pixel_scale": 0.263, "source": "COADDTILE_GEOM"}}}}
    {"tile": "DES0002+0209", "band": "g", "expnum": 229686, "ccdnum": 1, "mag_zero": 31.4723,
     "image": "OPS/multiepoch/Y3A1/r2590/DES0002+0209/p01/nwgint/DES0002+0209_r2590p01_D00229686_g_c01_nwgint.fits.fz",
     "image_size": 61234560, "image_md5": "...", "naxis1": 2048, "naxis2": 4096,
     "psf": "OPS/finalcut/Y3A1/.../D00229686/p01/psf/D00229686_g_c01_r2343p01_psfexcat.psf",
     "psf_size": 118080, "psf_md5": "..."}
    ...
    {"tile": "DES0002+0209", "dropped": "D00229687_g_c31: no zero point (ZEROPOINT FGCM v2.0)"}

(each object on one line in the file). ``offset``/``length`` are bytes from the end of the
header line, so a node reads its tile's lines alone (:func:`read` with ``tiles=``) and a
build-time check reads only the header. Paths are relative to the archive root, sizes in
bytes and MD5 sums of the files as archived (``null`` where DESDM records none),
``mag_zero`` in magnitudes, ``naxis1``/``naxis2`` the image's pixels from DESDM's ``IMAGE``
row (``null`` if unknown; they size the free-space check before a fetch). ``input_tag`` is
the SE processing tag the nwgint images were joined to (their ``red_immask`` parents),
``zeropoint`` where the zero points came from. The file is greppable (one CCD a line) and
``jq`` reads it. Each tile's ``grid`` is the coadd grid its images are re-coadded onto, from
DESDM's ``COADDTILE_GEOM`` (:mod:`.tile_grid`); a manifest written before grids were recorded
has none, and the tile is then re-coadded onto the DES tiling's 10000^2 grid.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_bytes
from ..errors import InputFileError, OutputError
from ..sky.geometry import is_des_tilename
from .manifest import (
    COADD,
    FORMAT,
    MD5_RE,
    SE_VERSION,
    SINGLE_EPOCH,
    check_relpath,
    mode_of,
    read_first_line,
    refuse_mode,
    se_header,
    shows_password,
)
from .single_epoch import CoaddGrid

#: DECam CCD size in pixels (naxis1, naxis2): the free-space estimate of an image whose DESDM
#: row gives no size.
DECAM_CCD_SHAPE = (2048, 4096)
#: Bytes per pixel of a funpacked nwgint file over its 4 HDUs (float32 SCI, WGT, WGT_ME and
#: MSK counted as 32-bit: an upper bound) and header bytes (a TPV header is ~100 cards; 8 FITS
#: blocks per HDU is generous).
NWGINT_BYTES_PER_PIXEL = 16
NWGINT_HEADER_BYTES = 4 * 8 * 2880


@dataclass(frozen=True)
class SEFileEntry:
    """One CCD image of a tile's single-epoch set: DESDM's ``coadd_nwgint`` file and its PSFEx model."""

    band: str
    expnum: int
    ccdnum: int
    #: The nwgint file, relative to the archive root (``.fits.fz`` when DESDM compressed it).
    image: str
    #: The CCD's PSFEx model, relative to the archive root.
    psf: str
    #: Zero point in magnitudes.
    mag_zero: float
    image_size: int | None = None
    image_md5: str | None = None
    psf_size: int | None = None
    psf_md5: str | None = None
    naxis1: int | None = None
    naxis2: int | None = None

    @property
    def key(self) -> str:
        """``D<expnum>_<band>_c<ccdnum>``, as :attr:`balrog_runner.inputs.single_epoch.SEImage.key`."""
        return f"D{self.expnum:08d}_{self.band}_c{self.ccdnum:02d}"

    @property
    def compressed(self) -> bool:
        return self.image.endswith(".fz")

    def unpacked_bytes(self) -> int:
        """Bytes the image takes on the node after funpack: its archived size if it is not
        compressed, else an upper bound from its pixel count (DECam's if DESDM gives none)."""
        if not self.compressed and self.image_size is not None:
            return self.image_size
        nx, ny = (self.naxis1, self.naxis2) if self.naxis1 and self.naxis2 else DECAM_CCD_SHAPE
        return nx * ny * NWGINT_BYTES_PER_PIXEL + NWGINT_HEADER_BYTES


@dataclass(frozen=True)
class SEManifest:
    """A single-epoch manifest: provenance, ``tiles[tile][band] -> (SEFileEntry, ...)``.

    ``tiles`` holds the tiles that were read (all by default); ``counts`` lists every tile
    in the file with its number of images per band, read or not. ``dropped[tile]`` are the
    CCDs left out by ``balrog-inputs --drop-incomplete``, as ``"<key>: <reason>"``.
    """

    release: str
    era: str
    tiles: dict[str, dict[str, tuple[SEFileEntry, ...]]]
    input_tag: str = ""
    zeropoint: str = ""
    database: str = ""
    schema: str = ""
    prefix: str = ""
    archive_name: str = ""
    bands: tuple[str, ...] = ()
    created: str = ""
    dropped: dict[str, tuple[str, ...]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    mode: str = SINGLE_EPOCH
    #: Each tile's coadd grid, the re-coadd's (absent in manifests written before it: the DES tiling's).
    grids: dict[str, CoaddGrid] = field(default_factory=dict)
    #: Where each grid came from: ``COADDTILE_GEOM`` or ``DES tiling`` (:mod:`.tile_grid`).
    grid_sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.counts:
            object.__setattr__(self, "counts", {t: {b: len(e) for b, e in bands.items()}
                                                for t, bands in self.tiles.items()})

    def entries(self, tile: str, band: str) -> tuple[SEFileEntry, ...]:
        """The CCD images of ``tile`` in ``band``; an InputFileError naming what is missing."""
        if tile not in self.counts:
            raise InputFileError(f"single-epoch manifest of release {self.release} has no tile {tile}")
        if tile not in self.tiles:
            raise InputFileError(f"single-epoch manifest of release {self.release}: tile {tile} was not read")
        found = self.tiles[tile].get(band)
        if not found:
            raise InputFileError(f"single-epoch manifest of release {self.release} has no band {band!r} "
                                 f"images of tile {tile}")
        return found

    def nimages(self) -> int:
        """Images listed, over every tile of the file and band."""
        return sum(n for bands in self.counts.values() for n in bands.values())


# --- writing ---------------------------------------------------------------------------------

def _line(obj: Mapping[str, Any]) -> bytes:
    return (json.dumps(obj, allow_nan=False) + "\n").encode("ascii")


def to_bytes(manifest: SEManifest) -> bytes:
    """The file :func:`read` accepts: header line, then each tile's lines (stable order: diffable)."""
    body: list[bytes] = []
    index: dict[str, dict[str, Any]] = {}
    offset = 0
    for tile in sorted(manifest.tiles):
        bands = manifest.tiles[tile]
        lines = [_line({"tile": tile, **asdict(e)})
                 for band in bands for e in sorted(bands[band], key=lambda e: (e.expnum, e.ccdnum))]
        dropped = manifest.dropped.get(tile, ())
        lines += [_line({"tile": tile, "dropped": d}) for d in dropped]
        length = sum(len(x) for x in lines)
        index[tile] = {"offset": offset, "length": length, "images": {b: len(e) for b, e in bands.items()},
                       "dropped": len(dropped)}
        if tile in manifest.grids:
            index[tile]["grid"] = {**manifest.grids[tile].as_dict(),
                                   "source": manifest.grid_sources.get(tile, "")}
        offset += length
        body += lines
    header = {
        "format": FORMAT, "version": SE_VERSION, "mode": SINGLE_EPOCH, "release": manifest.release,
        "input_tag": manifest.input_tag, "zeropoint": manifest.zeropoint, "database": manifest.database,
        "era": manifest.era, "schema": manifest.schema, "prefix": manifest.prefix,
        "archive_name": manifest.archive_name,
        "created": manifest.created or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "bands": list(manifest.bands), "tiles": index,
    }
    return _line(header) + b"".join(body)


def write(manifest: SEManifest, path: str | os.PathLike) -> Path:
    """Write ``manifest`` atomically (a reader sees the old file or the whole new one)."""
    if shows_password(manifest.database):
        raise OutputError(f"refusing to write manifest {path}: its database URL shows a password")
    return atomic_write_bytes(path, to_bytes(manifest))


# --- reading ---------------------------------------------------------------------------------

_ENTRY_KEYS = frozenset(f.name for f in SEFileEntry.__dataclass_fields__.values()) | {"tile"}


def _count(value: Any, what: str, *, optional: bool = False, zero: bool = False) -> int | None:
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < (0 if zero else 1):
        unit = "a number of bytes" if what.endswith(("_size", "offset", "length")) else "an integer"
        raise InputFileError(f"{what} = {value!r} is not {unit} {'>= 0' if zero else '> 0'}")
    return value


def _entry(raw: Mapping[str, Any], where: str) -> SEFileEntry:
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise InputFileError(f"{where} has unknown keys {sorted(unknown)}")
    band = raw.get("band")
    if not isinstance(band, str) or not band:
        raise InputFileError(f"{where} has no band")
    values: dict[str, Any] = {"band": band}
    for key in ("expnum", "ccdnum"):
        values[key] = _count(raw.get(key), f"{where} {key}")
    where = f"{where} ({SEFileEntry(band, values['expnum'], values['ccdnum'], '', '', 0.0).key})"
    for key in ("image", "psf"):
        values[key] = check_relpath(raw.get(key), f"{where} {key}")
    zp = raw.get("mag_zero")
    if not (isinstance(zp, int | float) and not isinstance(zp, bool) and math.isfinite(zp) and zp > 0):
        raise InputFileError(f"{where} mag_zero = {zp!r} is not a finite zero point > 0 (mag)")
    values["mag_zero"] = float(zp)
    for key in ("image_size", "psf_size", "naxis1", "naxis2"):
        values[key] = _count(raw.get(key), f"{where} {key}", optional=True)
    for key in ("image_md5", "psf_md5"):
        value = raw.get(key)
        if value is not None and not (isinstance(value, str) and MD5_RE.fullmatch(value)):
            raise InputFileError(f"{where} {key} = {value!r} is not 32 lower-case hex digits")
        values[key] = value
    return SEFileEntry(**values)


def _header(path: Path) -> tuple[dict[str, Any], int]:
    first = read_first_line(path)
    head = se_header(first)
    if head is None:
        try:
            whole = json.loads(path.read_bytes())
        except (OSError, ValueError):
            whole = None
        if isinstance(whole, dict) and whole.get("format") == FORMAT:
            raise refuse_mode(path, COADD, SINGLE_EPOCH)
        raise InputFileError(f"{path} is not a single-epoch balrog-inputs manifest (its first line is not a "
                             f"version {SE_VERSION} header); write it with balrog-inputs --single-epoch")
    mode_of(path)  # a version-2 header of another mode is refused there
    index = head.get("tiles")
    if not isinstance(index, dict) or not index:
        raise InputFileError(f"manifest {path} lists no tiles")
    for tile, info in index.items():
        if not is_des_tilename(tile):
            raise InputFileError(f"manifest {path}: {tile!r} is not a DES tile name")
        if not isinstance(info, dict) or not isinstance(info.get("images"), dict) or not info["images"]:
            raise InputFileError(f"manifest {path}: tile {tile} lists no bands")
        where = f"manifest {path}: tile {tile}"
        for key in ("offset", "length", "dropped"):
            _count(info.get(key, 0), f"{where} {key}", zero=True)
        for band, n in info["images"].items():
            _count(n, f"{where} band {band} images")
        if "grid" in info:
            _grid(info["grid"], f"{where} grid")
    return head, len(first)


_GRID_KEYS = frozenset(("ra", "dec", "naxis1", "naxis2", "pixel_scale", "source"))


def _grid(raw: Any, where: str) -> tuple[CoaddGrid, str]:
    """A tile's grid from the header's index; an InputFileError naming ``where`` for anything else."""
    if not isinstance(raw, dict) or set(raw) != _GRID_KEYS:
        raise InputFileError(f"{where} = {raw!r} is not an object with keys {', '.join(sorted(_GRID_KEYS))}")
    values = {k: raw[k] for k in ("ra", "dec", "pixel_scale")}
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values.values()) \
            or values["pixel_scale"] <= 0 or not -90 <= values["dec"] <= 90:
        raise InputFileError(f"{where} = {raw!r}: ra, dec must be finite degrees (|dec| <= 90), pixel_scale > 0")
    n1, n2 = (_count(raw[k], f"{where} {k}") for k in ("naxis1", "naxis2"))
    if not isinstance(raw["source"], str):
        raise InputFileError(f"{where} source = {raw['source']!r} is not a string")
    return CoaddGrid(ra=float(values["ra"]), dec=float(values["dec"]), naxis1=int(n1 or 0), naxis2=int(n2 or 0),
                     pixel_scale=float(values["pixel_scale"])), raw["source"]


def _tile_lines(path: Path, fh, start: int, tile: str, info: Mapping[str, Any]) -> tuple[dict, list[str]]:
    """Read and check one tile's lines (its byte range from the header's index)."""
    stale = (f"manifest {path}: the lines of tile {tile} do not match the header's index (the file was "
             "edited or cut short); write it again with balrog-inputs --single-epoch")
    fh.seek(start + info["offset"])
    block = fh.read(info["length"])
    if len(block) != info["length"] or not block.endswith(b"\n"):
        raise InputFileError(stale)
    images: dict[str, list[SEFileEntry]] = {}
    dropped: list[str] = []
    for k, raw_line in enumerate(block.splitlines(), 1):
        where = f"manifest {path}: tile {tile} line {k}"
        try:
            raw = json.loads(raw_line)
        except ValueError:
            raise InputFileError(stale) from None
        if not isinstance(raw, dict) or raw.get("tile") != tile:
            raise InputFileError(stale)
        if "dropped" in raw:
            if set(raw) != {"tile", "dropped"} or not isinstance(raw["dropped"], str):
                raise InputFileError(f"{where}: a dropped line has only \"tile\" and a \"dropped\" string")
            dropped.append(raw["dropped"])
            continue
        entry = _entry(raw, where)
        images.setdefault(entry.band, []).append(entry)
    counts = {b: len(e) for b, e in images.items()}
    if counts != dict(info["images"]) or len(dropped) != info.get("dropped", 0):
        raise InputFileError(stale)
    for entries in images.values():
        seen: set[tuple[int, int]] = set()
        for e in entries:
            if (e.expnum, e.ccdnum) in seen:
                raise InputFileError(f"manifest {path}: tile {tile} lists {e.key} twice")
            seen.add((e.expnum, e.ccdnum))
    return {b: tuple(e) for b, e in images.items()}, dropped


def read(path: str | os.PathLike, tiles: Iterable[str] | None = None) -> SEManifest:
    """Read and validate a single-epoch manifest; any defect is an InputFileError naming the file,
    and so is a coadd manifest.

    ``tiles`` None reads every tile; otherwise only those (each must be in the file), so a
    node reads its own tile's lines and a build-time check (``tiles=()``) only the header.
    """
    path = Path(path)
    head, start = _header(path)
    index: dict[str, dict[str, Any]] = head["tiles"]
    wanted = list(index) if tiles is None else list(dict.fromkeys(tiles))
    missing = [t for t in wanted if t not in index]
    if missing:
        raise InputFileError(f"single-epoch manifest {path} has no tile {', '.join(missing)}")
    loaded: dict[str, dict[str, tuple[SEFileEntry, ...]]] = {}
    dropped: dict[str, tuple[str, ...]] = {}
    with open(path, "rb") as fh:
        for tile in wanted:
            loaded[tile], tile_dropped = _tile_lines(path, fh, start, tile, index[tile])
            if tile_dropped:
                dropped[tile] = tuple(tile_dropped)
    try:
        return SEManifest(
            release=str(head["release"]), era=str(head["era"]), tiles=loaded,
            input_tag=str(head.get("input_tag") or ""), zeropoint=str(head.get("zeropoint") or ""),
            database=str(head.get("database") or ""), schema=str(head.get("schema") or ""),
            prefix=str(head.get("prefix") or ""), archive_name=str(head.get("archive_name") or ""),
            bands=tuple(head.get("bands") or ()), created=str(head.get("created") or ""), dropped=dropped,
            counts={t: {b: int(n) for b, n in info["images"].items()} for t, info in index.items()},
            grids={t: _grid(index[t]["grid"], "")[0] for t in wanted if "grid" in index[t]},
            grid_sources={t: _grid(index[t]["grid"], "")[1] for t in wanted if "grid" in index[t]},
        )
    except KeyError as exc:
        raise InputFileError(f"manifest {path} lacks the key {exc.args[0]!r}") from None


__all__ = ["DECAM_CCD_SHAPE", "SEFileEntry", "SEManifest", "read", "to_bytes", "write"]
