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
   transaction per realization) and records its state in ``<outdir>/<TILE>/status.json``.

A realization that fails (an external program's non-zero exit, a bad input) is recorded
with its reason and the others go on; the exit code of :func:`run_subjob` says whether
anything failed. Seeds come from each realization's ``indexstart``, so a re-run (or a run
resumed after ``kill -9``) writes exactly the catalogs an uninterrupted run writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import shutil
import sys
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import (
    astromatic,
    blends,
    campaign_id,
    leftovers,
    measure,
    pool,
    provenance,
    resources,
    tilelock,
)
from .atomic import atomic_write_text
from .errors import BalrogError, ConfigError, InputFileError

log = logging.getLogger(__name__)

STATUS_FILE = "status.json"
KINDS = ("truth", "sim", "nosim")
#: Exit codes of a subjob: every realization done and pushed / some failed / all done but
#: some not pushed (run ``balrog-push`` later: the catalogs are on disk).
EXIT_OK, EXIT_FAILED, EXIT_NOT_PUSHED = 0, 1, 4


# --------------------------------------------------------------------------- layout


def tile_dir(outdir: str | os.PathLike, tile: str) -> Path:
    return Path(outdir) / tile


def catalog_paths(outdir: str | os.PathLike, tile: str, realization: int) -> dict[str, Path]:
    """``<outdir>/<TILE>/catalogs/<TILE>_r<jjjj>_{truth,sim,nosim}.fits`` (DEVELOPING.md)."""
    cat = tile_dir(outdir, tile) / "catalogs"
    return {kind: cat / f"{tile}_r{realization:04d}_{kind}.fits" for kind in KINDS}


def scratch_dir(outdir: str | os.PathLike, tile: str, realization: int) -> Path:
    return tile_dir(outdir, tile) / "scratch" / f"r{realization:04d}"


def nosim_catalog_path(outdir: str | os.PathLike, tile: str) -> Path:
    """The once-per-tile nosim catalog (all detections of the untouched images)."""
    return tile_dir(outdir, tile) / "nosim" / f"{tile}_nosim_all.fits"


def is_complete(outdir: str | os.PathLike, tile: str, realization: int,
                identity: campaign_id.CampaignIdentity | None = None) -> bool:
    """All three catalogs exist (each is written atomically, so existing means whole).

    With ``identity``, each must also carry it in its header: a catalog of another campaign
    (or of this one made from other inputs) is never adopted as done.
    """
    paths = catalog_paths(outdir, tile, realization).values()
    if not all(p.is_file() for p in paths):
        return False
    return identity is None or all(
        campaign_id.read_identity(p) == (identity.campaign, identity.fingerprint) for p in paths)


def existing_catalogs(outdir: str | os.PathLike, tile: str) -> list[Path]:
    """Every realization catalog of ``tile`` on disk (whatever campaign wrote it)."""
    return sorted((tile_dir(outdir, tile) / "catalogs").glob(f"{tile}_r*_*.fits"))


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class RunSettings:
    """Everything a realization needs, resolved from a subjob spec; picklable for the pool."""

    outdir: Path
    posdir: Path
    bands: tuple[str, ...]
    ngal: int
    realizations: int | None = None
    realization_list: tuple[int, ...] | None = None
    ppn: int = 1
    sextractor: astromatic.SextractorSetup = astromatic.DEFAULT_SEXTRACTOR
    swarp: astromatic.SwarpSetup = astromatic.DEFAULT_SWARP
    funpack: str = "funpack"
    program_timeout: float | None = None
    pyconfig: Path | None = None
    population: Path | None = None
    #: ``balrog['population-columns']`` and ``balrog['mag-offset-maps']`` as sorted (key, value) pairs.
    population_columns: tuple[tuple[str, Any], ...] | None = None
    mag_offset_maps: tuple[tuple[str, str], ...] = ()
    star_fraction: float | None = None
    seed_offset: int = 0
    noise: bool = True
    intermediate_clean: bool = True
    tile_clean: bool = True
    fetch: Mapping[str, Any] = field(default_factory=dict)
    push: bool = True
    dbname: str = "balrog"
    db: Mapping[str, Any] = field(default_factory=dict)
    db_columns: Path | None = None
    overwrite_db: bool = False
    release: str | None = None
    restrict_sim: bool = True
    #: ``balrog['masked-positions']`` (:mod:`.masking`): flag, skip or ignore; and the MSK bits.
    masked_positions: str = "flag"
    mask_bits: int | None = None
    #: Set per tile by :func:`run_tile` (the fingerprint covers the tile's positions).
    identity: campaign_id.CampaignIdentity | None = None

    @property
    def image_keys(self) -> tuple[str, ...]:
        """The bands plus the detection coadd: what a tile needs on disk."""
        return (*self.bands, measure.DET)


