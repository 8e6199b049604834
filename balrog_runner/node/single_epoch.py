"""Single-epoch campaigns on the node (``run['inject-into'] = 'single-epoch'``, DESIGN.md section 12).

Per tile, once (:func:`prepare_tile`): read the tile's file set (``<outdir>/<TILE>/images/
se_set.json``, :mod:`balrog_runner.inputs.single_epoch`; the single-epoch fetch writes it), check
it, and re-coadd the untouched CCD images with DESDM's recipe into the **nosim** coadds (one
MEF per band, SCI/MSK/WGT, and the riz detection image of ``run['desdm-recipe']``, under ``nosim/coadd/``).
These are what the tile's nosim catalog is measured on, and what every realization is weighed
and masked by. DESDM's own coadd is not the nosim here: the re-coadd differs from it by
everything DESDM did that the project does not redo (``coadd_assemble``'s interpolation of
masked columns, DESDM's exact inputs and versions), and injected and nosim must differ by the
injected light alone.

Per realization (:func:`inject_and_recoadd`), band by band so that only one band's chip
copies are on disk at a time: draw the objects on every CCD image they touch
(:mod:`balrog_runner.injection.chips`), re-coadd the band's science plane
(:func:`balrog_runner.coadd.recoadd.recoadd_band_science`), remove the chip copies. Detection
and measurement then run exactly as in coadd campaigns, on these coadds.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

from ..coadd.recoadd import recoadd_band, recoadd_band_science
from ..coadd.swarp import memory_caps
from ..errors import InputFileError
from ..injection import chips
from ..injection import draw as inject
from ..inputs.manifest import mode_of as manifest_mode
from ..inputs.single_epoch import CoaddGrid, SESet, read_se_set
from ..measurement import astromatic, detection, measure
from ..sky import geometry
from .layout import dir_bytes, nosim_coadd_path, se_set_file
from .resources import ReCoadd
from .settings import RunSettings

log = logging.getLogger(__name__)


def tile_grid(se_set: SESet, tile: str) -> CoaddGrid:
    """The grid to re-coadd onto: the set's own, else the DES tile's (10000^2 at 0.263")."""
    if se_set.grid is not None:
        return se_set.grid
    t = geometry.des_tile(tile)
    return CoaddGrid(ra=t.ra_cent, dec=t.dec_cent, naxis1=t.naxis1, naxis2=t.naxis2, pixel_scale=t.pixelscale)


def read_tile_set(settings: RunSettings, tile: str, status: MutableMapping[str, Any] | None = None) -> SESet:
    """The tile's checked file set; a one-line InputFileError naming the file and what is wrong.

    With a single-epoch manifest (``run['fetch-manifest']``) the set is fetched, or found and
    verified, by :func:`.se_inputs.fetch_se_inputs` (and recorded in ``status``); without one it
    must be in place already (``<outdir>/<TILE>/se/se_set.json``, staged by hand or by an earlier run).
    """
    path = se_set_file(settings.outdir, tile)
    manifest = settings.fetch.get("manifest")
    if manifest and manifest_mode(manifest) == "single-epoch":
        from .se_inputs import fetch_se_inputs

        fetch_se_inputs(settings, tile, status if status is not None else {})
    if not path.is_file():
        coadd_files = sorted(p.name for p in path.parent.glob(f"{tile}_*.fits")) if path.parent.is_dir() else []
        hint = (f" ({path.parent} holds coadd images {', '.join(coadd_files[:3])}...: inputs of a coadd campaign)"
                if coadd_files else "")
        raise InputFileError(f"tile {tile}: run['inject-into'] is 'single-epoch' but its single-epoch file set "
                             f"{path} does not exist{hint}")
    se_set = read_se_set(path)
    if se_set.tile != tile:
        raise InputFileError(f"{path} describes tile {se_set.tile}, not {tile}")
    piff = getattr(settings, "psf_model", "psfex") == "piff"
    for band in settings.bands:
        for image in se_set.band(band):
            if piff and image.piff is None:
                raise InputFileError(f"tile {tile}: balrog['psf-model'] is 'piff' but {path} names no Piff model "
                                     f"for {image.key} (a Y6 set from balrog-inputs --single-epoch has them)")
            model = image.piff if piff else image.psf
            if not Path(model).is_file():
                raise InputFileError(f"tile {tile}: {image.key} has no PSF model ({model} does not exist; {path})")
    named = [b for b in (*settings.bands, measure.DET) if b in se_set.coadd_psfs]
    gone = [str(se_set.coadd_psfs[b]) for b in named if not Path(se_set.coadd_psfs[b]).is_file()]
    if gone:
        raise InputFileError(f"tile {tile}: the coadd PSF model(s) {', '.join(gone)} named by {path} do not exist")
    return se_set


def nosim_recoadd(settings: RunSettings, tile: str, se_set: SESet) -> dict[str, Path]:
    """The tile's nosim coadds (bands and ``det``), made when missing (each file is atomic)."""
    grid = tile_grid(se_set, tile)
    images: dict[str, Path] = {}
    for band in settings.bands:
        out = nosim_coadd_path(settings.outdir, tile, band)
        if not out.is_file():
            t0 = time.perf_counter()
            recoadd_band(se_set.band(band), grid, out, band=band, tilename=tile, workdir=out.parent,
                         setup=settings.coadd_swarp)
            log.info("tile %s: nosim re-coadd of band %s (%d CCD images) in %.1f s", tile, band,
                     len(se_set.band(band)), time.perf_counter() - t0)
        images[band] = out
    det = nosim_coadd_path(settings.outdir, tile, measure.DET)
    if not det.is_file():
        missing = [b for b in measure.DETECTION_BANDS if b not in images]
        if missing:
            raise InputFileError(f"tile {tile}: the detection image needs bands {', '.join(missing)} "
                                 f"among run['bands'] ({', '.join(settings.bands)})")
        detection.make_detection_image(settings.desdm_recipe,
                                       [detection.DetectionBand(images[b], images[b]) for b in measure.DETECTION_BANDS],
                                       det, setup=settings.swarp, workdir=det.parent, tilename=tile)
    images[measure.DET] = det
    return images


def coadd_psf_models(settings: RunSettings, tile: str, se_set: SESet, images: Mapping[str, Path]) -> dict[str, Path]:
    """The coadd PSFEx models: the set's where it names them, else fitted once per tile by psfex
    on the nosim re-coadd (as DESDM fitted its coadd's), kept beside it in ``nosim/coadd/``."""
    psfs = {}
    for key in (*settings.bands, measure.DET):
        if key in se_set.coadd_psfs:
            psfs[key] = Path(se_set.coadd_psfs[key])
            continue
        out = images[key].with_name(f"{tile}_{key}_psfcat.psf")
        if not out.is_file():
            t0 = time.perf_counter()
            astromatic.make_psf_model(images[key], out, workdir=out.parent, psfex=settings.psfex)
            log.info("tile %s: PSFEx model of the %s re-coadd in %.1f s", tile, key, time.perf_counter() - t0)
        psfs[key] = out
    return psfs


def prepare_tile(settings: RunSettings, tile: str, status: MutableMapping[str, Any] | None = None
                 ) -> tuple[dict[str, Path], dict[str, Path], SESet]:
    """``(nosim coadds, coadd PSF models, file set)`` of a single-epoch tile (bands and ``det``)."""
    se_set = read_tile_set(settings, tile, status)
    images = nosim_recoadd(settings, tile, se_set)
    return images, coadd_psf_models(settings, tile, se_set, images), se_set


def recoadd_needs(settings: RunSettings, se_set: SESet) -> ReCoadd:
    """What the tile's largest re-coadd works on, for the pool's memory plan (headers read once)."""
    import fitsio

    largest = biggest = 0
    for band in settings.bands:
        total = 0
        for image in se_set.band(band):
            try:
                header = fitsio.read_header(str(image.image), ext=0)
            except (OSError, ValueError) as exc:
                raise InputFileError(f"cannot read the header of {image.key} ({image.image}): {exc}") from exc
            pixels = int(header.get("NAXIS1", 0)) * int(header.get("NAXIS2", 0))
            total += pixels
            biggest = max(biggest, pixels)
        largest = max(largest, total)
    return ReCoadd(input_pixels=largest, largest_input=biggest, swarp_cap=sum(memory_caps(settings.coadd_swarp)))


def inject_and_recoadd(settings: RunSettings, se_set: SESet, objects, scratch: Path, *,
                       options: Mapping[str, inject.DrawOptions], noise_seed: int, skip,
                       stages: dict[str, float]) -> tuple[Any, dict[str, Path], int]:
    """One realization's per-chip injection and re-coadd, band by band.

    Returns ``(truth table, {band: re-coadded SCI-only image}, peak scratch bytes)``; adds
    ``inject`` (drawing, all bands) and ``swarp_<band>`` (the re-coadd) to ``stages``.
    """
    tile = se_set.tile
    grid = tile_grid(se_set, tile)
    shared = {id(o): inject.unit_profiles(objects, o) for o in options.values()}
    results: dict[str, chips.BandInjection] = {}
    coadds: dict[str, Path] = {}
    peak = 0
    for band in settings.bands:
        opts = options[band]
        chip_dir = scratch / "se" / band
        t0 = time.perf_counter()
        results[band] = chips.inject_band(se_set.band(band), objects, band, grid, chip_dir,
                                          noise_seed=noise_seed if opts.poisson_noise else None, options=opts,
                                          profiles=shared[id(opts)], skip=skip, psf_model=settings.psf_model)
        stages["inject"] = stages.get("inject", 0.0) + time.perf_counter() - t0
        coadds[band] = recoadd_band_science(se_set.band(band), grid, scratch / f"{tile}_{band}.fits", band=band,
                                            tilename=tile, workdir=scratch, setup=settings.coadd_swarp,
                                            sci_files=results[band].sci_files, timings=stages)
        peak = max(peak, dir_bytes(scratch))
        shutil.rmtree(chip_dir, ignore_errors=True)
    return chips.truth_table(objects, results), coadds, peak
