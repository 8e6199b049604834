"""Oracle without a server: the DDL and INSERTs SQLAlchemy compiles for the Oracle dialect.

DES's database is Oracle; these check that our tables come out with DESDM's own types
(BINARY_FLOAT, BINARY_DOUBLE, NUMBER(p,s), VARCHAR2(n)), that identifiers respect Oracle's
limits, and that values travel as bind parameters with NaN as NULL.
"""

from __future__ import annotations

import re

import fitsio
import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import oracle, postgresql
from sqlalchemy.schema import CreateIndex, CreateTable
from test_db import TILE, write_realization

from balrog_runner.db import (
    DbnameError,
    check_identifier,
    make_engine,
    read_column_list,
    table_names,
    validate_dbname,
)
from balrog_runner.db.lock import already_exists, lock_statements
from balrog_runner.db.push import catalog_rows
from balrog_runner.db.schema import catalog_table, des_table, plan_columns
from balrog_runner.errors import DatabaseError


@pytest.fixture(scope="module")
def ora():
    return oracle.dialect()


@pytest.fixture(scope="module")
def sim_table(tmp_path_factory, ora):
    paths = write_realization(tmp_path_factory.mktemp("cat"), TILE, 0)
    data = fitsio.read(str(paths[1]))
    specs = plan_columns(data.dtype, "sim", read_column_list(), dialect=ora)
    table = catalog_table(sa.MetaData(), "camp_sim", specs, ora)
    return table, specs, data


def ddl_types(ddl: str) -> dict[str, str]:
    return {m[1]: m[2] for m in re.finditer(r"^\t(\w+) (.+?),? *$", ddl, re.M)}


def test_create_table_uses_desdm_types(sim_table, ora):
    table, _, _ = sim_table
    types = ddl_types(str(CreateTable(table).compile(dialect=ora)))
    assert types["mag_auto_g"] == "NUMBER(6, 4)"
    assert types["magerr_auto_det"] == "NUMBER(5, 4)"
    assert types["flags_z"] == "NUMBER(3, 0)"
    assert types["a_image_i"] == "BINARY_FLOAT"
    assert types["alphawin_j2000_y"] == "BINARY_DOUBLE"
    assert types["number_sex"] == "INTEGER" and types["balrog_index"] == "NUMBER(19)"
    assert types["tilename"] == "VARCHAR2(12 CHAR)"
    assert "x_image_g" not in types and "number" not in types


def test_des_table_has_the_whole_desdm_list(ora):
    cols = read_column_list()
    ddl = str(CreateTable(des_table(sa.MetaData(), "camp_des", cols, ora)).compile(dialect=ora))
    types = ddl_types(ddl)
    assert len(types) == len(cols.entries) == 587
    assert types["flags_weight_g"] == "VARCHAR2(1 CHAR)"
    assert types["coadd_objects_id"] == "NUMBER(11, 0)"
    assert types["ra"] == "NUMBER(9, 6)"


def test_indexes_compile_within_identifier_limits(sim_table, ora):
    table, _, _ = sim_table
    stmts = [str(CreateIndex(ix).compile(dialect=ora)) for ix in sorted(table.indexes, key=lambda i: i.name)]
    assert stmts == ["CREATE INDEX ix_camp_sim_bi ON camp_sim (balrog_index)",
                     "CREATE INDEX ix_camp_sim_tr ON camp_sim (tilename, realization)"]


