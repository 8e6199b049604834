"""Benchmark the single-epoch re-coadd of one band against the number of exposures it holds.

Usage (from the repository root)::

    .venv/bin/python benchmarks/recoadd_scaling.py --se-dir /tmp/bench-cache/single-epoch/archive-4096-10/DES2359+0001/se \\
        --band r --exposures 2 4 10 --size 4096

``--se-dir`` is a folder of nwgint CCD images (``D<expnum>_<band>_c<ccd>_nwgint.fits``, as
``demo.synth_se`` writes them and the single-epoch fetch leaves them; the zero point from each
SCI header's ``MAG_ZERO``), e.g. the CCDs of a partly rendered synthetic survey, whose
``se_set.json`` does not exist yet. For each ``--exposures`` N the band's first N exposures
are re-coadded onto the tile's grid (``--size`` pixels at 0.263" about the DES tile's centre)
with the call a realization makes (``recoadd_band_science``: the WGT_ME-weighted SWarp call;
the nosim re-coadd makes it and the WGT-weighted one once per tile), in a scratch folder under
``--workdir`` that is removed afterwards. Prints wall and CPU seconds (SWarp is a child
process), input megapixels, seconds per input megapixel, and a line ``a * Mpix + b`` through
the first and last case; ``single_epoch.py`` extrapolates a full tile with such a line.
"""

from __future__ import annotations

import argparse
import logging
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import fitsio  # noqa: E402

from balrog_runner.coadd.recoadd import recoadd_band_science  # noqa: E402
from balrog_runner.inputs.single_epoch import CoaddGrid, SEImage  # noqa: E402
from balrog_runner.sky import geometry  # noqa: E402

NAME = re.compile(r"D(?P<expnum>\d+)_(?P<band>\w+)_c(?P<ccd>\d+)_nwgint\.fits$")
log = logging.getLogger("benchmarks.recoadd_scaling")


def band_images(se_dir: Path, band: str) -> list[SEImage]:
    """The band's CCD images in ``se_dir`` (those with a PSF model beside them, as a survey has)."""
    out = []
    for path in sorted(se_dir.glob(f"D*_{band}_c*_nwgint.fits")):
        m = NAME.match(path.name)
        psf = path.with_name(path.name.replace("_nwgint.fits", "_psfexcat.psf"))
        if not m or not psf.is_file():
            continue
        header = fitsio.read_header(str(path), ext=0)
        if "MAG_ZERO" not in header:
            raise SystemExit(f"{path}: no MAG_ZERO in its SCI header")
        out.append(SEImage(band, int(m["expnum"]), int(m["ccd"]), path.resolve(), psf.resolve(),
                           float(header["MAG_ZERO"])))
    return out


def children_cpu() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--se-dir", type=Path, required=True, help="folder of nwgint CCD images and PSF models")
    parser.add_argument("--band", default="r")
    parser.add_argument("--exposures", type=int, nargs="+", default=[2, 4, 10], help="exposures per case")
    parser.add_argument("--size", type=int, default=4096, help="side of the coadd grid, pixels")
    parser.add_argument("--tile", default="DES2359+0001", help="DES tile whose centre the grid is on")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-cache"), help="where SWarp's scratch goes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    images = band_images(args.se_dir, args.band)
    expnums = sorted({im.expnum for im in images})
    if not images or max(args.exposures) > len(expnums):
        raise SystemExit(f"{args.se_dir}: {len(expnums)} exposures in band {args.band}, "
                         f"{max(args.exposures)} asked for")
    tile = geometry.des_tile(args.tile)
    grid = CoaddGrid(ra=tile.ra_cent, dec=tile.dec_cent, naxis1=args.size, naxis2=args.size)
    rows = []
    for n in sorted(args.exposures):
        chosen = [im for im in images if im.expnum in expnums[:n]]
        mpix = 0.0
        for im in chosen:
            h = fitsio.read_header(str(im.image), ext=0)
            mpix += h["NAXIS1"] * h["NAXIS2"] / 1e6
        with tempfile.TemporaryDirectory(prefix="recoadd-scaling-", dir=args.workdir) as tmp:
            c0, w0 = children_cpu(), time.perf_counter()
            recoadd_band_science(chosen, grid, Path(tmp) / "sci.fits", band=args.band, tilename=args.tile, workdir=tmp)
            rows.append((n, len(chosen), mpix, time.perf_counter() - w0, children_cpu() - c0))
    print(f"\nre-coadd of band {args.band} onto {args.size}^2 (one SWarp call, WGT_ME-weighted, as a realization "
          f"makes it), seconds")
    print(f"{'exposures':>9} {'CCD images':>10} {'input Mpix':>10} {'wall':>7} {'CPU':>7} {'wall/Mpix':>9}")
    for n, nccd, mpix, wall, cpu in rows:
        print(f"{n:9d} {nccd:10d} {mpix:10.1f} {wall:7.1f} {cpu:7.1f} {wall / mpix:9.3f}")
    if len(rows) >= 2:
        (_, _, x0, y0, _), (_, _, x1, y1, _) = rows[0], rows[-1]
        a = (y1 - y0) / (x1 - x0)
        print(f"wall = {a:.4f} s per input Mpix + {y0 - a * x0:.1f} s (through {rows[0][0]} and {rows[-1][0]} "
              f"exposures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
