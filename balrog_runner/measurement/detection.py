"""The riz detection image of each DESDM recipe (:mod:`.recipe`), from band coadds, with the real SWarp.

Y3 is :func:`.astromatic.make_detection_image` (one CHI-MEAN call on the tile's grid). Y6 is
DESDM's two calls and the assembly (DESIGN.md section 12; eastlake ``steps/swarp.py``
``_det_coadd``, lines 404-576), run as :mod:`balrog_runner.coadd` runs a band's:

1. r, i, z SCI weighted by each band's WGT, ``COMBINE_TYPE AVERAGE``, ``RESAMPLE Y``,
   ``RESAMPLING_TYPE NEAREST`` (``config/y6_det.swarp``) -> the detection science and weight;
2. the same SCI weighted by each band's *mask weight* -> its weight output is the mask weight;
3. ``coadd_assemble --band det`` (:func:`balrog_runner.coadd.assemble.assemble_coadd`): MSK
   where the mask weight is 0, ``MAGZERO`` 30.

**The mask weight of a band.** DESDM feeds call 2 the weight output of the band's WGT-weighted
call. A band coadd keeps of it only what ``coadd_assemble`` kept: MSK = (that weight == 0). The
detection MSK depends on the zero-ness alone (call 2's output weight is 0 exactly where every
input weight is, and NEAREST on the band's own grid moves no pixel), so the mask weight here is
1 where the band's MSK is 0 and 0 elsewhere: the same detection MSK, from any DESDM-layout coadd
(DESDM's own in coadd campaigns, the re-coadd in single-epoch ones).

**Per realization.** Injection changes SCI only. Call 2 and the weight of call 1 depend on the
input weights alone, so a realization runs call 1 (:func:`y6_detection_science`) and takes the
MSK from the tile's untouched detection image (``FLAG_IMAGE``); :func:`make_y6_detection_image`
runs all three steps (the nosim re-coadd of a single-epoch tile, a kept detection image).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import fitsio
import numpy as np

from ..atomic import atomic_path
from ..coadd.assemble import WCS_KEYS, assemble_coadd, finish_science
from ..coadd.swarp import CoaddInput, CoaddSwarpSetup, run_coadd_call
from ..errors import InputFileError
from ..inputs.single_epoch import CoaddGrid
from ..programs import scratch_dir
from . import astromatic
from .recipe import get_recipe

log = logging.getLogger(__name__)

#: HDUs of a DESDM-layout band coadd.
SCI_HDU, MSK_HDU, WGT_HDU = 0, 1, 2
#: The HDU of a mask-weight file (:func:`write_mask_weight`).
MASK_WEIGHT_HDU = 0


@dataclass(frozen=True)
class DetectionBand:
    """One band going into the detection image.

    ``sci`` holds its science in HDU 0 (the coadd itself, or a realization's injected SCI-only
    copy); ``planes`` is the DESDM-layout coadd whose MSK (1) and WGT (2) weigh it.
    """

    sci: Path
    planes: Path


def swarp_setup(setup: astromatic.SwarpSetup) -> CoaddSwarpSetup:
    """The detection image's SWarp (``run['swarp-config']``, program, deadline) as the coadd stage takes it."""
    return CoaddSwarpSetup(program=setup.program, config=Path(setup.config), overrides=dict(setup.overrides),
                           timeout=setup.timeout)


def band_grid(band: DetectionBand) -> CoaddGrid:
    """The grid of the first band (eastlake: the tile centre, the first band's size and pixel scale)."""
    nx, ny, ra, dec, scale = astromatic.image_geometry(astromatic.ImageRef(Path(band.planes), SCI_HDU))
    return CoaddGrid(ra=ra, dec=dec, naxis1=nx, naxis2=ny, pixel_scale=scale)


def _zeropoint(band: DetectionBand) -> float:
    return astromatic.read_zeropoint_gain((band.sci, SCI_HDU))[0]


def _check(bands: Sequence[DetectionBand]) -> None:
    if not bands:
        raise InputFileError("the detection image needs at least one band")
    for b in bands:
        for path, what in ((b.sci, "detection input image"), (b.planes, "detection input coadd (MSK, WGT)")):
            if not Path(path).is_file():
                raise InputFileError(f"{what} {path} does not exist")


