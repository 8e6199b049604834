"""Positions: uniformity, counts vs area, RA = 0, determinism, append-stability, files, CLI errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from balrog_runner.cli import positions as cli
from balrog_runner.errors import ConfigError, OutputError
from balrog_runner.sky import geometry as g
from balrog_runner.sky import positions as pos

RA0 = "DES2359+0001"


def _uv(tile: g.Tile, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map positions to [0, 1)^2: RA offset from the lower bound, and sin(Dec)."""
    s1, s2 = math.sin(math.radians(tile.udecmin)), math.sin(math.radians(tile.udecmax))
    u = ((ra - tile.ra_lower) % 360.0) / tile.ra_width
    v = (np.sin(np.radians(dec)) - s1) / (s2 - s1)
    return u, v


@pytest.mark.parametrize("name", [RA0, "DES0148-5123", "DES0000+0209"])
def test_uniform_inside_unique_area(name):
    tile = g.des_tile(name)
    p = pos.tile_positions(tile, pos.PositionParams(seed=3, pertile=20000))
    assert len(p) == 20000 and p.dtype == pos.DTYPE
    assert np.all(tile.contains(p["ra"], p["dec"]))
    u, v = _uv(tile, p["ra"], p["dec"])
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert stats.kstest(v, "uniform").pvalue > 1e-3
    assert abs(v.mean() - 0.5) < 5 * math.sqrt(1 / 12 / len(v))
    if tile.crossra0:
        assert np.any(p["ra"] > 359) and np.any(p["ra"] < 1)


def test_uniform_in_sin_dec_not_in_dec():
    """Near the pole the test has the power to tell sin(Dec) from Dec: only sin(Dec) is uniform."""
    tile = g.tile_at(10.0, -80.0)
    p = pos.tile_positions(tile, pos.PositionParams(seed=4, pertile=200000))
    u, v = _uv(tile, p["ra"], p["dec"])
    dec_frac = (p["dec"] - tile.udecmin) / (tile.udecmax - tile.udecmin)
    assert stats.kstest(v, "uniform").pvalue > 1e-3
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert stats.kstest(dec_frac, "uniform").pvalue < 1e-6


def test_counts_follow_unique_area():
    """Density mode: per-tile counts are Poisson(density * area), including narrow ring-end tiles."""
    ring = g._rings()[42]
    narrow = g._tile_from_ring(ring, ring.ntiles - 1)
    tiles = [g.des_tile(n) for n in (RA0, "DES0148-5123", "DES0000+0209")] + [narrow]
    tiles += [g.tile_at(ra, dec) for ra in range(0, 360, 37) for dec in (-70, -40, -10, 20)]
    params = pos.PositionParams(seed=11, density=20000.0)
    chi2 = 0.0
    for t in tiles:
        n = pos.tile_count(t, params)
        mu = params.density * t.area_deg2
        assert abs(n - mu) < 5 * math.sqrt(mu), t.tilename
        chi2 += (n - mu) ** 2 / mu
        assert len(pos.tile_positions(t, params)) == n
    assert narrow.area_deg2 < 0.6 * tiles[0].area_deg2
    assert chi2 < stats.chi2.ppf(0.9999, len(tiles))


def test_neighbours_share_no_points():
    centre = g.des_tile(RA0)
    tiles = {g.tile_at(centre.ra_cent + dra, centre.dec_cent + ddec).tilename for dra in (-0.7, 0, 0.7) for ddec in (-0.7, 0, 0.7)}
    tiles = [g.des_tile(n) for n in sorted(tiles)]
    assert len(tiles) == 9
    params = pos.PositionParams(seed=1, density=50000.0)
    allpos = [(t, pos.tile_positions(t, params)) for t in tiles]
    ra = np.concatenate([p["ra"] for _, p in allpos])
    dec = np.concatenate([p["dec"] for _, p in allpos])
    idx = np.concatenate([p["balrog_index"] for _, p in allpos])
    owner = np.concatenate([np.full(len(p), i) for i, (_, p) in enumerate(allpos)])
    hits = np.zeros(len(ra), dtype=int)
    for i, t in enumerate(tiles):
        inside = t.contains(ra, dec)
        assert np.all(inside[owner == i])
        hits += inside
    assert np.all(hits == 1)
    assert len(np.unique(idx)) == len(idx)
    assert len(np.unique(np.stack([ra, dec]), axis=1)[0]) == len(ra)


def test_chunking_does_not_change_result():
    tile = g.des_tile(RA0)
    params = pos.PositionParams(seed=7, density=3000.0)
    whole = pos.tile_positions(tile, params)
    for chunk in (1, 7, 1000):
        parts = list(pos.iter_tile_positions(tile, params, chunk))
        assert all(len(p) <= chunk for p in parts)
        assert np.array_equal(np.concatenate(parts), whole)


