"""The generated SLURM jobs, submitted to a real one-node SLURM on localhost.

The daemons start once per session (``tests/slurm_cluster.py``). The tests skip only when
the SLURM binaries are absent or we are not root; if SLURM is installed and we are root but
it does not come up, they fail, so CI cannot pass without running them.
"""

from __future__ import annotations

import json
from datetime import datetime

from slurm_cluster import wait_for_jobs
from test_jobs import TILES, records, write_campaign

from balrog_runner import config as cfgmod
from balrog_runner import jobs


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


def test_scheduler_detected_when_the_controller_answers(slurm_env):
    assert jobs.detect_scheduler() == "slurm"
