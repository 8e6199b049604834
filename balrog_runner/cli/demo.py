"""balrog-demo: a small synthetic DES survey through the whole chain, with a report at the end."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence

from ..demo.run import DEFAULT_TILES, MAX_EXPOSURES, DemoPlan, default_workdir, run_demo
from ..errors import ConfigError
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
    p.add_argument("--single-epoch", action="store_true",
                   help="a synthetic single-epoch survey instead (dithered exposures of CCDs, each with its own PSF, "
                        "zero point and masks), resolved by balrog-inputs --single-epoch, run as a "
                        "run['inject-into'] = 'single-epoch' campaign and as a coadd campaign on the same positions, "
                        "and reported side by side (balrog-report --compare); default tile: "
                        f"{DEFAULT_TILES[0]}")
    p.add_argument("--exposures", type=int_in_range(1, MAX_EXPOSURES, "exposures"), default=None,
                   help=f"with --single-epoch: exposures per band, 1 .. {MAX_EXPOSURES} (default: 3)")
    p.add_argument("--fresh", action="store_true", help="delete the workdir first (otherwise the survey is reused)")
    add_logging_options(p)
    return p


def _action(args: argparse.Namespace) -> int:
    if args.exposures is not None and not args.single_epoch:
        raise ConfigError(f"--exposures {args.exposures}: only with --single-epoch (the coadd demo has no exposures)")
    default_tiles = list(DEFAULT_TILES[:1] if args.single_epoch else DEFAULT_TILES)
    plan = DemoPlan(workdir=args.workdir, tiles=args.tiles or default_tiles, size=args.size, ngal=args.ngal,
                    realizations=args.realizations, ppn=args.ppn, seed=args.seed, scheduler=args.scheduler,
                    star_fraction=args.star_fraction, lattice=args.lattice, single_epoch=args.single_epoch,
                    exposures=args.exposures or 3)
    if args.fresh:
        shutil.rmtree(plan.workdir, ignore_errors=True)
    for sub in ("out", "jobs", "pos", "out-coadd", "jobs-coadd"):  # a rerun is a new campaign on the same survey
        if sub in plan.paths:
            shutil.rmtree(plan.paths[sub], ignore_errors=True)
    if plan.single_epoch:
        from ..demo.single_epoch import run_se_demo

        return _print_se(plan, run_se_demo(plan))
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


def _print_se(plan: DemoPlan, s: dict) -> int:
    cmp = s["comparison"]
    rows = "\n".join(
        f"    {b:<2} {d['m50']:6.2f} ± {d['m50_error']:.2f}   {d['other_m50']:6.2f} ± {d['other_m50_error']:.2f}   "
        f"{d['delta_m50']:+.2f} ± {d['delta_m50_error']:.2f}" for b, d in cmp["per_band"].items())
    secs = s["campaign_seconds"]
    print(f"""
balrog-demo --single-epoch finished in {s['demo_seconds']:.0f} s (single-epoch campaign {secs['single-epoch']:.0f} s, \
coadd campaign {secs['coadd']:.0f} s)
  tiles {s['tiles']}, realizations {s['realizations']}, objects injected {s['objects_injected']},
  drawn {s['objects_drawn']}, recovered {s['objects_recovered']} ({100 * s['recovered_fraction']:.1f}%) in single-epoch mode
  50% completeness (mag):  single-epoch    coadd           difference
{rows}
  manifests: {s['manifests']['coadd']} (coadd), {s['manifests']['single-epoch']} (single-epoch)
  database rows: {', '.join(f'{k} {v}' for k, v in s['db_rows'].items())}  ({s['database']})
  report: {s['report']} (both modes side by side)
  catalogs: {plan.paths['out']}/<TILE>/catalogs/ (single-epoch), {plan.paths['out-coadd']}/<TILE>/catalogs/ (coadd)""")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(PROG, build_parser(), _action, argv, outputs=lambda a: [a.workdir])


if __name__ == "__main__":
    sys.exit(main())
