"""Draw one realization's Balrog objects into the band images with GalSim; build its truth.

For every band: read the image once (all HDUs), draw every object into the SCI HDU, write
the result once, atomically (all bands are renamed into place together at the end, so a
failure leaves no output at all). MSK, WGT and every header are copied unchanged, or with
``sci_only`` (the node runner) the SCI HDU alone is written and MSK/WGT are never read.

Conventions that trip people up, all in one place:

* **Pixels.** ``x, y`` are 1-based FITS pixel coordinates (pixel (1, 1) is centred on
  1.0, 1.0), as SExtractor reports them; GalSim images made with ``xmin=ymin=1`` and a
  :class:`galsim.GSFitsWCS` built from the header use the same convention.
* **PSF.** The local PSF comes from the band's PSFEx model, ``galsim.des.DES_PSFEx(...)
  .getPSF(image_pos)``, at the object's own position. PSFEx models are fit to pixelated
  stars, so they *already include the pixel response*: profiles are drawn with
  ``method='no_pixel'``; the default ``'auto'`` would convolve the pixel in twice. PSFEx
  polynomials are in the pixel coordinates of the image they were fit on (the full tile);
  a cutout must keep those coordinates or the PSF is evaluated at the wrong place.
* **PSF centre.** PSFEx centres its model on sample ``N//2`` (0-based) of the N x N grid
  (the real DES model: the light centroid sits at sample 24.0 of 48), while GalSim's
  ``InterpolatedImage`` of an even-sized array takes the centre at ``(N-1)/2``: as
  returned by ``DES_PSFEx.getPSF`` the PSF is off by half a PSFEx sample (0.375 pixel for
  ``PSF_SAMP`` = 0.75) in x and y, and every injected object would sit that far from its
  truth position. :func:`psfex_profile` shifts it back (the original Balrog saw this as
  "PSFs shifted by -0.4 pixels").
* **PSF per object, k-space parameters on a grid** (:class:`PsfexGrid`). ``getPSF`` builds
  an ``InterpolatedImage`` whose constructor computes the profile's k-space step and
  maximum frequency (``stepk``, ``maxk``, by summing the image): most of the PSF's cost (2.5
  against 0.8 ms per object with one PSF per band). The PSF *image* must be the object's
  own: on the real DES model (``tests/data/des_example.psf``, POLDEG 8) reusing the profile
  of a grid node 25 px away in x and y changes a star's stamp by 7e-5 of its flux, 50 px
  away by 1.4e-4 (``benchmarks/psf_grid.py``; the synthetic tiles' psfex models alike), so a
  profile cache fine enough for 1e-4 holds one profile per object at Balrog densities (1,000
  to 8,500 per 10000^2 tile). ``stepk`` and ``maxk`` only set the FFT's sampling and vary
  slowly: they are computed once per cell of a ``DrawOptions.psf_grid`` (1000 px) grid, at
  its centre, and given to each object's ``InterpolatedImage`` (``_force_stepk``/
  ``_force_maxk``). Measured: stamps within 2e-6 of their flux of the exact ones (3e-5 with
  one cell for the whole tile), stars and most galaxies bit-identical; at most 100 cells per
  band and realization instead of one per object. A cell depends on the position only, so
  the pixels do not depend on the order objects are drawn in.
* **Sizes.** ``hlr_<c>`` is the half-light radius along the major axis (arcsec). GalSim's
  ``Sersic(half_light_radius=r)`` is circular and ``.shear(q=q, beta=beta)`` keeps the area,
  turning radius ``r`` into ``r/sqrt(q)`` along the major axis; so the circular profile is
  built with ``r = hlr * sqrt(q)``.
* **Truncation.** Each Sersic component is truncated at ``trunc_factor`` times its circular
  half-light radius, with the half-light radius and the flux referring to the *truncated*
  profile (``flux_untruncated=False``). That makes the truth flux the flux actually drawn:
  an untruncated n=4 profile keeps 11.5% of its light beyond 5 hlr (5.7% beyond 8).
  ``trunc_factor=0`` disables truncation; the stamp then reaches 8 hlr and the FFT folds
  the far wings back into it, so the flux is kept but the outskirts are not faithful.
  Measured (DES PSF, default population): drawn/truth flux within 1.2e-4 for galaxies and
  1e-3 for stars (the PSFEx image's pixel sum at sub-pixel offsets).
* **Flux.** ``flux_<b> = magnification * 10**((SEXMGZPT - mag_<b>) / 2.5)`` in ADU (``mag``
  is the unlensed magnitude). Lensing is GalSim's ``lens(g1, g2, mu)`` split in two: the
  shape is sheared and dilated by ``sqrt(mu)``, and ``mu`` enters the flux above, stars
  included (for a point source magnification only scales the flux). ``SEXMGZPT`` defaults to 30.0
  with a warning when absent (DESIGN.md section 4).
* **Noise.** The object's own Poisson noise: the stamp is converted to electrons with the
  header ``GAIN`` (e-/ADU), given ``galsim.PoissonNoise(sky_level=0)`` and converted back.
  ``flux_noised_<b>`` is the sum of the stamp actually added to the image (after clipping).
* **Seeds.** The realization's ``noise_seed`` (default: from ``indexstart`` via
  :func:`balrog_runner.injection.population.realization_seeds`) and the band name give a base seed per
  band; object ``i`` uses ``base + i``. Any realization and any band re-run identically.
* **Flags.** ``not_drawn`` bits (ORed over bands): :data:`OFF_IMAGE` (stamp entirely off
  the image: nothing drawn), :data:`CLIPPED` (stamp partly off the image: some light
  missing), :data:`CENTRE_OFF_IMAGE` (the centre is outside the image: only wings drawn),
  :data:`DRAW_FAILED` (GalSim refused, or the PSF could not be evaluated there, or the FFT
  would exceed GalSim's ``maximum_fft_size``, which GalSim 2.8 only warns about before trying
  to allocate it, 144 GiB for an untruncated 80" Sersic; nothing drawn), :data:`MASKED`
  (centre on a masked pixel and masked positions are skipped, :mod:`.masking`). Positions
  outside the tile are flagged, not errors: positions come from the unique area, so such
  objects are rare and worth counting (logged) rather than aborting a realization.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import galsim
import galsim.des
import numpy as np
from astropy.io import fits
from astropy.table import Table

from ..atomic import atomic_path
from ..errors import ConfigError, InputFileError
from .piff_psf import PiffModel
from .population import OBJTYPE_STAR, ObjectTable, PyConfig, realization_seeds

log = logging.getLogger(__name__)

#: ``not_drawn`` bit flags.
OFF_IMAGE = 1
CLIPPED = 2
CENTRE_OFF_IMAGE = 4
DRAW_FAILED = 8
#: Not drawn because its centre is on a masked pixel (``balrog['masked-positions'] = 'skip'``, :mod:`.masking`).
MASKED = 16
#: ``not_drawn`` bits that mean the object is not in the image at all (``CLIPPED`` was drawn):
#: the report and the match table leave such objects out of every statistic.
NOT_IN_IMAGE = OFF_IMAGE | CENTRE_OFF_IMAGE | DRAW_FAILED | MASKED

#: Magnitude zeropoint used when the header has no SEXMGZPT (DESIGN.md section 4), mag.
DEFAULT_ZEROPOINT = 30.0


@dataclass(frozen=True)
class DrawOptions:
    """How objects are drawn (the pyconfig ``GalsimParams`` hook returns these keys).

    poisson_noise: add each object's own Poisson noise (needs ``GAIN`` in the header).
    trunc_factor: Sersic truncation radius in units of the circular half-light radius
        (0 = untruncated; see the module docstring).
    stamp_margin: extra pixels on each side of the computed stamp half-size, pixels.
    max_stamp_size: largest stamp side, pixels; bigger objects are drawn into this size
        (flagged ``CLIPPED`` when that loses light).
    folding_threshold, maxk_threshold: GalSim FFT accuracy parameters (``galsim.GSParams``).
    psf_grid: side of the grid cells (pixels) sharing the PSF's ``stepk``/``maxk``
        (:class:`PsfexGrid`); 0 = computed for every object, as ``getPSF`` does.
    """

    poisson_noise: bool = True
    trunc_factor: float = 5.0
    stamp_margin: int = 2
    max_stamp_size: int = 1001
    folding_threshold: float = 5e-3
    maxk_threshold: float = 1e-3
    psf_grid: float = 1000.0

    def __post_init__(self) -> None:
        if not (self.trunc_factor == 0 or self.trunc_factor >= 1.5):
            raise ConfigError(f"trunc_factor {self.trunc_factor} must be 0 (none) or >= 1.5 half-light radii")
        if self.stamp_margin < 0 or self.max_stamp_size < 3:
            raise ConfigError("stamp_margin must be >= 0 and max_stamp_size >= 3 pixels")
        if not (0 < self.folding_threshold < 0.1 and 0 < self.maxk_threshold < 0.1):
            raise ConfigError("folding_threshold and maxk_threshold must be in (0, 0.1)")
        if not (self.psf_grid == 0 or 1 <= self.psf_grid < math.inf):
            raise ConfigError(f"psf_grid {self.psf_grid} must be 0 (stepk/maxk per object) or >= 1 pixel")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> DrawOptions:
        """Build from a dict (e.g. a ``GalsimParams`` result); unknown keys are a ConfigError."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown drawing option(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        return cls(**values)

    @property
    def gsparams(self) -> galsim.GSParams:
        return galsim.GSParams(folding_threshold=self.folding_threshold, maxk_threshold=self.maxk_threshold)


