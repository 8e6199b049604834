"""The demo's DESDM: its synthetic survey in the Y3 multiepoch layout, and the database rows
that find it from a release tag.

A real campaign resolves its inputs from DESDM's database once, on a login node
(``balrog-inputs``), and fetches them over HTTP on the nodes. The demo takes the same path:
the synthetic coadds are laid out as DESDM archives them
(``OPS/multiepoch/<campaign>/r<reqnum>/<TILE>/p<attnum>/{coadd,psf}/``, files named
``<TILE>_r<reqnum>p<attnum>_<band>...``) and the DESDM tables of :mod:`balrog_runner.inputs.desdm`
(``PROCTAG``, ``COADD``, ``MISCFILE``, ``FILE_ARCHIVE_INFO``, ``DESFILE``) are written to an
SQLite file, with each file's real size and MD5 — so the manifest, the download checks and
the fetch are all exercised as in production.

:func:`build_single_epoch` does the same for a synthetic single-epoch survey (each tile's CCD
images in nwgint form, with PSFEx models and zero points): the nwgint files under the tile's
attempt (``.../p01/nwgint/<TILE>_r<reqnum>p01_D<expnum>_<band>_c<ccd>_nwgint.fits[.fz]``), the
PSF models under their exposure's finalcut attempt
(``OPS/finalcut/<SE campaign>/r<reqnum>/D<expnum>/p01/psf/..._psfexcat.psf``), and the rows
:mod:`balrog_runner.inputs.desdm_se` joins: ``IMAGE`` (``coadd_nwgint`` per tile and CCD,
``red_immask`` per CCD), ``PROCTAG`` (the coadd tag per tile, the SE input tag per exposure),
``MISCFILE`` (``psfex_model``), ``FILE_ARCHIVE_INFO``, ``DESFILE``, ``COADDTILE_GEOM`` (each
synthetic tile's own grid), and per era ``ZEROPOINT``
(Y3, FGCM v2.0) or ``PFW_ATTEMPT_VAL`` + ``IMAGE.MAG_ZERO`` (Y6). The ``red_immask`` files
themselves are not in the archive (nothing fetches them); their rows are.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import fitsio
import sqlalchemy as sa

from ..errors import InputFileError
from ..inputs import desdm, desdm_se
from ..inputs.fetch import file_md5
from ..inputs.single_epoch import CoaddGrid
from ..inputs.source import Y3_IMAGE_RELPATH, Y3_PSF_RELPATH

#: The release tag and DESDM campaign the demo's archive pretends to be.
RELEASE = "Y3A2_COADD"
CAMPAIGN = "Y3A2"
FIRST_REQNUM = 4000
ATTNUM = "01"


def _place(src: Path, dst: Path) -> None:
    """Hard-link (or copy) ``src`` to ``dst``: the archive holds the survey's bytes as they are."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def build(survey: Path, archive: Path, database: Path, tiles: Sequence[str], bands: Sequence[str]) -> str:
    """Lay ``survey/<TILE>/<TILE>_<band>.fits.fz`` (+ PSFs) out under ``archive`` in the Y3
    layout and write the DESDM rows describing them to ``database`` (replaced).

    Returns the SQLAlchemy URL of the database. Tile k gets request ``FIRST_REQNUM + k``,
    attempt ``ATTNUM``; every attempt is tagged ``RELEASE``.
    """
    rows: dict[str, list[dict]] = {k: [] for k in ("proctag", "coadd", "miscfile", "file_archive_info", "desfile")}
    file_id = 0
    for k, tile in enumerate(tiles):
        values = {"campaign": CAMPAIGN, "reqnum": str(FIRST_REQNUM + k), "attnum": ATTNUM, "tile": tile}
        attempt = 1000 + k
        rows["proctag"].append({"tag": RELEASE, "pfw_attempt_id": attempt})
        for band in [*bands, "det"]:
            for kind, relpath, src in (
                ("image", Y3_IMAGE_RELPATH, survey / tile / f"{tile}_{band}.fits.fz"),
                ("psf", Y3_PSF_RELPATH, survey / tile / f"{tile}_{band}_psfcat.psf"),
            ):
                stored = relpath.format(band=band, **values)
                _place(src, archive / stored)
                folder, name = stored.rsplit("/", 1)
                compression = ".fz" if name.endswith(".fz") else None
                filename = name[: -len(".fz")] if compression else name
                file_id += 1
                if kind == "image":
                    filetype = "coadd_det" if band == "det" else "coadd"
                    rows["coadd"].append({"filename": filename, "tilename": tile, "band": band,
                                          "filetype": filetype, "pfw_attempt_id": attempt})
                else:
                    filetype = "coadd_det_psfex_model" if band == "det" else "coadd_psfex_model"
                    rows["miscfile"].append({"filename": filename, "tilename": tile, "band": band,
                                             "filetype": filetype, "pfw_attempt_id": attempt})
                rows["file_archive_info"].append({"filename": filename, "path": folder, "compression": compression,
                                                  "archive_name": desdm.ARCHIVE_NAME, "desfile_id": file_id})
                rows["desfile"].append({"id": file_id, "filename": filename, "filetype": filetype,
                                        "pfw_attempt_id": attempt, "filesize": (archive / stored).stat().st_size,
                                        "md5sum": file_md5(archive / stored)})
    database.parent.mkdir(parents=True, exist_ok=True)
    database.unlink(missing_ok=True)
    url = f"sqlite:///{database}"
    engine = sa.create_engine(url)
    tables = desdm.desdm_tables()
    try:
        tables.coadd.metadata.create_all(engine)
        with engine.begin() as conn:
            for name, table_rows in rows.items():
                conn.execute(getattr(tables, name).insert(), table_rows)
    finally:
        engine.dispose()
    return url


