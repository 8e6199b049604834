"""What the job was given (resources.py): CPUs from the affinity mask, memory from the
tightest of cgroup v1 / v2, SLURM and /proc/meminfo, and the pool sized to them.

The parsers are tested on fake cgroup trees (tmp directories with the kernel's files and a
mountinfo pointing at them); the real tests put ``balrog-run`` in a memory cgroup of a few
hundred MB (root, cgroup v1 memory controller writable) and under a one-CPU affinity mask.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mounts import tmpfs
from test_runner import BIN, TILE, make_campaign, spec_run
from test_runner import survey as survey  # noqa: F401 - the module's synthetic tile fixture

from balrog_runner.node import resources
from balrog_runner.node.resources import MB, MemoryLimit

V1_UNLIMITED = "9223372036854771712"


def write_tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def mountinfo_line(mountpoint: Path, fstype: str, options: str, root: str = "/") -> str:
    return f"35 31 0:32 {root} {mountpoint} rw,relatime shared:9 - {fstype} cgroup rw,{options}\n"


# ----------------------------------------------------------------------------- cgroup v1


def test_cgroup_v1_smallest_limit_up_the_hierarchy_minus_working_set(tmp_path):
    mem = tmp_path / "memory"
    write_tree(mem, {
        "memory.limit_in_bytes": V1_UNLIMITED,  # the root: no limit
        "slurm/memory.limit_in_bytes": str(8000 * MB),
        "slurm/memory.usage_in_bytes": str(1000 * MB),
        "slurm/job_7/memory.limit_in_bytes": str(2000 * MB),
        "slurm/job_7/memory.usage_in_bytes": str(700 * MB),
        "slurm/job_7/memory.stat": f"cache {300 * MB}\ntotal_cache {300 * MB}\ntotal_inactive_file {200 * MB}\n",
        "slurm/job_7/step_0/memory.limit_in_bytes": V1_UNLIMITED,
        "slurm/job_7/step_0/memory.usage_in_bytes": str(500 * MB),
    })
    proc = tmp_path / "cgroup"
    proc.write_text("12:pids:/slurm/job_7\n4:memory:/slurm/job_7/step_0\n1:name=systemd:/x\n")
    info = tmp_path / "mountinfo"
    info.write_text(mountinfo_line(tmp_path / "cpu", "cgroup", "cpu") + mountinfo_line(mem, "cgroup", "memory"))
    limits = resources.cgroup_memory_limits(proc, info)
    assert sorted((m.limit, m.available) for m in limits) == [
        (2000 * MB, 2000 * MB - (700 - 200) * MB),  # page cache that can be dropped is not "used"
        (8000 * MB, 7000 * MB),
    ]
    job = min(limits, key=lambda m: m.available)
    assert job.source == f"cgroup v1 {mem / 'slurm/job_7/memory.limit_in_bytes'}"


def test_cgroup_v1_inside_a_container_mount_shows_a_subtree(tmp_path):
    """Docker mounts the container's own cgroup at /sys/fs/cgroup/memory (mount root = its path)."""
    mem = tmp_path / "memory"
    write_tree(mem, {"memory.limit_in_bytes": str(512 * MB), "memory.usage_in_bytes": str(12 * MB)})
    proc = tmp_path / "cgroup"
    proc.write_text("9:memory:/docker/0123abcd\n")
    info = tmp_path / "mountinfo"
    info.write_text(mountinfo_line(mem, "cgroup", "memory", root="/docker/0123abcd"))
    [limit] = resources.cgroup_memory_limits(proc, info)
    assert (limit.limit, limit.available) == (512 * MB, 500 * MB)


# ----------------------------------------------------------------------------- cgroup v2


def test_cgroup_v2_memory_max_up_the_hierarchy(tmp_path):
    unified = tmp_path / "unified"
    write_tree(unified, {
        "user.slice/memory.max": str(3000 * MB),
        "user.slice/memory.current": str(2500 * MB),
        "user.slice/memory.stat": f"anon {1000 * MB}\nfile {1500 * MB}\ninactive_file {1000 * MB}\n",
        "user.slice/job/memory.max": "max",
        "user.slice/job/memory.current": str(100 * MB),
    })
    proc = tmp_path / "cgroup"
    proc.write_text("0::/user.slice/job\n")
    info = tmp_path / "mountinfo"
    info.write_text(mountinfo_line(unified, "cgroup2", "nsdelegate"))
    [limit] = resources.cgroup_memory_limits(proc, info)
    assert (limit.limit, limit.available) == (3000 * MB, 1500 * MB)
    assert limit.source == f"cgroup v2 {unified / 'user.slice/memory.max'}"


