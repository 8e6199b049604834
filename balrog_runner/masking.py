"""Which injected objects are centred on a masked pixel of the tile's images.

Why it matters: an object injected onto a bad column, a bright-star mask or a zero-weight
edge is measured on pixels the survey throws away (SExtractor gives them no weight), so it
is "lost" for a reason that has nothing to do with its magnitude. Counted as drawn, such
objects pull completeness down by the masked fraction of the tile; that is the footprint's
business, not the selection function's. DES Y3 Balrog kept its lattice off masked pixels.

A position is *masked* when, in any injected band, the pixel under its centre has a MSK bit
of ``mask_bits`` set (all bits by default) or a weight <= 0. The pixel is the one whose
centre is nearest: ``floor(x + 0.5)`` of GalSim's 1-based position from the same WCS the
injection uses, so the test and the drawing agree on where the object is. A centre off the
image is not masked here (the injection flags it as off the image).

``balrog['masked-positions']`` says what to do: ``flag`` (the default) draws every object and
marks the masked ones in the truth column ``masked``; ``skip`` does not draw them (truth keeps
the row, with ``masked`` = 1 and the ``not_drawn`` bit :data:`~balrog_runner.inject.MASKED`,
so ``balrog_index`` stays stable and the report leaves them out); ``ignore`` does neither.

The MSK and WGT planes are memory-mapped and only the pixels under the objects are read:
two 10000^2 planes per band would otherwise be read in full by every realization.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from astropy.io import fits

from .errors import InputFileError

log = logging.getLogger(__name__)

#: ``balrog['masked-positions']`` values.
MODES = ("flag", "skip", "ignore")
#: DESDM coadd HDUs (funpacked): SCI 0, MSK 1, WGT 2; found by EXTNAME first.
_MSK, _WGT = ("MSK", 1), ("WGT", 2)


def _hdu(hdul: fits.HDUList, name: str, fallback: int, path: Path) -> fits.ImageHDU:
    for hdu in hdul:
        if str(hdu.header.get("EXTNAME", "")).strip().upper() == name:
            return hdu
    if len(hdul) > fallback and hdul[fallback].header.get("NAXIS", 0) == 2:
        return hdul[fallback]
    raise InputFileError(f"{path} has no {name} image HDU (needed to keep objects off masked pixels; "
                         "set balrog['masked-positions'] = 'ignore' to inject regardless)")


def _plane_values(hdu: fits.ImageHDU, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Pixel values at (rows, cols), 0-based, reading only the pages that hold them."""
    return np.asarray(hdu.data[rows, cols])


def masked_in_image(path: Path, x: np.ndarray, y: np.ndarray, mask_bits: int | None) -> np.ndarray:
    """Per position (1-based FITS x, y): centre pixel has a ``mask_bits`` MSK bit or weight <= 0."""
    ix = np.floor(np.asarray(x, dtype=np.float64) + 0.5)
    iy = np.floor(np.asarray(y, dtype=np.float64) + 0.5)
    masked = np.zeros(len(ix), dtype=bool)
    try:
        with fits.open(path, memmap=True, do_not_scale_image_data=False) as hdul:
            msk, wgt = _hdu(hdul, *_MSK, path), _hdu(hdul, *_WGT, path)
            ny, nx = msk.shape
            if wgt.shape != (ny, nx):
                raise InputFileError(f"{path}: MSK {msk.shape} and WGT {wgt.shape} planes differ in shape")
            inside = (ix >= 1) & (ix <= nx) & (iy >= 1) & (iy <= ny)
            rows, cols = iy[inside].astype(np.intp) - 1, ix[inside].astype(np.intp) - 1
            bits = _plane_values(msk, rows, cols).astype(np.int64)
            weight = _plane_values(wgt, rows, cols)
            bad = ((bits != 0) if mask_bits is None else (bits & int(mask_bits)) != 0) | ~(weight > 0)
            masked[inside] = bad
    except (OSError, ValueError, TypeError) as exc:
        raise InputFileError(f"cannot read the MSK/WGT planes of {path}: {exc}") from exc
    return masked


def masked_centres(images: Mapping[str, Path], ra: np.ndarray, dec: np.ndarray, mask_bits: int | None) -> np.ndarray:
    """Per object: centred on a masked or zero-weight pixel in any of ``images`` (band -> file)."""
    import galsim

    from .inject import sci_index

    masked = np.zeros(len(ra), dtype=bool)
    for band, path in images.items():
        path = Path(path)
        with fits.open(path, memmap=True) as hdul:
            header = hdul[sci_index(hdul, path)].header
        x, y = galsim.GSFitsWCS(header=header).radecToxy(np.asarray(ra), np.asarray(dec), units="deg")
        here = masked_in_image(path, np.atleast_1d(x), np.atleast_1d(y), mask_bits)
        log.debug("band %s: %d of %d centres on masked pixels", band, int(here.sum()), len(here))
        masked |= here
    return masked
