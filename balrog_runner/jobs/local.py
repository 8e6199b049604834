"""Local jobs: run the subjobs on this machine, a bounded number at once.

For laptops, the demo and small campaigns. ``run.sh`` in the job directory calls
:func:`run_local`, which starts ``balrog-run SPEC`` for each spec (after sourcing the
campaign's ``--source`` script, as a batch job would), at most ``workers`` at a time, each
with its own log in ``logs/``. The result is the worst of the subjobs' exit codes
(:func:`balrog_runner.errors.worst_exit_code`).
"""

from __future__ import annotations

import logging
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..atomic import atomic_write_text
from ..campaign import config as cfgmod
from ..campaign import derived
from ..errors import ConfigError, exit_code_name, worst_exit_code
from .render import render
from .spec import SPEC_DIR, SubjobSpec, read_spec

log = logging.getLogger(__name__)

RUN_SCRIPT = "run.sh"
# Sources the script, then execs the runner; positional arguments keep every value one word.
_SOURCE_AND_EXEC = 'source "$1" >/dev/null || exit 97; shift; exec "$@"'


def write_local(cfg: cfgmod.Config, specs: list[SubjobSpec], tmp_dir: Path) -> list[Path]:
    """Render ``run.sh`` into ``tmp_dir``; ``run['nodes']`` subjobs run at once."""
    run = cfg.run
    text = render(
        "local_run.sh.j2", jobname=derived.jobname(run), job_dir=derived.job_dir(run).absolute(),
        python=sys.executable, workers=run["nodes"], run=run,
    )
    atomic_write_text(tmp_dir / RUN_SCRIPT, text, mode=0o755)
    log.info("local: %s runs %d subjob(s), %d at once", RUN_SCRIPT, len(specs), run["nodes"])
    return [Path(RUN_SCRIPT)]


def subjob_command(spec: SubjobSpec) -> list[str]:
    """The argv that runs one subjob, sourcing the spec's setup script first when it has one."""
    runner = spec.run["balrog-run"]
    if spec.source:
        return ["bash", "-c", _SOURCE_AND_EXEC, "balrog-run", str(spec.source), runner, str(spec.path)]
    return [runner, str(spec.path)]


def _run_one(spec: SubjobSpec) -> int:
    logfile = spec.job_dir / "logs" / f"subjob-{spec.subjob:04d}.log"
    logfile.parent.mkdir(parents=True, exist_ok=True)
    log.info("subjob %d started: %s", spec.subjob, " ".join(spec.tiles))
    with open(logfile, "ab") as out:
        try:
            code = subprocess.run(subjob_command(spec), stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL).returncode
        except OSError as exc:
            log.error("subjob %d could not start %s: %s", spec.subjob, spec.run["balrog-run"], exc)
            return 127
    level = logging.INFO if code == 0 else logging.ERROR
    log.log(level, "subjob %d finished with exit code %d (log %s)", spec.subjob, code, logfile)
    return code


def run_local(job_dir: str | Path, workers: int | None = None) -> int:
    """Run every subjob of ``job_dir`` here, ``workers`` at once; the worst of their exit codes.

    ``workers`` defaults to the campaign's ``run['nodes']``. Threads only wait on child
    processes, so the bound is the number of node runners alive at once.
    """
    job_dir = Path(job_dir)
    spec_files = sorted((job_dir / SPEC_DIR).glob("subjob-*.json"))
    if not spec_files:
        raise ConfigError(f"no subjob specs in {job_dir / SPEC_DIR} (build the job with balrog-jobs first)")
    specs = [read_spec(p) for p in spec_files]
    n = workers if workers is not None else specs[0].run["nodes"]
    if n < 1:
        raise ConfigError(f"workers = {n} must be >= 1")
    with ThreadPoolExecutor(max_workers=n) as pool:
        codes = list(pool.map(_run_one, specs))
    failed = [s.subjob for s, c in zip(specs, codes, strict=True) if c != 0]
    if failed:
        code = worst_exit_code(codes)
        log.error("%d of %d subjob(s) failed: %s; exit code %d (%s), the worst of theirs", len(failed), len(specs),
                  ", ".join(f"{s.subjob} (exit {c})" for s, c in zip(specs, codes, strict=True) if c), code,
                  exit_code_name(code))
        return code
    log.info("all %d subjob(s) succeeded", len(specs))
    return 0