def settings_from_config(run: Mapping[str, Any], balrog: Mapping[str, Any], db: Mapping[str, Any],
                         programs: Mapping[str, str] | None = None) -> RunSettings:
    """Build :class:`RunSettings` from the resolved ``run`` / ``balrog`` / ``db`` dicts."""
    programs = dict(programs or {})

    def prog(name: str) -> str:
        return programs.get(name) or run.get(name) or name

    def opt_path(value: Any) -> Path | None:
        return Path(value) if value else None

    sextractor = astromatic.SextractorSetup(
        program=prog("sex"), config=Path(run["sex-config"]), param=Path(run["sex-param"]),
        filter=Path(run["sex-filter"]), nnw=Path(run["sex-nnw"]), timeout=run.get("program-timeout"),
    )
    swarp = astromatic.SwarpSetup(program=prog("swarp"), config=Path(run["swarp-config"]),
                                  timeout=run.get("program-timeout"))
    from .config import fetch_options

    fetch = fetch_options(run)
    return RunSettings(
        outdir=Path(run["outdir"]),
        posdir=Path(run["pos"]),
        bands=tuple(run["bands"]),
        ngal=int(run["ngal"]),
        realizations=run.get("realizations"),
        realization_list=tuple(run["realization-list"]) if run.get("realization-list") else None,
        ppn=int(run.get("ppn") or 1),
        sextractor=sextractor,
        swarp=swarp,
        funpack=prog("funpack"),
        program_timeout=run.get("program-timeout"),
        pyconfig=opt_path(run.get("pyconfig")),
        population=opt_path(balrog.get("population")),
        population_columns=tuple(sorted(balrog["population-columns"].items())) if balrog.get("population-columns") else None,
        mag_offset_maps=tuple(sorted((b, str(p)) for b, p in (balrog.get("mag-offset-maps") or {}).items())),
        star_fraction=balrog.get("star-fraction"),
        seed_offset=int(balrog.get("seed-offset") or 0),
        noise=bool(balrog.get("noise", True)),
        intermediate_clean=bool(run.get("intermediate-clean", True)),
        tile_clean=bool(run.get("tile-clean", True)),
        fetch=fetch,
        push=bool(run.get("push", True)),
        dbname=str(run["dbname"]),
        db=dict(db),
        db_columns=opt_path(run.get("db-columns")),
        overwrite_db=bool(run.get("DBoverwrite", False)),
        release=run.get("release"),
        restrict_sim=bool(run.get("sim-restrict", True)),
        masked_positions=str(balrog.get("masked-positions") or "flag"),
        mask_bits=balrog.get("mask-bits"),
    )


# --------------------------------------------------------------------------- realizations


@dataclass(frozen=True)
class Realization:
    """Realization ``number`` of a tile: position rows ``[start, stop)``, seeds from ``indexstart``."""

    tile: str
    number: int
    start: int
    stop: int
    indexstart: int


