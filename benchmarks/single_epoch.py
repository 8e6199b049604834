"""Benchmark one realization in coadd and in single-epoch mode, side by side, on one synthetic survey.

Usage (from the repository root)::

    .venv/bin/python benchmarks/single_epoch.py                          # 4096^2, 4 and 10 exposures
    .venv/bin/python benchmarks/single_epoch.py --size 1024 --ccd 512 1024 --ngal 100   # quick check
    .venv/bin/python benchmarks/single_epoch.py --size 10000 --exposures 10              # a full tile (long)
    .venv/bin/python benchmarks/single_epoch.py --exposures 2 4 --survey-exposures 10   # part of a 10-exposure survey

What it does:

1. makes (or reuses, under ``--workdir``, default /tmp/bench-cache/single-epoch) a synthetic
   single-epoch survey of the tile (``demo.synth_se``: bands r i z, ``max(--exposures)``
   dithered exposures of DECam CCDs, 2048 x 4096 at 0.263", a real PSFEx model per CCD) and its
   coadd (the re-coadd of the untouched images, DESDM layout, its own PSFEx models); with
   ``--survey-exposures N`` the survey is planned with N exposures per band (its sky, dithers
   and noise per exposure) but only the first ``max(--exposures)`` are rendered and coadded
   (``make_se_survey(made_exposures=...)``), in its own folder: the same CCD files as the
   whole survey, at a fraction of the rendering time (about 80 CPU s per 2048 x 4096 CCD);
2. writes ``--ngal`` positions in the tile (``geometry.cutout_tile``);
3. runs the real node runner once per case, each in its own process (so that its peak memory
   is its own): **coadd** (inject into the survey's coadd), and **se-N** for each N of
   ``--exposures`` (the first N exposures of every band of the same survey); realizations run
   in that process (``pool.run_tasks`` replaced by a loop), one realization per case;
4. prints the stages of the realization (seconds: inject = GalSim and image I/O, swarp_<band>
   = the band's re-coadd, swarp = the riz detection image, sextractor, catalog, match, write),
   nosim once per tile, peak memory (this process; the largest SWarp and SExtractor run, from
   ``/usr/bin/time``), the realization's peak scratch on disk (sampled every 0.1 s, SWarp's
   resampled temporaries included), and an extrapolation to a full tile with 10 exposures per
   band in g r i z Y.

The extrapolation to a full tile (10000^2, 5 bands, the same density of objects): the
re-coadd's time per band is fitted as ``a * input megapixels + b`` from the se-N cases (``a``
is per input pixel resampled, ``b`` the rest at this output size, scaled by the output area);
a full DES tile has about 20 CCDs of each exposure on it (DESIGN.md section 12: 100-200 CCD
images per band), i.e. 1680 input megapixels per band with 10 exposures. The inject stage is
fitted as ``c + d * exposures`` (``d``: one exposure's draws and CCD image I/O) and scaled by
area and bands; the det image by area; SExtractor and the catalogs by area and images
(5 bands + det). The coadd case is scaled the same way, side by side.
"""

from __future__ import annotations

import argparse
import dataclasses
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

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from balrog_runner.campaign import config_keys  # noqa: E402
from balrog_runner.demo.synth_se import make_se_survey  # noqa: E402
from balrog_runner.inputs.single_epoch import SESet, read_se_set, write_se_set  # noqa: E402
from balrog_runner.node import layout, pool, runner, settings  # noqa: E402
from balrog_runner.sky import geometry, positions  # noqa: E402

TILE = "DES2359+0001"
BANDS = ("r", "i", "z")
#: A full DES tile: CCDs of one exposure on it (DESIGN.md section 12: ~20), pixels of a DECam CCD.
FULL_TILE_CCDS_PER_EXPOSURE = 20
DECAM_CCD_PIXELS = 2048 * 4096
FULL_TILE_BANDS = 5
log = logging.getLogger("benchmarks.single_epoch")


def subset(se_set: SESet, n_exposures: int) -> SESet:
    """The first ``n_exposures`` exposures of every band."""
    images = {}
    for band, entries in se_set.images.items():
        keep = sorted({e.expnum for e in entries})[:n_exposures]
        images[band] = [e for e in entries if e.expnum in keep]
    return dataclasses.replace(se_set, images=images)


