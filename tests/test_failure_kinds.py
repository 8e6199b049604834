"""A failed unit says what kind of failure it was: ``balrog-run``'s exit code and console.

Real faults on small synthetic tiles, the real programs and the real archive server:
a position file full of garbage (2, bad input), a manifest MD5 the served file does not
have (6, archive), SExtractor missing from PATH (3, program), a full disk (5). The subjob
exits with the worst kind among its units (errors.SEVERITY) and the console names each
failed tile's reason, not only the tile log.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import campaigns
import pytest
from mounts import tmpfs

from balrog_runner import errors
from balrog_runner.demo import run as demo
from balrog_runner.demo.archive_server import ArchiveServer
from balrog_runner.inputs import manifest
from balrog_runner.node import layout

TILES = ("DES2359+0001", "DES0453-4457")
SIZE = 256
BIN = Path(sys.executable).parent
USER, PASSWORD = "desuser", "kinds-pw-1"
IMAGE_KEYS = ("g", "r", "i", "z", "Y", "det")


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    plan = demo.DemoPlan(workdir=tmp_path_factory.mktemp("survey"), tiles=list(TILES), size=SIZE)
    demo.make_survey(plan)
    return plan.paths["archive"]


def make_campaign(root: Path, archive: Path, tiles, **run) -> Path:
    return campaigns.make_campaign(root, archive, tiles, size=SIZE, ngal=8, realizations=1, run=run)


def balrog_run(spec: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "balrog-run"), "-q", str(spec)], capture_output=True, text=True, timeout=600,
                          env=env)


def spec_data(spec: Path) -> dict:
    return json.loads(spec.read_text())


def status_of(spec: Path, tile: str) -> dict:
    return json.loads((Path(spec_data(spec)["run"]["outdir"]) / tile / "status.json").read_text())


def console_line(stderr: str, tile: str) -> str:
    """The end-of-run line naming ``tile``'s reason (logged by the runner, shown with -q)."""
    lines = [ln for ln in stderr.splitlines() if f"ERROR balrog_runner.node.runner: tile {tile}: " in ln
             and "[exit " in ln]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def write_manifest(archive: Path, path: Path, wrong_md5: dict[str, str]) -> Path:
    """The inputs manifest of the archive's tiles, as balrog-inputs writes it; the r-band PSF
    MD5 of each tile in ``wrong_md5`` replaced by that value."""
    tiles = {}
    for tile in TILES:
        entries = {}
        for band in IMAGE_KEYS:
            image, psf = archive / tile / f"{tile}_{band}.fits.fz", archive / tile / f"{tile}_{band}_psfcat.psf"
            psf_md5 = wrong_md5.get(tile) if band == "r" and tile in wrong_md5 else md5(psf)
            entries[band] = manifest.FileEntry(f"{tile}/{image.name}", f"{tile}/{psf.name}", image.stat().st_size,
                                               md5(image), psf.stat().st_size, psf_md5)
        tiles[tile] = entries
    return manifest.write(manifest.Manifest(release="Y3A2_COADD", era="y3", tiles=tiles, bands=IMAGE_KEYS), path)


def test_bad_input_and_archive_failures_in_one_subjob_exit_with_the_worse(tmp_path, survey):
    bad_positions, bad_md5 = TILES
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    netrc.chmod(0o600)
    wrong = "0" * 32
    mfile = write_manifest(survey, tmp_path / "inputs.json", {bad_md5: wrong})
    with ArchiveServer(survey, credentials=(USER, PASSWORD)) as server:
        spec = make_campaign(tmp_path / "c", survey, TILES, release="Y3A2_COADD", **{
            "fetch-root": server.url, "fetch-manifest": str(mfile), "fetch-netrc": str(netrc)})
        posfile = Path(spec_data(spec)["run"]["pos"]) / f"{bad_positions}.fits"
        posfile.write_bytes(os.urandom(8640))  # garbage, after balrog-jobs checked it
        both = balrog_run(spec)
        data = spec_data(spec)
        data["tiles"] = [bad_md5]
        alone = tmp_path / "archive-only.json"
        alone.write_text(json.dumps(data))
        archive_only = balrog_run(alone)
    assert both.returncode == errors.EXIT_BAD_INPUT, both.stderr[-3000:]  # 2 is worse than 6
    line = console_line(both.stderr, bad_positions)
    assert f"position file {posfile}" in line and line.endswith("[exit 2: bad input]"), line
    line = console_line(both.stderr, bad_md5)
    assert f"_r_psfcat.psf: MD5 {md5(survey / bad_md5 / f'{bad_md5}_r_psfcat.psf')} differs from the archive's {wrong}" in line
    assert line.endswith("[exit 6: network or archive]"), line
    assert (f"tiles with failures: {bad_positions} (2: bad input), {bad_md5} (6: network or archive); exit code 2 (bad input)"
            in both.stderr)
    assert "Traceback" not in both.stderr and PASSWORD not in both.stderr
    assert archive_only.returncode == errors.EXIT_ARCHIVE, archive_only.stderr[-3000:]
    assert "differs from the archive's" in status_of(spec, bad_md5)["error"]


def test_sextractor_missing_from_path_is_a_program_failure(tmp_path, survey):
    tile = TILES[0]
    spec = make_campaign(tmp_path, survey, [tile])
    path_dir = tmp_path / "bin"  # every program the run needs but SExtractor
    path_dir.mkdir()
    for name in ("funpack", "SWarp"):
        (path_dir / name).symlink_to(subprocess.run(["which", name], capture_output=True, text=True,
                                                    check=True).stdout.strip())
    result = balrog_run(spec, env={**os.environ, "PATH": str(path_dir)})
    assert result.returncode == errors.EXIT_PROGRAM, result.stderr[-3000:]
    line = console_line(result.stderr, tile)
    assert "source-extractor not found on PATH" in line and line.endswith("[exit 3: external program]"), line
    assert not layout.nosim_catalog_path(Path(spec_data(spec)["run"]["outdir"]), tile).exists()


@pytest.mark.parametrize("size, where", [("4m", "images"), ("7m", "scratch")])
def test_a_full_disk_is_a_disk_failure_wherever_it_fills(tmp_path, survey, size, where):
    """4 MiB fill during the download (funpack), 7 MiB in a realization's scratch images."""
    tile = TILES[0]
    with tmpfs(tmp_path / "disk", f"size={size}") as disk:
        spec = make_campaign(tmp_path / "c", survey, [tile], outdir=str(disk / "out"))
        result = balrog_run(spec)
        assert result.returncode == errors.EXIT_DISK, result.stderr[-3000:]
        line = console_line(result.stderr, tile)
        assert f"no space left on device writing {disk / 'out' / tile / where}/" in line, line
        assert f"(filesystem {disk}: " in line and line.endswith("[exit 5: disk full or read-only]"), line
        assert "Traceback" not in result.stderr


def test_worst_exit_code_follows_the_one_table():
    worst = errors.worst_exit_code
    assert worst([]) == worst([0, 0]) == 0
    assert worst([0, 4]) == 4 and worst([4, 6]) == 6 and worst([6, 1]) == 1
    assert worst([1, 5]) == 5 and worst([5, 3]) == 3 and worst([3, 2]) == 2 and worst([2, 130]) == 130
    assert worst([0, 127]) == 1 and worst([-9, 4]) == 1  # a shell's or a signal's code: a failure
    assert set(errors.SEVERITY) == set(errors.EXIT_CODES)
