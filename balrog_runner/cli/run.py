"""``balrog-run``: the node runner a job file calls on each node with its subjob spec.

Thin by design: it reads and checks the spec(s) and hands each to
:func:`balrog_runner.node.runner.run_subjob` (fetch, inject, detect, measure, push), whose exit
code becomes ours. ``--dry-run`` hands them to :func:`balrog_runner.jobs.spec.record_subjob`
instead, which only checks each tile's inputs and records what the subjob was given: a
cheap way to test a campaign's job files (and the scheduler) before spending an allocation.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from ..atomic import check_writable_dir
from ..errors import EXIT_FAILED, EXIT_NOT_PUSHED, ConfigError, worst_exit_code
from ..jobs.spec import SubjobSpec, read_spec, record_subjob
from ..node.runner import run_subjob
from ._common import add_logging_options, run_command

PROG = "balrog-run"

#: Runs one subjob and returns its exit code (0: every tile succeeded).
RUNNER: Callable[[SubjobSpec], int] = run_subjob
DRY_RUNNER: Callable[[SubjobSpec], int] = record_subjob

#: Environment variables holding this process's rank under mpirun / srun (first found wins).
RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Run the tiles of one subjob spec (written by balrog-jobs).")
    p.add_argument("specs", nargs="+", metavar="SPEC", help="subjob spec JSON file(s); several run one after the other")
    p.add_argument("--by-rank", action="store_true",
                   help="run only SPEC number <MPI rank> (wq: one mpirun rank per node)")
    p.add_argument("--dry-run", action="store_true",
                   help="check each tile's inputs and record the tiles in <job dir>/runs.jsonl; run nothing")
    add_logging_options(p, unit_codes=(EXIT_FAILED, EXIT_NOT_PUSHED), worst_of_units=True)
    return p


def mpi_rank() -> int:
    """This process's rank from the launcher's environment (no MPI initialisation needed)."""
    for name in RANK_VARIABLES:
        value = os.environ.get(name)
        if value is not None and value.isdigit():
            return int(value)
    raise ConfigError(f"--by-rank: none of {', '.join(RANK_VARIABLES)} is set (start under mpirun or srun)")


def _action(args: argparse.Namespace) -> int:
    paths = args.specs
    if args.by_rank:
        rank = mpi_rank()
        if rank >= len(paths):
            raise ConfigError(f"--by-rank: rank {rank} but only {len(paths)} spec(s) given")
        paths = [paths[rank]]
    specs = [read_spec(p) for p in paths]  # check all before running any
    if not args.dry_run:
        for path, spec in zip(paths, specs, strict=True):
            check_writable_dir(spec.run["outdir"], f"outdir of spec {path}")
    runner = DRY_RUNNER if args.dry_run else RUNNER
    return worst_exit_code(runner(spec) for spec in specs)  # errors.SEVERITY


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(PROG, build_parser(), _action, argv)


if __name__ == "__main__":
    sys.exit(main())
