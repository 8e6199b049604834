"""One synthetic CCD image: the sky through one exposure's PSF, noise, DESDM's masks, nwgint planes.

What a CCD of a synthetic single-epoch survey holds, and how it is made:

- **Objects.** The survey's stars and galaxies (world coordinates) drawn through the CCD's
  WCS at each object's own position (``wcs.local``: a TPV header distorts shapes as it moves
  positions), convolved with the exposure's PSF there and the pixel (GalSim's ``auto``), in
  counts at the CCD's zero point: a source of magnitude m has ``10**(0.4 (zp - m))`` counts.
- **PSF.** A Moffat (beta 3.5) whose FWHM is the exposure's seeing, dilated by up to 6% and
  sheared by up to 0.03 across the focal plane (an astigmatism-like pattern about the
  optical axis), plus the exposure's own small shear: it changes across a CCD, between CCDs
  and between exposures, as DES's does.
- **Noise.** The objects' Poisson noise from the gain and a Gaussian sky noise, per
  amplifier (DECam reads each CCD through two, A for x <= nx/2 and B beyond); the images
  are sky-subtracted as DESDM's ``red_immask`` images are, leaving a small residual pedestal
  that SWarp's background subtraction removes.
- **Masks** with DESDM's bits (imsupport ``mask_bits.h``, DESIGN.md section 12): bad columns
  (BPM, interpolated across in SCI like nwgint's row interpolation, INTERP), saturated star
  cores (SATURATE) with bleed trails up and down their columns (TRAIL) and a STAR disc
  around them, cosmic rays (CRAY, interpolated across in SCI), the CCD's edge (EDGE).
- **nwgint planes** (pixcorrect ``coadd_nwgint.py``:162-229): WGT is the inverse variance,
  nulled where any bit of :data:`NULL_MASK` (2009) is set; WGT_ME is nulled the same way except
  that TRAIL pixels inside a STAR disc keep their weight; SCI is not nulled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import galsim
import numpy as np

#: DESDM mask bits (imsupport mask_bits.h).
BPM, SATURATE, INTERP, BADAMP, CRAY, STAR, TRAIL, EDGEBLEED = 1, 2, 4, 8, 16, 32, 64, 128
SSXTALK, EDGE, STREAK = 256, 512, 1024
#: Bits whose pixels nwgint gives zero weight: BPM|BADAMP|EDGEBLEED|EDGE|CRAY|SSXTALK|STREAK|TRAIL.
NULL_MASK = BPM | BADAMP | EDGEBLEED | EDGE | CRAY | SSXTALK | STREAK | TRAIL
assert NULL_MASK == 2009

MOFFAT_BETA = 3.5


@dataclass(frozen=True)
class ExposurePSF:
    """One exposure's PSF model: seeing FWHM (arcsec), its own shear, and the focal-plane pattern.

    ``radius`` (pixels) normalises the focal-plane position: at that distance from the axis
    the PSF is 6% wider and sheared by 0.03.
    """

    fwhm: float
    g1: float
    g2: float
    radius: float

    def base(self, gsparams: galsim.GSParams) -> galsim.GSObject:
        """The exposure's Moffat (GalSim caches its maxk on the instance; transforms reuse it)."""
        return galsim.Moffat(beta=MOFFAT_BETA, fwhm=self.fwhm, trunc=4.0 * self.fwhm, gsparams=gsparams)

    def at(self, base: galsim.GSObject, fx: float, fy: float) -> galsim.GSObject:
        """The PSF at focal-plane pixel (fx, fy) from the axis."""
        u, v = fx / self.radius, fy / self.radius
        rho2 = u * u + v * v
        phi = math.atan2(v, u)
        g1 = self.g1 + 0.03 * rho2 * math.cos(2 * phi)
        g2 = self.g2 + 0.03 * rho2 * math.sin(2 * phi)
        return base.dilate(1.0 + 0.06 * rho2).shear(g1=g1, g2=g2)


@dataclass(frozen=True)
class CCDConditions:
    """What one CCD of one exposure adds: zero point (mag), gains (e-/ADU) and sky noise (counts)
    per amplifier, the residual pedestal (counts), the saturation level (counts), and where its
    pixel (1, 1) is on the focal plane (pixels from the axis)."""

    mag_zero: float
    gain_a: float
    gain_b: float
    sigma_a: float
    sigma_b: float
    pedestal: float
    saturate: float
    origin: tuple[float, float]
    edge: int = 15


@dataclass
class CCDPlanes:
    """The four nwgint planes of a CCD (SCI, WGT, WGT_ME float32; MSK int32) and truth counts."""

    sci: np.ndarray
    wgt: np.ndarray
    wgt_me: np.ndarray
    msk: np.ndarray


