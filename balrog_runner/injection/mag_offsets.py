"""Per-position magnitude offset maps (the original Balrog's SLR zero-point correction).

Valarauko's ``balrog['slrdir']`` held maps of the stellar-locus-regression zero-point shift
per band; an injected object's magnitude in a band was shifted by the map's value at its
position, so that the injected objects carry the same calibration residuals as the real
ones. Here ``balrog['mag-offset-maps'] = {band: path}`` gives one map per band (bands
without a map get no offset) and :func:`apply_offsets` adds the value at each object's
``ra``/``dec`` to its ``mag_<band>`` (so its flux scales by ``10**(-0.4 * offset)``) and
records it in the truth as ``magoffset_<band>`` (mag): the catalog's own magnitude is
``mag_<band> - magoffset_<band>``. (The name avoids the ``mag_`` prefix, which truth tables
reserve for the bands' magnitudes.)

A map file is either

- a HEALPix map in FITS (``PIXTYPE = 'HEALPIX'``), its ordering (``ORDERING`` = ``RING`` /
  ``NESTED``) taken from the header: full-sky maps are read with :func:`healpy.read_map`;
  partial-sky maps with explicit indexing (``INDXSCHM = 'EXPLICIT'``, a pixel column and a
  value column, as ``healpy.write_map(..., partial=True)`` writes them) are kept sparse, so
  a high-resolution map of a few tiles costs only its own pixels; or
- a FITS image with a celestial WCS (e.g. a CAR or TAN map in RA/Dec), looked up at the
  nearest pixel.

A position the map does not cover (``UNSEEN``, NaN, or outside the image) is an error naming
the map, the band and the first such position: an offset silently taken as zero would bias
exactly the objects the correction is for.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import InputFileError, one_line

log = logging.getLogger(__name__)

#: healpy's marker of a pixel without data.
UNSEEN = -1.6375e30

#: Truth column holding the offset added to ``mag_<band>`` (mag).
OFFSET_COLUMN = "magoffset_{band}"


@dataclass(frozen=True)
class OffsetMap:
    """One band's offset map, loaded: a HEALPix array (``nside``, nested) or an image + WCS."""

    path: Path
    band: str
    values: np.ndarray
    nside: int | None = None
    wcs: object | None = None
    #: Partial HEALPix maps: the sorted NEST pixel indices of ``values`` (kept sparse: a
    #: full nside-8192 array would be 6 GB).
    pixels: np.ndarray | None = None

    def lookup(self, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        """Offsets (mag) at ``ra``, ``dec`` (degrees); NaN where the map has no value."""
        ra = np.asarray(ra, dtype=np.float64)
        dec = np.asarray(dec, dtype=np.float64)
        if self.nside is not None:
            import healpy

            pix = healpy.ang2pix(self.nside, ra, dec, nest=True, lonlat=True)
            if self.pixels is None:
                out = np.asarray(self.values[pix], dtype=np.float64)
            elif len(self.pixels) == 0:
                out = np.full(len(ra), np.nan)
            else:
                k = np.clip(np.searchsorted(self.pixels, pix), 0, len(self.pixels) - 1)
                out = np.where(self.pixels[k] == pix, self.values[k], np.nan)
        else:
            iy, ix = self.wcs.world_to_array_index_values(ra, dec)
            iy, ix = np.atleast_1d(iy), np.atleast_1d(ix)
            ny, nx = self.values.shape
            inside = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
            out = np.full(len(ra), np.nan)
            out[inside] = self.values[iy[inside], ix[inside]]
        out[(out == UNSEEN) | ~np.isfinite(out)] = np.nan
        return out


def load_map(path: str | Path, band: str) -> OffsetMap:
    """Read one offset map (HEALPix or WCS image, see the module docstring)."""
    from astropy.io import fits

    path = Path(path)
    try:
        with fits.open(path, memmap=False) as hdul:
            healpix = any(str(h.header.get("PIXTYPE", "")).upper() == "HEALPIX" for h in hdul)
            image = next((h for h in hdul if h.is_image and h.data is not None and h.data.ndim == 2), None)
            if not healpix and image is not None:
                from astropy.wcs import WCS

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # FITSFixedWarning chatter about date keywords
                    wcs = WCS(image.header).celestial
                if not wcs.has_celestial or wcs.naxis != 2:
                    raise InputFileError(f"magnitude offset map {path} (band {band}): the image has no celestial WCS")
                return OffsetMap(path, band, np.asarray(image.data, dtype=np.float64), wcs=wcs)
    except OSError as exc:
        raise InputFileError(f"cannot read magnitude offset map {path} (band {band}): {exc}") from exc
    if not healpix:
        raise InputFileError(f"magnitude offset map {path} (band {band}) is neither a HEALPix map "
                             "(PIXTYPE = 'HEALPIX') nor a 2-d image with a celestial WCS")
    import healpy

    partial = _read_partial(path, band)
    if partial is not None:
        return partial

    try:
        values = healpy.read_map(str(path), field=0, nest=True, dtype=np.float64)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise InputFileError(f"cannot read HEALPix magnitude offset map {path} (band {band}): {exc}") from exc
    nside = healpy.npix2nside(len(values))
    log.debug("offset map %s (band %s): HEALPix nside %d", path, band, nside)
    return OffsetMap(path, band, np.asarray(values), nside=nside)


def _read_partial(path: Path, band: str) -> OffsetMap | None:
    """An explicitly indexed (partial-sky) HEALPix map, kept sparse; None for a full-sky one."""
    import healpy
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdul:
        hdu = next((h for h in hdul if str(h.header.get("PIXTYPE", "")).upper() == "HEALPIX"), None)
        if hdu is None or str(hdu.header.get("INDXSCHM", "")).upper() != "EXPLICIT":
            return None
        h = hdu.header
        names = list(hdu.columns.names) if hasattr(hdu, "columns") else []
        ordering = str(h.get("ORDERING", "")).upper()
        if len(names) < 2 or "NSIDE" not in h or ordering not in ("RING", "NESTED"):
            raise InputFileError(f"partial HEALPix map {path} (band {band}): needs NSIDE, ORDERING = RING or "
                                 f"NESTED and a pixel column plus a value column (has {', '.join(names) or 'none'})")
        nside = int(h["NSIDE"])
        pixels = np.asarray(hdu.data[names[0]], dtype=np.int64).ravel()
        values = np.asarray(hdu.data[names[1]], dtype=np.float64).ravel()
    if len(pixels) != len(values):
        raise InputFileError(f"partial HEALPix map {path} (band {band}): vector value column {names[1]!r}")
    if ordering == "RING":
        pixels = healpy.ring2nest(nside, pixels)
    order = np.argsort(pixels)
    log.debug("offset map %s (band %s): partial HEALPix nside %d, %d pixels", path, band, nside, len(pixels))
    return OffsetMap(path, band, values[order], nside=nside, pixels=pixels[order])


def load_maps(paths: Mapping[str, str | Path] | None) -> dict[str, OffsetMap]:
    """Every band's map (empty for None)."""
    return {b: load_map(p, b) for b, p in (paths or {}).items()}


def apply_offsets(columns: dict[str, np.ndarray], maps: Mapping[str, OffsetMap]) -> None:
    """Add each band's offset at the objects' positions to ``mag_<band>``; record it (in place).

    Bands of the maps that the objects do not have are ignored (a map for Y in a g r i run).
    """
    for band, m in maps.items():
        key = f"mag_{band}"
        if key not in columns:
            continue
        off = m.lookup(columns["ra"], columns["dec"])
        bad = np.flatnonzero(np.isnan(off))
        if len(bad):
            k = int(bad[0])
            raise InputFileError(
                f"magnitude offset map {m.path} (band {band}) has no value at {len(bad)} of {len(off)} positions "
                f"(first: ra={columns['ra'][k]:.5f}, dec={columns['dec'][k]:.5f} degrees): the map must cover the tile")
        columns[key] = np.asarray(columns[key], dtype=np.float64) + off
        columns[OFFSET_COLUMN.format(band=band)] = off


# --------------------------------------------------------------------------- the original's SLR table

#: The SLR zero-point shift table Valarauko's Y1A1 configs pointed at with ``balrog['slrdir']``
#: (suchyta1/suchyta_utils slr.py: ``<release>_<area>_slr_wavg_zpshift2.fit`` with area
#: ``wide``). Its layout (suchyta_utils y1a1_slr_shiftmap.py): HDU 1 holds ``HPIX`` (RING
#: pixel numbers) and ``ZP_SHIFT`` (one shift per band, mag; 90 or more = not fitted); the
#: header's ``NSIDE``, and ``MAG<i>`` naming band ``i`` as the text after its last ``_``.
SLR_TABLE_NAME = "y1a1_wide_slr_wavg_zpshift2.fit"
_SLR_NOT_FITTED = 90.0


def split_slr_table(path: str | Path, outdir: str | Path, bands: tuple[str, ...] | list[str]) -> dict[str, Path]:
    """One partial HEALPix map per band (``<outdir>/slr_zpshift_<band>.fits``) from the
    original's multi-band SLR table, for ``balrog['mag-offset-maps']``; ``{band: path}``.

    As the original did, the pixels just outside the fitted area (neighbours of a fitted
    pixel) get the mean of their fitted neighbours, so objects at the edge of the SLR
    footprint still get a shift. The original interpolated bilinearly between pixel centres
    (healpy ``get_interp_val``); :meth:`OffsetMap.lookup` takes the value of the pixel an
    object falls in, which differs from it by a fraction of the shift's change across one
    pixel. Each map is written atomically.
    """
    import fitsio
    import healpy
    from astropy.io import fits

    path, outdir = Path(path), Path(outdir)
    try:
        data, header = fitsio.read(str(path), ext=1, header=True)
        nside = int(header["NSIDE"])
        hpix = np.asarray(data["HPIX"], dtype=np.int64)
        shifts = np.atleast_2d(np.asarray(data["ZP_SHIFT"], dtype=np.float64))
        if shifts.shape[0] != len(hpix):
            shifts = shifts.T
        names = [str(header[f"MAG{i}"]).split("_")[-1] for i in range(shifts.shape[1])]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputFileError(f"SLR table {path} is not the Y1A1 layout (HDU 1 HPIX, ZP_SHIFT; header NSIDE, "
                             f"MAG0...): {one_line(exc)}") from exc
    by_band = {n.lower() if n.upper() != "Y" else "Y": i for i, n in enumerate(names)}
    missing = [b for b in bands if b not in by_band]
    if missing:
        raise InputFileError(f"SLR table {path} has no shifts for band(s) {' '.join(missing)} "
                             f"(its MAG<i> keywords name {' '.join(names)})")
    outdir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for band in bands:
        column = shifts[:, by_band[band]]
        good = column < _SLR_NOT_FITTED
        pixels, values = hpix[good], column[good]
        rim = np.setdiff1d(np.unique(healpy.get_all_neighbours(nside, pixels)), pixels)
        rim = rim[rim >= 0]
        if len(rim):
            lookup = dict(zip(pixels.tolist(), values.tolist(), strict=True))
            around = healpy.get_all_neighbours(nside, rim)  # (8, n): -1 where a neighbour is missing
            sums = np.zeros(len(rim))
            counts = np.zeros(len(rim))
            for row in around:
                known = np.array([lookup.get(int(p), np.nan) for p in row])
                ok = np.isfinite(known)
                sums[ok] += known[ok]
                counts[ok] += 1
            pixels = np.concatenate([pixels, rim])
            values = np.concatenate([values, sums / counts])
        order = np.argsort(pixels)
        hdu = fits.BinTableHDU.from_columns([
            fits.Column(name="PIXEL", format="K", array=pixels[order]),
            fits.Column(name="SIGNAL", format="E", unit="mag", array=values[order].astype(np.float32))])
        for key, value, comment in (("PIXTYPE", "HEALPIX", "HEALPix map"), ("ORDERING", "RING", "as the SLR table"),
                                    ("INDXSCHM", "EXPLICIT", "partial sky: pixel numbers in PIXEL"),
                                    ("OBJECT", "PARTIAL", ""), ("NSIDE", nside, ""),
                                    ("BAND", band, "band of the SLR shifts"),
                                    ("SLRTABLE", path.name[:60], "split from this SLR table")):
            hdu.header[key] = (value, comment)
        target = outdir / f"slr_zpshift_{band}.fits"
        with atomic_path(target) as tmp:
            fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp, overwrite=True)
        out[band] = target
        log.info("SLR shifts of band %s: %d pixels (%d filled at the edge) -> %s", band, len(pixels), len(rim), target)
    return out
