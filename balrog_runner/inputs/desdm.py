"""Find a release's coadd images and PSFEx models in the DESDM database (SQLAlchemy Core).

DESDM files are found from a release's processing tag, in two eras (DESIGN.md §10):

* **Y1 era** (SVA1, Y1A1): ``COADD (RUN, TILENAME, BAND)`` + ``RUNTAG (RUN, TAG)`` give a
  tile's coadd *run* per band (``BAND IS NULL`` is the det image); the files are then at
  ``OPS/coadd/<run>/coadd/<TILE>_<band>.fits.fz`` with the PSF beside them. DESDM recorded
  no size or checksum for them.
* **Y3 era and later** (Y3A1 ... Y6A2): ``PROCTAG (TAG, PFW_ATTEMPT_ID)`` picks the tagged
  processing attempt; images are ``COADD`` rows, PSF models ``MISCFILE`` rows of that attempt;
  ``FILE_ARCHIVE_INFO`` gives ``PATH``/``FILENAME``/``COMPRESSION`` in the ``desar2home``
  archive, and ``DESFILE`` (via ``FILE_ARCHIVE_INFO.DESFILE_ID``) the ``FILESIZE`` and
  ``MD5SUM``. Untagged attempts of the same tile are ignored.

The same code runs on DESDM's Oracle (``oracle+oracledb://``) and on any SQLAlchemy URL
(the tests build DESDM's tables on PostgreSQL). Tables are lower-case, unquoted names so
Oracle resolves them to its upper-case ones. On ``desoper`` they live in the ``PROD``
schema (``schema="prod"``); on ``dessci`` a release's copies carry a prefix
(``prefix="Y6A2_"`` for ``Y6A2_COADD``, ``Y6A2_FILE_ARCHIVE_INFO`` ...).

Tiles go to the database in chunks of :data:`IN_CHUNK` bind parameters (Oracle refuses an
``IN`` list of more than 1000 items); each chunk is one query for all bands, images and
PSFs together. Nothing is written unless every tile and band resolved.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..db.url import db_errors, safe_url
from ..errors import ConfigError, InputFileError, TileError
from ..sky.geometry import is_des_tilename
from .manifest import FileEntry, Manifest
from .source import Y1_IMAGE_RELPATH, Y1_PSF_RELPATH

log = logging.getLogger(__name__)

DES_BANDS: tuple[str, ...] = ("g", "r", "i", "z", "Y", "det")
ERAS: tuple[str, ...] = ("y1", "y3")
ARCHIVE_NAME = "desar2home"
"""``FILE_ARCHIVE_INFO.ARCHIVE_NAME`` of DESDM's home archive (the one its file server serves)."""

IN_CHUNK = 900
"""Tiles per query: Oracle allows at most 1000 expressions in an IN list (ORA-01795)."""

# DESDM file types, in one place. Sources (DES public code):
# - 'coadd' (COADD) and 'coadd_psfex_model' (MISCFILE) per band: DarkEnergySurvey
#   mepipelineappintg coadd_query.get_coadd_info_from_attempt (its filetype loop
#   "coadd", "coadd_segmap", "coadd_psfex_model"; PSF path .../p01/psf/<TILE>_r<req>p<att>_<band>_psfcat.psf).
# - 'coadd_det_psfex_model' (MISCFILE): listed next to 'coadd_psfex_model' among the
#   Y3A1_COADD MISCFILE file types in DES's data-access portal code (des-labs).
# - 'coadd_det' (COADD, the riz detection coadd, BAND 'det'): DESDM's coadd file type map
#   ({'det': 'coadd_det'}); NOT confirmed against a Y3+ query in public code, hence the
#   det rows are matched by file type alone (whatever their BAND) and the string is
#   overridable (resolve(..., filetypes=...)).
IMAGE_FILETYPES: dict[str, str | None] = {"coadd": None, "coadd_det": "det"}
PSF_FILETYPES: dict[str, str | None] = {"coadd_psfex_model": None, "coadd_det_psfex_model": "det"}
"""filetype -> band it means (None: the row's BAND column)."""

IDENT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_$#]*$")


