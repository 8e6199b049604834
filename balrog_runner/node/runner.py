"""The node runner: a subjob's tiles in sequence, each tile's realizations in a process pool.

Per tile (:func:`run_tile`):

1. read the tile's position file and split it into realizations of ``ngal`` objects (a
   lattice file, :mod:`.lattice`, already says which rows form each realization);
   realizations whose three catalogs already exist are done (resume after any crash);
2. fetch the images (skipped when present and valid) and measure the untouched images
   once (**nosim**: every band in dual-image mode with the original detection image, and
   the detection image on itself) — the nosim catalog is identical for every realization,
   so each realization only associates it with its own truth positions;
3. run the missing realizations in worker processes (:mod:`.pool`, :func:`run_realization`):
   inject, SWarp the injected r,i,z into a new detection image, SExtractor every band in
   dual-image mode and the detection image on itself, associate with truth, write the
   truth / sim / nosim catalogs atomically;
4. the parent process pushes each finished realization to the database (one writer, one
   transaction per realization) and records its state in ``<outdir>/<TILE>/status.json``;
5. with ``run['merge-tile']``, a completed tile's realizations are merged into
   ``<TILE>/<TILE>_merged.fits`` (:mod:`balrog_runner.merge`) and, once that file reads back
   identical to them, the per-realization catalogs are deleted; from then on the merged file
   is where resume, ``balrog-push`` and the report find the realizations.

A realization that fails (an external program's non-zero exit, a bad input) is recorded
with its reason and the others go on; so is a tile that fails as a whole (its position file,
its download, its nosim run), and the subjob goes on with its next tile. Each failure has a
kind, the exit code of the README's table (2 bad input, 3 program, 5 disk, 6 archive, 1
anything else: :data:`balrog_runner.errors.EXIT_CODES`); the exit code of :func:`run_subjob`
is the worst kind among its units (:func:`balrog_runner.errors.worst_exit_code`), and the
end of the run names each failed tile's reason on the console. Seeds come from each
realization's ``indexstart``, so a re-run (or a run resumed after ``kill -9``) writes
exactly the catalogs an uninterrupted run writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import leftovers, lifetime, provenance
from ..atomic import explain_failure
from ..campaign import identity as campaign_id
from ..errors import (
    EXIT_FAILED,
    EXIT_NOT_PUSHED,
    EXIT_OK,
    BalrogError,
    exit_code_name,
    worst_exit_code,
)
from ..measurement import measure
from . import pool, resources, tilelock
from .layout import (
    catalog_paths,
    existing_catalogs,
    is_complete,
    merged_catalogs,
    nosim_catalog_path,
    scratch_dir,
    tile_dir,
)
from .plan import Realization, plan_for_positions
from .realization import (
    RealizationResult,
    TileInputs,
    load_population,
    read_pyconfig,
    run_realization,
)
from .settings import RunSettings, settings_from_config, sextractor_extra
from .status import read_status, write_status

log = logging.getLogger(__name__)

__all__ = ["EXIT_FAILED", "EXIT_NOT_PUSHED", "EXIT_OK", "TileOutcome", "run_subjob", "run_tile", "run_tiles"]

#: Failed realizations named one by one in a tile's console summary; the rest are counted.
NAMED_FAILURES = 3


# --------------------------------------------------------------------------- tiles


@dataclass
class TileOutcome:
    """What became of one tile: realizations done / failed (reason and exit code) / not pushed,
    or the tile's own failure (``error``, ``error_code``) before or around its realizations."""

    tile: str
    done: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    failed_codes: dict[int, int] = field(default_factory=dict)
    not_pushed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    error: str | None = None
    error_code: int = EXIT_FAILED

    @property
    def exit_code(self) -> int:
        """The worst kind among the tile's failures (errors.SEVERITY); 4 when only pushes are missing."""
        codes = [self.failed_codes.get(j, EXIT_FAILED) for j in self.failed]
        if self.error:
            codes.append(self.error_code)
        if self.not_pushed:
            codes.append(EXIT_NOT_PUSHED)
        return worst_exit_code(codes)

    def reason(self) -> str:
        """One line for the console: the tile's error, else its failed realizations with their reasons."""
        parts = []
        if self.error:
            parts.append(f"{self.error} [exit {self.error_code}: {exit_code_name(self.error_code)}]")
        if self.failed:
            named = [f"realization {j}: {why} [exit {self.failed_codes.get(j, EXIT_FAILED)}: "
                     f"{exit_code_name(self.failed_codes.get(j, EXIT_FAILED))}]"
                     for j, why in sorted(self.failed.items())[:NAMED_FAILURES]]
            more = len(self.failed) - len(named)
            parts.append(f"{len(self.failed)} of {len(self.failed) + len(self.done)} realization(s) failed: "
                         + "; ".join(named) + (f"; and {more} more (see {self.tile}.log)" if more > 0 else ""))
        return "; ".join(parts)


