"""The results database on a real PostgreSQL 15 server (a throwaway cluster, see pg_cluster.py)."""

from __future__ import annotations

import logging

import fitsio
import numpy as np
import pytest
import sqlalchemy as sa
from pg_cluster import pg_cluster, unavailable_reason
from test_db import (
    TILE,
    concurrent_pushes,
    count,
    kill_during_push,
    make_campaign,
    match_rows_equal_file,
    paused_push,
    race_runner_and_pushes,
    race_same_catalogs,
    write_match,
    write_realization,
)

from balrog_runner.cli import push as push_cli
from balrog_runner.db import (
    DuplicateRealizationError,
    PushPolicy,
    make_engine,
    push_realization,
    pushed_realizations,
)
from balrog_runner.errors import DatabaseError

_REASON = unavailable_reason()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=f"NO POSTGRESQL TESTS: {_REASON}")


@pytest.fixture(scope="session")
def pg():
    with pg_cluster() as cluster:
        yield cluster


@pytest.fixture
def engine(pg):
    eng = make_engine(pg.url)
    yield eng
    eng.dispose()


def column_types(engine, table: str) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns "
            "WHERE table_name = :t"), {"t": table}).all()
    return {r[0]: r[1] + (f"({r[2]},{r[3]})" if r[1] == "numeric" else "") for r in rows}


def test_push_types_nulls_and_grant(tmp_path, pg, engine):
    paths = write_realization(tmp_path / "cat", TILE, 0)
    res = push_realization(engine, "pgtypes", *paths, policy=PushPolicy(reader=pg.reader))
    assert (res.ntruth, res.nsim, res.nnosim) == (20, 18, 2)
    types = column_types(engine, "pgtypes_sim")
    assert types["mag_auto_g"] == "numeric(6,4)"  # NUMBER(6,4) in the DESDM list
    assert types["magerr_auto_det"] == "numeric(5,4)"
    assert types["a_image_r"] == "real"  # BINARY_FLOAT
    assert types["alphawin_j2000_z"] == "double precision"  # BINARY_DOUBLE
    assert types["flags_i"] == "smallint"  # NUMBER(3,0)
    assert types["number_sex"] == "integer" and types["balrog_index"] == "bigint"
    assert column_types(engine, "pgtypes_des")["tilename"] == "character varying"
    with engine.connect() as conn:
        nulls = conn.execute(sa.text("SELECT count(*) FROM pgtypes_sim WHERE mag_auto_g IS NULL")).scalar_one()
        rerr = conn.execute(sa.text("SELECT magerr_auto_r FROM pgtypes_sim ORDER BY number_sex LIMIT 1")).scalar_one()
        granted = conn.execute(sa.text("SELECT has_table_privilege(:r, 'pgtypes_truth', 'SELECT')"),
                               {"r": pg.reader}).scalar_one()
        bi = conn.execute(sa.text("SELECT balrog_index FROM pgtypes_truth ORDER BY balrog_index")).scalars().all()
    assert nulls == 1 and rerr is None and granted
    assert bi == list(range(1000, 1020))
    indexes = {tuple(ix["column_names"]) for ix in sa.inspect(engine).get_indexes("pgtypes_truth")}
    assert {("balrog_index",), ("tilename", "realization")} <= indexes


def test_duplicate_policies(tmp_path, engine):
    paths = write_realization(tmp_path / "a", TILE, 2)
    push_realization(engine, "pgdup", *paths)
    assert push_realization(engine, "pgdup", *paths).status == "already"
    changed = write_realization(tmp_path / "b", TILE, 2, ndet=4)
    with pytest.raises(DuplicateRealizationError, match=r"DES0001\+0001 realization 2"):
        push_realization(engine, "pgdup", *changed)
    assert count(engine, "pgdup_sim") == 18
    assert push_realization(engine, "pgdup", *changed, policy=PushPolicy(duplicate="replace")).status == "replaced"
    assert count(engine, "pgdup_sim") == 4 and count(engine, "pgdup_truth") == 20
    assert pushed_realizations(engine, "pgdup") == {(TILE, 2): (1040, 20, 4, 2)}


