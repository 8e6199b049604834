"""The once-per-tile nosim run at a fraction of its cost: model fitting only where it is used.

A nosim detection is used in two ways:

- every realization's nosim catalog keeps the detections within ``ASSOC_RADIUS`` (2 px) of
  one of its truth positions (:func:`~.measure.nosim_for_realization`): every column,
  model fitting included, goes to the ``<dbname>_nosim`` table;
- the match table (:mod:`.blends`) and the report look at *every* detection, but only at
  its position and ``MAG_AUTO``/``FLUX_AUTO``/``FLUXERR_AUTO``.

Model fitting (``MAG_MODEL``, ``SPREAD_MODEL``, ``*_DETMODEL``, ...) is what a full DESDM
parameter set spends its time on (~95% of a 10000^2 tile's 67 min), so
:func:`measure_nosim_split` measures in two passes per image, dual-image against the same
detection image as before:

1. the **light** columns (the parameter file without its model-fitting columns,
   :func:`model_fitting_parameter`) for every detection;
2. the full parameter file for the detections whose ``X_IMAGE``/``Y_IMAGE`` lie within
   ``ASSOC_RADIUS + FIT_MARGIN`` pixels of *any* position of the campaign's position file
   (every realization of the tile), with SExtractor's ``ASSOCSELEC_TYPE MATCHED`` on those
   detections' own positions (which skips the fit of every other detection).

Detection does not depend on the parameter file, so both passes find the same detections
in the same order; the rows of pass 2 are joined to pass 1 on their exact ``X_IMAGE_DET``,
``Y_IMAGE_DET`` (ASSOC renumbers ``NUMBER``). The tile-wide catalog then holds every
detection with its light columns, and the model-fitting columns where ``model_fitted`` is 1
(NaN in float and -1 in integer columns elsewhere). Checked against the real SExtractor
2.25 (``tests/test_nosim_split.py``, ``benchmarks/nosim_cost.py``): the light columns
are bit-identical with and without model fitting, and every realization's nosim catalog
equals, in every column, the one cut from a full nosim run. The join checks this on every
tile (the light columns of the fitted rows must equal the first pass's) and falls back to
the full run if anything does not line up.

``FIT_MARGIN`` (0.1 px) covers the difference between the positions given here and the
truth ``x``/``y`` of a realization (both are ``GSFitsWCS.radecToxy`` of the first band, but
a margin keeps an association at exactly 2 px safe); a realization that meets a detection
without its fit anyway (a nosim catalog made for other positions) fails with a clear error
(:func:`~.measure.nosim_for_realization`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from .. import programs
from . import astromatic, measure

log = logging.getLogger(__name__)

#: Extra pixels beyond ``ASSOC_RADIUS`` within which a nosim detection is model-fitted.
FIT_MARGIN = 0.1
#: ASSOC radius (pixels) of the fitted pass: its list holds the detections' own positions.
SELF_RADIUS = 0.1
#: The per-row column of a split nosim catalog: 1 = the model-fitting columns were measured.
FITTED_COLUMN = measure.NOSIM_FITTED_COLUMN
#: Substrings that mark a SExtractor 2.25 model-fitting parameter (``source-extractor -dp``
#: lists them from ``VECTOR_MODEL`` to the end: ``*MODEL*``, ``*_HYBRID``, ``*_SPHEROID``,
#: ``*_DISK``, ``*_POINTSOURCE``, ``*_BACKOFFSET``, ``*_DETMODEL``), plus two names of that
#: block that carry none of them.
MODEL_FITTING_MARKERS = ("MODEL", "HYBRID", "SPHEROID", "DISK", "POINTSOURCE", "BACKOFFSET")
MODEL_FITTING_NAMES = frozenset({"XFOCAL_WORLD", "YFOCAL_WORLD"})
#: A position no detection can be near (pixels): the fitted pass of a tile with nothing to fit.
_NOWHERE = -1.0e7


def model_fitting_parameter(name: str) -> bool:
    """Whether SExtractor computes output parameter ``name`` (``FLUX_APER(12)`` style allowed)
    by model fitting, the expensive part of a DESDM measurement."""
    base = name.split("(", 1)[0].strip().upper()
    return base in MODEL_FITTING_NAMES or any(m in base for m in MODEL_FITTING_MARKERS)


def _parameter_names(text: str) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


def split_parameters(param: str | os.PathLike) -> tuple[list[str], list[str]]:
    """``(light, model_fitting)`` output parameters of a SExtractor parameter file, in order."""
    names = _parameter_names(Path(param).read_text())
    return ([n for n in names if not model_fitting_parameter(n)], [n for n in names if model_fitting_parameter(n)])


def can_split(param: str | os.PathLike) -> bool:
    """Whether a nosim run with ``param`` gains from the split: it fits models, and its light
    part has the detection positions the join needs."""
    try:
        light, fitted = split_parameters(param)
    except (OSError, UnicodeDecodeError):
        return False  # run_sextractor reports an unreadable parameter file itself
    bases = {n.split("(", 1)[0].upper() for n in light}
    return bool(fitted) and {"X_IMAGE", "Y_IMAGE"} <= bases


def light_setup(setup: astromatic.SextractorSetup, workdir: Path) -> astromatic.SextractorSetup:
    """``setup`` with a copy of its parameter file without the model-fitting parameters."""
    lines = [line for line in Path(setup.param).read_text().splitlines()
             if not (line.split("#", 1)[0].strip() and model_fitting_parameter(line.split("#", 1)[0]))]
    param = workdir / f"light_{Path(setup.param).name}"
    param.write_text("\n".join(lines) + "\n")
    return dataclasses.replace(setup, param=param)


def near_positions(light: np.ndarray, fit_near: np.ndarray | Iterable[np.ndarray]) -> np.ndarray:
    """Mask of the detections (``X_IMAGE_DET``, ``Y_IMAGE_DET``, 1-based pixels) within
    ``ASSOC_RADIUS + FIT_MARGIN`` pixels of a position of ``fit_near``: an ``(n, 2)`` array of
    pixel x, y or an iterable of such chunks (:func:`pixel_positions`), so that 10^4
    realizations' positions are never all in memory at once."""
    near = np.zeros(len(light), dtype=bool)
    for chunk in [fit_near] if isinstance(fit_near, np.ndarray) else fit_near:
        xy = np.asarray(chunk, dtype=np.float64).reshape(-1, 2)
        index = measure.associate(light["X_IMAGE_DET"], light["Y_IMAGE_DET"], xy[:, 0], xy[:, 1],
                                  np.arange(len(xy), dtype=np.int64), radius=measure.ASSOC_RADIUS + FIT_MARGIN)
        near |= index >= 0
        if near.all():  # positions covering the tile: nothing left to find
            break
    return near


