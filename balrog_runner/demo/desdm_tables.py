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
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa

from ..inputs import desdm
from ..inputs.fetch import file_md5
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
