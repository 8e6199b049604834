"""balrog-demo: a small synthetic DES survey through the whole chain, with a report at the end."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence

from ..demo.run import DEFAULT_TILES, DemoPlan, default_workdir, run_demo
from ._common import (
    add_logging_options,
    float_in_range,
    int_in_range,
    nonneg_int,
    positive_int,
    run_command,
)
from .make_tile import MAX_SIZE

PROG = "balrog-demo"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Make a small synthetic DES survey of real tile geometry, serve it over HTTP with .netrc auth "
        "as DESDM is used, and run balrog-positions -> balrog-jobs -> balrog-run -> SQLite -> balrog-report.",
    )
    p.add_argument("--workdir", default=str(default_workdir()),
                   help="where everything goes (default: $BALROG_DEMO_DIR or ./demo-output)")
    p.add_argument("--tile", "--tiles", dest="tiles", nargs="+", action="extend", default=None, metavar="NAME",
                   help=f"DES tile names (default: {' '.join(DEFAULT_TILES)}; the first straddles RA = 0); "
                        "--tiles is the old spelling")
    p.add_argument("--size", type=int_in_range(64, MAX_SIZE, "pixels"), default=1024,
                   help=f"image side in pixels, at 0.263 arcsec/pixel, 64 .. {MAX_SIZE} (default: %(default)s)")
    p.add_argument("--ngal", type=positive_int(), default=150, help="objects injected per realization, >= 1 (default: %(default)s)")
    p.add_argument("--realizations", type=positive_int(), default=2, help="realizations per tile, >= 1 (default: %(default)s)")
    p.add_argument("--star-fraction", type=float_in_range(0.0, 1.0, "fraction"), default=0.1,
                   help="fraction of injected objects drawn as stars, 0..1 (default: %(default)s; "
                        "the report's star/galaxy panels need some)")
    p.add_argument("--lattice", type=float_in_range(2.0, 3600.0, "arcsec"), default=None, metavar="ARCSEC",
                   help="place objects on a hexagonal grid of this spacing per realization (DES Y3; e.g. 20) "
                        "instead of --ngal random positions")
    p.add_argument("--ppn", type=positive_int(), default=2, help="realizations run at once per tile, >= 1 (default: %(default)s)")
    p.add_argument("--seed", type=nonneg_int(), default=1, help="survey and position seed, integer >= 0 (default: %(default)s)")
    p.add_argument("--scheduler", choices=("local", "slurm"), default="local",
                   help="run the jobs here, or submit them to a running SLURM (default: %(default)s)")
    p.add_argument("--fresh", action="store_true", help="delete the workdir first (otherwise the survey is reused)")
    add_logging_options(p)
    return p


def _action(args: argparse.Namespace) -> int:
    plan = DemoPlan(workdir=args.workdir, tiles=args.tiles or list(DEFAULT_TILES), size=args.size, ngal=args.ngal,
                    realizations=args.realizations, ppn=args.ppn, seed=args.seed, scheduler=args.scheduler,
                    star_fraction=args.star_fraction, lattice=args.lattice)
    if args.fresh:
        shutil.rmtree(plan.workdir, ignore_errors=True)
    for sub in ("out", "jobs", "pos"):  # a rerun is a new campaign on the same survey
        shutil.rmtree(plan.paths[sub], ignore_errors=True)
    s = run_demo(plan)
    print(f"""
balrog-demo finished in {s['demo_seconds']:.0f} s
  tiles {s['tiles']}, realizations {s['realizations']}, objects injected {s['objects_injected']},
  drawn {s['objects_drawn']}, recovered {s['objects_recovered']} ({100 * s['recovered_fraction']:.1f}%)
  50% completeness (mag): {', '.join(f'{b} {m:.2f}' for b, m in s['m50'].items())}
  database rows: {', '.join(f'{k} {v}' for k, v in s['db_rows'].items())}  ({s['database']})
  report: {s['report']}
  catalogs: {plan.paths['out']}/<TILE>/catalogs/""")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(PROG, build_parser(), _action, argv, outputs=lambda a: [a.workdir])


if __name__ == "__main__":
    sys.exit(main())