def _chosen(tile: str, n: int, only: Sequence[int] | None) -> Sequence[int]:
    """Realizations 0..n-1, or the ``run['realization-list']`` subset of them (sorted, once each)."""
    numbers = range(n) if only is None else sorted(set(only))
    bad = [j for j in numbers if not 0 <= j < n]
    if bad:
        raise ConfigError(f"tile {tile}: realization(s) {bad} outside 0..{n - 1}")
    return numbers


def plan_realizations(tile: str, balrog_index: np.ndarray, ngal: int, count: int | None = None,
                      only: Sequence[int] | None = None) -> list[Realization]:
    """Split a tile's positions into realizations of ``ngal`` objects (full ones only)."""
    if ngal <= 0:
        raise ConfigError(f"ngal {ngal} must be a positive number of objects per realization")
    available = len(balrog_index) // ngal
    if available == 0:
        raise InputFileError(f"tile {tile} has {len(balrog_index)} positions, fewer than ngal={ngal}")
    n = available if count is None else int(count)
    if n > available:
        raise ConfigError(f"tile {tile}: {n} realizations of {ngal} need {n * ngal} positions; the file has {len(balrog_index)}")
    numbers = _chosen(tile, n, only)
    return [Realization(tile, j, j * ngal, (j + 1) * ngal, int(balrog_index[j * ngal])) for j in numbers]


def plan_lattice_realizations(tile: str, balrog_index: np.ndarray, row_realization: np.ndarray,
                              count: int | None = None, only: Sequence[int] | None = None) -> list[Realization]:
    """Realizations of a lattice position file: each realization's rows as written (no ``ngal``).

    The file holds realizations 0..R-1 in order, each a contiguous block (:mod:`.lattice`);
    ``count`` (``run['realizations']``) may ask for fewer than R, never more.
    """
    row_realization = np.asarray(row_realization)
    if len(row_realization) == 0:
        raise InputFileError(f"tile {tile}: the lattice position file has no positions")
    if np.any(np.diff(row_realization) < 0):
        raise InputFileError(f"tile {tile}: lattice position file rows are not ordered by realization")
    available = int(row_realization[-1]) + 1
    n = available if count is None else int(count)
    if n > available:
        raise ConfigError(f"tile {tile}: run['realizations'] = {n}, but the lattice position file has {available} "
                          "realizations (balrog-positions --realizations)")
    numbers = _chosen(tile, n, only)
    starts = np.searchsorted(row_realization, np.arange(available + 1))
    empty = [j for j in numbers if starts[j] == starts[j + 1]]
    if empty:
        raise InputFileError(f"tile {tile}: lattice realization(s) {empty} have no position in the unique area")
    return [Realization(tile, j, int(starts[j]), int(starts[j + 1]), int(balrog_index[starts[j]])) for j in numbers]


def plan_for_positions(tile: str, positions, settings: RunSettings) -> list[Realization]:
    """The tile's realizations: lattice blocks as written, or random positions cut into ``ngal``."""
    if positions.row_realization is not None:
        return plan_lattice_realizations(tile, positions.balrog_index, positions.row_realization,
                                         settings.realizations, settings.realization_list)
    return plan_realizations(tile, positions.balrog_index, settings.ngal, settings.realizations,
                             settings.realization_list)


@dataclass(frozen=True)
class TileInputs:
    """A tile's untouched inputs on disk: funpacked images and PSFEx models per band (+ det)."""

    images: Mapping[str, Path]
    psfs: Mapping[str, Path]
    nosim_catalog: Path


@dataclass
class RealizationResult:
    """What a pool worker reports back (picklable; never raises across the pool)."""

    tile: str
    number: int
    ok: bool
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    scratch_bytes: int = 0
    n_truth: int = 0
    n_sim: int = 0
    n_nosim: int = 0


def _dir_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, name)).st_size
    return total


@functools.lru_cache(maxsize=8)
def _read_population_catalog(path: Path, columns: tuple[tuple[str, Any], ...] | None = None,
                             bands: tuple[str, ...] = ()):
    from . import population

    return population.load_catalog(path, dict(columns) if columns else None, bands or population.DEFAULT_BANDS)


