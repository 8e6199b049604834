"""Piff PSF models of single-epoch CCDs (DES Y6), read once per file, apodized, evaluated per object.

DES Y6 models each CCD's PSF with Piff (rmjarvis/Piff) instead of PSFEx (DESIGN.md section
12). What drawing with such a model needs, and why:

- **Reading.** ``piff.read`` (piff 1.7.0, the optional extra ``[piff]``), cached per file
  (path, size and modification time): every band's CCD is read once per process, not once
  per realization (eastlake des_piff.py keeps an ``lru_cache`` of 200 files likewise).
- **pixmappy.** DESDM's Piff files pickle a ``pixmappy.GalSimWCS``; pixmappy is not on PyPI.
  Unpickling such a file without it is a one-line :class:`InputFileError` naming pixmappy
  and where to install it from (:data:`PIXMAPPY_HINT`).
- **The profile** at the object's position on its chip: ``psf.get_profile(x, y)`` returns a
  profile in the chip's tangent-plane (u, v) arcsec, which is what ``wcs.local(pos)`` maps a
  stamp to, with the pixel response included (``'no_pixel'``). eastlake's ``DES_Piff``
  instead draws the model on a 53 x 53 stamp in the local WCS and wraps it in a Lanczos-15
  ``InterpolatedImage`` of flux 1 (:meth:`PiffModel.stamp_profile`); both are kept here so
  ``benchmarks/psf_cost.py`` can set them side by side; drawing uses :data:`DEFAULT_METHOD`.
- **Colour.** Y6 models of g, r, i interpolate in ``GI_COLOR`` and of z in ``IZ_COLOR``
  (``psf.interp_property_names``). An object's colour is its truth magnitudes' difference
  (g - i, i - z), clipped to the Y6 range, or the Y6 default where the truth lacks a band
  or the value is not finite (eastlake des_piff.py:13-60): :func:`object_colors`.
- **Apodization.** A PixelGrid model is a square of samples; interpolated, its corners hold
  whatever the fit left there, and every injected object would carry a faint square. eastlake
  tapers the grid radially (its patch of Piff's ``PixelGrid.getProfile``, piff_package/
  apodize.patch): samples are multiplied by a cumulative triweight kernel that is 1 inside
  4.25 DECam pixels (0.263") of the grid centre and falls to 0 over 6 widths of 1 pixel
  beyond (the kernel's [-3, 3] support), then rescaled to the sum they had. The same effect
  is applied here to every PixelGrid model after reading (:func:`apodize`), not the patch.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import galsim
import numpy as np

from ..errors import ConfigError, InputFileError

log = logging.getLogger(__name__)

#: How to install the optional dependency.
PIFF_EXTRA = "pip install 'balrog_runner[piff]'"
#: How to install pixmappy (not on PyPI), which DESDM's Piff files need.
PIXMAPPY_HINT = "pip install git+https://github.com/gbernstein/pixmappy.git"

#: Y6 colour properties: default, allowed range, and the two truth bands they are made of
#: (eastlake des_piff.py:13-28).
COLOR_DEFAULTS = {"GI_COLOR": 1.1, "IZ_COLOR": 0.34}
COLOR_RANGES = {"GI_COLOR": (0.0, 3.5), "IZ_COLOR": (0.0, 0.65)}
COLOR_BANDS = {"GI_COLOR": ("g", "i"), "IZ_COLOR": ("i", "z")}

#: Apodization of PixelGrid models (eastlake piff_package/apodize.patch): radius and width, arcsec.
DECAM_PIXEL = 0.263
APODIZE_RADIUS = 4.25 * DECAM_PIXEL
APODIZE_WIDTH = 1.0 * DECAM_PIXEL

#: Drawing methods: 'profile' (get_profile, no_pixel) or 'stamp' (eastlake's DES_Piff).
METHODS = ("profile", "stamp")
#: The one drawing uses. Measured (benchmarks/psf_cost.py, the test survey's models, stars and
#: galaxies): get_profile and eastlake's stamp agree to 1.2e-5 of the flux per pixel, 6e-4 px in
#: HSM centroid and 4e-4 in size; get_profile costs 1.65 ms per star against 11.5 ms.
DEFAULT_METHOD = "profile"
#: eastlake's stamp side, pixels.
STAMP_SIZE = 53


def import_piff():
    """The ``piff`` module; a one-line ConfigError naming the extra when it is not installed."""
    try:
        import piff
    except ImportError:
        raise ConfigError(f"balrog['psf-model'] = 'piff' needs piff, which is not installed: {PIFF_EXTRA}") from None
    return piff


def triweight_cdf(t: np.ndarray) -> np.ndarray:
    """Cumulative distribution of the triweight kernel on [-1, 1] (0 below, 1 above)."""
    t = np.clip(t, -1.0, 1.0)
    return 0.5 + 35.0 / 32.0 * (t - t**3 + 0.6 * t**5 - t**7 / 7.0)


def apodization_weights(size: int, scale: float, radius: float = APODIZE_RADIUS,
                        width: float = APODIZE_WIDTH) -> np.ndarray:
    """Weights of a ``size`` x ``size`` grid of samples ``scale`` arcsec apart: 1 within
    ``radius`` arcsec of the grid centre (GalSim's ``im.center``, the model's origin with
    ``use_true_center=False``), a triweight taper over ``6 width`` beyond, 0 further out."""
    c = size // 2  # 0-based index of im.center for odd and even sizes
    d = (np.arange(size) - c) * scale
    r = np.hypot(d[None, :], d[:, None])
    return triweight_cdf((radius + 3.0 * width - r) / (3.0 * width))


def _apodize_model(model: Any) -> None:
    """Wrap one PixelGrid model's ``getProfile`` so its samples are tapered (module docstring)."""
    if getattr(model, "_balrog_apodized", False):
        return
    weights = apodization_weights(model.size, model.scale).ravel()
    original = model.getProfile

    def getProfile(params):  # noqa: N802 - Piff's method name
        params = np.asarray(params, dtype=float)
        tapered = params * weights
        total = tapered.sum()
        if total != 0:
            tapered *= params.sum() / total
        return original(tapered)

    model.getProfile = getProfile
    model._balrog_apodized = True