def test_hybrid_hierarchy_reads_both_and_no_limit_is_empty(tmp_path):
    mem, unified = tmp_path / "memory", tmp_path / "unified"
    write_tree(mem, {"a/memory.limit_in_bytes": V1_UNLIMITED, "a/memory.usage_in_bytes": "1"})
    write_tree(unified, {"a/memory.max": "max"})
    proc = tmp_path / "cgroup"
    proc.write_text("4:memory:/a\n0::/a\n")
    info = tmp_path / "mountinfo"
    info.write_text(mountinfo_line(mem, "cgroup", "memory") + mountinfo_line(unified, "cgroup2", "nsdelegate"))
    assert resources.cgroup_memory_limits(proc, info) == []
    assert resources.cgroup_memory_limits(tmp_path / "absent", info) == []


# ----------------------------------------------------------------------------- SLURM, meminfo


def test_slurm_memory_variables():
    assert resources.slurm_memory_limit({}) is None
    per_node = resources.slurm_memory_limit({"SLURM_MEM_PER_NODE": "4000"})
    assert per_node == MemoryLimit(4000 * MB, 4000 * MB, "SLURM_MEM_PER_NODE=4000 MB")
    per_cpu = resources.slurm_memory_limit({"SLURM_MEM_PER_CPU": "1500", "SLURM_CPUS_ON_NODE": "3"})
    assert per_cpu.limit == 4500 * MB and per_cpu.source == "SLURM_MEM_PER_CPU=1500 MB x 3 CPUs"
    assert resources.slurm_memory_limit({"SLURM_MEM_PER_CPU": "1000"}, cpus=2).limit == 2000 * MB
    assert resources.slurm_memory_limit({"SLURM_MEM_PER_NODE": "0"}) is None  # 0: the whole node


