"""A tile's single-epoch (SE) file set on the node: the contract between fetching and injecting.

Single-epoch campaigns inject into the CCD images that DESDM coadded into the tile and then
re-coadd them (DESIGN.md section 12). The fetch stage puts each band's CCD images on local
disk and describes them with a :class:`SESet`; per-chip injection and the re-coadd read
nothing else. The set is written next to the files as ``se_set.json`` (atomically), so a
resumed run finds what an earlier run fetched without asking the archive again.

Each image is DESDM's ``coadd_nwgint`` product, funpacked: HDU 0 ``SCI``, 1 ``WGT``, 2
``WGT_ME``, 3 ``MSK`` (pixcorrect ``coadd_nwgint.py``; :data:`NWGINT_HDUS`), with the SCAMP
WCS (TPV) in its header, and one PSFEx model per CCD. ``mag_zero`` is the image's zero point
(Y3: FGCM v2.0 from ``ZEROPOINT``; Y6: ``IMAGE.MAG_ZERO`` of the nwgint row): the re-coadd
scales each image by ``10**(0.4*(30 - mag_zero))`` to the coadd's zero point 30.

Two optional parts (absent in files written before them; readers take them as missing):
``grid``, the tile's coadd pixel grid the images are re-coadded onto (SWarp's ``CENTER``,
``PIXEL_SCALE`` and ``IMAGE_SIZE``; without it the DES tile's own 10000^2 grid), and
``coadd_psfs``, the PSFEx models of the tile's coadd per band and ``det``: SExtractor measures
the re-coadd with them, as eastlake measures its re-coadd with DESDM's coadd models (PSFEx is
not re-run on a re-coadd; DESIGN.md section 12).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..errors import InputFileError

#: HDU numbers of a funpacked ``coadd_nwgint`` file (SWarp and SExtractor address them as ``file[N]``).
NWGINT_HDUS = {"SCI": 0, "WGT": 1, "WGT_ME": 2, "MSK": 3}
FORMAT = "balrog-se-set"
VERSION = 1
FILENAME = "se_set.json"
#: The folder of a tile's SE files under the campaign's outdir (DEVELOPING.md, "Campaign output").
SE_DIRNAME = "se"


def tile_se_dir(outdir: str | os.PathLike, tile: str) -> Path:
    """``<outdir>/<TILE>/se``: the fetched CCD images and PSF models, one folder per band."""
    return Path(outdir) / tile / SE_DIRNAME


def se_set_path(outdir: str | os.PathLike, tile: str) -> Path:
    """``<outdir>/<TILE>/se/se_set.json``: present only once the tile's set is complete."""
    return tile_se_dir(outdir, tile) / FILENAME


@dataclass(frozen=True)
class CoaddGrid:
    """The pixel grid of a tile's coadd: TAN at (ra, dec) degrees, ``pixel_scale`` arcsec per pixel.

    CRPIX is the image centre ``(n + 1) / 2``, where SWarp puts its ``CENTER`` (checked with
    SWarp 2.41) and where DESDM's tiles have it (5000.5 for 10000^2).
    """

    ra: float
    dec: float
    naxis1: int
    naxis2: int
    pixel_scale: float = 0.263

    def wcs_header(self) -> Any:
        """The grid's TAN header (astropy ``Header``)."""
        from astropy.io import fits

        h = fits.Header()
        h["NAXIS"] = 2
        h["NAXIS1"] = self.naxis1
        h["NAXIS2"] = self.naxis2
        h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
        h["CUNIT1"], h["CUNIT2"] = "deg", "deg"
        h["CRVAL1"], h["CRVAL2"] = float(self.ra), float(self.dec)
        h["CRPIX1"], h["CRPIX2"] = (self.naxis1 + 1) / 2.0, (self.naxis2 + 1) / 2.0
        h["CD1_1"], h["CD1_2"] = -self.pixel_scale / 3600.0, 0.0
        h["CD2_1"], h["CD2_2"] = 0.0, self.pixel_scale / 3600.0
        h["EQUINOX"], h["RADESYS"] = 2000.0, "ICRS"
        return h

    def as_dict(self) -> dict[str, Any]:
        return {"ra": self.ra, "dec": self.dec, "naxis1": self.naxis1, "naxis2": self.naxis2,
                "pixel_scale": self.pixel_scale}


