"""Lattice placement (DES Y3): geometry of the grids, seeds, indices, and the position files.

Each property is checked on real DES tile geometry: a mid-southern tile, the tile whose
unique area straddles RA = 0, and the narrow last tile of a ring (0.1 deg wide, its centre
outside its own unique area).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import fitsio
import numpy as np
import pytest
from scipy.spatial import cKDTree

from balrog_runner.errors import ConfigError
from balrog_runner.sky import lattice, positions
from balrog_runner.sky.geometry import des_tile, tile_number

BIN = Path(sys.executable).parent
TILES = ["DES0148-5123", "DES2359+0001", "DES1819-4206"]


def _unit_vectors(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    r, d = np.radians(ra), np.radians(dec)
    return np.column_stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)])


def _neighbour_arcsec(ra: np.ndarray, dec: np.ndarray, k: int) -> np.ndarray:
    """Great-circle distance of every point to its k nearest others, arcsec."""
    chord, _ = cKDTree(_unit_vectors(ra, dec)).query(_unit_vectors(ra, dec), k=k + 1)
    return np.degrees(2 * np.arcsin(chord[:, 1:] / 2)) * 3600


def _params(spacing: float, realizations: int, seed: int = 7) -> positions.PositionParams:
    return positions.PositionParams(seed=seed, lattice=spacing, realizations=realizations)


@pytest.mark.parametrize("name", TILES)
def test_every_point_is_in_the_unique_area_and_neighbours_sit_at_the_spacing(name):
    tile = des_tile(name)
    for part in positions.iter_lattice(tile, _params(20.0, 3)):
        assert tile.contains(part["ra"], part["dec"]).all()
        d = _neighbour_arcsec(part["ra"], part["dec"], 6)
        # no two injected objects closer than the spacing (the point of a lattice) ...
        assert d.min() == pytest.approx(20.0, rel=2e-4)
        # ... and an interior point has six neighbours at the spacing (a hexagonal grid)
        assert np.median(d[:, 5]) == pytest.approx(20.0, rel=2e-4)
        cell = 20.0**2 * np.sqrt(3) / 2 / 3600**2  # deg^2 per point
        assert len(part) == pytest.approx(tile.area_deg2 / cell, rel=0.01)


def test_grids_are_seeded_per_realization_and_differ_between_realizations():
    tile = des_tile(TILES[0])
    a = list(positions.iter_lattice(tile, _params(30.0, 3)))
    b = list(positions.iter_lattice(tile, _params(30.0, 3)))
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x, y)
    # realization 2 of a 3-realization campaign is realization 2 of a 5-realization one
    c = list(positions.iter_lattice(tile, _params(30.0, 5)))
    assert np.array_equal(a[2], c[2])
    # other realizations and other seeds move the grid (offset and rotation)
    assert not np.allclose(a[0]["ra"][:10], a[1]["ra"][:10])
    other = next(positions.iter_lattice(tile, _params(30.0, 1, seed=8)))
    assert not np.allclose(a[0]["ra"][:10], other["ra"][:10])


def test_many_realizations_cover_the_tile_evenly():
    """The union of rotated, shifted grids samples the unique area uniformly (4x4 cells)."""
    tile = des_tile(TILES[0])
    parts = list(positions.iter_lattice(tile, _params(60.0, 60)))
    ra = np.concatenate([p["ra"] for p in parts])
    dec = np.concatenate([p["dec"] for p in parts])
    x = (ra - tile.ra_lower) % 360.0 / tile.ra_width
    s = np.sin(np.radians(dec))
    y = (s - np.sin(np.radians(tile.udecmin))) / (np.sin(np.radians(tile.udecmax)) - np.sin(np.radians(tile.udecmin)))
    counts, _, _ = np.histogram2d(x, y, bins=4, range=[[0, 1], [0, 1]])
    expected = len(ra) / 16
    assert np.abs(counts - expected).max() < 5 * np.sqrt(expected)


def test_balrog_index_is_campaign_unique_and_says_the_realization():
    params = _params(30.0, 4)
    seen = []
    for name in TILES:
        tile = des_tile(name)
        slot = positions.lattice_slot(tile, params)
        assert slot > lattice.node_count(tile, 30.0)
        for j, part in enumerate(positions.iter_lattice(tile, params)):
            idx = part["balrog_index"]
            assert np.all(idx // positions.INDEX_STRIDE == tile_number(name))
            assert np.all((idx % positions.INDEX_STRIDE) // slot == j)
            assert np.all(part["realization"] == j)
            seen.append(idx)
    allidx = np.concatenate(seen)
    assert len(np.unique(allidx)) == len(allidx)


@pytest.mark.parametrize(("spacing", "realizations", "message"), [
    (1.0, 2, "lattice spacing must be a finite number >= 2"),
    (float("nan"), 2, "lattice spacing must be a finite number"),
    (30.0, 0, "--lattice needs --realizations"),
    (30.0, None, "--lattice needs --realizations"),
])
def test_bad_lattice_parameters_are_refused(spacing, realizations, message):
    with pytest.raises(ConfigError, match=message):
        _params(spacing, realizations)


def test_too_many_realizations_for_the_index_range_are_refused():
    with pytest.raises(ConfigError, match="use at most 1000 realizations or a wider spacing"):
        positions.lattice_slot(des_tile(TILES[0]), _params(20.0, 5000))


def test_balrog_positions_writes_lattice_files_the_runner_splits(tmp_path):
    from balrog_runner.node.plan import plan_lattice_realizations

    out = tmp_path / "pos"
    cmd = [str(BIN / "balrog-positions"), "-q", "--tile", TILES[1], "--lattice", "--realizations", "3",
           "--seed", "5", "--outdir", str(out)]
    subprocess.run(cmd, check=True)
    got = positions.read_positions(out / f"{TILES[1]}.fits")
    h = fitsio.read_header(str(out / f"{TILES[1]}.fits"), ext=1)
    assert (h["POSMODE"], h["SPACING"], h["NREAL"]) == ("lattice", lattice.DEFAULT_SPACING_ARCSEC, 3)
    assert h["NPOS"] == len(got) > 0  # set after the grids were written
    want = np.concatenate(list(positions.iter_lattice(des_tile(TILES[1]), _params(30.0, 3, seed=5))))
    assert np.array_equal(got.balrog_index, want["balrog_index"]) and np.array_equal(got.ra, want["ra"])
    plan = plan_lattice_realizations(TILES[1], got.balrog_index, got.row_realization)
    assert [r.number for r in plan] == [0, 1, 2]
    assert [r.stop - r.start for r in plan] == [int(np.sum(got.row_realization == j)) for j in range(3)]
    assert all(got.balrog_index[r.start] == r.indexstart for r in plan)
    with pytest.raises(ConfigError, match="has 3 realizations"):
        plan_lattice_realizations(TILES[1], got.balrog_index, got.row_realization, count=4)
    # run['realization-list'] re-runs one realization alone: its own rows and seeds
    (only,) = plan_lattice_realizations(TILES[1], got.balrog_index, got.row_realization, only=[2])
    assert (only.number, only.start, only.stop, only.indexstart) == (2, plan[2].start, plan[2].stop, plan[2].indexstart)
    with pytest.raises(ConfigError, match=r"realization\(s\) \[3\] outside 0..2"):
        plan_lattice_realizations(TILES[1], got.balrog_index, got.row_realization, only=[3])
    # another placement in the same directory is refused, as for random positions
    again = subprocess.run(cmd[:4] + ["--pertile", "10", "--outdir", str(out)], capture_output=True, text=True)
    assert again.returncode != 0 and "holds positions made with lattice=30 arcsec x 3 realizations" in again.stderr


def test_more_realizations_than_the_lattice_holds_fail_at_build_time(tmp_path):
    """balrog-jobs refuses the campaign on the login node, not each tile on a compute node."""
    from test_jobs import write_campaign

    from balrog_runner import jobs
    from balrog_runner.campaign import config as cfgmod

    tiles = TILES[:2]
    for name, realizations in (("five.py", 5), ("three.py", 3)):
        config = write_campaign(tmp_path, tiles, name=name, realizations=realizations)
        for tile in tiles:  # replace the tiny random files by 3-realization lattices
            positions.write_tile_positions(des_tile(tile), _params(60.0, 3), tmp_path / "pos")
        if realizations == 5:
            with pytest.raises(ConfigError, match=r"run\['realizations'\] = 5, but the lattice position file .* holds 3"):
                jobs.build_jobs(cfgmod.load_config(config), "local", check_programs=False)
        else:
            assert jobs.build_jobs(cfgmod.load_config(config), "local", check_programs=False).specs