def test_meminfo_and_the_tightest_constraint_wins(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16000000 kB\nMemFree:  100 kB\nMemAvailable:    8000000 kB\n")
    assert resources.meminfo_available(meminfo).available == 8000000 * 1024
    assert resources.meminfo_available(tmp_path / "absent") is None
    monkeypatch.setattr(resources, "cgroup_memory_limits", lambda: [MemoryLimit(5 * 10**9, 6 * 10**9, "cg")])
    monkeypatch.setattr(resources, "meminfo_available", lambda: MemoryLimit(8 * 10**9, 8 * 10**9, "mi"))
    assert resources.memory_limit({}).source == "cg"
    assert resources.memory_limit({"SLURM_MEM_PER_NODE": "1000"}).source == "SLURM_MEM_PER_NODE=1000 MB"


# ----------------------------------------------------------------------------- pool size


def test_pool_size_respects_ppn_cpus_realizations_and_memory():
    gib = 1 << 30
    full = (10000, 10000)
    assert resources.plan_pool(8, full, 5, 100, memory=96 * gib, cpus=16).workers == 8
    small = resources.plan_pool(8, full, 5, 100, memory=MemoryLimit(16 * gib, 20 * gib, "cgroup v1 x"), cpus=16)
    assert 1 <= small.workers < 8 and small.limited_by == "memory (cgroup v1 x)"
    assert resources.plan_pool(8, full, 5, 3, memory=96 * gib, cpus=16).workers == 3
    assert resources.plan_pool(4, full, 5, 10, memory=1 * gib, cpus=16).workers == 1
    by_cpu = resources.plan_pool(8, full, 5, 100, memory=96 * gib, cpus=2)
    assert (by_cpu.workers, by_cpu.limited_by) == (2, "cpus")
    # a small tile still costs a worker's fixed part: 300 MB free is one worker, not dozens
    assert resources.plan_pool(8, (384, 384), 5, 10, memory=300 * 10**6, cpus=8).workers == 1


def test_pool_counts_scratch_only_where_it_takes_memory():
    """At 10000^2 a worker peaks near 2.4 GB (benchmarks/full_tile.py); its 2.8 GB of scratch files
    take memory only on tmpfs. 24 GiB: 6 workers with scratch on disk, 3 with it in memory."""
    gib = 1 << 30
    full = (10000, 10000)
    on_disk = resources.plan_pool(8, full, 5, 100, memory=24 * gib, cpus=16)
    in_memory = resources.plan_pool(8, full, 5, 100, memory=24 * gib, cpus=16, scratch_in_memory=True)
    assert (on_disk.workers, in_memory.workers) == (6, 3)
    assert in_memory.per_worker - on_disk.per_worker == 4 * 10000**2 * (5 + 2)
    assert in_memory.as_dict()["scratch_in_memory"] is True


def test_single_epoch_pools_count_the_recoadd_swarp_and_its_files():
    """A full tile's band of 200 DECam CCDs (1.68e9 pixels) with DESDM's SWarp config (MEM_MAX 2500,
    COMBINE_BUFSIZE 2000 MB): SWarp's RAM is capped there, ~4.8 GB a worker; on tmpfs the CCD
    copies and SWarp's resampled images and weights are memory too, ~22 GB a worker."""
    from balrog_runner.coadd import swarp

    gib = 1 << 30
    full = (10000, 10000)
    cap = sum(swarp.memory_caps())
    assert cap == (2500 + 2000) * 1024 * 1024
    assert sum(swarp.memory_caps(swarp.CoaddSwarpSetup(overrides={"MEM_MAX": "100"}))) == (100 + 2000) * 1024 * 1024
    band = resources.ReCoadd(input_pixels=200 * 2048 * 4096, largest_input=2048 * 4096, swarp_cap=cap)
    coadd = resources.plan_pool(32, full, 5, 100, memory=128 * gib, cpus=64)
    on_disk = resources.plan_pool(32, full, 5, 100, memory=128 * gib, cpus=64, recoadd=band)
    in_memory = resources.plan_pool(32, full, 5, 100, memory=128 * gib, cpus=64, recoadd=band, scratch_in_memory=True)
    assert on_disk.per_worker == resources.WORKER_BASE_BYTES + 3 * 4 * 2048 * 4096 + resources.SWARP_BASE_BYTES + cap
    assert in_memory.per_worker > 20e9 and on_disk.per_worker > coadd.per_worker
    assert (coadd.workers, on_disk.workers, in_memory.workers) == (32, 21, 4)
    # a small single-epoch tile (the tests' survey: 13 CCDs of 256 x 512): SWarp's base dominates
    small = resources.ReCoadd(input_pixels=13 * 256 * 512, largest_input=256 * 512, swarp_cap=cap)
    assert resources.worker_bytes((360, 360), 3) < resources.worker_bytes((360, 360), 3, recoadd=small) < 250 * 2**20


def test_scratch_on_a_real_tmpfs_is_seen_as_memory(tmp_path):
    assert not resources.scratch_in_memory(tmp_path)  # pytest's tmp: a disk here
    with tmpfs(tmp_path / "ram", "size=1m") as ram:
        assert resources.filesystem_type(ram) == "tmpfs"
        assert resources.scratch_in_memory(ram / "campaign" / "DES0002+0209" / "scratch")  # not made yet
    assert not resources.scratch_in_memory(tmp_path / "ram")


# ----------------------------------------------------------------------------- real: affinity


def _one_cpu() -> None:
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def test_pool_sees_the_cpus_of_its_affinity_mask(tmp_path, survey):  # noqa: F811
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 CPUs to restrict the run to 1")
    probe = subprocess.run(["taskset", "-c", "0", sys.executable, "-c",
                            "from balrog_runner.node import resources; print(resources.allowed_cpus())"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "1"
    spec = make_campaign(tmp_path, survey, ngal=20, realizations=2, ppn=2, push=False)
    result = subprocess.run([str(BIN / "balrog-run"), "-q", str(spec)], capture_output=True, text=True,
                            preexec_fn=_one_cpu, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    status = json.loads((Path(spec_run(spec)["outdir"]) / TILE / "status.json").read_text())
    assert status["pool"]["cpus"] == 1 and status["pool"]["workers"] == 1
    assert status["pool"]["limited_by"] == "cpus"


# ----------------------------------------------------------------------------- real: cgroup


def _own_memory_cgroup() -> Path | None:
    """This process's cgroup v1 memory directory (None without a v1 memory controller)."""
    try:
        paths = resources.parse_proc_cgroup(Path("/proc/self/cgroup").read_text())
        mounts = resources.parse_mountinfo(Path("/proc/self/mountinfo").read_text())
    except OSError:
        return None
    if "memory" not in paths or "memory" not in mounts:
        return None
    root, mountpoint = mounts["memory"]
    if root != "/":
        return Path(mountpoint)
    path = Path(mountpoint) / paths["memory"].lstrip("/")
    return path if path.is_dir() else None


@contextlib.contextmanager
def memory_cgroup(limit: int) -> Iterator[tuple[Path, int]]:
    """A child memory cgroup of ours limited to ``limit`` bytes (no swap); removed after.

    Yields its directory and the limit as the kernel stored it (rounded to a page).
    """
    if os.geteuid() != 0:
        pytest.skip("CGROUP TEST NOT RUN: creating a memory cgroup needs root")
    parent = _own_memory_cgroup()
    if parent is None:
        pytest.skip("CGROUP TEST NOT RUN: no cgroup v1 memory controller mounted")
    group = parent / f"balrog-test-{os.getpid()}-{time.monotonic_ns()}"
    try:
        group.mkdir()
    except OSError as exc:
        pytest.skip(f"CGROUP TEST NOT RUN: cannot create {group} ({exc.strerror})")
    try:
        try:
            (group / "memory.limit_in_bytes").write_text(str(limit))
        except OSError as exc:
            pytest.skip(f"CGROUP TEST NOT RUN: cannot set {group}/memory.limit_in_bytes ({exc.strerror})")
        with contextlib.suppress(OSError):  # absent without swap accounting
            (group / "memory.memsw.limit_in_bytes").write_text(str(limit))
        yield group, int((group / "memory.limit_in_bytes").read_text())
    finally:
        for _ in range(100):
            for pid in (group / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)  # only what this test started lives there
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def in_cgroup(group: Path, argv: list[str]) -> list[str]:
    """``argv`` run as a member of ``group`` (the shell joins it, then execs)."""
    return ["sh", "-c", f'echo $$ > "{group}/cgroup.procs" && exec "$@"', "sh", *argv]


def _env_without_slurm() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}


def test_memory_detected_in_a_real_cgroup_equals_its_limit():
    with memory_cgroup(300_000_000) as (group, limit):
        probe = subprocess.run(
            in_cgroup(group, [sys.executable, "-c", "import json; from balrog_runner.node import resources; "
                              "m = resources.memory_limit(); print(json.dumps([m.limit, m.available, m.source]))"]),
            capture_output=True, text=True, env=_env_without_slurm(), timeout=60)
    assert probe.returncode == 0, probe.stderr
    detected, available, source = json.loads(probe.stdout)
    assert detected == limit
    assert 0 < available < limit
    assert source == f"cgroup v1 {group / 'memory.limit_in_bytes'}"


HOG_PYCONFIG = '''
"""The first realization to run allocates 2 GB: far over the job's memory limit."""
import os

import numpy as np

MARKER = {marker!r}


def SimulationRules(rng, n, bands, defaults):
    try:
        os.close(os.open(MARKER, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return None
    hog = np.ones(2_000_000_000 // 8)
    return {{"g1": hog[:n] * 0.0}}
'''


@pytest.mark.timeout(600)
def test_tight_memory_cgroup_one_worker_and_an_oom_kill_fails_its_realization(tmp_path, survey):  # noqa: F811
    """Under 300 MB: one worker (not ppn=2), and the OOM-killed realization is failed, not hung."""
    pyconfig = tmp_path / "hog.py"
    pyconfig.write_text(HOG_PYCONFIG.format(marker=str(tmp_path / "hogged")))
    spec = make_campaign(tmp_path, survey, ngal=20, realizations=2, ppn=2, push=False, pyconfig=str(pyconfig))
    with memory_cgroup(300_000_000) as (group, limit):
        t0 = time.monotonic()
        result = subprocess.run(in_cgroup(group, [str(BIN / "balrog-run"), "-q", str(spec)]), capture_output=True,
                                text=True, env=_env_without_slurm(), timeout=300)
        oom_kills = (group / "memory.oom_control").read_text()
    assert time.monotonic() - t0 < 300
    assert (tmp_path / "hogged").exists(), "the hog never ran"
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    status = json.loads((Path(spec_run(spec)["outdir"]) / TILE / "status.json").read_text())
    assert status["pool"]["workers"] == 1, status["pool"]
    assert status["pool"]["memory_limit_bytes"] == limit
    assert status["pool"]["memory_source"] == f"cgroup v1 {group / 'memory.limit_in_bytes'}"
    entries = status["realizations"]
    assert entries["0"]["state"] == "failed", entries
    assert "killed by signal 9 (SIGKILL), probably out of memory" in entries["0"]["error"]
    assert entries["1"]["state"] == "done", entries
    assert "oom_kill 0" not in oom_kills  # it really was the kernel's OOM killer