def test_identifier_length_limits(ora):
    longest = "b" * 51  # Oracle 12.2+ takes 128 bytes, but a dbname must fit every backend: 63
    assert table_names(longest, ora)["truth"] == f"{longest}_truth"
    with pytest.raises(DbnameError, match=r"too long for every database \(PostgreSQL's limit\): .* at most 51"):
        table_names("b" * 100, ora)
    old = oracle.dialect()
    old.max_identifier_length = 30  # what SQLAlchemy sets after connecting to Oracle < 12.2
    with pytest.raises(DatabaseError, match="dbname 'balrog_y3_campaign_2024a' is too long for oracle"):
        table_names("balrog_y3_campaign_2024a", old)  # _pushed: 31
    # the tables fit (balrog_y3_campaign1_pushed: 26) but index ix_<dbname>_truth_bi (31) would not:
    # refused up front, naming the dbname and what fits, before any table is created
    with pytest.raises(DbnameError, match=r"too long for oracle: .*ix_balrog_y3_campaign1_\w+_bi .*at most 18"):
        validate_dbname("balrog_y3_campaign1", old)
    assert validate_dbname("Balrog_Y3_campaign", old) == "balrog_y3_campaign"
    assert check_identifier("Balrog_Y3", old) == "balrog_y3"
    with pytest.raises(DatabaseError, match="not allowed"):
        check_identifier('x" OR 1=1 --', ora)


def test_insert_binds_values_and_nan_is_null(sim_table, ora):
    table, specs, data = sim_table
    rows, nulled = catalog_rows(data, specs)
    row = dict(zip([s.db_name for s in specs], rows[0], strict=True))
    assert np.isnan(data["MAG_AUTO_G"][0]) and row["mag_auto_g"] is None
    assert row["magerr_auto_r"] is None and nulled == {"magerr_auto_r": 1}
    compiled = sa.insert(table).values(row).compile(dialect=ora)
    sql = str(compiled)
    assert ":mag_auto_g" in sql and "NaN" not in sql and "NULL" not in sql  # bound, not literal
    params = compiled.construct_params()
    assert params["mag_auto_g"] is None and params["tilename"] == TILE
    assert isinstance(params["flags_g"], int) and isinstance(params["mag_auto_i"], float)
    delete = sa.delete(table).where(table.c.tilename == TILE, table.c.realization.in_([1, 2]))
    assert "DES0001" not in str(delete.compile(dialect=ora))


def test_oracle_urls_make_engines_without_connecting():
    eng = make_engine("oracle://alice:s3cret@desdb.example.org:1521/?service_name=dessci")
    assert eng.dialect.name == "oracle" and eng.dialect.driver == "oracledb"
    assert "s3cret" not in repr(eng)


def test_push_lock_is_a_table_lock_and_creation_tolerates_a_concurrent_creator(ora):
    """Oracle DDL commits by itself, so only data transactions lock (see db/lock.py)."""
    assert lock_statements(ora, "camp", "DES0001+0001", "camp_pushed") == [
        ("LOCK TABLE camp_pushed IN EXCLUSIVE MODE WAIT 600", {})]
    assert lock_statements(ora, "camp", None, "camp_pushed") == []  # table creation: no lock
    with pytest.raises(DatabaseError, match="not allowed"):
        lock_statements(ora, "camp", "DES0001+0001", 'camp_pushed" --')

    class OraError:  # what python-oracledb puts in an exception's args
        code = 955
        message = "ORA-00955: name is already used by an existing object"

    clash = sa.exc.DatabaseError("CREATE TABLE camp_truth", {}, Exception(OraError()))
    assert already_exists(clash, ora)
    other = sa.exc.DatabaseError("CREATE TABLE camp_truth", {}, Exception("ORA-01031: insufficient privileges"))
    assert not already_exists(other, ora)
    assert not already_exists(clash, postgresql.dialect())


def test_select_is_granted_to_des_reader_by_default_on_oracle_only(sim_table, ora):
    """DES's tables are read through DES_READER: granted unless db['reader'] says otherwise."""
    from balrog_runner.db.tables import grant_statement

    table, _, _ = sim_table
    assert grant_statement(table, None, ora) == "GRANT SELECT ON camp_sim TO des_reader"  # Oracle: DES_READER
    assert grant_statement(table, "DES_READER", ora) == "GRANT SELECT ON camp_sim TO des_reader"
    assert grant_statement(table, "BALROG_READERS", ora) == "GRANT SELECT ON camp_sim TO balrog_readers"
    assert grant_statement(table, "", ora) is None  # '' = no GRANT
    pg = postgresql.dialect()
    assert grant_statement(table, None, pg) is None  # nothing on PostgreSQL unless set
    assert grant_statement(table, "des_reader", pg) == "GRANT SELECT ON camp_sim TO des_reader"
    assert grant_statement(table, None, sa.create_engine("sqlite://").dialect) is None
    with pytest.raises(DatabaseError, match="reader role"):
        grant_statement(table, "x; DROP TABLE camp_sim", ora)