def _fail_tile(outcome: TileOutcome, exc: BaseException, where: Path, what: str = "") -> None:
    """Record ``exc`` as the tile's failure, with its kind (a full disk is a disk error wherever
    it happened); a bug (no BalrogError) is logged with its traceback and is kind 1."""
    err = explain_failure(exc, [where])
    if err is None:
        outcome.error, outcome.error_code = f"{type(exc).__name__}: {exc}", EXIT_FAILED
        log.error("tile %s: %sunexpected error:\n%s", outcome.tile, what, traceback.format_exc())
        return
    outcome.error, outcome.error_code = str(err), err.exit_code
    log.error("tile %s: %s%s", outcome.tile, what, err)


@contextlib.contextmanager
def tile_log(outdir: Path, tile: str) -> Iterator[Path]:
    """Copy every log record to ``<outdir>/<TILE>/<TILE>.log`` while the tile runs."""
    path = tile_dir(outdir, tile) / f"{tile}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        handler.close()


def fetch_inputs(settings: RunSettings, tile: str, positions=None, status=None) -> TileInputs:
    """Fetch (or find) the tile's images and PSFEx models; measure nosim once.

    With ``positions`` (the tile's whole position file) and ``settings.restrict_nosim``,
    nosim model-fits only the detections near one of them (:mod:`..measurement.nosim`).
    Single-epoch campaigns fetch (or find) the tile's file set instead and measure nosim on the
    re-coadd of its untouched CCD images (:mod:`.single_epoch`; ``status`` records the set).
    """
    if settings.single_epoch:
        from .single_epoch import prepare_tile

        images, psfs, se_set = prepare_tile(settings, tile, status if status is not None else {})
        nosim = _measure_nosim_once(settings, tile, images, psfs, positions)
        return TileInputs(images=images, psfs=psfs, nosim_catalog=nosim, se_set=se_set)
    from ..inputs import fetch

    fetch_opts = dict(settings.fetch)
    source = fetch.source_from_options(fetch_opts)
    files = fetch.fetch_tile(
        tile, tile_dir(settings.outdir, tile) / "images", source, bands=settings.image_keys,
        workers=int(fetch_opts.get("workers") or 4), funpack=True, funpack_bin=settings.funpack,
        deadline=float(fetch_opts.get("deadline") or fetch.DEFAULT_FILE_DEADLINE),
        funpack_timeout=settings.program_timeout,
    )
    nosim = _measure_nosim_once(settings, tile, files.images, files.psfs, positions)
    return TileInputs(images=dict(files.images), psfs=dict(files.psfs), nosim_catalog=nosim)


def _measure_nosim_once(settings: RunSettings, tile: str, images, psfs, positions) -> Path:
    """The tile's nosim catalog, measured when it does not exist yet (written atomically)."""
    from ..measurement import nosim as nosim_split

    nosim = nosim_catalog_path(settings.outdir, tile)
    if not nosim.is_file():
        t0 = time.perf_counter()
        nosim.parent.mkdir(parents=True, exist_ok=True)
        pyconfig = read_pyconfig(settings.pyconfig) if settings.pyconfig else None
        fit_near = None
        first = images[settings.bands[0]]  # the truth's x, y come from the first band's WCS
        if (settings.restrict_nosim and positions is not None
                and nosim_split.worth_splitting(len(positions), _image_shape(first))):
            fit_near = nosim_split.pixel_positions(first, positions.ra, positions.dec)
        measure.measure_nosim(images, psfs, nosim, setup=settings.sextractor, workdir=nosim.parent,
                              band_extra=sextractor_extra(pyconfig, settings.bands), fit_near=fit_near,
                              flag_image=(images[measure.DET], measure.MSK_HDU) if settings.det_flag_image else None)
        log.info("tile %s: nosim measured once in %.1f s", tile, time.perf_counter() - t0)
    return nosim


