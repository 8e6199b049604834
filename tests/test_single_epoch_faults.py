"""Faults of single-epoch campaigns through ``balrog-run`` (real SWarp, SExtractor; issue 21 item 6).

``kill -9`` during the nosim re-coadd and between realizations resumes to the uninterrupted
catalogs; a SWarp that hangs or writes garbage in one realization's re-coadd fails that
realization only; a full scratch disk is a one-line error naming the path; bad single-epoch
inputs fail their tile with a line naming the file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import campaigns
import fitsio
import numpy as np
import pytest
from conftest import SE_TILE
from mounts import tmpfs

from balrog_runner.inputs.single_epoch import read_se_set, write_se_set
from balrog_runner.node import layout

BIN = Path(sys.executable).parent


def outdir_of(spec: Path) -> Path:
    return Path(json.loads(spec.read_text())["run"]["outdir"])


def balrog_run(spec: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "balrog-run"), "-q", str(spec)], capture_output=True, text=True, timeout=1800)


def status_of(outdir: Path) -> dict:
    return json.loads((outdir / SE_TILE / "status.json").read_text())


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


def same_table(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and len(a) == len(b) and all(
        np.array_equal(a[n], b[n], equal_nan=a[n].dtype.kind == "f") for n in a.dtype.names)


def kill_when(spec: Path, ready, what: str) -> None:
    """Start balrog-run, SIGKILL its whole session as soon as ``ready()`` holds."""
    proc = subprocess.Popen([str(BIN / "balrog-run"), "-q", str(spec)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 900
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before {what}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_kill_9_during_the_nosim_recoadd_and_between_realizations_resumes_to_the_same_catalogs(
        tmp_path, se_survey):
    ref = campaigns.make_se_campaign(tmp_path / "ref", se_survey, ngal=12, realizations=2, run={"push": False})
    assert balrog_run(ref).returncode == 0
    spec = campaigns.make_se_campaign(tmp_path / "killed", se_survey, ngal=12, realizations=2, run={"push": False})
    outdir = outdir_of(spec)
    first_band = layout.nosim_coadd_path(outdir, SE_TILE, "r")
    kill_when(spec, first_band.exists, "the first nosim re-coadd was written")
    assert not layout.nosim_coadd_path(outdir, SE_TILE, "det").exists()
    assert not layout.nosim_catalog_path(outdir, SE_TILE).exists()
    kill_when(spec, lambda: layout.is_complete(outdir, SE_TILE, 0), "realization 0 was complete")
    assert not layout.is_complete(outdir, SE_TILE, 1)
    result = balrog_run(spec)
    assert result.returncode == 0, result.stderr[-2000:]
    ref_out = outdir_of(ref)
    for j in (0, 1):
        for kind, path in layout.catalog_paths(outdir, SE_TILE, j).items():
            other = layout.catalog_paths(ref_out, SE_TILE, j)[kind]
            assert same_table(fitsio.read(str(path), ext=1), fitsio.read(str(other), ext=1)), (j, kind)
    assert not (outdir / SE_TILE / "scratch").exists() and not (outdir / SE_TILE / "nosim" / "coadd").exists()
    assert not [p for p in (outdir / SE_TILE).rglob("*") if ".tmp-" in p.name]


@pytest.mark.slow  # out of the default suite for CI time; run with -m slow
def test_a_swarp_that_hangs_or_writes_garbage_in_a_recoadd_fails_that_realization_only(tmp_path, se_survey):
    marker = f"599.{os.getpid()}{time.time_ns() % 10**6}"  # a sleep no other process runs
    fake = script(tmp_path / "faulty-swarp", f"""\
        case "$PWD" in
          */scratch/r0001/coadd-*) exec sleep {marker};;
          */scratch/r0002/coadd-*) SWarp "$@" || exit $?; head -c 8000 sci.fits > cut && mv cut sci.fits; exit 0;;
        esac
        exec SWarp "$@"
        """)
    spec = campaigns.make_se_campaign(tmp_path, se_survey, ngal=10, realizations=3,
                                      run={"swarp": str(fake), "program-timeout": 30.0, "push": False})
    result = balrog_run(spec)
    assert result.returncode == 3  # an external program failed (the README's exit codes)
    status = status_of(outdir_of(spec))["realizations"]
    assert status["0"]["state"] == "done"
    assert status["1"]["state"] == "failed" and "did not finish within its deadline of 30 s" in status["1"]["error"]
    assert status["2"]["state"] == "failed" and "sci.fits is truncated" in status["2"]["error"]
    assert "faulty-swarp" in status["1"]["error"] and "\n" not in status["2"]["error"]
    outdir = outdir_of(spec)
    assert layout.is_complete(outdir, SE_TILE, 0) and not layout.is_complete(outdir, SE_TILE, 1)
    assert not (layout.scratch_dir(outdir, SE_TILE, 1)).exists()  # a failed realization leaves no scratch
    left = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True).stdout.split()
    assert not left, f"a hung SWarp outlived its realization: {left}"


def test_a_full_scratch_disk_fails_the_realization_naming_the_path(tmp_path, se_survey):
    spec = campaigns.make_se_campaign(tmp_path, se_survey, ngal=20, realizations=1, run={"push": False})
    outdir = outdir_of(spec)
    with tmpfs(outdir / SE_TILE / "scratch", "size=3m") as scratch:
        result = balrog_run(spec)
        assert result.returncode == 5  # a full disk
        error = status_of(outdir)["realizations"]["0"]["error"]
        assert error.startswith("no space left on device writing ") and str(scratch) in error, error
        assert f"(filesystem {scratch}: " in error and "\n" not in error
        assert not list(scratch.iterdir())  # the failed realization's scratch is gone


def test_bad_single_epoch_inputs_fail_their_tile_with_one_line(tmp_path, se_survey):
    spec = campaigns.make_se_campaign(tmp_path, se_survey, ngal=5, realizations=1, run={"push": False})
    outdir = outdir_of(spec)
    se_file = layout.se_set_file(outdir, SE_TILE)
    se = read_se_set(se_survey.se_set_path)
    se_file.unlink()  # no set and no manifest to fetch one with: refused before anything runs
    result = balrog_run(spec)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "needs run['fetch-manifest']" in result.stderr and str(se_file) in result.stderr
    missing_psf = {**se.images, "r": [dataclasses.replace(se.images["r"][0], psf=tmp_path / "gone.psf"),
                                      *se.images["r"][1:]]}
    write_se_set(se_file, dataclasses.replace(se, images=missing_psf))
    result = balrog_run(spec)
    assert result.returncode == 2  # bad input
    error = status_of(outdir)["error"]
    assert f"{se.images['r'][0].key} has no PSF model ({tmp_path / 'gone.psf'}" in error and "\n" not in error
    assert not layout.nosim_catalog_path(outdir, SE_TILE).exists()
    text = se_file.read_text().replace(f'"mag_zero": {se.images["i"][0].mag_zero}', '"mag_zero": NaN', 1)
    se_file.write_text(text)
    result = balrog_run(spec)
    assert result.returncode == 2
    assert f"{se.images['i'][0].key}" in status_of(outdir)["error"] and "zero point nan" in status_of(outdir)["error"]


def test_nosim_is_measured_on_the_recoadd_of_the_untouched_images(tmp_path, se_survey):
    """nosim of a single-epoch tile = SExtractor on the nosim re-coadd, identical to a re-run of it;
    a set naming no coadd PSF models gets them from psfex on the nosim re-coadd, once."""
    spec = campaigns.make_se_campaign(tmp_path, se_survey, ngal=5, realizations=1,
                                      run={"push": False, "tile-clean": False})
    outdir = outdir_of(spec)
    write_se_set(layout.se_set_file(outdir, SE_TILE), dataclasses.replace(se_survey.se_set, coadd_psfs={}))
    result = balrog_run(spec)
    assert result.returncode == 0, result.stderr[-2000:]
    for key in ("r", "i", "z", "det"):
        model = layout.nosim_coadd_path(outdir, SE_TILE, key).with_name(f"{SE_TILE}_{key}_psfcat.psf")
        assert fitsio.read_header(str(model), ext=1)["ACCEPTED"] >= 5
    coadd = layout.nosim_coadd_path(outdir, SE_TILE, "r")
    from balrog_runner.coadd.recoadd import recoadd_band

    again = recoadd_band(se_survey.se_set.band("r"), se_survey.grid, tmp_path / "again.fits", band="r",
                         tilename=SE_TILE, workdir=tmp_path)
    with fitsio.FITS(str(coadd)) as a, fitsio.FITS(str(again)) as b:
        for k in range(3):
            assert np.array_equal(a[k].read(), b[k].read())
    assert fitsio.read_header(str(layout.nosim_catalog_path(outdir, SE_TILE)), ext=1)["BALRUN"] == "nosim"
