"""Synthetic DES-like coadd tiles, for the tests and the demo (no DESDM account needed).

A synthetic tile has the DESDM layout the rest of the pipeline reads (DEVELOPING.md, "Tile
images"): per band ``<TILE>_<band>.fits.fz`` with HDUs SCI (float32, TAN WCS at the tile
centre, 0.263"/pix, ``SEXMGZPT``, ``GAIN``, ``EXPTIME``), MSK (int32) and WGT (float32
inverse variance), FITS checksums, fpack-compressed with the real ``fpack``; a real PSFEx
model per band ``<TILE>_<band>_psfcat.psf`` made by SExtractor (FITS_LDAC with VIGNET) +
``psfex`` on the image; the riz CHI-MEAN detection image ``<TILE>_det.fits.fz`` made by
SWarp and its PSFEx model; and ``<TILE>_stars.fits``, the input star list (x, y 1-based
FITS pixels, ra, dec in degrees, ``mag_<band>``) for PSF and photometry checks.

The sky is realistic in the ways detection cares about: the per-pixel noise of each band is
derived from DES coadd 10-sigma limiting magnitudes (for a point source measured over the
noise-equivalent area of its PSF), the gain from a typical sky brightness over that noise,
and the PSF is a Moffat whose FWHM differs by band and varies mildly across the tile. The
images are sky-subtracted, as DES coadds are. Stars and galaxies follow simple power-law
number counts; a few star counts are guaranteed bright and isolated so PSFEx has samples
even on a 256-pixel tile.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import fitsio
import galsim
import numpy as np
from astropy.io import fits

from .. import programs
from ..errors import ConfigError
from ..inputs.fpack import run_fpack
from ..measurement import astromatic
from ..sky import geometry

log = logging.getLogger(__name__)

#: DES coadd pixel scale, arcsec per pixel.
PIXEL_SCALE = 0.263
#: DESDM coadd magnitude zeropoint (``SEXMGZPT``), mag.
ZEROPOINT = 30.0
DEFAULT_BANDS = ("g", "r", "i", "z", "Y")
DETECTION_BANDS = ("r", "i", "z")
#: 10-sigma point-source limiting magnitudes of DES coadds (roughly Y3 depth), mag.
DEPTH_10SIGMA = {"g": 24.3, "r": 24.1, "i": 23.5, "z": 22.9, "Y": 21.7}
#: PSF FWHM at the tile centre per band, arcsec.
PSF_FWHM = {"g": 1.10, "r": 1.00, "i": 0.95, "z": 0.93, "Y": 0.97}
#: Dark-sky brightness per band, mag per arcsec^2 (sets the gain, not the noise).
SKY_MAG = {"g": 22.0, "r": 21.2, "i": 20.5, "z": 19.6, "Y": 18.6}
#: Total exposure time of the coadd, seconds (10 x 90 s; Y 10 x 45 s).
EXPTIME = {"g": 900.0, "r": 900.0, "i": 900.0, "z": 900.0, "Y": 450.0}
#: Typical star / galaxy colours relative to r (mag), with per-object scatter added.
STAR_COLOUR = {"g": 0.6, "r": 0.0, "i": -0.2, "z": -0.3, "Y": -0.35}
GALAXY_COLOUR = {"g": 0.8, "r": 0.0, "i": -0.4, "z": -0.6, "Y": -0.7}
MOFFAT_BETA = 3.5
MSK_BADPIX = 1  #: MSK bit of the synthetic bad pixels


@dataclass(frozen=True)
class SyntheticTile:
    """The files of one synthetic tile (all paths absolute)."""

    tilename: str
    outdir: Path
    bands: tuple[str, ...]
    images: dict[str, Path] = field(default_factory=dict)  #: band (and 'det') -> image file
    psfs: dict[str, Path] = field(default_factory=dict)  #: band (and 'det') -> PSFEx model
    stars: Path | None = None  #: the input star list


def pixel_noise_sigma(band: str, fwhm_arcsec: float | None = None) -> float:
    """Per-pixel noise (ADU at zeropoint 30) giving the band's 10-sigma point-source depth.

    A point source measured optimally over a Gaussian PSF of width sigma (pixels) has a
    noise-equivalent area of 4 pi sigma^2, so sigma_pix = F_10 / (10 sqrt(NEA)) with
    F_10 = 10**(0.4 (ZP - m_10)).
    """
    fwhm = (PSF_FWHM[band] if fwhm_arcsec is None else fwhm_arcsec) / PIXEL_SCALE
    sigma_psf = fwhm / 2.3548
    nea = 4.0 * math.pi * sigma_psf**2
    f10 = 10.0 ** (0.4 * (ZEROPOINT - DEPTH_10SIGMA[band]))
    return f10 / (10.0 * math.sqrt(nea))


def band_gain(band: str) -> float:
    """Effective coadd gain (e-/ADU): the sky per pixel over the noise variance it causes."""
    sky_pix = 10.0 ** (0.4 * (ZEROPOINT - SKY_MAG[band])) * PIXEL_SCALE**2
    return sky_pix / pixel_noise_sigma(band) ** 2


def tile_header(tilename: str, size: int, tile: geometry.Tile | None = None,
                ra: float | None = None, dec: float | None = None) -> fits.Header:
    """The synthetic tile's TAN header: the DES tile's centre and 0.263"/pix, CRPIX at its centre.

    The centre comes from ``tile`` (e.g. a row of a Y3 tile table) or else from the DES
    tiling for ``tilename``; ``ra``/``dec`` (degrees) override it.
    """
    if ra is None or dec is None:
        tile = tile if tile is not None else geometry.des_tile(tilename)
        ra = tile.ra_cent if ra is None else ra
        dec = tile.dec_cent if dec is None else dec
    return tile_wcs_header(float(ra), float(dec), size, size)


def tile_wcs_header(ra: float, dec: float, naxis1: int, naxis2: int) -> fits.Header:
    """TAN header centred on (ra, dec) degrees at 0.263"/pix, CRPIX at the image centre."""
    h = fits.Header()
    h["NAXIS"] = 2
    h["NAXIS1"] = naxis1
    h["NAXIS2"] = naxis2
    h["CTYPE1"] = "RA---TAN"
    h["CTYPE2"] = "DEC--TAN"
    h["CRVAL1"] = ra
    h["CRVAL2"] = dec
    h["CRPIX1"] = (naxis1 + 1) / 2.0
    h["CRPIX2"] = (naxis2 + 1) / 2.0
    h["CD1_1"] = -PIXEL_SCALE / 3600.0
    h["CD1_2"] = 0.0
    h["CD2_1"] = 0.0
    h["CD2_2"] = PIXEL_SCALE / 3600.0
    h["CUNIT1"] = "deg"
    h["CUNIT2"] = "deg"
    h["EQUINOX"] = 2000.0
    h["RADESYS"] = "ICRS"
    return h


