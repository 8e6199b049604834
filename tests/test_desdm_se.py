"""Release tag -> single-epoch manifest, for real: DESDM's IMAGE / PROCTAG / FILE_ARCHIVE_INFO /
DESFILE / MISCFILE / ZEROPOINT / PFW_ATTEMPT_VAL tables built on PostgreSQL by the test (DDL as
DESDM spells it), both eras (Y3: IMAGE.TILENAME and ZEROPOINT FGCM v2.0; Y6: PFW_ATTEMPT_VAL and
IMAGE.MAG_ZERO), each tile's coadd grid from COADDTILE_GEOM; the SQL also compiled for Oracle."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from pg_cluster import pg_cluster, unavailable_reason
from sqlalchemy.dialects import oracle

from balrog_runner.cli import inputs as inputs_cli
from balrog_runner.db.url import make_engine
from balrog_runner.errors import ConfigError, InputFileError
from balrog_runner.inputs import desdm, desdm_se, se_manifest, tile_grid
from balrog_runner.inputs.single_epoch import CoaddGrid

_REASON = unavailable_reason()
needs_pg = pytest.mark.skipif(_REASON is not None, reason=f"NO POSTGRESQL TESTS: {_REASON}")

T1, T2, T3 = "DES0002+0209", "DES0003-3832", "DES0005-4914"
BANDS = ("g", "r")
CCDS = (5, 6, 12)
ERA_TAGS = {"y3": ("Y3A2_COADD", "Y3A1_FINALCUT"), "y6": ("Y6A2_COADD", "Y6A1_COADD_INPUT")}

SE_DDL = """
CREATE TABLE {s}.{p}PROCTAG (TAG VARCHAR(50), PFW_ATTEMPT_ID BIGINT, CREATED_BY VARCHAR(30));
CREATE TABLE {s}.{p}IMAGE (FILENAME VARCHAR(100), FILETYPE VARCHAR(30), PFW_ATTEMPT_ID BIGINT,
    TILENAME VARCHAR(20), BAND VARCHAR(5), EXPNUM BIGINT, CCDNUM INT, MAG_ZERO DOUBLE PRECISION,
    NAXIS1 INT, NAXIS2 INT, RA_CENT DOUBLE PRECISION);
CREATE TABLE {s}.{p}MISCFILE (FILENAME VARCHAR(100), TILENAME VARCHAR(20), BAND VARCHAR(5),
    FILETYPE VARCHAR(30), PFW_ATTEMPT_ID BIGINT, EXPNUM BIGINT, CCDNUM INT);
CREATE TABLE {s}.{p}FILE_ARCHIVE_INFO (FILENAME VARCHAR(100), PATH VARCHAR(200), COMPRESSION VARCHAR(5),
    ARCHIVE_NAME VARCHAR(20), DESFILE_ID BIGINT);
CREATE TABLE {s}.{p}DESFILE (ID BIGINT, FILENAME VARCHAR(100), FILETYPE VARCHAR(30), PFW_ATTEMPT_ID BIGINT,
    FILESIZE BIGINT, MD5SUM VARCHAR(32), COMPRESSION VARCHAR(5));
CREATE TABLE {s}.{p}ZEROPOINT (IMAGENAME VARCHAR(100), MAG_ZERO REAL, MAG_ZERO_ERR REAL, SOURCE VARCHAR(30),
    VERSION VARCHAR(30), FLAG INT);
CREATE TABLE {s}.{p}PFW_ATTEMPT_VAL (PFW_ATTEMPT_ID BIGINT, KEY VARCHAR(100), VAL VARCHAR(200));
CREATE TABLE {s}.{p}COADDTILE_GEOM (ID BIGINT, TILENAME VARCHAR(20), RA_CENT DOUBLE PRECISION,
    DEC_CENT DOUBLE PRECISION, PIXELSCALE DOUBLE PRECISION, NAXIS1 INT, NAXIS2 INT, CROSSRA0 VARCHAR(1));