#: The SE releases the demo can pretend to be, per era: (coadd tag, DESDM campaign of the finalcut paths).
SE_RELEASES = {"y3": ("Y3A2_COADD", "Y3A1"), "y6": ("Y6A2_COADD", "Y6A1")}
SE_FIRST_REQNUM = 3000
#: Finalcut attempt ids start here (one per exposure), above any coadd attempt of :func:`build`.
SE_FIRST_ATTEMPT = 100_000


class SEImageLike(Protocol):
    """What :func:`build_single_epoch` needs of a CCD image (:class:`~balrog_runner.inputs.single_epoch.SEImage` has it)."""

    band: str
    expnum: int
    ccdnum: int
    image: Path
    psf: Path
    mag_zero: float


def _image_shape(path: Path) -> tuple[int, int]:
    """(naxis1, naxis2) of the first image HDU with pixels (a .fz's compressed one too)."""
    with fitsio.FITS(str(path)) as f:
        for hdu in f:
            dims = hdu.get_dims() if hdu.get_exttype() == "IMAGE_HDU" else []
            if len(dims) == 2:
                return int(dims[1]), int(dims[0])
    raise InputFileError(f"{path} has no image HDU")


def _open_tables(database: Path) -> tuple[sa.Engine, desdm.DesdmTables]:
    database.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(f"sqlite:///{database}")
    tables = desdm.desdm_tables()
    tables.coadd.metadata.create_all(engine)  # checkfirst: a database build() made keeps its rows
    return engine, tables


def _coadd_attempts(conn: sa.Connection, tables: desdm.DesdmTables) -> dict[str, int]:
    """The coadd attempt of each tile the database already knows (from :func:`build` or an
    earlier :func:`build_single_epoch`), so a tile keeps one attempt and two tiles never share one."""
    known = {r.tilename: int(r.pfw_attempt_id) for r in conn.execute(
        sa.select(tables.coadd.c.tilename, tables.coadd.c.pfw_attempt_id).distinct())}
    av = tables.pfw_attempt_val
    known |= {r.val: int(r.pfw_attempt_id) for r in conn.execute(
        sa.select(av.c.val, av.c.pfw_attempt_id).where(av.c.key == desdm_se.TILENAME_KEY))}
    return known