def _stamp_half(hlr: float, fwhm: float, scale: float, bright: bool) -> int:
    if bright:
        return 60
    if hlr <= 0:
        return 15
    return int(np.clip(math.ceil((6 * hlr + 2 * fwhm) / scale), 12, 75))


def render_objects(wcs: galsim.BaseWCS, shape: tuple[int, int], psf: ExposurePSF, cond: CCDConditions,
                   band: str, stars: np.ndarray, galaxies: np.ndarray, pixel_scale: float) -> np.ndarray:
    """The noiseless image (counts, float64, shape (ny, nx)) of the stars and galaxies on this CCD.

    ``stars`` has ``ra``, ``dec``, ``mag_<band>``; ``galaxies`` also ``hlr`` (arcsec, circular
    exponential), ``q``, ``beta`` (degrees). Objects whose stamp touches the CCD are drawn,
    wherever their centre is.
    """
    nx, ny = shape
    image = galsim.ImageD(nx, ny, xmin=1, ymin=1)
    gsp = galsim.GSParams(folding_threshold=1e-2, maxk_threshold=3e-3)
    base = psf.base(gsp)
    bright_mag = cond.mag_zero - 2.5 * math.log10(cond.saturate * 20.0)  # stars near saturation get big stamps
    for table, is_star in ((stars, True), (galaxies, False)):
        if len(table) == 0:
            continue
        x, y = wcs.radecToxy(table["ra"], table["dec"], units="deg")
        x, y = np.atleast_1d(x), np.atleast_1d(y)
        near = (x > -80) & (x < nx + 80) & (y > -80) & (y < ny + 80)
        for k in np.nonzero(near)[0]:
            mag = float(table[f"mag_{band}"][k])
            hlr = 0.0 if is_star else float(table["hlr"][k])
            half = _stamp_half(hlr, psf.fwhm, pixel_scale, is_star and mag < bright_mag)
            ix, iy = int(math.floor(x[k] + 0.5)), int(math.floor(y[k] + 0.5))
            bounds = galsim.BoundsI(ix - half, ix + half, iy - half, iy + half)
            overlap = bounds & image.bounds
            if not overlap.isDefined():
                continue
            pos = galsim.PositionD(float(x[k]), float(y[k]))
            p = psf.at(base, cond.origin[0] + x[k] - 1.0, cond.origin[1] + y[k] - 1.0)
            flux = 10.0 ** (0.4 * (cond.mag_zero - mag))
            if is_star:
                obj = p.withFlux(flux)
            else:
                gal = galsim.Exponential(half_light_radius=hlr, flux=flux, gsparams=gsp)
                gal = gal.shear(q=float(table["q"][k]), beta=float(table["beta"][k]) * galsim.degrees)
                obj = galsim.Convolve(gal, p, gsparams=gsp)
            stamp = galsim.ImageD(bounds, wcs=wcs.local(pos))
            obj.drawImage(stamp, offset=(x[k] - ix, y[k] - iy))
            image[overlap] += stamp[overlap]
    return image.array


