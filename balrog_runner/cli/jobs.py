"""``balrog-jobs``: build (and optionally submit or run) the jobs of a campaign."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import jobs
from ..campaign import config as cfgmod
from ..campaign import config_keys
from ..errors import EXIT_FAILED, EXIT_NOT_PUSHED
from ._common import add_config_timeout_option, add_logging_options, positive_int, run_command

PROG = "balrog-jobs"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Write SLURM / wq / local job files and subjob specs from a CustomConfig file.",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--config", metavar="FILE", help="python file defining CustomConfig(run, balrog, db, tiles)")
    what.add_argument("--run-local", metavar="JOBDIR", help="run the subjobs of an already built local job here")
    what.add_argument("--list-keys", action="store_true", help="print every config key with its default and meaning")
    p.add_argument("--source", metavar="FILE",
                   help="shell script sourced by bash before the config runs (configs may read what it exports), "
                        "before looking up programs, and at the top of every job file")
    p.add_argument("--scheduler", choices=config_keys.SCHEDULERS,
                   help="job flavour; default: slurm when sbatch is on PATH and a SLURM controller answers, else local")
    p.add_argument("--force", action="store_true", help="replace an existing job directory (its logs and records go)")
    p.add_argument("--submit", action="store_true",
                   help="after building: run submit.sh (slurm) or run the subjobs here (local)")
    p.add_argument("--workers", type=positive_int(), metavar="N",
                   help="local runs: subjobs at once, >= 1 (default: run['nodes'])")
    # --submit / --run-local (local scheduler): the worst of the subjobs' codes
    add_config_timeout_option(p)
    add_logging_options(p, unit_codes=(EXIT_FAILED, EXIT_NOT_PUSHED), worst_of_units=True)
    return p


def _action(args: argparse.Namespace) -> int:
    if args.list_keys:
        print(config_keys.describe_keys())
        return 0
    if args.run_local:
        return jobs.run_local(args.run_local, args.workers)
    cfg = cfgmod.load_config(args.config, source=args.source, timeout=args.config_timeout)
    built = jobs.build_jobs(cfg, args.scheduler, replace=args.force)
    print(built.job_dir)
    if args.submit:
        return jobs.submit(built, args.workers)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(PROG, build_parser(), _action, argv)


if __name__ == "__main__":
    sys.exit(main())
