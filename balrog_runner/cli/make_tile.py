"""``balrog-make-tile``: write a synthetic DES-like tile (images, PSFEx models, det image)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from ..demo import synth
from ._common import (
    add_logging_options,
    float_in_range,
    int_in_range,
    nonneg_int,
    positive_int,
    run_command,
)

PROG = "balrog-make-tile"
#: Largest --size in pixels: a DES coadd tile is 10000 x 10000; twice that is surely a typo.
MAX_SIZE = 20000
log = logging.getLogger(PROG)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Write a synthetic DES-like coadd tile in the DESDM layout: <TILE>_<band>.fits.fz "
        "(SCI/MSK/WGT), <TILE>_<band>_psfcat.psf made by SExtractor + psfex, and the riz det image.",
    )
    p.add_argument("--tile", required=True, help="DES tile name, e.g. DES0001-4914 (sets the centre RA/Dec)")
    p.add_argument("--size", type=int_in_range(64, MAX_SIZE, "pixels"), default=1024,
                   help=f"image side in pixels at 0.263 arcsec/pixel, 64 .. {MAX_SIZE} (a DES tile is 10000; default 1024)")
    p.add_argument("--bands", default=",".join(synth.DEFAULT_BANDS),
                   help="comma-separated bands out of g,r,i,z,Y (default g,r,i,z,Y; det needs r,i,z)")
    p.add_argument("--seed", type=nonneg_int(), default=1, help="random seed (integer >= 0; same seed, same tile)")
    p.add_argument("--outdir", required=True, help="directory to write the tile's files into")
    p.add_argument("--ra", type=float_in_range(0.0, 360.0, "degrees"), default=None,
                   help="tile centre RA in degrees, 0 .. 360 (default: from the name)")
    p.add_argument("--dec", type=float_in_range(-90.0, 90.0, "degrees"), default=None,
                   help="tile centre Dec in degrees, -90 .. 90 (default: from the name)")
    p.add_argument("--no-fpack", action="store_true", help="write plain .fits instead of fpack-compressed .fits.fz")
    p.add_argument("--no-det", action="store_true", help="do not build the riz detection image")
    p.add_argument("--workers", type=positive_int(), default=2, help="external programs run in parallel, >= 1 (default 2)")
    add_logging_options(p)
    return p


def _run(args: argparse.Namespace) -> int:
    bands = tuple(b.strip() for b in args.bands.split(",") if b.strip())
    t0 = time.perf_counter()
    tile = synth.make_synthetic_tile(
        args.tile, args.outdir, size=args.size, bands=bands, seed=args.seed, ra=args.ra, dec=args.dec,
        compress=not args.no_fpack, det=not args.no_det, workers=args.workers, progress=sys.stderr.isatty(),
    )
    log.info("wrote %d images and %d PSFEx models for %s into %s in %.1f s",
             len(tile.images), len(tile.psfs), tile.tilename, tile.outdir, time.perf_counter() - t0)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(PROG, build_parser(), _run, argv, outputs=lambda a: [a.outdir])


if __name__ == "__main__":
    raise SystemExit(main())
