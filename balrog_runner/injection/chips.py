"""Per-chip injection: one realization's objects drawn into every single-epoch CCD image they touch.

Single-epoch campaigns (DESIGN.md section 12) draw each object of a realization into the CCD
images the tile was coadded from, before the re-coadd (:mod:`balrog_runner.coadd`). The
object list is one, in world coordinates; on each chip an object gets:

- **that chip's WCS at the object**: positions from the header through GalSim's
  :class:`galsim.GSFitsWCS`, which applies TPV (``PV1_*``/``PV2_*``), and the local Jacobian
  there, so the distortion also shears and scales the stamp as it did real galaxies;
- **its zero point**: counts ``mu * 10**(0.4 (zp_chip - mag))``, i.e. the coadd's counts at
  zero point 30 scaled by ``10**(0.4 (zp_chip - 30))`` (Balrog-GalSim chip.py:187-197), which
  the re-coadd's ``FSCALE`` undoes;
- **its PSF model** at the object's chip position, drawn with ``no_pixel``: the CCD's PSFEx
  model, or its Piff model (``balrog['psf-model'] = 'piff'``, :mod:`.piff_psf`), given the
  object's clipped truth colour when the model interpolates in one (truth ``psf_gi_color``
  / ``psf_iz_color``);
- **the same profile everywhere**: the Sersic parameters, rotation and shear of the object
  are built once (:func:`.draw.unit_profiles`) and reused in every chip and band
  (Balrog-GalSim tile.py:663-709);
- optional **Poisson noise** from the chip's gain (``GAINA`` for x <= nx/2, ``GAINB`` beyond,
  DECam's two amplifiers; else ``GAIN``).

**Which chips.** An object is drawn on every chip its stamp touches, wherever its centre is
(DELVE's buffer, simulating.py:97-99); Balrog-GalSim drew it only where its centre was and
lost the light across chip edges (chip.py:223-243). The drawing itself is
:func:`.draw.draw_objects_into`, the coadd mode's, on the chip's image.

**What is written.** A chip with something drawn on it gets a SCI-only copy in the
realization's scratch folder (``<key>.fits``, header kept); WGT, WGT_ME and MSK are never
read or rewritten, and an untouched chip goes into the re-coadd as it is.

**Truth, per band.** ``x``/``y`` are the object's position on the coadd grid (1-based), so
SExtractor's detections on the re-coadd associate with it; ``flux_<b>`` is its flux at zero
point 30 (what the coadd holds); ``nexp_<b>`` the number of exposures it was drawn in (any of
its light on a chip); ``flux_noised_<b>`` is ``flux_<b>`` plus the inverse-variance weighted
mean, over those exposures, of the Poisson noise each added (weights ``1/SKYVAR`` at zero
point 30, equal without ``SKYVARA``/``SKYVARB``), which is what the coadd's sum over the stamp
carries when the weights are even across it. ``not_drawn`` bits: :data:`.draw.OFF_IMAGE` on no
chip at all; :data:`.draw.CENTRE_OFF_IMAGE` its centre on no chip of any exposure (only wings
drawn); :data:`.draw.CLIPPED` no exposure holds its whole stamp (chip gaps or the edge of the
survey cut it in every one, or the stamp-size limit); :data:`.draw.DRAW_FAILED` an FFT or PSF
failure on any chip (logged, never skipped silently, unlike Balrog-GalSim injector.py:536-541);
:data:`.draw.MASKED` not drawn because its centre is masked.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import galsim
import numpy as np
from astropy.io import fits
from astropy.table import Table

from ..atomic import atomic_path
from ..errors import ConfigError, InputFileError
from ..inputs.single_epoch import CoaddGrid, SEImage
from . import draw, piff_psf
from .population import ObjectTable

log = logging.getLogger(__name__)

#: The zero point the truth fluxes refer to (the coadd's), mag.
COADD_ZEROPOINT = 30.0


@dataclass
class Chip:
    """What drawing needs from one CCD image: its WCS, size, gain(s) and noise, read and checked."""

    image: SEImage
    wcs: galsim.GSFitsWCS
    nx: int
    ny: int
    gain_a: float | None
    gain_b: float | None
    #: Sky variance per pixel at the coadd's zero point (mean of the amplifiers), or None.
    variance30: float | None
    header: fits.Header

    def gain_map(self) -> float | galsim.Image | None:
        """One gain, or an image of the two amplifiers' gains (x <= nx/2: A)."""
        if self.gain_a is None or self.gain_b is None or self.gain_a == self.gain_b:
            return self.gain_a
        g = galsim.ImageF(self.nx, self.ny, xmin=1, ymin=1)
        g.array[:, : self.nx // 2] = self.gain_a
        g.array[:, self.nx // 2:] = self.gain_b
        return g


def _positive(header: fits.Header, key: str, path: Path) -> float | None:
    if key not in header:
        return None
    try:
        value = float(header[key])
    except (TypeError, ValueError):
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise InputFileError(f"{path}: {key} = {header[key]!r} must be a positive number")
    return value


def read_chip(image: SEImage, require_gain: bool) -> Chip:
    """Read and check a CCD image's SCI header; a one-line InputFileError naming the file otherwise."""
    path = Path(image.image)
    try:
        header = fits.getheader(path, 0)
    except FileNotFoundError:
        raise InputFileError(f"single-epoch image {path} ({image.key}) does not exist") from None
    except (OSError, ValueError) as exc:
        raise InputFileError(f"cannot read single-epoch image {path} ({image.key}): {exc}") from exc
    ctype1, ctype2 = str(header.get("CTYPE1", "")), str(header.get("CTYPE2", ""))
    if not (ctype1.startswith("RA--") and ctype2.startswith("DEC-")):
        raise InputFileError(f"single-epoch image {path} ({image.key}) has no celestial WCS in its header "
                             f"(CTYPE1/2 = {ctype1!r}/{ctype2!r}; expected RA---TPV/DEC--TPV or RA---TAN/DEC--TAN)")
    try:
        wcs = galsim.GSFitsWCS(header=header)
    except Exception as exc:  # GalSim raises several types for an unsupported or malformed WCS
        raise InputFileError(f"single-epoch image {path} ({image.key}): cannot use its WCS "
                             f"({type(exc).__name__}: {exc})") from exc
    nx, ny = int(header.get("NAXIS1", 0)), int(header.get("NAXIS2", 0))
    if nx <= 0 or ny <= 0:
        raise InputFileError(f"single-epoch image {path} ({image.key}) has no image in HDU 0 (NAXIS1/2 = {nx}/{ny})")
    gain_a, gain_b = _positive(header, "GAINA", path), _positive(header, "GAINB", path)
    if gain_a is None or gain_b is None:
        gain_a = gain_b = _positive(header, "GAIN", path)
    if require_gain and gain_a is None:
        raise InputFileError(f"single-epoch image {path} ({image.key}) has no GAINA/GAINB or GAIN (e-/ADU), "
                             "needed for the objects' Poisson noise; add them or set poisson_noise False")
    var_a, var_b = _positive(header, "SKYVARA", path), _positive(header, "SKYVARB", path)
    fscale = 10.0 ** (0.4 * (COADD_ZEROPOINT - image.mag_zero))
    variance30 = None if var_a is None or var_b is None else 0.5 * (var_a + var_b) * fscale**2
    return Chip(image=image, wcs=wcs, nx=nx, ny=ny, gain_a=gain_a, gain_b=gain_b, variance30=variance30,
                header=header)


def subset(objects: ObjectTable, index: np.ndarray) -> ObjectTable:
    """The objects at ``index`` (every column), same realization and seeds."""
    return dataclasses.replace(objects, columns={k: np.asarray(v)[index] for k, v in objects.columns.items()})


def chip_noise_seed(noise_seed: int, image: SEImage) -> int:
    """The noise seed of one chip: the realization's, mixed with the exposure and CCD numbers."""
    ss = np.random.SeedSequence([int(noise_seed) & ((1 << 63) - 1), int(image.expnum), int(image.ccdnum)])
    return int(ss.generate_state(1, np.uint64)[0] >> 1)


@dataclass
class BandInjection:
    """One band's outcome: per object on the coadd grid (:class:`.draw.DrawResult`), the number of
    exposures each was drawn in, and the SCI-only copies written (CCD key -> path)."""

    result: draw.DrawResult
    nexp: np.ndarray
    sci_files: dict[str, Path]
    #: Colour property -> the value each object was given (Piff models that need one).
    psf_colors: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


def _touching(chip: Chip, x: np.ndarray, y: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Objects whose stamp of half-size ``half`` pixels overlaps the chip's pixels."""
    return (x + half >= 0.5) & (x - half <= chip.nx + 0.5) & (y + half >= 0.5) & (y - half <= chip.ny + 0.5)


def inject_band(
    images: Sequence[SEImage],
    objects: ObjectTable,
    band: str,
    grid: CoaddGrid,
    out_dir: str | Path,
    *,
    noise_seed: int | None,
    options: draw.DrawOptions | None = None,
    profiles: tuple[list[galsim.GSObject | None], np.ndarray] | None = None,
    skip: np.ndarray | None = None,
    psf_model: str = "psfex",
) -> BandInjection:
    """Draw ``objects`` in ``band`` into each of the band's CCD images; write the touched ones' SCI.

    Every chip is read and checked (header, WCS, gain when noise is on, PSF model) before
    anything is drawn. ``noise_seed`` None: no Poisson noise. ``profiles`` as in
    :func:`.draw.draw_objects_into` (build them once for all bands). ``skip``: objects not to
    draw (flagged :data:`.draw.MASKED`).
    """
    options = options or draw.DrawOptions()
    if band not in objects.bands:
        raise ConfigError(f"objects have no magnitudes for band {band} (have {', '.join(objects.bands)})")
    n = len(objects)
    cols = objects.columns
    chips = [read_chip(im, require_gain=noise_seed is not None) for im in images]
    psfs = load_chip_psfs(chips, psf_model, options)
    colors = {name: piff_psf.object_colors(cols, name)
              for name in sorted({p.color for p in psfs if isinstance(p, piff_psf.PiffModel) and p.color})}
    if profiles is None:
        profiles = draw.unit_profiles(objects, options)
    shapes, radii = profiles
    skip = np.zeros(n, dtype=bool) if skip is None else np.asarray(skip, dtype=bool)

    grid_wcs = galsim.GSFitsWCS(header=grid.wcs_header())
    gx, gy = grid_wcs.radecToxy(cols["ra"], cols["dec"], units="deg")
    mu = np.asarray(cols["magnification"], dtype=np.float64)
    flux30 = mu * 10.0 ** ((COADD_ZEROPOINT - np.asarray(cols[f"mag_{band}"], dtype=np.float64)) / 2.5)

    flags = np.zeros(n, dtype=np.int32)
    flags[skip] |= draw.MASKED
    centre_covered = np.zeros(n, dtype=bool)
    whole_somewhere = np.zeros(n, dtype=bool)
    exposures: list[set[int]] = [set() for _ in range(n)]
    # Per exposure and object: Poisson noise added (zero point 30) and the exposure's weight.
    noise_sum: dict[int, np.ndarray] = {}
    weight_of: dict[int, float] = {}
    sci_files: dict[str, Path] = {}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    max_half = (options.max_stamp_size - 1) // 2
    for chip, psf in zip(chips, psfs, strict=True):
        x, y = chip.wcs.radecToxy(cols["ra"], cols["dec"], units="deg")
        x, y = np.atleast_1d(np.asarray(x, float)), np.atleast_1d(np.asarray(y, float))
        centre = galsim.PositionD(0.5 * (1 + chip.nx), 0.5 * (1 + chip.ny))
        scale = math.sqrt(abs(chip.wcs.local(centre).pixelArea()))
        need = radii / scale + psf.radius_pixels(scale) + options.stamp_margin  # as draw_objects_into sizes it
        half = np.minimum(np.ceil(need), max_half)
        on = _touching(chip, x, y, half) & ~skip
        centre_covered |= (x >= 0.5) & (x <= chip.nx + 0.5) & (y >= 0.5) & (y <= chip.ny + 0.5)
        index = np.nonzero(on)[0]
        if not len(index):
            continue
        expnum = chip.image.expnum
        sci = np.ascontiguousarray(fits.getdata(chip.image.image, 0), dtype=np.float32)
        if sci.shape != (chip.ny, chip.nx):
            raise InputFileError(f"{chip.image.image}: SCI data shape {sci.shape} does not match its header")
        image = galsim.Image(sci, xmin=1, ymin=1)
        sub_profiles = ([shapes[i] for i in index], radii[index])
        color = getattr(psf, "color", None)
        res = draw.draw_objects_into(
            image, chip.wcs, psf, subset(objects, index), band, chip.image.mag_zero, chip.gain_map(),
            None if noise_seed is None else chip_noise_seed(noise_seed, chip.image), options,
            profiles=sub_profiles, psf_colors=colors[color][index] if color else None)
        drawn = (res.flags & (draw.OFF_IMAGE | draw.DRAW_FAILED)) == 0
        flags[index[(res.flags & draw.DRAW_FAILED) != 0]] |= draw.DRAW_FAILED
        whole_somewhere[index[drawn & ((res.flags & draw.CLIPPED) == 0)]] = True
        fscale = 10.0 ** (0.4 * (COADD_ZEROPOINT - chip.image.mag_zero))
        for k in np.nonzero(drawn & (res.flux_drawn > 0))[0]:
            exposures[index[k]].add(expnum)
        acc = noise_sum.setdefault(expnum, np.zeros(n))
        acc[index[drawn]] += (res.flux_noised[drawn] - res.flux_drawn[drawn]) * fscale
        weight_of.setdefault(expnum, 1.0 / chip.variance30 if chip.variance30 else 1.0)
        hdu = fits.PrimaryHDU(sci, header=chip.header)
        path = out_dir / f"{chip.image.key}.fits"
        with atomic_path(path) as tmp:
            draw.write_hdus(tmp, fits.HDUList([hdu]), checksum=False)
        sci_files[chip.image.key] = path

    nexp = np.array([len(e) for e in exposures], dtype=np.int16)
    flux_noised = flux30.copy()
    if noise_seed is not None:
        num, den = np.zeros(n), np.zeros(n)
        for expnum, acc in noise_sum.items():
            seen = np.array([expnum in e for e in exposures])
            num[seen] += weight_of[expnum] * acc[seen]
            den[seen] += weight_of[expnum]
        flux_noised[den > 0] += num[den > 0] / den[den > 0]
    flux_noised[nexp == 0] = 0.0
    nothing = (nexp == 0) & ~skip
    flags[nothing] |= draw.OFF_IMAGE
    flags[~centre_covered & ~skip] |= draw.CENTRE_OFF_IMAGE
    flags[(nexp > 0) & ~whole_somewhere] |= draw.CLIPPED
    result = draw.DrawResult(x=np.atleast_1d(np.asarray(gx, float)), y=np.atleast_1d(np.asarray(gy, float)),
                             flux=flux30, flux_noised=flux_noised, flags=flags)
    log.info("band %s: %d of %d objects drawn on %d of %d CCD images (%d on none, %d cut in every exposure, "
             "%d failed)", band, int(np.sum(nexp > 0)), n, len(sci_files), len(chips), int(nothing.sum()),
             int(np.sum((flags & draw.CLIPPED) != 0)), int(np.sum((flags & draw.DRAW_FAILED) != 0)))
    return BandInjection(result=result, nexp=nexp, sci_files=sci_files, psf_colors=colors)


def load_chip_psfs(chips: Sequence[Chip], psf_model: str,
                   options: draw.DrawOptions) -> list[draw.PsfexGrid | piff_psf.PiffModel]:
    """Each chip's PSF model, read and checked before anything is drawn (Piff: cached per file)."""
    if psf_model == "psfex":
        return [draw.PsfexGrid(draw.load_psf(Path(c.image.psf)), options.psf_grid) for c in chips]
    if psf_model != "piff":
        raise ConfigError(f"psf-model {psf_model!r}: use 'psfex' or 'piff'")
    missing = [c.image.key for c in chips if c.image.piff is None]
    if missing:
        raise InputFileError(f"psf-model 'piff' but {len(missing)} CCD image(s) have no Piff model in the "
                             f"file set (e.g. {', '.join(missing[:3])})")
    return [piff_psf.load_piff(Path(c.image.piff)) for c in chips]


def truth_table(objects: ObjectTable, injections: Mapping[str, BandInjection]) -> Table:
    """The truth table of a single-epoch realization: :func:`.draw.truth_table` plus ``nexp_<band>``."""
    truth = draw.truth_table(objects, {b: inj.result for b, inj in injections.items()})
    for b, inj in injections.items():
        truth[f"nexp_{b}"] = inj.nexp
    for inj in injections.values():
        for name, values in inj.psf_colors.items():
            truth[piff_psf.truth_column(name)] = values
    return truth
