"""wq job file (BNL): one YAML job with one node runner per node.

wq starts the ``command`` block once, on the first of ``N`` nodes, and writes the node list to
the file it substitutes for ``%hostfile%``; ``mpirun --map-by ppr:1:node`` then starts one
``balrog-run --by-rank`` per node, and each picks its own spec by MPI rank. ``mpirun``'s exit
code is non-zero when any rank failed, so wq reports the failure.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..atomic import atomic_write_text
from ..campaign import config as cfgmod
from ..campaign import derived
from .render import render
from .spec import SubjobSpec

log = logging.getLogger(__name__)


def wq_file_name(run: dict) -> str:
    return f"{derived.jobname(run)}.yaml"


def write_wq(cfg: cfgmod.Config, specs: list[SubjobSpec], tmp_dir: Path) -> list[Path]:
    """Render the wq YAML into ``tmp_dir``; returns its path relative to the job directory."""
    run = cfg.run
    name = wq_file_name(run)
    text = render(
        "wq.yaml.j2", run=run, jobname=derived.jobname(run), yaml_name=name,
        job_dir=derived.job_dir(run).absolute(), source=cfg.source, balrog_run=run["balrog-run"],
        nodes=len(specs), specs=specs,
    )
    atomic_write_text(tmp_dir / name, text)
    log.info("wq: %s for %d node(s)", name, len(specs))
    return [Path(name)]
