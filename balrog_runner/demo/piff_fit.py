"""A real Piff model of one synthetic CCD, fit by ``piff`` itself to the stars on that CCD.

The synthetic single-epoch survey (:mod:`.synth_se`) gives each CCD a Piff model as DES Y6
did (DESIGN.md section 12), so single-epoch runs with ``balrog['psf-model'] = 'piff'`` draw
with models Piff made, never with hand-made files. The setup follows what Y6 fit, scaled to
a small test CCD: a PixelGrid model (0.30" samples, 17 x 17: 5.1" square, the range DESIGN.md
gives), interpolated across the CCD by a BasisPolynomial of order 1 in the field position
(u, v) and, for the colour-dependent models of Y6, in the star's colour property
(``GI_COLOR`` for g r i, ``IZ_COLOR`` for z). About 60 stars fit in ~7 s.

The stars are given by position: the survey's bright isolated stars on the CCD, away from its
edge, at their true positions. Piff fits their fluxes, and the model is fit at those positions
(PixelGrid ``centered: False``): with ``centered: True``, Piff's default, the star centroids are
free too, and the model's centroid, kept near 0 only by re-centring between iterations, drifts
across a test CCD by 0.017 px rms in HSM centroid (0.05 px with 10 iterations instead of 2),
against 0.008-0.011 px here (measured on the test survey of ``tests/test_piff.py``): the
injected stars' centroid test would measure Piff's degeneracy, not the injection. The model
is written to a temporary name and renamed: a killed fit leaves no model.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import fitsio
import numpy as np

from ..atomic import atomic_path
from ..errors import ExternalProgramError
from ..injection.piff_psf import import_piff

log = logging.getLogger(__name__)

#: PixelGrid sample spacing (arcsec) and side (samples) of the synthetic models.
PIXELGRID_SCALE = 0.30
PIXELGRID_SIZE = 17
#: Side of the star stamps Piff fits, pixels.
STAMP_SIZE = 25
#: Fewest stars a model is fit to (DESDM's QA drops CCDs with fewer than 30; PIFF_HSM_MODEL_QA).
MIN_STARS = 20


def make_piff_model(image: str | os.PathLike, out: str | os.PathLike, x: np.ndarray, y: np.ndarray, *,
                    workdir: str | os.PathLike, sci_hdu: int = 0, weight_hdu: int = 1,
                    color_name: str | None = None, colors: Sequence[float] | None = None) -> Path:
    """Fit a Piff model to the stars at (``x``, ``y``) (1-based pixels) of ``image``; write ``out``.

    ``color_name`` (``'GI_COLOR'``/``'IZ_COLOR'``) with ``colors`` (one per star) makes the
    model interpolate in that colour too, as DES Y6's do. An :class:`ExternalProgramError` names the
    image when Piff fails or there are too few stars.
    """
    piff = import_piff()
    x, y = np.asarray(x, float), np.asarray(y, float)
    image, out, workdir = Path(image), Path(out), Path(workdir)
    if len(x) < MIN_STARS:
        raise ExternalProgramError("piff", None, detail=f"cannot model {image}: only {len(x)} stars "
                                                        f"(at least {MIN_STARS} needed)")
    dtype = [("x", "f8"), ("y", "f8")] + ([(color_name, "f8")] if color_name else [])
    cat = np.zeros(len(x), dtype=dtype)
    cat["x"], cat["y"] = x, y
    keys: list[str] = ["u", "v"]
    if color_name:
        cat[color_name] = np.asarray(colors, float)
        keys.append(color_name)
    cat_file = workdir / f"{out.name}.stars.fits"
    fitsio.write(str(cat_file), cat, clobber=True)
    try:
        with atomic_path(out) as tmp:
            config = {
                "input": {"image_file_name": str(image), "image_hdu": sci_hdu, "weight_hdu": weight_hdu,
                          "cat_file_name": str(cat_file), "x_col": "x", "y_col": "y", "stamp_size": STAMP_SIZE,
                          **({"property_cols": [color_name]} if color_name else {})},
                "psf": {"type": "Simple",
                        "model": {"type": "PixelGrid", "scale": PIXELGRID_SCALE, "size": PIXELGRID_SIZE,
                                  "centered": False},
                        "interp": {"type": "BasisPolynomial", "order": [1] * len(keys), "keys": keys}},
                "output": {"file_name": str(tmp)},
                "verbose": 0,
            }
            try:
                piff.piffify(config, logger=logging.getLogger("piff"))
            except Exception as exc:  # Piff raises many kinds for a fit that fails
                detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise ExternalProgramError("piff", None, detail=f"could not model the PSF of {image} from "
                                                                f"{len(x)} stars: {detail}") from exc
            if not Path(tmp).is_file():
                raise ExternalProgramError("piff", None, detail=f"wrote no model for {image}")
    finally:
        cat_file.unlink(missing_ok=True)
    return out
