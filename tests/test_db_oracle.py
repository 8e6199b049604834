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
from sqlalchemy.dialects import oracle
from sqlalchemy.schema import CreateIndex, CreateTable
from test_db import TILE, write_realization

from balrog_runner.db import check_identifier, make_engine, read_column_list, table_names
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
    long = "b" * 100
    assert table_names(long, ora)["truth"] == f"{long}_truth"  # fine on Oracle 12.2+ (128 bytes)
    old = oracle.dialect()
    old.max_identifier_length = 30  # what SQLAlchemy sets after connecting to Oracle < 12.2
    with pytest.raises(DatabaseError, match="longer than oracle's limit of 30"):
        table_names("balrog_y3_campaign_2024a", old)  # _pushed: 31
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
