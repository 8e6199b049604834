"""A synthetic single-epoch (SE) survey of one tile, for the tests, the benchmarks and the demo.

What DESDM would hand a single-epoch Balrog campaign for a tile (DESIGN.md section 12),
made from nothing:

- per band, ``n_exposures`` dithered exposures of a block of DECam-geometry CCDs
  (:mod:`.se_focal_plane`; 2048 x 4096 pixels at 0.263", gaps between them, a TAN or TPV
  header per CCD); the CCDs that overlap the tile are kept, as DESDM's file set holds them;
- per CCD an nwgint file (:mod:`.se_render`: HDUs SCI, WGT, WGT_ME, MSK; DESDM's mask bits;
  WGT nulled where the null mask 2009 is set) and its PSFEx model, made by the real
  SExtractor + ``psfex`` from the stars on that CCD (:func:`~balrog_runner.measurement.astromatic.make_psf_model`),
  and with ``piff=True`` its Piff model too, fit by ``piff`` itself to the bright stars on that
  CCD (:func:`.piff_fit.make_piff_model`; ~7 s a small CCD), interpolating in the Y6 colour
  property of the band (``GI_COLOR`` g r i, ``IZ_COLOR`` z) when the survey has both its bands;
- zero points scattered by up to ``zp_scatter`` (0.1) mag about 30, per exposure with a
  small CCD-to-CCD part; gains and sky noise per amplifier and exposure, so the inverse-
  variance weights of the coadd differ between exposures;
- the tile's coadd, made by the project's own re-coadd of the untouched SE images
  (:mod:`balrog_runner.coadd`), in DESDM's tile layout (``<TILE>_<band>.fits[.fz]``, the riz
  ``det`` image, and a PSFEx model of each made by the real ``psfex``): the same survey then
  runs in coadd mode (those files) and in single-epoch mode (the SE files), side by side;
- ``se_set.json`` (:class:`~balrog_runner.inputs.single_epoch.SESet`, absolute paths, the
  coadd grid and the coadd's PSF models), written last: its presence means the survey is whole;
- ``<TILE>_stars.fits``, the input stars (``ra``, ``dec`` degrees; ``x``, ``y`` 1-based pixels
  of the coadd grid; ``mag_<band>``) and ``<TILE>_galaxies.fits``.

Noise is set so that the coadd of the exposures reaches the depth of :mod:`.synth`'s tiles
(its :func:`~.synth.pixel_noise_sigma`); objects follow :mod:`.synth`'s number counts, with
bright isolated stars dense enough for a PSFEx model per CCD (about 80 on each; on small
test CCDs far denser than the real sky) and a few saturated stars.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import fitsio
import galsim
import numpy as np
from astropy.io import fits

from .. import programs
from ..atomic import atomic_path
from ..coadd.recoadd import recoadd_band
from ..errors import ConfigError
from ..injection.piff_psf import COLOR_BANDS
from ..inputs.fpack import run_fpack
from ..inputs.single_epoch import (
    FILENAME,
    NWGINT_HDUS,
    SE_DIRNAME,
    CoaddGrid,
    SEImage,
    SESet,
    read_se_set,
    write_se_set,
)
from ..measurement import astromatic
from ..sky import geometry
from . import piff_fit, se_render, synth
from .se_focal_plane import DECAM_CCD_SHAPE, DECAM_GAP, PIXEL_SCALE, FocalPlane, covering_layout

log = logging.getLogger(__name__)

DEFAULT_BANDS = ("r", "i", "z")
#: DECam exposure time of a DES wide-field exposure, seconds (Y: 45).
EXPTIME = {"g": 90.0, "r": 90.0, "i": 90.0, "z": 90.0, "Y": 45.0}
#: First exposure number of the synthetic survey (DECam's run past 229686 in DES Y1).
FIRST_EXPNUM = 500000


@dataclass(frozen=True)
class SESurvey:
    """The files of a synthetic SE survey of one tile (absolute paths)."""

    tilename: str
    outdir: Path
    se_set_path: Path
    se_set: SESet
    grid: CoaddGrid
    focal_plane: FocalPlane
    #: The survey's coadd (the re-coadd of the untouched SE images), band and 'det' -> file.
    coadd_images: dict[str, Path] = field(default_factory=dict)
    coadd_psfs: dict[str, Path] = field(default_factory=dict)
    stars: Path | None = None
    galaxies: Path | None = None


@dataclass(frozen=True)
class SkyDensities:
    """How many objects the survey's sky holds: galaxies and faint stars (r 21-24) per arcmin^2,
    bright stars (r 17-20.5, none within ``bright_min_sep`` pixels of another) per CCD area
    (enough for PSFEx on every CCD, at least 1 per arcmin^2), saturated stars (r 13-15) per
    arcmin^2 (at least one in the survey)."""

    galaxies: float = 35.0
    faint_stars: float = 2.0
    bright_stars_per_ccd: float = 80.0
    bright_min_sep: float = 20.0
    saturated: float = 0.02


@dataclass(frozen=True)
class _CCDTask:
    """Everything a worker needs to write one CCD (picklable)."""

    band: str
    expnum: int
    ccdnum: int
    header: str
    psf: se_render.ExposurePSF
    cond: se_render.CCDConditions
    seed: tuple[int, ...]
    image: Path
    psf_file: Path
    workdir: Path
    #: The Piff model to fit (None: none).
    piff_file: Path | None = None


# ----------------------------------------------------------------------------- the sky


def _isolated(rng: np.random.Generator, n: int, lo: np.ndarray, hi: np.ndarray, min_sep: float) -> np.ndarray:
    """Up to ``n`` uniform points in the box [lo, hi), none within ``min_sep`` of another
    (dart throwing on a grid of ``min_sep`` cells)."""
    cells: dict[tuple[int, int], list[np.ndarray]] = {}
    out: list[np.ndarray] = []
    for _ in range(20 * n):
        if len(out) >= n:
            break
        p = rng.uniform(lo, hi)
        ci, cj = int(p[0] // min_sep), int(p[1] // min_sep)
        near = (q for di in (-1, 0, 1) for dj in (-1, 0, 1) for q in cells.get((ci + di, cj + dj), ()))
        if all((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2 >= min_sep**2 for q in near):
            cells.setdefault((ci, cj), []).append(p)
            out.append(p)
    return np.array(out, dtype=float).reshape(-1, 2)


def make_sky(rng: np.random.Generator, grid_wcs: galsim.BaseWCS, lo: np.ndarray, hi: np.ndarray,
             bands: Sequence[str], ccd_area_arcmin2: float,
             densities: SkyDensities = SkyDensities()) -> tuple[np.ndarray, np.ndarray]:
    """Star and galaxy tables (``x``, ``y`` on the coadd grid, ``ra``, ``dec``, ``mag_<band>``...)
    over the pixel box [lo, hi) of the coadd grid; ``kind`` of a star: 0 bright isolated, 1 faint,
    2 saturated."""
    area = float(np.prod(hi - lo)) * (PIXEL_SCALE / 60.0) ** 2  # arcmin^2
    n_bright = int(round(max(1.0 * area, densities.bright_stars_per_ccd * area / ccd_area_arcmin2)))
    bright = _isolated(rng, n_bright, lo, hi, min_sep=densities.bright_min_sep)
    n_faint = int(round(densities.faint_stars * area))
    n_saturated = max(1, int(round(densities.saturated * area)))
    faint = rng.uniform(lo, hi, (n_faint, 2))
    saturated = rng.uniform(lo, hi, (n_saturated, 2))
    xy = np.vstack([bright, faint, saturated])
    mag_r = np.concatenate([rng.uniform(17.0, 20.5, len(bright)), rng.uniform(21.0, 24.0, n_faint),
                            rng.uniform(13.0, 15.0, n_saturated)])
    kind = np.concatenate([np.zeros(len(bright), np.int16), np.ones(n_faint, np.int16),
                           np.full(n_saturated, 2, np.int16)])
    stars = np.zeros(len(xy), dtype=[("x", "f8"), ("y", "f8"), ("ra", "f8"), ("dec", "f8"), ("kind", "i2")]
                     + [(f"mag_{b}", "f8") for b in bands])
    stars["x"], stars["y"], stars["kind"] = xy[:, 0], xy[:, 1], kind
    for b in bands:
        stars[f"mag_{b}"] = mag_r + synth.STAR_COLOUR.get(b, 0.0) * rng.uniform(0.5, 1.5, len(xy))

    n_gal = int(round(densities.galaxies * area))
    gals = np.zeros(n_gal, dtype=[("x", "f8"), ("y", "f8"), ("ra", "f8"), ("dec", "f8"), ("hlr", "f8"),
                                  ("q", "f8"), ("beta", "f8")] + [(f"mag_{b}", "f8") for b in bands])
    gxy = rng.uniform(lo, hi, (n_gal, 2))
    gals["x"], gals["y"] = gxy[:, 0], gxy[:, 1]
    u = rng.uniform(0, 1, n_gal)
    a, b_ = 10 ** (0.3 * 18.0), 10 ** (0.3 * 25.0)
    gal_r = np.log10(a + u * (b_ - a)) / 0.3  # dN/dm ~ 10**(0.3 m), as synth's tiles
    gals["hlr"] = np.clip(10 ** (-0.09 * (gal_r - 19.0) + 0.08 + rng.normal(0, 0.12, n_gal)), 0.15, 4.0)
    gals["q"] = rng.uniform(0.3, 1.0, n_gal)
    gals["beta"] = rng.uniform(0, 180, n_gal)
    colour = rng.uniform(0.5, 1.5, n_gal)
    for b in bands:
        gals[f"mag_{b}"] = gal_r + synth.GALAXY_COLOUR.get(b, 0.0) * colour
    for table in (stars, gals):
        if len(table):
            ra, dec = grid_wcs.xyToradec(table["x"], table["y"], units="deg")
            table["ra"], table["dec"] = ra, dec
    return stars, gals


# ----------------------------------------------------------------------------- CCDs


def _ccd_box_on_grid(header: fits.Header, grid_wcs: galsim.BaseWCS) -> tuple[float, float, float, float]:
    """(xmin, xmax, ymin, ymax) on the coadd grid of a CCD's edge (sampled along its border)."""
    wcs = galsim.GSFitsWCS(header=header)
    nx, ny = int(header["NAXIS1"]), int(header["NAXIS2"])
    t = np.linspace(0.5, 1.0, 9)
    xs = np.concatenate([t * 0 + 0.5, t * 0 + nx + 0.5, 0.5 + (t - 0.5) * 2 * nx, 0.5 + (t - 0.5) * 2 * nx])
    ys = np.concatenate([0.5 + (t - 0.5) * 2 * ny, 0.5 + (t - 0.5) * 2 * ny, t * 0 + 0.5, t * 0 + ny + 0.5])
    ra, dec = wcs.xyToradec(xs, ys, units="deg")
    gx, gy = grid_wcs.radecToxy(ra, dec, units="deg")
    return float(np.min(gx)), float(np.max(gx)), float(np.min(gy)), float(np.max(gy))


