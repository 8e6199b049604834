"""Find a tile's single-epoch (SE) inputs in DESDM's tables: the CCD images DESDM coadded.

A DES coadd tile is the SWarp of ~100-200 CCD images per band, each DESDM's ``coadd_nwgint``
product (the ``red_immask`` CCD image with the tile's SCAMP WCS, weights nulled where the mask
says so; HDUs SCI, WGT, WGT_ME, MSK). Single-epoch injection draws into those and re-coadds
(DESIGN.md section 12). Per tile and band this module finds, in one query per chunk of tiles:

* the ``coadd_nwgint`` rows of ``IMAGE`` of the release's tagged coadd attempt, joined to
  their ``red_immask`` parents (``IMAGE`` again) on ``EXPNUM``/``CCDNUM`` with the SE
  processing tag (``Y3A1_FINALCUT``, ``Y6A1_COADD_INPUT``...), as esheldon/desmeds does
  (desmeds/coaddsrc.py:294-328 Y6, 358-393 Y3; the SE tag per release at 206-218);
* **Y3**: the tile from ``IMAGE.TILENAME``, the zero point from ``ZEROPOINT.MAG_ZERO`` of the
  ``red_immask`` file with ``SOURCE = 'FGCM'``, ``VERSION = 'v2.0'`` (coaddsrc.py:388-390);
  **Y6**: the tile through ``PFW_ATTEMPT_VAL`` (``KEY = 'tilename'``, ``VAL`` the tile) of the
  coadd attempt, the zero point ``IMAGE.MAG_ZERO`` of the nwgint row (coaddsrc.py:304-316;
  DarkEnergySurvey/MEPipelineAppIntg meds_query.py reads the same column);
* the nwgint file's archive path and compression (``FILE_ARCHIVE_INFO``, ``ARCHIVE_NAME =
  desar2home``) and its ``DESFILE`` size and MD5;
* the tile's coadd grid (``COADDTILE_GEOM``, :mod:`.tile_grid`), which the CCD images are
  re-coadded onto;
* the CCD's PSFEx model: the ``MISCFILE`` row with ``FILETYPE = 'psfex_model'`` of the
  ``red_immask``'s attempt, exposure and CCD (MEPipelineAppIntg coadd_query.py
  ``query_psfmodel``, 743-790, and its psfmodel branch, 1620-1633) with its archive path,
  size and MD5; where DESDM has no such row, the path desmeds derives from the
  ``red_immask``'s (coaddsrc.py:151-154, 174-204): ``.../p01/red/immask/X_immasked.fits`` ->
  ``.../p01/psf/X_psfexcat.psf``, with no size or MD5.

A CCD whose nwgint file is not archived, that has no zero point (or a NaN or non-positive
one) or no PSF model is *incomplete*: by default it fails the lookup, all or nothing, with
every problem named; ``drop_incomplete`` leaves such CCDs out and lists them in the manifest.
Two rows for one CCD (two tagged attempts, two red_immask parents, two PSF models) are
ambiguous and always an error: the tags are wrong.

Caveat, from reading DES's public code: desmeds, MEPipelineAppIntg, eastlake and the Y3 Balrog
pipeline all fetch the ``red_immask`` file and run ``coadd_nwgint`` themselves; none fetches
DESDM's nwgint files. Whether DESDM archives them is not shown there. If a release did not,
every CCD fails with "not in archive ..." naming the file.

The same schema / table prefix / archive options as :func:`balrog_runner.inputs.desdm.resolve`;
tiles go to the database in chunks of :data:`~balrog_runner.inputs.desdm.IN_CHUNK`.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..db.url import db_errors, safe_url
from ..errors import ConfigError, InputFileError
from . import tile_grid
from .desdm import (
    ARCHIVE_NAME,
    IDENT_RE,
    IN_CHUNK,
    DesdmTables,
    check_tiles,
    chunks,
    desdm_tables,
    table_label,
)
from .se_manifest import SEFileEntry, SEManifest

log = logging.getLogger(__name__)

SE_ERAS: tuple[str, ...] = ("y3", "y6")
SE_BANDS: tuple[str, ...] = ("g", "r", "i", "z", "Y")

# DESDM strings, in one place (sources in the module docstring).
NWGINT_FILETYPE = "coadd_nwgint"
IMMASK_FILETYPE = "red_immask"
PSFEX_FILETYPE = "psfex_model"
TILENAME_KEY = "tilename"
ZP_SOURCE, ZP_VERSION = "FGCM", "v2.0"
#: The SE processing tag each coadd release's nwgint images were made from (desmeds coaddsrc.py:206-218).
INPUT_TAGS: dict[str, str] = {
    "Y3A1_COADD": "Y3A1_FINALCUT", "Y3A2_COADD": "Y3A1_FINALCUT",
    "Y5A1_COADD": "Y5A1_FINALCUT",
    "Y6A1_COADD": "Y6A1_COADD_INPUT", "Y6A2_COADD": "Y6A1_COADD_INPUT",
}
#: How many problems a one-line error shows (all are logged).
SHOWN_PROBLEMS = 20


def se_era_for(release: str) -> str:
    """``y3`` for Y3 tags, ``y6`` for Y5/Y6 ones (desmeds picks its query so, coaddsrc.py:61-66)."""
    tag = release.upper()
    if tag.startswith(("SVA1", "Y1")):
        raise ConfigError(f"release {release}: DESDM has no coadd_nwgint images for Y1-era coadds "
                          "(single-epoch injection starts with Y3)")
    if tag.startswith("Y3"):
        return "y3"
    if tag.startswith(("Y5", "Y6")):
        return "y6"
    raise ConfigError(f"cannot tell the single-epoch era of release {release}; give the era (y3: ZEROPOINT "
                      "FGCM zero points, y6: PFW_ATTEMPT_VAL and IMAGE.MAG_ZERO)")


def input_tag_for(release: str) -> str:
    """The SE processing tag of ``release`` (:data:`INPUT_TAGS`); a ConfigError for others."""
    try:
        return INPUT_TAGS[release.upper()]
    except KeyError:
        known = ", ".join(f"{k} -> {v}" for k, v in INPUT_TAGS.items())
        raise ConfigError(f"no known single-epoch input tag for release {release}; give it "
                          f"(balrog-inputs --se-input-tag, e.g. Y3A1_FINALCUT). Known: {known}") from None


def se_query(t: DesdmTables, era: str) -> sa.Select:
    """Every nwgint CCD image of the tagged tiles and bands, with its red_immask parent, archive
    paths, DESFILE sizes/MD5, PSFEx model and zero point. One row per CCD (more: ambiguous).

    Binds ``tag``, ``input_tag``, ``archive_name``, ``tiles`` and ``bands`` (both expanding);
    Y3 also ``zp_source`` and ``zp_version``. Everything but the image join is an outer join,
    so a CCD lacking a file or a zero point comes back with NULLs and is named, not lost.
    """
    if era not in SE_ERAS:
        raise ConfigError(f"single-epoch era {era!r}; allowed: {', '.join(SE_ERAS)}")
    tme, tse = t.proctag.alias("tme"), t.proctag.alias("tse")
    i, j = t.image.alias("i"), t.image.alias("j")
    fi, fj, fp = (t.file_archive_info.alias(n) for n in ("fi", "fj", "fp"))
    di, dp = t.desfile.alias("di"), t.desfile.alias("dp")
    m = t.miscfile.alias("m")
    archive = sa.bindparam("archive_name")
    if era == "y3":
        tile_col = i.c.tilename
        start = tme.join(i, i.c.pfw_attempt_id == tme.c.pfw_attempt_id)
        tile_filter = [i.c.tilename.in_(sa.bindparam("tiles", expanding=True))]
    else:
        av = t.pfw_attempt_val.alias("av")
        tile_col = av.c.val
        start = (tme.join(av, av.c.pfw_attempt_id == tme.c.pfw_attempt_id)
                 .join(i, i.c.pfw_attempt_id == av.c.pfw_attempt_id))
        tile_filter = [av.c.key == TILENAME_KEY, av.c.val.in_(sa.bindparam("tiles", expanding=True))]
    joined = (
        start
        .join(j, sa.and_(j.c.expnum == i.c.expnum, j.c.ccdnum == i.c.ccdnum))
        .join(tse, tse.c.pfw_attempt_id == j.c.pfw_attempt_id)
        .outerjoin(fi, sa.and_(fi.c.filename == i.c.filename, fi.c.archive_name == archive))
        .outerjoin(di, di.c.id == fi.c.desfile_id)
        .outerjoin(fj, sa.and_(fj.c.filename == j.c.filename, fj.c.archive_name == archive))
        .outerjoin(m, sa.and_(m.c.pfw_attempt_id == j.c.pfw_attempt_id, m.c.expnum == j.c.expnum,
                              m.c.ccdnum == j.c.ccdnum, m.c.filetype == PSFEX_FILETYPE))
        .outerjoin(fp, sa.and_(fp.c.filename == m.c.filename, fp.c.archive_name == archive))
        .outerjoin(dp, dp.c.id == fp.c.desfile_id)
    )
    if era == "y3":
        z = t.zeropoint.alias("z")
        joined = joined.outerjoin(z, sa.and_(z.c.imagename == j.c.filename, z.c.source == sa.bindparam("zp_source"),
                                             z.c.version == sa.bindparam("zp_version")))
        mag_zero = z.c.mag_zero
    else:
        mag_zero = i.c.mag_zero
    return (
        sa.select(
            tile_col.label("tilename"), i.c.band, i.c.expnum, i.c.ccdnum, i.c.pfw_attempt_id,
            i.c.filename.label("nwgint_filename"), fi.c.path.label("nwgint_path"),
            fi.c.compression.label("nwgint_compression"), di.c.filesize.label("nwgint_size"),
            di.c.md5sum.label("nwgint_md5"), i.c.naxis1, i.c.naxis2,
            j.c.filename.label("immask_filename"), fj.c.path.label("immask_path"),
            m.c.filename.label("psf_filename"), fp.c.path.label("psf_path"),
            fp.c.compression.label("psf_compression"), dp.c.filesize.label("psf_size"),
            dp.c.md5sum.label("psf_md5"), mag_zero.label("mag_zero"),
        )
        .select_from(joined)
        .where(
            tme.c.tag == sa.bindparam("tag"), tse.c.tag == sa.bindparam("input_tag"),
            i.c.filetype == NWGINT_FILETYPE, j.c.filetype == IMMASK_FILETYPE,
            i.c.band.in_(sa.bindparam("bands", expanding=True)), *tile_filter,
        )
    )


def derived_psf_path(immask_path: str, immask_filename: str) -> str | None:
    """The PSFEx model path desmeds derives from a red_immask's (coaddsrc.py:151-154, 174-204):
    ``<...>/p01/red/immask`` + ``X_immasked.fits`` -> ``<...>/p01/psf/X_psfexcat.psf``; None if
    the path or name does not have that form."""
    parts = immask_path.strip("/").split("/")
    if len(parts) < 3 or parts[-2:] != ["red", "immask"] or not immask_filename.endswith("immasked.fits"):
        return None
    return "/".join([*parts[:-2], "psf", immask_filename[: -len("immasked.fits")] + "psfexcat.psf"])


def _join(path: str, filename: str, compression: str | None) -> str:
    return "/".join(x.strip("/") for x in (path, filename + (compression or "")))


def _size(value) -> int | None:
    return int(value) if value is not None else None


def _md5(value) -> str | None:
    return str(value).strip().lower() if value else None


def _entry_or_problem(band: str, row: Mapping, era: str, archive_name: str,
                      zp_label: str) -> tuple[SEFileEntry | None, str | None, bool]:
    """The CCD's entry, or (None, problem, derived-psf flag)."""
    expnum, ccdnum = int(row["expnum"]), int(row["ccdnum"])
    key = f"D{expnum:08d}_{band}_c{ccdnum:02d}"
    if row["nwgint_path"] is None:
        return None, (f"{key}: nwgint file {row['nwgint_filename']} is not in archive {archive_name} "
                      "(no FILE_ARCHIVE_INFO row)"), False
    zp = row["mag_zero"]
    if zp is None:
        return None, f"{key}: no zero point ({zp_label})", False
    zp = float(zp)
    if not (math.isfinite(zp) and zp > 0):
        return None, f"{key}: zero point {zp!r} ({zp_label}) is not a finite magnitude > 0", False
    derived = False
    if row["psf_filename"] is not None and row["psf_path"] is not None:
        psf = _join(row["psf_path"], row["psf_filename"], row["psf_compression"])
        psf_size, psf_md5 = _size(row["psf_size"]), _md5(row["psf_md5"])
    else:
        psf = derived_psf_path(row["immask_path"] or "", row["immask_filename"] or "")
        psf_size = psf_md5 = None
        derived = True
        if psf is None:
            where = (f"archived red_immask path {row['immask_path']}/{row['immask_filename']}" if row["immask_path"]
                     else f"red_immask {row['immask_filename']} not in archive {archive_name}")
            return None, (f"{key}: no PSFEx model (no MISCFILE {PSFEX_FILETYPE} row, and its path cannot be "
                          f"derived from the {where})"), False
    entry = SEFileEntry(
        band=band, expnum=expnum, ccdnum=ccdnum,
        image=_join(row["nwgint_path"], row["nwgint_filename"], row["nwgint_compression"]),
        psf=psf, mag_zero=zp, image_size=_size(row["nwgint_size"]), image_md5=_md5(row["nwgint_md5"]),
        psf_size=psf_size, psf_md5=psf_md5,
        naxis1=_size(row["naxis1"]) or None, naxis2=_size(row["naxis2"]) or None,
    )
    return entry, None, derived


