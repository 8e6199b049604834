"""Benchmark one tile through the node runner: seconds per realization by stage, and nosim once per tile.

Usage (from the repository root)::

    .venv/bin/python benchmarks/tile.py                       # 4096^2, 1000 objects, 2 realizations
    .venv/bin/python benchmarks/tile.py --workdir /tmp/bt --keep   # keep the tile; a 2nd run reuses it
    .venv/bin/python benchmarks/tile.py --size 1024 --ngal 200     # quick check

What it does:

1. makes a synthetic DESDM-like tile (``synth.make_synthetic_tile``: g r i z Y + det, real
   PSFEx models, fpacked) in ``<workdir>/archive/<TILE>``, or reuses one of the right size
   made by an earlier run with the same ``--workdir``; its time is reported separately;
2. writes ``ngal * realizations`` positions in the tile's footprint (``geometry.cutout_tile``);
3. runs the real node runner (``runner.run_tiles``) with ``ppn = 1`` and its pool replaced by
   an in-process loop: realizations run one after the other in this process, so each stage's
   wall time is not inflated by a second worker competing for the CPU, and the probes below
   see every call (the pool forks a process per realization, whose probes the parent would
   never see);
4. prints the tables.

How the time is split (probes wrap functions of this process, nothing else changes):

- **external**: wall time of every ``astromatic.run_program`` call, i.e. the SWarp and
  SExtractor subprocesses from fork to exit (``subprocess.run``);
- **GalSim draw**: wall time inside ``galsim.GSObject.drawImage`` (the FFT/real-space
  rendering of each convolved object into its stamp);
- **own overhead**: everything else in the realization's wall time -- our Python and the
  libraries it calls: building GalSim profiles, evaluating the PSFEx model per object
  (``inject.PsfexGrid.profile``, itemised), Poisson noise, reading and writing images with
  image writes (``inject.write_hdus``, itemised), joining catalogs, matching, writing catalogs,
  scratch clean-up. Target (issue 5): own overhead < 15% of the realization's wall time.

nosim: ``measure.measure_nosim`` is timed when the runner calls it (once per tile);
the per-realization association is ``measure.nosim_for_realization`` (timed in the run)
plus reading the tile's nosim catalog (timed after the run, best of 3). Running nosim per
realization would cost about ``measure_nosim`` each time (SExtractor with ASSOC runs the
same six measurements), so the saving for N realizations is
``N * T_nosim - (T_nosim + N * T_assoc)``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import resource
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import fitsio  # noqa: E402
import galsim  # noqa: E402

from balrog_runner.campaign import config_keys
from balrog_runner.demo import synth
from balrog_runner.injection import draw as inject
from balrog_runner.measurement import astromatic, measure
from balrog_runner.node import layout, pool, realization, runner, settings
from balrog_runner.sky import geometry, positions

TILE = "DES2359+0001"
STAGES = ("inject", "swarp", "sextractor", "catalog", "match", "write")
STAGE_HELP = {
    "inject": "population + GalSim into 5 bands + image I/O",
    "swarp": "riz CHI-MEAN detection image",
    "sextractor": "5 bands dual-image + det on itself",
    "catalog": "join band catalogs (wide) + write",
    "match": "read catalogs + associate sim, nosim",
    "write": "truth / sim / nosim FITS",
}
#: External program (basename) -> the stage it belongs to.
PROGRAM_STAGE = {"swarp": "swarp", "source-extractor": "sextractor", "sex": "sextractor"}

log = logging.getLogger("benchmarks.tile")


# --------------------------------------------------------------------------- probes


class Probes:
    """Wall-clock accumulators keyed by (phase, name); phase is 'fetch', 'nosim' or 'r<j>'."""

    def __init__(self) -> None:
        self.phase = "setup"
        self.seconds: dict[tuple[str, str], float] = defaultdict(float)
        self.calls: dict[tuple[str, str], int] = defaultdict(int)
        self.results: list[realization.RealizationResult] = []
        self.cpu: dict[str, tuple[float, float]] = {}
        self._depth: dict[str, int] = defaultdict(int)
        self._undo: list[tuple[object, str, object]] = []

    def add(self, name: str, seconds: float) -> None:
        self.seconds[(self.phase, name)] += seconds
        self.calls[(self.phase, name)] += 1

    def get(self, phase: str, name: str) -> float:
        return self.seconds.get((phase, name), 0.0)

    def wrap(self, owner: object, attr: str, name: str | None = None, key=None) -> None:
        """Time every call of ``owner.attr`` (outermost call only, if it recurses)."""
        original = getattr(owner, attr)
        label = name or attr

        @functools.wraps(original)
        def timed(*args, **kwargs):
            k = key(args, kwargs) if key else label
            if self._depth[k]:
                return original(*args, **kwargs)
            self._depth[k] += 1
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.add(k, time.perf_counter() - t0)
                self._depth[k] -= 1

        self._undo.append((owner, attr, original))
        setattr(owner, attr, timed)

    def install(self) -> None:
        def in_process(fn, tasks, workers):  # pool.run_tasks without the fork (see step 3)
            return (fn(task) for task in tasks)

        self._undo.append((pool, "run_tasks", pool.run_tasks))
        pool.run_tasks = in_process

        def program_key(args, kwargs):
            argv = args[0] if args else kwargs["argv"]
            return "ext:" + Path(str(argv[0])).name.lower()

        self.wrap(astromatic, "run_program", key=program_key)
        self.wrap(galsim.GSObject, "drawImage", "galsim_draw")
        self.wrap(inject.PsfexGrid, "profile", "psfex_profile")  # the PSF of every object (stepk/maxk per cell)
        self.wrap(galsim.Image, "addNoise", "poisson_noise")
        self.wrap(inject, "write_hdus", "image_write")
        self.wrap(measure, "measure_nosim", "measure_nosim")
        self.wrap(measure, "nosim_for_realization", "nosim_assoc")
        self._wrap_phase(runner, "fetch_inputs", lambda args, kwargs: "fetch")
        self._wrap_phase(runner, "run_realization", lambda args, kwargs: f"r{args[2].number}", keep=True)
        # measure_nosim runs inside fetch_inputs: give it its own phase.
        inner = measure.measure_nosim

        @functools.wraps(inner)
        def nosim_phase(*args, **kwargs):
            outer, self.phase = self.phase, "nosim"
            try:
                return inner(*args, **kwargs)
            finally:
                self.phase = outer

        self._undo.append((measure, "measure_nosim", inner))
        measure.measure_nosim = nosim_phase

    def _wrap_phase(self, owner: object, attr: str, phase_of, keep: bool = False) -> None:
        original = getattr(owner, attr)

        @functools.wraps(original)
        def phased(*args, **kwargs):
            phase = phase_of(args, kwargs)
            outer, self.phase = self.phase, phase
            cpu0 = _cpu()
            t0 = time.perf_counter()
            try:
                out = original(*args, **kwargs)
            finally:
                self.add("wall", time.perf_counter() - t0)
                cpu1 = _cpu()
                self.cpu[phase] = (cpu1[0] - cpu0[0], cpu1[1] - cpu0[1])
                self.phase = outer
            if keep:
                self.results.append(out)
            return out

        self._undo.append((owner, attr, original))
        setattr(owner, attr, phased)

    def uninstall(self) -> None:
        while self._undo:
            owner, attr, original = self._undo.pop()
            setattr(owner, attr, original)


def _cpu() -> tuple[float, float]:
    """(this process's CPU seconds, waited-for children's CPU seconds)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, ch.ru_utime + ch.ru_stime


