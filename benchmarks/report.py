"""balrog-report at campaign scale: time and peak memory for 10^2, 10^3, 10^4 realizations.

The realizations are replicated from real ones: the catalogs of a campaign the real chain made
(``--source``, default a ``balrog-demo`` run cached under /tmp/bench-cache/report-demo, made
on first use) are turned into summaries by the runner's own code (node/summary.build_summary),
and each replica takes one of them, its rows repeated to ``--objects`` objects placed uniformly
over a real DES tile in the footprint (10^4 realizations: 1,000 tiles x 10), with fresh
``balrog_index`` values. What the runner writes for a campaign that size, without running it.

Rows of the table (each ``balrog-report`` a subprocess; peak RSS is its maximum resident set):

- ``summaries``: the campaign's ``_summary.fits`` files (the new path);
- ``catalogs (before)``: the same number of realizations as catalogs, reported by the code of
  ``--before`` (default /work/main if it exists, i.e. the integrated branch this one started
  from) -- the 797-column catalogs read one by one; only at the smallest size, as it is slow;
- ``catalogs (fallback)``: the same catalogs reported by this code (a campaign without summaries);
- ``summaries (same)``: the same realizations with their summaries written beside them;
- ``database``: the catalogs pushed into SQLite with balrog-push, then ``--source db``.

    python benchmarks/report.py [--sizes 100 1000 10000] [--objects 3000] [--db-sizes 100]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import fitsio
import numpy as np

CACHE = Path("/tmp/bench-cache")
BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
PER_TILE = 10


def source_campaign(path: Path | None) -> Path:
    """A campaign made by the real chain (the demo at its default size unless given)."""
    if path is not None:
        return path
    demo = CACHE / "report-demo"
    if not (demo / "campaign").is_dir():
        subprocess.run([str(BIN / "balrog-demo"), "--workdir", str(demo), "-q"], check=True)
    return demo / "campaign"


def real_summaries(campaign: Path) -> list[tuple[np.ndarray, dict, Path]]:
    """Every realization of ``campaign`` as the runner's summary (built from its catalogs)."""
    from balrog_runner.report.campaign_dir import find_realizations
    from balrog_runner.report.from_files import realization_summary

    out = []
    for files in find_realizations(campaign).values():
        if files.has_catalogs:
            files.summary = None
            table, cards, _ = realization_summary(files)
            out.append((table, cards, files.truth))
    if not out:
        raise SystemExit(f"no complete realization under {campaign}")
    return out