def _ccd_conditions(rng: np.random.Generator, band: str, n_exposures: int, zp: float, sky_factor: float,
                    origin: tuple[float, float], edge: int) -> se_render.CCDConditions:
    """Zero point, gains, noise, pedestal and saturation of one CCD (module docstring)."""
    sigma30 = synth.pixel_noise_sigma(band) * math.sqrt(n_exposures * sky_factor)
    sigma = sigma30 * 10 ** (0.4 * (zp - synth.ZEROPOINT))
    sky = 10 ** (0.4 * (zp - synth.SKY_MAG[band])) * PIXEL_SCALE**2 * sky_factor
    sigma_a, sigma_b = sigma * rng.uniform(0.97, 1.03), sigma * rng.uniform(0.97, 1.03)
    saturate = 10 ** (0.4 * (zp - 15.5)) * 0.05  # stars brighter than about 15.5 saturate
    return se_render.CCDConditions(mag_zero=zp, gain_a=sky / sigma_a**2, gain_b=sky / sigma_b**2, sigma_a=sigma_a,
                                   sigma_b=sigma_b, pedestal=float(rng.normal(0.0, 0.3 * sigma)),
                                   saturate=saturate, origin=origin, edge=edge)


def _write_ccd(task: _CCDTask, stars: np.ndarray, gals: np.ndarray) -> None:
    """Render, write (nwgint MEF, atomically) and model the PSF of one CCD."""
    header = fits.Header.fromstring(task.header)
    wcs = galsim.GSFitsWCS(header=header)
    shape = (int(header["NAXIS1"]), int(header["NAXIS2"]))
    planes = se_render.render_ccd(wcs, shape, task.psf, task.cond, task.band, stars, gals,
                                  np.random.default_rng(list(task.seed)))
    c = task.cond
    wcs_cards = [{"name": r.keyword, "value": r.value, "comment": r.comment} for r in header.cards
                 if r.keyword not in ("NAXIS", "NAXIS1", "NAXIS2")]
    cards = wcs_cards + [
        {"name": "EXPNUM", "value": task.expnum, "comment": "DECam exposure number"},
        {"name": "CCDNUM", "value": task.ccdnum, "comment": "CCD number"},
        {"name": "BAND", "value": task.band, "comment": "Filter band"},
        {"name": "FILTER", "value": f"{task.band} DECam synthetic", "comment": "Filter"},
        {"name": "EXPTIME", "value": EXPTIME[task.band], "comment": "Exposure time, s"},
        {"name": "MAG_ZERO", "value": c.mag_zero, "comment": "MAG_ZERO to be applied in coadd"},
        {"name": "GAINA", "value": c.gain_a, "comment": "Gain of amplifier A, e-/ADU"},
        {"name": "GAINB", "value": c.gain_b, "comment": "Gain of amplifier B, e-/ADU"},
        {"name": "SATURATA", "value": c.saturate, "comment": "Saturation of amplifier A, ADU"},
        {"name": "SATURATB", "value": c.saturate, "comment": "Saturation of amplifier B, ADU"},
        {"name": "SATURATE", "value": c.saturate, "comment": "Saturation level, ADU"},
        {"name": "SKYVARA", "value": c.sigma_a**2, "comment": "Sky variance of amplifier A, ADU^2"},
        {"name": "SKYVARB", "value": c.sigma_b**2, "comment": "Sky variance of amplifier B, ADU^2"},
        {"name": "SKYSIGMA", "value": 0.5 * (c.sigma_a + c.sigma_b), "comment": "Sky noise, ADU"},
        {"name": "FWHM", "value": task.psf.fwhm / PIXEL_SCALE, "comment": "Seeing FWHM at the axis, pixels"},
    ]
    with atomic_path(task.image) as tmp, fitsio.FITS(str(tmp), "rw", clobber=True) as f:
        f.write(planes.sci, header=cards, extname="SCI")
        f.write(planes.wgt, header=wcs_cards, extname="WGT")
        f.write(planes.wgt_me, header=wcs_cards, extname="WGT_ME")
        f.write(planes.msk, header=wcs_cards, extname="MSK")
    astromatic.make_psf_model(task.image, task.psf_file, workdir=task.workdir, weight_hdu=NWGINT_HDUS["WGT"])
    if task.piff_file is not None:
        _fit_piff(task, wcs, shape, stars)