def write_mask_weight(planes: str | os.PathLike, out: str | os.PathLike) -> Path:
    """A band's mask weight for call 2: float32, 1 where its MSK is 0, else 0, with its WCS (module docstring)."""
    try:
        with fitsio.FITS(str(planes)) as f:
            msk = f[MSK_HDU].read()
            header = f[SCI_HDU].read_header()
    except (OSError, ValueError, IndexError) as exc:
        raise InputFileError(f"cannot read the MSK plane (HDU {MSK_HDU}) of {planes}: {exc}") from exc
    cards = [{"name": k, "value": header[k]} for k in WCS_KEYS if k in header]
    with atomic_path(Path(out)) as tmp, fitsio.FITS(str(tmp), "rw", clobber=True) as f:
        f.write((msk == 0).astype(np.float32), header=cards)
    return Path(out)


def _call(bands: Sequence[DetectionBand], weights: Sequence[Path], weight_hdu: int, grid: CoaddGrid, tmp: Path,
          setup: CoaddSwarpSetup, image_out: str, weight_out: str) -> tuple[Path, Path]:
    inputs = [CoaddInput(sci=Path(b.sci), weights=Path(w), mag_zero=_zeropoint(b)) for b, w in zip(bands, weights,
                                                                                                   strict=True)]
    return run_coadd_call(inputs, weight_hdu, grid, tmp, setup=setup, image_out=image_out, weight_out=weight_out,
                          combine_type=get_recipe("y6").combine_type)


def y6_detection_science(bands: Sequence[DetectionBand], out_sci: str | os.PathLike, out_wgt: str | os.PathLike, *,
                         setup: astromatic.SwarpSetup, workdir: str | os.PathLike, tilename: str = "") -> tuple[Path, Path]:
    """Call 1 alone: the Y6 detection science and weight at ``out_sci``, ``out_wgt`` (zero point 30)."""
    _check(bands)
    grid = band_grid(bands[0])
    with scratch_dir(workdir, prefix="det-y6-") as tmp:
        sci, wgt = _call(bands, [b.planes for b in bands], WGT_HDU, grid, tmp, swarp_setup(setup),
                         "det_sci.fits", "det_wgt.fits")
        finish_science(sci, band="det", tilename=tilename)
        for src, dst in ((sci, Path(out_sci)), (wgt, Path(out_wgt))):
            with atomic_path(dst) as final:
                shutil.move(src, final)
    return Path(out_sci), Path(out_wgt)


def make_y6_detection_image(bands: Sequence[DetectionBand], out: str | os.PathLike, *, setup: astromatic.SwarpSetup,
                            workdir: str | os.PathLike, tilename: str = "",
                            extra: Mapping[str, object] | None = None) -> Path:
    """DESDM's Y6 detection image whole: both calls and the assembly, a MEF (SCI, MSK, WGT) at ``out``."""
    _check(bands)
    grid = band_grid(bands[0])
    coadd_setup = swarp_setup(setup)
    with scratch_dir(workdir, prefix="det-y6-") as tmp:
        sci, wgt = _call(bands, [b.planes for b in bands], WGT_HDU, grid, tmp, coadd_setup,
                         "det_sci.fits", "det_wgt.fits")
        mask_weights = [write_mask_weight(b.planes, tmp / f"mskwgt_{k}.fits") for k, b in enumerate(bands)]
        _, mask_weight = _call(bands, mask_weights, MASK_WEIGHT_HDU, grid, tmp, coadd_setup,
                               "det_tmpsci.fits", "det_msk.fits")
        path = assemble_coadd(sci, wgt, mask_weight, out, band="det", tilename=tilename,
                              extra={"DETRECIP": "y6", **(extra or {})})
    log.info("Y6 detection image of %d bands -> %s", len(bands), path)
    return path


def make_detection_image(recipe: str, bands: Sequence[DetectionBand], out: str | os.PathLike, *,
                         setup: astromatic.SwarpSetup, workdir: str | os.PathLike, tilename: str = "") -> Path:
    """The detection image of ``recipe`` as a DESDM MEF (SCI, MSK, WGT) at ``out``."""
    if get_recipe(recipe).name == "y6":
        return make_y6_detection_image(bands, out, setup=setup, workdir=workdir, tilename=tilename)
    pairs = [((Path(b.sci), SCI_HDU), (Path(b.planes), WGT_HDU)) for b in bands]
    extra = {"TILENAME": (tilename, "DES tile")} if tilename else None
    return astromatic.make_detection_image(pairs, out, setup=setup, workdir=workdir, extra=extra)