def timed_program(path: Path, program: str, log_file: Path) -> Path:
    """A wrapper recording each run's peak RSS (kB) and wall seconds with /usr/bin/time."""
    path.write_text(f'#!/bin/sh\nexec /usr/bin/time -a -o "{log_file}" -f "%M %e $PWD" {program} "$@"\n')
    path.chmod(0o755)
    return path


class DiskSampler(threading.Thread):
    """The largest size of a directory tree seen while running (every ``interval`` s)."""

    def __init__(self, root: Path, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.root, self.interval, self.peak, self._done = root, interval, 0, threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, layout.dir_bytes(self.root))
            time.sleep(self.interval)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


def run_case(args: argparse.Namespace) -> dict:
    """One case in this process; returns its numbers (printed as JSON by ``--case``)."""
    work = Path(args.workdir)
    case = args.case
    out = work / "runs" / case
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    rss_log = out / "programs.log"
    swarp = timed_program(out / "swarp", "SWarp", rss_log)
    sex = timed_program(out / "sex", "source-extractor", rss_log)
    run = config_keys.default_run()
    run.update(dbname="bench", outdir=str(out / "out"), pos=str(work / "pos"), jobdir=str(out / "jobs"), ngal=args.ngal,
               realizations=1, ppn=1, push=False, bands=list(BANDS), swarp=str(swarp), sex=str(sex),
               **{"fetch-root": str(work / "archive"), "fetch-layout": "plain", "tile-clean": False,
                  "sex-param": str(config_keys.config_dir() / f"{args.param}.param"),
                  "inject-into": "coadd" if case == "coadd" else "single-epoch"})
    s = settings.settings_from_config(run, config_keys.default_balrog(), config_keys.default_db())
    n_inputs = {}
    if case != "coadd":
        se = subset(read_se_set(work / "archive" / TILE / "se" / "se_set.json"), int(case.split("-")[1]))
        write_se_set(layout.se_set_file(s.outdir, TILE), se)
        n_inputs = {b: len(se.band(b)) for b in BANDS}
    pool.run_tasks = lambda fn, tasks, workers: (fn(t) for t in tasks)  # in process (see the docstring)
    scratch = layout.tile_dir(s.outdir, TILE) / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    sampler = DiskSampler(scratch)
    sampler.start()
    t0 = time.perf_counter()
    code = runner.run_tiles(s, [TILE])
    wall = time.perf_counter() - t0
    peak_scratch = sampler.stop()
    status = json.loads((layout.tile_dir(s.outdir, TILE) / "status.json").read_text())
    entry = status["realizations"]["0"]
    runs = [line.split(maxsplit=2) for line in rss_log.read_text().splitlines() if line.strip()]
    real = [r for r in runs if "/scratch/" in r[2]]
    swarp_rss = max((int(r[0]) for r in real if "/coadd-" in r[2] or "/swarp-" in r[2]), default=0)
    sex_rss = max((int(r[0]) for r in real if "/sex-" in r[2]), default=0)
    return {"case": case, "exit": code, "wall": wall, "realization": entry["seconds"], "stages": entry["stages"],
            "nosim": status.get("nosim_seconds", 0.0), "state": entry["state"], "error": entry.get("error"),
            "max_rss_self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "max_rss_swarp_kb": swarp_rss, "max_rss_sex_kb": sex_rss, "peak_scratch": peak_scratch,
            "inputs": n_inputs}


def survey_exposures(args: argparse.Namespace) -> tuple[int, int]:
    """(exposures rendered, exposures the survey is planned with) per band."""
    made = max(args.exposures)
    planned = args.survey_exposures or made
    if planned < made:
        raise SystemExit(f"--survey-exposures {planned} is fewer than the largest case's {made} exposures")
    return made, planned