def test_index_and_seed_behaviour():
    t1, t2 = g.des_tile(RA0), g.des_tile("DES0148-5123")
    p = pos.tile_positions(t1, pos.PositionParams(seed=7, pertile=500))
    assert p["balrog_index"].dtype == np.int64
    assert np.all(np.diff(p["balrog_index"]) == 1)
    assert p["balrog_index"][0] == pos.index_start(RA0) == g.tile_number(RA0) * pos.INDEX_STRIDE
    assert pos.index_start("DES2359+8959") < 2**53  # the largest possible index is float64-exact
    other_seed = pos.tile_positions(t1, pos.PositionParams(seed=8, pertile=500))
    assert not np.allclose(p["ra"], other_seed["ra"])
    assert np.array_equal(p["balrog_index"], other_seed["balrog_index"])
    q = pos.tile_positions(t2, pos.PositionParams(seed=7, pertile=500))
    assert not set(q["balrog_index"]) & set(p["balrog_index"])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"seed": 1}, "exactly one"),
        ({"seed": 1, "density": 1.0, "pertile": 1}, "exactly one"),
        ({"seed": 1, "density": 0.0}, "density"),
        ({"seed": 1, "density": -5.0}, "density"),
        ({"seed": 1, "density": float("nan")}, "density"),
        ({"seed": 1, "density": float("inf")}, "density"),
        ({"seed": 1, "density": 1e9}, "too high"),
        ({"seed": 1, "pertile": 0}, "pertile"),
        ({"seed": 1, "pertile": 1.5}, "pertile"),
        ({"seed": -1, "pertile": 3}, "seed"),
    ],
)
def test_params_validation(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        pos.PositionParams(**kwargs)


# --- files and campaigns ------------------------------------------------------------------


def _campaign(tiles, outdir, params, **kw):
    return pos.run_campaign(lambda: tiles, params, outdir, **kw)


def test_file_contract_and_realizations(tmp_path):
    tile = g.des_tile(RA0)
    params = pos.PositionParams(seed=2, pertile=1000)
    path, n = pos.write_tile_positions(tile, params, tmp_path, iterateby=300)
    assert path == tmp_path / f"{RA0}.fits" and n == 1000
    got = pos.read_positions(path)
    ref = pos.tile_positions(tile, params)
    assert got.tilename == RA0 and len(got) == 1000
    assert got.ra.dtype == np.float64 and got.balrog_index.dtype == np.int64
    assert np.array_equal(got.ra, ref["ra"]) and np.array_equal(got.balrog_index, ref["balrog_index"])
    h = got.header
    assert (h["EXTNAME"], h["POSMODE"], h["PERTILE"], h["SEED"], h["NPOS"]) == ("POSITIONS", "pertile", 1000, 2, 1000)
    assert h["ISTART"] == got.balrog_index[0] and h["CROSSRA0"] == "Y"
    r3 = got.realization(3, 100)
    assert np.array_equal(r3.balrog_index, ref["balrog_index"][300:400])
    assert got.indexstart(3, 100) == h["ISTART"] + 300
    with pytest.raises(ConfigError, match="needs 1100 positions"):
        got.realization(10, 100)


def test_append_stability_and_order(tmp_path, tiles_dir):
    s82 = g.read_tile_table(tiles_dir / "y1a1-stripe82-grizY.fits")
    few, more = s82[:3], s82[:3] + s82[100:104]
    params = pos.PositionParams(seed=5, density=1000.0)
    _campaign(few, tmp_path / "a", params)
    _campaign(list(reversed(more)), tmp_path / "b", params, iterateby=97)
    for t in few:
        assert (tmp_path / "a" / f"{t.tilename}.fits").read_bytes() == (tmp_path / "b" / f"{t.tilename}.fits").read_bytes()
    # appending to an existing outdir with the same parameters is allowed and keeps the old files
    before = {t.tilename: (tmp_path / "a" / f"{t.tilename}.fits").read_bytes() for t in few}
    summary = _campaign(more, tmp_path / "a", params)
    assert summary.ntiles == 7
    for name, data in before.items():
        assert (tmp_path / "a" / f"{name}.fits").read_bytes() == data
    idx = np.concatenate([pos.read_positions(p).balrog_index for p in (tmp_path / "a").glob("DES*.fits")])
    assert len(np.unique(idx)) == len(idx) == summary.npositions


def test_outdir_refuses_other_parameters(tmp_path):
    tiles = [g.des_tile(RA0), g.des_tile("DES0002+0001")]
    out = tmp_path / "pos"
    _campaign(tiles, out, pos.PositionParams(seed=5, pertile=10))
    snapshot = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(OutputError, match="pertile=10, seed=5, not pertile=10, seed=6.*--overwrite"):
        _campaign(tiles[:1], out, pos.PositionParams(seed=6, pertile=10))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == snapshot
    summary = _campaign(tiles[:1], out, pos.PositionParams(seed=6, pertile=10), overwrite=True)
    assert summary.ntiles == 1
    assert sorted(p.name for p in out.iterdir()) == [f"{RA0}.fits", pos.PARAMS_FILE]  # old tile removed
    assert json.loads((out / pos.PARAMS_FILE).read_text())["seed"] == 6
    # position files without a parameters file are not adopted either
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / f"{RA0}.fits").write_bytes(b"x")
    with pytest.raises(OutputError, match="no positions-campaign.json"):
        _campaign(tiles, stray, pos.PositionParams(seed=1, pertile=1))
    assert [p.name for p in stray.iterdir()] == [f"{RA0}.fits"]


