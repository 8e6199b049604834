"""The campaign's input manifest: every tile's image and PSFEx model, resolved once.

DESDM knows where a release's files are only through its database, which login nodes reach
and compute nodes often do not. ``balrog-inputs`` (see :mod:`balrog_runner.inputs.desdm`) asks the
database once and writes this manifest; jobs then fetch from it with no database at all
(:meth:`balrog_runner.inputs.source.ArchiveSource.create` with ``manifest=``).

The file is JSON (small: ~1 kB per tile; readable and diffable by a person)::

    {"format": "balrog-inputs-manifest", "version": 1,
     "release": "Y3A2_COADD", "database": "oracle+oracledb://me:***@host:1521/?service_name=desoper",
     "era": "y3", "schema": "prod", "prefix": "", "archive_name": "desar2home", "created": "...",
     "bands": ["g", "r", "i", "z", "Y", "det"],
     "tiles": {"DES0002+0209": {"g": {"image": "OPS/multiepoch/.../DES0002+0209_r2590p01_g.fits.fz",
                                      "psf": "OPS/multiepoch/.../psf/DES0002+0209_r2590p01_g_psfcat.psf",
                                      "image_size": 123, "image_md5": "...",
                                      "psf_size": 45, "psf_md5": "..."}, ...}}}

Paths are relative to the archive root (DESDM's ``desarchive/``, or a site mirror such as
NERSC's), so the same manifest serves HTTP and local roots. Sizes are in bytes; sizes and
MD5 sums are ``null`` where DESDM does not record them (the Y1 era). The database is recorded
without its password.

Single-epoch manifests (``balrog-inputs --single-epoch``) are version 2 with ``"mode":
"single-epoch"`` in their first line (:mod:`balrog_runner.inputs.se_manifest`); coadd manifests
stay version 1, so every coadd manifest written before keeps working. :func:`read` refuses a
single-epoch manifest in one line (and :func:`~balrog_runner.inputs.se_manifest.read` a coadd
one): a campaign never fetches the other mode's inputs. :func:`mode_of` tells them apart.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..atomic import atomic_write_text
from ..errors import InputFileError, OutputError
from ..sky.geometry import is_des_tilename

FORMAT = "balrog-inputs-manifest"
VERSION = 1
#: Version of single-epoch manifests, the first with a ``mode``.
SE_VERSION = 2
COADD, SINGLE_EPOCH = "coadd", "single-epoch"
MODES = (COADD, SINGLE_EPOCH)
MD5_RE = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class FileEntry:
    """One tile and band's inputs: paths relative to the archive root, sizes in bytes, MD5 hex.

    ``image_size``/``image_md5`` describe the file as stored (the ``.fits.fz``), which is
    what a download verifies.
    """

    image: str
    psf: str
    image_size: int | None = None
    image_md5: str | None = None
    psf_size: int | None = None
    psf_md5: str | None = None


@dataclass(frozen=True)
class Manifest:
    """A whole manifest: where it came from, and ``tiles[tile][band] -> FileEntry``."""

    release: str
    era: str
    tiles: dict[str, dict[str, FileEntry]]
    database: str = ""
    schema: str = ""
    prefix: str = ""
    archive_name: str = ""
    bands: tuple[str, ...] = ()
    created: str = ""

    def entry(self, tile: str, band: str) -> FileEntry:
        """The entry of ``tile``/``band``; an InputFileError naming what is missing."""
        try:
            return self.tiles[tile][band]
        except KeyError:
            where = "tile" if tile not in self.tiles else f"band {band!r} of tile"
            raise InputFileError(
                f"manifest of release {self.release} has no {where} {tile}"
            ) from None


def check_relpath(path: Any, what: str) -> str:
    """Relative archive paths only: no scheme, no leading '/', no '..' (they are joined to a root)."""
    if not isinstance(path, str) or not path.strip():
        raise InputFileError(f"{what} is not a path")
    norm = posixpath.normpath(path)
    if path.startswith("/") or "://" in path or norm.startswith("..") or "\\" in path:
        raise InputFileError(f"{what} {path!r} must be relative to the archive root (no '/', '..' or URL)")
    return path


def _check_entry(raw: Any, where: str) -> FileEntry:
    if not isinstance(raw, Mapping):
        raise InputFileError(f"{where} is not an object")
    unknown = set(raw) - {"image", "psf", "image_size", "image_md5", "psf_size", "psf_md5"}
    if unknown:
        raise InputFileError(f"{where} has unknown keys {sorted(unknown)}")
    values: dict[str, Any] = {}
    for key in ("image", "psf"):
        values[key] = check_relpath(raw.get(key), f"{where} {key}")
    for key in ("image_size", "psf_size"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise InputFileError(f"{where} {key} = {value!r} is not a positive number of bytes")
        values[key] = value
    for key in ("image_md5", "psf_md5"):
        value = raw.get(key)
        if value is not None and not (isinstance(value, str) and MD5_RE.fullmatch(value)):
            raise InputFileError(f"{where} {key} = {value!r} is not 32 lower-case hex digits")
        values[key] = value
    return FileEntry(**values)


def se_header(first_line: bytes) -> dict[str, Any] | None:
    """The header of a single-epoch manifest (its first line, one JSON object), else None."""
    try:
        head = json.loads(first_line)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(head, dict) and head.get("format") == FORMAT and head.get("version") == SE_VERSION:
        return head
    return None


def read_first_line(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.readline()
    except FileNotFoundError:
        raise InputFileError(f"manifest {path} does not exist") from None
    except OSError as exc:
        raise InputFileError(f"cannot read manifest {path}: {exc.strerror or exc}") from None


def mode_of(path: str | os.PathLike) -> str:
    """``coadd`` or ``single-epoch``: which kind of manifest ``path`` is (from its first line;
    the file is validated only when read)."""
    path = Path(path)
    head = se_header(read_first_line(path))
    if head is None:
        return COADD
    if head.get("mode") != SINGLE_EPOCH:
        raise InputFileError(f"manifest {path} has mode {head.get('mode')!r}; version {SE_VERSION} "
                             f"manifests are {SINGLE_EPOCH}")
    return SINGLE_EPOCH


def refuse_mode(path: str | os.PathLike, found: str, wanted: str) -> InputFileError:
    """The one-line error for a manifest of mode ``found`` where ``wanted`` is needed."""
    how = "balrog-inputs --single-epoch" if found == SINGLE_EPOCH else "balrog-inputs without --single-epoch"
    need = "with --single-epoch" if wanted == SINGLE_EPOCH else "without --single-epoch"
    return InputFileError(f"manifest {path} is a {found} manifest (from {how}); {wanted} injection needs one "
                          f"written by balrog-inputs {need}")


def read(path: str | os.PathLike) -> Manifest:
    """Read and validate a coadd manifest; any defect is an InputFileError naming the file,
    and so is a single-epoch manifest (see :func:`refuse_mode`)."""
    path = Path(path)
    if mode_of(path) != COADD:
        raise refuse_mode(path, SINGLE_EPOCH, COADD)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputFileError(f"manifest {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read manifest {path}: {getattr(exc, 'strerror', None) or exc}") from None
    except json.JSONDecodeError as exc:
        raise InputFileError(f"manifest {path} is not JSON (line {exc.lineno}); rewrite it with balrog-inputs") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputFileError(f"{path} is not a balrog-inputs manifest (no \"format\": \"{FORMAT}\")")
    if data.get("version") != VERSION:
        raise InputFileError(f"manifest {path} has version {data.get('version')!r}; this balrog_runner reads "
                             f"{VERSION} (coadd) and {SE_VERSION} (single-epoch)")
    tiles_raw = data.get("tiles")
    if not isinstance(tiles_raw, dict) or not tiles_raw:
        raise InputFileError(f"manifest {path} lists no tiles")
    tiles: dict[str, dict[str, FileEntry]] = {}
    for tile, bands in tiles_raw.items():
        if not is_des_tilename(tile):
            raise InputFileError(f"manifest {path}: {tile!r} is not a DES tile name")
        if not isinstance(bands, dict) or not bands:
            raise InputFileError(f"manifest {path}: tile {tile} lists no bands")
        tiles[tile] = {band: _check_entry(raw, f"manifest {path}: {tile} {band}") for band, raw in bands.items()}
    try:
        return Manifest(
            release=str(data["release"]), era=str(data["era"]), tiles=tiles,
            database=str(data.get("database") or ""), schema=str(data.get("schema") or ""),
            prefix=str(data.get("prefix") or ""), archive_name=str(data.get("archive_name") or ""),
            bands=tuple(data.get("bands") or ()), created=str(data.get("created") or ""),
        )
    except KeyError as exc:
        raise InputFileError(f"manifest {path} lacks the key {exc.args[0]!r}") from None


def to_json(manifest: Manifest) -> str:
    """The manifest as the JSON text :func:`read` accepts (stable key order: diffable)."""
    data = {
        "format": FORMAT, "version": VERSION, "release": manifest.release,
        "database": manifest.database, "era": manifest.era, "schema": manifest.schema,
        "prefix": manifest.prefix, "archive_name": manifest.archive_name,
        "created": manifest.created or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "bands": list(manifest.bands),
        "tiles": {tile: {band: asdict(e) for band, e in bands.items()}
                  for tile, bands in sorted(manifest.tiles.items())},
    }
    return json.dumps(data, indent=1) + "\n"


def shows_password(database: str) -> bool:
    """Whether ``database`` is a URL that shows its password (it must never reach a file)."""
    if "://" not in database:
        return False
    try:
        password = sa.make_url(database).password
    except Exception:  # noqa: BLE001 - not a URL: a section name or a label
        return False
    return password is not None and str(password) != "***"


def write(manifest: Manifest, path: str | os.PathLike) -> Path:
    """Write ``manifest`` atomically (a reader sees the old file or the whole new one)."""
    if shows_password(manifest.database):
        # a URL with a visible password must never reach a file; callers pass db.url.safe_url()
        raise OutputError(f"refusing to write manifest {path}: its database URL shows a password")
    return atomic_write_text(path, to_json(manifest))
