"""The generated SLURM jobs, submitted to a real one-node SLURM on localhost.

The daemons start once per session (``tests/slurm_cluster.py``). The tests skip only when
the SLURM binaries are absent or we are not root; if SLURM is installed and we are root but
it does not come up, they fail, so CI cannot pass without running them.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import pytest
from slurm_cluster import SlurmUnavailable, missing_binaries, start_slurm, stop_slurm, wait_for_jobs
from test_jobs import BALROG_RUN, TILES, records, write_campaign

from balrog_runner import jobs
from balrog_runner.campaign import config as cfgmod


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_dependency_chain_tiles_and_failure(slurm_env, tmp_path):
    """Three chained groups of two tiles; the middle one loses a position file.

    Checks: every subjob ran its own tiles under its own job; each job started after the
    previous one ended (afterany); the failing tile makes its job FAILED and the chain goes on.
    Paths with shell syntax in them must survive sbatch and bash untouched.
    """
    root = tmp_path / "camp a'b $(touch PWNED) `x`"
    root.mkdir()
    tiles = TILES + ["DES0005-0001", "DES0006-0001"]
    cfg = cfgmod.load_config(write_campaign(root, tiles, npersubjob=2, asdependency=True,
                                            queue=slurm_env.partition, walltime="00:05:00"))
    built = jobs.build_jobs(cfg, "slurm")
    (root / "pos" / f"{tiles[3]}.fits").unlink()
    ids = jobs.submit_slurm(built)
    assert len(ids) == 3
    info = wait_for_jobs(slurm_env, ids, timeout=90)
    states = [info[i][0]["JobState"] for i in ids]
    assert states == ["COMPLETED", "FAILED", "COMPLETED"]
    recs = {r["subjob"]: r for r in records(built.job_dir)}
    assert sorted(recs) == [0, 1, 2]
    for k in range(3):
        assert recs[k]["tiles"] == tiles[2 * k : 2 * k + 2]
        assert recs[k]["slurm_job_id"] == ids[k]
    assert recs[1]["failed"] == [tiles[3]]
    for a, b in zip(ids, ids[1:], strict=False):
        assert _time(info[b][0]["StartTime"]) >= _time(info[a][0]["EndTime"])
    for k in range(2):
        assert recs[k + 1]["start"] >= recs[k]["end"]
    assert not list(tmp_path.rglob("PWNED"))
    logs = sorted((built.job_dir / "logs").glob("*.out"))
    assert len(logs) == 3


def test_array_throttled_by_arraymax(slurm_env, tmp_path):
    """Three array elements with arraymax=1 on a two-CPU node never run at the same time.

    The --source script stands in for a node's set-up time (1 s) so that elements would
    overlap if SLURM let two run; it stamps the start of each element for the check.
    """
    source = tmp_path / "setup.sh"
    source.write_text(
        'if [ -n "${SLURM_ARRAY_TASK_ID:-}" ]; then\n'
        '    printf \'{"task": %s, "t": %s}\\n\' "$SLURM_ARRAY_TASK_ID" "$(date +%s.%N)" >> "$(dirname "$BASH_SOURCE")/starts.jsonl"\n'
        "    sleep 1\n"
        "fi\n"
    )
    cfg = cfgmod.load_config(write_campaign(tmp_path, TILES[:3], nodes=3, asarray=True, arraymax=1,
                                            queue=slurm_env.partition, walltime="00:05:00"), source=source)
    built = jobs.build_jobs(cfg, "slurm")
    ids = jobs.submit_slurm(built)
    assert len(ids) == 1
    info = wait_for_jobs(slurm_env, ids, timeout=90)
    assert sorted(r["JobState"] for r in info[ids[0]]) == ["COMPLETED"] * 3
    recs = {r["subjob"]: r for r in records(built.job_dir)}
    assert {k: r["tiles"] for k, r in recs.items()} == {k: [TILES[k]] for k in range(3)}
    assert all(r["slurm_array_task_id"] == str(k) for k, r in recs.items())
    starts = {}
    for line in (tmp_path / "starts.jsonl").read_text().splitlines():
        d = json.loads(line)
        starts[d["task"]] = d["t"]
    intervals = sorted((starts[k], recs[k]["end"]) for k in range(3))
    for (_, end_a), (start_b, _) in zip(intervals, intervals[1:], strict=False):
        assert start_b >= end_a, f"array elements overlapped: {intervals}"


def test_sbatch_extra_and_stripe_accepted_by_slurm(slurm_env, tmp_path):
    """Extra #SBATCH lines reach SLURM intact (a comment with spaces and shell syntax), and
    the striping step, with no lfs on this machine, warns and lets the job complete."""
    assert shutil.which("lfs") is None, "this test is about a machine without lfs"
    comment = "balrog try 2; $(touch PWNED)"
    cfg = cfgmod.load_config(write_campaign(
        tmp_path, TILES[:1], queue=slurm_env.partition, walltime="00:05:00", stripe=4,
        **{"sbatch-extra": [f"--comment={comment}", "--mail-type=END,FAIL", "--no-requeue"]}))
    built = jobs.build_jobs(cfg, "slurm")
    ids = jobs.submit_slurm(built)
    shown = subprocess.run(["scontrol", "show", "job", "-o", ids[0]], capture_output=True, text=True).stdout
    assert f"Comment={comment} " in shown and "MailType=END,FAIL" in shown and "Requeue=0" in shown
    info = wait_for_jobs(slurm_env, ids, timeout=90)
    assert info[ids[0]][0]["JobState"] == "COMPLETED"
    assert [r["tiles"] for r in records(built.job_dir)] == [TILES[:1]]
    log = next((built.job_dir / "logs").glob("*.out")).read_text()
    assert f"warning: lfs not found; {tmp_path / 'out'} not striped" in log
    assert (tmp_path / "out").is_dir() and not list(tmp_path.rglob("PWNED"))


def test_scheduler_detected_when_the_controller_answers(slurm_env):
    assert jobs.detect_scheduler() == "slurm"


# ----------------------------------------------------------------------------- CPU binding

#: slurmctld's port of the CPU-binding cluster (slurmd's is the next); off SLURM's default
#: 6817/6818 so it runs beside the session's default cluster.
BOUND_PORT = 6917


@pytest.fixture(scope="module")
def slurm_bound():
    """A second one-node cluster that binds each step to its cores (task/affinity, Cores).

    Separate from the session cluster so its binding cannot change what the other SLURM
    tests see; same skip/fail rules as conftest's ``slurm``.
    """
    missing = missing_binaries()
    if missing:
        pytest.skip(f"SLURM TESTS NOT RUN: binaries missing ({', '.join(missing)}); install slurm-wlm and munge")
    if os.geteuid() != 0:
        pytest.skip("SLURM TESTS NOT RUN: starting slurmctld/slurmd needs root")
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("CPU-binding test needs a machine with >= 2 CPUs")
    try:
        cluster = start_slurm(Path(tempfile.gettempdir()) / "balrog_runner_slurm_bound", cpu_binding=True,
                              port=BOUND_PORT)
    except SlurmUnavailable as exc:
        pytest.fail(f"SLURM is installed but did not start with task/affinity: {exc}")
    yield cluster
    stop_slurm(cluster)


def _affinity_runner(tmp_path: Path) -> tuple[str, Path]:
    """A balrog-run that first records the CPUs its step may use (os.sched_getaffinity)."""
    record = tmp_path / "affinity.jsonl"
    probe = ("import json, os; e = os.environ; print(json.dumps({'job': e.get('SLURM_ARRAY_JOB_ID') or e['SLURM_JOB_ID'], "
             "'cpus': sorted(os.sched_getaffinity(0))}))")
    script = tmp_path / "balrog-run-affinity"
    script.write_text(f"#!/bin/sh\n{shlex.quote(sys.executable)} -c {shlex.quote(probe)} >> {shlex.quote(str(record))}\n"
                      f"exec {shlex.quote(BALROG_RUN)} \"$@\"\n")
    script.chmod(0o755)
    return str(script), record


def test_job_steps_get_the_allocations_cpus(slurm_bound, tmp_path, monkeypatch):
    """With CPU binding, each node runner's step has the ppn CPUs the job asked for.

    Since Slurm 22.05 srun does not inherit --cpus-per-task: a bare ``srun -N1 -n1`` step gets
    1 CPU and is bound to it, so the whole realization pool would share one core. The same
    batch file with the step's CPU count removed is the control: it sees 1 CPU, which proves
    the cluster binds (otherwise both would see every CPU and this test would prove nothing).
    """
    monkeypatch.setenv("SLURM_CONF", str(slurm_bound.conf))
    runner, record = _affinity_runner(tmp_path)
    ppn = 2
    group = jobs.build_jobs(cfgmod.load_config(write_campaign(
        tmp_path / "group", TILES[:1], ppn=ppn, queue=slurm_bound.partition, walltime="00:05:00",
        **{"balrog-run": runner})), "slurm")
    array = jobs.build_jobs(cfgmod.load_config(write_campaign(
        tmp_path / "array", TILES[:1], asarray=True, ppn=ppn, queue=slurm_bound.partition,
        walltime="00:05:00", **{"balrog-run": runner})), "slurm")
    batch = group.job_dir / "slurm" / "group-000.sbatch"
    old = batch.read_text().replace(f" --cpus-per-task={ppn} --nodelist", " --nodelist")
    old = old.replace(f"export SRUN_CPUS_PER_TASK={ppn}\n", "")
    assert "srun -N1 -n1 --nodelist" in old and "SRUN_CPUS_PER_TASK" not in old
    control = group.job_dir / "slurm" / "control.sbatch"
    control.write_text(old.replace("--job-name=testcamp", "--job-name=control"))
    ids = jobs.submit_slurm(group) + jobs.submit_slurm(array)
    ids.append(subprocess.run(["sbatch", "--parsable", str(control)], capture_output=True, text=True,
                              check=True).stdout.strip())
    info = wait_for_jobs(slurm_bound, ids, timeout=90)
    assert [r["JobState"] for i in ids for r in info[i]] == ["COMPLETED"] * 3
    seen: dict[str, list[int]] = {}
    for line in record.read_text().splitlines():
        rec = json.loads(line)
        seen.setdefault(rec["job"], []).append(len(rec["cpus"]))
    # the group's node runner and the array element: ppn CPUs; the control (old file): 1
    assert seen == {ids[0]: [ppn], ids[1]: [ppn], ids[2]: [1]}, seen
