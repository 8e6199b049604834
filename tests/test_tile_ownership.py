"""Who owns a tile directory, with real ``balrog-run`` processes on a small synthetic tile.

- one runner per tile: a second ``balrog-run`` on a tile being run fails that tile with the
  holder's pid and host, and the first one's results are intact;
- campaigns never adopt each other's catalogs: another dbname, or the same dbname with other
  inputs, is a one-line error for the tile and the catalogs stay as they were; the same
  campaign resumes; ``balrog-push`` skips catalogs of other campaigns;
- a run killed with SIGKILL leaves temporaries that the next run removes (and nothing else).

A wrapper around source-extractor holds the first run inside its nosim measurement until the
test opens a gate file, so "while the tile is being run" is a fact, not a race.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import fitsio
import pytest
import sqlalchemy as sa
from test_runner import BIN, TILE, balrog_run, make_campaign, spec_run, survey  # noqa: F401 (fixture)

from balrog_runner.campaign import identity as campaign_id
from balrog_runner.campaign.config_keys import config_dir
from balrog_runner.node import layout, runner, tilelock

GATED_SEX = """\
#!/bin/sh
# Hold the run that has GATE set until the file $GATE exists (the test opens it).
if [ -n "$GATE" ]; then
  touch "$GATE.waiting"
  while [ ! -e "$GATE" ]; do sleep 0.05; done
