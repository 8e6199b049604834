"""What can be known at build time fails at build time (README: "nothing knowable fails on the node").

``balrog-jobs`` plans every tile's realizations with the node's own code and reads its
positions with the node's reader, checks the output directories can be written, and
``balrog-positions`` refuses parameters that would give a tile (or a lattice realization)
no position. Each case used to pass the build and fail (or write useless files) later.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import fitsio
import numpy as np
import pytest
from mounts import tmpfs
from test_jobs import write_campaign

from balrog_runner import jobs
from balrog_runner.campaign import config as cfgmod
from balrog_runner.cli import jobs as cli_jobs
from balrog_runner.cli import positions as cli_positions
from balrog_runner.errors import ConfigError, DiskError, InputFileError, OutputError
from balrog_runner.sky import geometry, lattice, positions

TILE = "DES0001-0001"
NGAL = 5
BIN = Path(sys.executable).parent


def write_rows(path: Path, ra, dec, realization=None, nreal: int | None = None) -> Path:
    """A POSITIONS file with these rows (via a plain name: cfitsio parses some characters)."""
    fields = [("ra", "f8"), ("dec", "f8"), ("balrog_index", "i8")] + ([("realization", "i4")] if realization is not None else [])
    data = np.zeros(len(ra), dtype=fields)
    data["ra"], data["dec"], data["balrog_index"] = ra, dec, 1000 + np.arange(len(ra))
    if realization is not None:
        data["realization"] = realization
    with tempfile.TemporaryDirectory() as tmp:
        fitsio.write(f"{tmp}/p.fits", data, extname="POSITIONS", header={"NREAL": nreal} if nreal else None)
        Path(f"{tmp}/p.fits").replace(path)
    return path


def campaign(tmp_path: Path, **run) -> Path:
    """One tile, ``2 * NGAL`` positions (two realizations of ``NGAL``)."""
    path = write_campaign(tmp_path, [TILE], **{"ngal": NGAL, **run})
    write_rows(tmp_path / "pos" / f"{TILE}.fits", np.full(2 * NGAL, 0.5), np.full(2 * NGAL, -0.5))
    return path


def build(path: Path) -> jobs.JobFiles:
    return jobs.build_jobs(cfgmod.load_config(path), "local", check_programs=False)


# ----------------------------------------------------------------------------- realizations


@pytest.mark.parametrize(("run", "match"), [
    ({"realization-list": [99]}, rf"tile {TILE}: run\['realization-list'\] names realization\(s\) \[99\] outside "
                                 r"0..1 \(the tile has 2 realization\(s\)\)"),
    ({"realization-list": [0, 2]}, r"realization\(s\) \[2\] outside 0..1"),
    ({"realizations": 3}, rf"tile {TILE}: 3 realizations of {NGAL} need {3 * NGAL} positions; the file has {2 * NGAL}"),
    ({"realizations": 1, "realization-list": [1]}, r"realization\(s\) \[1\] outside 0..0"),
    ({"ngal": 2 * NGAL + 1}, rf"tile {TILE} has {2 * NGAL} positions, fewer than ngal={2 * NGAL + 1}"),
])
def test_realizations_a_tile_cannot_hold_fail_at_build(tmp_path, run, match):
    with pytest.raises((ConfigError, InputFileError), match=match):
        build(campaign(tmp_path, **run))
    assert not (tmp_path / "jobs").exists()


def test_realizations_a_tile_holds_build(tmp_path):
    built = build(campaign(tmp_path, **{"realization-list": [1]}))
    assert built.specs[0].run["realization-list"] == [1]


def test_lattice_realization_list_beyond_the_file_fails_at_build(tmp_path):
    path = write_campaign(tmp_path, [TILE], **{"realization-list": [3]})
    write_rows(tmp_path / "pos" / f"{TILE}.fits", np.full(6, 0.5), np.full(6, -0.5), np.repeat([0, 1, 2], 2), nreal=3)
    with pytest.raises(ConfigError, match=r"realization\(s\) \[3\] outside 0..2"):
        build(path)


def test_balrog_jobs_cli_names_the_tile_and_the_key(tmp_path, capsys):
    code = cli_jobs.main(["--config", str(campaign(tmp_path, **{"realization-list": [99]})), "--scheduler", "local"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"balrog-jobs: error: tile {TILE}: run['realization-list'] names realization(s) [99]")


# ----------------------------------------------------------------------------- positions on the sky


@pytest.mark.parametrize(("bad_ra", "bad_dec", "shown"), [
    (np.nan, -0.5, "ra=nan, dec=-0.5"), (0.5, np.inf, "ra=0.5, dec=inf"), (-np.inf, -0.5, "ra=-inf"),
    (0.5, 91.0, "dec=91.0"), (0.5, -np.nan, "dec=nan"),
])
def test_position_files_with_nan_inf_or_off_the_sky_fail_at_build(tmp_path, bad_ra, bad_dec, shown):
    path = campaign(tmp_path)
    posfile = tmp_path / "pos" / f"{TILE}.fits"
    ra, dec = np.full(2 * NGAL, 0.5), np.full(2 * NGAL, -0.5)
    ra[7], dec[7] = bad_ra, bad_dec
    write_rows(posfile, ra, dec)
    with pytest.raises(InputFileError, match=rf"position file {posfile}: 1 of {2 * NGAL} positions are not on the sky "
                                             rf".*first at row 7: .*{shown}"):
        build(path)
    assert not (tmp_path / "jobs").exists()


def test_the_node_reads_positions_with_the_same_check(tmp_path):
    """A file broken after the build fails its tile on the node with the same message (exit 2)."""
    built = build(campaign(tmp_path))
    posfile = tmp_path / "pos" / f"{TILE}.fits"
    ra, dec = np.full(2 * NGAL, 0.5), np.full(2 * NGAL, -0.5)
    dec[3] = np.nan
    write_rows(posfile, ra, dec)
    result = subprocess.run([str(BIN / "balrog-run"), "-q", str(built.specs[0].path)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    status = json.loads((tmp_path / "out" / TILE / "status.json").read_text()) if (
        tmp_path / "out" / TILE / "status.json").exists() else {}
    assert "realizations" not in status or not status["realizations"]
    assert (f"tile {TILE}: position file {posfile}: 1 of {2 * NGAL} positions are not on the sky" in result.stderr)
    assert not (tmp_path / "out" / TILE / "images").exists()  # nothing fetched


# ----------------------------------------------------------------------------- output directories


@pytest.mark.parametrize("key", ["outdir", "jobdir"])
def test_output_dir_under_a_plain_file_fails_at_build(tmp_path, key, capsys):
    (tmp_path / "a-file").write_text("not a directory\n")
    path = campaign(tmp_path, **{key: str(tmp_path / "a-file" / "campaign")})
    with pytest.raises(OutputError, match=rf"run\['{key}'\] {tmp_path / 'a-file' / 'campaign'}: {tmp_path / 'a-file'} "
                                          "is not a directory"):
        build(path)
    assert cli_jobs.main(["--config", str(path), "--scheduler", "local", "-q"]) == 2
    assert (tmp_path / "a-file").read_text() == "not a directory\n"
    assert not (tmp_path / "jobs").exists()


@pytest.mark.parametrize("key", ["outdir", "jobdir"])
def test_output_dir_on_a_read_only_filesystem_fails_at_build(tmp_path, key, capsys):
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        path = campaign(tmp_path, **{key: str(ro / "campaign")})
        with pytest.raises(DiskError, match=rf"run\['{key}'\] {ro / 'campaign'} is not writable: read-only file system "
                                            rf"\({ro}\)"):
            build(path)
        assert cli_jobs.main(["--config", str(path), "--scheduler", "local"]) == 5
        assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
            f"balrog-jobs: error: run['{key}'] {ro / 'campaign'} is not writable: read-only file system")
    assert not (tmp_path / "jobs").exists()


# ----------------------------------------------------------------------------- balrog-positions


@pytest.mark.parametrize(("argv", "match"), [
    (["--lattice", "1e9", "--realizations", "2"], "--lattice 1e+09 arcsec is too wide for tile DES0002+0001: its "
                                                  "unique area is 2570 x 2570 arcsec"),
    (["--lattice", "2115", "--realizations", "2"], "use at most 2114 arcsec"),
    (["--density", "0.001"], "--density 0.001 per deg^2 gives 1 of 1 tile(s) no position"),
])
def test_positions_that_leave_a_tile_empty_are_refused_with_nothing_written(tmp_path, capsys, argv, match):
    out = tmp_path / "pos"
    assert cli_positions.main(["--tile", "DES0002+0001", *argv, "--outdir", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("balrog-positions: error: ") and match in err[0], err
    assert not out.exists()  # no outdir, no positions-campaign.json, no 0-row file


def test_widest_lattice_accepted_gives_every_realization_positions(tmp_path):
    """The bound is the lattice's covering radius against the unique area's inscribed disc:
    at it, every one of 500 rotated and shifted grids lands on the tile."""
    tile = geometry.des_tile("DES0002+0001")
    widest = int(lattice.max_spacing_arcsec(tile))
    out = tmp_path / "pos"
    assert cli_positions.main(["--tile", tile.tilename, "--lattice", str(widest), "--realizations", "500",
                               "--outdir", str(out), "-q"]) == 0
    rows = positions.read_positions(out / f"{tile.tilename}.fits").row_realization
    assert set(np.unique(rows)) == set(range(500))
