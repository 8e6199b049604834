"""Where the CCDs of a synthetic DECam-like exposure land on the sky: one WCS header per CCD.

A :class:`FocalPlane` is a block of ``ncols x nrows`` CCDs with gaps between them, at some
offset from the optical axis. Each CCD's header is the exposure's projection about the axis
(``CRVAL`` = the pointing, ``CRPIX`` = where the axis falls in that CCD's pixels, as DECam's
raw headers are written), either plain TAN or TPV: the polynomial distortion SCAMP writes
into DES's single-epoch headers (``PV1_*``/``PV2_*``), which moves positions by arcseconds
across the focal plane and which every reader of the images must apply.

TPV (the convention of SCAMP and of wcslib's TPV): intermediate world coordinates
``(xi, eta) = CD (p - CRPIX)`` in degrees become
``xi' = sum PV1_k xi^i eta^j`` and ``eta' = sum PV2_k eta^i xi^j`` (k indexing the terms
1, xi, eta, r, xi^2, xi eta, eta^2, xi^3, xi^2 eta, xi eta^2, eta^3, r^3 for PV1; the same
with xi and eta swapped for PV2), then the gnomonic projection about ``CRVAL``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import galsim
from astropy.io import fits

#: DECam CCD size (x, y) in pixels.
DECAM_CCD_SHAPE = (2048, 4096)
#: Gaps between neighbouring DECam CCDs (x, y) in pixels: about 53" and 40".
DECAM_GAP = (201, 153)
#: DECam's pixel scale, arcsec per pixel.
PIXEL_SCALE = 0.263

#: A TPV distortion for tests (cubic radial plus small quadratic terms, degrees): it moves a
#: position by about 1.3" at 0.5 degrees from the axis and 10" at 1 degree. Chosen to be large
#: enough that ignoring it misplaces objects by pixels, not fit to DECam's own solutions.
DECAM_LIKE_TPV: Mapping[str, float] = {
    "PV1_4": 2.0e-4, "PV1_5": -1.5e-4, "PV1_7": 2.5e-3, "PV1_9": 2.5e-3,
    "PV2_4": -1.0e-4, "PV2_5": 2.0e-4, "PV2_7": 2.5e-3, "PV2_9": 2.5e-3,
}


@dataclass(frozen=True)
class FocalPlane:
    """A block of CCDs: size and gaps (pixels), layout (columns, rows), where it is on the focal plane.

    ``axis_offset`` is the block centre's position relative to the optical axis, in pixels
    (x, y): with a TPV distortion, the further from the axis the stronger it is.
    """

    ccd_shape: tuple[int, int] = DECAM_CCD_SHAPE
    gap: tuple[int, int] = DECAM_GAP
    layout: tuple[int, int] = (5, 3)
    pixel_scale: float = PIXEL_SCALE
    axis_offset: tuple[float, float] = (0.0, 0.0)
    tpv: Mapping[str, float] | None = field(default=None)

    @property
    def block_size(self) -> tuple[float, float]:
        """Width and height of the block in pixels, gaps included."""
        (nx, ny), (gx, gy), (nc, nr) = self.ccd_shape, self.gap, self.layout
        return nc * nx + (nc - 1) * gx, nr * ny + (nr - 1) * gy

    def ccd_origins(self) -> list[tuple[int, float, float]]:
        """``(ccdnum, X0, Y0)`` per CCD: focal-plane pixel position of its pixel (1, 1), the axis at (0, 0).

        CCDs are numbered from 1, row by row from the top (north) as DECam numbers its
        chips from the top of the focal plane.
        """
        (nx, ny), (gx, gy), (nc, nr) = self.ccd_shape, self.gap, self.layout
        width, height = self.block_size
        x_left = self.axis_offset[0] - width / 2.0
        y_bottom = self.axis_offset[1] - height / 2.0
        out = []
        number = 1
        for row in reversed(range(nr)):
            for col in range(nc):
                out.append((number, x_left + col * (nx + gx), y_bottom + row * (ny + gy)))
                number += 1
        return out

    def header(self, axis_ra: float, axis_dec: float, x0: float, y0: float, naxis1: int, naxis2: int) -> fits.Header:
        """The WCS header of an image whose pixel (1, 1) is at focal-plane pixel (x0, y0)."""
        h = fits.Header()
        h["NAXIS"] = 2
        h["NAXIS1"] = naxis1
        h["NAXIS2"] = naxis2
        projection = "TPV" if self.tpv else "TAN"
        h["CTYPE1"] = f"RA---{projection}"
        h["CTYPE2"] = f"DEC--{projection}"
        h["CUNIT1"], h["CUNIT2"] = "deg", "deg"
        h["CRVAL1"] = (float(axis_ra), "optical axis RA, deg")
        h["CRVAL2"] = (float(axis_dec), "optical axis Dec, deg")
        h["CRPIX1"] = (1.0 - x0, "the optical axis in this image's pixels")
        h["CRPIX2"] = (1.0 - y0, "the optical axis in this image's pixels")
        h["CD1_1"], h["CD1_2"] = -self.pixel_scale / 3600.0, 0.0
        h["CD2_1"], h["CD2_2"] = 0.0, self.pixel_scale / 3600.0
        h["EQUINOX"], h["RADESYS"] = 2000.0, "ICRS"
        if self.tpv:
            terms = {"PV1_0": 0.0, "PV1_1": 1.0, "PV1_2": 0.0, "PV2_0": 0.0, "PV2_1": 1.0, "PV2_2": 0.0}
            terms.update(self.tpv)
            for key in sorted(terms, key=lambda k: (k[:3], int(k[4:]))):
                h[key] = float(terms[key])
        return h

    def ccd_header(self, axis_ra: float, axis_dec: float, ccdnum: int) -> fits.Header:
        """The WCS header of CCD ``ccdnum`` in an exposure pointed at (axis_ra, axis_dec) degrees."""
        for number, x0, y0 in self.ccd_origins():
            if number == ccdnum:
                return self.header(axis_ra, axis_dec, x0, y0, *self.ccd_shape)
        raise ValueError(f"no CCD {ccdnum} in a {self.layout[0]}x{self.layout[1]} focal plane")

    def pointing_for(self, ra: float, dec: float, dx: float = 0.0, dy: float = 0.0) -> tuple[float, float]:
        """The optical axis (RA, Dec degrees) that puts the block centre, shifted by (dx, dy)
        pixels, on (ra, dec) degrees (a few fixed-point steps through the exposure's own WCS)."""
        target = galsim.CelestialCoord(ra * galsim.degrees, dec * galsim.degrees)
        px, py = self.axis_offset[0] + dx, self.axis_offset[1] + dy
        axis = target
        for _ in range(6):
            wcs = galsim.GSFitsWCS(header=self.header(axis.ra.deg, axis.dec.deg, px, py, 1, 1))
            got = wcs.toWorld(galsim.PositionD(1.0, 1.0))
            du, dv = got.project(target, projection="gnomonic")  # where the target sits, seen from got
            axis = axis.deproject(du, dv, projection="gnomonic")
            if math.hypot(du / galsim.arcsec, dv / galsim.arcsec) < 1e-6:
                break
        return axis.ra.deg, axis.dec.deg


def covering_layout(tile_pixels: tuple[int, int], ccd_shape: tuple[int, int], gap: tuple[int, int],
                    dither_pixels: tuple[float, float]) -> tuple[int, int]:
    """The fewest (columns, rows) of CCDs whose block covers a tile of ``tile_pixels`` (x, y)
    from every pointing within ``dither_pixels`` (x, y) of the tile centre."""
    cols = math.ceil((tile_pixels[0] + 2 * dither_pixels[0] + gap[0]) / (ccd_shape[0] + gap[0]))
    rows = math.ceil((tile_pixels[1] + 2 * dither_pixels[1] + gap[1]) / (ccd_shape[1] + gap[1]))
    return max(cols, 1), max(rows, 1)