def _image_shape(path: Path) -> tuple[int, int]:
    import fitsio

    with fitsio.FITS(str(path)) as f:
        dims = f[0].get_dims()
    return (int(dims[0]), int(dims[1])) if len(dims) == 2 else (10000, 10000)


def run_tile(settings: RunSettings, tile: str, pusher=None) -> TileOutcome:
    """All realizations of one tile, under the tile's lock (:mod:`tilelock`); never raises.

    A tile another process is running fails here with the holder's pid and host, before
    anything in its directory is touched. Holding the lock, the runner first removes the
    temporaries a killed run left there (:mod:`leftovers`). Whatever fails the tile (a bad
    position file, a download, the nosim run, a full disk, a bug) fails this tile only,
    with its kind (:class:`TileOutcome`), and the subjob goes on with its next tile.
    """
    outcome = TileOutcome(tile)
    where = tile_dir(settings.outdir, tile)
    try:
        lock = tilelock.TileLock.acquire(where, tile)
    except BalrogError as exc:
        err = explain_failure(exc, [where]) or exc
        outcome.error, outcome.error_code = str(err), err.exit_code
        log.error("%s", err)
        return outcome
    try:
        with lock:
            leftovers.remove_leftovers(where)
            with tile_log(settings.outdir, tile):
                try:
                    _run_tile_locked(settings, tile, outcome, pusher)
                except (lifetime.Terminated, KeyboardInterrupt):
                    # stopped: the pool's workers are gone (pool._stop_workers); what they could not
                    # remove themselves goes now, while the lock still says no one else is writing here
                    _remove_unfinished_scratch(settings.outdir, tile)
                    leftovers.remove_leftovers(where)
                    raise
                except Exception as exc:  # noqa: BLE001 - in the tile log: one tile's failure stops no other
                    _fail_tile(outcome, exc, where)
    except Exception as exc:  # noqa: BLE001 - the leftovers or the tile log itself (a full disk)
        _fail_tile(outcome, exc, where)
    return outcome


def _remove_unfinished_scratch(outdir: Path, tile: str) -> None:
    """The scratch images of realizations that did not finish (a worker killed before it
    removed them); a finished one's are kept as intermediate-clean says."""
    scratch = tile_dir(outdir, tile) / "scratch"
    for folder in sorted(scratch.glob("r[0-9]*")) if scratch.is_dir() else []:
        if folder.name[1:].isdigit() and not is_complete(outdir, tile, int(folder.name[1:])):
            shutil.rmtree(folder, ignore_errors=True)
            log.info("tile %s: removed the scratch files of unfinished realization %s", tile, folder.name)