def era_for(release: str) -> str:
    """``y1`` for SVA1/Y1 tags (coadd runs), ``y3`` for everything later (tagged attempts)."""
    tag = release.upper()
    return "y1" if tag.startswith(("SVA1", "Y1")) else "y3"


@dataclass(frozen=True)
class DesdmTables:
    """The DESDM tables we read, declared (not reflected: no catalogue query on Oracle)."""

    coadd: sa.Table
    runtag: sa.Table
    proctag: sa.Table
    miscfile: sa.Table
    file_archive_info: sa.Table
    desfile: sa.Table
    #: Single-epoch lookups (:mod:`.desdm_se`): CCD images, FGCM zero points, attempt values.
    image: sa.Table
    zeropoint: sa.Table
    pfw_attempt_val: sa.Table
    #: The tiles' coadd pixel grids (DESIGN.md section 2: ``COADDTILE_GEOM``, ``Y6A2_COADDTILE_GEOM``).
    coaddtile_geom: sa.Table


def _check_ident(value: str, what: str) -> str:
    if value and not IDENT_RE.fullmatch(value.rstrip("_") or "x"):
        raise ConfigError(f"{what} {value!r} is not a database identifier (letters, digits, '_')")
    return value


def desdm_tables(schema: str | None = None, prefix: str = "") -> DesdmTables:
    """Declare the tables under ``schema`` (e.g. ``prod``) with a name ``prefix`` (e.g. ``Y6A2_``).

    Names are lower-cased: unquoted, so Oracle (upper-case dictionary) and PostgreSQL
    (lower-case) both resolve them.
    """
    schema = _check_ident(schema or "", "schema").lower() or None
    prefix = _check_ident(prefix or "", "table prefix").lower()
    md = sa.MetaData()
    s, b, f = sa.String, sa.BigInteger, sa.Float

    def table(name: str, *cols: sa.Column) -> sa.Table:
        return sa.Table(prefix + name, md, *cols, schema=schema)

    return DesdmTables(
        coadd=table("coadd", sa.Column("filename", s), sa.Column("tilename", s), sa.Column("band", s),
                    sa.Column("filetype", s), sa.Column("pfw_attempt_id", b), sa.Column("run", s)),
        runtag=table("runtag", sa.Column("run", s), sa.Column("tag", s)),
        proctag=table("proctag", sa.Column("tag", s), sa.Column("pfw_attempt_id", b)),
        miscfile=table("miscfile", sa.Column("filename", s), sa.Column("tilename", s), sa.Column("band", s),
                       sa.Column("filetype", s), sa.Column("pfw_attempt_id", b), sa.Column("expnum", b),
                       sa.Column("ccdnum", b)),
        file_archive_info=table("file_archive_info", sa.Column("filename", s), sa.Column("path", s),
                                sa.Column("compression", s), sa.Column("archive_name", s),
                                sa.Column("desfile_id", b)),
        desfile=table("desfile", sa.Column("id", b), sa.Column("filename", s), sa.Column("filetype", s),
                      sa.Column("pfw_attempt_id", b), sa.Column("filesize", b), sa.Column("md5sum", s)),
        image=table("image", sa.Column("filename", s), sa.Column("filetype", s), sa.Column("pfw_attempt_id", b),
                    sa.Column("tilename", s), sa.Column("band", s), sa.Column("expnum", b), sa.Column("ccdnum", b),
                    sa.Column("mag_zero", f), sa.Column("naxis1", b), sa.Column("naxis2", b)),
        zeropoint=table("zeropoint", sa.Column("imagename", s), sa.Column("mag_zero", f), sa.Column("source", s),
                        sa.Column("version", s)),
        pfw_attempt_val=table("pfw_attempt_val", sa.Column("pfw_attempt_id", b), sa.Column("key", s),
                              sa.Column("val", s)),
        coaddtile_geom=table("coaddtile_geom", sa.Column("tilename", s), sa.Column("ra_cent", f),
                             sa.Column("dec_cent", f), sa.Column("pixelscale", f), sa.Column("naxis1", b),
                             sa.Column("naxis2", b)),
    )


