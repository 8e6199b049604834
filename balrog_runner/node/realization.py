"""One realization, start to end, in a worker process: inject, detect, measure, associate, write.

Everything it reads (the population catalog, the pyconfig, the offset maps) is loaded once
by the parent before the workers fork, so every worker shares that copy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import shutil
import time
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import provenance
from ..atomic import explain_failure
from ..errors import EXIT_FAILED, EXIT_OK
from ..measurement import blends, measure
from . import summary
from .layout import catalog_paths, dir_bytes, scratch_dir
from .plan import Realization
from .settings import RunSettings, sextractor_extra

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TileInputs:
    """A tile's untouched inputs on disk: funpacked images and PSFEx models per band (+ det).

    In single-epoch campaigns ``images`` are the nosim re-coadds (what realizations are
    weighed and masked by), ``psfs`` the coadd's models, and ``se_set`` the CCD images.
    """

    images: Mapping[str, Path]
    psfs: Mapping[str, Path]
    nosim_catalog: Path
    se_set: Any = None



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
    #: the failure's kind, an exit code of errors.EXIT_CODES (2 bad input, 3 program, 5 disk, ...)
    exit_code: int = EXIT_OK



@functools.lru_cache(maxsize=8)
def _read_population_catalog(path: Path, columns: tuple[tuple[str, Any], ...] | None = None,
                             bands: tuple[str, ...] = ()):
    from ..injection import population

    return population.load_catalog(path, dict(columns) if columns else None, bands or population.DEFAULT_BANDS)



@functools.lru_cache(maxsize=8)
def _read_offset_maps(maps: tuple[tuple[str, str], ...]):
    from ..injection import mag_offsets

    return mag_offsets.load_maps(dict(maps))



@functools.lru_cache(maxsize=8)
def read_pyconfig(path: Path):
    from ..injection import population

    return population.load_pyconfig(path)



def load_population(settings: RunSettings):
    """The population model, catalog and pyconfig of the campaign.

    The catalog and the pyconfig are read once, by the parent before the workers fork
    (:func:`_run_pool`), so every worker shares that copy; sampling never modifies them.
    """
    from ..injection import population

    model = population.DEFAULT_MODEL
    if settings.star_fraction is not None:
        model = dataclasses.replace(model, star_fraction=float(settings.star_fraction))
    catalog = (_read_population_catalog(settings.population, settings.population_columns, settings.bands)
               if settings.population else None)
    pyconfig = read_pyconfig(settings.pyconfig) if settings.pyconfig else None
    return model, catalog, pyconfig, _read_offset_maps(settings.mag_offset_maps)



def run_realization(settings: RunSettings, inputs: TileInputs, real: Realization, ra: np.ndarray,
                    dec: np.ndarray, balrog_index: np.ndarray) -> RealizationResult:
    """Inject, detect, measure and write one realization's catalogs; report, never raise.

    Runs in a pool worker. The realization's scratch directory is emptied first (a killed
    run may have left files) and removed at the end when ``intermediate_clean``.
    """
    import fitsio

    from ..injection import draw as inject
    from ..injection import population

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
            model, catalog, pyconfig, offset_maps = load_population(settings)
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
            noise_seed = population.realization_seeds(real.indexstart + settings.seed_offset)[1]
            if not settings.single_epoch:
                injected = {b: scratch / f"{real.tile}_{b}.fits" for b in settings.bands}
                truth = inject.inject_realization(
                    {b: inputs.images[b] for b in settings.bands},
                    {b: inputs.psfs[b] for b in settings.bands},
                    objects, injected, draw_options=options, checksum=False, noise_seed=noise_seed, skip=skip,
                    sci_only=True,  # weighed with the tile's own WGT below: a third of the scratch
                )
        if settings.single_epoch:  # per chip, then the re-coadd: its own stages (inject, swarp_<band>)
            from .single_epoch import inject_and_recoadd

            truth, injected, result.scratch_bytes = inject_and_recoadd(
                settings, inputs.se_set, objects, scratch, options=options, noise_seed=noise_seed, skip=skip,
                stages=stages)
        inject.require_something_drawn(truth, settings.posdir / f"{real.tile}.fits")
        timings: dict[str, float] = {}
        truth_arr = truth.as_array()
        nosim_wide = fitsio.read(str(inputs.nosim_catalog), ext=1)
        scale = blends.image_pixel_scale(inputs.images.get("det"))
        neighbours = blends.NEIGHBOUR_RADIUS if settings.restrict_sim else 0.0
        # restricted: the injections and each one's nearest pre-existing detection within 2" (blends.py)
        restrict = blends.sim_assoc_positions(truth_arr, nosim_wide, scale) if settings.restrict_sim else None
        sim_wide_path = measure.measure_realization(
            injected, inputs.psfs, scratch / "sim_wide.fits", setup=settings.sextractor,
            swarp=settings.swarp, workdir=scratch, timings=timings,
            band_extra=sextractor_extra(pyconfig, settings.bands), restrict_to=restrict,
            weights={b: inputs.images[b] for b in settings.bands}, recipe=settings.desdm_recipe,
            # the tile's untouched detection image's MSK: injection changes no mask (measurement/detection.py)
            det_mask=(inputs.images[measure.DET], measure.MSK_HDU) if settings.det_flag_image else None,
        )
        stages.update(timings)
        with stage("match"):
            sim_wide = fitsio.read(str(sim_wide_path), ext=1)
            sim = measure.sim_for_realization(sim_wide, truth_arr, tilename=real.tile, realization=real.number,
                                              indexstart=real.indexstart)
            nosim = measure.nosim_for_realization(nosim_wide, truth_arr, tilename=real.tile,
                                                  realization=real.number, indexstart=real.indexstart)
        with stage("write"):
            paths = catalog_paths(settings.outdir, real.tile, real.number)
            paths["truth"].parent.mkdir(parents=True, exist_ok=True)
            header = {**provenance.catalog_header(real.tile, real.number, real.indexstart, settings.release,
                                                  settings.sextractor.program, settings.swarp.program),
                      "INJINTO": settings.inject_into,
                      **(settings.identity.header() if settings.identity else {})}
            truth.meta.update(header)
            truth.meta["EXTNAME"] = "TRUTH"
            measure.write_catalog(paths["sim"], sim, header=header, extname="SIM")
            measure.write_catalog(paths["nosim"], nosim, header=header, extname="NOSIM")
            match = blends.write_match_catalog(paths["truth"], truth_arr, sim, nosim_wide, pixel_scale=scale,
                                               restricted=settings.restrict_sim, header=header,
                                               neighbour_radius=neighbours)
            summary.write_beside(paths["truth"], truth_arr, sim, nosim, header, match)  # the report's few columns
            inject.write_truth(truth, paths["truth"])  # last: the three together mark completion
        result.scratch_bytes = max(result.scratch_bytes, dir_bytes(scratch))
        result.n_truth, result.n_sim, result.n_nosim = len(truth), len(sim), len(nosim)
        result.ok = True
    except Exception as exc:  # noqa: BLE001 - a bug in one realization must not stop the others
        # before the scratch is removed: a full disk must still look full
        err = explain_failure(exc, [scratch, catalog_paths(settings.outdir, real.tile, real.number)["truth"].parent])
        if err is None:
            result.error, result.exit_code = f"{type(exc).__name__}: {exc}", EXIT_FAILED
            log.error("tile %s realization %d failed with an unexpected error:\n%s", real.tile, real.number,
                      traceback.format_exc())
        else:
            result.error, result.exit_code = str(err), err.exit_code
            tail = getattr(exc, "stderr_tail", "")
            log.error("tile %s realization %d failed: %s%s", real.tile, real.number, err,
                      f"\n--- stderr tail ---\n{tail}" if tail else "")
    finally:
        if settings.intermediate_clean or not result.ok:
            shutil.rmtree(scratch, ignore_errors=True)
        result.seconds = time.perf_counter() - start
    return result



def _mark_masked(settings: RunSettings, inputs: TileInputs, objects) -> np.ndarray | None:
    """Add the truth column ``masked`` (:mod:`.masking`); return the objects not to draw (skip mode)."""
    if settings.masked_positions == "ignore":
        return None
    from ..injection import masking

    masked = masking.masked_centres({b: inputs.images[b] for b in settings.bands}, objects["ra"], objects["dec"],
                                    settings.mask_bits)
    objects.columns["masked"] = masked.astype(np.int16)
    if masked.any():
        log.info("tile %s realization %d: %d of %d objects centred on masked pixels (%s)", objects.tilename,
                 objects.realization, int(masked.sum()), len(masked),
                 "not drawn" if settings.masked_positions == "skip" else "flagged")
    return masked if settings.masked_positions == "skip" else None