def footprint_tiles(n: int) -> list:
    """``n`` real DES tiles inside the footprint, spread over it."""
    from balrog_runner.sky.footprint import in_des_footprint
    from balrog_runner.sky.geometry import des_tiling

    tiles = [t for t in des_tiling() if in_des_footprint(t.ra_cent, t.dec_cent)]
    step = max(len(tiles) // n, 1)
    return tiles[::step][:n]


def replicate(sources, size: int, objects: int, out: Path, rng: np.random.Generator) -> Path:
    """``size`` realizations of ``objects`` objects each, as summaries plus the tiles' status.json."""
    from balrog_runner.node.summary import write_summary

    if (out / ".complete").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    n_tiles = max(size // PER_TILE, 1)
    tiles = footprint_tiles(n_tiles)
    index = 1
    for t_i, tile in enumerate(tiles):
        reals = range(PER_TILE if size >= PER_TILE else size)
        cat = out / tile.tilename / "catalogs"
        cat.mkdir(parents=True)
        for j in reals:
            table, cards, _ = sources[(t_i * PER_TILE + j) % len(sources)]
            rows = rng.integers(0, len(table), objects)
            rep = table[rows].copy()
            rep["balrog_index"] = np.arange(index, index + objects)
            lo, hi = (tile.uramax, tile.uramin + 360.0) if tile.crossra0 else (tile.uramin, tile.uramax)
            rep["ra"] = rng.uniform(lo, hi, objects) % 360.0
            rep["dec"] = rng.uniform(tile.udecmin, tile.udecmax, objects)
            header = {**{k: v for k, v in cards.items() if k != "MATCHSRC"}, "TILENAME": tile.tilename, "REALIZ": j,
                      "INDSTART": index}
            write_summary(cat / f"{tile.tilename}_r{j:04d}_summary.fits", rep, header,
                          cards.get("MATCHSRC", "file"))
            index += objects
        (out / tile.tilename / "status.json").write_text(json.dumps(
            {"campaign": "bench", "planned": list(reals),
             "realizations": {str(j): {"state": "done", "seconds": 600.0} for j in reals}}))
    (out / ".complete").write_text("")
    return out


def _renamed(src: Path, dst: Path, tile: str, j: int) -> None:
    """``src`` copied to ``dst`` as realization ``j`` of ``tile`` (its tilename and realization columns too)."""
    with fitsio.FITS(str(src)) as f:
        table, header = f[1].read(), f[1].read_header()
    names = set(table.dtype.names or ())
    if "tilename" in names:
        table["tilename"] = tile
    if "realization" in names:
        table["realization"] = j
    with fitsio.FITS(str(dst), "rw", clobber=True) as f:
        f.write(table, extname=header.get("EXTNAME", "OBJECTS"))
        for key in ("CAMPAIGN", "CAMPFP", "SEXVER", "SWARPVER", "BALRVER", "GALSIMV", "RELEASE", "INDSTART"):
            if key in header:
                f[-1].write_key(key, header[key])


def replicate_catalogs(sources, size: int, out: Path) -> Path:
    """``size`` realizations as copies of the real catalogs (truth, sim, nosim, match), renamed."""
    if (out / ".complete").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    tiles = footprint_tiles(max(size // PER_TILE, 1))
    for t_i, tile in enumerate(tiles):
        cat = out / tile.tilename / "catalogs"
        cat.mkdir(parents=True)
        for j in range(min(PER_TILE, size)):
            truth = sources[(t_i * PER_TILE + j) % len(sources)][2]
            stem = truth.name[: -len("_truth.fits")]
            for kind in ("sim", "nosim", "match", "truth"):
                src = truth.with_name(f"{stem}_{kind}.fits")
                if src.exists():
                    _renamed(src, cat / f"{tile.tilename}_r{j:04d}_{kind}.fits", tile.tilename, j)
    (out / ".complete").write_text("")
    return out


def run_report(args: list[str], pythonpath: Path) -> tuple[float, float, float, int]:
    """Wall seconds, CPU seconds, peak RSS (MiB, the child's own maximum resident set) and exit code
    of one ``balrog-report`` run in a subprocess."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "MPLBACKEND": "Agg"}
    code = ("import resource, sys; from balrog_runner.cli.report import main; c = main(sys.argv[1:]); "
            "u = resource.getrusage(resource.RUSAGE_SELF); "
            "print('USAGE', u.ru_maxrss, u.ru_utime + u.ru_stime, file=sys.stderr); sys.exit(c)")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args, "-q"], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        print(proc.stderr[-2000:], file=sys.stderr)
    usage = [line.split()[1:] for line in proc.stderr.splitlines() if line.startswith("USAGE")]
    peak, cpu = (int(usage[0][0]) / 1024.0, float(usage[0][1])) if usage else (float("nan"), float("nan"))
    return seconds, cpu, peak, proc.returncode


def add_summaries(campaign: Path) -> None:
    """Write each realization's summary beside its catalogs, as the runner now does."""
    from balrog_runner.node.summary import summary_beside, write_summary
    from balrog_runner.report.campaign_dir import find_realizations
    from balrog_runner.report.from_files import realization_summary

    for files in find_realizations(campaign).values():
        if files.has_catalogs and files.summary is None:
            table, cards, _ = realization_summary(files)
            write_summary(summary_beside(files.truth), table, {k: v for k, v in cards.items() if k != "MATCHSRC"},
                          cards.get("MATCHSRC", "unknown"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000], help="realizations per row")
    p.add_argument("--objects", type=int, default=3000, help="objects per realization (a DES tile: 2,000-10,000)")
    p.add_argument("--db-sizes", type=int, nargs="*", default=[100], help="sizes also reported from SQLite")
    p.add_argument("--catalog-sizes", type=int, nargs="*", default=[100], help="sizes also reported from catalogs")
    p.add_argument("--source", type=Path, default=None, help="a campaign directory with real catalogs")
    p.add_argument("--before", type=Path, default=Path("/work/main"),
                   help="the code to compare on catalogs (a checkout whose balrog_runner predates summaries)")
    args = p.parse_args()
    sources = real_summaries(source_campaign(args.source))
    rng = np.random.default_rng(1)
    rows = []
    for size in sorted(args.sizes):
        where = replicate(sources, size, args.objects, CACHE / f"report-{size}x{args.objects}", rng)
        rows.append(("summaries", size, size * args.objects,
                     *run_report([str(where), "--report-dir", str(where / "report")], ROOT)))
    for size in sorted(args.catalog_sizes):
        cats = replicate_catalogs(sources, size, CACHE / f"report-catalogs-{size}")
        n_obj = sum(fitsio.FITS(str(t))[1].get_nrows() for t in cats.glob("*/catalogs/*_truth.fits"))
        for old in cats.glob("*/catalogs/*_summary.fits"):
            old.unlink()
        if args.before.is_dir() and not (args.before / "balrog_runner" / "node" / "summary.py").exists():
            rows.append(("catalogs (before)", size, n_obj,
                         *run_report([str(cats), "--report-dir", str(cats / "report-before")], args.before)))
        rows.append(("catalogs (fallback)", size, n_obj,
                     *run_report([str(cats), "--report-dir", str(cats / "report")], ROOT)))
        add_summaries(cats)
        rows.append(("summaries (same)", size, n_obj,
                     *run_report([str(cats), "--report-dir", str(cats / "report-summaries")], ROOT)))
        if size in args.db_sizes:
            db = cats / "bench.sqlite"
            if not db.exists():
                subprocess.run([str(BIN / "balrog-push"), str(cats), "--db", f"sqlite:///{db}", "--dbname", "bench",
                                "--campaign", "*", "-q"], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            rows.append(("database (SQLite)", size, n_obj,
                         *run_report([str(cats), "--source", "db", "--db", f"sqlite:///{db}", "--dbname", "bench",
                                      "--report-dir", str(cats / "report-db")], ROOT)))
    load = os.getloadavg()[0]
    print(f"\n(load average {load:.1f} on {os.cpu_count()} CPUs at the end; CPU seconds are less sensitive to it)")
    print(f"{'path':<22}{'realizations':>13}{'objects':>13}{'wall s':>9}{'CPU s':>9}{'CPU s/1000 real':>17}"
          f"{'peak RSS MiB':>14}{'exit':>6}")
    for name, size, n_obj, secs, cpu, rss, code in rows:
        print(f"{name:<22}{size:>13,}{n_obj:>13,}{secs:>9.1f}{cpu:>9.1f}{1000 * cpu / size:>17.1f}{rss:>14.0f}"
              f"{code:>6}")


if __name__ == "__main__":
    main()
