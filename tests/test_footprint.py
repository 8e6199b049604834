"""The shipped DES round19 footprint: its area, known inside/outside points, RA wrap, packaging."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import healpy as hp
import numpy as np
import pytest

from balrog_runner.sky import footprint, geometry

REPO = Path(__file__).resolve().parents[1]


def test_area_is_the_des_wide_survey():
    """HEALPix pixel centres inside the outline add up to the ~5000 deg^2 DES wide survey."""
    nside = 128  # 0.46 deg pixels: area to well under 1%
    ra, dec = hp.pix2ang(nside, np.arange(hp.nside2npix(nside)), lonlat=True)
    area = footprint.in_des_footprint(ra, dec).sum() * hp.nside2pixarea(nside, degrees=True)
    assert 4900 < area < 5200, area
    # the same with the sky rotated into the other RA convention: the wrap is handled
    area_neg = footprint.in_des_footprint(ra - 360.0, dec).sum() * hp.nside2pixarea(nside, degrees=True)
    assert area_neg == area


@pytest.mark.parametrize(("ra", "dec", "inside", "what"), [
    (60.0, -50.0, True, "middle of the SPT region"),
    (0.0, -50.0, True, "SPT region at RA 0"),
    (310.0, -55.0, True, "western SPT region"),
    (359.5, 0.0, True, "Stripe 82 just west of RA 0"),
    (0.5, 0.0, True, "Stripe 82 just east of RA 0"),
    (-0.5, 0.0, True, "Stripe 82, negative RA"),
    (330.0, 0.5, True, "Stripe 82 at RA 330"),
    (180.0, 0.0, False, "RA 180 on the equator (SDSS north)"),
    (30.0, 20.0, False, "Dec +20"),
    (350.0, -5.0, False, "south of Stripe 82"),
    (330.0, -30.0, False, "between Stripe 82 and SPT"),
    (0.0, -80.0, False, "south of the footprint"),
])
def test_known_points(ra, dec, inside, what):
    assert bool(footprint.in_des_footprint(ra, dec)) is inside, what
    assert bool(footprint.in_des_footprint(ra + 360.0, dec)) is inside, what


def test_vectorised_and_bad_values():
    ra = np.array([[60.0, 180.0], [359.9, np.nan]])
    dec = np.array([[-50.0, 0.0], [0.0, 0.0]])
    got = footprint.in_des_footprint(ra, dec)
    assert got.dtype == bool and got.shape == (2, 2)
    assert got.tolist() == [[True, False], [True, False]]
    assert footprint.in_des_footprint(np.array([]), np.array([])).shape == (0,)
    # the tile around RA = 0 on the equator is in it, a tile at RA 180 is not
    for name, inside in (("DES2359+0001", True), ("DES0002+0001", True), (geometry.tile_at(180.0, 0.0).tilename, False)):
        t = geometry.des_tile(name)
        assert bool(footprint.in_des_footprint(t.ra_cent, t.dec_cent)) is inside, name


def test_vertices_follow_the_file_convention():
    v = footprint.footprint_vertices()
    assert v.shape[1] == 2 and len(v) > 500
    assert (v[:, 0] >= -180).all() and (v[:, 0] < 180).all()
    assert (v[0] == v[-1]).all()  # closed ring


def test_data_file_is_in_a_built_package(tmp_path):
    """A non-editable build (setuptools build_py, as a wheel gets it) ships and finds the file."""
    src = tmp_path / "src"
    shutil.copytree(REPO / "balrog_runner", src / "balrog_runner",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    lib = tmp_path / "lib"
    proc = subprocess.run([sys.executable, "-c", "import setuptools; setuptools.setup()", "-q",
                           "build_py", "--build-lib", str(lib)],
                          cwd=src, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (lib / "balrog_runner" / "data" / "des_footprint_round19.txt").is_file()
    code = ("import balrog_runner, balrog_runner.sky.footprint as f; print(balrog_runner.__file__); "
            "print(int(f.in_des_footprint(60.0, -50.0)), len(f.footprint_vertices()))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(lib), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    where, answer = proc.stdout.splitlines()
    assert Path(where).is_relative_to(lib)
    assert answer.split()[0] == "1" and int(answer.split()[1]) > 500