"""


def _md5(n: int) -> str:
    return f"{n:032x}"


class Rows:
    """DESDM rows of a synthetic survey, with what the manifest must say about each CCD."""

    def __init__(self, era: str):
        self.era = era
        self.coadd_tag, self.input_tag = ERA_TAGS[era]
        self.tables: dict[str, list[dict]] = {k: [] for k in (
            "proctag", "image", "miscfile", "file_archive_info", "desfile", "zeropoint", "pfw_attempt_val",
            "coaddtile_geom")}
        self.expected: dict[str, dict[str, dict]] = {}
        self._id = 0

    def _file(self, filename: str, path: str, compression: str | None, filetype: str, attempt: int,
              archived: bool = True) -> int:
        self._id += 1
        fid = self._id
        self.tables["desfile"].append({"id": fid, "filename": filename, "filetype": filetype, "pfw_attempt_id": attempt,
                                       "filesize": 1000 + fid, "md5sum": _md5(fid), "compression": compression})
        if archived:
            self.tables["file_archive_info"].append({"filename": filename, "path": path, "compression": compression,
                                                     "archive_name": "desar2home", "desfile_id": fid})
        # every file also has a copy in another archive, which must never be picked
        self.tables["file_archive_info"].append({"filename": filename, "path": "elsewhere/" + path,
                                                 "compression": compression, "archive_name": "prodbeta",
                                                 "desfile_id": fid})
        return fid

    def tile(self, tile: str, coadd_attempt: int, req: int, bands=BANDS, tagged: bool = True,
             no_zp=(), not_archived=(), no_psf_row=(), bad_immask_path=(), twice=(), first_expnum=229686) -> None:
        """One coadd attempt of ``tile``: 2 exposures x 3 CCDs per band, with the named defects
        (CCD keys ``D<expnum>_<band>_c<ccd>``)."""
        if tagged:
            self.tables["proctag"].append({"tag": self.coadd_tag, "pfw_attempt_id": coadd_attempt})
        self.tables["proctag"].append({"tag": self.coadd_tag + "_TEST", "pfw_attempt_id": coadd_attempt})
        self.tables["pfw_attempt_val"] += [{"pfw_attempt_id": coadd_attempt, "key": "tilename", "val": tile},
                                           {"pfw_attempt_id": coadd_attempt, "key": "reqnum", "val": str(req)}]
        me = f"OPS/multiepoch/Y3A1/r{req}/{tile}/p01"
        for b, band in enumerate(bands):
            for e in range(2):
                expnum = first_expnum + 10 * b + e + (1000 if not tagged else 0)
                se_attempt = 10 * expnum  # one finalcut attempt per exposure
                fc = f"OPS/finalcut/Y3A1/20131015-r2343/D{expnum:08d}/p01"
                if not any(r["pfw_attempt_id"] == se_attempt for r in self.tables["proctag"]):
                    self.tables["proctag"].append({"tag": self.input_tag, "pfw_attempt_id": se_attempt})
                    # a reprocessing of the same exposure, untagged: never picked
                    self.tables["proctag"].append({"tag": "Y3A1_FINALCUT_TEST", "pfw_attempt_id": se_attempt + 9000})
                for ccd in CCDS:
                    key = f"D{expnum:08d}_{band}_c{ccd:02d}"
                    nw = f"{tile}_r{req}p01_{key}_nwgint.fits"
                    im = f"D{expnum:08d}_{band}_c{ccd:02d}_r2343p01_immasked.fits"
                    psf = im.replace("immasked.fits", "psfexcat.psf")
                    zp_fgcm, zp_image = 31.0 + 0.001 * ccd + 0.01 * e, 30.5 + 0.001 * ccd
                    nw_id = self._file(nw, f"{me}/nwgint", ".fz", "coadd_nwgint", coadd_attempt,
                                       archived=key not in not_archived)
                    self.tables["image"].append({
                        "filename": nw, "filetype": "coadd_nwgint", "pfw_attempt_id": coadd_attempt,
                        "tilename": tile if self.era == "y3" else None, "band": band, "expnum": expnum,
                        "ccdnum": ccd, "mag_zero": zp_image, "naxis1": 2048, "naxis2": 4096})
                    immask_path = f"{fc}/red/immask" if key not in bad_immask_path else f"{fc}/red"
                    self._file(im, immask_path, ".fz", "red_immask", se_attempt)
                    for attempt in (se_attempt, se_attempt + 9000) + ((se_attempt + 1,) if key in twice else ()):
                        self.tables["image"].append({
                            "filename": im if attempt == se_attempt else im.replace("r2343", f"r{attempt}"),
                            "filetype": "red_immask", "pfw_attempt_id": attempt, "tilename": None, "band": band,
                            "expnum": expnum, "ccdnum": ccd, "mag_zero": 99.0, "naxis1": 2048, "naxis2": 4096})
                    if key in twice:
                        self.tables["proctag"].append({"tag": self.input_tag, "pfw_attempt_id": se_attempt + 1})
                    psf_id = None
                    if key not in no_psf_row:
                        psf_id = self._file(psf, f"{fc}/psf", None, "psfex_model", se_attempt)
                        self.tables["miscfile"].append({"filename": psf, "tilename": None, "band": band,
                                                        "filetype": "psfex_model", "pfw_attempt_id": se_attempt,
                                                        "expnum": expnum, "ccdnum": ccd})
                    # other files of the same CCD and attempt must not be taken for its PSF
                    self.tables["miscfile"].append({"filename": im.replace("immasked", "segmap"), "tilename": None,
                                                    "band": band, "filetype": "red_segmap",
                                                    "pfw_attempt_id": se_attempt, "expnum": expnum, "ccdnum": ccd})
                    if key not in no_zp:
                        self.tables["zeropoint"].append({"imagename": im, "mag_zero": zp_fgcm, "source": "FGCM",
                                                         "version": "v2.0", "flag": 0})
                    self.tables["zeropoint"] += [  # other calibrations of the same image: never picked
                        {"imagename": im, "mag_zero": 29.0, "source": "FGCM", "version": "y4a1_v1.5", "flag": 0},
                        {"imagename": im, "mag_zero": 28.0, "source": "PGCM_FORCED", "version": "v2.0", "flag": 0}]
                    if tagged:
                        self.expected.setdefault(tile, {})[key] = {
                            "image": f"{me}/nwgint/{nw}.fz", "image_size": 1000 + nw_id, "image_md5": _md5(nw_id),
                            "psf": f"{fc}/psf/{psf}", "psf_size": 1000 + psf_id if psf_id else None,
                            "psf_md5": _md5(psf_id) if psf_id else None,
                            "mag_zero": zp_fgcm if self.era == "y3" else zp_image}


def y3_rows() -> Rows:
    rows = Rows("y3")
    rows.tile(T1, 700, 2590, no_psf_row=("D00229696_r_c06",))  # a PSF found by its path alone
    rows.tile(T1, 699, 2589, tagged=False)  # an older attempt of the same tile: not tagged
    rows.tile(T2, 710, 2591, no_zp=("D00249686_g_c05",), not_archived=("D00249687_g_c12",),
              no_psf_row=("D00249696_r_c12",), bad_immask_path=("D00249696_r_c12",), first_expnum=249686)
    rows.tile(T3, 720, 2592, twice=("D00239697_r_c05",), first_expnum=239686)
    rows.tables["coaddtile_geom"].append({"id": 1, "tilename": T1, "ra_cent": 0.5, "dec_cent": 2.15, "pixelscale": 0.263,
                                          "naxis1": 10000, "naxis2": 10000, "crossra0": "N"})  # T2, T3: no row
    return rows


def y6_rows() -> Rows:
    rows = Rows("y6")
    rows.tile(T1, 800, 5137)
    rows.tile(T2, 810, 5138, bands=("g",), first_expnum=249686)
    rows.tables["coaddtile_geom"].append({"id": 1, "tilename": T2, "ra_cent": 1.25, "dec_cent": -38.5,
                                          "pixelscale": 0.263, "naxis1": 4096, "naxis2": 3072, "crossra0": "N"})
    return rows


@pytest.fixture(scope="module")
def pg():
    if _REASON is not None:
        pytest.skip(f"NO POSTGRESQL TESTS: {_REASON}")
    with pg_cluster() as cluster:
        yield cluster


def _insert(engine, schema: str, prefix: str, rows: Rows) -> None:
    meta = sa.MetaData()
    with engine.begin() as conn:
        for name, values in rows.tables.items():
            if values:
                conn.execute(sa.Table(prefix + name, meta, autoload_with=conn, schema=schema).insert(), values)


@pytest.fixture(scope="module")
def desdm_db(pg):
    """Y3 rows in a PROD schema (desoper-like); Y6 rows as Y6A2_-prefixed copies in public (dessci-like)."""
    engine = make_engine(pg.url)
    y3, y6 = y3_rows(), y6_rows()
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA prod")
        conn.exec_driver_sql(SE_DDL.format(s="prod", p=""))
        conn.exec_driver_sql(SE_DDL.format(s="public", p="Y6A2_"))
    _insert(engine, "prod", "", y3)
    _insert(engine, "public", "y6a2_", y6)
    yield engine, y3, y6
    engine.dispose()


def _count_queries(engine):
    seen = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a, **k: seen.append(a[2]))
    return seen


def _check(m, rows: Rows, tile: str, bands=BANDS) -> None:
    expected = rows.expected[tile]
    got = {e.key: e for band in bands for e in m.entries(tile, band)}
    assert sorted(got) == sorted(k for k in expected if k.split("_")[1] in bands)
    for key, e in got.items():
        want = expected[key]
        assert (e.image, e.image_size, e.image_md5, e.psf, e.psf_size, e.psf_md5) == (
            want["image"], want["image_size"], want["image_md5"], want["psf"], want["psf_size"], want["psf_md5"]), key
        assert e.mag_zero == pytest.approx(want["mag_zero"], abs=1e-6) and (e.naxis1, e.naxis2) == (2048, 4096)


@needs_pg
def test_y3_set_from_the_tagged_attempt_with_fgcm_zero_points(desdm_db, tmp_path):
    engine, y3, _ = desdm_db
    seen = _count_queries(engine)
    m = desdm_se.resolve_single_epoch(engine, "Y3A2_COADD", [T1], bands=BANDS, schema="PROD")
    assert len(seen) == 2  # every band, CCD, file and zero point of the chunk: one query; the grids: one
    assert (m.era, m.input_tag, m.zeropoint, m.schema) == ("y3", "Y3A1_FINALCUT", "ZEROPOINT FGCM v2.0", "prod")
    assert {b: len(m.entries(T1, b)) for b in BANDS} == {"g": 6, "r": 6} and not m.dropped
    _check(m, y3, T1)
    derived = next(e for e in m.entries(T1, "r") if e.key == "D00229696_r_c06")
    assert derived.psf.endswith("D00229696/p01/psf/D00229696_r_c06_r2343p01_psfexcat.psf") and derived.psf_size is None
    # written and read back: the same set; a node reads its tile alone
    path = se_manifest.write(m, tmp_path / "se.json")
    back = se_manifest.read(path, tiles=[T1])
    assert back.tiles == m.tiles and back.input_tag == "Y3A1_FINALCUT" and back.counts == {T1: {"g": 6, "r": 6}}
    # the tile's coadd grid, from its COADDTILE_GEOM row, carried by the manifest
    assert m.grids[T1] == CoaddGrid(ra=0.5, dec=2.15, naxis1=10000, naxis2=10000, pixel_scale=0.263)
    assert back.grids == m.grids and back.grid_sources == {T1: "COADDTILE_GEOM"}


@needs_pg
def test_y6_set_through_pfw_attempt_val_with_image_mag_zero(desdm_db):
    engine, _, y6 = desdm_db
    m = desdm_se.resolve_single_epoch(engine, "Y6A2_COADD", [T1, T2], bands=["g"], prefix="Y6A2_", chunk=1)
    assert (m.era, m.input_tag, m.zeropoint, m.prefix) == ("y6", "Y6A1_COADD_INPUT", "IMAGE.MAG_ZERO", "y6a2_")
    _check(m, y6, T1, bands=("g",))
    _check(m, y6, T2, bands=("g",))
    # T2's grid from its (prefixed) COADDTILE_GEOM row; T1 has none there: the DES tiling's 10000^2
    assert m.grids[T2] == CoaddGrid(ra=1.25, dec=-38.5, naxis1=4096, naxis2=3072, pixel_scale=0.263)
    assert (m.grids[T1].naxis1, m.grids[T1].naxis2) == (10000, 10000)
    assert m.grid_sources == {T1: "DES tiling", T2: "COADDTILE_GEOM"}
    with pytest.raises(InputFileError, match=rf"{T2}: no usable r images"):
        desdm_se.resolve_single_epoch(engine, "Y6A2_COADD", [T2], prefix="Y6A2_", bands=BANDS)


@needs_pg
def test_incomplete_ccds_fail_the_lookup_naming_each_and_nothing_is_written(desdm_db, tmp_path, capsys):
    engine, _, _ = desdm_db
    out = tmp_path / "se.json"
    url = engine.url.render_as_string(hide_password=False)
    code = inputs_cli.main(["--single-epoch", "--release", "Y3A2_COADD", "--tile", T1, "--tile", T2, "--db", url,
                            "--schema", "prod", "--bands", "g,r", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    line = err.strip().splitlines()[-1]
    assert line.startswith("balrog-inputs: error: release Y3A2_COADD (y3 era, tables prod.*, input tag "
                           "Y3A1_FINALCUT): 3 single-epoch problem(s): ")
    assert f"{T2}: D00249686_g_c05: no zero point (ZEROPOINT FGCM v2.0)" in line
    assert (f"{T2}: D00249687_g_c12: nwgint file {T2}_r2591p01_D00249687_g_c12_nwgint.fits is not in archive "
            "desar2home (no FILE_ARCHIVE_INFO row)") in line
    assert f"{T2}: D00249696_r_c12: no PSFEx model (no MISCFILE psfex_model row" in line
    assert line.endswith("(3 incomplete CCD(s): --drop-incomplete leaves them out and lists them in the manifest)")
    assert f"{T1}:" not in line and engine.url.password not in err
    # allowed: the three are left out, listed in the manifest, and the rest is the set
    code = inputs_cli.main(["--single-epoch", "--release", "Y3A2_COADD", "--tile", T1, "--tile", T2, "--db", url,
                            "--schema", "prod", "--bands", "g,r", "-o", str(out), "--drop-incomplete"])
    stdout = capsys.readouterr().out
    assert code == 0 and "21 single-epoch images" in stdout and "3 incomplete CCDs left out" in stdout
    m = se_manifest.read(out)
    assert sorted(d.split(":")[0] for d in m.dropped[T2]) == ["D00249686_g_c05", "D00249687_g_c12", "D00249696_r_c12"]
    assert {b: len(m.entries(T2, b)) for b in BANDS} == {"g": 4, "r": 5} and T1 not in m.dropped
    header = json.loads(out.read_text().splitlines()[0])
    assert header["mode"] == "single-epoch" and header["version"] == 2 and header["tiles"][T2]["dropped"] == 3
    assert engine.url.password not in out.read_text()


@needs_pg
def test_two_candidate_parents_are_an_error_even_when_dropping(desdm_db):
    engine, _, _ = desdm_db
    with pytest.raises(InputFileError, match=rf"{T3}: D00239697_r_c05: 2 candidate rows") as exc:
        desdm_se.resolve_single_epoch(engine, "Y3A2_COADD", [T3], schema="prod", bands=BANDS, drop_incomplete=True)
    assert "\n" not in str(exc.value)


@needs_pg
def test_tiles_without_images_and_the_era_of_a_release(desdm_db):
    engine, _, _ = desdm_db
    with pytest.raises(InputFileError, match=r"DES0010\+0209: no coadd_nwgint images of Y3A2_COADD with "
                                             r"Y3A1_FINALCUT red_immask parents"):
        desdm_se.resolve_single_epoch(engine, "Y3A2_COADD", [T1, "DES0010+0209"], schema="prod", bands=BANDS)
    # Y6 tags look the tile up through PFW_ATTEMPT_VAL: the Y3 tables (TILENAME filled) answer the same
    m = desdm_se.resolve_single_epoch(engine, "Y3A2_COADD", [T1], schema="prod", bands=["g"], era="y6")
    assert sorted({e.mag_zero for e in m.entries(T1, "g")}) == pytest.approx([30.505, 30.506, 30.512])  # IMAGE.MAG_ZERO


def test_se_sql_compiles_for_oracle_with_every_value_bound():
    ora = oracle.dialect()
    tiles = [f"DES{k:04d}+0209" for k in range(3)]
    for era, tile_clause in (("y3", "i.tilename IN (:tiles_1, :tiles_2, :tiles_3)"),
                             ("y6", "av.val IN (:tiles_1, :tiles_2, :tiles_3)")):
        q = desdm_se.se_query(desdm.desdm_tables("PROD"), era)
        params = {"tag": "Y3A2_COADD", "input_tag": "Y3A1_FINALCUT", "archive_name": "desar2home", "tiles": tiles,
                  "bands": ["g", "r"], "zp_source": "FGCM", "zp_version": "v2.0"}
        sql = str(q.params(**params).compile(dialect=ora, compile_kwargs={"render_postcompile": True}))
        assert "FROM prod.proctag tme JOIN " in sql and tile_clause in sql
        assert "JOIN prod.image j ON j.expnum = i.expnum AND j.ccdnum = i.ccdnum" in sql
        assert "JOIN prod.proctag tse ON tse.pfw_attempt_id = j.pfw_attempt_id" in sql
        assert "LEFT OUTER JOIN prod.file_archive_info fi ON fi.filename = i.filename AND fi.archive_name = :archive_name" in sql
        assert ("LEFT OUTER JOIN prod.miscfile m ON m.pfw_attempt_id = j.pfw_attempt_id AND m.expnum = j.expnum "
                "AND m.ccdnum = j.ccdnum AND m.filetype = :filetype_1") in sql
        assert "i.band IN (:bands_1, :bands_2)" in sql
        for literal in ("Y3A2_COADD", "FINALCUT", "desar2home", "DES0000", "coadd_nwgint", "red_immask",
                        "psfex_model", "FGCM", "'tilename'", '"'):
            assert literal not in sql, literal  # bound, and no quoted (case-sensitive) identifiers
        if era == "y3":
            assert ("LEFT OUTER JOIN prod.zeropoint z ON z.imagename = j.filename AND z.source = :zp_source "
                    "AND z.version = :zp_version") in sql and "z.mag_zero AS mag_zero" in sql
        else:
            assert "JOIN prod.pfw_attempt_val av ON av.pfw_attempt_id = tme.pfw_attempt_id" in sql
            assert "av.key = :key_1" in sql and "i.mag_zero AS mag_zero" in sql and "zeropoint" not in sql
    sql = str(desdm_se.se_query(desdm.desdm_tables(None, "Y6A2_"), "y6").compile(dialect=ora))
    assert "FROM y6a2_proctag tme JOIN y6a2_pfw_attempt_val av" in sql
    sql = str(tile_grid.grid_query(desdm.desdm_tables("PROD")).params(tiles=tiles).compile(
        dialect=ora, compile_kwargs={"render_postcompile": True}))
    assert "FROM prod.coaddtile_geom" in sql and "tilename IN (:tiles_1, :tiles_2, :tiles_3)" in sql
    assert "DES0000" not in sql and '"' not in sql


def test_a_coaddtile_geom_row_that_is_no_grid_is_an_error_naming_the_tile():
    row = {"tilename": T1, "ra_cent": 0.5, "dec_cent": 2.15, "pixelscale": 0.263, "naxis1": 10000, "naxis2": 10000}
    assert tile_grid.grid_from_row(row, "t").naxis1 == 10000
    for bad in ({"naxis1": 0}, {"pixelscale": None}, {"dec_cent": float("nan")}, {"naxis2": 10.5}):
        with pytest.raises(InputFileError, match=r"^tile DES0002\+0209 in coaddtile_geom: .* is not a tile grid"):
            tile_grid.grid_from_row({**row, **bad}, f"tile {T1} in coaddtile_geom")


def test_bad_arguments(tmp_path, capsys):
    eng = sa.create_engine("sqlite://")
    for kwargs, match in [({"bands": ["g", "det"]}, "band det has no single-epoch images"),
                          ({"release": "Y1A1_COADD"}, "no coadd_nwgint images for Y1-era coadds"),
                          ({"release": "DR2_COADD"}, "cannot tell the single-epoch era of release DR2_COADD"),
                          ({"release": "DR2_COADD", "era": "y3"}, "no known single-epoch input tag for release DR2"),
                          ({"era": "y1"}, "single-epoch era 'y1'; allowed: auto, y3, y6"),
                          ({"input_tag": "Y3A1 FINALCUT"}, "single-epoch input tag 'Y3A1 FINALCUT' is not a DESDM tag"),
                          ({"bands": ["g", "g"]}, "give each band once")]:
        with pytest.raises(ConfigError, match=match):
            desdm_se.resolve_single_epoch(eng, **{"release": "Y3A2_COADD", "tiles": [T1], **kwargs})
    assert desdm_se.se_era_for("Y6A1_COADD") == "y6" and desdm_se.se_era_for("Y3A1_COADD") == "y3"
    assert desdm_se.derived_psf_path("OPS/finalcut/Y2A1v3/20161124-r2747/D00596130/p01/red/immask/",
                                     "D00596130_g_c01_r2747p01_immasked.fits") == \
        "OPS/finalcut/Y2A1v3/20161124-r2747/D00596130/p01/psf/D00596130_g_c01_r2747p01_psfexcat.psf"
    assert desdm_se.derived_psf_path("OPS/x/red", "a_immasked.fits") is None
    for argv, match in [(["--drop-incomplete"], "--drop-incomplete: only with --single-epoch"),
                        (["--era", "y6"], "--era y6 is a single-epoch era")]:
        code = inputs_cli.main(["--release", "Y3A2_COADD", "--tile", T1, "--db", "sqlite://", "-o",
                                str(tmp_path / "m.json"), *argv])
        assert code == 2 and match in capsys.readouterr().err
