"""SLURM job files: one batch file per node group, or one job array, plus ``submit.sh``.

Layout under the job directory (``<jobdir>/<jobname>``)::

    slurm/group-<ggg>.sbatch   one per group of ``nodes`` subjobs (``srun -N1 -n1`` per node)
    slurm/array.sbatch         instead, with ``asarray``: element i runs subjob i on one node
    submit.sh                  sbatch's them; with ``asdependency`` chained by afterany
    logs/                      SLURM stdout/stderr (``%j`` = job id, ``%A_%a`` = array element)

Why ``afterany`` and not ``afterok``: a group with one failed tile must not cancel the rest of
the campaign; the failure is in that job's state and the tile's status file.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..atomic import atomic_write_text
from ..campaign import config as cfgmod
from ..campaign import derived
from .render import render
from .spec import SPEC_DIR, SubjobSpec

log = logging.getLogger(__name__)

SUBMIT_SCRIPT = "submit.sh"


def batch_file_name(group: int) -> str:
    """Relative path of a group's batch file."""
    return f"slurm/group-{group:03d}.sbatch"


ARRAY_FILE = "slurm/array.sbatch"


def write_slurm(cfg: cfgmod.Config, specs: list[SubjobSpec], tmp_dir: Path) -> list[Path]:
    """Render the batch files and ``submit.sh`` into ``tmp_dir`` (paths inside name the final dir).

    Returns the written files' paths relative to the job directory.
    """
    run = cfg.run
    final = derived.job_dir(run).absolute()
    name = derived.jobname(run)
    common = {
        "run": run,
        "jobname": name,
        "job_dir": final,
        "source": cfg.source,
        "balrog_run": run["balrog-run"],
        "nodes": 1 if run["asarray"] else run["nodes"],
    }
    written: list[str] = []
    if run["asarray"]:
        text = render(
            "slurm_array.sbatch.j2", specs=specs, name=name, spec_dir=final / SPEC_DIR,
            log=final / "logs" / f"{name}-%A_%a.out", **common,
        )
        written.append(ARRAY_FILE)
        _write(tmp_dir / ARRAY_FILE, text, 0o644)
    else:
        groups = sorted({s.group for s in specs})
        for g in groups:
            members = [s for s in specs if s.group == g]
            text = render(
                "slurm_group.sbatch.j2", specs=members, group=g, ngroups=len(groups),
                name=f"{name}-g{g:03d}" if len(groups) > 1 else name,
                log=final / "logs" / f"{name}-g{g:03d}-%j.out", **common,
            )
            written.append(batch_file_name(g))
            _write(tmp_dir / batch_file_name(g), text, 0o644)
    submit = render(
        "slurm_submit.sh.j2", jobname=name, job_dir=final, batch_files=written,
        asdependency=run["asdependency"],
    )
    _write(tmp_dir / SUBMIT_SCRIPT, submit, 0o755)
    log.info("SLURM: %d batch file(s) for %d subjob(s); submit with %s", len(written), len(specs), final / SUBMIT_SCRIPT)
    return [Path(w) for w in written] + [Path(SUBMIT_SCRIPT)]


def _write(path: Path, text: str, mode: int) -> None:
    atomic_write_text(path, text, mode=mode)