def test_kill_before_commit_leaves_nothing(tmp_path, pg, engine):
    first = write_realization(tmp_path / "a", TILE, 0)
    push_realization(engine, "pgkill", *first, match_path=write_match(first))
    paths = write_realization(tmp_path / "a", TILE, 1)
    match = write_match(paths)
    kill_during_push(pg.url, (*paths, match), dbname="pgkill")
    for kind in ("truth", "sim", "nosim", "match"):
        assert count(engine, f"pgkill_{kind}", "WHERE realization = 1") == 0, kind
    assert set(pushed_realizations(engine, "pgkill")) == {(TILE, 0)}
    assert push_realization(engine, "pgkill", *paths, match_path=match).status == "pushed"
    match_rows_equal_file(engine, "pgkill_match", match, TILE, 1)


def test_match_table_on_postgres_equals_the_file_and_is_granted(tmp_path, pg, engine):
    paths = write_realization(tmp_path / "cat", TILE, 0)
    match = write_match(paths)
    res = push_realization(engine, "pgmatch", *paths, match_path=match, policy=PushPolicy(reader=pg.reader))
    assert (res.status, res.nmatch) == ("pushed", 20)
    match_rows_equal_file(engine, "pgmatch_match", match, TILE, 0)
    types = column_types(engine, "pgmatch_match")
    assert types["blend_class"] == "smallint" and types["nosim_dist"] == "double precision"
    assert types["balrog_index"] == "bigint" and types["tilename"] == "character varying"
    with engine.connect() as conn:
        granted = conn.execute(sa.text("SELECT has_table_privilege(:r, 'pgmatch_match', 'SELECT')"),
                               {"r": pg.reader}).scalar_one()
    assert granted
    indexes = {tuple(ix["column_names"]) for ix in sa.inspect(engine).get_indexes("pgmatch_match")}
    assert {("balrog_index",), ("tilename", "realization")} <= indexes


def test_failing_match_insert_rolls_back_the_whole_realization(tmp_path, engine):
    """The match rows go in last: when the server refuses them, truth/sim/nosim go too."""
    first = write_realization(tmp_path / "a", TILE, 0)
    push_realization(engine, "pgmfail", *first, match_path=write_match(first))  # blend_class: smallint
    paths = write_realization(tmp_path / "b", TILE, 1)
    match = write_match(paths)
    data = fitsio.read(str(match))
    wide = data.astype([(n, "i8" if n == "blend_class" else data.dtype[n].str) for n in data.dtype.names])
    wide["blend_class"][-1] = 10**12  # out of smallint's range: COPY fails on the last row
    fitsio.write(str(match), wide, extname="MATCH", clobber=True)
    with pytest.raises(DatabaseError, match="out of range") as exc:
        push_realization(engine, "pgmfail", *paths, match_path=match)
    assert f"pushing {TILE} realization 1" in str(exc.value)
    for kind in ("truth", "sim", "nosim", "match"):
        assert count(engine, f"pgmfail_{kind}", "WHERE realization = 1") == 0, kind
    assert set(pushed_realizations(engine, "pgmfail")) == {(TILE, 0)}


def test_wrong_password_error_never_shows_a_password(tmp_path, pg, caplog):
    paths = write_realization(tmp_path / "a", TILE, 0)
    wrong = "Wr0ngPassw0rdXYZ"
    eng = make_engine(pg.url_with_password(wrong))
    with caplog.at_level(logging.DEBUG), pytest.raises(DatabaseError) as exc:
        push_realization(eng, "pgpw", *paths)
    eng.dispose()
    msg = str(exc.value)
    assert "password authentication failed" in msg and "***" in msg
    assert wrong not in msg and pg.password not in msg and "\n" not in msg
    assert wrong not in caplog.text
    assert exc.value.__cause__ is None and exc.value.__suppress_context__


