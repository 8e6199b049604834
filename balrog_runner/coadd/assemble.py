"""What DESDM's ``coadd_assemble`` does to SWarp's outputs that measurement needs.

DESDM turns the two SWarp calls of a band into the tile's image (despyfits
``coadd_assemble.py``:131-180; DESIGN.md section 12): ``MSK = 1`` where the weight of the
WGT-weighted call is 0 (no unmasked input pixel there), int32; SCI and WGT from the
WGT_ME-weighted call; ``MAGZERO 30``. The file has the DESDM tile layout every later stage
reads (SCI 0, MSK 1, WGT 2; DEVELOPING.md "Tile images"), with ``SEXMGZPT`` 30 as well.

Not done: ``coadd_assemble``'s interpolation of SCI across masked columns (``--xblock 10
--yblock 3 --maxcols 100 --mincols 1 --ydilate 3``). Those pixels have no valid input, their
weight is 0 and SWarp's ``BLANK_BADPIXELS Y`` set them to 0; SExtractor weighs them out with
the WGT plane either way, and injected light there would be interpolated, never measured.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import fitsio
import numpy as np

from ..atomic import atomic_path
from ..errors import InputFileError
from .swarp import COADD_ZEROPOINT

log = logging.getLogger(__name__)

#: MSK value of a coadd pixel with no unmasked input (``coadd_assemble``'s 1).
MSK_NO_DATA = 1
#: WCS keywords the MSK and WGT planes carry (as DESDM's tiles do).
WCS_KEYS = ("CTYPE1", "CTYPE2", "CUNIT1", "CUNIT2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CD1_1", "CD1_2",
            "CD2_1", "CD2_2", "EQUINOX", "RADESYS", "LONPOLE", "LATPOLE")


def zeropoint_cards(band: str, tilename: str, extra: Mapping[str, object] | None = None) -> list[dict]:
    """The cards SCI gets: the coadd's zero point under both names, the band and the tile."""
    cards = [
        {"name": "MAGZERO", "value": COADD_ZEROPOINT, "comment": "Mag zero point of the coadd (coadd_assemble)"},
        {"name": "SEXMGZPT", "value": COADD_ZEROPOINT, "comment": "Mag zero point, mag"},
        {"name": "BAND", "value": band, "comment": "Filter band"},
        {"name": "TILENAME", "value": tilename, "comment": "DES tile"},
    ]
    for key, value in (extra or {}).items():
        cards.append({"name": key, "value": value})
    return cards


def _read(path: Path, what: str) -> tuple[np.ndarray, fitsio.FITSHDR]:
    try:
        with fitsio.FITS(str(path)) as f:
            return f[0].read(), f[0].read_header()
    except (OSError, ValueError) as exc:
        raise InputFileError(f"cannot read the {what} {path}: {exc}") from exc


def assemble_coadd(sci: str | os.PathLike, weight: str | os.PathLike, mask_weight: str | os.PathLike,
                   out: str | os.PathLike, *, band: str, tilename: str,
                   extra: Mapping[str, object] | None = None, checksum: bool = False) -> Path:
    """Write the band's coadd MEF (SCI, MSK, WGT) at ``out`` from SWarp's three outputs, atomically.

    ``sci`` and ``weight`` are the WGT_ME-weighted call's outputs, ``mask_weight`` the
    WGT-weighted call's weight. ``extra`` adds cards to SCI. ``checksum`` writes FITS
    CHECKSUM/DATASUM (for a file that is fetched and verified later, as a survey's coadd).
    """
    image, header = _read(Path(sci), "re-coadd science image")
    wgt, _ = _read(Path(weight), "re-coadd weight")
    mask_w, _ = _read(Path(mask_weight), "re-coadd mask weight")
    if not (image.shape == wgt.shape == mask_w.shape):
        raise InputFileError(f"re-coadd outputs of band {band} differ in shape: {image.shape}, {wgt.shape}, "
                             f"{mask_w.shape} ({sci}, {weight}, {mask_weight})")
    msk = np.where(mask_w == 0, MSK_NO_DATA, 0).astype(np.int32)
    sci_cards = [r for r in header.records() if r["name"] not in ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2",
                                                                      "EXTEND", "EXTNAME", "BZERO", "BSCALE")]
    sci_cards += zeropoint_cards(band, tilename, extra)
    wcs_cards = [{"name": k, "value": header[k]} for k in WCS_KEYS if k in header]
    out = Path(out)
    with atomic_path(out) as tmp, fitsio.FITS(str(tmp), "rw", clobber=True) as f:
        f.write(np.ascontiguousarray(image, dtype=np.float32), header=sci_cards, extname="SCI")
        f.write(msk, header=wcs_cards, extname="MSK")
        f.write(np.ascontiguousarray(wgt, dtype=np.float32), header=wcs_cards, extname="WGT")
        if checksum:
            for hdu in f:
                hdu.write_checksum()
    return out


def finish_science(sci: str | os.PathLike, *, band: str, tilename: str) -> Path:
    """Give SWarp's science output the coadd's zero point, band and tile, in place.

    A realization's re-coadd is this file alone: its weight and mask are those of the nosim
    re-coadd (the weights of the SE images never change), so it is never rewritten.
    """
    try:
        with fitsio.FITS(str(sci), "rw") as f:
            for card in zeropoint_cards(band, tilename):
                f[0].write_key(card["name"], card["value"], comment=card.get("comment", ""))
    except (OSError, ValueError) as exc:
        raise InputFileError(f"cannot update the re-coadd science image {sci}: {exc}") from exc
    return Path(sci)
