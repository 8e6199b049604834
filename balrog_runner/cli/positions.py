"""``balrog-positions``: draw Balrog object positions in the unique areas of DES tiles.

One FITS file per tile, ``<outdir>/<TILENAME>.fits``: uniform random positions (``--density``
or ``--pertile``) or one hexagonal grid per realization (``--lattice``). Runs in parallel over MPI ranks when
started by ``mpirun``/``srun`` with more than one rank, as a single process otherwise; the
files are identical either way.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

from ..errors import BalrogError, ConfigError
from ..sky import positions
from ..sky.lattice import DEFAULT_SPACING_ARCSEC
from ._common import add_logging_options, run_command
from .tiles import load_tiles

PROG = "balrog-positions"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("--tiles", metavar="FILE", help="tile list or table (FITS or CSV/text; Y1, Y3 or names only)")
    p.add_argument("--tilecol", metavar="NAME", help="tile-name column of --tiles (default: tilename, any case)")
    p.add_argument("--tile", "--tilenames", dest="tilenames", metavar="NAME", nargs="+", action="extend",
                   help="DES tile names; with --tiles, a subset of it (repeatable)")
    p.add_argument("--density", metavar="N", help="objects per deg^2 of unique area (Poisson per tile)")
    p.add_argument("--pertile", metavar="N", help="objects per tile (exact)")
    p.add_argument("--lattice", metavar="ARCSEC", nargs="?", const=str(DEFAULT_SPACING_ARCSEC),
                   help="hexagonal grid per realization instead of random positions, with this spacing "
                        f"(DES Y3: 20 in tests, {DEFAULT_SPACING_ARCSEC:g} in production, the value without ARCSEC); "
                        "each realization's grid has its own random rotation and offset; needs --realizations; "
                        "at most 0.82 of the unique area's side (about 2100 for a DES tile), so that every grid "
                        "lands on it")
    p.add_argument("--realizations", metavar="N", help="lattice grids per tile (with --lattice)")
    p.add_argument("--seed", metavar="N", default="1", help="campaign seed, integer >= 0 (default: %(default)s)")
    p.add_argument("--iterateby", metavar="N", default=str(positions.DEFAULT_ITERATEBY),
                   help="positions per chunk, bounds memory (~100 bytes per position); "
                        "does not change the result (default: %(default)s)")
    p.add_argument("--outdir", required=True, metavar="DIR", help="directory for <TILENAME>.fits files")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an outdir made with other parameters (removes its position files)")
    add_logging_options(p)
    return p


def _number(text: str | None, option: str, kind: type, unit: str):
    if text is None:
        return None
    try:
        value = kind(text)
    except ValueError:
        raise ConfigError(f"{option} must be {'an integer' if kind is int else 'a number'} ({unit}), got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise ConfigError(f"{option} must be a finite number > 0 ({unit}), got {text!r}")
    return value


def _action(args: argparse.Namespace) -> int:
    comm = positions.mpi_world()
    try:
        params = positions.PositionParams(
            seed=_number(args.seed, "--seed", int, "integer >= 0"),
            density=_number(args.density, "--density", float, "objects per deg^2"),
            pertile=_number(args.pertile, "--pertile", int, "objects per tile"),
            lattice=_number(args.lattice, "--lattice", float, "arcsec"),
            realizations=_number(args.realizations, "--realizations", int, "grids per tile"),
        )
        iterateby = _number(args.iterateby, "--iterateby", int, "positions per chunk")
        summary = positions.run_campaign(
            lambda: load_tiles(args.tiles, args.tilecol, args.tilenames),
            params, args.outdir, iterateby=iterateby, overwrite=args.overwrite, comm=comm,
        )
    except BalrogError as exc:
        if comm is not None and comm.Get_rank() != 0:
            return exc.exit_code  # rank 0 reports it once
        raise
    if summary is not None:
        print(
            f"{PROG}: {summary.npositions} positions in {summary.ntiles} tiles "
            f"({summary.area_deg2:.2f} deg^2, {params.describe()}) -> {summary.outdir} "
            f"[{summary.nranks} rank(s)]"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(PROG, build_parser(), _action, argv)


if __name__ == "__main__":
    raise SystemExit(main())