def _amp_array(nx: int, ny: int, a: float, b: float) -> np.ndarray:
    """A per-pixel array of amplifier A's value for x <= nx/2 and B's beyond (shape (ny, nx))."""
    out = np.empty((ny, nx))
    out[:, : nx // 2] = a
    out[:, nx // 2:] = b
    return out


def _interpolate_rows(sci: np.ndarray, bad: np.ndarray) -> None:
    """Replace ``bad`` pixels by a linear interpolation along their row (nwgint's row_zipper idea)."""
    cols = np.arange(sci.shape[1])
    for j in np.nonzero(bad.any(axis=1))[0]:
        good = ~bad[j]
        if good.sum() >= 2:
            sci[j, bad[j]] = np.interp(cols[bad[j]], cols[good], sci[j, good])


def saturate_stars(model: np.ndarray, msk: np.ndarray, level: float) -> np.ndarray:
    """Clip saturated pixels at ``level``, bleed their excess up and down the column (TRAIL) and
    mark a STAR disc around each saturated star; returns the clipped model."""
    sat = model > level
    if not sat.any():
        return model
    out = model.copy()
    ny = model.shape[0]
    for i in np.nonzero(sat.any(axis=0))[0]:
        rows = np.nonzero(sat[:, i])[0]
        excess = float(np.sum(model[rows, i] - level))
        extend = int(math.ceil(excess / level / 2.0))
        lo, hi = max(rows.min() - extend, 0), min(rows.max() + extend + 1, ny)
        trail = np.zeros(ny, dtype=bool)
        trail[lo:hi] = True
        trail[rows] = False
        out[trail, i] = np.maximum(out[trail, i], level)
        msk[trail, i] |= TRAIL
    out[sat] = level
    msk[sat] |= SATURATE
    # The STAR disc: a radius growing with the saturated area, around each saturated blob.
    from scipy import ndimage

    labels, n = ndimage.label(sat)
    yy, xx = np.indices(model.shape)
    for k in range(1, n + 1):
        ys, xs = np.nonzero(labels == k)
        r = 8.0 + 3.0 * math.sqrt(len(ys))
        yc, xc = ys.mean(), xs.mean()
        box = (slice(max(int(yc - r), 0), int(yc + r) + 1), slice(max(int(xc - r), 0), int(xc + r) + 1))
        disc = (yy[box] - yc) ** 2 + (xx[box] - xc) ** 2 <= r * r
        msk[box][disc] |= STAR
    return out


def add_defects(sci: np.ndarray, msk: np.ndarray, rng: np.random.Generator, sigma: np.ndarray, edge: int) -> None:
    """Bad columns, cosmic rays and the edge, in place (SCI interpolated across the first two)."""
    ny, nx = sci.shape
    bad = np.zeros(sci.shape, dtype=bool)
    if rng.uniform() < 0.6:  # a bad column over part of the CCD
        col = int(rng.integers(edge + 2, nx - edge - 2))
        y0 = int(rng.integers(0, ny // 2))
        y1 = int(rng.integers(y0 + ny // 8, ny + 1))
        sci[y0:y1, col] += rng.normal(20.0, 5.0) * sigma[y0:y1, col]
        msk[y0:y1, col] |= BPM
        bad[y0:y1, col] = True
    n_cr = max(2, int(round(2e-5 * nx * ny)))
    for _ in range(n_cr):  # short tracks of a few pixels, tens to hundreds of sigma
        x, y = rng.uniform(0, nx), rng.uniform(0, ny)
        angle, length = rng.uniform(0, math.pi), rng.uniform(1, 7)
        amp = rng.uniform(30, 300)
        for t in np.linspace(0, length, int(length * 2) + 1):
            i, j = int(x + t * math.cos(angle)), int(y + t * math.sin(angle))
            if 0 <= i < nx and 0 <= j < ny:
                sci[j, i] += amp * sigma[j, i]
                msk[j, i] |= CRAY
                bad[j, i] = True
    _interpolate_rows(sci, bad)
    msk[bad] |= INTERP
    if edge > 0:
        msk[:edge, :] |= EDGE
        msk[-edge:, :] |= EDGE
        msk[:, :edge] |= EDGE
        msk[:, -edge:] |= EDGE


def nwgint_weights(inverse_variance: np.ndarray, msk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(WGT, WGT_ME) as coadd_nwgint makes them (see the module docstring)."""
    wgt = inverse_variance.astype(np.float32)
    wgt[(msk & NULL_MASK) != 0] = 0.0
    wgt_me = inverse_variance.astype(np.float32)
    wgt_me[(msk & TRAIL) != 0] = 0.0
    stars = (msk & STAR) != 0
    wgt_me[stars] = inverse_variance[stars]
    wgt_me[(msk & (NULL_MASK & ~TRAIL)) != 0] = 0.0
    return wgt, wgt_me


def render_ccd(wcs: galsim.BaseWCS, shape: tuple[int, int], psf: ExposurePSF, cond: CCDConditions, band: str,
               stars: np.ndarray, galaxies: np.ndarray, rng: np.random.Generator,
               pixel_scale: float = 0.263) -> CCDPlanes:
    """The nwgint planes of one CCD (module docstring)."""
    nx, ny = shape
    model = render_objects(wcs, shape, psf, cond, band, stars, galaxies, pixel_scale)
    msk = np.zeros((ny, nx), dtype=np.int32)
    gain = _amp_array(nx, ny, cond.gain_a, cond.gain_b)
    sigma = _amp_array(nx, ny, cond.sigma_a, cond.sigma_b)
    clipped = saturate_stars(model, msk, cond.saturate)
    electrons = np.clip(clipped, 0, None) * gain
    sci = rng.poisson(electrons) / gain + (clipped - np.clip(clipped, 0, None))
    sci += rng.normal(0.0, 1.0, sci.shape) * sigma + cond.pedestal
    add_defects(sci, msk, rng, sigma, cond.edge)
    wgt, wgt_me = nwgint_weights(1.0 / sigma**2, msk)
    return CCDPlanes(sci=sci.astype(np.float32), wgt=wgt, wgt_me=wgt_me, msk=msk)
