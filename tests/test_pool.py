"""Worker processes (pool.py): a killed worker fails its task, never the run.

Unit tests drive :func:`pool.run_tasks` with small Python tasks that kill themselves; the
end-to-end test kills a real pipeline worker with SIGKILL (a SExtractor wrapper that does
``kill -9 $PPID`` once) and checks the run fails that realization only, pushes the rest,
and that a re-run writes the catalogs of an uninterrupted run.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from test_runner import TILE, balrog_run, make_campaign, read, same_table, spec_run
from test_runner import survey as survey  # noqa: F401 - the module's synthetic tile fixture

from balrog_runner.node import layout, pool, runner

# ----------------------------------------------------------------------------- unit


def _square(x: int) -> int:
    return x * x


def _die(how: str) -> None:
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif how == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
    elif how == "exit3":
        os._exit(3)
    elif how == "raise":
        raise ValueError("bad task")
    time.sleep(60)


def _task(item):
    return _die(item) if isinstance(item, str) else _square(item)


@pytest.mark.timeout(60)
def test_results_and_failures_each_reported_once():
    tasks = [1, "sigkill", 2, "exit3", 3, "sigterm", 4, "raise", 5]
    results, failures = [], {}
    for out in pool.run_tasks(_task, tasks, workers=2):
        if isinstance(out, pool.TaskFailure):
            failures[out.task] = out.reason
        else:
            results.append(out)
    assert sorted(results) == [1, 4, 9, 16, 25]
    assert set(failures) == {"sigkill", "exit3", "sigterm", "raise"}
    assert "killed by signal 9 (SIGKILL), probably out of memory" in failures["sigkill"]
    assert "killed by signal 15 (SIGTERM)" in failures["sigterm"]
    assert "out of memory" not in failures["sigterm"]
    assert "exited with code 3" in failures["exit3"]
    assert "ValueError: bad task" in failures["raise"]


def _count_concurrent(args) -> int:
    """Increment a shared counter under a lock, note its maximum, hold a moment, decrement."""
    counter, _ = args
    with open(counter, "r+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        now, peak = (int(v) for v in fh.read().split())
        fh.seek(0), fh.truncate(), fh.write(f"{now + 1} {max(peak, now + 1)}")
    time.sleep(0.2)
    with open(counter, "r+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        now, peak = (int(v) for v in fh.read().split())
        fh.seek(0), fh.truncate(), fh.write(f"{now - 1} {peak}")
    return os.getpid()


@pytest.mark.timeout(60)
def test_at_most_workers_processes_one_per_task(tmp_path):
    counter = tmp_path / "counter"
    counter.write_text("0 0")
    pids = list(pool.run_tasks(_count_concurrent, [(counter, i) for i in range(6)], workers=2))
    assert len(pids) == 6 and len(set(pids)) == 6 and os.getpid() not in pids
    assert 1 <= int(counter.read_text().split()[1]) <= 2


def _orphan_then_die(pidfile: Path) -> None:
    child = subprocess.Popen(["sleep", "300"])
    pidfile.write_text(str(child.pid))
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.timeout(60)
def test_a_killed_workers_children_are_killed_too(tmp_path):
    """A worker SIGKILLed while its SExtractor runs must not leave that SExtractor behind."""
    pidfile = tmp_path / "child.pid"
    [out] = list(pool.run_tasks(_orphan_then_die, [pidfile], workers=1))
    assert isinstance(out, pool.TaskFailure) and "signal 9" in out.reason
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{pid}/stat") as fh:  # a zombie re-parented to init counts as gone
            if fh.read().split(")")[-1].split()[0] == "Z":
                break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the killed worker's child process was left running")


# ----------------------------------------------------------------------------- end to end

KILLER_SEX = """\
#!/bin/sh
# SExtractor stand-in: the first time it is run for realization 1, it SIGKILLs the python
# worker that started it (what the OOM killer does); otherwise it is SExtractor.
case "$*" in
  *scratch/r0001*) if mkdir "{marker}" 2>/dev/null; then kill -9 $PPID; exit 1; fi;;