def apodize(psf: Any) -> int:
    """Apodize every PixelGrid model inside a Piff PSF (single, per-chip, sums); return how many."""
    piff = import_piff()
    seen, stack, count = set(), [psf], 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        model = getattr(obj, "model", None)
        if isinstance(model, piff.PixelGrid):
            _apodize_model(model)
            count += 1
        stack.extend(getattr(obj, "psf_by_chip", {}).values())
        stack.extend(getattr(obj, "components", []) or [])
    return count


@functools.lru_cache(maxsize=1024)  # a tile: ~200 CCDs per band, 5 bands, per process
def _read(path: str, size: int, mtime_ns: int) -> Any:
    piff = import_piff()
    try:
        psf = piff.read(path)
    except ModuleNotFoundError as exc:
        if exc.name == "pixmappy" or "pixmappy" in str(exc):
            raise InputFileError(f"Piff model {path} has a pixmappy WCS, and pixmappy is not installed "
                                 f"(not on PyPI): {PIXMAPPY_HINT}") from None
        raise InputFileError(f"cannot read Piff model {path}: {exc}") from None
    except Exception as exc:  # fitsio / Piff raise OSError, KeyError, ValueError...
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputFileError(f"{path} is not a Piff model ({detail})") from None
    apodize(psf)
    return psf


