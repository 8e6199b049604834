"""Re-coadd one band of a tile from its single-epoch images: DESDM's two SWarp calls and the assembly.

:func:`recoadd_band` is DESDM's recipe whole (DESIGN.md section 12): the WGT_ME-weighted call
(science and weight), the WGT-weighted call (the mask weight), then the DESDM-layout MEF
(:mod:`.assemble`). It makes the nosim re-coadd of a tile (the untouched SE images) and the
synthetic surveys' coadds.

:func:`recoadd_band_science` is what a realization needs: the science plane alone. Injection
changes SCI only; SWarp's output weights are computed from the input weights and flux scales
alone, so both the weight of the first call and the whole second call come out bit for bit
as in the nosim re-coadd of the same images (tested). A realization runs the first call only
and is weighed and masked by the nosim re-coadd's WGT and MSK: half of DESDM's SWarp time per
realization, and one image instead of three written.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..atomic import atomic_path
from ..inputs.single_epoch import CoaddGrid, SEImage
from ..programs import scratch_dir
from .assemble import assemble_coadd, finish_science
from .swarp import (
    DEFAULT_SETUP,
    MASK_WEIGHT_HDU,
    SCIENCE_WEIGHT_HDU,
    CoaddInput,
    CoaddSwarpSetup,
    run_coadd_call,
)

log = logging.getLogger(__name__)


def coadd_inputs(images: Sequence[SEImage], sci_files: Mapping[str, Path] | None = None) -> list[CoaddInput]:
    """The SWarp inputs of a band: each image's SCI (its injected copy when ``sci_files`` has its
    key), weighed by its own nwgint file, with its zero point."""
    sci_files = sci_files or {}
    return [CoaddInput(sci=Path(sci_files.get(im.key, im.image)), weights=Path(im.image), mag_zero=im.mag_zero)
            for im in images]


def _timed(timings: dict[str, float] | None, name: str, start: float) -> None:
    if timings is not None:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def recoadd_band(images: Sequence[SEImage], grid: CoaddGrid, out: str | os.PathLike, *, band: str, tilename: str,
                 workdir: str | os.PathLike, setup: CoaddSwarpSetup = DEFAULT_SETUP,
                 sci_files: Mapping[str, Path] | None = None, timings: dict[str, float] | None = None,
                 checksum: bool = False) -> Path:
    """DESDM's re-coadd of one band: both SWarp calls, then the MEF (SCI, MSK, WGT) at ``out``.

    ``workdir`` receives a private work folder (removed afterwards) where SWarp runs.
    ``timings`` (optional) gets the seconds of ``swarp_<band>`` (both calls) and
    ``assemble_<band>`` added. ``checksum``: FITS checksums in the MEF.
    """
    inputs = coadd_inputs(images, sci_files)
    with scratch_dir(workdir, prefix=f"coadd-{band}-") as tmp:
        t0 = time.perf_counter()
        sci, wgt = run_coadd_call(inputs, SCIENCE_WEIGHT_HDU, grid, tmp, setup=setup,
                                  image_out="sci.fits", weight_out="wgt.fits")
        _, mask_weight = run_coadd_call(inputs, MASK_WEIGHT_HDU, grid, tmp, setup=setup,
                                        image_out="msk_sci.fits", weight_out="msk.fits")
        _timed(timings, f"swarp_{band}", t0)
        t0 = time.perf_counter()
        path = assemble_coadd(sci, wgt, mask_weight, out, band=band, tilename=tilename,
                              extra={"NSEIMAGE": len(images)}, checksum=checksum)
        _timed(timings, f"assemble_{band}", t0)
    log.info("re-coadd of %s band %s: %d single-epoch images -> %s", tilename, band, len(images), path)
    return path


def recoadd_band_science(images: Sequence[SEImage], grid: CoaddGrid, out: str | os.PathLike, *, band: str,
                         tilename: str, workdir: str | os.PathLike, setup: CoaddSwarpSetup = DEFAULT_SETUP,
                         sci_files: Mapping[str, Path] | None = None,
                         timings: dict[str, float] | None = None) -> Path:
    """The science plane of one band's re-coadd (the WGT_ME-weighted call), alone at ``out``.

    Weigh and mask it with the nosim re-coadd of the same images (see the module docstring).
    ``timings`` gets ``swarp_<band>`` added.
    """
    inputs = coadd_inputs(images, sci_files)
    out = Path(out)
    with scratch_dir(workdir, prefix=f"coadd-{band}-") as tmp:
        t0 = time.perf_counter()
        sci, _ = run_coadd_call(inputs, SCIENCE_WEIGHT_HDU, grid, tmp, setup=setup,
                                image_out="sci.fits", weight_out="wgt.fits")
        _timed(timings, f"swarp_{band}", t0)
        finish_science(sci, band=band, tilename=tilename)
        with atomic_path(out) as final:
            shutil.move(sci, final)
    return out
