"""Release tag -> manifest, for real: DESDM's tables and rows built on PostgreSQL by the test
(a throwaway cluster, tests/pg_cluster.py), both eras; the SQL also compiled for Oracle;
easyaccess-style credentials, with the password never shown or written."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from astropy.io import fits
from pg_cluster import pg_cluster, unavailable_reason
from sqlalchemy.dialects import oracle

from balrog_runner.cli import inputs as inputs_cli
from balrog_runner.db.url import make_engine, resolve_url
from balrog_runner.errors import ConfigError, InputFileError
from balrog_runner.inputs import desdm, fetch, manifest

_REASON = unavailable_reason()
needs_pg = pytest.mark.skipif(_REASON is not None, reason=f"NO POSTGRESQL TESTS: {_REASON}")

T1, T2, T3 = "DES0002+0209", "DES0003-3832", "DES0005-4914"
BANDS = ("g", "r", "i", "z", "Y", "det")
Y3_TAG, Y1_TAG = "Y3A2_COADD", "Y1A1_COADD"

# DDL as DESDM spells it (upper case, unquoted): PostgreSQL folds it as Oracle does the other way
DESDM_DDL = """
CREATE TABLE {s}.{p}PROCTAG (TAG VARCHAR(50), PFW_ATTEMPT_ID BIGINT, CREATED_BY VARCHAR(30));
CREATE TABLE {s}.{p}COADD (FILENAME VARCHAR(100), TILENAME VARCHAR(20), BAND VARCHAR(5),
    FILETYPE VARCHAR(30), PFW_ATTEMPT_ID BIGINT, NAXIS1 INT);
CREATE TABLE {s}.{p}MISCFILE (FILENAME VARCHAR(100), TILENAME VARCHAR(20), BAND VARCHAR(5),
    FILETYPE VARCHAR(30), PFW_ATTEMPT_ID BIGINT, EXPNUM INT);
CREATE TABLE {s}.{p}FILE_ARCHIVE_INFO (FILENAME VARCHAR(100), PATH VARCHAR(200), COMPRESSION VARCHAR(5),
    ARCHIVE_NAME VARCHAR(20), DESFILE_ID BIGINT);
CREATE TABLE {s}.{p}DESFILE (ID BIGINT, FILENAME VARCHAR(100), FILETYPE VARCHAR(30), PFW_ATTEMPT_ID BIGINT,
    FILESIZE BIGINT, MD5SUM VARCHAR(32), COMPRESSION VARCHAR(5));
