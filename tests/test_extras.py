"""MPI, the server databases' drivers and piff are extras: used without them, a one-line error
names the extra to install (the test suite has them all; here they are hidden)."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest
import sqlalchemy as sa
from packaging.requirements import Requirement

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


def test_psf_model_piff_without_piff_names_the_extra(monkeypatch):
    from balrog_runner.injection import piff_psf

    monkeypatch.setitem(sys.modules, "piff", None)
    with pytest.raises(ConfigError) as err:
        piff_psf.import_piff()
    assert str(err.value).endswith("is not installed: pip install 'balrog_runner[piff]'")
    assert "\n" not in str(err.value)


def test_a_y6_single_epoch_campaign_without_piff_is_refused_at_load(monkeypatch, tmp_path):
    """A Y6 release defaults to Piff models: its config names the extra when piff is missing."""
    from test_config import _config

    from balrog_runner.campaign import config as cfgmod

    body = "run['inject-into'] = 'single-epoch'\nrun['release'] = 'y6a2_coadd'"
    monkeypatch.setitem(sys.modules, "piff", None)
    with pytest.raises(ConfigError, match=r"needs piff, which is not installed: pip install 'balrog_runner\[piff\]'"):
        cfgmod.load_config(_config(tmp_path, body))
    # PSFEx needs no piff: the config gets as far as its next check (the tiles' file sets)
    with pytest.raises(ConfigError, match=r"needs run\['fetch-manifest'\]"):
        cfgmod.load_config(_config(tmp_path, body + "\nbalrog['psf-model'] = 'psfex'"))


def test_sqlite_needs_no_extra(monkeypatch, tmp_path):
    for module in ("psycopg", "oracledb", "mpi4py", "piff"):
        monkeypatch.setitem(sys.modules, module, None)
    engine = make_engine(f"sqlite:///{tmp_path / 'x.sqlite'}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    engine.dispose()


# ------------------------------------------------------------------------ packaging

REPO = Path(__file__).resolve().parents[1]


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _names(requirements: list[str]) -> set[str]:
    return {Requirement(r).name.lower().replace("_", "-") for r in requirements}


def test_pyyaml_is_a_test_dependency_only():
    """Only the tests read YAML (the wq job files): `make demo`, which installs the base
    package, must not need it from balrog_runner (astropy brings its own copy)."""
    project = _project()
    assert "pyyaml" not in _names(project["dependencies"])
    assert "pyyaml" in _names(project["optional-dependencies"]["test"])
    imports = set()
    for path in (REPO / "balrog_runner").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imports |= {(path, a.name.split(".")[0]) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imports.add((path, node.module.split(".")[0]))
    assert not [p for p, name in imports if name == "yaml"]


def test_all_extra_installs_every_optional_part():
    extras = _project()["optional-dependencies"]
    expanded = set()
    for req in map(Requirement, extras["all"]):
        if req.name.lower().replace("_", "-") == "balrog-runner":
            for extra in req.extras:
                expanded |= _names(extras[extra])
        else:
            expanded.add(req.name.lower())
    every_part = set().union(*(_names(reqs) for name, reqs in extras.items() if name not in ("all", "test")))
    assert expanded == every_part
    assert {"mpi4py", "psycopg", "oracledb", "piff"} <= expanded
    test = {Requirement(r) for r in extras["test"]}
    assert any(r.name.replace("_", "-") == "balrog-runner" and "all" in r.extras for r in test)