def piff_color_name(band: str, bands: Sequence[str]) -> str | None:
    """The Y6 colour property of ``band``'s Piff models, when the survey has both its bands."""
    name = "IZ_COLOR" if band in ("z", "Y") else "GI_COLOR"
    return name if all(b in bands for b in COLOR_BANDS[name]) else None


def _fit_piff(task: _CCDTask, wcs: galsim.BaseWCS, shape: tuple[int, int], stars: np.ndarray) -> None:
    """Fit the CCD's Piff model to the bright isolated stars well inside it."""
    bright = stars[stars["kind"] == 0]
    x, y = wcs.radecToxy(bright["ra"], bright["dec"], units="deg")
    margin = 0.5 * piff_fit.STAMP_SIZE + 1
    inside = (x > margin) & (x < shape[0] - margin) & (y > margin) & (y < shape[1] - margin)
    bands = [n[4:] for n in stars.dtype.names if n.startswith("mag_")]
    name = piff_color_name(task.band, bands)
    colors = None
    if name:
        first, second = COLOR_BANDS[name]
        colors = (bright[f"mag_{first}"] - bright[f"mag_{second}"])[inside]
    piff_fit.make_piff_model(task.image, task.piff_file, x[inside], y[inside], workdir=task.workdir,
                             sci_hdu=0, weight_hdu=NWGINT_HDUS["WGT"], color_name=name, colors=colors)


