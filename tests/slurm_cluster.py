"""Start and stop a one-node SLURM cluster on localhost, for the tests and the demo.

Why this exists: the job builder's promise is "the files it writes run under SLURM", and
only a real ``slurmctld``/``slurmd`` checks that (``#SBATCH`` parsing, ``srun`` inside an
allocation, ``--dependency``, ``--array=..%N`` throttling). One node is enough for all of it.

Facts that make a one-node SLURM work in a container (slurm-wlm 22.05 on Debian):

- ``SlurmctldHost`` and ``NodeName`` must equal ``hostname -s``; the node line comes from
  ``slurmd -C`` so CPUs/memory match what slurmd detects (a mismatch drains the node).
- No cgroups here: ``ProctrackType=proctrack/linuxproc`` and ``TaskPlugin=task/none``.
  ``cpu_binding=True`` writes ``TaskPlugin=task/affinity`` + ``TaskPluginParam=Cores``
  instead (sched_setaffinity, no cgroups needed): a step is bound to the cores it was given,
  as at NERSC, so a step that gets 1 CPU sees 1 CPU. Without binding every step sees all
  CPUs of the machine and CPU-count bugs pass unseen (DESIGN.md section 8).
- A second cluster (another state directory) runs beside the first on other ports
  (``port``: slurmctld's, slurmd's is ``port + 1``); both daemons are per-state-directory.
- ``ReturnToService=2`` brings the node back after a restart without ``scontrol update``.
- No accounting daemon: job states are read with ``scontrol show job`` (kept for
  ``MinJobAge`` seconds after the end, so tests must read them before that).
- munge authenticates every RPC: ``munged`` must run as the ``munge`` user with the key in
  ``/etc/munge/munge.key``.

Usage::

    cluster = start_slurm(Path("/tmp/balrog_runner_slurm"))
    subprocess.run(["sbatch", "job.sh"], env=cluster.env())
    ...
    stop_slurm(cluster)

``start_slurm`` is idempotent: when the controller of that state directory already answers
``scontrol ping`` it is reused (and ``stop_slurm`` then leaves it running).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_PIDFILE = Path("/run/munge/munged.pid")
REQUIRED = ("slurmctld", "slurmd", "munged", "munge", "unmunge", "sbatch", "scontrol", "srun", "sinfo")


class SlurmUnavailable(RuntimeError):
    """SLURM cannot be started here (binaries absent, not root); the message says why."""


@dataclass
class SlurmCluster:
    """A running one-node cluster: its config file, node name and what we started."""

    state_dir: Path
    conf: Path
    node: str
    partition: str = "debug"
    started: bool = False
    started_munge: bool = False

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for SLURM client commands (``SLURM_CONF`` points at our config)."""
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        return env


def missing_binaries() -> list[str]:
    """The SLURM/munge programs not found on PATH (or in /usr/sbin)."""
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
    return [b for b in REQUIRED if shutil.which(b, path=path) is None]


def _sbin(name: str) -> str:
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
    found = shutil.which(name, path=path)
    if found is None:
        raise SlurmUnavailable(f"{name} not found")
    return found