esac
exec source-extractor "$@"
"""


@pytest.mark.timeout(600)
def test_killed_worker_fails_its_realization_and_the_rest_are_pushed(tmp_path, survey):  # noqa: F811
    ref_spec = make_campaign(tmp_path / "ref", survey, ngal=30, realizations=3, ppn=2, push=False)
    assert balrog_run(ref_spec, timeout=300).returncode == 0
    killer = tmp_path / "killer-sex"
    killer.write_text(KILLER_SEX.format(marker=tmp_path / "killed-once"))
    killer.chmod(0o755)
    spec = make_campaign(tmp_path / "killed", survey, ngal=30, realizations=3, ppn=2, sex=str(killer))

    t0 = time.monotonic()
    result = balrog_run(spec, timeout=300)  # the old Pool waited here forever
    assert (tmp_path / "killed-once").is_dir(), "the worker was never killed"
    assert result.returncode == runner.EXIT_FAILED, result.stderr[-2000:]
    assert time.monotonic() - t0 < 300
    outdir = Path(spec_run(spec)["outdir"])
    status = json.loads((outdir / TILE / "status.json").read_text())
    entries = status["realizations"]
    assert entries["1"]["state"] == "failed"
    assert "killed by signal 9 (SIGKILL)" in entries["1"]["error"], entries["1"]
    assert all(entries[j]["state"] == "done" and entries[j]["pushed"] for j in ("0", "2"))
    assert not status["complete"]
    assert not layout.is_complete(outdir, TILE, 1)
    assert not layout.scratch_dir(outdir, TILE, 1).exists()  # the killed worker's scratch removed
    engine = sa.create_engine(f"sqlite:///{outdir / 'demo.sqlite'}")
    with engine.connect() as conn:
        pushed = sorted(r[0] for r in conn.execute(sa.text("SELECT DISTINCT realization FROM demo_truth")))
    engine.dispose()
    assert pushed == [0, 2]
    log_text = (outdir / TILE / f"{TILE}.log").read_text()
    assert "realization 1 failed: worker killed by signal 9" in log_text

    rerun = balrog_run(spec, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    status = json.loads((outdir / TILE / "status.json").read_text())
    assert status["complete"] and status["realizations"]["1"]["state"] == "done"
    ref_out = Path(spec_run(ref_spec)["outdir"])
    for j in range(3):
        for kind, path in layout.catalog_paths(outdir, TILE, j).items():
            assert same_table(read(path), read(layout.catalog_paths(ref_out, TILE, j)[kind])), (j, kind)
    engine = sa.create_engine(f"sqlite:///{outdir / 'demo.sqlite'}")
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT COUNT(*) FROM demo_truth")).scalar_one()
    engine.dispose()
    assert n == 90


@pytest.mark.timeout(300)
def test_a_single_worker_killed_does_not_kill_the_run(tmp_path, survey):  # noqa: F811
    """ppn=1 used to run realizations in the runner itself: a SIGKILL took the run with it."""
    killer = tmp_path / "killer-sex"
    killer.write_text(KILLER_SEX.format(marker=tmp_path / "killed-once"))
    killer.chmod(0o755)
    spec = make_campaign(tmp_path, survey, ngal=30, realizations=2, ppn=1, sex=str(killer), push=False)
    result = balrog_run(spec, timeout=240)
    assert result.returncode == runner.EXIT_FAILED, (result.returncode, result.stderr[-2000:])
    outdir = Path(spec_run(spec)["outdir"])
    status = json.loads((outdir / TILE / "status.json").read_text())
    assert status["realizations"]["0"]["state"] == "done"
    assert "signal 9" in status["realizations"]["1"]["error"]



def _fast_or_hang(args) -> int:
    pidfile, hang = args
    pidfile.write_text(str(os.getpid()))
    if hang:
        time.sleep(300)
    return os.getpid()


@pytest.mark.timeout(60)
def test_stopping_early_kills_and_reaps_the_running_workers(tmp_path):
    """What Ctrl-C (or any exception in the caller) does: no worker is left running."""
    slow = tmp_path / "slow.pid"
    outcomes = pool.run_tasks(_fast_or_hang, [(tmp_path / "fast.pid", False), (slow, True)], workers=2)
    first = next(outcomes)
    assert first == int((tmp_path / "fast.pid").read_text())
    while not slow.exists() or not slow.read_text():  # the slow worker is running
        time.sleep(0.01)
    outcomes.close()
    pid = int(slow.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped (a zombie would still accept signal 0)