@dataclass
class PiffModel:
    """One CCD's Piff model, ready to give a PSF per object (module docstring)."""

    path: Path
    psf: Any
    chipnum: Any
    #: The colour property the model interpolates in ('GI_COLOR', 'IZ_COLOR') or None.
    color: str | None
    #: Half the diagonal of the model's support, arcsec (the PixelGrid square, or 3 FWHM).
    radius_arcsec: float
    method: str = DEFAULT_METHOD

    def radius_pixels(self, pixel_scale: float) -> float:
        """Half-size of the model in image pixels, with the interpolant's reach."""
        return self.radius_arcsec / pixel_scale + 3.0

    def _kwargs(self, color: float | None) -> dict[str, float]:
        if self.color is None:
            return {}
        return {self.color: COLOR_DEFAULTS[self.color] if color is None else float(color)}

    def profile(self, image_pos: galsim.PositionD, local_wcs: galsim.BaseWCS,
                color: float | None = None) -> galsim.GSObject:
        """The PSF at ``image_pos`` (chip pixels) in world coordinates, pixel response included
        (draw with ``method='no_pixel'``). ``color``: the object's value of :attr:`color`."""
        if self.method == "stamp":
            return self.stamp_profile(image_pos, local_wcs, color)
        prof, method = self.psf.get_profile(image_pos.x, image_pos.y, chipnum=self.chipnum, **self._kwargs(color))
        if method != "no_pixel":  # a model fit without the pixel: convolve it here, draw no_pixel
            prof = galsim.Convolve(prof, local_wcs.toWorld(galsim.Pixel(1.0)))
        return prof

    def stamp_profile(self, image_pos: galsim.PositionD, local_wcs: galsim.BaseWCS,
                      color: float | None = None) -> galsim.GSObject:
        """eastlake's ``DES_Piff.getPSF``: the model drawn on a 53^2 stamp in the local WCS,
        interpolated (Lanczos 15, flux 1), centred on the object (eastlake des_piff.py:94-190)."""
        offset = (image_pos.x - math.floor(image_pos.x + 0.5), image_pos.y - math.floor(image_pos.y + 0.5))
        image = galsim.ImageD(STAMP_SIZE, STAMP_SIZE, wcs=local_wcs)
        drawn = self.psf.draw(image_pos.x, image_pos.y, chipnum=self.chipnum, image=image, center=True,
                              offset=offset, **self._kwargs(color))
        return galsim.InterpolatedImage(galsim.ImageD(drawn.array), wcs=local_wcs, x_interpolant="lanczos15",
                                        offset=offset).withFlux(1.0)


def load_piff(path: str | os.PathLike, method: str = DEFAULT_METHOD) -> PiffModel:
    """Read (cached per file) and check a one-CCD Piff model; an InputFileError otherwise."""
    if method not in METHODS:
        raise ConfigError(f"Piff drawing method {method!r}: use one of {', '.join(METHODS)}")
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputFileError(f"Piff model {path} does not exist") from None
    psf = _read(str(path), st.st_size, st.st_mtime_ns)
    chipnums = list(psf.wcs.keys())
    if len(chipnums) != 1:
        raise InputFileError(f"Piff model {path} covers {len(chipnums)} chips ({chipnums[:5]}); "
                             "one CCD's model is expected (as DESDM writes them)")
    names = [str(n) for n in getattr(psf, "interp_property_names", ()) if n not in ("u", "v", "x", "y")]
    colors = [n for n in names if n in COLOR_DEFAULTS]
    others = [n for n in names if n not in COLOR_DEFAULTS]
    if others or len(colors) > 1:
        raise InputFileError(f"Piff model {path} interpolates in {', '.join(names)}; balrog_runner gives "
                             f"one of {', '.join(COLOR_DEFAULTS)} (DES Y6)")
    return PiffModel(path=path, psf=psf, chipnum=chipnums[0], color=colors[0] if colors else None,
                     radius_arcsec=_support_radius(psf), method=method)


def _support_radius(psf: Any) -> float:
    """Half-diagonal (arcsec) of the model's PixelGrid square; else 3 FWHM of a profile."""
    model = getattr(psf, "model", None)
    if model is not None and hasattr(model, "size") and hasattr(model, "scale"):
        return 0.5 * math.sqrt(2.0) * model.size * model.scale
    for sub in getattr(psf, "psf_by_chip", {}).values():
        return _support_radius(sub)
    return 3.0 * 1.5  # arcsec: 3 FWHM of a 1.5" seeing profile


def object_colors(columns: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    """Each object's value of colour property ``name`` from its truth magnitudes, clipped to
    the Y6 range, the Y6 default where a band is missing or the value is not finite."""
    first, second = COLOR_BANDS[name]
    n = len(next(iter(columns.values())))
    out = np.full(n, COLOR_DEFAULTS[name])
    if f"mag_{first}" in columns and f"mag_{second}" in columns:
        value = np.asarray(columns[f"mag_{first}"], float) - np.asarray(columns[f"mag_{second}"], float)
        ok = np.isfinite(value)
        out[ok] = value[ok]
    lo, hi = COLOR_RANGES[name]
    return np.clip(out, lo, hi)


def truth_column(name: str) -> str:
    """The truth column holding the colour given to the Piff models: ``psf_gi_color``..."""
    return f"psf_{name.lower()}"