def test_oracle_tables_have_ra_dec_and_des_style_names(tmp_path, ora):
    cols = read_column_list()
    paths = write_realization(tmp_path, TILE, 0)
    data = fitsio.read(str(paths[1]))
    specs = plan_columns(data.dtype, "sim", cols, dialect=ora)
    names = table_names("y3camp", ora, prefix="balrog_")
    assert names["sim"] == "balrog_y3camp_sim" and names["pushed"] == "balrog_y3camp_pushed"
    types = ddl_types(str(CreateTable(catalog_table(sa.MetaData(), names["sim"], specs, ora)).compile(dialect=ora)))
    assert types["ra"] == types["dec"] == "BINARY_DOUBLE"  # unquoted: Oracle stores RA, DEC
    old = oracle.dialect()
    old.max_identifier_length = 30  # Oracle < 12.2: the prefix counts
    with pytest.raises(DbnameError, match=r"at most 11 characters with the table prefix 'balrog_'"):
        table_names("y3campaign12", old, prefix="balrog_")


def test_match_table_ddl_grant_and_inserts_on_oracle(tmp_path, ora):
    """The match table (blends.py) as Oracle gets it: typed columns, realization keys, indexes, DES_READER."""
    from test_db import write_match

    from balrog_runner.db.push import PushPolicy, _Realization, _with_realization_keys
    from balrog_runner.db.tables import build_tables, grant_statement

    paths = write_realization(tmp_path, TILE, 0)
    truth = fitsio.read(str(paths[0]))
    match = fitsio.read(str(write_match(paths)))
    real = _Realization(TILE, 0, 1000, 1000, 1019, {"truth": truth})
    keyed = _with_realization_keys(match, real, "match.fits")
    cols = read_column_list()
    specs = {k: plan_columns(fitsio.read(str(p)).dtype, k, cols, dialect=ora)
             for k, p in zip(("truth", "sim", "nosim"), paths, strict=True)}
    specs["match"] = plan_columns(keyed.dtype, "match", cols, dialect=ora)
    tables = build_tables("y3camp", specs, ora, prefix="balrog_")
    table = tables["match"]
    assert table.name == table_names("y3camp", ora, prefix="balrog_")["match"] == "balrog_y3camp_match"
    types = ddl_types(str(CreateTable(table).compile(dialect=ora)))
    assert list(types)[:4] == ["tilename", "realization", "indexstart", "balrog_index"]
    assert types["tilename"] == "VARCHAR2(12 CHAR)" and types["balrog_index"] == "NUMBER(19)"
    assert types["blend_class"] == "SMALLINT" and types["nosim_dist"] == "BINARY_DOUBLE"
    assert types["nosim_mag_y"] == "BINARY_DOUBLE" and "ra" not in types  # no derived ra/dec here
    stmts = sorted(str(CreateIndex(ix).compile(dialect=ora)) for ix in table.indexes)
    assert stmts == ["CREATE INDEX ix_balrog_y3camp_match_bi ON balrog_y3camp_match (balrog_index)",
                     "CREATE INDEX ix_balrog_y3camp_match_tr ON balrog_y3camp_match (tilename, realization)"]
    assert grant_statement(table, PushPolicy().reader, ora) == "GRANT SELECT ON balrog_y3camp_match TO des_reader"
    rows, _ = catalog_rows(keyed, specs["match"])
    row = dict(zip([s.db_name for s in specs["match"]], rows[0], strict=True))
    params = sa.insert(table).values(row).compile(dialect=ora).construct_params()
    assert params["tilename"] == TILE and params["realization"] == 0 and params["indexstart"] == 1000
    nan_rows = [r for r in rows if r[list(row).index("det_dist")] is None]
    assert nan_rows and len(nan_rows) == int(np.isnan(match["det_dist"]).sum())  # NaN -> NULL