def draw_options_for_bands(pyconfig: PyConfig | None, bands: Sequence[str]) -> dict[str, DrawOptions]:
    """Per-band :class:`DrawOptions` from the pyconfig's ``GalsimParams(band)`` (defaults without one)."""
    if pyconfig is None:
        return {b: DrawOptions() for b in bands}
    out = {}
    for b in bands:
        try:
            out[b] = DrawOptions.from_mapping(pyconfig.galsim_params(b))
        except TypeError as exc:  # a value of the wrong type reaching the dataclass
            raise ConfigError(f"pyconfig {pyconfig.path}: GalsimParams({b!r}): {exc}") from exc
        except ConfigError as exc:
            if str(pyconfig.path) in str(exc):
                raise
            raise ConfigError(f"pyconfig {pyconfig.path}: GalsimParams({b!r}): {exc}") from exc
    return out


@dataclass
class BandHeader:
    """What drawing needs from a band image's SCI header."""

    path: Path
    wcs: galsim.GSFitsWCS
    zeropoint: float
    gain: float | None
    shape: tuple[int, int]  # (ny, nx), pixels


@dataclass
class DrawResult:
    """Per-object outcome of drawing one band: positions (pixels), fluxes (ADU), flags."""

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    flux_noised: np.ndarray
    flags: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    #: Sum of each stamp's noiseless pixels added to the image (after clipping), ADU.
    flux_drawn: np.ndarray | None = None