@dataclass(frozen=True)
class SEImage:
    """One CCD image of one exposure, on local disk (absolute paths)."""

    band: str
    expnum: int
    ccdnum: int
    #: The funpacked nwgint MEF (SCI, WGT, WGT_ME, MSK).
    image: Path
    #: The CCD's PSFEx model (``.psf``).
    psf: Path
    #: Zero point of the image in magnitudes (counts of a 0-mag source: 10**(0.4*mag_zero)).
    mag_zero: float
    #: The CCD's Piff model (DES Y6, ``balrog['psf-model'] = 'piff'``), None where the set has none.
    piff: Path | None = None

    @property
    def key(self) -> str:
        """``D<expnum>_<band>_c<ccdnum>`` as DESDM names the CCD images; unique within a tile."""
        return f"D{self.expnum:08d}_{self.band}_c{self.ccdnum:02d}"


@dataclass
class SESet:
    """A tile's SE images per band, and the CCDs the config allowed to be dropped (with why)."""

    tile: str
    images: dict[str, list[SEImage]]
    #: ``"<key>: <reason>"`` for each CCD left out (missing in the archive, no PSF model...).
    dropped: list[str] = field(default_factory=list)
    #: The coadd grid to re-coadd onto; None = the DES tile's own (``sky.geometry.des_tile``).
    grid: CoaddGrid | None = None
    #: PSFEx models of the tile's coadd, per band and ``det`` (measuring the re-coadd).
    coadd_psfs: dict[str, Path] = field(default_factory=dict)

    def band(self, band: str) -> list[SEImage]:
        """The band's images; an InputFileError when the tile has none in that band."""
        found = self.images.get(band)
        if not found:
            raise InputFileError(f"tile {self.tile} has no single-epoch images in band {band}")
        return found


def _check_image(tile: str, entry: SEImage) -> None:
    if not (isinstance(entry.mag_zero, float) and math.isfinite(entry.mag_zero) and entry.mag_zero > 0):
        raise InputFileError(f"tile {tile}: {entry.key} ({entry.image}) has zero point {entry.mag_zero!r}; "
                             "a finite magnitude > 0 is needed to scale it to the coadd's 30")


def write_se_set(path: str | os.PathLike, se_set: SESet) -> Path:
    """Write ``se_set`` as JSON at ``path`` (atomically); paths are stored as given."""
    for entries in se_set.images.values():
        for entry in entries:
            _check_image(se_set.tile, entry)
    doc: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "tile": se_set.tile, "dropped": list(se_set.dropped),
        "images": {band: [{"expnum": e.expnum, "ccdnum": e.ccdnum, "image": str(e.image), "psf": str(e.psf),
                           "mag_zero": e.mag_zero, **({"piff": str(e.piff)} if e.piff is not None else {})}
                          for e in entries]
                   for band, entries in se_set.images.items()},
        "coadd_psfs": {band: str(p) for band, p in se_set.coadd_psfs.items()},
    }
    if se_set.grid is not None:
        doc["grid"] = se_set.grid.as_dict()
    path = Path(path)
    atomic_write_text(path, json.dumps(doc, indent=1) + "\n")
    return path


def read_se_set(path: str | os.PathLike) -> SESet:
    """Read an ``se_set.json``; an InputFileError naming the file for anything malformed."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputFileError(f"single-epoch file set {path} does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputFileError(f"single-epoch file set {path} is not readable JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise InputFileError(f"{path} is not a {FORMAT} file of version {VERSION}")
    try:
        tile = str(doc["tile"])
        images = {
            str(band): [SEImage(band=str(band), expnum=int(e["expnum"]), ccdnum=int(e["ccdnum"]),
                                image=Path(e["image"]), psf=Path(e["psf"]), mag_zero=float(e["mag_zero"]),
                                piff=Path(e["piff"]) if e.get("piff") else None)
                        for e in entries]
            for band, entries in doc["images"].items()
        }
        dropped = [str(d) for d in doc.get("dropped", [])]
        g = doc.get("grid")
        grid = None if g is None else CoaddGrid(ra=float(g["ra"]), dec=float(g["dec"]), naxis1=int(g["naxis1"]),
                                                naxis2=int(g["naxis2"]), pixel_scale=float(g["pixel_scale"]))
        coadd_psfs = {str(b): Path(p) for b, p in doc.get("coadd_psfs", {}).items()}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputFileError(f"single-epoch file set {path} is malformed ({type(exc).__name__}: {exc})") from None
    if grid is not None and not (grid.naxis1 > 0 and grid.naxis2 > 0 and grid.pixel_scale > 0):
        raise InputFileError(f"single-epoch file set {path}: grid {grid.as_dict()} needs positive sizes and scale")
    se_set = SESet(tile=tile, images=images, dropped=dropped, grid=grid, coadd_psfs=coadd_psfs)
    for entries in images.values():
        for entry in entries:
            _check_image(tile, entry)
    return se_set