fi
exec source-extractor "$@"
"""


def gated_sex(tmp: Path) -> Path:
    path = tmp / "gated-sex"
    path.write_text(GATED_SEX)
    path.chmod(0o755)
    return path


def start_gated(spec: Path, gate: Path) -> subprocess.Popen:
    """``balrog-run spec`` held at its first SExtractor call until ``gate`` exists."""
    proc = subprocess.Popen([str(BIN / "balrog-run"), "-q", str(spec)], env={**os.environ, "GATE": str(gate)},
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    waiting = Path(f"{gate}.waiting")
    while not waiting.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if not waiting.exists():
        _kill(proc)
        pytest.fail(f"the gated run never reached SExtractor: {proc.communicate()[1][-2000:]}")
    return proc


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def snapshot(outdir: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted((outdir / TILE / "catalogs").glob("*.fits"))}


# ----------------------------------------------------------------------------- lock


def test_second_runner_on_a_running_tile_reports_the_lock_and_the_first_is_intact(tmp_path, survey):  # noqa: F811
    spec = make_campaign(tmp_path, survey, ngal=30, realizations=2, sex=str(gated_sex(tmp_path)))
    outdir = Path(spec_run(spec)["outdir"])
    gate = tmp_path / "gate"
    first = start_gated(spec, gate)
    try:
        second = balrog_run(spec, timeout=600)  # not gated: on its own it would run the whole tile
    finally:
        gate.touch()
        try:
            out, err = first.communicate(timeout=600)
        finally:
            _kill(first)
    assert second.returncode == runner.EXIT_FAILED, second.stderr[-2000:]
    lock = tilelock.lock_path(outdir / TILE)
    assert (f"tile {TILE} is being run by another balrog-run (pid {first.pid} on host {socket.gethostname()} "
            f"since ") in second.stderr
    assert f"lock file {lock}" in second.stderr
    assert first.returncode == 0, err[-2000:]
    status = json.loads((outdir / TILE / "status.json").read_text())
    assert status["complete"] and set(status["realizations"]) == {"0", "1"}
    assert all(e["state"] == "done" and e["pushed"] and not e["error"] for e in status["realizations"].values())
    for j in range(2):
        assert layout.is_complete(outdir, TILE, j)
        cats = layout.catalog_paths(outdir, TILE, j)
        assert len(fitsio.read(str(cats["truth"]), ext=1)) == 30 and len(fitsio.read(str(cats["sim"]), ext=1)) > 0
    assert lock.read_text() == ""  # released: no holder recorded


# ----------------------------------------------------------------------------- campaign identity


def test_campaigns_sharing_an_outdir_never_adopt_each_others_catalogs(tmp_path, survey):  # noqa: F811
    spec_a = make_campaign(tmp_path / "a", survey, ngal=30, realizations=2)
    result = balrog_run(spec_a)
    assert result.returncode == 0, result.stderr[-2000:]
    outdir = Path(spec_run(spec_a)["outdir"])
    before = snapshot(outdir)
    assert len(before) == 8  # truth, sim, nosim and match of 2 realizations
    status_a = json.loads((outdir / TILE / "status.json").read_text())
    ident = (status_a["campaign"], status_a["fingerprint"])
    assert ident[0] == "demo" and len(ident[1]) == campaign_id.FINGERPRINT_HEX
    for path in before:  # every catalog (truth included) carries the identity
        assert campaign_id.read_identity(path) == ident, path
    assert layout.is_complete(outdir, TILE, 0, identity=campaign_id.CampaignIdentity(*ident))
    assert not layout.is_complete(outdir, TILE, 0, identity=campaign_id.CampaignIdentity("demo", "0" * 16))

    # Another campaign (dbname) pointed at the same outdir.
    spec_b = make_campaign(tmp_path / "b", survey, ngal=30, realizations=2, outdir=str(outdir), dbname="other")
    result = balrog_run(spec_b)
    assert result.returncode == runner.EXIT_FAILED
    assert (f"{outdir / TILE} holds outputs of campaign 'demo' (fingerprint {ident[1]}); this campaign is 'other' "
            f"(fingerprint ") in result.stderr
    assert "use another run['outdir'] or remove them" in result.stderr
    assert snapshot(outdir) == before
    other_db = outdir / "other.sqlite"
    if other_db.exists():
        engine = sa.create_engine(f"sqlite:///{other_db}")
        assert "other_truth" not in sa.inspect(engine).get_table_names()
        engine.dispose()

    # The same dbname with other ngal / realizations (the same 60 positions, cut differently).
    spec_c = make_campaign(tmp_path / "c", survey, ngal=20, realizations=3, outdir=str(outdir))
    result = balrog_run(spec_c)
    assert result.returncode == runner.EXIT_FAILED
    assert "holds outputs of campaign 'demo'" in result.stderr
    assert "made from other inputs (ngal, realizations)" in result.stderr
    assert snapshot(outdir) == before

    # The same dbname with an edited SExtractor param file.
    param = tmp_path / "edited.param"
    param.write_text((config_dir() / "light.param").read_text() + "# edited\n")
    spec_d = make_campaign(tmp_path / "d", survey, ngal=30, realizations=2, outdir=str(outdir),
                           **{"sex-param": str(param)})
    result = balrog_run(spec_d)
    assert result.returncode == runner.EXIT_FAILED
    assert "made from other inputs (sex-param)" in result.stderr
    assert snapshot(outdir) == before
    assert json.loads((outdir / TILE / "status.json").read_text()) == status_a

    # The same campaign again: resume adopts its own catalogs (nothing re-run or re-written).
    result = balrog_run(spec_a)
    assert result.returncode == 0, result.stderr[-2000:]
    assert snapshot(outdir) == before
    assert json.loads((outdir / TILE / "status.json").read_text())["complete"]

    # balrog-push pushes only the campaign's own catalogs.
    db = f"sqlite:///{tmp_path / 'push.sqlite'}"
    push = subprocess.run([str(BIN / "balrog-push"), str(outdir), "--db", db, "--dbname", "other"],
                          capture_output=True, text=True)
    # nothing of campaign 'other' there: an error, not a silent success (issue 19)
    assert push.returncode == 2, push.stdout + push.stderr
    assert "belongs to another campaign than 'other': 'demo' (2); nothing pushed" in push.stderr
    assert not (tmp_path / "push.sqlite").exists()
    push = subprocess.run([str(BIN / "balrog-push"), str(outdir), "--db", db, "--dbname", "other",
                           "--campaign", "demo"], capture_output=True, text=True)
    assert push.returncode == 0 and "pushed 2 realizations" in push.stdout, push.stdout + push.stderr


# ----------------------------------------------------------------------------- leftovers


def test_next_run_removes_the_leftovers_of_a_killed_run_and_nothing_else(tmp_path, survey):  # noqa: F811
    spec = make_campaign(tmp_path, survey, ngal=30, realizations=1, push=False, sex=str(gated_sex(tmp_path)))
    outdir = Path(spec_run(spec)["outdir"])
    tdir = outdir / TILE
    killed = start_gated(spec, tmp_path / "never-opened")
    _kill(killed)  # SIGKILL in the middle of the nosim measurement
    real_leftovers = list((tdir / "nosim").glob(".nosim-*"))
    assert real_leftovers, "the killed run left no nosim working directory"
    planted = [  # what a kill in the middle of the other atomic writes leaves
        tdir / "catalogs" / f".{TILE}_r0000_sim.fits.tmp-k3x_9q2a.fits",
        tdir / "images" / f".{TILE}_g.fits.tmp-ab12cd34.fits",
        tdir / f".{TILE}.log.tmp-zz99yy88",
        tdir / ".status.json.tmp-0a1b2c3d.json",
    ]
    for p in planted:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"\0" * 100_000)
    keep = [  # not ours: a user's notes, and names that only look alike
        tdir / "catalogs" / "notes.txt",
        tdir / ".keep",
        tdir / "nosim" / f".{TILE}_g.fits.tmp-short",  # (images/ itself goes with tile-clean)
        tdir / "nosim" / f"{TILE}_g.fits.tmp-ab12cd34.fits",
        tdir / "catalogs" / ".nosim-ab12cd34",
    ]
    for p in keep:
        p.write_text("keep me\n")
    result = balrog_run(spec)
    assert result.returncode == 0, result.stderr[-2000:]
    assert layout.is_complete(outdir, TILE, 0)
    for p in [*real_leftovers, *planted]:
        assert not p.exists(), p
    assert not [p for p in tdir.rglob(".*") if p.name.startswith(".nosim-") and p.parent.name == "nosim"]
    for p in keep:
        assert p.read_text() == "keep me\n", p


def test_balrog_positions_removes_the_temporary_of_a_killed_write(tmp_path):
    outdir = tmp_path / "pos"
    argv = [str(BIN / "balrog-positions"), "-q", "--tilenames", TILE, "--pertile", "2000000", "--iterateby", "1000",
            "--seed", "3", "--outdir", str(outdir)]
    proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    temps: list[Path] = []
    deadline = time.monotonic() + 120
    while not temps and proc.poll() is None and time.monotonic() < deadline:
        temps = [p for p in outdir.glob(f".{TILE}.fits.tmp-*") if p.stat().st_size > 0] if outdir.exists() else []
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert temps, "balrog-positions ended before it could be killed mid-write"
    assert not (outdir / f"{TILE}.fits").exists()
    other = outdir / ".DES0002+0001.fits.tmp-ab12cd34.fits"  # a tile this run does not write: kept
    other.write_bytes(b"x")
    rerun = [a for a in argv if a not in ("--iterateby", "1000")]  # same campaign, default chunks
    assert subprocess.run(rerun, capture_output=True, text=True).returncode == 0
    assert (outdir / f"{TILE}.fits").stat().st_size > 40_000_000
    assert not list(outdir.glob(f".{TILE}.fits.tmp-*"))
    assert other.read_bytes() == b"x"