#: Positions converted to pixels (and searched) at a time: 16 MB of pixel coordinates.
POSITION_CHUNK = 1_000_000
#: CPU of the light pass over a full DESDM measurement (3-6% per image at 2048^2, rounded up).
LIGHT_PASS_COST = 0.1


def worth_splitting(n_positions: int, image_shape: tuple[int, int]) -> bool:
    """Whether two passes cost less than model-fitting every detection in one.

    Uniform positions leave a fraction ``exp(-n pi r^2 / area)`` of the detections farther
    than ``r`` from all of them; once that is below the light pass's cost (on a 10000^2 tile
    ~1.7e7 positions: 17,000 realizations of 1,000 objects, 2,000 of a 30" lattice), one full
    pass is cheaper.
    """
    radius = measure.ASSOC_RADIUS + FIT_MARGIN
    covered = n_positions * np.pi * radius**2 / max(1, image_shape[0] * image_shape[1])
    return math.exp(-covered) > LIGHT_PASS_COST


def pixel_positions(image: str | os.PathLike, ra: np.ndarray, dec: np.ndarray,
                    chunk: int = POSITION_CHUNK) -> Iterator[np.ndarray]:
    """``(m, 2)`` chunks of the 1-based pixel x, y of positions (degrees) on ``image``'s SCI
    WCS, computed as the injection computes its truth ``x``/``y`` (``GSFitsWCS.radecToxy``;
    pass the first band's image, the one the truth table takes them from)."""
    from astropy.io import fits

    from ..injection import draw

    image = Path(image)
    with fits.open(image, memmap=True) as hdul:
        header = hdul[draw.sci_index(hdul, image)].header
    wcs = draw.band_header(image, header, require_gain=False).wcs
    for start in range(0, len(ra), chunk):
        x, y = wcs.radecToxy(np.asarray(ra[start:start + chunk], dtype=np.float64),
                             np.asarray(dec[start:start + chunk], dtype=np.float64), units="deg")
        yield np.column_stack([np.atleast_1d(x), np.atleast_1d(y)]).astype(np.float64)


def _fill_value(dtype: np.dtype) -> float | int:
    """What a column holds where it was not measured: NaN, -1 for signed, 0 for unsigned integers."""
    if dtype.kind == "f":
        return np.nan
    return -1 if dtype.kind == "i" else 0