"""
Y1_DDL = """
CREATE TABLE {s}.COADD (ID BIGINT, RUN VARCHAR(100), TILENAME VARCHAR(20), BAND VARCHAR(5), NITE VARCHAR(8));
CREATE TABLE {s}.RUNTAG (RUN VARCHAR(100), TAG VARCHAR(50));
"""


def _image(path: Path, seed: int) -> None:
    """A small DESDM-like image, fpacked with the real fpack (the archive stores .fits.fz)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    sci = fits.PrimaryHDU(rng.normal(100, 5, (32, 40)).astype("f4"))
    sci.header["EXTNAME"] = "SCI"
    hdul = fits.HDUList([sci, fits.ImageHDU(np.zeros((32, 40), "i4"), name="MSK"),
                         fits.ImageHDU(np.ones((32, 40), "f4"), name="WGT")])
    path.parent.mkdir(parents=True, exist_ok=True)
    hdul.writeto(path, checksum=True)
    subprocess.run(["fpack", "-g", "-q", "0", str(path)], check=True, capture_output=True)
    path.unlink()


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def y3_rows(archive: Path, psf_src: Path):
    """Files on disk in the Y3 multiepoch layout and the DESDM rows that describe them.

    T1: every band; attempt 501 tagged, attempt 500 (r2589p01, same tile) NOT tagged, and a
    second archive copy (another ARCHIVE_NAME) of each file. T2: tagged, but no Y image and
    no det PSF model. T3: nothing.
    """
    proctag, coadd, misc, fai, desfile = [], [], [], [], []
    fid = 0
    for tile, att_id, req, tagged, skip in ((T1, 500, 2589, False, set()), (T1, 501, 2590, True, set()),
                                             (T2, 600, 2591, True, {("image", "Y"), ("psf", "det")})):
        if tagged:
            proctag.append({"tag": Y3_TAG, "pfw_attempt_id": att_id})
        proctag.append({"tag": "Y3A1_TESTING", "pfw_attempt_id": att_id})
        base = f"OPS/multiepoch/Y3A1/r{req}/{tile}/p01"
        for band in BANDS:
            for kind in ("image", "psf"):
                if (kind, band) in skip:
                    continue
                fid += 1
                if kind == "image":
                    name, comp, folder = f"{tile}_r{req}p01_{band}.fits", ".fz", f"{base}/coadd"
                    ftype = "coadd_det" if band == "det" else "coadd"
                    _image(archive / folder / name, seed=fid)
                    coadd.append({"filename": name, "tilename": tile, "band": band, "filetype": ftype,
                                  "pfw_attempt_id": att_id})
                else:
                    name, comp, folder = f"{tile}_r{req}p01_{band}_psfcat.psf", None, f"{base}/psf"
                    ftype = "coadd_det_psfex_model" if band == "det" else "coadd_psfex_model"
                    (archive / folder).mkdir(parents=True, exist_ok=True)
                    shutil.copy(psf_src, archive / folder / name)
                    misc.append({"filename": name, "tilename": tile, "band": band, "filetype": ftype,
                                 "pfw_attempt_id": att_id})
                stored = archive / folder / (name + (comp or ""))
                desfile.append({"id": fid, "filename": name, "filetype": ftype, "pfw_attempt_id": att_id,
                                "filesize": stored.stat().st_size, "md5sum": _md5(stored)})
                fai.append({"filename": name, "path": folder, "compression": comp, "archive_name": "desar2home",
                            "desfile_id": fid})
                fai.append({"filename": name, "path": "elsewhere/" + folder, "compression": comp,
                            "archive_name": "prodbeta", "desfile_id": fid})
        # other file types of the same attempt must not be picked up
        misc.append({"filename": f"{tile}_r{req}p01_g_segmap.fits", "tilename": tile, "band": "g",
                     "filetype": "coadd_segmap", "pfw_attempt_id": att_id})
        fai.append({"filename": f"{tile}_r{req}p01_g_segmap.fits", "path": f"{base}/seg", "compression": None,
                    "archive_name": "desar2home", "desfile_id": None})
    return {"proctag": proctag, "coadd": coadd, "miscfile": misc, "file_archive_info": fai, "desfile": desfile}


@pytest.fixture(scope="module")
def pg():
    if _REASON is not None:
        pytest.skip(f"NO POSTGRESQL TESTS: {_REASON}")
    with pg_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="module")
def archive(tmp_path_factory, des_psf_path) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("desarchive")
    return root, y3_rows(root, des_psf_path)


def _insert(engine, schema: str | None, prefix: str, rows: dict) -> None:
    meta = sa.MetaData()
    with engine.begin() as conn:
        for name, values in rows.items():
            if values:
                table = sa.Table(prefix + name, meta, autoload_with=conn, schema=schema)
                conn.execute(table.insert(), values)


@pytest.fixture(scope="module")
def desdm_db(pg, archive):
    """PROD schema (desoper-like), a Y6A2_-prefixed copy in public (dessci-like), a Y1 schema."""
    engine = make_engine(pg.url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA prod")
        conn.exec_driver_sql(DESDM_DDL.format(s="prod", p=""))
        conn.exec_driver_sql(DESDM_DDL.format(s="public", p="Y6A2_"))
        conn.exec_driver_sql("CREATE SCHEMA y1")
        conn.exec_driver_sql(Y1_DDL.format(s="y1"))
    _insert(engine, "prod", "", archive[1])
    _insert(engine, "public", "y6a2_", archive[1])
    y1_coadd, y1_runtag = [], []
    for k, (run, tagged) in enumerate((("20130903000001_" + T1, True), ("20140101000002_" + T1, False))):
        y1_runtag.append({"run": run, "tag": Y1_TAG if tagged else "Y1A1_TEST"})
        for band in BANDS:
            y1_coadd.append({"id": 10 * k + len(y1_coadd), "run": run, "tilename": T1,
                             "band": None if band == "det" else band})
    run2 = "20130904000003_" + T2
    y1_runtag.append({"run": run2, "tag": Y1_TAG})
    y1_coadd += [{"id": 99 + i, "run": run2, "tilename": T2, "band": b} for i, b in enumerate("griz")]
    _insert(engine, "y1", "", {"coadd": y1_coadd, "runtag": y1_runtag})
    yield engine
    engine.dispose()


def _count_queries(engine):
    seen = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a, **k: seen.append(a[2]))
    return seen