@functools.lru_cache(maxsize=8)
def _read_offset_maps(maps: tuple[tuple[str, str], ...]):
    from . import mag_offsets

    return mag_offsets.load_maps(dict(maps))


@functools.lru_cache(maxsize=8)
def _read_pyconfig(path: Path):
    from . import population

    return population.load_pyconfig(path)


def _load_population(settings: RunSettings):
    """The population model, catalog and pyconfig of the campaign.

    The catalog and the pyconfig are read once, by the parent before the workers fork
    (:func:`_run_pool`), so every worker shares that copy; sampling never modifies them.
    """
    from . import population

    model = population.DEFAULT_MODEL
    if settings.star_fraction is not None:
        model = dataclasses.replace(model, star_fraction=float(settings.star_fraction))
    catalog = (_read_population_catalog(settings.population, settings.population_columns, settings.bands)
               if settings.population else None)
    pyconfig = _read_pyconfig(settings.pyconfig) if settings.pyconfig else None
    return model, catalog, pyconfig, _read_offset_maps(settings.mag_offset_maps)


def run_realization(settings: RunSettings, inputs: TileInputs, real: Realization, ra: np.ndarray,
                    dec: np.ndarray, balrog_index: np.ndarray) -> RealizationResult:
    """Inject, detect, measure and write one realization's catalogs; report, never raise.

    Runs in a pool worker. The realization's scratch directory is emptied first (a killed
    run may have left files) and removed at the end when ``intermediate_clean``.
    """
    import fitsio

    from . import inject, population

    start = time.perf_counter()
    stages: dict[str, float] = {}
    scratch = scratch_dir(settings.outdir, real.tile, real.number)
    result = RealizationResult(real.tile, real.number, ok=False, seconds=0.0, stages=stages)

    @contextlib.contextmanager
    def stage(name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            stages[name] = stages.get(name, 0.0) + time.perf_counter() - t0

    try:
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        with stage("inject"):
            model, catalog, pyconfig, offset_maps = _load_population(settings)
            objects = population.make_objects(
                ra, dec, balrog_index, bands=settings.bands, indexstart=real.indexstart + settings.seed_offset,
                tilename=real.tile, realization=real.number, model=model, catalog=catalog, pyconfig=pyconfig,
                mag_offsets=offset_maps,
            )
            objects = dataclasses.replace(objects, indexstart=real.indexstart)
            skip = _mark_masked(settings, inputs, objects)
            options = {
                b: dataclasses.replace(o, poisson_noise=o.poisson_noise and settings.noise)
                for b, o in inject.draw_options_for_bands(pyconfig, settings.bands).items()
            }
            injected = {b: scratch / f"{real.tile}_{b}.fits" for b in settings.bands}
            truth = inject.inject_realization(
                {b: inputs.images[b] for b in settings.bands},
                {b: inputs.psfs[b] for b in settings.bands},
                objects, injected, draw_options=options, checksum=False,
                noise_seed=population.realization_seeds(real.indexstart + settings.seed_offset)[1], skip=skip,
                sci_only=True,  # weighed with the tile's own WGT below: a third of the scratch
            )
            inject.require_something_drawn(truth, settings.posdir / f"{real.tile}.fits")
        timings: dict[str, float] = {}
        restrict = np.column_stack([truth["x"], truth["y"]]) if settings.restrict_sim else None
        sim_wide_path = measure.measure_realization(
            injected, inputs.psfs, scratch / "sim_wide.fits", setup=settings.sextractor,
            swarp=settings.swarp, workdir=scratch, timings=timings,
            band_extra=sextractor_extra(pyconfig, settings.bands), restrict_to=restrict,
            weights={b: inputs.images[b] for b in settings.bands},
        )
        stages.update(timings)
        with stage("match"):
            truth_arr = truth.as_array()
            sim_wide = fitsio.read(str(sim_wide_path), ext=1)
            nosim_wide = fitsio.read(str(inputs.nosim_catalog), ext=1)
            sim = measure.sim_for_realization(sim_wide, truth_arr, tilename=real.tile, realization=real.number,
                                              indexstart=real.indexstart)
            nosim = measure.nosim_for_realization(nosim_wide, truth_arr, tilename=real.tile,
                                                  realization=real.number, indexstart=real.indexstart)
        with stage("write"):
            paths = catalog_paths(settings.outdir, real.tile, real.number)
            paths["truth"].parent.mkdir(parents=True, exist_ok=True)
            header = {**provenance.catalog_header(real.tile, real.number, real.indexstart, settings.release,
                                                  settings.sextractor.program, settings.swarp.program),
                      **(settings.identity.header() if settings.identity else {})}
            truth.meta.update(header)
            truth.meta["EXTNAME"] = "TRUTH"
            measure.write_catalog(paths["sim"], sim, header=header, extname="SIM")
            measure.write_catalog(paths["nosim"], nosim, header=header, extname="NOSIM")
            blends.write_match_catalog(paths["truth"], truth_arr, sim, nosim_wide, det_image=inputs.images.get("det"),
                                       restricted=settings.restrict_sim, header=header)
            inject.write_truth(truth, paths["truth"])  # last: the three together mark completion
        result.scratch_bytes = _dir_bytes(scratch)
        result.n_truth, result.n_sim, result.n_nosim = len(truth), len(sim), len(nosim)
        result.ok = True
    except BalrogError as exc:
        result.error = str(exc)
        tail = getattr(exc, "stderr_tail", "")
        log.error("tile %s realization %d failed: %s%s", real.tile, real.number, exc,
                  f"\n--- stderr tail ---\n{tail}" if tail else "")
    except Exception as exc:  # noqa: BLE001 - a bug in one realization must not stop the others
        result.error = f"{type(exc).__name__}: {exc}"
        log.error("tile %s realization %d failed with an unexpected error:\n%s", real.tile, real.number,
                  traceback.format_exc())
    finally:
        if settings.intermediate_clean or not result.ok:
            shutil.rmtree(scratch, ignore_errors=True)
        result.seconds = time.perf_counter() - start
    return result


def _mark_masked(settings: RunSettings, inputs: TileInputs, objects) -> np.ndarray | None:
    """Add the truth column ``masked`` (:mod:`.masking`); return the objects not to draw (skip mode)."""
    if settings.masked_positions == "ignore":
        return None
    from . import masking

    masked = masking.masked_centres({b: inputs.images[b] for b in settings.bands}, objects["ra"], objects["dec"],
                                    settings.mask_bits)
    objects.columns["masked"] = masked.astype(np.int16)
    if masked.any():
        log.info("tile %s realization %d: %d of %d objects centred on masked pixels (%s)", objects.tilename,
                 objects.realization, int(masked.sum()), len(masked),
                 "not drawn" if settings.masked_positions == "skip" else "flagged")
    return masked if settings.masked_positions == "skip" else None


def sextractor_extra(pyconfig, bands: Sequence[str]) -> dict[str, dict[str, str]]:
    """Per-band SExtractor overrides from the pyconfig's ``SextractorConfigs(band)`` hook
    (bands and ``'det'``); the nosim and sim runs of a tile both use them, so the two are
    measured alike."""
    if pyconfig is None:
        return {}
    return {b: pyconfig.sextractor_configs(b) for b in (*bands, measure.DET)}


# --------------------------------------------------------------------------- status


def read_status(outdir: str | os.PathLike, tile: str) -> dict[str, Any]:
    path = tile_dir(outdir, tile) / STATUS_FILE
    try:
        status = json.loads(path.read_text())
    except FileNotFoundError:
        status = {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s (%s); it will be rewritten", path, exc)
        status = {}
    status.setdefault("tilename", tile)
    status.setdefault("realizations", {})
    return status


def write_status(outdir: str | os.PathLike, tile: str, status: Mapping[str, Any]) -> None:
    atomic_write_text(tile_dir(outdir, tile) / STATUS_FILE, json.dumps(status, indent=1, sort_keys=True) + "\n")


# --------------------------------------------------------------------------- tiles


@dataclass
class TileOutcome:
    tile: str
    done: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    not_pushed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    error: str | None = None

    @property
    def exit_code(self) -> int:
        if self.error or self.failed:
            return EXIT_FAILED
        return EXIT_NOT_PUSHED if self.not_pushed else EXIT_OK


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


def fetch_inputs(settings: RunSettings, tile: str) -> TileInputs:
    """Fetch (or find) the tile's images and PSFEx models; measure nosim once."""
    from . import fetch

    fetch_opts = dict(settings.fetch)
    source = fetch.source_from_options(fetch_opts)
    files = fetch.fetch_tile(
        tile, tile_dir(settings.outdir, tile) / "images", source, bands=settings.image_keys,
        workers=int(fetch_opts.get("workers") or 4), funpack=True, funpack_bin=settings.funpack,
        deadline=float(fetch_opts.get("deadline") or fetch.DEFAULT_FILE_DEADLINE),
        funpack_timeout=settings.program_timeout,
    )
    nosim = nosim_catalog_path(settings.outdir, tile)
    if not nosim.is_file():
        t0 = time.perf_counter()
        nosim.parent.mkdir(parents=True, exist_ok=True)
        pyconfig = _read_pyconfig(settings.pyconfig) if settings.pyconfig else None
        measure.measure_nosim(files.images, files.psfs, nosim, setup=settings.sextractor, workdir=nosim.parent,
                              band_extra=sextractor_extra(pyconfig, settings.bands))
        log.info("tile %s: nosim measured once in %.1f s", tile, time.perf_counter() - t0)
    return TileInputs(images=dict(files.images), psfs=dict(files.psfs), nosim_catalog=nosim)


def _image_shape(path: Path) -> tuple[int, int]:
    import fitsio

    with fitsio.FITS(str(path)) as f:
        dims = f[0].get_dims()
    return (int(dims[0]), int(dims[1])) if len(dims) == 2 else (10000, 10000)


def run_tile(settings: RunSettings, tile: str, pusher=None) -> TileOutcome:
    """All realizations of one tile, under the tile's lock (:mod:`tilelock`).

    A tile another process is running fails here with the holder's pid and host, before
    anything in its directory is touched. Holding the lock, the runner first removes the
    temporaries a killed run left there (:mod:`leftovers`).
    """
    try:
        lock = tilelock.TileLock.acquire(tile_dir(settings.outdir, tile), tile)
    except BalrogError as exc:
        log.error("%s", exc)
        return TileOutcome(tile, error=str(exc))
    with lock:
        leftovers.remove_leftovers(tile_dir(settings.outdir, tile))
        return _run_tile_locked(settings, tile, pusher)


def _run_tile_locked(settings: RunSettings, tile: str, pusher=None) -> TileOutcome:
    """All realizations of one tile: resume, fetch, nosim once, pool, push, clean."""
    from .positions import read_positions

    outcome = TileOutcome(tile)
    outdir = settings.outdir
    with tile_log(outdir, tile):
        status = read_status(outdir, tile)
        status["release"] = settings.release  # which coadds these catalogs were measured on
        try:
            positions = read_positions(settings.posdir / f"{tile}.fits")
            plan = plan_for_positions(tile, positions, settings)
            identity = campaign_id.identity_for_tile(settings, positions)
            campaign_id.check_tile(tile_dir(outdir, tile), tile, identity, status, existing_catalogs(outdir, tile),
                                   [nosim_catalog_path(outdir, tile)])
        except BalrogError as exc:
            outcome.error = str(exc)
            log.error("tile %s: %s", tile, exc)
            return outcome
        settings = dataclasses.replace(settings, identity=identity)
        status.update(identity.status_entries())  # before any output: whatever follows is this campaign's
        write_status(outdir, tile, status)
        todo = [r for r in plan if not is_complete(outdir, tile, r.number)]
        outcome.skipped = [r.number for r in plan if r not in todo]
        if outcome.skipped:
            log.info("tile %s: %d realization(s) already complete, skipped", tile, len(outcome.skipped))
        results: list[RealizationResult] = []
        if todo:
            try:
                t0 = time.perf_counter()
                inputs = fetch_inputs(settings, tile)
                status["nosim_seconds"] = status.get("nosim_seconds", 0.0) + (time.perf_counter() - t0)
            except BalrogError as exc:
                outcome.error = str(exc)
                log.error("tile %s: inputs not ready: %s", tile, exc)
                status["error"] = str(exc)
                write_status(outdir, tile, status)
                return outcome
            results = _run_pool(settings, tile, inputs, positions, todo, status)
        outcome.failed = {res.number: res.error or "failed" for res in results if not res.ok}
        done = [r.number for r in plan if is_complete(outdir, tile, r.number)]
        outcome.done = [j for j in done if j not in outcome.failed]
        for j in outcome.done:
            entry = status["realizations"].setdefault(str(j), {})
            if settings.push and pusher is not None and not entry.get("pushed"):
                try:
                    pusher(catalog_paths(outdir, tile, j))
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
        if settings.tile_clean and status["complete"]:
            shutil.rmtree(tile_dir(outdir, tile) / "images", ignore_errors=True)
            shutil.rmtree(tile_dir(outdir, tile) / "scratch", ignore_errors=True)
        log.info("tile %s: %d done, %d failed, %d not pushed", tile, len(outcome.done), len(outcome.failed),
                 len(outcome.not_pushed))
    return outcome


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

    plan = resources.plan_pool(settings.ppn, _image_shape(inputs.images[settings.bands[0]]), len(settings.bands),
                               len(todo), scratch_in_memory=resources.scratch_in_memory(settings.outdir))
    status["pool"] = plan.as_dict()
    from . import inject  # noqa: F401 - import GalSim once here, shared by the forked workers
    _load_population(settings)
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
                    out = RealizationResult(tile, real.number, ok=False, seconds=out.seconds, error=out.reason)
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
    from . import db

    return db.make_realization_pusher(settings)


def run_tiles(settings: RunSettings, tiles: Sequence[str]) -> int:
    """Run ``tiles`` in order; return the subjob's exit code (see ``EXIT_*``)."""
    from .campaign_record import write_record

    settings.outdir.mkdir(parents=True, exist_ok=True)
    write_record(settings.outdir, settings.dbname, settings.db, settings.db_columns)  # for balrog-push <outdir>
    try:
        pusher = make_pusher(settings)
    except BalrogError as exc:
        log.error("database not reachable, catalogs will stay on disk (run balrog-push later): %s", exc)
        pusher = None
    outcomes = [run_tile(settings, tile, pusher) for tile in tiles]
    failed = [o.tile for o in outcomes if o.exit_code == EXIT_FAILED]
    not_pushed = [o.tile for o in outcomes if o.exit_code == EXIT_NOT_PUSHED]
    if failed:
        log.error("tiles with failures: %s", ", ".join(failed))
        return EXIT_FAILED
    if not_pushed:
        log.error("tiles not (fully) pushed to the database: %s; run balrog-push", ", ".join(not_pushed))
        return EXIT_NOT_PUSHED
    return EXIT_OK


def run_subjob(spec) -> int:
    """``balrog-run SPEC``: the node runner entry point for one subjob spec."""
    settings = settings_from_config(spec.run, spec.balrog, spec.db, spec.programs)
    log.info("subjob %d of %s: tiles %s", spec.subjob, spec.jobname, ", ".join(spec.tiles))
    return run_tiles(settings, spec.tiles)
