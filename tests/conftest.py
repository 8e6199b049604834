"""Fixtures shared by every test module: paths of the files the repository ships."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pytest
from slurm_cluster import SlurmUnavailable, missing_binaries, start_slurm, stop_slurm

REPO = Path(__file__).resolve().parents[1]
# balrog-jobs probes the database and the archive at build time; no test may reach for
# DESDM (tests/test_preflight.py turns the probes on against local servers)
os.environ["BALROG_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def test_data_dir() -> Path:
    return REPO / "tests" / "data"


@pytest.fixture(scope="session")
def des_psf_path() -> Path:
    """A real DES PSFEx model (48x48, 8th-order polynomial in X_IMAGE/Y_IMAGE)."""
    return REPO / "tests" / "data" / "des_example.psf"


@pytest.fixture(scope="session")
def tiles_dir() -> Path:
    return REPO / "tiles"


@pytest.fixture(scope="session")
def slurm():
    """A one-node SLURM on localhost for the whole session (tests/slurm_cluster.py).

    Skips only when the binaries are absent or we are not root; if SLURM is installed and
    we are root but it does not come up, the tests fail, so CI cannot pass without them.
    """
    missing = missing_binaries()
    if missing:
        pytest.skip(f"SLURM TESTS NOT RUN: binaries missing ({', '.join(missing)}); install slurm-wlm and munge")
    if os.geteuid() != 0:
        pytest.skip("SLURM TESTS NOT RUN: starting slurmctld/slurmd needs root")
    try:
        cluster = start_slurm(Path(tempfile.gettempdir()) / "balrog_runner_slurm")
    except SlurmUnavailable as exc:
        pytest.fail(f"SLURM is installed but did not start: {exc}")
    yield cluster
    stop_slurm(cluster)


@pytest.fixture
def slurm_env(slurm, monkeypatch):
    """Point the SLURM clients (sbatch in submit.sh, scontrol in the batch files) at our cluster."""
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
    return slurm


@pytest.fixture(autouse=True)
def _restore_logging():
    """CLI mains (run_command) point the root logger at the test's captured stderr; undo that."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield
    root.handlers[:], root.level = saved[0], saved[1]


#: The small single-epoch survey the single-epoch tests share (tests/conftest.py:se_survey).
SE_TILE = "DES0002+0001"
SE_TILE_SIZE = 360


@pytest.fixture(scope="session")
def se_survey(tmp_path_factory):
    """A small synthetic single-epoch survey (balrog_runner/demo/synth_se.py), made once per session.

    Bands r, i, z; 3 dithered exposures each of 256 x 512-pixel CCDs with 24 / 18-pixel gaps
    over a 360^2 coadd grid at DES0002+0001's centre; real PSFEx models per CCD; the re-coadd
    of the untouched images as the tile's coadd, in the plain archive layout
    ``<archive>/<TILE>/``. Read-only for the tests (copy what a test changes).

    ``$BALROG_TEST_SE_SURVEY`` (a directory) keeps the survey between sessions, for working on
    the single-epoch code: a complete survey there is reused as it is.
    """
    from balrog_runner.demo.synth_se import make_se_survey

    kept = os.environ.get("BALROG_TEST_SE_SURVEY")
    archive = Path(kept) if kept else tmp_path_factory.mktemp("se-archive")
    return make_se_survey(SE_TILE, archive / SE_TILE, tile_size=SE_TILE_SIZE, n_exposures=3, ccd_shape=(256, 512),
                          gap=(24, 18), seed=5, workers=2)
