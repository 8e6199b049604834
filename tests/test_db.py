"""The results database on SQLite: tables, types, policies, crash safety, balrog-push.

``write_realization`` makes catalogs shaped as DEVELOPING.md "Catalog columns" says; the
PostgreSQL tests and the benchmark-free checks reuse it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import fitsio
import numpy as np
import pytest
import sqlalchemy as sa

from balrog_runner.cli import push as push_cli
from balrog_runner.db import (
    DuplicateRealizationError,
    PushPolicy,
    find_catalogs,
    make_engine,
    push_missing,
    push_realization,
    pushed_realizations,
    reset_tables,
    resolve_url,
)
from balrog_runner.errors import ConfigError, DatabaseError, InputFileError

BANDS = ("G", "R", "I", "Z", "Y", "DET")
MEASURED = {  # name -> dtype; all but X_IMAGE are in the DESDM list (as such or per band)
    "MAG_AUTO": "f4", "MAGERR_AUTO": "f4", "FLUX_AUTO": "f4", "FLUXERR_AUTO": "f4",
    "MAG_APER_1": "f4", "MAG_APER_2": "f4", "FLAGS": "i2", "A_IMAGE": "f4",
    "SPREAD_MODEL": "f4", "ALPHAWIN_J2000": "f8", "DELTAWIN_J2000": "f8", "X_IMAGE": "f4", "CLASS_STAR": "f4",
}


def truth_array(tile: str, real: int, ngal: int, istart: int, rng: np.random.Generator) -> np.ndarray:
    start = istart + real * ngal
    fields = [("balrog_index", "i8"), ("tilename", "S12"), ("realization", "i4"), ("indexstart", "i8"),
              ("seed", "i8"), ("x", "f8"), ("y", "f8"), ("ra", "f8"), ("dec", "f8"), ("objtype", "i2"),
              ("g1", "f4"), ("g2", "f4"), ("magnification", "f4")]
    fields += [(f"{p}_0", "f4") for p in ("sersic_n", "hlr", "q", "beta", "flux_frac")]
    for b in "grizY":
        fields += [(f"mag_{b}", "f4"), (f"flux_{b}", "f4"), (f"flux_noised_{b}", "f4")]
    fields.append(("not_drawn", "i4"))
    t = np.zeros(ngal, dtype=fields)
    t["balrog_index"] = np.arange(start, start + ngal)
    t["tilename"] = tile
    t["realization"] = real
    t["indexstart"] = start
    t["seed"] = start * 7 + 1
    for name in t.dtype.names[5:-1]:
        t[name] = rng.uniform(0.1, 30.0, ngal)
    t["mag_g"][0] = np.nan  # a NaN in truth too
    return t


def measured_array(truth: np.ndarray, ndet: int, rng: np.random.Generator) -> np.ndarray:
    fields = [("balrog_index", "i8"), ("tilename", "S12"), ("realization", "i4"), ("indexstart", "i8"),
              ("NUMBER", "i4")]
    fields += [(f"{name}_{band}", dt) for band in BANDS for name, dt in MEASURED.items()]
    s = np.zeros(ndet, dtype=fields)
    s["balrog_index"] = truth["balrog_index"][:ndet]
    if ndet > 1:
        s["balrog_index"][-1] = -1  # a detection with no truth nearby
    s["tilename"] = truth["tilename"][0]
    s["realization"] = truth["realization"][0]
    s["indexstart"] = truth["indexstart"][0]
    s["NUMBER"] = np.arange(1, ndet + 1)
    for name in s.dtype.names[5:]:
        if s.dtype[name].kind == "f":
            s[name] = rng.uniform(0.01, 5.0, ndet)
        else:
            s[name] = rng.integers(0, 4, ndet)
    if ndet:
        s["MAG_AUTO_G"][0] = np.nan
        s["MAGERR_AUTO_R"][0] = 99.0  # SExtractor's sentinel: too big for DESDM's NUMBER(5,4)
    return s


def write_realization(catdir: Path, tile: str, real: int, ngal: int = 20, istart: int = 1000,
                      ndet: int | None = None, seed: int = 1, nnosim: int = 2) -> tuple[Path, Path, Path]:
    """Write <catdir>/<TILE>_r<jjjj>_{truth,sim,nosim}.fits; returns the three paths."""
    rng = np.random.default_rng(seed + real)
    catdir.mkdir(parents=True, exist_ok=True)
    truth = truth_array(tile, real, ngal, istart, rng)
    sim = measured_array(truth, ngal - 2 if ndet is None else ndet, rng)
    nosim = measured_array(truth, nnosim, rng)
    paths = tuple(catdir / f"{tile}_r{real:04d}_{kind}.fits" for kind in ("truth", "sim", "nosim"))
    for path, data in zip(paths, (truth, sim, nosim), strict=True):
        fitsio.write(str(path), data, clobber=True)
    return paths


def write_match(paths) -> Path:
    """The realization's ``_match.fits`` beside its truth, computed by blends.match_table.

    The synthetic sim/nosim catalogs lack ``Y_IMAGE_DET``: it is added in memory only (a
    random detection-image y), so the match table has every column kind, NaN included.
    """
    from balrog_runner.measurement import blends

    truth, sim, nosim = (fitsio.read(str(p)) for p in paths[:3])
    rng = np.random.default_rng(int(truth["balrog_index"][0]))

    def with_y(cat: np.ndarray) -> np.ndarray:
        out = np.zeros(len(cat), dtype=cat.dtype.descr + [("Y_IMAGE_DET", "f4")])
        for name in cat.dtype.names:
            out[name] = cat[name]
        out["Y_IMAGE_DET"] = rng.uniform(0.1, 30.0, len(cat))
        return out

    table = blends.match_table(truth, with_y(sim), with_y(nosim))
    path = blends.match_path(paths[0])
    fitsio.write(str(path), table, extname="MATCH", clobber=True)
    return path


TILE = "DES0001+0001"


@pytest.fixture
def engine(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path / 'db' / 'camp.sqlite'}")
    yield eng
    eng.dispose()


def count(engine, table: str, where: str = "") -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table} {where}")).scalar_one()


# ------------------------------------------------------------------------ URL resolution


def test_default_url_is_sqlite_in_outdir(tmp_path):
    url = resolve_url(None, tmp_path, "camp")
    assert url.get_backend_name() == "sqlite"
    assert url.database == str(tmp_path / "camp.sqlite")


def test_desservices_section_gives_oracle_url_and_hides_password(tmp_path):
    ini = tmp_path / "desservices.ini"
    ini.write_text("[db-dessci]\nuser = alice\npasswd = s3cr3t-pw\nserver = desdb.example.org\n"
                   "port = 1521\nname = dessci\n\n[pg]\ntype = postgresql\nuser = bob\npasswd = pw2\n"
                   "server = localhost\nport = 5433\nname = balrog\n")
    url = resolve_url({"section": "db-dessci", "ini": str(ini)}, tmp_path, "camp")
    assert url.drivername == "oracle+oracledb"
    assert url.query["service_name"] == "dessci" and url.port == 1521 and url.username == "alice"
    assert "s3cr3t-pw" not in repr(url) and "s3cr3t-pw" not in url.render_as_string(hide_password=True)
    pg = resolve_url({"section": "pg", "ini": str(ini)}, tmp_path, "camp")
    assert pg.drivername == "postgresql+psycopg" and pg.database == "balrog" and pg.port == 5433
    with pytest.raises(ConfigError, match=r"section \[nope\] not found"):
        resolve_url({"section": "nope", "ini": str(ini)}, tmp_path, "camp")


def test_bare_dialects_get_installed_drivers_and_cx_oracle_needs_its_module(tmp_path):
    assert resolve_url({"url": "postgresql://u:p@h/d"}, tmp_path, "x").drivername == "postgresql+psycopg"
    assert resolve_url({"url": "oracle://u:p@h:1521/?service_name=s"}, tmp_path, "x").drivername == "oracle+oracledb"
    try:
        import cx_Oracle  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="cx_Oracle, which is not installed") as exc:
            resolve_url({"url": "oracle+cx_oracle://u:topsecret@h/x"}, tmp_path, "x")
        assert "topsecret" not in str(exc.value)
    with pytest.raises(ConfigError, match="unsupported backend 'mysql'"):
        resolve_url({"url": "mysql://u:p@h/d"}, tmp_path, "x")


# ------------------------------------------------------------------------ tables and values


def test_push_creates_tables_with_selected_columns_and_nulls(tmp_path, engine):
    paths = write_realization(tmp_path / "cat", TILE, 0)
    res = push_realization(engine, "camp", *paths)
    assert (res.tilename, res.realization, res.ntruth, res.nsim, res.nnosim, res.status) == (TILE, 0, 20, 18, 2, "pushed")
    insp = sa.inspect(engine)
    assert {"camp_truth", "camp_sim", "camp_nosim", "camp_des", "camp_pushed"} <= set(insp.get_table_names())
    sim_cols = {c["name"] for c in insp.get_columns("camp_sim")}
    assert {"balrog_index", "tilename", "realization", "number_sex", "mag_auto_det", "mag_aper_1_g",
            "flags_y", "a_image_det", "alphawin_j2000_det"} <= sim_cols
    assert "number" not in sim_cols and not any(c.startswith("x_image") for c in sim_cols)
    des_cols = {c["name"] for c in insp.get_columns("camp_des")}
    assert len(des_cols) == 587 and "mag_auto_g" in des_cols and count(engine, "camp_des") == 0
    indexed = {tuple(ix["column_names"]) for ix in insp.get_indexes("camp_sim")}
    assert ("balrog_index",) in indexed and ("tilename", "realization") in indexed
    sim = fitsio.read(str(paths[1]))
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT number_sex, mag_auto_g, magerr_auto_r, mag_auto_i, flags_g, balrog_index "
                                    "FROM camp_sim ORDER BY number_sex")).all()
        truth_nan = conn.execute(sa.text("SELECT mag_g FROM camp_truth WHERE balrog_index = 1000")).scalar_one()
        tilenames = conn.execute(sa.text("SELECT DISTINCT tilename FROM camp_truth")).scalars().all()
    assert rows[0].mag_auto_g is None and truth_nan is None  # NaN -> NULL
    assert rows[0].magerr_auto_r is None  # 99 cannot fit NUMBER(5,4): NULL, not an aborted push
    assert tilenames == [TILE]
    np.testing.assert_allclose([r.mag_auto_i for r in rows], np.round(sim["MAG_AUTO_I"], 4), atol=1e-4)
    assert [r.flags_g for r in rows] == sim["FLAGS_G"].tolist()
    assert rows[-1].balrog_index == -1
    assert pushed_realizations(engine, "camp") == {(TILE, 0): (1000, 20, 18, 2)}


def test_realization_without_nosim_detections(tmp_path, engine):
    paths = write_realization(tmp_path / "cat", TILE, 0, nnosim=0)
    with fitsio.FITS(str(paths[2])) as fits:
        assert fits[1].get_nrows() == 0
    res = push_realization(engine, "camp", *paths)
    assert (res.ntruth, res.nsim, res.nnosim) == (20, 18, 0)
    assert push_realization(engine, "camp", *paths).status == "already"
    assert "mag_auto_g" in {c["name"] for c in sa.inspect(engine).get_columns("camp_nosim")}


def test_bad_identifiers_are_refused(tmp_path, engine):
    paths = write_realization(tmp_path / "cat", TILE, 0)
    for bad in ("camp; DROP TABLE x", "1camp", "camp-x", "", "é"):
        with pytest.raises(DatabaseError, match="not allowed"):
            push_realization(engine, bad, *paths)
    with pytest.raises(DatabaseError, match="reader role"):
        from balrog_runner.db import check_identifier
        check_identifier("des reader", None, "reader role")
    assert sa.inspect(engine).get_table_names() == []


def test_columns_that_do_not_fit_existing_tables_are_refused(tmp_path, engine):
    push_realization(engine, "camp", *write_realization(tmp_path / "a", TILE, 0))
    truth, sim, nosim = write_realization(tmp_path / "b", TILE, 1)
    data = fitsio.read(str(sim))
    extra = np.zeros(len(data), dtype=data.dtype.descr + [("MAG_PSF_G", "f4")])
    for name in data.dtype.names:
        extra[name] = data[name]
    fitsio.write(str(sim), extra, clobber=True)
    with pytest.raises(InputFileError, match="mag_psf_g are not in table camp_sim"):
        push_realization(engine, "camp", truth, sim, nosim)
    assert count(engine, "camp_truth") == 20


def test_inconsistent_catalogs_are_refused(tmp_path, engine):
    truth, _, nosim = write_realization(tmp_path / "a", TILE, 0)
    _, other_sim, _ = write_realization(tmp_path / "b", TILE, 1)
    with pytest.raises(InputFileError, match="realization=1, truth has 0"):
        push_realization(engine, "camp", truth, other_sim, nosim)
    with pytest.raises(InputFileError, match="cannot read truth catalog"):
        push_realization(engine, "camp", tmp_path / "missing.fits", other_sim, nosim)


# ------------------------------------------------------------------------ policies


def test_duplicate_error_refuses_but_identical_repush_is_a_noop(tmp_path, engine):
    paths = write_realization(tmp_path / "cat", TILE, 3)
    assert push_realization(engine, "camp", *paths).status == "pushed"
    assert push_realization(engine, "camp", *paths).status == "already"
    assert count(engine, "camp_truth") == 20 and count(engine, "camp_sim") == 18
    # same balrog_index range, different content (fewer detections): refused, by name
    changed = write_realization(tmp_path / "cat2", TILE, 3, ndet=5)
    with pytest.raises(DuplicateRealizationError, match=r"DES0001\+0001 realization 3 .*already in camp_truth"):
        push_realization(engine, "camp", *changed)
    assert count(engine, "camp_sim") == 18


def test_duplicate_replace_replaces(tmp_path, engine):
    push_realization(engine, "camp", *write_realization(tmp_path / "a", TILE, 0))
    push_realization(engine, "camp", *write_realization(tmp_path / "a", TILE, 1))
    changed = write_realization(tmp_path / "b", TILE, 1, ndet=5)
    res = push_realization(engine, "camp", *changed, policy=PushPolicy(duplicate="replace"))
    assert res.status == "replaced"
    assert count(engine, "camp_sim", "WHERE realization = 1") == 5
    assert count(engine, "camp_sim", "WHERE realization = 0") == 18  # the neighbour is untouched
    assert count(engine, "camp_truth") == 40
    assert pushed_realizations(engine, "camp")[(TILE, 1)] == (1020, 20, 5, 2)


def test_policy_value_is_checked():
    with pytest.raises(DatabaseError, match="duplicate policy 'skip'"):
        PushPolicy(duplicate="skip")


def test_reset_tables_drops_loudly(tmp_path, engine, caplog):
    push_realization(engine, "camp", *write_realization(tmp_path / "a", TILE, 0))
    with caplog.at_level(logging.WARNING):
        dropped = reset_tables(engine, "camp")
    assert set(dropped) == {"camp_truth", "camp_sim", "camp_nosim", "camp_des", "camp_pushed"}
    assert any("DROPPING" in r.message for r in caplog.records if r.levelno == logging.WARNING)
    assert sa.inspect(engine).get_table_names() == []
    push_realization(engine, "camp", *write_realization(tmp_path / "a", TILE, 0))
    assert count(engine, "camp_truth") == 20


# ------------------------------------------------------------------------ crash safety

KILL_SCRIPT = """
import sys
from balrog_runner.db import push_realization
push_realization(sys.argv[1], sys.argv[2], *sys.argv[3:6], match_path=sys.argv[6] if len(sys.argv) > 6 else None)
"""


@contextlib.contextmanager
def paused_push(url: str, paths, dbname: str = "camp", env_extra=None):
    """A push in a subprocess, stopped just before its commit (test hook); SIGKILLed on exit.

    While paused it holds everything a push holds: its uncommitted rows and the lock.
    """
    env = dict(os.environ, BALROG_DB_PAUSE_BEFORE_COMMIT="1", **(env_extra or {}))
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, url, dbname, *map(str, paths)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    try:
        line = proc.stdout.readline()
        assert line == b"paused-before-commit\n", line
        yield proc
    finally:
        proc.kill()
        proc.wait()
        proc.stdin.close()
        proc.stdout.close()


def kill_during_push(url: str, paths, env_extra=None, dbname: str = "camp") -> None:
    """Run a push in a subprocess, SIGKILL it just before its commit (test hook), wait."""
    with paused_push(url, paths, dbname, env_extra):
        pass


def test_kill_before_commit_leaves_no_partial_realization(tmp_path, engine):
    push_realization(engine, "camp", *write_realization(tmp_path / "a", TILE, 0))
    paths = write_realization(tmp_path / "a", TILE, 1)
    kill_during_push(str(engine.url), paths)
    assert count(engine, "camp_truth", "WHERE realization = 1") == 0
    assert count(engine, "camp_sim", "WHERE realization = 1") == 0
    assert count(engine, "camp_nosim", "WHERE realization = 1") == 0
    assert (TILE, 1) not in pushed_realizations(engine, "camp")
    assert count(engine, "camp_truth") == 20
    assert push_realization(engine, "camp", *paths).status == "pushed"  # and it can be pushed later


def test_kill_before_commit_leaves_neither_truth_nor_match_rows(tmp_path, engine):
    first = write_realization(tmp_path / "a", TILE, 0)
    push_realization(engine, "camp", *first, match_path=write_match(first))
    paths = write_realization(tmp_path / "a", TILE, 1)
    match = write_match(paths)
    kill_during_push(str(engine.url), (*paths, match))  # paused after every insert, match included
    for kind in ("truth", "sim", "nosim", "match"):
        assert count(engine, f"camp_{kind}", "WHERE realization = 1") == 0, kind
    assert (TILE, 1) not in pushed_realizations(engine, "camp")
    assert count(engine, "camp_match") == 20
    assert push_realization(engine, "camp", *paths, match_path=match).nmatch == 20
    assert count(engine, "camp_match", "WHERE realization = 1") == 20


# ------------------------------------------------------------------------ campaign + CLI


def make_campaign(outdir: Path, tiles=(TILE, "DES2359+0001"), nreal: int = 3) -> None:
    for k, tile in enumerate(tiles):
        for j in range(nreal):
            write_realization(outdir / tile / "catalogs", tile, j, istart=10_000 * (k + 1))


def test_find_catalogs_groups_and_complains(tmp_path):
    make_campaign(tmp_path / "out")
    sets = find_catalogs([tmp_path / "out"])
    assert [(s.tilename, s.realization) for s in sets][:4] == [(TILE, 0), (TILE, 1), (TILE, 2), ("DES2359+0001", 0)]
    assert len(find_catalogs([tmp_path / "out" / TILE])) == 3
    (tmp_path / "out" / TILE / "catalogs" / f"{TILE}_r0001_nosim.fits").unlink()
    with pytest.raises(InputFileError, match=r"realization 1: no nosim catalog"):
        find_catalogs([tmp_path / "out"])


def test_push_missing_pushes_only_what_is_missing(tmp_path, engine):
    make_campaign(tmp_path / "out")
    sets = find_catalogs([tmp_path / "out"])
    push_realization(engine, "camp", sets[1].truth, sets[1].sim, sets[1].nosim)
    summary = push_missing(engine, "camp", sets)
    assert summary.skipped == 1 and len(summary.pushed) == 5 and not summary.failed
    assert len(pushed_realizations(engine, "camp")) == 6
    assert count(engine, "camp_truth") == 120


def test_cli_pushes_campaign_and_reports(tmp_path, capsys):
    out = tmp_path / "out"
    make_campaign(out, nreal=2)
    assert push_cli.main([str(out), "--dbname", "camp"]) == 0
    assert "pushed 4 realizations" in capsys.readouterr().out
    eng = make_engine(f"sqlite:///{out / 'camp.sqlite'}")
    assert count(eng, "camp_truth") == 80
    assert push_cli.main([str(out), "--dbname", "camp"]) == 0
    assert "4 already pushed" in capsys.readouterr().out
    assert push_cli.main([str(out), "--dbname", "camp", "--overwrite", "-q"]) == 0
    assert count(eng, "camp_truth") == 80
    eng.dispose()


def test_cli_database_outage_is_a_clean_error_and_keeps_catalogs(tmp_path, capsys):
    out = tmp_path / "out"
    make_campaign(out, tiles=(TILE,), nreal=1)
    before = {p: p.read_bytes() for p in out.rglob("*.fits")}
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the database directory should be")
    code = push_cli.main([str(out), "--db", f"sqlite:///{blocker / 'x.sqlite'}", "--dbname", "camp"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("balrog-push: error: ") and len(err.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in out.rglob("*.fits")} == before


@pytest.mark.parametrize("bad", ["bad-name", "", "_camp", "camp x", "ümlaut"])
def test_cli_bad_dbname_is_one_line_error_and_creates_nothing(tmp_path, capsys, bad):
    out = tmp_path / "out"
    make_campaign(out, tiles=(TILE,), nreal=1)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert push_cli.main([str(out), "--dbname", bad]) == 2  # '' used to mean "balrog", exit 0
    captured = capsys.readouterr()
    assert captured.err == f"balrog-push: error: dbname {bad!r} is not allowed: use letters, digits and " \
        "underscores, starting with a letter (it names the tables <dbname>_truth, _sim, _nosim, _match, _des, _pushed)\n"
    assert captured.out == ""
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # no <dbname>.sqlite, no .sqlite


def test_cli_dbname_too_long_for_postgresql_is_refused_on_sqlite_too(tmp_path, capsys):
    """The README's 51 characters hold on SQLite as well: 60 used to push there (the config
    refused it), and the campaign could then never be loaded into PostgreSQL."""
    out = tmp_path / "out"
    make_campaign(out, tiles=(TILE,), nreal=1)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    name = "c" * 60
    assert push_cli.main([str(out), "--dbname", name]) == 2
    captured = capsys.readouterr()
    assert captured.err == (f"balrog-push: error: dbname '{name}' is too long for every database (PostgreSQL's "
                            f"limit): it makes the name ix_{name}_truth_bi of 72 bytes, over the limit of 63; use at "
                            "most 51 characters\n")
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # no <dbname>.sqlite
    url = f"sqlite:///{tmp_path / 'other.sqlite'}"
    assert push_cli.main([str(out), "--db", url, "--dbname", name]) == 2
    assert push_cli.main([str(out), "--db", url, "--dbname", "c" * 51, "-q"]) == 0


def test_runner_pusher_refuses_bad_dbname_before_touching_anything(tmp_path):
    from types import SimpleNamespace

    from balrog_runner.db import DbnameError, make_realization_pusher

    for bad in ("", "_camp", "camp.x"):
        settings = SimpleNamespace(outdir=tmp_path, dbname=bad, db={}, db_columns=None, bands=("g",),
                                   overwrite_db=True)
        with pytest.raises(DbnameError, match=f"dbname {bad!r} is not allowed"):
            make_realization_pusher(settings)
        with pytest.raises(ConfigError):  # a config value too: config.py reports it with the others
            make_realization_pusher(settings)
    assert list(tmp_path.iterdir()) == []  # no '.sqlite' file, no DBoverwrite marker


def test_validate_dbname_is_the_one_check(tmp_path, engine):
    from balrog_runner.db import validate_dbname

    assert validate_dbname("Y3_Balrog") == "y3_balrog"
    long_ok = "b" * 51  # ix_<dbname>_truth_bi: 63 bytes, PostgreSQL's limit, on every backend
    assert validate_dbname(long_ok) == long_ok == validate_dbname(long_ok, engine.dialect)
    for dialect in (None, engine.dialect):  # SQLite takes 60 characters, PostgreSQL would not
        with pytest.raises(DatabaseError, match=r"too long for every database \(PostgreSQL's limit\): .* at most 51 "
                                                r"characters"):
            validate_dbname(long_ok + "b", dialect)
    for bad in (None, 3, "", "_x", "x-y", "1x"):
        with pytest.raises(DatabaseError, match="is not allowed"):
            validate_dbname(bad)
    with pytest.raises(DatabaseError, match="dbname '_camp' is not allowed"):
        reset_tables(engine, "_camp")
    with pytest.raises(DatabaseError, match="dbname '' is not allowed"):
        pushed_realizations(engine, "")


PUSH_SCRIPT = """
import sys
from balrog_runner.db import push_realization
print(push_realization(sys.argv[1], sys.argv[2], *sys.argv[3:6]).status)
"""


def concurrent_pushes(url: str, dbname: str, realizations) -> list[str]:
    """Start one process per realization at once (fresh tables: they race to create them)."""
    procs = [subprocess.Popen([sys.executable, "-c", PUSH_SCRIPT, url, dbname, *map(str, paths)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for paths in realizations]
    out = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * len(procs), [e for _, e in out]
    return [o.strip() for o, _ in out]


def test_concurrent_pushers_share_one_sqlite_file(tmp_path, engine):
    reals = [write_realization(tmp_path / "cat", TILE, j) for j in range(3)]
    assert concurrent_pushes(str(engine.url), "camp", reals) == ["pushed"] * 3
    assert count(engine, "camp_truth") == 60 and len(pushed_realizations(engine, "camp")) == 3


def test_runner_pusher_and_overwrite_once(tmp_path):
    from types import SimpleNamespace

    from balrog_runner.db import make_realization_pusher

    out = tmp_path / "out"
    make_campaign(out, tiles=(TILE,), nreal=2)
    cat = out / TILE / "catalogs"
    paths = [{k: cat / f"{TILE}_r{j:04d}_{k}.fits" for k in ("truth", "sim", "nosim")} for j in range(2)]
    settings = SimpleNamespace(outdir=out, dbname="camp", db={}, db_columns=None,
                               bands=("g", "r", "i", "z", "Y"), overwrite_db=True)
    pusher = make_realization_pusher(settings)  # first subjob: claims DBoverwrite (nothing to drop yet)
    assert pusher(paths[0]).status == "pushed"
    assert (out / ".camp.dboverwrite").exists()
    pusher2 = make_realization_pusher(settings)  # a resumed subjob must not drop what is there
    assert pusher2(paths[1]).status == "pushed"
    eng = make_engine(f"sqlite:///{out / 'camp.sqlite'}")
    assert count(eng, "camp_truth") == 40
    eng.dispose()


def test_runner_pusher_reports_unreachable_database(tmp_path):
    from types import SimpleNamespace

    from balrog_runner.db import make_realization_pusher

    settings = SimpleNamespace(outdir=tmp_path, dbname="camp", db={"url": "postgresql://u:hunter2@127.0.0.1:1/x"},
                               db_columns=None, bands=("g",), overwrite_db=False)
    with pytest.raises(DatabaseError, match="connecting on postgresql") as exc:
        make_realization_pusher(settings)
    assert "hunter2" not in str(exc.value)


# ------------------------------------------------------------------------ concurrent pushes of the same catalogs

RACER_SCRIPT = """
import sys
from types import SimpleNamespace
from balrog_runner.cli import push as push_cli
from balrog_runner.db import make_realization_pusher
mode, outdir, url, *paths = sys.argv[1:]
print("ready", flush=True)
while line := sys.stdin.readline():  # the barrier: a round starts when the test sends its dbname
    dbname = line.strip()
    if mode == "push":
        code = push_cli.main([outdir, "--db", url, "--dbname", dbname, "-q"])
    else:  # as runner.run_tiles: make_realization_pusher, then one call per finished realization
        settings = SimpleNamespace(outdir=outdir, dbname=dbname, db={"url": url}, db_columns=None,
                                   bands=("g", "r", "i", "z", "Y"), overwrite_db=False)
        try:
            print("status", make_realization_pusher(settings)(dict(zip(("truth", "sim", "nosim"), paths))).status)
            code = 0
        except Exception as exc:
            print(f"{type(exc).__name__}: {exc}")
            code = 1
    print(f"rc {code}", flush=True)
    print("ready", flush=True)