def _node_line() -> tuple[str, str]:
    """(short hostname, the NodeName line that ``slurmd -C`` reports for this machine)."""
    host = subprocess.run(["hostname", "-s"], capture_output=True, text=True, check=True).stdout.strip()
    out = subprocess.run([_sbin("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("NodeName="))
    # Keep CPUs and the topology; leave 1 GB of memory headroom so a small drift never drains.
    line = re.sub(r"NodeName=\S+", f"NodeName={host}", line)
    mem = re.search(r"RealMemory=(\d+)", line)
    if mem:
        line = line.replace(mem.group(0), f"RealMemory={max(int(mem.group(1)) - 1024, 256)}")
    return host, line


def _write_conf(state_dir: Path, host: str, node_line: str, partition: str,
                cpu_binding: bool = False, port: int | None = None) -> Path:
    (state_dir / "state").mkdir(parents=True, exist_ok=True)
    (state_dir / "spool").mkdir(parents=True, exist_ok=True)
    conf = state_dir / "slurm.conf"
    task = "TaskPlugin=task/affinity\nTaskPluginParam=Cores" if cpu_binding else "TaskPlugin=task/none"
    name = "balrogbound" if cpu_binding else "balrogtest"
    ports = f"SlurmctldPort={port}\nSlurmdPort={port + 1}\n" if port else ""
    text = f"""\
# one-node test cluster written by tests/slurm_cluster.py
ClusterName={name}
{ports}SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={state_dir}/state
SlurmdSpoolDir={state_dir}/spool
SlurmctldPidFile={state_dir}/slurmctld.pid
SlurmdPidFile={state_dir}/slurmd.pid
SlurmctldLogFile={state_dir}/slurmctld.log
SlurmdLogFile={state_dir}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
{task}
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
ReturnToService=2
DependencyParameters=kill_invalid_depend
EnforcePartLimits=ALL
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1
MinJobAge=600
InactiveLimit=0
KillWait=5
Waittime=0
MailProg=/bin/true
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
{node_line} State=UNKNOWN
PartitionName={partition} Nodes={host} Default=YES MaxTime=INFINITE MaxNodes=1 State=UP
"""
    conf.write_text(text)
    return conf


def _ping(env: dict[str, str]) -> bool:
    try:
        out = subprocess.run(["scontrol", "ping"], env=env, capture_output=True, text=True, timeout=10)
    except (subprocess.TimeoutExpired, OSError):
        return False
    return out.returncode == 0 and "UP" in out.stdout


def _node_ready(env: dict[str, str], node: str) -> bool:
    out = subprocess.run(["sinfo", "-h", "-n", node, "-o", "%t"], env=env, capture_output=True, text=True)
    state = out.stdout.strip()
    return out.returncode == 0 and state.rstrip("*") in {"idle", "mix", "alloc"}


def _munge_works() -> bool:
    if shutil.which("munge") is None:
        return False
    enc = subprocess.run(["munge", "-n"], capture_output=True)
    if enc.returncode != 0:
        return False
    dec = subprocess.run(["unmunge"], input=enc.stdout, capture_output=True)
    return dec.returncode == 0


def _start_munge() -> bool:
    """Start munged as the munge user when it is not running; True if we started it."""
    if _munge_works():
        return False
    if not MUNGE_KEY.exists():
        MUNGE_KEY.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([_sbin("mungekey"), "--create", "--keyfile", str(MUNGE_KEY)], check=True)
        shutil.chown(MUNGE_KEY, "munge", "munge")
        MUNGE_KEY.chmod(0o400)
    Path("/run/munge").mkdir(parents=True, exist_ok=True)
    shutil.chown("/run/munge", "munge", "munge")
    subprocess.run(["runuser", "-u", "munge", "--", _sbin("munged")], check=True, capture_output=True)
    _wait(_munge_works, 10, "munged did not answer")
    return True


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while not predicate():
        if time.monotonic() > deadline:
            raise SlurmUnavailable(what)
        time.sleep(delay)  # polling an external daemon, not synchronising our own code
        delay = min(delay * 2, 0.5)


def start_slurm(state_dir: Path, partition: str = "debug", timeout: float = 30.0,
                cpu_binding: bool = False, port: int | None = None) -> SlurmCluster:
    """Start munged, slurmctld and slurmd for this host, with all state under ``state_dir``.

    ``cpu_binding`` binds each step to its cores (task/affinity); ``port`` moves the daemons
    off SLURM's default ports so this cluster can run beside the default one.

    Reuses a controller that already answers for this state directory. Raises
    :class:`SlurmUnavailable` when the binaries are absent or we are not root.
    """
    missing = missing_binaries()
    if missing:
        raise SlurmUnavailable(f"SLURM binaries not installed: {', '.join(missing)}")
    if os.geteuid() != 0:
        raise SlurmUnavailable("starting slurmctld/slurmd needs root (SlurmUser=root)")
    state_dir = Path(state_dir).resolve()
    host, node_line = _node_line()
    conf = state_dir / "slurm.conf"
    cluster = SlurmCluster(state_dir=state_dir, conf=conf, node=host, partition=partition)
    env = cluster.env()
    if conf.exists() and _ping(env) and _node_ready(env, host):
        return cluster
    cluster.started_munge = _start_munge()
    _write_conf(state_dir, host, node_line, partition, cpu_binding=cpu_binding, port=port)
    for daemon in ("slurmctld", "slurmd"):
        _kill_pidfile(state_dir / f"{daemon}.pid", daemon)  # a stale daemon from a crashed session
    subprocess.run([_sbin("slurmctld"), "-c", "-f", str(conf)], env=env, check=True, capture_output=True)
    subprocess.run([_sbin("slurmd"), "-f", str(conf)], env=env, check=True, capture_output=True)
    cluster.started = True
    try:
        _wait(lambda: _ping(env), timeout, f"slurmctld did not come up; see {state_dir}/slurmctld.log")
        _wait(lambda: _node_ready(env, host), timeout, f"node {host} not idle; see {state_dir}/slurmd.log")
    except SlurmUnavailable:
        stop_slurm(cluster)
        raise
    return cluster


def _kill_pidfile(pidfile: Path, name: str, timeout: float = 15.0) -> None:
    """Stop the process a pid file names, only if it still is ``name`` (pids get reused)."""
    try:
        pid = int(pidfile.read_text().strip())
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        return
    if comm != name:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    try:
        _wait(gone, timeout, f"pid {pid} did not stop")
    except SlurmUnavailable:
        os.kill(pid, signal.SIGKILL)


def stop_slurm(cluster: SlurmCluster) -> None:
    """Stop the daemons this cluster object started (by pid file); leave reused ones alone."""
    if not cluster.started:
        return
    subprocess.run(["scancel", "--full", "--user", "root"], env=cluster.env(), capture_output=True)
    _kill_pidfile(cluster.state_dir / "slurmd.pid", "slurmd")
    _kill_pidfile(cluster.state_dir / "slurmctld.pid", "slurmctld")
    if cluster.started_munge:
        _kill_pidfile(MUNGE_PIDFILE, "munged")
    cluster.started = False


def job_info(cluster: SlurmCluster, job_id: str) -> list[dict[str, str]]:
    """``scontrol show job`` as dicts (one per array element), keys as SLURM prints them."""
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", str(job_id)], env=cluster.env(), capture_output=True, text=True
    )
    if out.returncode != 0:
        return []
    records = []
    for line in out.stdout.splitlines():
        rec: dict[str, str] = {}
        for m in re.finditer(r"(\w[\w:/]*)=(\S*)", line):
            rec.setdefault(m.group(1), m.group(2))
        if rec:
            records.append(rec)
    return records


FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                "BOOT_FAIL", "DEADLINE", "PREEMPTED"}


def wait_for_jobs(cluster: SlurmCluster, job_ids: list[str], timeout: float = 60.0) -> dict[str, list[dict[str, str]]]:
    """Poll ``scontrol show job`` until every job (all array elements) is final."""
    result: dict[str, list[dict[str, str]]] = {}

    def done() -> bool:
        for jid in job_ids:
            recs = job_info(cluster, jid)
            if not recs or any(r.get("JobState") not in FINAL_STATES for r in recs):
                return False
            result[jid] = recs
        return True

    _wait(done, timeout, f"jobs {job_ids} not finished after {timeout} s")
    return result
