"""One realization of one full-size tile through the real node runner, stage by stage.

What a campaign pays per tile at 10000^2: ``balrog-positions`` (lattice or random) ->
``balrog-jobs`` -> ``balrog-run`` (fetch from a ``file://`` archive + funpack, nosim once,
one realization: inject, SWarp, six SExtractor runs, association, match table, catalogs,
SQLite push). Prints the stages from the tile's ``status.json`` and the memory of the run,
side by side for each ``--placement`` given: the largest single process (``ru_maxrss``) and
the peak of the whole process tree's proportional resident memory (PSS: ``balrog-run``, its pool workers and
their SExtractor/SWarp children, sampled every 0.2 s), which is what a node must hold per
worker and what :mod:`balrog_runner.node.resources` plans the pool size with.

Usage (from the repository root; the tile is the one ``measure_cost.py`` caches)::

    .venv/bin/python benchmarks/full_tile.py --size 10000 --workdir /tmp/bm10k
    .venv/bin/python benchmarks/full_tile.py --size 2048 --workdir /tmp/bm --param default

The synthetic tile (``synth.make_synthetic_tile``, minutes at 10000^2) and its fpacked
archive copy are made once under ``--workdir`` and reused; each run gets a fresh campaign
directory there. ``--param light`` (default) keeps nosim short; ``default`` is DESDM's set
(nosim then measures every real detection with model fitting: over an hour at 10000^2).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for p in (str(REPO), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

from measure_cost import TILE, tile_files  # noqa: E402

from balrog_runner import jobs  # noqa: E402
from balrog_runner.campaign import config as cfgmod  # noqa: E402
from balrog_runner.demo import run as demo
from balrog_runner.inputs import fpack
from balrog_runner.sky import geometry

BIN = Path(sys.executable).parent
log = logging.getLogger("benchmarks.full_tile")


def archive_for(workdir: Path, size: int) -> Path:
    """The cached tile fpacked into the plain archive layout (once)."""
    root = workdir / f"archive-{size}"
    marker = root / "done"
    if marker.is_file():
        return root
    tile = tile_files(workdir, size)
    target = root / TILE
    shutil.rmtree(root, ignore_errors=True)
    target.mkdir(parents=True)
    for band, image in tile.images.items():
        fpack.run_fpack(image, target / f"{TILE}_{band}.fits.fz", workdir=target, timeout=3600)
        shutil.copy(tile.psfs[band], target / Path(tile.psfs[band]).name)
    marker.write_text("ok\n")
    return root


def tree_rss_bytes(root: int) -> int:
    """Proportional resident memory (PSS) of ``root`` and all its descendants, bytes (from /proc)."""
    parent, rss = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                fields = dict(line.split(":", 1) for line in fh if ":" in line)
            with open(f"/proc/{entry}/smaps_rollup") as fh:
                sizes = dict(line.split(":", 1) for line in fh if ":" in line)
        except OSError:
            continue
        parent[int(entry)] = int(fields.get("PPid", "0").strip() or 0)
        # PSS: a page the forked workers share with the parent counts once, not once per worker
        rss[int(entry)] = int(sizes.get("Pss", "0 kB").split()[0]) * 1024
    tree, grew = {root}, True
    while grew:
        grew = False
        for pid, ppid in parent.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return sum(rss.get(pid, 0) for pid in tree)


def run_sampled(cmd: list[str]) -> tuple[subprocess.CompletedProcess, int]:
    """Run ``cmd``; return its result and the peak resident memory of its process tree."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], tree_rss_bytes(proc.pid))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, err = proc.communicate()
    done.set()
    thread.join()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), peak[0]


