"""Stage 8, the job builder: from a validated campaign config to ready-to-submit job files.

:func:`build_jobs` writes everything for one scheduler into ``<jobdir>/<jobname>``: the
subjob specs (``specs/subjob-<kkkk>.json``, one per node runner), the scheduler's files
(:mod:`.slurm`, :mod:`.wq`, :mod:`.local`) and an empty ``logs/``. The directory is rendered
into a temporary sibling and renamed into place, so a failure leaves no half-written job.
:func:`submit` hands the result to the scheduler (``submit.sh`` for SLURM, :func:`run_local`
for local; wq jobs are submitted by the user with ``wq sub``).

May import: every stage below it, ``sky`` to ``campaign``.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..atomic import atomic_directory
from ..campaign import config as cfgmod
from ..campaign import config_check, derived, preflight
from ..errors import ConfigError, ExternalProgramError
from .local import RUN_SCRIPT, run_local, write_local
from .slurm import SUBMIT_SCRIPT, write_slurm
from .spec import SubjobSpec, make_specs, read_spec, record_subjob, spec_path, write_spec
from .wq import write_wq

__all__ = [
    "RUN_SCRIPT", "SUBMIT_SCRIPT", "JobFiles", "SubjobSpec", "build_jobs", "detect_scheduler", "make_specs", "read_spec",
    "record_subjob", "run_local", "spec_path", "submit", "submit_slurm", "write_spec",
]

log = logging.getLogger(__name__)

_WRITERS = {"slurm": write_slurm, "wq": write_wq, "local": write_local}


@dataclass(frozen=True)
class JobFiles:
    """What :func:`build_jobs` wrote: the job directory, its scheduler and files, the specs."""

    job_dir: Path
    scheduler: str
    files: tuple[Path, ...]
    specs: tuple[SubjobSpec, ...]


def detect_scheduler() -> str:
    """``slurm`` when ``sbatch`` is on PATH and a controller answers, else ``local``.

    wq is only ever chosen explicitly. Why ask the controller: a workstation can have the
    SLURM client packages installed with no cluster behind them (Debian's slurm-wlm), and
    jobs built for SLURM there could never run. ``scontrol ping`` is cheap and needs no
    allocation; without ``scontrol`` we trust ``sbatch`` alone.
    """
    if not shutil.which("sbatch"):
        return "local"
    if not shutil.which("scontrol"):
        return "slurm"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        ping = None
    if ping is not None and ping.returncode == 0 and " is UP" in ping.stdout:
        return "slurm"
    log.warning("sbatch is installed but no SLURM controller answers 'scontrol ping': building local jobs "
                "(give --scheduler slurm to force)")
    return "local"


def build_jobs(cfg: cfgmod.Config, scheduler: str | None = None, replace: bool = False,
               check_programs: bool = True) -> JobFiles:
    """Validate ``cfg`` for ``scheduler`` and write the job directory atomically.

    An existing job directory is an error unless ``replace`` (it may hold logs and records of
    a previous submission).
    """
    scheduler = scheduler or detect_scheduler()
    config_check.validate_for_scheduler(cfg, scheduler, check_programs=check_programs)
    preflight.check_campaign(cfg)
    specs = make_specs(cfg, scheduler)
    _warn_sqlite_on_many_nodes(cfg, scheduler, specs)
    final = derived.job_dir(cfg.run).absolute()
    if final.exists() and not replace:
        raise ConfigError(f"job directory {final} already exists (use --force to replace it)")
    with atomic_directory(final, replace=replace) as tmp:
        for spec in specs:
            write_spec(spec, tmp)
        (tmp / "logs").mkdir()
        files = _WRITERS[scheduler](cfg, specs, tmp)
    log.info("wrote %d subjob spec(s) and %s to %s", len(specs), ", ".join(map(str, files)), final)
    return JobFiles(job_dir=final, scheduler=scheduler, files=tuple(files), specs=tuple(specs))


def runners_at_once(run: dict, scheduler: str, nspecs: int) -> int:
    """How many node runners of this job may run at the same time, on different nodes.

    An array runs ``arraymax`` elements at once (all without it); chained groups one group
    of ``nodes``; unchained groups are independent jobs that may all run at once. wq is one
    job of ``nodes``. Local subjobs share one machine (and its local disk): 1 node.
    """
    if scheduler == "local":
        return 1
    if scheduler == "slurm" and run["asarray"]:
        return min(nspecs, run["arraymax"] or nspecs)
    if scheduler == "slurm" and not run["asdependency"]:
        return nspecs
    return min(nspecs, run["nodes"])


def _warn_sqlite_on_many_nodes(cfg: cfgmod.Config, scheduler: str, specs: list[SubjobSpec]) -> None:
    """Warn when several nodes would push into one SQLite file at once.

    SQLite's locking relies on POSIX advisory locks, which parallel filesystems (Lustre, GPFS,
    NFS) implement partially or not at all: concurrent writers from several nodes see
    ``database is locked`` or corrupt the file. The safe patterns are named in the message.
    """
    url = derived.db_url(cfg.run, cfg.db)
    if not cfg.run["push"] or url is None or not url.startswith("sqlite"):
        return
    n = runners_at_once(cfg.run, scheduler, len(specs))
    if n > 1:
        log.warning(
            "up to %d nodes would push to the SQLite file %s at once; SQLite on a shared "
            "filesystem with writers on several nodes fails (database is locked) or corrupts it: "
            "set run['push'] = False and run one balrog-push after the jobs end, or use "
            "PostgreSQL/Oracle (db['url'] or db['section'])", n, url.removeprefix("sqlite:///"))


def submit_slurm(jobs: JobFiles) -> list[str]:
    """Run the job's ``submit.sh``; returns the SLURM job ids in batch-file order."""
    script = jobs.job_dir / SUBMIT_SCRIPT
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    ids = []
    for line in out.stdout.splitlines():
        log.info("%s", line)
        if line.startswith("submitted "):
            ids.append(line.split()[1])
    if out.returncode != 0:
        raise ExternalProgramError(str(script), out.returncode, out.stderr)
    return ids


def submit(jobs: JobFiles, workers: int | None = None) -> int:
    """Submit (SLURM) or run (local) a built job; returns an exit code.

    SLURM: runs ``submit.sh`` (its output lists the job ids). local: runs the subjobs here and
    returns non-zero when any failed. wq: not submitted automatically (``wq sub FILE``).
    """
    if jobs.scheduler == "slurm":
        submit_slurm(jobs)
        return 0
    if jobs.scheduler == "local":
        return run_local(jobs.job_dir, workers)
    log.warning("wq jobs are submitted with: wq sub %s", jobs.job_dir / jobs.files[0])
    return 0