# --------------------------------------------------------------------------- inputs


def image_hdu_index(hdul: fits.HDUList, extname: str, fallback: int, path: Path, why: str = "") -> int:
    """Index of a DESDM image plane: the HDU named ``extname``, else the 2-d HDU at ``fallback``
    (funpacked DESDM coadds: SCI 0, MSK 1, WGT 2); an InputFileError naming the file otherwise."""
    for k, hdu in enumerate(hdul):
        if str(hdu.header.get("EXTNAME", "")).strip().upper() == extname:
            return k
    if len(hdul) > fallback and hdul[fallback].header.get("NAXIS", 0) == 2:
        return fallback
    raise InputFileError(f"{path} has no {extname} image HDU (expected HDU {fallback} or EXTNAME {extname}){why}")


def sci_index(hdul: fits.HDUList, path: Path) -> int:
    return image_hdu_index(hdul, "SCI", 0, path)


def band_header(path: Path, header: fits.Header, require_gain: bool) -> BandHeader:
    """Check a SCI header and extract its WCS, zeropoint (mag) and gain (e-/ADU)."""
    ctype1, ctype2 = str(header.get("CTYPE1", "")), str(header.get("CTYPE2", ""))
    if not (ctype1.startswith("RA--") and ctype2.startswith("DEC-")):
        raise InputFileError(f"{path} has no celestial WCS (CTYPE1/2 = {ctype1!r}/{ctype2!r}, expected RA---TAN/DEC--TAN)")
    try:
        wcs = galsim.GSFitsWCS(header=header)
    except Exception as exc:  # GalSim raises several types for unsupported/malformed WCS
        raise InputFileError(f"{path}: cannot use its WCS ({type(exc).__name__}: {exc})") from exc
    if "SEXMGZPT" in header:
        zp = float(header["SEXMGZPT"])
        if not math.isfinite(zp):
            raise InputFileError(f"{path}: SEXMGZPT = {header['SEXMGZPT']!r} is not a finite magnitude")
    else:
        log.warning("%s has no SEXMGZPT; using the default zeropoint %.1f mag", path, DEFAULT_ZEROPOINT)
        zp = DEFAULT_ZEROPOINT
    gain = header.get("GAIN")
    if gain is not None:
        gain = float(gain)
        if not (math.isfinite(gain) and gain > 0):
            raise InputFileError(f"{path}: GAIN = {header['GAIN']!r} must be a positive number (e-/ADU)")
    elif require_gain:
        raise InputFileError(f"{path} has no GAIN (e-/ADU), needed for the objects' Poisson noise; "
                             "add it or set poisson_noise False in GalsimParams")
    shape = (int(header.get("NAXIS2", 0)), int(header.get("NAXIS1", 0)))
    return BandHeader(path=path, wcs=wcs, zeropoint=zp, gain=gain, shape=shape)