# --- the command line ------------------------------------------------------------------------


def test_cli_density_run(tmp_path, tiles_dir, capsys):
    out = tmp_path / "pos"
    rc = cli.main(["--tiles", str(tiles_dir / "y1a1-sptw1-grizY.fits"), "--tilenames", "DES0148-5123", "DES0148-5831",
                   "--density", "2000", "--seed", "9", "--outdir", str(out), "-q"])
    assert rc == 0
    assert "2 tiles" in capsys.readouterr().out
    p = pos.read_positions(out / "DES0148-5123.fits")
    assert p.header["DENSITY"] == 2000.0 and p.header["SEED"] == 9
    assert np.array_equal(p.ra, pos.tile_positions(g.des_tile("DES0148-5123"), pos.PositionParams(seed=9, density=2000.0))["ra"])


def _bad_cases(repo: Path, d: Path) -> list[tuple[list[str], str]]:
    s82 = str(repo / "tiles" / "y1a1-stripe82-grizY.fits")
    (d / "badnames.csv").write_text("tilename\nDES2359+0001\nDES99\n")
    (d / "garbage.fits").write_bytes(b"SIMPLE  = junk" + bytes(range(256)))
    (d / "afile").write_text("not a directory")
    out = str(d / "out")
    base = ["--tilenames", RA0, "--outdir", out]
    return [
        (base + ["--density", "10", "--pertile", "5"], "exactly one of --density"),
        (base, "exactly one of --density"),
        (base + ["--density", "0"], "--density must be a finite number > 0"),
        (base + ["--density", "-3"], "--density must be a finite number > 0"),
        (base + ["--density", "nan"], "--density must be a finite number > 0"),
        (base + ["--density", "inf"], "--density must be a finite number > 0"),
        (base + ["--density", "lots"], "--density must be a number"),
        (base + ["--pertile", "0"], "--pertile must be an integer between 1"),
        (base + ["--pertile", "2.5"], "--pertile must be an integer"),
        (base + ["--pertile", "5", "--seed", "-2"], "--seed must be an integer between 0 and"),
        # past int64: the SEED header cannot hold it (was an OverflowError after positions-campaign.json)
        (base + ["--pertile", "5", "--seed", str(2**70)], "--seed must be an integer between 0 and 9223372036854775807"),
        (base + ["--pertile", "5", "--iterateby", "0"], "--iterateby must be a positive"),
        (["--tilenames", "DES2359+01", "--outdir", out, "--pertile", "5"], "'DES2359+01' is not a DES tile name"),
        (["--tilenames", "DES0000+0000", "--outdir", out, "--pertile", "5"], "not a tile of the DES tiling"),
        (["--tiles", s82, "--tilenames", "DES0148-5123", "--outdir", out, "--pertile", "5"], "DES0148-5123 is not in tile file"),
        (["--tiles", str(d / "missing.fits"), "--outdir", out, "--pertile", "5"], "does not exist"),
        (["--tiles", str(d / "badnames.csv"), "--outdir", out, "--pertile", "5"], "'DES99' is not a DES tile name"),
        (["--tiles", str(d / "garbage.fits"), "--outdir", out, "--pertile", "5"], "cannot read tile file"),
        (["--tiles", s82, "--tilecol", "TILE", "--outdir", out, "--pertile", "5"], "no column 'TILE'"),
        (["--tilenames", RA0, "--outdir", str(d / "afile"), "--pertile", "5"], "exists and is not a directory"),
        (["--tilenames", RA0, "--outdir", str(d / "afile" / "sub"), "--pertile", "5"], "cannot create --outdir"),
        (["--outdir", out, "--pertile", "5"], "give --tiles"),
    ]


def test_cli_bad_input_one_line_nothing_written(tmp_path, repo_root, capsys):
    d = tmp_path / "w"
    d.mkdir()
    cases = _bad_cases(repo_root, d)
    before = sorted(p.name for p in d.iterdir())
    for argv, match in cases:
        rc = cli.main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2, argv
        assert len(err) == 1 and err[0].startswith("balrog-positions: error: "), (argv, err)
        assert match in err[0], (argv, err[0])
        assert sorted(p.name for p in d.iterdir()) == before, argv  # nothing written, no outdir made


def test_console_script_exit_code(tmp_path):
    exe = Path(sys.executable).with_name("balrog-positions")
    res = subprocess.run([str(exe), "--tilenames", RA0, "--outdir", str(tmp_path / "o"), "--density", "nan"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip() == "balrog-positions: error: --density must be a finite number > 0 (objects per deg^2), got 'nan'"
    assert not (tmp_path / "o").exists()