def y1_query(t: DesdmTables) -> sa.Select:
    """Tile, band, run of every tagged Y1 coadd; binds ``tag`` and ``tiles`` (expanding)."""
    c, rt = t.coadd, t.runtag
    return (
        sa.select(c.c.tilename, c.c.band, c.c.run)
        .select_from(rt.join(c, c.c.run == rt.c.run))
        .where(rt.c.tag == sa.bindparam("tag"), c.c.tilename.in_(sa.bindparam("tiles", expanding=True)))
    )


def y3_query(t: DesdmTables, image_filetypes: Iterable[str] = IMAGE_FILETYPES,
             psf_filetypes: Iterable[str] = PSF_FILETYPES) -> sa.CompoundSelect:
    """Images (COADD) and PSF models (MISCFILE) of the tagged attempts, with their archive
    path and DESFILE size/MD5, as one UNION ALL; binds ``tag``, ``archive_name``, ``tiles``."""
    p, fai, d = t.proctag, t.file_archive_info, t.desfile

    def part(table: sa.Table, kind: str, filetypes: Iterable[str]) -> sa.Select:
        return (
            sa.select(
                sa.literal_column(f"'{kind}'").label("kind"), table.c.tilename, table.c.band, table.c.filetype,
                table.c.pfw_attempt_id, fai.c.path, fai.c.filename, fai.c.compression,
                d.c.filesize, d.c.md5sum,
            )
            .select_from(
                p.join(table, table.c.pfw_attempt_id == p.c.pfw_attempt_id)
                .join(fai, fai.c.filename == table.c.filename)
                .outerjoin(d, d.c.id == fai.c.desfile_id)
            )
            .where(
                p.c.tag == sa.bindparam("tag"),
                table.c.filetype.in_(sorted(filetypes)),
                fai.c.archive_name == sa.bindparam("archive_name"),
                table.c.tilename.in_(sa.bindparam("tiles", expanding=True)),
            )
        )

    return sa.union_all(part(t.coadd, "image", image_filetypes), part(t.miscfile, "psf", psf_filetypes))


@dataclass
class _Found:
    path: str
    size: int | None
    md5: str | None
    attempt: object


def chunks(items: Sequence[str], n: int) -> Iterable[list[str]]:
    for k in range(0, len(items), n):
        yield list(items[k:k + n])


def check_tiles(tiles: Iterable[str]) -> list[str]:
    """DES tile names, deduplicated in order; a TileError names a bad one."""
    out: list[str] = []
    for tile in tiles:
        if not is_des_tilename(tile):
            raise TileError(f"{tile!r} is not a DES tile name (DESHHMM+DDMM or DESHHMM-DDMM)")
        if tile not in out:
            out.append(tile)
    if not out:
        raise ConfigError("no tiles given")
    return out


