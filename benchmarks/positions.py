"""Benchmark balrog-positions: throughput and peak memory, and the whole-sphere baseline.

Prints a table with, for the 334-tile Stripe 82 list:

1. our generator writing every tile's file at 200,000 objects per deg^2 (one process);
2. our generator, in memory, at a low density where the baseline finishes in < 1 min;
3. the original tool's method at that density: draw uniformly over the whole sphere
   (41,253 deg^2) in chunks, then cut each chunk to every tile's unique area (vectorised
   numpy, one boolean mask per tile per chunk);

and the ratio of kept positions per second, (2) over (3), measured in the same run. Each
row runs in its own child process so that its peak RSS is its own.

    .venv/bin/python benchmarks/positions.py [--density 200000] [--baseline-density 300]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from balrog_runner.sky import geometry, positions

REPO = Path(__file__).resolve().parents[1]
TILES = REPO / "tiles" / "y1a1-stripe82-grizY.fits"
SPHERE_DEG2 = 4 * math.pi * math.degrees(1) ** 2


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def run_ours_write(tiles: list[geometry.Tile], density: float, iterateby: int, outdir: str) -> dict:
    params = positions.PositionParams(seed=1, density=density)
    t0 = time.perf_counter()
    summary = positions.run_campaign(lambda: tiles, params, outdir, iterateby=iterateby)
    dt = time.perf_counter() - t0
    return {"kept": summary.npositions, "drawn": summary.npositions, "seconds": dt}


def run_ours_memory(tiles: list[geometry.Tile], density: float, iterateby: int) -> dict:
    params = positions.PositionParams(seed=1, density=density)
    t0 = time.perf_counter()
    kept = 0
    for t in tiles:
        for part in positions.iter_tile_positions(t, params, iterateby):
            kept += len(part)
    return {"kept": kept, "drawn": kept, "seconds": time.perf_counter() - t0}


def run_baseline(tiles: list[geometry.Tile], density: float, iterateby: int) -> dict:
    """The original method: uniform over the whole sphere, then keep what falls in the tiles.

    Vectorised as well as it fairly can be: each chunk is first cut to the Dec range of the
    tile list (one comparison per point), then to each tile's unique area.
    """
    rng = np.random.default_rng(1)
    dmin, dmax = min(t.udecmin for t in tiles), max(t.udecmax for t in tiles)
    total = rng.poisson(density * SPHERE_DEG2)
    t0 = time.perf_counter()
    kept = 0
    for start in range(0, total, iterateby):
        m = min(iterateby, total - start)
        ra = rng.uniform(0.0, 360.0, m)
        dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, m)))
        band = (dec >= dmin) & (dec < dmax)
        ra, dec = ra[band], dec[band]
        for t in tiles:
            kept += int(np.count_nonzero(t.contains(ra, dec)))
    return {"kept": kept, "drawn": int(total), "seconds": time.perf_counter() - t0}


def _child(args: argparse.Namespace) -> None:
    tiles = geometry.read_tile_table(args.tiles)
    if args.child == "ours-write":
        res = run_ours_write(tiles, args.density, args.iterateby, args.outdir)
    elif args.child == "ours-memory":
        res = run_ours_memory(tiles, args.density, args.iterateby)
    else:
        res = run_baseline(tiles, args.density, args.iterateby)
    res["rss_mib"] = _peak_rss_mib()
    print(json.dumps(res))


def _spawn(kind: str, tiles: Path, density: float, iterateby: int, outdir: str | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--tiles", str(tiles), "--density", repr(density),
           "--iterateby", str(iterateby)]
    if outdir:
        cmd += ["--outdir", outdir]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiles", type=Path, default=TILES, help="tile list (default: the 334-tile Stripe 82 list)")
    p.add_argument("--density", type=float, default=200000.0, help="objects per deg^2 for the full run")
    p.add_argument("--baseline-density", type=float, default=1000.0,
                   help="objects per deg^2 for the baseline comparison (baseline must finish in < 1 min)")
    p.add_argument("--iterateby", type=int, default=positions.DEFAULT_ITERATEBY, help="positions per chunk")
    p.add_argument("--child", choices=["ours-write", "ours-memory", "baseline"], help=argparse.SUPPRESS)
    p.add_argument("--outdir", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _child(args)
        return

    ntiles = len(geometry.read_tilenames(args.tiles))
    rows = []
    with tempfile.TemporaryDirectory(prefix="balrog-bench-") as tmp:
        rows.append(("ours: generate + write files", args.density,
                     _spawn("ours-write", args.tiles, args.density, args.iterateby, tmp + "/pos")))
    rows.append(("ours: generate (in memory)", args.baseline_density,
                 _spawn("ours-memory", args.tiles, args.baseline_density, args.iterateby)))
    rows.append(("baseline: whole sphere, then cut", args.baseline_density,
                 _spawn("baseline", args.tiles, args.baseline_density, args.iterateby)))

    print(f"balrog-positions benchmark: {args.tiles.name} ({ntiles} tiles), one process, "
          f"--iterateby {args.iterateby}")
    head = f"{'method':34s} {'per deg^2':>10s} {'kept':>12s} {'drawn':>12s} {'wall s':>8s} {'kept/s':>12s} {'peak RSS MiB':>13s}"
    print(head)
    print("-" * len(head))
    for label, dens, r in rows:
        rate = r["kept"] / r["seconds"] if r["seconds"] > 0 else float("inf")
        print(f"{label:34s} {dens:10.0f} {r['kept']:12d} {r['drawn']:12d} {r['seconds']:8.2f} {rate:12.4g} {r['rss_mib']:13.1f}")
    ours, base = rows[1][2], rows[2][2]
    ratio = (ours["kept"] / ours["seconds"]) / (base["kept"] / base["seconds"])
    print(f"kept positions/s, ours / whole-sphere baseline at {args.baseline_density:g} per deg^2: {ratio:.0f}x")


if __name__ == "__main__":
    main()