def _distinct(rows: list[Mapping]) -> list[Mapping]:
    """Rows that differ in what the manifest would record (outer joins repeat identical ones)."""
    seen: dict[tuple, Mapping] = {}
    for row in rows:
        ident = (row["nwgint_filename"], row["nwgint_path"], row["immask_filename"], row["psf_filename"],
                 row["psf_path"], row["mag_zero"])
        seen.setdefault(ident, row)
    return list(seen.values())


def resolve_single_epoch(
    engine: Engine,
    release: str,
    tiles: Iterable[str],
    bands: Sequence[str] = SE_BANDS,
    era: str = "auto",
    input_tag: str | None = None,
    schema: str | None = None,
    prefix: str = "",
    archive_name: str = ARCHIVE_NAME,
    zeropoint: tuple[str, str] = (ZP_SOURCE, ZP_VERSION),
    drop_incomplete: bool = False,
    chunk: int = IN_CHUNK,
) -> SEManifest:
    """Resolve every ``tile`` x ``band`` of ``release`` into its SE file set (an :class:`SEManifest`).

    Raises :class:`InputFileError` naming every problem (a tile or band without images, an
    ambiguous or incomplete CCD) if any, so a caller writes all or nothing; with
    ``drop_incomplete`` incomplete CCDs are left out and listed in ``dropped`` instead.
    ``input_tag`` None takes the release's (:func:`input_tag_for`); ``zeropoint`` is the Y3
    ``ZEROPOINT`` (source, version).
    """
    for value, what in ((release, "release tag"), (input_tag or "X", "single-epoch input tag")):
        if not value or not IDENT_RE.fullmatch(value):
            raise ConfigError(f"{what} {value!r} is not a DESDM tag (e.g. Y3A2_COADD, Y3A1_FINALCUT)")
    if era == "auto":
        era = se_era_for(release)
    if era not in SE_ERAS:
        raise ConfigError(f"single-epoch era {era!r}; allowed: auto, {', '.join(SE_ERAS)}")
    input_tag = input_tag or input_tag_for(release)
    tiles = check_tiles(tiles)
    bands = list(bands)
    if not bands or len(set(bands)) != len(bands):
        raise ConfigError(f"bands {' '.join(bands) or '(none)'}: give each band once")
    if "det" in bands:
        raise ConfigError("band det has no single-epoch images: the detection image is made from the "
                          "re-coadded r, i, z")
    if not 1 <= chunk <= 1000:
        raise ConfigError(f"chunk {chunk} must be 1..1000 tiles (Oracle's IN-list limit)")
    zp_label = f"ZEROPOINT {zeropoint[0]} {zeropoint[1]}" if era == "y3" else "IMAGE.MAG_ZERO"
    t = desdm_tables(schema, prefix)
    query = se_query(t, era)
    ccds: dict[tuple[str, str, int, int], list[Mapping]] = defaultdict(list)
    with db_errors(engine, f"looking up the single-epoch images of release {release} ({era} era)"), \
            engine.connect() as conn:
        for part in chunks(tiles, chunk):
            params = {"tag": release, "input_tag": input_tag, "archive_name": archive_name, "tiles": part,
                      "bands": bands}
            if era == "y3":
                params |= {"zp_source": zeropoint[0], "zp_version": zeropoint[1]}
            for row in conn.execute(query, params).mappings():
                ccds[(row["tilename"], row["band"], int(row["expnum"]), int(row["ccdnum"]))].append(dict(row))
        grids, grid_sources = tile_grid.lookup_grids(conn, t, tiles, chunk, table_label(schema, prefix))
    out: dict[str, dict[str, tuple[SEFileEntry, ...]]] = {}
    dropped: dict[str, list[str]] = defaultdict(list)
    problems: list[str] = []
    incomplete = derived = 0
    for tile in tiles:
        keys = sorted(k for k in ccds if k[0] == tile)
        if not keys:
            problems.append(f"{tile}: no {NWGINT_FILETYPE} images of {release} with {input_tag} {IMMASK_FILETYPE} parents")
            continue
        out[tile] = {}
        for band in bands:
            entries: list[SEFileEntry] = []
            for key in (k for k in keys if k[1] == band):
                rows = _distinct(ccds[key])
                name = f"D{key[2]:08d}_{band}_c{key[3]:02d}"
                if len(rows) > 1:
                    files = sorted({str(r[c]) for r in rows for c in ("nwgint_filename", "immask_filename",
                                                                        "psf_filename") if r[c] is not None})
                    problems.append(f"{tile}: {name}: {len(rows)} candidate rows (two tagged nwgint images, "
                                    f"red_immask parents, PSF models or zero points among {', '.join(files)})")
                    continue
                entry, problem, was_derived = _entry_or_problem(band, rows[0], era, archive_name, zp_label)
                if problem is not None:
                    incomplete += 1
                    if drop_incomplete:
                        dropped[tile].append(problem)
                    else:
                        problems.append(f"{tile}: {problem}")
                    continue
                derived += was_derived
                entries.append(entry)
            if not entries:
                problems.append(f"{tile}: no usable {band} images")
            out[tile][band] = tuple(entries)
    where = f"{table_label(schema, prefix)}, input tag {input_tag}"
    problems += [f"{tile}: no row in {t.coaddtile_geom.name} and not a tile of the DES tiling (its coadd grid "
                 "is unknown)" for tile in tiles if tile not in grids]
    if problems:
        for problem in problems:
            log.error("%s", problem)
        shown = "; ".join(problems[:SHOWN_PROBLEMS])
        more = f"; and {len(problems) - SHOWN_PROBLEMS} more (logged above)" if len(problems) > SHOWN_PROBLEMS else ""
        hint = (f" ({incomplete} incomplete CCD(s): --drop-incomplete leaves them out and lists them in the "
                "manifest)" if incomplete and not drop_incomplete else "")
        raise InputFileError(f"release {release} ({era} era, {where}): {len(problems)} single-epoch problem(s): "
                             f"{shown}{more}{hint}")
    for tile, lines in dropped.items():
        log.warning("tile %s: %d incomplete CCD(s) left out: %s", tile, len(lines), "; ".join(lines))
    if derived:
        log.info("%d PSFEx path(s) derived from their red_immask path (no MISCFILE %s row)", derived, PSFEX_FILETYPE)
    nimages = sum(len(e) for bands_ in out.values() for e in bands_.values())
    log.info("release %s: %d tiles x %d bands, %d single-epoch images (%s era)", release, len(tiles), len(bands),
             nimages, era)
    return SEManifest(
        release=release, era=era, tiles=out, input_tag=input_tag, zeropoint=zp_label,
        database=safe_url(engine.url), schema=(schema or "").lower(), prefix=(prefix or "").lower(),
        archive_name=archive_name, bands=tuple(bands), dropped={t: tuple(d) for t, d in dropped.items()},
        grids=grids, grid_sources=grid_sources,
    )


__all__ = [
    "INPUT_TAGS", "NWGINT_FILETYPE", "SE_BANDS", "SE_ERAS", "derived_psf_path", "input_tag_for",
    "resolve_single_epoch", "se_era_for", "se_query",
]