@needs_pg
def test_y3_manifest_from_tagged_attempt(desdm_db, archive, tmp_path):
    seen = _count_queries(desdm_db)
    m = desdm.resolve(desdm_db, Y3_TAG, [T1], schema="PROD")
    assert len(seen) == 1  # all bands, images and PSFs: one query
    assert m.era == "y3" and m.schema == "prod" and set(m.tiles[T1]) == set(BANDS)
    g, det = m.tiles[T1]["g"], m.tiles[T1]["det"]
    assert g.image == f"OPS/multiepoch/Y3A1/r2590/{T1}/p01/coadd/{T1}_r2590p01_g.fits.fz"  # the tagged attempt
    assert g.psf == f"OPS/multiepoch/Y3A1/r2590/{T1}/p01/psf/{T1}_r2590p01_g_psfcat.psf"
    assert det.image.endswith(f"{T1}_r2590p01_det.fits.fz") and det.psf.endswith("_det_psfcat.psf")
    root = archive[0]
    for entry in m.tiles[T1].values():  # sizes and MD5 are DESDM's record of the files on disk
        for path, size, md5 in ((entry.image, entry.image_size, entry.image_md5),
                                (entry.psf, entry.psf_size, entry.psf_md5)):
            assert (root / path).stat().st_size == size and _md5(root / path) == md5
    # the written manifest reads back identical, and the same relative paths are the Y3 layout
    out = manifest.write(m, tmp_path / "m.json")
    assert manifest.read(out).tiles == m.tiles
    src = fetch.ArchiveSource.create(str(root), layout="y3", campaign="Y3A1",
                                     attempt_table=_write(tmp_path / "att.txt", f"{T1} r2590 p01\n"))
    for band in BANDS:
        assert src.urls(T1, band) == tuple(f"{root.as_uri()}/{p}" for p in (m.tiles[T1][band].image,
                                                                             m.tiles[T1][band].psf))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@needs_pg
def test_dessci_prefix_and_chunked_in_lists(desdm_db):
    seen = _count_queries(desdm_db)
    tiles = [T1] * 1 + [f"DES00{k:02d}+0209" for k in range(10, 15)]
    with pytest.raises(InputFileError):
        desdm.resolve(desdm_db, Y3_TAG, tiles, prefix="Y6A2_", chunk=2)
    assert len(seen) == 3  # 6 tiles in IN lists of 2
    m = desdm.resolve(desdm_db, Y3_TAG, [T1], prefix="Y6A2_", bands=["r"])
    assert m.prefix == "y6a2_" and list(m.tiles[T1]) == ["r"]