def load_psf(psf_file: Path) -> galsim.des.DES_PSFEx:
    """Open a PSFEx model (in image coordinates); anything else is an :class:`InputFileError`."""
    psf_file = Path(psf_file)
    if not psf_file.is_file():
        raise InputFileError(f"PSF file {psf_file} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # astropy warns about odd headers before failing
            return galsim.des.DES_PSFEx(str(psf_file))
    except Exception as exc:  # astropy / GalSim raise OSError, KeyError, IndexError, TypeError...
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputFileError(f"{psf_file} is not a PSFEx model ({detail})") from exc


def psfex_centre_shift(psf: galsim.des.DES_PSFEx) -> tuple[float, float]:
    """Image-pixel shift that moves GalSim's PSFEx profile onto PSFEx's own centre (x, y)."""
    ny, nx = psf.basis.shape[1:]
    return ((nx // 2 - (nx - 1) / 2) * psf.sample_scale, (ny // 2 - (ny - 1) / 2) * psf.sample_scale)


def psfex_profile(psf: galsim.des.DES_PSFEx, image_pos: galsim.PositionD, local_wcs: galsim.BaseWCS) -> galsim.GSObject:
    """The PSFEx PSF at ``image_pos`` (pixels), centred as PSFEx centres it, in world coordinates.

    ``psf`` must be opened without a WCS (image coordinates, :func:`load_psf`); the result
    includes the pixel response, so draw it (or anything convolved with it) with
    ``method='no_pixel'``.
    """
    dx, dy = psfex_centre_shift(psf)
    prof = psf.getPSF(image_pos)
    if dx or dy:
        prof = prof.shift(-dx, -dy)
    return local_wcs.profileToWorld(prof)


class PsfexGrid:
    """A band's PSFEx model per object, with ``stepk``/``maxk`` shared by the cells of a grid.

    :meth:`profile` is :func:`psfex_profile` with the object's own PSF image, except that
    the ``InterpolatedImage``'s k-space step and maximum frequency are those of the exact
    profile at the centre of the object's ``spacing`` x ``spacing`` pixel cell (cell ``(i, j)``
    holds ``i * spacing <= x < (i + 1) * spacing``), computed the first time a cell is used.
    ``spacing`` 0 computes them per object (exactly ``getPSF``). Why: module docstring.
    """

    def __init__(self, psf: galsim.des.DES_PSFEx, spacing: float = DrawOptions.psf_grid):
        self.psf = psf
        self.spacing = float(spacing)
        self.shift = psfex_centre_shift(psf)
        self._cells: dict[tuple[int, int], tuple[float, float]] = {}

    @property
    def cells(self) -> int:
        """Cells whose ``stepk``/``maxk`` have been computed."""
        return len(self._cells)

    def _k_limits(self, image_pos: galsim.PositionD) -> tuple[float, float]:
        cell = (math.floor(image_pos.x / self.spacing), math.floor(image_pos.y / self.spacing))
        limits = self._cells.get(cell)
        if limits is None:
            centre = galsim.PositionD((cell[0] + 0.5) * self.spacing, (cell[1] + 0.5) * self.spacing)
            exact = self.psf.getPSF(centre)
            limits = self._cells[cell] = (exact.stepk, exact.maxk)
        return limits

    def radius_pixels(self, pixel_scale: float) -> float:
        """Half-size of the model in image pixels (PSFEx models are in pixels already)."""
        return _psf_radius_pixels(self.psf)

    def profile(self, image_pos: galsim.PositionD, local_wcs: galsim.BaseWCS,
                color: float | None = None) -> galsim.GSObject:
        """The PSF at ``image_pos`` (pixels), centred as PSFEx centres it, in world coordinates
        (pixel response included: draw with ``method='no_pixel'``). ``color`` is unused: PSFEx
        models have no colour term (the argument matches :meth:`.piff_psf.PiffModel.profile`)."""
        if self.spacing == 0:
            return psfex_profile(self.psf, image_pos, local_wcs)
        stepk, maxk = self._k_limits(image_pos)
        prof = galsim.InterpolatedImage(galsim.Image(self.psf.getPSFArray(image_pos)), scale=self.psf.sample_scale,
                                        flux=1, x_interpolant=galsim.Lanczos(3), _force_stepk=stepk, _force_maxk=maxk)
        dx, dy = self.shift
        if dx or dy:
            prof = prof.shift(-dx, -dy)
        return local_wcs.profileToWorld(prof)


def _psf_radius_pixels(psf: galsim.des.DES_PSFEx) -> float:
    """Half-size of the PSFEx model in image pixels, including the Lanczos-3 kernel."""
    return 0.5 * max(psf.basis.shape[1:]) * psf.sample_scale + 3.0 * psf.sample_scale


# --------------------------------------------------------------------------- profiles


def galaxy_profile(objects: ObjectTable, i: int, options: DrawOptions) -> galsim.GSObject:
    """The unit-flux, unlensed Sersic sum of object ``i`` (world coordinates, arcsec)."""
    cols = objects.columns
    parts = []
    gsp = options.gsparams
    for c in objects.components:
        frac = float(cols[f"flux_frac_{c}"][i])
        if frac <= 0:
            continue
        q = float(cols[f"q_{c}"][i])
        r = float(cols[f"hlr_{c}"][i]) * math.sqrt(q)  # major-axis hlr -> circular hlr
        prof = galsim.Sersic(
            float(cols[f"sersic_n_{c}"][i]),
            half_light_radius=r,
            trunc=options.trunc_factor * r,
            flux=frac,
            flux_untruncated=False,
            gsparams=gsp,
        )
        if q < 1:
            prof = prof.shear(q=q, beta=float(cols[f"beta_{c}"][i]) * galsim.degrees)
        parts.append(prof)
    return parts[0] if len(parts) == 1 else galsim.Add(parts, gsparams=gsp)


def _object_radius_arcsec(objects: ObjectTable, i: int, options: DrawOptions) -> float:
    """Radius (arcsec) containing the lensed galaxy: truncation along the major axis."""
    cols = objects.columns
    if int(cols["objtype"][i]) == OBJTYPE_STAR:
        return 0.0
    factor = options.trunc_factor if options.trunc_factor > 0 else 8.0
    r = max(
        (float(cols[f"hlr_{c}"][i]) for c in objects.components if float(cols[f"flux_frac_{c}"][i]) > 0),
        default=0.0,
    )
    g = math.hypot(float(cols["g1"][i]), float(cols["g2"][i]))
    return factor * r * math.sqrt(float(cols["magnification"][i])) / (1.0 - g)


def unit_profiles(objects: ObjectTable, options: DrawOptions) -> tuple[list[galsim.GSObject | None], np.ndarray]:
    """Lensed unit-flux profiles (None for stars) and their radii (arcsec), built once for all bands."""
    cols = objects.columns
    profiles: list[galsim.GSObject | None] = []
    radii = np.zeros(len(objects))
    for i in range(len(objects)):
        radii[i] = _object_radius_arcsec(objects, i, options)
        if int(cols["objtype"][i]) == OBJTYPE_STAR:
            profiles.append(None)
            continue
        gal = galaxy_profile(objects, i, options)
        g1, g2 = float(cols["g1"][i]), float(cols["g2"][i])
        if g1 != 0 or g2 != 0:
            gal = gal.shear(g1=g1, g2=g2)  # magnification goes into the flux scale (see draw)
        mu = float(cols["magnification"][i])
        if mu != 1:
            gal = gal.dilate(math.sqrt(mu))  # lens(): dilate by sqrt(mu); flux is scaled separately
        profiles.append(gal)
    return profiles, radii


# --------------------------------------------------------------------------- drawing


def object_noise_seeds(noise_seed: int, band: str, n: int) -> np.ndarray:
    """Per-object GalSim seeds for one band: a band base seed stepped by object (never 0)."""
    ss = np.random.SeedSequence([int(noise_seed) & ((1 << 63) - 1), *band.encode()])
    base = int(ss.generate_state(1, np.uint32)[0])
    return 1 + (base + np.arange(n, dtype=np.int64)) % (2**32 - 1)


def draw_objects_into(
    image: galsim.Image,
    wcs: galsim.BaseWCS,
    psf: galsim.des.DES_PSFEx | PsfexGrid | PiffModel,
    objects: ObjectTable,
    band: str,
    zp: float,
    gain: float | galsim.Image | None,
    noise_seed: int | None,
    options: DrawOptions = DrawOptions(),
    profiles: tuple[list[galsim.GSObject | None], np.ndarray] | None = None,
    skip: np.ndarray | None = None,
    psf_colors: np.ndarray | None = None,
) -> DrawResult:
    """Add every object of ``objects`` to ``image`` (in place) in ``band``; return per-object results.

    ``image`` must use 1-based FITS pixel bounds (``xmin=ymin=1``) so that positions from
    ``wcs`` (the full image WCS) index it directly. ``psf`` is the band's PSFEx model from
    :func:`load_psf`, evaluated per object by a :class:`PsfexGrid` of ``options.psf_grid``
    (or the one given: pixel included, so drawn with ``method='no_pixel'``), or a CCD's
    :class:`.piff_psf.PiffModel`, given each object's ``psf_colors`` value when the model
    interpolates in a colour.
    ``noise_seed`` None means no Poisson noise; ``gain`` (e-/ADU) is one number, or an image
    of ``image``'s bounds for a gain per pixel (a CCD read through two amplifiers). ``profiles`` (from :func:`unit_profiles`)
    lets callers build the band-independent galaxy profiles once for all bands. Objects where
    ``skip`` is True are not drawn and flagged :data:`MASKED` (their seeds are still used up,
    so skipping one never changes another's noise).
    """
    n = len(objects)
    cols = objects.columns
    x, y = wcs.radecToxy(cols["ra"], cols["dec"], units="deg")
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    y = np.atleast_1d(np.asarray(y, dtype=np.float64))
    mu = np.asarray(cols["magnification"], dtype=np.float64)
    flux = mu * 10.0 ** ((zp - np.asarray(cols[f"mag_{band}"], dtype=np.float64)) / 2.5)
    flux_noised = np.zeros(n)
    flux_drawn = np.zeros(n)
    flags = np.zeros(n, dtype=np.int32)
    if noise_seed is not None and gain is None:
        raise InputFileError(f"band {band}: Poisson noise needs the image GAIN (e-/ADU)")
    seeds = object_noise_seeds(noise_seed, band, n) if noise_seed is not None else None
    if profiles is None:
        profiles = unit_profiles(objects, options)
    shapes, radii = profiles

    bounds = image.bounds
    centre = galsim.PositionD(0.5 * (bounds.xmin + bounds.xmax), 0.5 * (bounds.ymin + bounds.ymax))
    pixel_scale = math.sqrt(abs(wcs.local(centre).pixelArea()))  # arcsec/pixel
    grid = psf if isinstance(psf, PsfexGrid | PiffModel) else PsfexGrid(psf, options.psf_grid)
    psf_radius = grid.radius_pixels(pixel_scale)
    max_half = (options.max_stamp_size - 1) // 2
    off_centre = (x < bounds.xmin - 0.5) | (x > bounds.xmax + 0.5) | (y < bounds.ymin - 0.5) | (y > bounds.ymax + 0.5)
    flags[off_centre] |= CENTRE_OFF_IMAGE

    if skip is not None:
        flags[np.asarray(skip, dtype=bool)] |= MASKED
    for i in range(n):
        if flags[i] & MASKED:
            continue
        ix, iy = int(math.floor(x[i] + 0.5)), int(math.floor(y[i] + 0.5))
        need = radii[i] / pixel_scale + psf_radius + options.stamp_margin
        half = min(int(math.ceil(need)), max_half)
        stamp_bounds = galsim.BoundsI(ix - half, ix + half, iy - half, iy + half)
        overlap = stamp_bounds & bounds
        if not overlap.isDefined():
            flags[i] |= OFF_IMAGE
            continue
        if overlap != stamp_bounds or half < need:
            flags[i] |= CLIPPED
        pos = galsim.PositionD(x[i], y[i])
        local = wcs.local(pos)
        stamp = galsim.ImageF(stamp_bounds, wcs=local)
        try:  # the PSF too: a model that cannot be evaluated here fails this object, not the run
            psf_i = grid.profile(pos, local, None if psf_colors is None else float(psf_colors[i]))
            shape = shapes[i]
            obj = psf_i if shape is None else galsim.Convolve(shape, psf_i, gsparams=options.gsparams)
            obj = obj.withFlux(float(flux[i]))
            with warnings.catch_warnings():  # GalSim 2.8 only warns about an FFT past maximum_fft_size,
                warnings.simplefilter("error", galsim.errors.GalSimFFTSizeWarning)  # then allocates it
                obj.drawImage(stamp, method="no_pixel", offset=(x[i] - ix, y[i] - iy))
        except (galsim.GalSimError, galsim.errors.GalSimFFTSizeWarning, ValueError) as exc:  # Piff: ValueError
            log.warning("object %d (balrog_index %d) not drawn in %s: %s", i, cols["balrog_index"][i], band, exc)
            flags[i] |= DRAW_FAILED
            continue
        sub = stamp[overlap]
        flux_drawn[i] = float(sub.array.sum(dtype=np.float64))
        if seeds is not None:
            g = gain[overlap] if isinstance(gain, galsim.Image) else gain
            sub *= g
            sub.addNoise(galsim.PoissonNoise(galsim.BaseDeviate(int(seeds[i])), sky_level=0.0))
            sub /= g
        image[overlap] += sub
        flux_noised[i] = float(sub.array.sum(dtype=np.float64))
    return DrawResult(x=x, y=y, flux=flux, flux_noised=flux_noised, flags=flags, flux_drawn=flux_drawn)


# --------------------------------------------------------------------------- a realization


def truth_table(objects: ObjectTable, results: Mapping[str, DrawResult]) -> Table:
    """The truth table (DEVELOPING.md columns) from the objects and each band's draw."""
    n = len(objects)
    cols = objects.columns
    first = next(iter(results.values()))
    t = Table()
    t["balrog_index"] = np.asarray(cols["balrog_index"], dtype=np.int64)
    t["tilename"] = np.full(n, objects.tilename or "", dtype=f"U{max(len(objects.tilename), 1)}")
    t["realization"] = np.full(n, objects.realization, dtype=np.int32)
    t["indexstart"] = np.full(n, objects.indexstart, dtype=np.int64)
    t["seed"] = np.full(n, objects.seed, dtype=np.int64)
    t["x"] = first.x
    t["y"] = first.y
    t["ra"] = np.asarray(cols["ra"], dtype=np.float64)
    t["dec"] = np.asarray(cols["dec"], dtype=np.float64)
    t["objtype"] = np.asarray(cols["objtype"], dtype=np.int16)
    for k in ("g1", "g2", "magnification"):
        t[k] = np.asarray(cols[k], dtype=np.float64)
    for c in objects.components:
        for f in ("sersic_n", "hlr", "q", "beta", "flux_frac"):
            t[f"{f}_{c}"] = np.asarray(cols[f"{f}_{c}"], dtype=np.float64)
    for b in objects.bands:
        t[f"mag_{b}"] = np.asarray(cols[f"mag_{b}"], dtype=np.float64)
        if b in results:
            t[f"flux_{b}"] = results[b].flux
            t[f"flux_noised_{b}"] = results[b].flux_noised
    flags = np.zeros(n, dtype=np.int32)
    for r in results.values():
        flags |= r.flags
    t["not_drawn"] = flags
    known = set(t.colnames)
    for k, v in cols.items():  # extra columns a catalog or hook added (e.g. catalog_row)
        if k not in known and not any(k.startswith(f"{f}_") for f in ("sersic_n", "hlr", "q", "beta", "flux_frac", "mag")):
            t[k] = v
    return t


def require_something_drawn(truth: Table, positions_file: str | Path) -> None:
    """Refuse a realization none of whose objects landed on the images.

    When every object is off the image or centred off it (``not_drawn`` bit
    :data:`OFF_IMAGE` or :data:`CENTRE_OFF_IMAGE`), the catalogs would be a "successful"
    realization that measured nothing: the positions almost surely belong to another tile
    (or another tile geometry). Raises :class:`InputFileError` naming the positions file.
    """
    flags = np.asarray(truth["not_drawn"])
    if len(flags) and np.all(flags & (OFF_IMAGE | CENTRE_OFF_IMAGE)):
        tile = str(truth["tilename"][0]) if "tilename" in truth.colnames else "?"
        real = int(truth["realization"][0]) if "realization" in truth.colnames else -1
        raise InputFileError(
            f"no object of realization {real} falls on the tile's images ({len(flags)} of {len(flags)} "
            f"off the image): positions file {positions_file} does not match tile {tile}?")


def write_truth(table: Table, path: str | Path) -> Path:
    """Write a truth table as FITS, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        table.write(tmp, format="fits")
    return path


#: Header keywords fitsio writes itself from the data (copying them would conflict).
_STRUCTURAL = re.compile(r"^(SIMPLE|XTENSION|BITPIX|NAXIS\d*|EXTEND|PCOUNT|GCOUNT|BSCALE|BZERO|CHECKSUM|DATASUM)$")


def native_image(data: np.ndarray) -> np.ndarray:
    """``data`` as a C-contiguous array in native byte order, values unchanged bit for bit.

    What fitsio must be given for an image: it mis-writes non-native float images (see
    :func:`write_hdus`). ``astype`` to the same type in the other byte order swaps the bytes
    and keeps every value, NaN payloads included.
    """
    data = np.asarray(data)
    return np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("="))


def write_hdus(path: str | Path, hdul: fits.HDUList, checksum: bool) -> None:
    """Write every HDU's data and header with fitsio (optionally with CHECKSUM/DATASUM).

    Why not ``HDUList.writeto``: astropy re-serialises each 4096^2 HDU about 2.5x slower than
    cfitsio, and the node runner writes three HDUs per band per realization.

    Every array is handed to fitsio in native byte order (:func:`native_image`): astropy
    gives big-endian ``>f4`` data, and fitsio 1.4 writes a non-native float image wrong
    wherever the byte-swapped value reads as NaN/Inf (about 1 pixel in 700 of a real weight
    map came back as 4.6e-41).
    """
    import fitsio

    with fitsio.FITS(str(path), "rw", clobber=True) as out:
        for hdu in hdul:
            cards = [
                {"name": c.keyword, "value": c.value, "comment": c.comment}
                for c in hdu.header.cards
                if c.keyword and c.keyword != "EXTNAME" and not _STRUCTURAL.match(c.keyword)
            ]
            data = hdu.data if hdu.data is not None else np.zeros((0,), dtype=np.float32)
            out.write(native_image(data), header=cards, extname=hdu.header.get("EXTNAME"))
            if checksum:
                out[-1].write_checksum()


def inject_realization(
    band_images: Mapping[str, Path],
    psf_files: Mapping[str, Path],
    objects: ObjectTable,
    out_images: Mapping[str, Path],
    *,
    noise_seed: int | None = None,
    draw_options: DrawOptions | Mapping[str, DrawOptions] | None = None,
    checksum: bool | None = None,
    skip: np.ndarray | None = None,
    sci_only: bool = False,
) -> Table:
    """Inject ``objects`` into each band image; write ``out_images``; return the truth table.

    ``noise_seed`` defaults to the one derived from ``objects.indexstart``; Poisson noise is
    off when ``draw_options.poisson_noise`` is False. ``draw_options`` is one
    :class:`DrawOptions` or one per band. All inputs are checked before anything is drawn,
    and the outputs appear together only when every band succeeded. ``checksum``: write
    FITS CHECKSUM/DATASUM (None: when the input had them). The node runner's injected
    images are scratch files read once by SWarp/SExtractor, so it passes False: computing
    the checksums of three 4096^2 HDUs costs about half a second per band. ``skip``: objects
    not to draw in any band (flagged :data:`MASKED`). ``sci_only``: write the SCI HDU alone
    (header included), for a measurement that takes the weights from the untouched tile
    (:func:`balrog_runner.measurement.measure.measure_realization`'s ``weights``).
    """
    bands = list(band_images)
    if not bands:
        raise ConfigError("no band images given")
    for name, mapping in (("PSF file", psf_files), ("output image", out_images)):
        missing = [b for b in bands if b not in mapping]
        if missing:
            raise ConfigError(f"no {name} for band(s) {', '.join(missing)}")
    missing = [b for b in bands if b not in objects.bands]
    if missing:
        raise ConfigError(f"objects have no magnitudes for band(s) {', '.join(missing)} (have {', '.join(objects.bands)})")
    if isinstance(draw_options, Mapping):
        opts = {b: draw_options.get(b, DrawOptions()) for b in bands}
    else:
        opts = {b: draw_options or DrawOptions() for b in bands}
    if noise_seed is None:
        noise_seed = realization_seeds(objects.indexstart)[1]

    # Check every input before drawing anything.
    headers: dict[str, BandHeader] = {}
    psfs: dict[str, galsim.des.DES_PSFEx] = {}
    for b in bands:
        path = Path(band_images[b])
        try:
            with fits.open(path, memmap=False) as hdul:
                k = sci_index(hdul, path)
                if isinstance(hdul[k], fits.CompImageHDU):
                    raise InputFileError(f"{path} is fpack-compressed; funpack it first")
                headers[b] = band_header(path, hdul[k].header, require_gain=opts[b].poisson_noise)
        except (OSError, ValueError) as exc:
            if isinstance(exc, InputFileError):
                raise
            raise InputFileError(f"cannot read image {path}: {exc}") from exc
        psfs[b] = load_psf(Path(psf_files[b]))

    shared = {id(o): unit_profiles(objects, o) for o in opts.values()}
    results: dict[str, DrawResult] = {}
    with contextlib.ExitStack() as stack:
        for b in bands:
            h = headers[b]
            o = opts[b]
            tmp = stack.enter_context(atomic_path(Path(out_images[b])))
            with fits.open(h.path, memmap=False) as hdul:
                k = sci_index(hdul, h.path)
                sci = np.asarray(hdul[k].data, dtype=np.float32)
                if sci.shape != h.shape or sci.ndim != 2:
                    raise InputFileError(f"{h.path}: SCI data shape {sci.shape} does not match its header")
                sci = np.ascontiguousarray(sci)
                image = galsim.Image(sci, xmin=1, ymin=1)
                results[b] = draw_objects_into(
                    image, h.wcs, psfs[b], objects, b, h.zeropoint, h.gain,
                    noise_seed if o.poisson_noise else None, o, profiles=shared[id(o)], skip=skip,
                )
                hdul[k].data = sci
                want = any("CHECKSUM" in hdu.header for hdu in hdul) if checksum is None else checksum
                write_hdus(tmp, fits.HDUList([hdul[k]]) if sci_only else hdul, checksum=want)
    truth = truth_table(objects, results)
    flags = np.asarray(truth["not_drawn"])
    if np.any(flags):
        log.warning(
            "realization %d of %s: %d off image, %d clipped, %d centred off image, %d failed, %d masked (of %d)",
            objects.realization, objects.tilename,
            int(np.sum(flags & OFF_IMAGE > 0)), int(np.sum(flags & CLIPPED > 0)),
            int(np.sum(flags & CENTRE_OFF_IMAGE > 0)), int(np.sum(flags & DRAW_FAILED > 0)),
            int(np.sum(flags & MASKED > 0)), len(flags),
        )
    return truth
