"""How fine a grid of cached PSFs must be: the drawn stamp's change against the exact PSFEx
profile of each object, for the two ways of caching PSFs on a grid, on real PSFEx models.

Usage (from the repository root)::

    .venv/bin/python benchmarks/psf_grid.py                              # the real DES model
    .venv/bin/python benchmarks/psf_grid.py --psf /tmp/bench-cache/tile-4096/DES0002+0209_r_psfcat.psf --size 4096

For each model (``--psf``, default ``tests/data/des_example.psf``, a real DES PSFEx file:
POLDEG 8 in X_IMAGE, Y_IMAGE) and each grid spacing, ``--nobj`` positions uniform over a
``--size`` x ``--size`` image (TAN, 0.263"/pix) are drawn as a star (the PSF alone), an
exponential galaxy (hlr 0.4") and a truncated de Vaucouleurs galaxy (hlr 1", q 0.5) with the
exact profile (``draw.psfex_profile``: ``getPSF`` at the object's position) and with:

- **snap**: the whole profile of a grid node reused, the node G/2 away in x and in y (the
  farthest the nearest node of a G-pixel grid can be);
- **k-grid**: the object's own PSF image with the ``stepk``/``maxk`` of its G-pixel cell's
  centre (``draw.PsfexGrid``, what the injection does).

Prints the largest ``max |stamp - exact| / flux`` over the objects (target 1e-4) and how many
stamps are bit-identical. The stamps are 81 x 81 pixels, drawn with ``method='no_pixel'``
and the injection's GSParams. Then what the PSF costs per object (CPU ms, ``--nobj`` x 5
objects, best of 3): the profile and the draw of a star and of a bulge+disk galaxy with the
exact profile (before), the k-grid of ``DrawOptions().psf_grid`` (after), and one PSF object
for every position (the floor any cache can reach: its k-space table is built once).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import galsim  # noqa: E402
import numpy as np  # noqa: E402

from balrog_runner.demo import synth  # noqa: E402
from balrog_runner.injection import draw  # noqa: E402

SHAPES = {
    "star": None,
    "exp": galsim.Exponential(half_light_radius=0.4),
    "deV": galsim.Sersic(4.0, half_light_radius=1.0, trunc=5.0).shear(q=0.5, beta=0.3 * galsim.radians),
}


def stamp(profile: galsim.GSObject, wcs: galsim.BaseWCS, x: float, y: float, shape) -> np.ndarray:
    """An object at 1-based pixel (x, y), drawn as the injection draws it (unit flux)."""
    ix, iy = math.floor(x + 0.5), math.floor(y + 0.5)
    local = wcs.local(galsim.PositionD(x, y))
    obj = profile if shape is None else galsim.Convolve(shape, profile, gsparams=draw.DrawOptions().gsparams)
    image = galsim.ImageF(galsim.BoundsI(ix - 40, ix + 40, iy - 40, iy + 40), wcs=local)
    obj.drawImage(image, method="no_pixel", offset=(x - ix, y - iy))
    return image.array.astype(np.float64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--psf", type=Path, action="append", help="PSFEx model(s) (default: the real DES one)")
    parser.add_argument("--size", type=int, default=10000, help="image side the positions cover, pixels")
    parser.add_argument("--nobj", type=int, default=60, help="objects per spacing")
    parser.add_argument("--spacings", default="25,50,100,250,500,1000,2500,10000", help="grid spacings, pixels")
    args = parser.parse_args(argv)
    models = args.psf or [REPO / "tests" / "data" / "des_example.psf"]
    spacings = [float(s) for s in args.spacings.split(",")]
    wcs = galsim.GSFitsWCS(header=synth.tile_wcs_header(0.5, 0.3, args.size, args.size))
    positions = np.random.default_rng(2).uniform(1, args.size, (args.nobj, 2))
    for model in models:
        psf = draw.load_psf(model)
        exact = {}
        for k, (x, y) in enumerate(positions):
            pos = galsim.PositionD(x, y)
            for name, shape in SHAPES.items():
                exact[k, name] = stamp(draw.psfex_profile(psf, pos, wcs.local(pos)), wcs, x, y, shape)
        print(f"\n{model.name}: {args.nobj} objects over {args.size}^2 pixels; max |stamp - exact| / flux "
              "(target 1e-4), identical stamps")
        print(f"{'spacing':>8}  " + "  ".join(f"{'snap ' + n:>10}" for n in SHAPES) + "  "
              + "  ".join(f"{'k-grid ' + n:>12}" for n in SHAPES) + "  identical (k-grid)")
        for spacing in spacings:
            grid = draw.PsfexGrid(psf, spacing)
            snap = dict.fromkeys(SHAPES, 0.0)
            kgrid = dict.fromkeys(SHAPES, 0.0)
            same = 0
            for k, (x, y) in enumerate(positions):
                pos = galsim.PositionD(x, y)
                node = galsim.PositionD(x - spacing / 2, y - spacing / 2)
                snapped = draw.psfex_profile(psf, node, wcs.local(pos))
                ours = grid.profile(pos, wcs.local(pos))
                for name, shape in SHAPES.items():
                    ref = exact[k, name]
                    snap[name] = max(snap[name], np.abs(stamp(snapped, wcs, x, y, shape) - ref).max() / ref.sum())
                    mine = stamp(ours, wcs, x, y, shape)
                    kgrid[name] = max(kgrid[name], np.abs(mine - ref).max() / ref.sum())
                    same += np.array_equal(mine, ref)
            print(f"{spacing:8.0f}  " + "  ".join(f"{snap[n]:10.1e}" for n in SHAPES) + "  "
                  + "  ".join(f"{kgrid[n]:12.1e}" for n in SHAPES) + f"  {same}/{len(SHAPES) * args.nobj}"
                  + f"  ({grid.cells} cells)")
        print_costs(psf, wcs, np.random.default_rng(3).uniform(1, args.size, (5 * args.nobj, 2)))
    return 0


def print_costs(psf, wcs, positions: np.ndarray) -> None:
    """CPU milliseconds per object of the PSF and the draw, before / after / one PSF."""
    import time

    bulge_disk = galsim.Add([galsim.Sersic(1.0, half_light_radius=0.6, trunc=3.0, flux=0.7),
                             galsim.Sersic(4.0, half_light_radius=0.3, trunc=1.5, flux=0.3)]).shear(q=0.7, beta=0.4 * galsim.radians)
    grid = draw.PsfexGrid(psf, draw.DrawOptions().psf_grid)
    dx, dy = draw.psfex_centre_shift(psf)
    one = psf.getPSF(galsim.PositionD(*positions.mean(axis=0))).shift(-dx, -dy)  # image coordinates
    methods = {
        "exact getPSF per object (before)": lambda pos, local: draw.psfex_profile(psf, pos, local),
        f"k-grid {grid.spacing:.0f} px (after)": grid.profile,
        "one PSF for all (floor)": lambda pos, local: local.profileToWorld(one),
    }
    print(f"\nPSF cost per object, CPU ms over {len(positions)} positions (best of 3)")
    print(f"{'method':36s} {'profile':>8s} {'star':>8s} {'galaxy':>8s}   (star, galaxy: profile + draw)")
    for name, make in methods.items():
        best = [math.inf] * 3
        for _ in range(3):
            t_prof = t_star = t_gal = 0.0
            for x, y in positions:
                pos = galsim.PositionD(x, y)
                local = wcs.local(pos)
                t0 = time.process_time()
                prof = make(pos, local)
                t1 = time.process_time()
                stamp(prof, wcs, x, y, None)
                t2 = time.process_time()
                stamp(make(pos, local), wcs, x, y, bulge_disk)
                t3 = time.process_time()
                t_prof, t_star, t_gal = t_prof + t1 - t0, t_star + t2 - t0, t_gal + t3 - t2
            best = [min(b, t) for b, t in zip(best, (t_prof, t_star, t_gal), strict=True)]
        n = len(positions)
        print(f"{name:36s} {1e3 * best[0] / n:8.3f} {1e3 * best[1] / n:8.3f} {1e3 * best[2] / n:8.3f}")


if __name__ == "__main__":
    sys.exit(main())