_SKY: dict[str, np.ndarray] = {}


def _run_task(task: _CCDTask) -> tuple[str, int, int]:
    _write_ccd(task, _SKY["stars"], _SKY["galaxies"])
    return task.band, task.expnum, task.ccdnum


# ----------------------------------------------------------------------------- the survey


def make_se_survey(
    tilename: str,
    outdir: str | os.PathLike,
    *,
    tile_size: int = 10000,
    bands: Sequence[str] = DEFAULT_BANDS,
    n_exposures: int = 4,
    ccd_shape: tuple[int, int] = DECAM_CCD_SHAPE,
    gap: tuple[int, int] = DECAM_GAP,
    dither: tuple[float, float] | None = None,
    axis_offset: tuple[float, float] = (0.0, 0.0),
    tpv: Mapping[str, float] | None = None,
    zp_scatter: float = 0.1,
    edge: int = 15,
    seed: int = 1,
    ra: float | None = None,
    dec: float | None = None,
    workers: int = 2,
    compress: bool = True,
    det: bool = True,
    zero_points: Mapping[tuple[str, int], float] | None = None,
    sky: SkyDensities = SkyDensities(),
    piff: bool = False,
    made_exposures: int | None = None,
) -> SESurvey:
    """Write a synthetic SE survey of tile ``tilename`` into ``outdir`` (module docstring).

    ``tile_size`` is the side of the coadd grid (pixels at 0.263", centred on the DES tile's
    centre or ``ra``/``dec`` degrees). ``ccd_shape`` (x, y) and ``gap`` are pixels; small
    CCDs (e.g. 512 x 1024) make quick test surveys. ``dither`` is the largest shift of an
    exposure's pointing in x and y, pixels (default: half a CCD plus a gap, which moves the
    gaps across the tile). ``axis_offset`` puts the CCD block off the optical axis (pixels),
    where ``tpv`` (``PV1_*``/``PV2_*`` terms, None = plain TAN) distorts most.
    ``zero_points`` sets the zero point of exposure ``(band, index)`` (0-based) instead of
    drawing it. ``sky`` sets the object densities (e.g. a field of isolated stars). ``piff``
    also fits a Piff model per CCD (``<key>_piff.fits``, named in the set as each image's
    ``piff``). ``workers`` CCDs are rendered at once (processes); ``compress`` writes the
    coadd as ``.fits.fz`` (real fpack); ``det`` builds the riz detection image. An existing
    complete survey (``se_set.json`` present) is not remade; CCD files already in ``outdir``
    are kept (an interrupted survey resumes).

    ``made_exposures`` (k) renders and lists only the first k exposures of each band of the
    ``n_exposures`` survey: the sky, the dithers and the noise per exposure are those of the
    whole survey, so its CCD files are the same bytes the whole survey would hold (a benchmark
    uses part of a large survey without rendering all of it). Its coadd is the re-coadd of
    those k exposures, and its ``se_set.json`` marks that partial survey complete: give it
    its own ``outdir``.
    """
    bands = tuple(bands)
    unknown = [b for b in bands if b not in synth.DEPTH_10SIGMA]
    if not bands or unknown or len(set(bands)) != len(bands):
        raise ConfigError(f"bands {','.join(bands)!r} must be distinct values out of {','.join(synth.DEPTH_10SIGMA)}")
    if det and not set(synth.DETECTION_BANDS) <= set(bands):
        raise ConfigError(f"the det image needs bands r, i and z; got {','.join(bands)}")
    if not (isinstance(n_exposures, int) and n_exposures >= 1):
        raise ConfigError(f"n_exposures {n_exposures!r} must be a positive integer")
    if made_exposures is not None and not (isinstance(made_exposures, int) and 1 <= made_exposures <= n_exposures):
        raise ConfigError(f"made_exposures {made_exposures!r} must be an integer from 1 to n_exposures ({n_exposures})")
    if min(ccd_shape) < 64 or tile_size < 64:
        raise ConfigError(f"CCDs {ccd_shape} and tile size {tile_size} must be at least 64 pixels")
    outdir = Path(outdir).resolve()
    if ra is None or dec is None:
        tile = geometry.des_tile(tilename)
        ra = tile.ra_cent if ra is None else ra
        dec = tile.dec_cent if dec is None else dec
    grid = CoaddGrid(ra=float(ra), dec=float(dec), naxis1=int(tile_size), naxis2=int(tile_size), pixel_scale=PIXEL_SCALE)
    if dither is None:
        dither = (0.5 * (ccd_shape[0] + gap[0]), 0.5 * (ccd_shape[1] + gap[1]))
    layout = covering_layout((tile_size, tile_size), ccd_shape, gap, dither)
    fp = FocalPlane(ccd_shape=tuple(ccd_shape), gap=tuple(gap), layout=layout, axis_offset=tuple(axis_offset),
                    tpv=dict(tpv) if tpv else None)
    done = outdir / SE_DIRNAME / FILENAME  # beside the CCD files, as the fetch leaves a tile's set
    if done.is_file():
        log.info("synthetic SE survey %s already made in %s", tilename, outdir)
        se_set = read_se_set(done)
        if not piff or all(e.piff is not None for es in se_set.images.values() for e in es):
            return _survey_result(tilename, outdir, done, se_set, grid, fp, bands, det, compress)
        log.info("synthetic SE survey %s: adding Piff models", tilename)

    t0 = time.perf_counter()
    (outdir / "se").mkdir(parents=True, exist_ok=True)
    grid_wcs = galsim.GSFitsWCS(header=grid.wcs_header())
    rng = np.random.default_rng([seed, 101])
    # Exposures and their CCDs that overlap the tile.
    tasks: list[_CCDTask] = []
    boxes = []
    radius = math.hypot(*fp.block_size) / 2.0 + math.hypot(*axis_offset)
    for bi, band in enumerate(bands):
        for e in range(n_exposures):
            erng = np.random.default_rng([seed, 7, list(synth.DEPTH_10SIGMA).index(band), e])
            dx, dy = erng.uniform(-dither[0], dither[0]), erng.uniform(-dither[1], dither[1])
            axis = fp.pointing_for(grid.ra, grid.dec, dx, dy)
            psf = se_render.ExposurePSF(fwhm=synth.PSF_FWHM[band] * erng.uniform(0.85, 1.2),
                                        g1=erng.normal(0, 0.01), g2=erng.normal(0, 0.01), radius=radius)
            zp_exp = erng.uniform(-zp_scatter, zp_scatter)
            sky_factor = erng.uniform(0.8, 1.25)
            expnum = FIRST_EXPNUM + 100 * bi + e
            for ccdnum, x0, y0 in fp.ccd_origins():
                header = fp.header(axis[0], axis[1], x0, y0, *ccd_shape)
                box = _ccd_box_on_grid(header, grid_wcs)
                if box[1] < 0.5 or box[0] > tile_size + 0.5 or box[3] < 0.5 or box[2] > tile_size + 0.5:
                    continue  # not on the tile: DESDM's file set would not list it
                boxes.append(box)  # every exposure's, so the sky is the whole survey's
                if made_exposures is not None and e >= made_exposures:
                    continue
                if zero_points is not None and (band, e) in zero_points:
                    zp = float(zero_points[(band, e)])
                else:
                    zp = 30.0 + float(np.clip(zp_exp + erng.normal(0, 0.01), -zp_scatter, zp_scatter))
                cond = _ccd_conditions(erng, band, n_exposures, zp, sky_factor, (x0, y0), edge)
                key = SEImage(band, expnum, ccdnum, Path(), Path(), zp).key
                tasks.append(_CCDTask(band=band, expnum=expnum, ccdnum=ccdnum, header=header.tostring(), psf=psf,
                                      cond=cond, seed=(seed, 13, bi, e, ccdnum),
                                      image=outdir / "se" / f"{key}_nwgint.fits",
                                      psf_file=outdir / "se" / f"{key}_psfexcat.psf", workdir=outdir / "se",
                                      piff_file=outdir / "se" / f"{key}_piff.fits" if piff else None))
    arr = np.array(boxes)
    lo = np.array([arr[:, 0].min() - 80, arr[:, 2].min() - 80])
    hi = np.array([arr[:, 1].max() + 80, arr[:, 3].max() + 80])
    ccd_area = ccd_shape[0] * ccd_shape[1] * (PIXEL_SCALE / 60.0) ** 2
    stars, gals = make_sky(rng, grid_wcs, lo, hi, bands, ccd_area, sky)
    made = "" if made_exposures is None else f", the first {made_exposures} made"
    log.info("synthetic SE survey %s: %d CCD images (%s bands, %d exposures each%s, %dx%d CCDs of %dx%d), "
             "%d stars, %d galaxies", tilename, len(tasks), ",".join(bands), n_exposures, made, layout[0], layout[1],
             ccd_shape[0], ccd_shape[1], len(stars), len(gals))

    todo = [t for t in tasks if not (t.image.is_file() and t.psf_file.is_file()
                                     and (t.piff_file is None or t.piff_file.is_file()))]
    _SKY["stars"], _SKY["galaxies"] = stars, gals
    try:
        if workers > 1 and len(todo) > 1:
            ctx = multiprocessing.get_context("fork")  # the workers share the sky tables
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                list(pool.map(_run_task, todo))
        else:
            for t in todo:
                _run_task(t)
    finally:
        _SKY.clear()
    log.info("synthetic SE survey %s: CCDs and their PSF models made in %.1f s", tilename, time.perf_counter() - t0)

    images = {b: [SEImage(t.band, t.expnum, t.ccdnum, t.image, t.psf_file, t.cond.mag_zero, t.piff_file)
                  for t in tasks if t.band == b] for b in bands}
    coadd_images, coadd_psfs = make_survey_coadd(tilename, outdir, images, grid, det=det, compress=compress,
                                                 workers=workers)
    for name, table in (("stars", stars), ("galaxies", gals)):
        with atomic_path(outdir / f"{tilename}_{name}.fits") as tmp:
            fitsio.write(str(tmp), table, extname=name.upper())
    se_set = SESet(tile=tilename, images=images, grid=grid, coadd_psfs=coadd_psfs)
    write_se_set(done, se_set)
    log.info("synthetic SE survey %s made in %.1f s", tilename, time.perf_counter() - t0)
    return _survey_result(tilename, outdir, done, se_set, grid, fp, bands, det, compress)


