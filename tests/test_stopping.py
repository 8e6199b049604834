"""SIGTERM (a scheduler's cancel, ``kill``) and SIGINT stop a command cleanly: its running
programs are killed, its temporary files removed, and it exits 143 (130 for SIGINT).

Real signals to real processes: ``balrog-make-tile`` while it renders (main thread) and while
its threads run psfex and fpack, and ``balrog-run`` while a pool worker measures a
realization (SExtractor held by a gate), which must leave no scratch images behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_runner import TILE, balrog_run, make_campaign, spec_run, survey  # noqa: F401 (fixture)

from balrog_runner import leftovers
from balrog_runner.node import layout

BIN = Path(sys.executable).parent
SYNTH_TILE = "DES0002+0209"


def _wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"the command ended before {what}: {proc.communicate()[1][-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.05)


def _processes_under(folder: Path) -> list[int]:
    """Processes whose working directory is inside ``folder`` (a program left running)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cwd = os.readlink(entry / "cwd")
            except OSError:
                continue
            if cwd.startswith(str(folder)):
                found.append(int(entry.name))
    return found


def _synth_scratch(outdir: Path) -> list[Path]:
    return list(outdir.glob(f".{SYNTH_TILE}-synth-*"))


@pytest.mark.parametrize("stage", ["rendering", "psf-models"])
def test_sigterm_to_make_tile_leaves_no_temporaries(tmp_path, stage):
    """At 10000^2 a stopped run left 4 x 1.2 GB of temporaries; now nothing is left."""
    outdir = tmp_path / "tile"
    proc = subprocess.Popen([str(BIN / "balrog-make-tile"), "--tile", SYNTH_TILE, "--size", "768",
                             "--outdir", str(outdir), "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if stage == "rendering":  # the first band's image is written, the others are being drawn
            _wait_for(lambda: any(s.glob("*_g.fits") for s in _synth_scratch(outdir)), proc, "the g band was drawn")
        else:  # the det image exists: threads now run SExtractor + psfex and fpack per band
            _wait_for(lambda: any((s / "stage").is_dir() for s in _synth_scratch(outdir)), proc,
                      "the PSF models were started")
        assert _synth_scratch(outdir)  # the temporaries the signal must clean up
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1] == "balrog-make-tile: stopped by SIGTERM; its temporary files were removed"
    assert sorted(p.name for p in outdir.iterdir()) == []  # neither temporaries nor a partial tile
    assert _processes_under(outdir) == []


def test_sigint_to_make_tile_leaves_no_temporaries(tmp_path):
    outdir = tmp_path / "tile"
    proc = subprocess.Popen([str(BIN / "balrog-make-tile"), "--tile", SYNTH_TILE, "--size", "768",
                             "--outdir", str(outdir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: any(s.glob("*_g.fits") for s in _synth_scratch(outdir)), proc, "the g band was drawn")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted; its temporary files were removed" in err
    assert list(outdir.iterdir()) == []


GATED_SEX = """\
#!/bin/sh
# SExtractor, held inside a realization's scratch directory until $GATE exists.
if [ -n "$GATE" ]; then
  case "$(pwd)" in
    */scratch/r*) touch "$GATE.waiting"; while [ ! -e "$GATE" ]; do sleep 0.05; done ;;
  esac
fi
exec source-extractor "$@"
"""


def test_sigterm_to_balrog_run_removes_the_realizations_scratch(tmp_path, survey):  # noqa: F811
    sex = tmp_path / "gated-sex"
    sex.write_text(GATED_SEX)
    sex.chmod(0o755)
    spec = make_campaign(tmp_path, survey, ngal=30, realizations=2, ppn=2, sex=str(sex))
    outdir = Path(spec_run(spec)["outdir"])
    gate = tmp_path / "gate"
    proc = subprocess.Popen([str(BIN / "balrog-run"), "-q", str(spec)], env={**os.environ, "GATE": str(gate)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    scratch = outdir / TILE / "scratch"
    try:
        _wait_for(lambda: Path(f"{gate}.waiting").exists(), proc, "a realization reached SExtractor", timeout=600)
        injected = [p for p in scratch.rglob("*.fits")]
        assert injected, "no injected images in the scratch directory"
        proc.send_signal(signal.SIGTERM)  # the runner only, as `kill <pid>` does
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "balrog-run: stopped by SIGTERM; its temporary files were removed" in err
    tile = outdir / TILE
    assert not [p for p in scratch.glob("r*")], sorted(scratch.rglob("*"))
    assert not [p for p in tile.rglob("*") if leftovers.is_leftover(p.name, p.parent.name)]
    assert _processes_under(outdir) == []
    assert not any(layout.is_complete(outdir, TILE, j) for j in (0, 1))
    # the next run (no gate now) does the tile from where it was
    gate.touch()
    result = balrog_run(spec, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert all(layout.is_complete(outdir, TILE, j) for j in (0, 1))