def resolve(
    engine: Engine,
    release: str,
    tiles: Iterable[str],
    bands: Sequence[str] = DES_BANDS,
    era: str = "auto",
    schema: str | None = None,
    prefix: str = "",
    archive_name: str = ARCHIVE_NAME,
    filetypes: tuple[dict[str, str | None], dict[str, str | None]] | None = None,
    chunk: int = IN_CHUNK,
) -> Manifest:
    """Resolve every ``tile`` x ``band`` of ``release`` into a :class:`Manifest`.

    Raises :class:`InputFileError` listing every missing (or ambiguous) tile/band if any,
    so a caller writes all or nothing. ``filetypes`` overrides
    (:data:`IMAGE_FILETYPES`, :data:`PSF_FILETYPES`).
    """
    if not release or not IDENT_RE.fullmatch(release):
        raise ConfigError(f"release tag {release!r} is not a DESDM tag (e.g. Y3A2_COADD)")
    if era == "auto":
        era = era_for(release)
    if era not in ERAS:
        raise ConfigError(f"era {era!r}; allowed: auto, {', '.join(ERAS)}")
    tiles = check_tiles(tiles)
    bands = list(bands)
    if not bands or len(set(bands)) != len(bands):
        raise ConfigError(f"bands {' '.join(bands) or '(none)'}: give each band once")
    if not 1 <= chunk <= 1000:
        raise ConfigError(f"chunk {chunk} must be 1..1000 tiles (Oracle's IN-list limit)")
    t = desdm_tables(schema, prefix)
    found: dict[tuple[str, str, str], list[_Found]] = defaultdict(list)
    with db_errors(engine, f"looking up release {release} ({era} era)"), engine.connect() as conn:
        for part in chunks(tiles, chunk):
            if era == "y1":
                rows = conn.execute(y1_query(t), {"tag": release, "tiles": part}).all()
                for tile, band, run in rows:
                    band = band or "det"
                    values = {"run": run, "tile": tile, "band": band}
                    found[(tile, band, "image")].append(_Found(Y1_IMAGE_RELPATH.format(**values), None, None, run))
                    found[(tile, band, "psf")].append(_Found(Y1_PSF_RELPATH.format(**values), None, None, run))
            else:
                image_ft, psf_ft = filetypes or (IMAGE_FILETYPES, PSF_FILETYPES)
                query = y3_query(t, image_ft, psf_ft)
                params = {"tag": release, "archive_name": archive_name, "tiles": part}
                for row in conn.execute(query, params).mappings():
                    fixed = (image_ft if row["kind"] == "image" else psf_ft).get(row["filetype"])
                    band = fixed or row["band"]
                    path = "/".join(x.strip("/") for x in (row["path"], row["filename"] + (row["compression"] or "")))
                    size = int(row["filesize"]) if row["filesize"] is not None else None
                    md5 = str(row["md5sum"]).strip().lower() if row["md5sum"] else None
                    found[(row["tilename"], band, row["kind"])].append(_Found(path, size, md5, row["pfw_attempt_id"]))
    manifest_tiles, problems = _assemble(tiles, bands, found)
    if problems:
        where = f"{table_label(schema, prefix)}"
        raise InputFileError(
            f"release {release} ({era} era, {where}): {len(problems)} of {len(tiles) * len(bands)} "
            f"tile/band inputs not resolved: " + "; ".join(problems)
        )
    log.info("release %s: %d tiles x %d bands resolved (%s era)", release, len(tiles), len(bands), era)
    return Manifest(
        release=release, era=era, tiles=manifest_tiles, database=safe_url(engine.url),
        schema=(schema or "").lower(), prefix=(prefix or "").lower(), archive_name=archive_name if era == "y3" else "",
        bands=tuple(bands),
    )


def table_label(schema: str | None, prefix: str) -> str:
    return "tables " + (f"{schema.lower()}." if schema else "") + f"{(prefix or '').lower()}*"


def _assemble(tiles: list[str], bands: list[str], found: dict[tuple[str, str, str], list[_Found]]):
    """Per tile and band one image and one PSF, or a problem line naming what is wrong."""
    out: dict[str, dict[str, FileEntry]] = {}
    problems: list[str] = []
    for tile in tiles:
        if not any(key[0] == tile for key in found):
            problems.append(f"{tile}: no tagged files at all")
            continue
        entries: dict[str, FileEntry] = {}
        missing: list[str] = []
        for band in bands:
            picked: dict[str, _Found] = {}
            for kind in ("image", "psf"):
                hits = found.get((tile, band, kind), [])
                distinct = {h.path: h for h in hits}
                if not distinct:
                    missing.append(f"{band} {'image' if kind == 'image' else 'PSF model'}")
                elif len(distinct) > 1:
                    attempts = ", ".join(sorted(str(h.attempt) for h in distinct.values()))
                    missing.append(f"{band} {kind}: {len(distinct)} tagged files (attempts/runs {attempts})")
                else:
                    picked[kind] = next(iter(distinct.values()))
            if len(picked) == 2:
                img, psf = picked["image"], picked["psf"]
                entries[band] = FileEntry(img.path, psf.path, img.size, img.md5, psf.size, psf.md5)
        if missing:
            problems.append(f"{tile}: " + ", ".join(missing))
        out[tile] = entries
    return out, problems


__all__ = [
    "ARCHIVE_NAME", "DES_BANDS", "ERAS", "IMAGE_FILETYPES", "IN_CHUNK", "PSF_FILETYPES", "DesdmTables",
    "check_tiles", "desdm_tables", "era_for", "resolve", "y1_query", "y3_query",
]