def run_once(workdir: Path, size: int, archive: Path, placement: str, spacing: float, ngal: int,
             param: str, ppn: int, realizations: int) -> dict:
    name = f"run-{placement}-{param}"
    root = workdir / name
    shutil.rmtree(root, ignore_errors=True)
    plan = demo.DemoPlan(workdir=root, tiles=[TILE], size=size, ngal=ngal, realizations=realizations, ppn=ppn, seed=5,
                         sex_param=f"{param}.param")
    tile = geometry.des_tile(TILE)  # at 10000^2 the real unique area; smaller tiles are cutouts
    tile = tile if size == geometry.NAXIS else geometry.cutout_tile(tile, size, margin=plan.margin)
    table = geometry.write_tile_table([tile], plan.paths["geometry"])
    where = (["--lattice", str(spacing), "--realizations", str(realizations)] if placement == "lattice"
             else ["--pertile", str(ngal * realizations)])
    subprocess.run([str(BIN / "balrog-positions"), "-q", "--tiles", str(table), *where, "--seed", "5",
                    "--outdir", str(plan.paths["pos"])], check=True)
    config = demo.write_config(plan, archive.as_uri())
    config.write_text(config.read_text().replace(
        "    return run, balrog, db, tiles", "    run['program-timeout'] = 10800\n    return run, balrog, db, tiles"))
    spec = jobs.build_jobs(cfgmod.load_config(config), "local", check_programs=False).specs[0].path
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    done, tree_peak = run_sampled([str(BIN / "balrog-run"), "-q", str(spec)])
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"balrog-run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    peak = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024 ** 2  # GiB
    status = json.loads((plan.paths["out"] / TILE / "status.json").read_text())
    reals = list(status["realizations"].values())
    stages = {f"{k} s": sum(r["stages"][k] for r in reals) / len(reals) for k in reals[0]["stages"]}
    return {"placement": placement if placement == "random" else f"lattice {spacing:g}\"", "param": param,
            "workers": status["pool"]["workers"], "objects/real": reals[0]["n_truth"],
            "sim rows": reals[0]["n_sim"], "fetch+nosim s": status.get("nosim_seconds", 0.0), **stages,
            "realization s": sum(r["seconds"] for r in reals) / len(reals), "wall s": wall,
            "scratch GB": max(r.get("scratch_bytes", 0) for r in reals) / 1e9,
            "largest process GiB": peak, "tree peak GiB": tree_peak / 1024 ** 3,
            "planned per worker GiB": status["pool"]["per_worker_bytes"] / 1024 ** 3}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2048, help="tile side, pixels (DES: 10000)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/balrog-bench-measure"),
                        help="where the tile, its archive and the campaigns live")
    parser.add_argument("--placement", default="lattice,random", help="comma-separated: lattice, random")
    parser.add_argument("--spacing", type=float, default=30.0, help="lattice spacing, arcsec (default 30)")
    parser.add_argument("--ngal", type=int, default=0,
                        help="random placement: objects (default: as many as the lattice holds)")
    parser.add_argument("--param", default="light", choices=("light", "default"), help="SExtractor parameter set")
    parser.add_argument("--realizations", type=int, default=1, help="realizations of the tile (default 1)")
    parser.add_argument("--ppn", type=int, default=1, help="pool size (default 1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    args.workdir.mkdir(parents=True, exist_ok=True)
    archive = archive_for(args.workdir, args.size)
    rows = []
    ngal = args.ngal
    for placement in [p for p in args.placement.split(",") if p]:
        row = run_once(args.workdir, args.size, archive, placement, args.spacing, ngal or 1, args.param, args.ppn,
                       args.realizations)
        rows.append(row)
        ngal = ngal or row["objects/real"]  # random with the lattice's count: the same work
    keys = list(dict.fromkeys(k for r in rows for k in r))
    print(f"\nfull tile {args.size}^2, {args.realizations} realization(s), {args.param}.param, ppn {args.ppn}; "
          "stage seconds are per realization")
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(f"{r.get(k, ''):.1f}" if isinstance(r.get(k), float) else str(r.get(k, ""))
                                for k in keys) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