def _se_exposures(conn: sa.Connection, tables: desdm.DesdmTables) -> tuple[dict[int, int], dict[tuple[int, int], tuple[str, float]]]:
    """The finalcut attempt of each exposure, and the red_immask name and zero point of each
    (expnum, ccdnum), that the database already has."""
    im = tables.image
    rows = conn.execute(sa.select(im.c.expnum, im.c.ccdnum, im.c.pfw_attempt_id, im.c.filename, im.c.mag_zero)
                        .where(im.c.filetype == desdm_se.IMMASK_FILETYPE)).all()
    exposures = {int(r.expnum): int(r.pfw_attempt_id) for r in rows}
    ccds = {(int(r.expnum), int(r.ccdnum)): (str(r.filename), float(r.mag_zero)) for r in rows}
    return exposures, ccds


def build_single_epoch(tiles: Mapping[str, Iterable[SEImageLike]], archive: Path, database: Path,
                       era: str = "y3", grids: Mapping[str, CoaddGrid] | None = None) -> str:
    """Lay a synthetic SE survey out under ``archive`` as DESDM does and add the DESDM rows that
    find it to the SQLite ``database`` (created if absent; rows :func:`build` wrote stay).

    ``tiles`` maps each tile to its CCD images (their files are hard-linked or copied; an image
    ending in ``.fz`` is archived compressed). A CCD may serve several tiles (its exposure
    overlaps them): it then has one ``red_immask``, PSF model and zero point, and one nwgint
    file per tile; its zero point must be the same in each. A tile keeps the coadd attempt the
    database has for it (:func:`build`'s ``1000 + k``, request ``FIRST_REQNUM + k``) or gets the
    next free one, tagged with the era's release (:data:`SE_RELEASES`); an exposure keeps its
    finalcut attempt too (or gets the next from :data:`SE_FIRST_ATTEMPT`), tagged with the
    release's SE input tag. ``grids`` gives tiles their ``COADDTILE_GEOM`` row (a synthetic
    tile's own grid; a tile without one has no row, as a tile DESDM never coadded). Returns
    the SQLAlchemy URL of the database.
    """
    if era not in SE_RELEASES:
        raise InputFileError(f"era {era!r}; allowed: {', '.join(SE_RELEASES)}")
    release, se_campaign = SE_RELEASES[era]
    input_tag = desdm_se.input_tag_for(release)
    engine, tables = _open_tables(database)
    names = ("proctag", "image", "miscfile", "file_archive_info", "desfile", "zeropoint", "pfw_attempt_val",
             "coaddtile_geom")
    rows: dict[str, list[dict]] = {k: [] for k in names}
    try:
        with engine.begin() as conn:
            file_id = int(conn.execute(sa.select(sa.func.max(tables.desfile.c.id))).scalar() or 0)
            tagged = {(r.tag, r.pfw_attempt_id) for r in conn.execute(sa.select(tables.proctag))}

            def tag(name: str, attempt: int) -> None:
                if (name, attempt) not in tagged:
                    tagged.add((name, attempt))
                    rows["proctag"].append({"tag": name, "pfw_attempt_id": attempt})

            def archived(src: Path, folder: str, name: str, filetype: str, attempt: int) -> str:
                """Place ``src`` at ``folder/name[.fz]``, add its FILE_ARCHIVE_INFO and DESFILE rows;
                return the DESDM filename (without the compression suffix)."""
                nonlocal file_id
                compression = ".fz" if src.name.endswith(".fz") else None
                stored = archive / folder / (name + (compression or ""))
                _place(src, stored)
                file_id += 1
                rows["file_archive_info"].append({"filename": name, "path": folder, "compression": compression,
                                                  "archive_name": desdm.ARCHIVE_NAME, "desfile_id": file_id})
                rows["desfile"].append({"id": file_id, "filename": name, "filetype": filetype,
                                        "pfw_attempt_id": attempt, "filesize": stored.stat().st_size,
                                        "md5sum": file_md5(stored)})
                return name

            attempts = _coadd_attempts(conn, tables)
            exposures, ccds = _se_exposures(conn, tables)
            for tile, images in tiles.items():
                if tile not in attempts:
                    attempts[tile] = max(attempts.values(), default=999) + 1
                attempt = attempts[tile]
                reqnum = FIRST_REQNUM + attempt - 1000
                tag(release, attempt)
                rows["pfw_attempt_val"].append({"pfw_attempt_id": attempt, "key": desdm_se.TILENAME_KEY, "val": tile})
                grid = (grids or {}).get(tile)
                if grid is not None:
                    g = tables.coaddtile_geom
                    conn.execute(sa.delete(g).where(g.c.tilename == tile))  # a rebuilt tile has one row
                    rows["coaddtile_geom"].append({"tilename": tile, "ra_cent": grid.ra, "dec_cent": grid.dec,
                                                   "pixelscale": grid.pixel_scale, "naxis1": grid.naxis1,
                                                   "naxis2": grid.naxis2})
                nwgint_dir = f"OPS/multiepoch/{CAMPAIGN}/r{reqnum}/{tile}/p{ATTNUM}/nwgint"
                for img in images:
                    if img.expnum not in exposures:
                        exposures[img.expnum] = max(exposures.values(), default=SE_FIRST_ATTEMPT - 1) + 1
                    se_attempt = exposures[img.expnum]
                    se_req = SE_FIRST_REQNUM + se_attempt - SE_FIRST_ATTEMPT
                    tag(input_tag, se_attempt)
                    key = f"D{img.expnum:08d}_{img.band}_c{img.ccdnum:02d}"
                    naxis1, naxis2 = _image_shape(Path(img.image))
                    nwgint = archived(Path(img.image), nwgint_dir, f"{tile}_r{reqnum}p{ATTNUM}_{key}_nwgint.fits",
                                      desdm_se.NWGINT_FILETYPE, attempt)
                    rows["image"].append({
                        "filename": nwgint, "filetype": desdm_se.NWGINT_FILETYPE, "pfw_attempt_id": attempt,
                        "tilename": tile if era == "y3" else None, "band": img.band, "expnum": img.expnum,
                        "ccdnum": img.ccdnum, "mag_zero": float(img.mag_zero), "naxis1": naxis1, "naxis2": naxis2})
                    done = ccds.get((img.expnum, img.ccdnum))
                    if done is not None:
                        if done[1] != float(img.mag_zero):
                            raise InputFileError(f"{key}: zero point {img.mag_zero} in tile {tile}, {done[1]} in "
                                                 "another tile; a CCD has one zero point")
                        continue
                    base = f"OPS/finalcut/{se_campaign}/r{se_req}/D{img.expnum:08d}/p01"
                    immask = f"{key}_r{se_req}p01_immasked.fits"
                    ccds[(img.expnum, img.ccdnum)] = (immask, float(img.mag_zero))
                    rows["image"].append({
                        "filename": immask, "filetype": desdm_se.IMMASK_FILETYPE, "pfw_attempt_id": se_attempt,
                        "tilename": None, "band": img.band, "expnum": img.expnum, "ccdnum": img.ccdnum,
                        "mag_zero": float(img.mag_zero), "naxis1": naxis1, "naxis2": naxis2})
                    file_id += 1  # the red_immask file: known to DESDM, not placed (nothing fetches it)
                    rows["file_archive_info"].append({"filename": immask, "path": f"{base}/red/immask",
                                                      "compression": ".fz", "archive_name": desdm.ARCHIVE_NAME,
                                                      "desfile_id": file_id})
                    psf = archived(Path(img.psf), f"{base}/psf", immask.replace("immasked.fits", "psfexcat.psf"),
                                   desdm_se.PSFEX_FILETYPE, se_attempt)
                    rows["miscfile"].append({"filename": psf, "tilename": None, "band": img.band,
                                             "filetype": desdm_se.PSFEX_FILETYPE, "pfw_attempt_id": se_attempt,
                                             "expnum": img.expnum, "ccdnum": img.ccdnum})
                    if era == "y3":
                        rows["zeropoint"].append({"imagename": immask, "mag_zero": float(img.mag_zero),
                                                  "source": desdm_se.ZP_SOURCE, "version": desdm_se.ZP_VERSION})
            for name, table_rows in rows.items():
                if table_rows:
                    conn.execute(getattr(tables, name).insert(), table_rows)
    finally:
        engine.dispose()
    return f"sqlite:///{database}"