"""

SUMMARY_RE = r"pushed (\d+) realizations \(\d+ rows\) to \w+; (\d+) already pushed; (\d+) failed"


def race(commands: list[list[str]], dbnames: list[str], before_round=None) -> list[list[tuple[int, str]]]:
    """Run rounds of racers: one round per dbname, every command released at once in each.

    The racers are started once (imports take seconds on a busy machine) and block on a pipe
    between rounds; a round begins when the test writes its dbname to all of them, so they
    reach the database within milliseconds of each other, without sleeping. Returns per
    round each racer's (exit code, output with stderr).
    """
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for cmd in commands]
    rounds = []
    try:
        for dbname in dbnames:
            for p in procs:
                line = p.stdout.readline()
                assert line == "ready\n", line + p.stdout.read()
            if before_round is not None:
                before_round(dbname)
            for p in procs:
                p.stdin.write(dbname + "\n")
                p.stdin.flush()
            results = []
            for p in procs:
                lines = []
                while not (line := p.stdout.readline()).startswith("rc "):
                    assert line, "".join(lines)  # the racer died
                    lines.append(line)
                results.append((int(line.split()[1]), "".join(lines)))
            rounds.append(results)
    finally:
        for p in procs:
            p.stdin.close()
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            p.stdout.close()
    return rounds


def racer(mode: str, outdir: Path, url: str, *paths: Path) -> list[str]:
    return [sys.executable, "-c", RACER_SCRIPT, mode, str(outdir), url, *map(str, paths)]


def assert_pushed_once(results, nreal: int, before: int = 0) -> None:
    """Every racer exited 0; each of ``nreal`` realizations was inserted by exactly one racer and
    reported "already pushed" by the others (``before``: realizations every racer found pushed)."""
    assert all(rc == 0 for rc, _ in results), [o.strip().splitlines()[-1:] for _, o in results]
    written = already = 0
    for _, out in results:
        status = re.search(r"^status (\w+)$", out, re.M)  # after any warnings (values stored as NULL)
        if status:
            written += status[1] == "pushed"
            already += status[1] == "already"
            continue
        m = re.search(SUMMARY_RE, out)
        assert m, out
        written += int(m[1])
        already += int(m[2]) - before
        assert m[3] == "0", out
    assert written == nreal and already == nreal * (len(results) - 1), [o for _, o in results]


def check_single_copy(engine, dbname: str, nreal: int) -> None:
    assert count(engine, f"{dbname}_truth") == 20 * nreal
    assert count(engine, f"{dbname}_sim") == 18 * nreal
    assert count(engine, f"{dbname}_nosim") == 2 * nreal
    assert len(pushed_realizations(engine, dbname)) == nreal


RACE_ROUNDS = 5


def race_same_catalogs(tmp_path: Path, url: str, engine, prefix: str, tables_exist: bool,
                       racers: int = 3) -> None:
    """Several balrog-push of one campaign at once, a few rounds; one copy of each realization."""
    out = tmp_path / "out"
    make_campaign(out, tiles=(TILE,), nreal=3)
    first = [out / TILE / "catalogs" / f"{TILE}_r0000_{k}.fits" for k in ("truth", "sim", "nosim")]

    def push_first(dbname: str) -> None:  # realization 0 went in earlier: the race is on the check only
        if tables_exist:
            push_realization(engine, dbname, *first)

    dbnames = [f"{prefix}{'_old' if tables_exist else ''}{j}" for j in range(RACE_ROUNDS)]
    rounds = race([racer("push", out, url) for _ in range(racers)], dbnames, push_first)
    for dbname, results in zip(dbnames, rounds, strict=True):
        assert_pushed_once(results, 2 if tables_exist else 3, before=1 if tables_exist else 0)
        check_single_copy(engine, dbname, 3)


@pytest.mark.parametrize("tables_exist", [False, True], ids=["fresh-tables", "existing-tables"])
def test_concurrent_pushes_of_the_same_catalogs_insert_once_sqlite(tmp_path, engine, tables_exist):
    race_same_catalogs(tmp_path, str(engine.url), engine, "race", tables_exist)


def race_runner_and_pushes(tmp_path: Path, url: str, engine, prefix: str) -> None:
    """Two node runners' pushers and two balrog-push of the same realization at once."""
    out = tmp_path / "out"
    make_campaign(out, tiles=(TILE,), nreal=1)
    paths = [out / TILE / "catalogs" / f"{TILE}_r0000_{k}.fits" for k in ("truth", "sim", "nosim")]
    dbnames = [f"{prefix}{j}" for j in range(RACE_ROUNDS)]
    rounds = race([racer("runner", out, url, *paths), racer("runner", out, url, *paths),
                   racer("push", out, url), racer("push", out, url)], dbnames)
    for dbname, results in zip(dbnames, rounds, strict=True):
        assert_pushed_once(results, 1)
        check_single_copy(engine, dbname, 1)


