"""MPI and the server databases' drivers are extras: used without them, a one-line error
names the extra to install (the test suite has them all; here they are hidden)."""

from __future__ import annotations

import sys

import pytest
import sqlalchemy as sa

from balrog_runner.db.url import make_engine, require_driver
from balrog_runner.errors import ConfigError
from balrog_runner.sky import positions


def test_several_mpi_ranks_without_mpi4py_name_the_extra(monkeypatch):
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now raises ImportError
    with pytest.raises(ConfigError, match=r"mpi4py is not installed: pip install 'balrog_runner\[mpi\]'"):
        positions.mpi_world()
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "1")
    assert positions.mpi_world() is None  # one process needs no MPI at all


@pytest.mark.parametrize(("url", "module", "extra"), [
    ("postgresql+psycopg://me@localhost/db", "psycopg", "postgres"),
    ("oracle+oracledb://me@host:1521/?service_name=dessci", "oracledb", "oracle"),
])
def test_missing_database_driver_names_the_extra(monkeypatch, url, module, extra):
    require_driver(sa.make_url(url))  # installed here
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ConfigError) as err:
        make_engine(url)
    assert str(err.value).endswith(f"is not installed: pip install 'balrog_runner[{extra}]'")
    assert "\n" not in str(err.value)


def test_sqlite_needs_no_extra(monkeypatch, tmp_path):
    for module in ("psycopg", "oracledb", "mpi4py"):
        monkeypatch.setitem(sys.modules, module, None)
    engine = make_engine(f"sqlite:///{tmp_path / 'x.sqlite'}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    engine.dispose()