def _run_tile_locked(settings: RunSettings, tile: str, outcome: TileOutcome, pusher=None) -> None:
    """All realizations of one tile: resume, fetch, nosim once, pool, push, clean; into ``outcome``."""
    from ..sky.positions import read_positions

    outdir = settings.outdir
    status = read_status(outdir, tile)
    status["release"] = settings.release  # which coadds these catalogs were measured on
    try:
        positions = read_positions(settings.posdir / f"{tile}.fits")
        plan = plan_for_positions(tile, positions, settings)
        identity = campaign_id.identity_for_tile(settings, positions)
        campaign_id.check_tile(tile_dir(outdir, tile), tile, identity, status, existing_catalogs(outdir, tile),
                               [nosim_catalog_path(outdir, tile)])
    except BalrogError as exc:
        _fail_tile(outcome, exc, tile_dir(outdir, tile))
        return
    settings = dataclasses.replace(settings, identity=identity)
    status.update(identity.status_entries())  # before any output: whatever follows is this campaign's
    # every realization any subjob planned for this tile: the report's "N of M" of a partial campaign
    status["planned"] = sorted(set(status.get("planned", [])) | {r.number for r in plan})
    write_status(outdir, tile, status)
    todo = [r for r in plan if not is_complete(outdir, tile, r.number)]
    outcome.skipped = [r.number for r in plan if r not in todo]
    if outcome.skipped:
        log.info("tile %s: %d realization(s) already complete, skipped", tile, len(outcome.skipped))
    results: list[RealizationResult] = []
    if todo:
        try:
            t0 = time.perf_counter()
            inputs = fetch_inputs(settings, tile, positions, status)
            status["nosim_seconds"] = status.get("nosim_seconds", 0.0) + (time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 - kind and reason recorded; a bug keeps its traceback
            _fail_tile(outcome, exc, tile_dir(outdir, tile), "inputs not ready: ")
            status["error"] = outcome.error
            write_status(outdir, tile, status)
            return
        results = _run_pool(settings, tile, inputs, positions, todo, status)
    outcome.failed = {res.number: res.error or "failed" for res in results if not res.ok}
    outcome.failed_codes = {res.number: res.exit_code for res in results if not res.ok}
    done = [r.number for r in plan if is_complete(outdir, tile, r.number)]
    outcome.done = [j for j in done if j not in outcome.failed]
    for j in outcome.done:
        entry = status["realizations"].setdefault(str(j), {})
        if settings.push and pusher is not None and not entry.get("pushed"):
            try:
                paths = catalog_paths(outdir, tile, j)  # or, after run['merge-tile'], the merged file's arrays
                pusher(paths if paths["truth"].is_file() else merged_catalogs(outdir, tile, j) or paths)
                entry["pushed"] = True
            except BalrogError as exc:
                entry["pushed"] = False
                entry["push_error"] = str(exc)
                log.error("tile %s realization %d: catalogs kept on disk, not pushed: %s", tile, j, exc)
            write_status(outdir, tile, status)
        if settings.push and not entry.get("pushed"):
            outcome.not_pushed.append(j)
    status.pop("error", None)
    status["complete"] = not outcome.failed and len(outcome.done) == len(plan)
    write_status(outdir, tile, status)
    if settings.merge_tile and status["complete"]:
        _merge_tile(outdir, tile, status, outcome)
    if settings.tile_clean and status["complete"]:
        shutil.rmtree(tile_dir(outdir, tile) / "images", ignore_errors=True)
        shutil.rmtree(tile_dir(outdir, tile) / "scratch", ignore_errors=True)
        shutil.rmtree(tile_dir(outdir, tile) / "nosim" / "coadd", ignore_errors=True)  # single-epoch re-coadds
    log.info("tile %s: %d done, %d failed, %d not pushed", tile, len(outcome.done), len(outcome.failed),
             len(outcome.not_pushed))


def _merge_tile(outdir: Path, tile: str, status: dict[str, Any], outcome: TileOutcome) -> None:
    """``run['merge-tile']``: the completed tile into one verified file, then its catalogs removed.

    Under the tile's lock. A merge that fails (full disk, unreadable catalog) keeps every
    catalog and fails the tile; the next run (or ``balrog-merge``) merges it again.
    """
    from ..merge import tile as merge

    t0 = time.perf_counter()
    try:
        done = merge.merge_tile(tile_dir(outdir, tile), tile)
        removed = merge.remove_catalogs(tile_dir(outdir, tile), done)
    except BalrogError as exc:
        _fail_tile(outcome, exc, tile_dir(outdir, tile), "merge-tile, catalogs kept: ")
        status["merge_error"] = outcome.error
    else:
        status.pop("merge_error", None)
        status["merged"] = {"file": done.path.name, "realizations": done.realizations, "removed_files": removed,
                            "seconds": round(time.perf_counter() - t0, 3)}
    write_status(outdir, tile, status)


def _run_pool(settings: RunSettings, tile: str, inputs: TileInputs, positions, todo: list[Realization],
              status: dict[str, Any]) -> list[RealizationResult]:
    """Run ``todo`` in worker processes (:mod:`.pool`); record each result in ``status``.

    The pool is sized to what the job was given (:func:`.resources.plan_pool`: ppn, the
    CPUs in the affinity mask, the memory under the tightest cgroup / SLURM / machine
    limit). A worker killed by a signal (the OOM killer's SIGKILL) fails its realization
    only, with the reason recorded; the others go on. The population catalog and the
    pyconfig are loaded here, before the workers fork, so they share the parent's copy.
    """
    from tqdm import tqdm

    recoadd = None
    if settings.single_epoch:
        from .single_epoch import recoadd_needs

        recoadd = recoadd_needs(settings, inputs.se_set)
    plan = resources.plan_pool(settings.ppn, _image_shape(inputs.images[settings.bands[0]]), len(settings.bands),
                               len(todo), scratch_in_memory=resources.scratch_in_memory(settings.outdir),
                               recoadd=recoadd,
                               det_planes=(resources.SCRATCH_PLANES_DET_RESAMPLED if settings.desdm_recipe == "y6"
                                           else resources.SCRATCH_PLANES_DET))
    status["pool"] = plan.as_dict()
    from ..injection import draw as inject  # noqa: F401 - import GalSim once here, shared by the forked workers
    load_population(settings)
    provenance.software_header(settings.sextractor.program, settings.swarp.program)  # asked once, inherited
    tasks = [
        (settings, inputs, r, positions.ra[r.start:r.stop], positions.dec[r.start:r.stop],
         positions.balrog_index[r.start:r.stop])
        for r in todo
    ]
    results: list[RealizationResult] = []
    tty = sys.stderr.isatty()
    bar = tqdm(total=len(tasks), desc=tile, unit="real", disable=not tty)
    log.info("tile %s: %d realization(s) to run with %d worker(s)", tile, len(tasks), plan.workers)

    def record(res: RealizationResult) -> None:
        results.append(res)
        entry = status["realizations"].setdefault(str(res.number), {})
        entry.update(
            state="done" if res.ok else "failed", seconds=round(res.seconds, 3),
            stages={k: round(v, 3) for k, v in res.stages.items()}, error=res.error,
            scratch_bytes=res.scratch_bytes, n_truth=res.n_truth, n_sim=res.n_sim, n_nosim=res.n_nosim,
        )
        status["peak_scratch_bytes"] = max(status.get("peak_scratch_bytes", 0), res.scratch_bytes)
        write_status(settings.outdir, tile, status)
        bar.update(1)
        if not tty:
            log.info("tile %s: realization %d %s in %.1f s (%d/%d)", tile, res.number,
                     "done" if res.ok else "FAILED", res.seconds, len(results), len(tasks))

    try:  # closing(): an exception here (Ctrl-C) kills and reaps the running workers at once
        with contextlib.closing(pool.run_tasks(_run_packed, tasks, plan.workers)) as outcomes:
            for out in outcomes:
                if isinstance(out, pool.TaskFailure):
                    real = out.task[2]
                    log.error("tile %s realization %d failed: %s", tile, real.number, out.reason)
                    shutil.rmtree(scratch_dir(settings.outdir, tile, real.number), ignore_errors=True)
                    out = RealizationResult(tile, real.number, ok=False, seconds=out.seconds, error=out.reason,
                                            exit_code=EXIT_FAILED)
                record(out)
    finally:
        bar.close()
    return results


def _run_packed(args: tuple) -> RealizationResult:
    return run_realization(*args)


# --------------------------------------------------------------------------- subjob


def make_pusher(settings: RunSettings):
    """A function that pushes one realization's catalogs (None when pushing is off)."""
    if not settings.push:
        return None
    from .. import db

    return db.make_realization_pusher(settings)


def run_tiles(settings: RunSettings, tiles: Sequence[str]) -> int:
    """Run ``tiles`` in order; return the subjob's exit code (see ``EXIT_*``)."""
    from ..campaign.record import write_record

    settings.outdir.mkdir(parents=True, exist_ok=True)
    write_record(settings.outdir, settings.dbname, settings.db, settings.db_columns)  # for balrog-push <outdir>
    try:
        pusher = make_pusher(settings)
    except BalrogError as exc:
        log.error("database not reachable, catalogs will stay on disk (run balrog-push later): %s", exc)
        pusher = None
    outcomes = [run_tile(settings, tile, pusher) for tile in tiles]
    if pusher is not None:
        from ..db import report_nulled_values

        report_nulled_values()  # one line per table for the subjob, not one per realization
    code = worst_exit_code(o.exit_code for o in outcomes)
    failed = [o for o in outcomes if o.exit_code not in (EXIT_OK, EXIT_NOT_PUSHED)]
    for o in failed:  # the console names each reason, not only the tile log
        log.error("tile %s: %s", o.tile, o.reason())
    if failed:
        log.error("tiles with failures: %s; exit code %d (%s), the worst of theirs", ", ".join(
            f"{o.tile} ({o.exit_code}: {exit_code_name(o.exit_code)})" for o in failed), code, exit_code_name(code))
    not_pushed = [o.tile for o in outcomes if o.not_pushed]
    if not_pushed:
        log.error("tiles not (fully) pushed to the database: %s; run balrog-push", ", ".join(not_pushed))
    return code


def run_subjob(spec) -> int:
    """``balrog-run SPEC``: the node runner entry point for one subjob spec."""
    settings = settings_from_config(spec.run, spec.balrog, spec.db, spec.programs)
    log.info("subjob %d of %s: tiles %s", spec.subjob, spec.jobname, ", ".join(spec.tiles))
    return run_tiles(settings, spec.tiles)