def test_runner_and_push_at_once_insert_once_sqlite(tmp_path, engine):
    race_runner_and_pushes(tmp_path, str(engine.url), engine, "runrace")


def test_pushed_row_is_the_arbiter_behind_the_lock(tmp_path, engine, monkeypatch):
    """A writer whose look missed another's committed push (no lock: a foreign writer, or Oracle
    should its table lock be bypassed) is stopped by the _pushed primary key: everything of it
    rolls back, it looks again and reports "already" -- one copy, no error."""
    from balrog_runner.db import push as push_mod

    paths = write_realization(tmp_path / "cat", TILE, 0)
    assert push_realization(engine, "camp", *paths).status == "pushed"
    real_look = push_mod._resolve_duplicates
    looks = []

    def stale_first_look(*args, **kw):
        looks.append(1)
        return None if len(looks) == 1 else real_look(*args, **kw)

    monkeypatch.setattr(push_mod, "_resolve_duplicates", stale_first_look)
    assert push_realization(engine, "camp", *paths).status == "already"
    assert len(looks) == 2
    check_single_copy(engine, "camp", 1)


def test_push_of_an_outdir_alone_uses_the_campaign_record(tmp_path, capsys):
    """balrog-push <outdir> with no other option pushes where the runner pushed: the
    campaign's own database and dbname (recorded in campaign.json), not a new balrog.sqlite."""
    from balrog_runner.campaign.record import write_record

    out = tmp_path / "out"
    make_campaign(out, nreal=2)
    target = tmp_path / "elsewhere" / "results.sqlite"
    write_record(out, "camp", {"url": f"sqlite:///{target}", "duplicate": "error"}, None)
    assert push_cli.main([str(out)]) == 0
    assert "pushed 4 realizations" in capsys.readouterr().out
    assert not (out / "balrog.sqlite").exists() and not (out / "camp.sqlite").exists()
    eng = make_engine(f"sqlite:///{target}")
    assert count(eng, "camp_truth") == 80
    eng.dispose()
    # a URL's password is never recorded
    write_record(out, "camp", {"url": "postgresql+psycopg://me:Hh3-secret@localhost/x"}, None)
    assert "Hh3-secret" not in (out / "campaign.json").read_text()