@needs_pg
def test_y3_missing_bands_and_tiles_are_listed_and_nothing_written(desdm_db, tmp_path, capsys):
    out = tmp_path / "m.json"
    url = desdm_db.url.render_as_string(hide_password=False)
    code = inputs_cli.main(["--release", Y3_TAG, "--tile", T1, "--tile", T2, "--tile", T3, "--db", url,
                            "--schema", "prod", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists() and list(tmp_path.iterdir()) == []
    line = err.strip()
    assert "\n" not in line and line.startswith("balrog-inputs: error: release Y3A2_COADD (y3 era, tables prod.*)")
    assert f"{T2}: Y image, det PSF model" in line and f"{T3}: no tagged files at all" in line
    assert f"{T1}:" not in line
    assert desdm_db.url.password not in err


@needs_pg
def test_y1_runs_from_runtag(desdm_db, tmp_path):
    m = desdm.resolve(desdm_db, Y1_TAG, [T1], schema="y1")
    assert m.era == "y1"
    run = "20130903000001_" + T1  # the tagged run, not the newer untagged one
    assert m.tiles[T1]["det"].image == f"OPS/coadd/{run}/coadd/{T1}_det.fits.fz"  # BAND IS NULL
    assert m.tiles[T1]["Y"].psf == f"OPS/coadd/{run}/coadd/{T1}_Y_psfcat.psf"
    assert m.tiles[T1]["g"].image_size is None and m.tiles[T1]["g"].image_md5 is None
    src = fetch.ArchiveSource.create("https://example.org/desarchive", layout="y1", run=run)
    assert src.urls(T1, "i")[0] == "https://example.org/desarchive/" + m.tiles[T1]["i"].image
    with pytest.raises(InputFileError, match=rf"{T2}: Y image, Y PSF model, det image, det PSF model$"):
        desdm.resolve(desdm_db, Y1_TAG, [T1, T2], schema="y1")


@needs_pg
def test_ambiguous_tag_is_an_error(desdm_db):
    with desdm_db.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA twice")
        conn.exec_driver_sql(Y1_DDL.format(s="twice"))
        conn.exec_driver_sql(f"INSERT INTO twice.runtag VALUES ('a', '{Y1_TAG}'), ('b', '{Y1_TAG}')")
        conn.exec_driver_sql(f"INSERT INTO twice.coadd (run, tilename, band) VALUES ('a', '{T1}', 'g'), ('b', '{T1}', 'g')")
    with pytest.raises(InputFileError, match=r"g image: 2 tagged files \(attempts/runs a, b\)"):
        desdm.resolve(desdm_db, Y1_TAG, [T1], schema="twice", bands=["g"])


def test_queries_compile_for_oracle():
    ora = oracle.dialect()
    q = desdm.y3_query(desdm.desdm_tables("PROD"))
    tiles = [f"DES{k:04d}+0209" for k in range(3)]
    sql = str(q.params(tag=Y3_TAG, archive_name="desar2home", tiles=tiles)
              .compile(dialect=ora, compile_kwargs={"render_postcompile": True}))
    assert "FROM prod.proctag JOIN prod.coadd" in sql and "JOIN prod.miscfile" in sql
    assert "LEFT OUTER JOIN prod.desfile ON prod.desfile.id = prod.file_archive_info.desfile_id" in sql
    assert "prod.proctag.tag = :tag" in sql and "archive_name = :archive_name" in sql  # bound, not inlined
    assert "prod.coadd.tilename IN (:tiles_1, :tiles_2, :tiles_3)" in sql
    assert Y3_TAG not in sql and "DES0000" not in sql
    assert "UNION ALL" in sql and "'coadd_psfex_model'" not in sql  # filetypes are binds too
    sql1 = str(desdm.y1_query(desdm.desdm_tables(None, "Y6A2_")).compile(dialect=ora))
    assert "FROM y6a2_runtag JOIN y6a2_coadd ON y6a2_coadd.run = y6a2_runtag.run" in sql1
    assert "y6a2_coadd.band" in sql1 and ":tag" in sql1


def test_bad_arguments():
    eng = sa.create_engine("sqlite://")
    for kwargs, match in [({"release": "Y3A2 COADD"}, "not a DESDM tag"), ({"era": "y2"}, "era 'y2'; allowed"),
                          ({"tiles": ["DES0002+02"]}, "not a DES tile name"),
                          ({"schema": "prod; drop"}, "not a database identifier"),
                          ({"chunk": 1001}, "Oracle's IN-list limit")]:
        args = {"release": Y3_TAG, "tiles": [T1], **kwargs}
        with pytest.raises((ConfigError, Exception), match=match):
            desdm.resolve(eng, **args)
    assert desdm.era_for("Y1A1_COADD") == "y1" and desdm.era_for("SVA1_COADD") == "y1"
    assert desdm.era_for("Y6A2_COADD") == "y3"


# --- easyaccess credentials -------------------------------------------------------------------

PASSWORD = "pw+w/ith@odd%chars"


def _ini(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_desservices_sections_as_easyaccess_writes_them(tmp_path):
    ini = _ini(tmp_path / "desservices.ini", f"""[db-dessci]
user = me
passwd = {PASSWORD}
name = dessci
server = desdb.example.org
port = 1521

[db-desoper]
user = me
passwd = {PASSWORD}
name = desoper
server = desdb.example.org
port = 1522
""")
    for section in ("dessci", "db-dessci"):
        url = resolve_url({"section": section, "ini": ini}, tmp_path, "x")
        assert url.drivername == "oracle+oracledb" and url.query == {"service_name": "dessci"}
        assert (url.username, url.password, url.host, url.port) == ("me", PASSWORD, "desdb.example.org", 1521)
        text = url.render_as_string(hide_password=False)  # what the driver gets: round-trips exactly
        assert sa.make_url(text).password == PASSWORD
        assert url.render_as_string() == "oracle+oracledb://me:***@desdb.example.org:1521?service_name=dessci"
    assert resolve_url({"section": "desoper", "ini": ini}, tmp_path, "x").port == 1522
    with pytest.raises(ConfigError) as exc:
        resolve_url({"section": "desdr", "ini": ini}, tmp_path, "x")
    assert str(exc.value) == (f"section [desdr] not found in {ini} (nor [db-desdr]); "
                              "sections present: [db-dessci], [db-desoper]")


def test_password_never_shown_on_failure(tmp_path, capsys, caplog):
    """An unreachable Oracle (closed port) fails in one line naming the URL without the password."""
    ini = _ini(tmp_path / "desservices.ini",
               f"[db-dessci]\nuser = me\npasswd = {PASSWORD}\nname = dessci\nserver = 127.0.0.1\nport = 9\n")
    caplog.set_level(logging.DEBUG)
    code = inputs_cli.main(["--release", Y3_TAG, "--tile", T1, "--db", "dessci", "--ini", str(ini),
                            "-o", str(tmp_path / "m.json"), "--debug"])
    out, err = capsys.readouterr()
    assert code == 2 and not (tmp_path / "m.json").exists()
    assert "oracle+oracledb://me:***@127.0.0.1:9?service_name=dessci" in err
    for text in (out, err, caplog.text):
        assert PASSWORD not in text and "ith@odd" not in text and "ith%40odd" not in text


@needs_pg
def test_cli_with_desservices_section_writes_no_password(pg, desdm_db, tmp_path, capsys, caplog):
    ini = _ini(tmp_path / "desservices.ini",
               f"[db-desoper]\ntype = postgresql\nuser = {pg.user}\npasswd = {pg.password}\n"
               f"name = {pg.dbname}\nserver = 127.0.0.1\nport = {pg.port}\n")
    out_path = tmp_path / "out" / "manifest.json"
    caplog.set_level(logging.DEBUG)
    code = inputs_cli.main(["--release", Y3_TAG, "--tile", T1, "--db", "db-desoper", "--ini", str(ini),
                            "--schema", "prod", "-o", str(out_path), "-v", "-v"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out_path.read_text())
    assert data["release"] == Y3_TAG and data["era"] == "y3" and data["database"].endswith(f":{pg.port}/{pg.dbname}")
    written = [p.read_text() for p in tmp_path.rglob("*") if p.is_file() and p != ini]
    for text in (out, err, caplog.text, *written):
        assert pg.password not in text


@needs_pg
def test_output_that_is_a_directory_is_refused_before_the_query(desdm_db, tmp_path, capsys):
    """``-o <an existing directory>`` was a traceback after the lookup; now one line, first."""
    url = desdm_db.url.render_as_string(hide_password=False)
    code = inputs_cli.main(["--release", Y3_TAG, "--tile", T1, "--db", url, "--schema", "prod", "-o", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err
    assert err == (f"balrog-inputs: error: -o {tmp_path} is a directory; give the manifest file to write, "
                   f"e.g. -o {tmp_path / 'inputs.json'}")
    assert list(tmp_path.iterdir()) == []
    assert desdm_db.url.password not in err