# --------------------------------------------------------------------------- set-up


def tile_ready(archive: Path, size: int) -> bool:
    """The archive holds a complete synthetic tile of ``size`` pixels (g r i z Y det + PSFs)."""
    for key in (*synth.DEFAULT_BANDS, measure.DET):
        image = archive / f"{TILE}_{key}.fits.fz"
        if not image.is_file() or not (archive / f"{TILE}_{key}_psfcat.psf").is_file():
            return False
        try:
            with fitsio.FITS(str(image)) as f:
                dims = f[1].get_dims()
        except OSError:
            return False
        if tuple(dims) != (size, size):
            return False
    return True


def make_campaign(work: Path, args: argparse.Namespace) -> settings.RunSettings:
    posdir, outdir = work / "pos", work / "out"
    for d in (posdir, outdir):
        shutil.rmtree(d, ignore_errors=True)
    cut = geometry.cutout_tile(geometry.des_tile(TILE), args.size, margin=20)
    params = positions.PositionParams(seed=args.seed, pertile=args.ngal * args.realizations)
    positions.prepare_outdir(posdir, params, overwrite=True)
    positions.write_tile_positions(cut, params, posdir)
    run = config_keys.default_run()
    run.update(
        dbname="bench", outdir=str(outdir), pos=str(posdir), jobdir=str(work / "jobs"), ngal=args.ngal,
        realizations=args.realizations, ppn=1, push=False,
        **{"fetch-root": str(work / "archive"), "fetch-layout": "plain",
           "sex-param": str(config_keys.config_dir() / f"{args.param}.param"),
           "intermediate-clean": True, "tile-clean": False},
    )
    return settings.settings_from_config(run, config_keys.default_balrog(), config_keys.default_db())