# ----------------------------------------------------------------------------- objects


def _isolated_positions(rng: np.random.Generator, n: int, size: int, margin: float, min_sep: float,
                        avoid: np.ndarray | None = None) -> np.ndarray:
    """Up to ``n`` uniform 1-based positions at least ``min_sep`` pixels from each other."""
    pts: list[tuple[float, float]] = [] if avoid is None else [tuple(p) for p in avoid]
    start = len(pts)
    tries = 0
    while len(pts) - start < n and tries < 50 * n:
        tries += 1
        p = rng.uniform(1 + margin, size - margin, 2)
        if all((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2 >= min_sep**2 for q in pts):
            pts.append((p[0], p[1]))
    return np.array(pts[start:], dtype=float).reshape(-1, 2)


def _power_law_mags(rng: np.random.Generator, n: int, mmin: float, mmax: float, slope: float) -> np.ndarray:
    """Magnitudes with dN/dm ~ 10**(slope m) on [mmin, mmax] (inverse-CDF sampling)."""
    if slope == 0:
        return rng.uniform(mmin, mmax, n)
    a, b = 10 ** (slope * mmin), 10 ** (slope * mmax)
    return np.log10(a + rng.uniform(0, 1, n) * (b - a)) / slope


def _make_objects(rng: np.random.Generator, size: int, bands: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Star and galaxy tables for a ``size`` x ``size`` tile (shared by every band)."""
    area = (size * PIXEL_SCALE / 60.0) ** 2  # arcmin^2
    # Bright, isolated stars: PSFEx samples and photometry checks (>= 25 even on small tiles).
    n_bright = max(25, int(round(1.5 * area)))
    bright_xy = _isolated_positions(rng, n_bright, size, margin=20, min_sep=30)
    n_faint = int(round(2.0 * area))
    faint_xy = rng.uniform(1, size, (n_faint, 2))
    star_xy = np.vstack([bright_xy, faint_xy])
    star_r = np.concatenate([rng.uniform(17.0, 20.5, len(bright_xy)), rng.uniform(21.0, 24.0, n_faint)])
    stars = np.zeros(len(star_xy), dtype=[("x", "f8"), ("y", "f8")] + [(f"mag_{b}", "f8") for b in bands])
    stars["x"], stars["y"] = star_xy[:, 0], star_xy[:, 1]
    for b in bands:
        stars[f"mag_{b}"] = star_r + STAR_COLOUR.get(b, 0.0) * rng.uniform(0.5, 1.5, len(stars))

    # Galaxies: dN/dm ~ 10**(0.3 m), about 35 per arcmin^2 brighter than r = 25.
    n_gal = int(round(35.0 * area))
    gals = np.zeros(n_gal, dtype=[("x", "f8"), ("y", "f8"), ("hlr", "f8"), ("q", "f8"), ("beta", "f8")]
                    + [(f"mag_{b}", "f8") for b in bands])
    gals["x"], gals["y"] = rng.uniform(1, size, n_gal), rng.uniform(1, size, n_gal)
    gal_r = _power_law_mags(rng, n_gal, 18.0, 25.0, 0.3)
    # Size-magnitude relation: ~1.2" at r = 19 shrinking to ~0.35" at r = 25, log-normal scatter.
    gals["hlr"] = np.clip(10 ** (-0.09 * (gal_r - 19.0) + 0.08 + rng.normal(0, 0.12, n_gal)), 0.15, 4.0)
    gals["q"] = rng.uniform(0.3, 1.0, n_gal)
    gals["beta"] = rng.uniform(0, 180, n_gal)
    colour_scale = rng.uniform(0.5, 1.5, n_gal)
    for b in bands:
        gals[f"mag_{b}"] = gal_r + GALAXY_COLOUR.get(b, 0.0) * colour_scale
    return stars, gals


def _psf_at(base: galsim.GSObject, x: float, y: float, size: int) -> galsim.GSObject:
    """The band's PSF at pixel (x, y): FWHM +-4% and shear up to 0.02 across the tile.

    Built as a dilation and shear of one Moffat per band: GalSim caches the (slow, numerical)
    maxk of a truncated Moffat on the instance, and transformations reuse it, which makes
    drawing about ten times faster than a new Moffat per object.
    """
    u, v = (x - (size + 1) / 2) / size, (y - (size + 1) / 2) / size
    return base.dilate(1.0 + 0.08 * u).shear(g1=0.02 * v, g2=0.02 * u)


def _base_psf(fwhm: float, gsparams: galsim.GSParams) -> galsim.GSObject:
    return galsim.Moffat(beta=MOFFAT_BETA, fwhm=fwhm, trunc=4.0 * fwhm, gsparams=gsparams)


def _draw(full: galsim.ImageF, profile: galsim.GSObject, x: float, y: float, stamp: int) -> None:
    """Draw ``profile`` centred on 1-based pixel position (x, y) and add it into ``full``.

    GalSim images default to 1-based bounds whose pixel centres sit on integers, the same
    convention as FITS and SExtractor's X_IMAGE, so no half-pixel shifts are needed.
    """
    ix, iy = int(math.floor(x + 0.5)), int(math.floor(y + 0.5))
    img = profile.drawImage(nx=stamp, ny=stamp, scale=PIXEL_SCALE, offset=(x - ix, y - iy))
    img.setCenter(ix, iy)
    b = img.bounds & full.bounds
    if b.isDefined():
        full[b] += img[b]


def _render_band(band: str, size: int, stars: np.ndarray, gals: np.ndarray, psf_fwhm: dict[str, float],
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sci, msk, wgt) arrays of one band: noiseless objects + object Poisson + sky noise."""
    full = galsim.ImageF(size, size, scale=PIXEL_SCALE)
    gsp = galsim.GSParams(folding_threshold=1e-2, maxk_threshold=3e-3)
    base = _base_psf(psf_fwhm[band], gsp)
    for s in stars:
        flux = 10 ** (0.4 * (ZEROPOINT - s[f"mag_{band}"]))
        psf = _psf_at(base, s["x"], s["y"], size).withFlux(flux)
        _draw(full, psf, s["x"], s["y"], stamp=41)
    for g in gals:
        flux = 10 ** (0.4 * (ZEROPOINT - g[f"mag_{band}"]))
        gal = galsim.Exponential(half_light_radius=g["hlr"], flux=flux, gsparams=gsp)
        gal = gal.shear(q=g["q"], beta=g["beta"] * galsim.degrees)
        obj = galsim.Convolve(gal, _psf_at(base, g["x"], g["y"], size))
        stamp = int(np.clip(2 * math.ceil((6 * g["hlr"] + 2 * psf_fwhm[band]) / PIXEL_SCALE) + 1, 25, 151))
        _draw(full, obj, g["x"], g["y"], stamp=stamp)
    model = full.array.astype(np.float64)
    gain = band_gain(band)
    sigma = pixel_noise_sigma(band)
    sci = model + rng.normal(0.0, 1.0, model.shape) * np.sqrt(np.clip(model, 0, None) / gain)
    sci += rng.normal(0.0, sigma, model.shape)
    msk = np.zeros(model.shape, dtype=np.int32)
    # A short bad column and a sprinkle of bad pixels (zero weight, DESDM style).
    col = int(rng.integers(size // 4, 3 * size // 4))
    row0 = int(rng.integers(0, size - size // 8))
    msk[row0:row0 + size // 8, col] = MSK_BADPIX
    bad = rng.integers(0, size, (max(4, size * size // 40000), 2))
    msk[bad[:, 1], bad[:, 0]] = MSK_BADPIX
    wgt = np.full(model.shape, 1.0 / sigma**2, dtype=np.float32)
    wgt[msk != 0] = 0.0
    sci[msk != 0] = 0.0
    return sci.astype(np.float32), msk, wgt


def add_sources(src: str | os.PathLike, dst: str | os.PathLike, xy: np.ndarray, mags: Sequence[float],
                fwhm: float, hlr: Sequence[float] | None = None, stamp: int = 61) -> Path:
    """Copy a funpacked tile image (SCI, MSK, WGT) to ``dst`` with noiseless sources added to SCI.

    A stand-in for the injection when a test or benchmark needs known objects in an image
    without GalSim's PSFEx path: Moffat stars (``hlr`` 0 or None) and exponential galaxies of
    half-light radius ``hlr`` arcsec, at 1-based pixel positions ``xy``, magnitudes on the
    synthetic tiles' zeropoint, with the same PSF model the tile was rendered with.
    """
    sci = fitsio.read(str(src), ext=0, header=False)
    size = sci.shape[1]
    full = galsim.ImageF(sci.astype(np.float32), xmin=1, ymin=1)
    base = _base_psf(fwhm, galsim.GSParams())
    radii = np.zeros(len(xy)) if hlr is None else np.asarray(hlr, dtype=float)
    for (x, y), m, r in zip(xy, mags, radii, strict=True):
        flux = 10 ** (0.4 * (ZEROPOINT - m))
        psf = _psf_at(base, x, y, size)
        obj = psf.withFlux(flux) if r == 0 else galsim.Convolve(galsim.Exponential(half_light_radius=r, flux=flux), psf)
        _draw(full, obj, x, y, stamp=stamp)
    with fitsio.FITS(str(src)) as f:
        hdrs = [f[k].read_header() for k in range(3)]
        planes = [full.array, f[1].read(), f[2].read()]
    with fitsio.FITS(str(dst), "rw", clobber=True) as out:
        for plane, hdr in zip(planes, hdrs, strict=True):
            out.write(plane, header=hdr)
    return Path(dst)


#: Moved to the measurement stage (the node fits coadd PSF models of single-epoch tiles too).
PSF_NORM_APERTURE = astromatic.PSF_NORM_APERTURE
make_psf_model = astromatic.make_psf_model


def make_synthetic_tile(
    tilename: str,
    outdir: str | os.PathLike,
    *,
    size: int = 1024,
    bands: Sequence[str] = DEFAULT_BANDS,
    seed: int = 1,
    ra: float | None = None,
    dec: float | None = None,
    tile: geometry.Tile | None = None,
    compress: bool = True,
    det: bool = True,
    workers: int = 2,
    fpack: str = "fpack",
    sex: astromatic.SextractorSetup | None = None,
    swarp: astromatic.SwarpSetup = astromatic.DEFAULT_SWARP,
    psfex: astromatic.PsfexSetup = astromatic.DEFAULT_PSFEX,
    progress: bool = False,
) -> SyntheticTile:
    """Write a synthetic DES-like tile into ``outdir``; return the list of its files.

    ``size`` is the side in pixels (0.263"/pix), ``seed`` makes the tile reproducible. The
    centre is the DES tile's (from ``tile`` or the DES tiling); ``ra``/``dec`` (degrees)
    override it. With
    ``compress`` the images are ``.fits.fz`` (real fpack), else plain ``.fits``. ``det``
    builds the riz detection image (needs r, i and z). ``workers`` external-program runs go
    in parallel (threads: the programs do the work). ``progress`` shows a tqdm bar of the
    steps (each band rendered, the det image, each band's PSF model + fpack).
    """
    if not isinstance(size, int) or size < 64:
        raise ConfigError(f"tile size {size!r} must be an integer of at least 64 pixels")
    bands = tuple(bands)
    unknown = [b for b in bands if b not in DEPTH_10SIGMA]
    if unknown or not bands or len(set(bands)) != len(bands):
        raise ConfigError(f"bands {','.join(bands)!r} must be distinct values out of {','.join(DEPTH_10SIGMA)}")
    if det and not set(DETECTION_BANDS) <= set(bands):
        raise ConfigError(f"the det image needs bands r, i and z; got {','.join(bands)}")
    header = tile_header(tilename, size, tile, ra, dec)
    outdir = Path(outdir).resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    wcs = galsim.AstropyWCS(header=header)
    rng = np.random.default_rng([seed, 7])
    stars, gals = _make_objects(rng, size, bands)
    suffix = ".fits.fz" if compress else ".fits"
    result = SyntheticTile(tilename, outdir, bands)
    log.info("synthetic tile %s: %d x %d pixels, %d stars, %d galaxies, bands %s",
             tilename, size, size, len(stars), len(gals), ",".join(bands))

    from tqdm import tqdm

    steps = 2 * len(bands) + (2 if det else 0)  # render each band, det, then PSF + fpack of each
    with tqdm(total=steps, desc=tilename, unit="step", disable=not progress, leave=False, mininterval=0) as bar, \
            programs.scratch_dir(outdir, prefix=f".{tilename}-synth-") as tmp:
        plain: dict[str, Path] = {}
        for band in bands:
            # Seeded by the band itself, so a band's pixels do not depend on the others made.
            band_rng = np.random.default_rng([seed, 11, list(DEPTH_10SIGMA).index(band)])
            sci, msk, wgt = _render_band(band, size, stars, gals, PSF_FWHM, band_rng)
            plain[band] = astromatic.write_desdm_image(
                tmp / f"{tilename}_{band}.fits", sci, msk, wgt, header,
                {"SEXMGZPT": (ZEROPOINT, "Mag zeropoint, mag"), "GAIN": (band_gain(band), "Effective gain, e-/ADU"),
                 "EXPTIME": (EXPTIME[band], "Total exposure time, s"), "BAND": (band, "Filter band"),
                 "TILENAME": (tilename, "DES tile"), "SATURATE": (1.0e9, "Saturation level, ADU")})
            bar.update(1)

        if det:
            plain["det"] = astromatic.make_detection_image(
                [((plain[b], 0), (plain[b], 2)) for b in DETECTION_BANDS], tmp / f"{tilename}_det.fits",
                setup=swarp, workdir=tmp, extra={"TILENAME": (tilename, "DES tile")})
            bar.update(1)

        # Finished files are staged in the scratch directory and renamed into ``outdir`` only
        # when every one exists: a failure leaves no partial tile behind.
        stage = tmp / "stage"
        stage.mkdir()

        def finish(band: str) -> tuple[str, str, str]:
            psf_name = f"{tilename}_{band}_psfcat.psf"
            make_psf_model(plain[band], stage / psf_name, workdir=tmp, sex=sex, psfex=psfex)
            image_name = f"{tilename}_{band}{suffix}"
            if compress:
                run_fpack(plain[band], stage / image_name, program=fpack, workdir=tmp)
            else:
                os.replace(plain[band], stage / image_name)
            return band, image_name, psf_name

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            names = []
            for item in pool.map(finish, list(plain)):
                names.append(item)
                bar.update(1)

        radec = [wcs.toWorld(galsim.PositionD(x, y)) for x, y in zip(stars["x"], stars["y"], strict=True)]
        star_table = np.zeros(len(stars), dtype=stars.dtype.descr[:2] + [("ra", "f8"), ("dec", "f8")]
                              + stars.dtype.descr[2:])
        for name in stars.dtype.names:
            star_table[name] = stars[name]
        star_table["ra"] = [p.ra.deg for p in radec]
        star_table["dec"] = [p.dec.deg for p in radec]
        stars_name = f"{tilename}_stars.fits"
        fitsio.write(str(stage / stars_name), star_table, extname="STARS")

        for band, image_name, psf_name in names:
            for name in (image_name, psf_name):
                os.replace(stage / name, outdir / name)
            result.images[band] = outdir / image_name
            result.psfs[band] = outdir / psf_name
        os.replace(stage / stars_name, outdir / stars_name)
        stars_path = outdir / stars_name
    return SyntheticTile(tilename, outdir, bands, result.images, result.psfs, stars_path)