def join_passes(light: np.ndarray, fitted: np.ndarray) -> np.ndarray | None:
    """The tile-wide catalog: ``light``'s rows, ``fitted``'s columns and values where it has the row.

    Rows are matched on the exact ``(X_IMAGE_DET, Y_IMAGE_DET)`` pair. Returns None (the
    caller then runs the full measurement) when that pairing is not one-to-one or when a
    fitted row's light columns differ from the first pass's: the split must never change a
    value.
    """
    names = [n for n in fitted.dtype.names if not n.startswith(measure.ASSOC_COUNT_COLUMN)]  # NUMBER_ASSOC_<B>
    if not set(light.dtype.names) <= set(names):
        log.warning("nosim split: the light pass has columns the full pass lacks; measuring in full")
        return None
    keys = list(zip(light["X_IMAGE_DET"].tolist(), light["Y_IMAGE_DET"].tolist(), strict=True))
    row_of = {k: i for i, k in enumerate(keys)}
    rows = np.array([row_of.get(k, -1) for k in zip(fitted["X_IMAGE_DET"].tolist(),
                                                   fitted["Y_IMAGE_DET"].tolist(), strict=True)], dtype=np.int64)
    if len(row_of) != len(keys) or np.any(rows < 0) or len(np.unique(rows)) != len(rows):
        log.warning("nosim split: %d fitted detections do not pair one-to-one with the %d of the light pass; "
                    "measuring in full", len(fitted), len(light))
        return None
    for name in light.dtype.names:
        if name != "NUMBER" and not np.array_equal(light[name][rows], fitted[name],
                                                   equal_nan=light[name].dtype.kind == "f"):
            log.warning("nosim split: column %s differs between the light and the full pass; measuring in full", name)
            return None
    out = np.empty(len(light), dtype=[(n, fitted.dtype[n].str) for n in names] + [(FITTED_COLUMN, "i2")])
    for name in names:
        out[name] = light[name] if name in light.dtype.names else _fill_value(fitted.dtype[name])
    for name in names:
        if name not in light.dtype.names:
            out[name][rows] = fitted[name]
    out[FITTED_COLUMN] = 0
    out[FITTED_COLUMN][rows] = 1
    return out


def _wide(catalogs: Mapping[str, Path]) -> np.ndarray:
    """:func:`~.measure.build_wide_catalog` of one run, a run that kept no detection included."""
    tables = {band: measure._read_catalog(path, band) for band, path in catalogs.items()}
    if all(len(t) == 0 for t in tables.values()):  # the column layout of an empty run
        return measure.build_wide_catalog({b: np.zeros(1, dtype=t.dtype) for b, t in tables.items()})[:0]
    return measure.build_wide_catalog(tables)


def measure_nosim_split(
    images: Mapping[str, str | os.PathLike],
    psfs: Mapping[str, str | os.PathLike | None],
    out_path: str | os.PathLike,
    fit_near: np.ndarray | Iterable[np.ndarray],
    *,
    setup: astromatic.SextractorSetup = astromatic.DEFAULT_SEXTRACTOR,
    workdir: str | os.PathLike | None = None,
    band_extra: Mapping[str, Mapping[str, object]] | None = None,
    flag_image: tuple[str | os.PathLike, int] | None = None,
) -> Path | None:
    """The nosim run in two passes (module docstring); None when it must be run in full.

    ``fit_near`` holds the 1-based pixel x, y of every position of the tile's position file:
    an ``(n, 2)`` array or an iterable of such chunks (:func:`pixel_positions`). Writes ``out_path`` atomically (header ``NOSIMFIT`` = ``near``,
    ``FITRAD`` in pixels, ``NFITTED``) and returns it.
    """
    out_path = Path(out_path)
    with programs.scratch_dir(workdir if workdir is not None else out_path.parent, prefix=".nosim-") as tmp:
        prefix = f"{out_path.stem}_"
        light_cats = measure.run_band_catalogs(images[measure.DET], images, psfs, tmp, prefix=f"{prefix}light_",
                                               setup=light_setup(setup, tmp), workdir=tmp, band_extra=band_extra,
                                               flag_image=flag_image)
        light = _wide(light_cats)
        near = near_positions(light, fit_near) if len(light) else np.zeros(0, dtype=bool)
        targets = np.column_stack([light["X_IMAGE_DET"][near], light["Y_IMAGE_DET"][near]]).astype(np.float64)
        if len(targets) == 0:
            targets = np.array([[_NOWHERE, _NOWHERE]])
        bands = [b for b in images if b != measure.DET]
        fit_setup, fit_extra = measure.assoc_overrides(setup, band_extra, [*bands, measure.DET], targets, tmp)
        for extra in fit_extra.values():
            extra["ASSOC_RADIUS"] = SELF_RADIUS
        fit_cats = measure.run_band_catalogs(images[measure.DET], images, psfs, tmp, prefix=f"{prefix}fit_",
                                             setup=fit_setup, workdir=tmp, band_extra=fit_extra,
                                             flag_image=flag_image)
        joined = join_passes(light, _wide(fit_cats))
        if joined is None:
            return None
        radius = measure.ASSOC_RADIUS + FIT_MARGIN
        measure.write_catalog(out_path, joined, header={"BALRUN": "nosim", "NOSIMFIT": "near", "FITRAD": radius,
                                                        "NFITTED": int(joined[FITTED_COLUMN].sum())})
    log.info("wrote %s (%d detections, %d model-fitted: within %.2f px of a position)", out_path, len(joined),
             int(joined[FITTED_COLUMN].sum()), radius)
    return out_path