# --------------------------------------------------------------------------- report


def pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:5.1f}%" if whole > 0 else "    -"


def report(args, probes: Probes, settings: settings.RunSettings, synth_seconds: float | None,
           load: tuple[float, float]) -> bool:
    results = sorted(probes.results, key=lambda r: r.number)
    bad = [r for r in results if not r.ok]
    if bad or not results:
        for r in bad:
            print(f"realization {r.number} FAILED: {r.error}")
        return False
    n = len(results)
    phases = [f"r{r.number}" for r in results]

    def mean(values) -> float:
        values = list(values)
        return sum(values) / len(values)

    wall = mean(r.seconds for r in results)
    ext = {s: mean(sum(v for (p, k), v in probes.seconds.items()
                       if p == ph and k.startswith("ext:") and PROGRAM_STAGE.get(k[4:]) == s)
                   for ph in phases) for s in STAGES}
    draw = mean(probes.get(ph, "galsim_draw") for ph in phases)
    stage_wall = {s: mean(r.stages.get(s, 0.0) for r in results) for s in STAGES}
    other = wall - sum(stage_wall.values())

    print()
    print(f"Tile {TILE}: {args.size} x {args.size} px, bands {','.join(settings.bands)} + det, "
          f"ngal {args.ngal}, {n} realization(s), SExtractor param {args.param}.param, ppn 1 "
          f"(realizations in sequence, in this process)")
    print(f"load average before / after: {load[0]:.2f} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs "
          "(other jobs inflate every number)")
    if synth_seconds is not None:
        print(f"synthetic tile creation (not part of a realization): {synth_seconds:.1f} s")
    else:
        print("synthetic tile creation: reused the tile already in --workdir")
    print()
    print("1. Wall time per realization (mean over realizations), seconds")
    head = f"{'stage':<11} {'wall':>7} {'share':>6} {'external':>8} {'GalSim':>7} {'own':>7} {'own/real':>8}  what"
    print(head)
    print("-" * len(head))
    own_total = 0.0
    for s in STAGES:
        g = draw if s == "inject" else 0.0
        own = stage_wall[s] - ext[s] - g
        own_total += own
        print(f"{s:<11} {stage_wall[s]:7.2f} {pct(stage_wall[s], wall):>6} {ext[s]:8.2f} {g:7.2f} {own:7.2f} "
              f"{pct(own, wall):>8}  {STAGE_HELP[s]}")
    own_total += other
    print(f"{'(other)':<11} {other:7.2f} {pct(other, wall):>6} {0.0:8.2f} {0.0:7.2f} {other:7.2f} "
          f"{pct(other, wall):>8}  scratch set-up / clean-up, scratch size")
    ext_total = sum(ext.values())
    print("-" * len(head))
    print(f"{'total':<11} {wall:7.2f} {pct(wall, wall):>6} {ext_total:8.2f} {draw:7.2f} {own_total:7.2f} "
          f"{pct(own_total, wall):>8}")
    per = ", ".join(f"r{r.number} {r.seconds:.1f} s" for r in results)
    print(f"per realization: {per}")
    cpu = [probes.cpu.get(ph, (0.0, 0.0)) for ph in phases]
    busy = mean((c[0] + c[1]) / r.seconds for c, r in zip(cpu, results, strict=True))
    print(f"CPU / wall during realizations: {busy:.2f} (below ~0.95 means waiting on disk or on other jobs)")
    inj_own = stage_wall["inject"] - draw
    psf = mean(probes.get(ph, "psfex_profile") for ph in phases)
    noise = mean(probes.get(ph, "poisson_noise") for ph in phases)
    wr = mean(probes.get(ph, "image_write") for ph in phases)
    ndraw = mean(probes.calls.get((ph, "galsim_draw"), 0) for ph in phases)
    print(f"inject own {inj_own:.2f} s of which: PSFEx model per object {psf:.2f} s, Poisson noise {noise:.2f} s, "
          f"injected image write (fitsio) {wr:.2f} s, rest (population, profiles, image read, stamp adds) "
          f"{inj_own - psf - noise - wr:.2f} s; {ndraw:.0f} drawImage calls, "
          f"{1000 * draw / max(ndraw, 1):.1f} ms each")
    own_share = own_total / wall
    verdict = "MET" if own_share < 0.15 else "NOT MET"
    print(f"target: own overhead < 15% of the realization -> {100 * own_share:.1f}%: {verdict} "
          f"(external {pct(ext_total, wall).strip()}, GalSim draw {pct(draw, wall).strip()})")

    print()
    print("2. nosim: once per tile vs once per realization")
    t_nosim = probes.get("nosim", "measure_nosim")
    t_nosim_ext = sum(v for (p, k), v in probes.seconds.items() if p == "nosim" and k.startswith("ext:"))
    t_fetch = probes.get("fetch", "wall") - t_nosim
    t_assoc = mean(probes.get(ph, "nosim_assoc") for ph in phases)
    nosim_cat = layout.nosim_catalog_path(settings.outdir, TILE)
    reads = []
    for _ in range(3):
        t0 = time.perf_counter()
        nosim_rows = fitsio.read(str(nosim_cat), ext=1)
        reads.append(time.perf_counter() - t0)
    t_read = min(reads)
    per_real = t_assoc + t_read
    print(f"measure_nosim once for the tile: {t_nosim:.2f} s ({t_nosim_ext:.2f} s in SExtractor, "
          f"{len(nosim_rows)} detections); fetch + funpack before it: {t_fetch:.2f} s")
    print(f"association per realization: {per_real * 1000:.1f} ms (nosim_for_realization {t_assoc * 1000:.1f} ms "
          f"+ read nosim catalog {t_read * 1000:.1f} ms)")
    head = f"{'N':>5} {'per realization':>16} {'once per tile':>14} {'saved':>9} {'saved/real':>10}"
    print(head)
    counts = sorted({n, 1, 10, 100, 1000} - {0})
    for k in counts:
        per = k * t_nosim
        once = t_nosim + k * per_real
        print(f"{k:>5} {per:15.1f}s {once:13.1f}s {per - once:8.1f}s {pct((per - once) / k, wall + t_nosim):>10}")
    print(f"('saved/real' is the saving per realization relative to a realization that also ran nosim: "
          f"{wall + t_nosim:.1f} s)")
    status = json.loads((layout.tile_dir(settings.outdir, TILE) / layout.STATUS_FILE).read_text())
    print(f"status.json: nosim_seconds {status.get('nosim_seconds', 0):.2f} (fetch + nosim), "
          f"peak scratch {status.get('peak_scratch_bytes', 0) / 1e6:.0f} MB")
    return True


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=4096, help="tile side in pixels (0.263 arcsec/pixel); default 4096")
    p.add_argument("--ngal", type=int, default=1000, help="objects injected per realization; default 1000")
    p.add_argument("--realizations", type=int, default=2, help="realizations to run; default 2")
    p.add_argument("--param", choices=("light", "default"), default="light",
                   help="SExtractor parameter file config/<param>.param; default light")
    p.add_argument("--workdir", type=Path, default=None,
                   help="working directory (tile in archive/, campaign in pos/ and out/); a synthetic tile "
                        "of the right size found there is reused; default a temporary directory")
    p.add_argument("--keep", action="store_true",
                   help="keep the working directory (a temporary one, or out/ and pos/ of --workdir)")
    p.add_argument("--seed", type=int, default=3, help="seed of the synthetic tile and of the positions")
    p.add_argument("-v", "--verbose", action="store_true", help="log the runner's INFO messages")
    args = p.parse_args(argv)
    if args.size < 256 or args.ngal < 1 or args.realizations < 1:
        p.error("--size must be >= 256 pixels, --ngal and --realizations >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    temporary = args.workdir is None
    work = Path(tempfile.mkdtemp(prefix="balrog-bench-")) if temporary else args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0], 0.0
    ok = False
    try:
        archive = work / "archive" / TILE
        synth_seconds = None
        if not tile_ready(archive, args.size):
            shutil.rmtree(archive, ignore_errors=True)
            print(f"making a {args.size}^2 synthetic tile in {archive} ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            synth.make_synthetic_tile(TILE, archive, size=args.size, seed=args.seed)
            synth_seconds = time.perf_counter() - t0
        settings = make_campaign(work, args)
        load = os.getloadavg()[0], 0.0
        probes = Probes()
        probes.install()
        print(f"running {args.realizations} realization(s) of {args.ngal} objects ...", file=sys.stderr, flush=True)
        try:
            code = runner.run_tiles(settings, [TILE])
        finally:
            probes.uninstall()
        if code not in (runner.EXIT_OK, runner.EXIT_NOT_PUSHED):
            print(f"runner exit code {code}; see {layout.tile_dir(settings.outdir, TILE) / (TILE + '.log')}")
        ok = report(args, probes, settings, synth_seconds, load)
    finally:
        if args.keep:
            print(f"working directory kept: {work}", file=sys.stderr)
        elif temporary:
            shutil.rmtree(work, ignore_errors=True)
        else:
            for d in ("out", "pos", "jobs"):
                shutil.rmtree(work / d, ignore_errors=True)
            print(f"synthetic tile kept for the next run: {work / 'archive'}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