def prepare(args: argparse.Namespace) -> None:
    work = Path(args.workdir)
    t0 = time.perf_counter()
    made, planned = survey_exposures(args)
    survey = make_se_survey(TILE, work / "archive" / TILE, tile_size=args.size, n_exposures=planned,
                            bands=BANDS, ccd_shape=tuple(args.ccd), workers=args.workers, seed=21,
                            made_exposures=made if made < planned else None)
    log.info("survey ready in %.0f s (%d, %d, %d CCD images in r, i, z)", time.perf_counter() - t0,
             *(len(survey.se_set.band(b)) for b in BANDS))
    posdir = work / "pos"
    shutil.rmtree(posdir, ignore_errors=True)
    cut = geometry.cutout_tile(geometry.des_tile(TILE), args.size, margin=20)
    params = positions.PositionParams(seed=3, pertile=args.ngal)
    positions.prepare_outdir(posdir, params, overwrite=True)
    positions.write_tile_positions(cut, params, posdir)


def report(results: list[dict], args: argparse.Namespace) -> None:
    stages = ["inject", *[f"swarp_{b}" for b in BANDS], "swarp", "sextractor", "catalog", "match", "write"]
    cases = [r["case"] for r in results]
    print(f"\none realization of {args.ngal} objects on a {args.size}^2 tile, bands {' '.join(BANDS)}, "
          f"SExtractor {args.param}.param, one process (seconds)")
    print(f"{'stage':<14}" + "".join(f"{c:>12}" for c in cases))
    for st in stages:
        print(f"{st:<14}" + "".join(f"{r['stages'].get(st, 0.0):>12.1f}" for r in results))
    print(f"{'realization':<14}" + "".join(f"{r['realization']:>12.1f}" for r in results))
    print(f"{'nosim (once)':<14}" + "".join(f"{r['nosim']:>12.1f}" for r in results))
    print(f"{'CCD images':<14}" + "".join(f"{sum(r['inputs'].values()) if r['inputs'] else 0:>12d}" for r in results))
    print(f"{'peak RSS self':<14}" + "".join(f"{r['max_rss_self_kb'] / 1024:>10.0f}MB" for r in results))
    print(f"{'peak RSS SWarp':<14}" + "".join(f"{r['max_rss_swarp_kb'] / 1024:>10.0f}MB" for r in results))
    print(f"{'peak RSS SEx':<14}" + "".join(f"{r['max_rss_sex_kb'] / 1024:>10.0f}MB" for r in results))
    print(f"{'peak scratch':<14}" + "".join(f"{r['peak_scratch'] / 2**20:>10.0f}MB" for r in results))
    for r in results:
        if r["state"] != "done":
            print(f"{r['case']}: realization {r['state']}: {r['error']}")
    se = [r for r in results if r["case"] != "coadd" and r["state"] == "done"]
    coadd = next((r for r in results if r["case"] == "coadd"), None)
    if len(se) < 1 or coadd is None:
        return
    ccd_mpix = args.ccd[0] * args.ccd[1] / 1e6
    points = [(sum(r["inputs"].values()) * ccd_mpix / len(BANDS),
               sum(r["stages"].get(f"swarp_{b}", 0.0) for b in BANDS) / len(BANDS)) for r in se]
    if len(points) >= 2:
        (x0, y0), (x1, y1) = points[0], points[-1]
        a = (y1 - y0) / (x1 - x0) if x1 != x0 else y1 / x1
        b = y0 - a * x0
    else:
        a, b = points[0][1] / points[0][0], 0.0
    full_inputs = 10 * FULL_TILE_CCDS_PER_EXPOSURE * DECAM_CCD_PIXELS / 1e6
    area = (10000 / args.size) ** 2
    swarp_band = a * full_inputs + b * area
    last = se[-1]
    # drawing: inject = c + d * exposures (c: population, truth, per band; d: one exposure's
    # draws and CCD image I/O), both per object of this run's density, scaled by area and bands
    inj = [(int(r["case"].split("-")[1]), r["stages"]["inject"]) for r in se]
    if len(inj) >= 2 and inj[-1][0] != inj[0][0]:
        d = (inj[-1][1] - inj[0][1]) / (inj[-1][0] - inj[0][0])
        c = inj[-1][1] - d * inj[-1][0]
    else:
        c, d = 0.0, inj[-1][1] / inj[-1][0]
    per_draw = d / (args.ngal * len(BANDS))
    full_ngal = args.ngal * area
    # per band and per area: SExtractor, catalog, match, write (5 bands + det instead of 3 + det)
    band_scale = area * (FULL_TILE_BANDS + 1) / (len(BANDS) + 1)
    measure_stages = ("sextractor", "catalog", "match", "write")

    def full_tile(r: dict, draw: float, recoadds: float) -> tuple[float, float]:
        rest = sum(r["stages"].get(st, 0.0) for st in measure_stages) * band_scale
        return draw + recoadds + r["stages"].get("swarp", 0.0) * area + rest, rest

    coadd_draw = coadd["stages"].get("inject", 0.0) / (args.ngal * len(BANDS)) * full_ngal * FULL_TILE_BANDS
    coadd_full, coadd_rest = full_tile(coadd, coadd_draw, 0.0)
    se_draw = (c + 10 * d) * area * FULL_TILE_BANDS / len(BANDS)
    se_full, se_rest = full_tile(last, se_draw, FULL_TILE_BANDS * swarp_band)
    print(f"\nre-coadd of one band: {a:.3f} s per input megapixel + {b:.1f} s at {args.size}^2 "
          f"(fitted on {', '.join(r['case'] for r in se)}); inject {c:.1f} s + {d:.1f} s per exposure, "
          f"i.e. {1e3 * per_draw:.2f} ms per object and exposure (drawing and CCD image I/O)")
    print(f"full tile (10000^2, {full_ngal:.0f} objects = this run's density, {FULL_TILE_BANDS} bands, "
          f"single-epoch: 10 exposures of ~{FULL_TILE_CCDS_PER_EXPOSURE} CCDs per band = {full_inputs:.0f} input "
          f"megapixels per band), seconds per realization, extrapolated:")
    print(f"{'':<26}{'coadd':>10}{'single-epoch':>14}")
    print(f"{'draw (inject)':<26}{coadd_draw:>10.0f}{se_draw:>14.0f}")
    print(f"{'re-coadds (5 bands)':<26}{0:>10.0f}{FULL_TILE_BANDS * swarp_band:>14.0f}")
    print(f"{'det image (SWarp)':<26}{coadd['stages'].get('swarp', 0.0) * area:>10.0f}"
          f"{last['stages'].get('swarp', 0.0) * area:>14.0f}")
    print(f"{'SExtractor + catalogs':<26}{coadd_rest:>10.0f}{se_rest:>14.0f}")
    print(f"{'realization':<26}{coadd_full:>10.0f}{se_full:>14.0f}   ({se_full / coadd_full:.1f}x)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="/tmp/bench-cache/single-epoch")
    parser.add_argument("--size", type=int, default=4096, help="tile side, pixels")
    parser.add_argument("--exposures", type=int, nargs="+", default=[4, 10], help="exposures per band, per case")
    parser.add_argument("--ccd", type=int, nargs=2, default=[2048, 4096], help="CCD size x y, pixels")
    parser.add_argument("--ngal", type=int, default=1000)
    parser.add_argument("--param", default="light", help="SExtractor parameter file in config/ (light or default)")
    parser.add_argument("--survey-exposures", type=int, help="exposures per band the survey is planned with "
                        "(default: the largest of --exposures); only the first max(--exposures) are rendered, "
                        "with the noise per exposure of the planned survey, and the coadd case uses their coadd")
    parser.add_argument("--workers", type=int, default=2, help="processes making the survey")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if not args.case else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s")
    made, planned = survey_exposures(args)
    name = f"{args.size}-{'x'.join(map(str, args.ccd))}" + (f"-first{made}of{planned}" if made < planned else "")
    args.workdir = str(Path(args.workdir).absolute() / name)
    if args.case:
        print(json.dumps(run_case(args)))
        return 0
    prepare(args)
    results = []
    for case in ["coadd", *[f"se-{n}" for n in sorted(args.exposures)]]:
        log.info("case %s ...", case)
        cmd = [sys.executable, __file__, "--case", case, "--workdir", str(Path(args.workdir).parent),
               "--size", str(args.size), "--ngal", str(args.ngal), "--param", args.param,
               "--ccd", *map(str, args.ccd), "--exposures", *map(str, args.exposures),
               *(["--survey-exposures", str(args.survey_exposures)] if args.survey_exposures else [])]
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        log.info("case %s: realization %.1f s", case, results[-1]["realization"])
    report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