# ------------------------------------------------------------------ outputs as DES users query them


def table_list(engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_table_prefix_names_every_table_as_des_did(tmp_path):
    """db['table-prefix'] = 'balrog_': push, bookkeeping, re-push, DBoverwrite all use balrog_<dbname>_*."""
    from types import SimpleNamespace

    from balrog_runner.db import make_realization_pusher, table_names

    out = tmp_path / "out"
    make_campaign(out, tiles=(TILE,), nreal=3)
    kinds = ("truth", "sim", "nosim", "match", "des", "pushed")
    assert table_names("camp", prefix="balrog_") == {k: f"balrog_camp_{k}" for k in kinds}
    cat = out / TILE / "catalogs"
    paths = {k: cat / f"{TILE}_r0000_{k}.fits" for k in ("truth", "sim", "nosim")}
    write_match((paths["truth"], paths["sim"], paths["nosim"]))
    settings = SimpleNamespace(outdir=out, dbname="camp", db={"table-prefix": "balrog_"}, db_columns=None,
                               bands=("g", "r", "i", "z", "Y"), overwrite_db=True)
    assert make_realization_pusher(settings)(paths).status == "pushed"  # the node runner's path
    assert (out / ".balrog_camp.dboverwrite").exists()
    eng = make_engine(f"sqlite:///{out / 'camp.sqlite'}")
    assert table_list(eng) == {f"balrog_camp_{k}" for k in kinds}
    assert set(pushed_realizations(eng, "camp", "balrog_")) == {(TILE, 0)}
    assert pushed_realizations(eng, "camp") == {}  # unprefixed names: another set of tables
    # balrog-push: the bookkeeping under the prefixed name says what is missing
    assert push_cli.main([str(out), "--dbname", "camp", "--table-prefix", "balrog_", "-q"]) == 0
    assert count(eng, "balrog_camp_truth") == 60 and table_list(eng) == {f"balrog_camp_{k}" for k in kinds}
    assert reset_tables(eng, "camp", "balrog_") == [f"balrog_camp_{k}" for k in kinds]
    assert table_list(eng) == set()
    eng.dispose()


def test_table_prefix_from_config_and_length_limits(tmp_path, capsys):
    from balrog_runner.db import DbnameError, validate_dbname

    out = tmp_path / "out"
    make_campaign(out, tiles=(TILE,), nreal=1)
    cfg = tmp_path / "cfg.py"
    cfg.write_text(
        "def CustomConfig(run, balrog, db, tiles):\n"
        f"    run.update(dbname='camp', outdir={str(out)!r}, pos={str(tmp_path)!r}, jobdir={str(tmp_path)!r},"
        " **{'fetch-layout': 'plain'})\n"
        "    db['table-prefix'] = 'balrog_'\n"
        "    tiles.append('DES0001+0001')\n"
        "    return run, balrog, db, tiles\n")
    assert push_cli.main([str(out), "--config", str(cfg), "-q"]) == 0
    eng = make_engine(f"sqlite:///{out / 'camp.sqlite'}")
    assert "balrog_camp_truth" in table_list(eng) and "camp_truth" not in table_list(eng)
    eng.dispose()
    # the prefix counts towards PostgreSQL's 63 bytes: ix_balrog_<dbname>_nosim_tr
    assert validate_dbname("c" * 51) and validate_dbname("c" * 44, prefix="balrog_")
    with pytest.raises(DbnameError, match=r"at most 44 characters with the table prefix 'balrog_'"):
        validate_dbname("c" * 51, sa.create_engine("postgresql+psycopg://u@h/d").dialect, "balrog_")
    for bad in ("_x", "1b", "bal rog", "x;"):
        with pytest.raises(DbnameError, match="table prefix"):
            validate_dbname("camp", prefix=bad)
    capsys.readouterr()
    code = push_cli.main([str(out), "--dbname", "camp", "--table-prefix", "bad-", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("balrog-push: error: table prefix 'bad-' is not allowed")
    assert len(err.strip().splitlines()) == 1


def test_config_checks_table_prefix_and_reader(tmp_path):
    from balrog_runner.campaign.config import load_config

    def cfg_file(db_lines: str, dbname: str = "camp") -> Path:
        path = tmp_path / "cfg.py"
        path.write_text(
            "def CustomConfig(run, balrog, db, tiles):\n"
            f"    run.update(dbname={dbname!r}, outdir={str(tmp_path)!r}, pos={str(tmp_path)!r}, "
            f"jobdir={str(tmp_path)!r}, **{{'fetch-layout': 'plain'}})\n"
            f"{db_lines}"
            "    tiles.append('DES0001+0001')\n"
            "    return run, balrog, db, tiles\n")
        return path

    cfg = load_config(cfg_file("    db['table-prefix'] = 'balrog_'\n    db['reader'] = ''\n"), check_positions=False)
    assert cfg.db["table-prefix"] == "balrog_" and cfg.db["reader"] == ""
    assert load_config(cfg_file(""), check_positions=False).db["table-prefix"] == ""
    with pytest.raises(ConfigError, match=r"db\['table-prefix'\]: table prefix 'bal-rog' is not allowed"):
        load_config(cfg_file("    db['table-prefix'] = 'bal-rog'\n"), check_positions=False)
    with pytest.raises(ConfigError, match=r"run\['dbname'\]: dbname 'c{45}' is too long .* at most 44 characters with "
                                         r"the table prefix 'balrog_'"):
        load_config(cfg_file("    db['table-prefix'] = 'balrog_'\n", dbname="c" * 45), check_positions=False)


def write_column_list(path: Path, names: list[str]) -> Path:
    rows = np.array([(n, "BINARY_FLOAT", "4", "None", "None") for n in names],
                    dtype=[("column_name", "S30"), ("type", "S15"), ("length", "S6"),
                           ("precision", "S9"), ("scale", "S5")])
    fitsio.write(str(path), rows, clobber=True)
    return path


def test_sim_and_nosim_carry_ra_dec_whatever_db_columns_says(tmp_path, engine):
    paths = write_realization(tmp_path / "cat", TILE, 0)
    sim = fitsio.read(str(paths[1]))
    light = write_column_list(tmp_path / "light-columns.fits", ["MAG_AUTO_G", "FLAGS_G"])  # no positions
    push_realization(engine, "camp", *paths, policy=PushPolicy(columns_file=light))
    for kind in ("sim", "nosim"):
        cols = [c["name"] for c in sa.inspect(engine).get_columns(f"camp_{kind}")]
        assert cols[:6] == ["balrog_index", "tilename", "realization", "indexstart", "ra", "dec"], cols
        assert "alphawin_j2000_det" not in cols  # db-columns dropped it; ra keeps the position
    with engine.connect() as conn:
        got = conn.execute(sa.text("SELECT NUMBER_SEX, RA, DEC FROM camp_sim ORDER BY number_sex")).all()
    assert [r[0] for r in got] == sim["NUMBER"].tolist()
    assert [r[1] for r in got] == sim["ALPHAWIN_J2000_DET"].tolist()  # float64, bit for bit
    assert [r[2] for r in got] == sim["DELTAWIN_J2000_DET"].tolist()


def test_ra_dec_fall_back_to_unwindowed_positions_or_warn(tmp_path, engine, caplog):
    truth_p, sim_p, nosim_p = write_realization(tmp_path / "cat", TILE, 0)

    def rename(path: Path, old: str, new: str) -> None:
        data = fitsio.read(str(path))
        names = [new if n == f"{old}_DET" else n for n in data.dtype.names]
        data.dtype.names = names
        fitsio.write(str(path), data, clobber=True)

    for p in (sim_p, nosim_p):  # a parameter file with ALPHA_J2000/DELTA_J2000 only
        rename(p, "ALPHAWIN_J2000", "ALPHA_J2000_DET")
        rename(p, "DELTAWIN_J2000", "DELTA_J2000_DET")
    push_realization(engine, "camp", truth_p, sim_p, nosim_p)
    with engine.connect() as conn:
        ra = conn.execute(sa.text("SELECT ra FROM camp_sim ORDER BY number_sex")).scalars().all()
    assert ra == fitsio.read(str(sim_p))["ALPHA_J2000_DET"].tolist()
    # no world position of the detection image at all: pushed, without ra/dec, and said so
    for p in (sim_p, nosim_p):
        data = fitsio.read(str(p))
        keep = [n for n in data.dtype.names if not n.startswith(("ALPHA", "DELTA"))]
        fitsio.write(str(p), data[keep], clobber=True)
    with caplog.at_level(logging.WARNING):
        push_realization(engine, "nopos", truth_p, sim_p, nosim_p)
    assert "ra" not in {c["name"] for c in sa.inspect(engine).get_columns("nopos_sim")}
    assert any("gets no ra/dec columns" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_push_onto_tables_made_before_ra_dec_still_works(tmp_path, engine, caplog):
    """Tables created by the previous version (no ra/dec): the campaign goes on, with a warning."""
    from balrog_runner.db import tables as tables_mod

    make_campaign(tmp_path / "out", tiles=(TILE,), nreal=2)
    sets = find_catalogs([tmp_path / "out"])
    push_realization(engine, "camp", sets[0].truth, sets[0].sim, sets[0].nosim)
    with engine.begin() as conn:  # make them look like the old layout
        for kind in ("sim", "nosim"):
            for col in ("ra", "dec"):
                conn.exec_driver_sql(f"ALTER TABLE camp_{kind} DROP COLUMN {col}")
    tables_mod._TABLE_CACHE.clear()  # as a new process would see them
    with caplog.at_level(logging.WARNING):
        summary = push_missing(engine, "camp", sets)
    assert [r.status for r in summary.pushed] == ["pushed"] and not summary.failed
    assert count(engine, "camp_sim") == 36
    assert any("lack camp_nosim.dec, camp_nosim.ra, camp_sim.dec, camp_sim.ra" in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)


def test_values_nulled_for_desdm_range_are_counted_and_said_once_per_table(tmp_path, engine, caplog):
    """A realization's NULLs are a DEBUG line; the WARNING comes once per table, with counts,
    from report_nulled_values (the runner and push_missing call it at the end)."""
    from balrog_runner.db import report_nulled_values

    report_nulled_values()  # a fresh tally (earlier tests of this process pushed too)
    caplog.clear()
    paths = write_realization(tmp_path / "cat", TILE, 0)
    sim = fitsio.read(str(paths[1]))
    sim["MAGERR_AUTO_G"][:3] = 99.0
    fitsio.write(str(paths[1]), sim, clobber=True)
    with caplog.at_level(logging.DEBUG, logger="balrog_runner.db"):
        push_realization(engine, "camp", *paths)
        push_realization(engine, "camp", *paths)  # "already": nothing stored, nothing counted
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        detail = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG and "stored as NULL" in r.getMessage()]
        assert detail == [f"{TILE} realization 0: 5 values outside their DESDM column's range stored as NULL: "
                          "camp_nosim.magerr_auto_r 1, camp_sim.magerr_auto_g 3, camp_sim.magerr_auto_r 1"]
        lines = report_nulled_values()
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == lines and len(lines) == 2, warned
    assert lines[0].startswith("camp_nosim: 1 values outside their DESDM column's range stored as NULL in 1 of the "
                               "1 realization(s) pushed: magerr_auto_r 1 (")
    assert lines[1].startswith("camp_sim: 4 values outside their DESDM column's range stored as NULL in 1 of the 1 "
                               "realization(s) pushed: magerr_auto_g 3, magerr_auto_r 1 (")
    assert report_nulled_values() == []  # said once
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM camp_sim WHERE MAGERR_AUTO_G IS NULL")).scalar_one() == 3


def test_a_campaign_push_says_nulls_once_per_table_not_once_per_realization(tmp_path, capsys):
    """40 realizations, each with SExtractor's 99 in DESDM's NUMBER(5,4) columns: the old push
    logged 40 WARNINGs of about a kilobyte (100,000 lines for a 1000-tile campaign)."""
    out = tmp_path / "out"
    nreal = 40
    for j in range(nreal):
        paths = write_realization(out / TILE / "catalogs", TILE, j)
        if j % 4 == 0:  # a quarter with more: 99 in MAGERR_AUTO_G too
            sim = fitsio.read(str(paths[1]))
            sim["MAGERR_AUTO_G"][:2] = 99.0
            fitsio.write(str(paths[1]), sim, clobber=True)
    from balrog_runner.db import report_nulled_values

    report_nulled_values()  # a fresh tally (earlier tests of this process pushed too)
    capsys.readouterr()
    assert push_cli.main([str(out), "--dbname", "camp"]) == 0
    warned = [ln.split(" WARNING balrog_runner.db.push: ", 1)[1] for ln in capsys.readouterr().err.splitlines()
              if " WARNING " in ln]
    assert [w.split(":", 1)[0] for w in warned] == ["camp_nosim", "camp_sim"], warned
    assert warned[1].startswith(f"camp_sim: {nreal + 2 * nreal // 4} values outside their DESDM column's range stored "
                                f"as NULL in {nreal} of the {nreal} realization(s) pushed: magerr_auto_r {nreal}, "
                                f"magerr_auto_g {2 * nreal // 4} (")
    assert sum(len(w) for w in warned) < 600



# ------------------------------------------------------------------------ the match table (blends.py)


def match_rows_equal_file(engine, table: str, match_path: Path, tile: str, real: int) -> None:
    """The DB rows of one realization's match table hold exactly the file's rows and values."""
    data = fitsio.read(str(match_path))
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT * FROM {table} WHERE tilename = :t AND realization = :r "
                                    "ORDER BY balrog_index"), {"t": tile, "r": real}).mappings().all()
    assert len(rows) == len(data) > 0
    rows = [{k.lower(): v for k, v in r.items()} for r in rows]  # nosim_mag_Y is stored as nosim_mag_y
    assert set(rows[0]) == {"tilename", "realization", "indexstart", *(n.lower() for n in data.dtype.names)}
    assert {r["indexstart"] for r in rows} == {int(data["balrog_index"][0])}
    for name in data.dtype.names:
        got = [r[name.lower()] for r in rows]
        want = data[name].tolist()
        if data.dtype[name].kind == "f":  # NaN is stored as NULL
            assert [None if np.isnan(w) else pytest.approx(w, rel=1e-12) for w in want] == got, name
        else:
            assert got == want, name


def test_match_table_is_pushed_in_the_realization_transaction(tmp_path, engine):
    paths = write_realization(tmp_path / "cat", TILE, 0)
    match = write_match(paths)
    res = push_realization(engine, "camp", *paths, match_path=match)
    assert (res.status, res.ntruth, res.nmatch) == ("pushed", 20, 20)
    match_rows_equal_file(engine, "camp_match", match, TILE, 0)
    assert np.isnan(fitsio.read(str(match))["det_dist"]).any()  # undetected objects: NULLs above
    indexed = {tuple(ix["column_names"]) for ix in sa.inspect(engine).get_indexes("camp_match")}
    assert ("balrog_index",) in indexed and ("tilename", "realization") in indexed
    assert push_realization(engine, "camp", *paths, match_path=match).status == "already"
    assert count(engine, "camp_match") == 20
    # the README's join: truth to match on balrog_index
    with engine.connect() as conn:
        joined = conn.execute(sa.text("SELECT count(*) FROM camp_truth t JOIN camp_match m "
                                      "ON m.balrog_index = t.balrog_index")).scalar_one()
    assert joined == 20


def test_match_file_that_is_not_the_truths_is_refused_before_any_write(tmp_path, engine):
    paths = write_realization(tmp_path / "cat", TILE, 0)
    match = write_match(paths)
    data = fitsio.read(str(match))
    fitsio.write(str(match), data[:-1], extname="MATCH", clobber=True)  # a row short
    with pytest.raises(InputFileError, match=r"match catalog .*_match.fits does not hold one row per truth row"):
        push_realization(engine, "camp", *paths, match_path=match)
    assert pushed_realizations(engine, "camp") == {}
    assert not {"camp_truth", "camp_match"} & set(sa.inspect(engine).get_table_names())


def test_replace_replaces_match_rows_too(tmp_path, engine):
    old = write_realization(tmp_path / "a", TILE, 1)
    push_realization(engine, "camp", *old, match_path=write_match(old))
    new = write_realization(tmp_path / "b", TILE, 1, ngal=20, ndet=5, seed=9)
    new_match = write_match(new)
    res = push_realization(engine, "camp", *new, policy=PushPolicy(duplicate="replace"), match_path=new_match)
    assert res.status == "replaced"
    match_rows_equal_file(engine, "camp_match", new_match, TILE, 1)
    # replaced by a realization without a match file: the old match rows go too
    push_realization(engine, "camp", *old, policy=PushPolicy(duplicate="replace"))
    assert count(engine, "camp_match") == 0 and count(engine, "camp_truth") == 20


def test_balrog_push_pushes_match_files_and_old_realizations_without_them(tmp_path, capsys):
    out = tmp_path / "out"
    make_campaign(out, tiles=(TILE,), nreal=3)
    cat = out / TILE / "catalogs"
    sets = {s.realization: s for s in find_catalogs([out])}
    matches = {j: write_match((sets[j].truth, sets[j].sim, sets[j].nosim)) for j in (0, 2)}  # r1: older runner
    assert find_catalogs([out])[0].match == matches[0] and find_catalogs([out])[1].match is None
    assert push_cli.main([str(out), "--dbname", "camp"]) == 0
    captured = capsys.readouterr()
    assert "pushed 3 realizations" in captured.out
    (line,) = [x for x in captured.err.splitlines() if "no match catalog beside" in x]  # INFO, the CLI's default
    assert f"{TILE}_r0001_truth.fits" in line
    eng = make_engine(f"sqlite:///{out / 'camp.sqlite'}")
    try:
        for j, path in matches.items():
            match_rows_equal_file(eng, "camp_match", path, TILE, j)
        assert count(eng, "camp_match", "WHERE realization = 1") == 0
        assert count(eng, "camp_truth") == 60
        # push again: per realization "already", nothing doubled
        assert push_cli.main([str(out), "--dbname", "camp", "--repush"]) == 0
        assert count(eng, "camp_match") == 40
    finally:
        eng.dispose()
    assert sorted(p.name for p in cat.glob("*_match.fits")) == [f"{TILE}_r0000_match.fits", f"{TILE}_r0002_match.fits"]


def test_runner_pusher_pushes_the_match_file_beside_truth(tmp_path):
    from types import SimpleNamespace

    from balrog_runner.db import make_realization_pusher

    out = tmp_path / "out"
    make_campaign(out, tiles=(TILE,), nreal=1)
    cat = out / TILE / "catalogs"
    paths = {k: cat / f"{TILE}_r0000_{k}.fits" for k in ("truth", "sim", "nosim")}  # runner.catalog_paths
    match = write_match((paths["truth"], paths["sim"], paths["nosim"]))
    settings = SimpleNamespace(outdir=out, dbname="camp", db={"table-prefix": "balrog_"}, db_columns=None,
                               bands=("g", "r", "i", "z", "Y"), overwrite_db=False)
    assert make_realization_pusher(settings)(paths).nmatch == 20
    eng = make_engine(f"sqlite:///{out / 'camp.sqlite'}")
    try:
        match_rows_equal_file(eng, "balrog_camp_match", match, TILE, 0)
    finally:
        eng.dispose()