def _survey_result(tilename: str, outdir: Path, done: Path, se_set: SESet, grid: CoaddGrid, fp: FocalPlane,
                   bands: Sequence[str], det: bool, compress: bool) -> SESurvey:
    suffix = ".fits.fz" if compress else ".fits"
    keys = [*bands, "det"] if det else list(bands)
    return SESurvey(tilename=tilename, outdir=outdir, se_set_path=done, se_set=se_set, grid=grid, focal_plane=fp,
                    coadd_images={k: outdir / f"{tilename}_{k}{suffix}" for k in keys},
                    coadd_psfs=dict(se_set.coadd_psfs), stars=outdir / f"{tilename}_stars.fits",
                    galaxies=outdir / f"{tilename}_galaxies.fits")


def make_survey_coadd(tilename: str, outdir: Path, images: Mapping[str, Sequence[SEImage]], grid: CoaddGrid, *,
                      det: bool = True, compress: bool = True, workers: int = 2) -> tuple[dict[str, Path], dict[str, Path]]:
    """The tile's coadd from the untouched SE images: re-coadd, det image, PSFEx models; DESDM layout."""
    suffix = ".fits.fz" if compress else ".fits"
    out_images: dict[str, Path] = {}
    out_psfs: dict[str, Path] = {}
    with programs.scratch_dir(outdir, prefix=f".{tilename}-coadd-") as tmp:
        plain = {b: recoadd_band(images[b], grid, tmp / f"{tilename}_{b}.fits", band=b, tilename=tilename,
                                 workdir=tmp, checksum=True) for b in images}
        if det:
            plain["det"] = astromatic.make_detection_image(
                [((plain[b], 0), (plain[b], 2)) for b in synth.DETECTION_BANDS], tmp / f"{tilename}_det.fits",
                workdir=tmp, extra={"TILENAME": (tilename, "DES tile")})
        for key, path in plain.items():
            psf = outdir / f"{tilename}_{key}_psfcat.psf"
            astromatic.make_psf_model(path, psf, workdir=tmp)
            out_psfs[key] = psf
            final = outdir / f"{tilename}_{key}{suffix}"
            if compress:
                run_fpack(path, final, workdir=tmp)
            else:
                os.replace(path, final)
            out_images[key] = final
    return out_images, out_psfs