def test_cli_push_campaign_to_postgres(tmp_path, pg, engine, capsys):
    out = tmp_path / "out"
    make_campaign(out, nreal=2)
    # the first realization went in before an outage; balrog-push adds the rest
    sets = sorted((out / TILE / "catalogs").glob("*_r0000_*.fits"))
    push_realization(engine, "pgcli", *(p for k in ("truth", "sim", "nosim") for p in sets if p.name.endswith(f"_{k}.fits")))
    assert push_cli.main([str(out), "--db", pg.url, "--dbname", "pgcli"]) == 0
    captured = capsys.readouterr()
    assert "pushed 3 realizations" in captured.out and "1 already pushed" in captured.out
    assert pg.password not in captured.out + captured.err
    assert count(engine, "pgcli_truth") == 80
    with engine.connect() as conn:
        tiles = conn.execute(sa.text("SELECT tilename, count(*) FROM pgcli_nosim GROUP BY tilename ORDER BY 1")).all()
    assert [tuple(t) for t in tiles] == [(TILE, 4), ("DES2359+0001", 4)]


def test_outage_is_clean_error(tmp_path, pg, capsys):
    out = tmp_path / "out"
    make_campaign(out, tiles=(TILE,), nreal=1)
    dead = f"postgresql+psycopg://{pg.user}:{pg.password}@127.0.0.1:1/{pg.dbname}"
    assert push_cli.main([str(out), "--db", dead, "--dbname", "pgout"]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("balrog-push: error: ") and "Connection refused" in last
    assert pg.password not in err
    assert np.all([p.exists() for p in (out / TILE / "catalogs").iterdir()])


def test_failing_copy_is_a_clean_error_and_rolls_back(tmp_path, engine):
    push_realization(engine, "pgcopy", *write_realization(tmp_path / "a", TILE, 0))
    paths = write_realization(tmp_path / "b", TILE, 1)
    long_tile = "DES0001+0001-long"  # does not fit the VARCHAR(12) the first push created
    for path in paths:
        data = fitsio.read(str(path))
        wide = data.astype([(n, "S20" if n == "tilename" else data.dtype[n].str) for n in data.dtype.names])
        wide["tilename"] = long_tile
        fitsio.write(str(path), wide, clobber=True)
    with pytest.raises(DatabaseError, match="value too long") as exc:
        push_realization(engine, "pgcopy", *paths)
    assert f"pushing {long_tile} realization 1" in str(exc.value)
    for kind in ("truth", "sim", "nosim"):
        assert count(engine, f"pgcopy_{kind}", "WHERE realization = 1") == 0
    assert set(pushed_realizations(engine, "pgcopy")) == {(TILE, 0)}


def test_concurrent_pushers_race_to_create_tables(tmp_path, pg, engine):
    reals = [write_realization(tmp_path / "cat", TILE, j) for j in range(3)]
    assert concurrent_pushes(pg.url, "pgrace", reals) == ["pushed"] * 3
    assert count(engine, "pgrace_sim") == 54 and len(pushed_realizations(engine, "pgrace")) == 3


@pytest.mark.parametrize("tables_exist", [False, True], ids=["fresh-tables", "existing-tables"])
def test_concurrent_pushes_of_the_same_catalogs_insert_once(tmp_path, pg, engine, tables_exist):
    race_same_catalogs(tmp_path, pg.url, engine, "pgrace_same", tables_exist)


def test_runner_and_push_at_once_insert_once(tmp_path, pg, engine):
    race_runner_and_pushes(tmp_path, pg.url, engine, "pgrunrace")


def test_dbname_too_long_for_postgres_is_refused_before_any_table(tmp_path, pg, engine, capsys):
    """PostgreSQL would truncate names over 63 bytes; ix_<dbname>_truth_bi is the longest made."""
    out = tmp_path / "out"
    make_campaign(out, tiles=(TILE,), nreal=1)
    name = "pg" + "x" * 50  # tables: 59 bytes, fine; ix_<name>_truth_bi: 64
    before = set(sa.inspect(engine).get_table_names())
    assert push_cli.main([str(out), "--db", pg.url, "--dbname", name]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == (f"balrog-push: error: dbname '{name}' is too long for every database (PostgreSQL's limit): it "
                    f"makes the name ix_{name}_truth_bi of 64 bytes, over the limit of 63; use at most 51 characters")
    assert set(sa.inspect(engine).get_table_names()) == before
    assert push_cli.main([str(out), "--db", pg.url, "--dbname", name[:51], "-q"]) == 0


def test_hung_push_holding_the_lock_fails_only_its_tile_waiter_cleanly(tmp_path, pg, monkeypatch):
    """A push hung before its commit holds its tile's lock: a push of the same realization
    waits at most LOCK_TIMEOUT_S and fails with a clean error (nothing of it written); other
    tiles go on meanwhile; once the hung one is killed the realization goes in."""
    from balrog_runner.db import lock

    # a statement_timeout, so that code without the lock fails here instead of waiting forever
    eng = make_engine(pg.url + "?options=-c%20statement_timeout%3D20000")
    paths = write_realization(tmp_path / "a", TILE, 1)
    push_realization(eng, "pghung", *write_realization(tmp_path / "a", TILE, 0))
    with paused_push(pg.url, paths, "pghung"):
        monkeypatch.setattr(lock, "LOCK_TIMEOUT_S", 1)
        with pytest.raises(DatabaseError, match=r"pushing DES0001\+0001 realization 1 .*lock timeout"):
            push_realization(eng, "pghung", *paths)
        other = write_realization(tmp_path / "b", "DES2359+0001", 0, istart=50_000)
        assert push_realization(eng, "pghung", *other).status == "pushed"
    assert count(eng, "pghung_truth", "WHERE realization = 1") == 0
    assert push_realization(eng, "pghung", *paths).status == "pushed"
    assert set(pushed_realizations(eng, "pghung")) == {(TILE, 0), (TILE, 1), ("DES2359+0001", 0)}
    eng.dispose()


def test_readme_sql_runs_on_postgres_with_des_spelling(tmp_path, pg, engine):
    """The README's queries (``MAG_AUTO_I``, ``RA``, ``DEC`` unquoted) on a real PostgreSQL."""
    from test_db_readme import check_readme_sql, make_demo_campaign

    out = tmp_path / "demo-output" / "campaign"
    make_demo_campaign(out)
    assert push_cli.main([str(out), "--db", pg.url, "--dbname", "demo", "-q"]) == 0
    check_readme_sql(engine, out)
    with engine.connect() as conn:  # stored lower case: only a quoted upper-case name misses
        assert conn.execute(sa.text("SELECT count(MAG_AUTO_G) FROM demo_sim")).scalar_one() > 0
        with pytest.raises(sa.exc.ProgrammingError, match="does not exist"):
            conn.execute(sa.text('SELECT "MAG_AUTO_G" FROM demo_sim'))


def test_grant_only_when_asked_on_postgres(tmp_path, pg, engine):
    """No GRANT by default (DES_READER is Oracle's); a role named in db['reader'] gets SELECT."""
    role = "balrog_readers_test"
    pg.psql(f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} NOLOGIN;")
    paths = write_realization(tmp_path / "cat", TILE, 0)
    push_realization(engine, "nogrant", *paths)  # reader None
    push_realization(engine, "granted", *paths, policy=PushPolicy(reader=role, table_prefix="balrog_"))

    def can_read(who: str, table: str) -> bool:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT has_table_privilege(:r, :t, 'SELECT')"),
                                {"r": who, "t": table}).scalar_one()

    assert not can_read(pg.reader, "nogrant_sim") and not can_read(role, "nogrant_sim")
    assert all(can_read(role, f"balrog_granted_{k}") for k in ("truth", "sim", "nosim", "des", "pushed"))
    assert not can_read(pg.reader, "balrog_granted_sim")


def test_grant_to_a_missing_role_is_a_clean_error_and_creates_nothing(tmp_path, engine):
    paths = write_realization(tmp_path / "cat", TILE, 0)
    with pytest.raises(DatabaseError, match="no_such_role") as info:
        push_realization(engine, "badgrant", *paths, policy=PushPolicy(reader="no_such_role"))
    assert "\n" not in str(info.value)
    assert not [t for t in sa.inspect(engine).get_table_names() if t.startswith("badgrant_")]
