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
the row, with ``masked`` = 1 and the ``not_drawn`` bit :data:`~balrog_runner.injection.draw.MASKED`,
so ``balrog_index`` stays stable and the report leaves them out); ``ignore`` does neither.

The MSK and WGT planes are memory-mapped and only the pixels under the objects are read:
two 10000^2 planes per band would otherwise be read in full by every realization.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..errors import InputFileError

log = logging.getLogger(__name__)

#: ``balrog['masked-positions']`` values.
MODES = ("flag", "skip", "ignore")
#: Why the planes are needed, for the error when a file has none.
_WHY = ("; needed to keep objects off masked pixels: set balrog['masked-positions'] = 'ignore' "
        "to inject regardless")


def _masked_in_hdul(hdul: fits.HDUList, path: Path, x: np.ndarray, y: np.ndarray,
                    mask_bits: int | None) -> np.ndarray:
    """Per position (1-based FITS x, y): centre pixel has a ``mask_bits`` MSK bit or weight <= 0.

    ``hdul`` is open memory-mapped: indexing its planes reads only the pages under the objects.
    """
    from .draw import image_hdu_index

    ix = np.floor(np.asarray(x, dtype=np.float64) + 0.5)
    iy = np.floor(np.asarray(y, dtype=np.float64) + 0.5)
    masked = np.zeros(len(ix), dtype=bool)
    msk = hdul[image_hdu_index(hdul, "MSK", 1, path, _WHY)]
    wgt = hdul[image_hdu_index(hdul, "WGT", 2, path, _WHY)]
    ny, nx = msk.shape
    if wgt.shape != (ny, nx):
        raise InputFileError(f"{path}: MSK {msk.shape} and WGT {wgt.shape} planes differ in shape")
    inside = (ix >= 1) & (ix <= nx) & (iy >= 1) & (iy <= ny)
    rows, cols = iy[inside].astype(np.intp) - 1, ix[inside].astype(np.intp) - 1
    bits = np.asarray(msk.data[rows, cols]).astype(np.int64)
    weight = np.asarray(wgt.data[rows, cols])
    masked[inside] = ((bits != 0) if mask_bits is None else (bits & int(mask_bits)) != 0) | ~(weight > 0)
    return masked


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[fits.HDUList]:
    """The image memory-mapped; a read failure becomes an InputFileError naming it."""
    try:
        with fits.open(path, memmap=True) as hdul:
            yield hdul
    except InputFileError:  # already names the file (a ValueError too: not to be wrapped again)
        raise
    except (OSError, ValueError, TypeError) as exc:
        raise InputFileError(f"cannot read the MSK/WGT planes of {path}: {exc}") from exc


def masked_in_image(path: Path, x: np.ndarray, y: np.ndarray, mask_bits: int | None) -> np.ndarray:
    """:func:`_masked_in_hdul` for the file at ``path``."""
    with _opened(Path(path)) as hdul:
        return _masked_in_hdul(hdul, Path(path), x, y, mask_bits)


def masked_centres(images: Mapping[str, Path], ra: np.ndarray, dec: np.ndarray, mask_bits: int | None) -> np.ndarray:
    """Per object: centred on a masked or zero-weight pixel in any of ``images`` (band -> file)."""
    import galsim

    from .draw import sci_index

    masked = np.zeros(len(ra), dtype=bool)
    for band, path in images.items():
        path = Path(path)
        with _opened(path) as hdul:  # one open per band: the WCS, then the pixels under the objects
            wcs = galsim.GSFitsWCS(header=hdul[sci_index(hdul, path)].header)
            x, y = wcs.radecToxy(np.asarray(ra), np.asarray(dec), units="deg")
            here = _masked_in_hdul(hdul, path, np.atleast_1d(x), np.atleast_1d(y), mask_bits)
        log.debug("band %s: %d of %d centres on masked pixels", band, int(here.sum()), len(here))
        masked |= here
    return masked
