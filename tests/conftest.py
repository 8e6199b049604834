"""Fixtures shared by every test module: paths of the files the repository ships."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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
