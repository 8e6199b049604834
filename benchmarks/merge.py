"""balrog-merge at campaign scale: wall time and peak memory against the number of realizations.

The source is a real campaign (``balrog-demo``: one 1024^2 tile, DESDM's default.param, so
the sim and nosim catalogs carry their 797 measured columns), made once under
``--cache``. Its realizations are replicated, renumbered, into tiles of ``N`` realizations
each of ``--objects`` injected objects (the real rows repeated with new ``balrog_index``:
real columns and values, DES-like sizes: a 10000^2 tile holds 5,000-8,500 per realization).
Then, for each ``N``, ``balrog-merge`` runs as its own process (the peak resident memory is
that process's ``ru_maxrss``, from ``wait4``):

- ``tile``: the tile's own ``<TILE>_merged.fits``, read back and every realization rebuilt
  (what ``run['merge-tile']`` does before deleting the catalogs);
- ``campaign``: ``--tiles`` such tiles into one HDF5 / Parquet / FITS file.

A bounded merge holds one realization (and 32 MiB chunks) at a time: its peak memory must
not grow with ``N``.

    .venv/bin/python benchmarks/merge.py [--realizations 25,100,400] [--objects 1500] [--tiles 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import fitsio  # noqa: E402
import numpy as np  # noqa: E402

from balrog_runner.merge import formats  # noqa: E402

TILE = "DES2359+0001"
KINDS = ("truth", "match", "sim", "nosim")


def source_campaign(cache: Path) -> Path:
    """The demo campaign's tile directory (made once: about 4 minutes)."""
    tile = cache / "campaign" / TILE
    if not (tile / "catalogs").is_dir():
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        subprocess.run([sys.executable, "-m", "balrog_runner.cli.demo", "--workdir", str(cache), "--tile", TILE,
                        "--size", "1024", "--ngal", "150", "--realizations", "2", "-q"], check=True, env=env)
    return tile


def _read(path: Path) -> tuple[np.ndarray, list[dict]]:
    with fitsio.FITS(str(path)) as f:
        hdu = f[1]
        data = hdu.read() if hdu.get_nrows() else np.zeros(0, dtype=formats.fits_rec_dtype(hdu))
        cards = [r for r in hdu.read_header().records() if r["name"] not in formats.STRUCTURAL
                 and not r["name"].startswith(formats._STRUCTURAL_PREFIXES)]
    return data, cards


def replicate(src: Path, dest: Path, tile: str, n_real: int, objects: int) -> tuple[int, int]:
    """``n_real`` realizations in ``dest/<tile>/catalogs``, each the real one's rows repeated to about
    ``objects`` objects (new ``balrog_index``); returns (bytes written, objects per realization)."""
    originals = {k: _read(src / "catalogs" / f"{TILE}_r0000_{k}.fits") for k in KINDS}
    copies = max(1, round(objects / len(originals["truth"][0])))
    cat = dest / tile / "catalogs"
    cat.mkdir(parents=True, exist_ok=True)
    size = 0
    for j in range(n_real):
        shift = (j + 1) * 10**9
        for kind, (data, cards) in originals.items():
            parts = []
            for c in range(copies):
                part = data.copy()
                if "balrog_index" in (part.dtype.names or ()):
                    part["balrog_index"] = np.where(part["balrog_index"] >= 0,
                                                    part["balrog_index"] + shift + c * 10**6, -1)
                for name, value in (("realization", j), ("tilename", tile), ("indexstart", shift)):
                    if name in (part.dtype.names or ()):
                        part[name] = value
                parts.append(part)
            path = cat / f"{tile}_r{j:04d}_{kind}.fits"
            with fitsio.FITS(str(path), "rw", clobber=True) as f:
                f.write(np.concatenate(parts), extname=kind.upper())
                for rec in cards:
                    value = {"REALIZ": j, "INDSTART": shift, "TILENAME": tile}.get(rec["name"], rec["value"])
                    f[-1].write_key(rec["name"], value)
            size += path.stat().st_size
    return size, copies * len(originals["truth"][0])


def run_merge(args: list[str]) -> tuple[float, float]:
    """(seconds, peak resident MiB) of one balrog-merge process (its own ``ru_maxrss``, from ``wait4``)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "balrog_runner.cli.merge", "-q", *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status):
            err.seek(0)
            raise SystemExit(f"balrog-merge {' '.join(args)} failed: {err.read().strip()[-500:]}")
    return seconds, usage.ru_maxrss / 1024


def du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--realizations", default="25,100,400", help="realizations per tile, comma-separated")
    ap.add_argument("--objects", type=int, default=1500, help="injected objects per realization")
    ap.add_argument("--tiles", type=int, default=2, help="tiles in the campaign file")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/bench-cache/merge-demo"))
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/bench-cache/merge-work"))
    ap.add_argument("--formats", default="hdf5,parquet,fits", help="campaign-file formats")
    args = ap.parse_args()
    src = source_campaign(args.cache)
    rows = []
    for n in [int(v) for v in args.realizations.split(",")]:
        work = args.workdir / f"n{n}"
        shutil.rmtree(work, ignore_errors=True)
        tiles = [TILE] + [f"DES0{k:03d}+0001" for k in range(2, args.tiles + 1)]
        made = [replicate(src, work, t, n, args.objects) for t in tiles]
        size, per_real = sum(m[0] for m in made), made[0][1]
        t, rss = run_merge([str(work / TILE)])
        rows.append((n, 1, "tile", "fits", size / len(tiles), t, rss, du(work / TILE / f"{TILE}_merged.fits")))
        for fmt in args.formats.split(","):
            out = work / f"campaign{formats.SUFFIXES[fmt]}"
            t, rss = run_merge([str(work), "--output", str(out)])
            rows.append((n, len(tiles), "campaign", fmt, size, t, rss, du(out)))
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nbalrog-merge, {per_real} objects per realization (real demo catalogs, 797 measured columns)")
    print(f"{'real./tile':>10} {'tiles':>5} {'output':>9} {'format':>8} {'input MB':>9} {'seconds':>8} "
          f"{'s/real.':>7} {'peak RSS MiB':>12} {'output MB':>9}")
    for n, k, mode, fmt, size, t, rss, out in rows:
        print(f"{n:>10} {k:>5} {mode:>9} {fmt:>8} {size / 1e6:>9.1f} {t:>8.1f} {t / (n * k):>7.3f} {rss:>12.0f} "
              f"{out / 1e6:>9.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
