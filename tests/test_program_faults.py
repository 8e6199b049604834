"""Faults of the external programs and of the inputs, seen from ``balrog-run`` end to end.

Real SExtractor / SWarp / funpack on two small synthetic tiles; the faulty programs are
``/bin/sh`` wrappers around the real ones that hang or write garbage. Each fault must fail
only its own unit (one realization, one tile), with a one-line reason, and leave nothing
running.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import campaigns
import fitsio
import pytest

from balrog_runner import errors
from balrog_runner.demo import run as demo
from balrog_runner.node import layout

TILES = ("DES2359+0001", "DES0453-4457")
SIZE = 256
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """Two synthetic tiles in the plain archive layout (shared, read-only)."""
    plan = demo.DemoPlan(workdir=tmp_path_factory.mktemp("survey"), tiles=list(TILES), size=SIZE)
    demo.make_survey(plan)
    return plan.paths["archive"]


def make_campaign(root: Path, archive: Path, tiles, *, ngal: int = 12, realizations: int = 1, **run) -> Path:
    """Positions on the cutout tiles plus a CustomConfig with ``run`` entries; returns the subjob spec path."""
    return campaigns.make_campaign(root, archive, tiles, size=SIZE, ngal=ngal, realizations=realizations, run=run)


def balrog_run(spec: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "balrog-run"), "-q", str(spec)], capture_output=True, text=True, timeout=600)


def outdir_of(spec: Path) -> Path:
    return Path(json.loads(spec.read_text())["run"]["outdir"])


def status_of(outdir: Path, tile: str) -> dict:
    return json.loads((outdir / tile / "status.json").read_text())


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


def running_with(marker: str) -> list[str]:
    """Live (not zombie) processes whose command line holds ``marker``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker in cmd and state not in ("Z", "X"):
            found.append(f"{proc.name}: {cmd}")
    return found


def test_garbage_nosim_catalog_fails_its_tile_and_the_next_tile_runs(tmp_path, survey):
    bad, good = TILES
    fake = script(tmp_path / "garbage-sex", f"""\
        source-extractor "$@" || exit $?
        case "$*" in
          *{bad}_nosim_all_*)
            out=""; prev=""
            for a in "$@"; do [ "$prev" = "-CATALOG_NAME" ] && out="$a"; prev="$a"; done
            head -c 5760 /dev/urandom > "$out";;
        esac
        exit 0
        """)
    spec = make_campaign(tmp_path, survey, TILES, sex=str(fake))
    result = balrog_run(spec)
    assert result.returncode == errors.EXIT_PROGRAM, result.stderr[-3000:]  # a program wrote garbage
    assert "Traceback" not in result.stderr
    outdir = outdir_of(spec)
    error = status_of(outdir, bad)["error"]
    assert str(fake) in error and f"{bad}_nosim_all_" in error and "not readable as FITS" in error
    assert "\n" not in error
    assert f"ERROR balrog_runner.node.runner: tile {bad}: {error} [exit 3: external program]\n" in result.stderr
    assert not layout.nosim_catalog_path(outdir, bad).exists()
    later = status_of(outdir, good)
    assert later["complete"] and later["realizations"]["0"]["state"] == "done"
    assert layout.is_complete(outdir, good, 0)


def test_hung_swarp_fails_its_realization_at_the_deadline(tmp_path, survey):
    tile = TILES[0]
    fake = script(tmp_path / "hung-swarp", "sleep 4325.5 &\nexec sleep 4324.5\n")
    spec = make_campaign(tmp_path, survey, [tile], swarp=str(fake), **{"program-timeout": 8})
    result = balrog_run(spec)
    assert result.returncode == errors.EXIT_PROGRAM, result.stderr[-3000:]
    outdir = outdir_of(spec)
    entry = status_of(outdir, tile)["realizations"]["0"]
    assert entry["state"] == "failed"
    assert entry["error"].startswith(f"{fake} did not finish within its deadline of 8 s")
    assert (f"tile {tile}: 1 of 1 realization(s) failed: realization 0: {entry['error']} [exit 3: external program]"
            in result.stderr)
    assert not layout.is_complete(outdir, tile, 0)
    assert layout.nosim_catalog_path(outdir, tile).exists()  # the real SExtractor met its deadline
    assert running_with("sleep 432") == []


def test_positions_off_the_tile_fail_the_realization(tmp_path, survey):
    tile = TILES[0]
    spec = make_campaign(tmp_path, survey, [tile], ngal=10, realizations=2)
    posfile = Path(json.loads(spec.read_text())["run"]["pos"]) / f"{tile}.fits"
    with fitsio.FITS(str(posfile), "rw") as f:  # the positions of a tile 3 degrees away
        data = f[1].read()
        data["dec"] += 3.0
        f[1].write(data)
    result = balrog_run(spec)
    assert result.returncode == errors.EXIT_BAD_INPUT, result.stderr[-3000:]
    outdir = outdir_of(spec)
    status = status_of(outdir, tile)
    for j in (0, 1):
        error = status["realizations"][str(j)]["error"]
        assert error == (f"no object of realization {j} falls on the tile's images (10 of 10 off the image): "
                         f"positions file {posfile} does not match tile {tile}?")
        assert not layout.is_complete(outdir, tile, j)
    assert not status["complete"]
