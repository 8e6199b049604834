"""Command lines for the AstrOmatic programs (SExtractor, SWarp, PSFEx).

Every function here is path-in / path-out: it takes input files, runs the real Debian
binary in a scratch directory, and leaves exactly the requested output file (written to a
temporary name and renamed, so a killed run never leaves a half-written catalog or image).
A non-zero exit status, a missing or unreadable output (garbage, truncated FITS), or a run
past its deadline raises :class:`~balrog_runner.errors.ExternalProgramError` carrying the
tail of the program's stderr, so the caller fails only its own unit (a realization, a tile).

**Deadlines** and the process handling are :mod:`balrog_runner.programs`'s; every run here
has one (the setup's ``timeout``, else that module's default for the image's size).

Gotchas worth knowing (found with the Debian builds: SExtractor 2.25, SWarp 2.41, PSFEx 3.21):

- The binaries are ``source-extractor`` (not ``sex``) and ``SWarp`` (not ``swarp``).
- SExtractor cannot read tile-compressed ``.fits.fz`` files: ``funpack`` them first.
  SWarp can, but we feed it the funpacked files too so both tools see identical pixels.
- Extensions are addressed as ``file.fits[N]`` (0 = primary) by both SExtractor and SWarp.
- Every program writes side files into its working directory by default (``swarp.xml``,
  ``psfex.xml``, check plots, ``coadd.weight.fits``); we always run in a private scratch
  directory and switch the XML/check outputs off.
- SWarp copies only ``OBJECT`` from the input headers (``COPY_KEYWORDS``) and applies the
  ``FLXSCALE`` header keyword (``FSCALE_KEYWORD``) when present: :func:`run_swarp_detection`
  sets explicit flux scales from the zeropoints and writes ``SEXMGZPT``/``GAIN`` into the
  detection image itself.
- ``NTHREADS`` is pinned to 1: the node runner parallelises over realizations instead.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import fitsio
import numpy as np

from ..atomic import atomic_path
from ..errors import ConfigError, InputFileError
from ..programs import (
    check_fits_output,
    default_deadline,
    image_megapixels,
    run_program,
    scratch_dir,
)

log = logging.getLogger(__name__)

#: Directory of the configuration files shipped with the package (``config/`` at the repo root).
CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
#: Where the Debian ``source-extractor`` package keeps its filters and neural-network file.
SEXTRACTOR_SHARE = Path("/usr/share/source-extractor")

DEFAULT_SEX_CONFIG = CONFIG_DIR / "default.sex"
DEFAULT_SEX_PARAM = CONFIG_DIR / "default.param"
LIGHT_SEX_PARAM = CONFIG_DIR / "light.param"
PSFEX_SEX_PARAM = CONFIG_DIR / "psfex.param"
DEFAULT_SWARP_CONFIG = CONFIG_DIR / "default.swarp"
DEFAULT_PSFEX_CONFIG = CONFIG_DIR / "default.psfex"
DEFAULT_FILTER = SEXTRACTOR_SHARE / "gauss_3.0_7x7.conv"
DEFAULT_NNW = SEXTRACTOR_SHARE / "default.nnw"

#: Zeropoint assumed when an image header has no ``SEXMGZPT`` (DESDM convention), in mag.
DEFAULT_ZEROPOINT = 30.0


@dataclass(frozen=True)
class ImageRef:
    """One image plane: a FITS file and the HDU number holding it (0 = primary)."""

    path: Path
    hdu: int = 0

    def spec(self) -> str:
        """The ``file.fits[N]`` form both SExtractor and SWarp understand."""
        return f"{self.path}[{self.hdu}]"


def _as_ref(value: ImageRef | tuple[str | os.PathLike, int] | str | os.PathLike) -> ImageRef:
    if isinstance(value, ImageRef):
        return value
    if isinstance(value, tuple):
        return ImageRef(Path(value[0]), int(value[1]))
    return ImageRef(Path(value), 0)


@dataclass(frozen=True)
class SextractorSetup:
    """Which SExtractor binary and configuration files to use, plus ``-KEY value`` overrides.

    The defaults are the DESDM-like files in ``config/`` and the Debian filter/NNW files.
    ``param`` decides the cost: :data:`DEFAULT_SEX_PARAM` includes model fitting
    (``MAG_PSF``, ``SPREAD_MODEL``, ``MAG_MODEL``) and needs a PSFEx file per image;
    :data:`LIGHT_SEX_PARAM` has none of these and runs without a PSF.
    """

    program: str = "source-extractor"
    config: Path = DEFAULT_SEX_CONFIG
    param: Path = DEFAULT_SEX_PARAM
    filter: Path = DEFAULT_FILTER
    nnw: Path = DEFAULT_NNW
    overrides: Mapping[str, str] = field(default_factory=dict)
    #: Deadline of one run, seconds; None = :func:`default_deadline` of the measured image.
    timeout: float | None = None


@dataclass(frozen=True)
class SwarpSetup:
    """Which SWarp binary and configuration file to use, plus ``-KEY value`` overrides."""

    program: str = "SWarp"
    config: Path = DEFAULT_SWARP_CONFIG
    overrides: Mapping[str, str] = field(default_factory=dict)
    #: Deadline of one run, seconds; None = :func:`default_deadline` of the output image.
    timeout: float | None = None


@dataclass(frozen=True)
class PsfexSetup:
    """Which PSFEx binary and configuration file to use, plus ``-KEY value`` overrides."""

    program: str = "psfex"
    config: Path = DEFAULT_PSFEX_CONFIG
    overrides: Mapping[str, str] = field(default_factory=dict)
    #: Deadline of one run, seconds; None = :func:`default_deadline` with the input
    #: catalog's size in MB standing in for megapixels.
    timeout: float | None = None


#: Default setups (frozen, so safe as argument defaults).
DEFAULT_SEXTRACTOR = SextractorSetup()
LIGHT_SEXTRACTOR = SextractorSetup(param=LIGHT_SEX_PARAM)
DEFAULT_SWARP = SwarpSetup()
DEFAULT_PSFEX = PsfexSetup()


def _override_args(overrides: Mapping[str, object]) -> list[str]:
    args: list[str] = []
    for key, value in overrides.items():
        args += [f"-{key.upper()}", str(value)]
    return args


def _require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise InputFileError(f"{what} {path} does not exist")
    return path


def read_zeropoint_gain(image: ImageRef | tuple | str | os.PathLike) -> tuple[float, float]:
    """``(SEXMGZPT, GAIN)`` of an image HDU; zeropoint 30.0 mag when absent, gain 0 (infinite)."""
    ref = _as_ref(image)
    try:
        header = fitsio.read_header(str(ref.path), ext=ref.hdu)
    except (OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputFileError(f"cannot read HDU {ref.hdu} of image {ref.path} as FITS: {reason}") from exc
    zp = float(header.get("SEXMGZPT", DEFAULT_ZEROPOINT))
    gain = float(header.get("GAIN", 0.0))
    return zp, gain


def param_needs_detection_psf(param: str | os.PathLike) -> bool:
    """Whether a SExtractor parameter file asks for ``*_DETMODEL`` columns.

    Those fit the model on the detection image, with the detection image's PSF. In
    SExtractor 2.25 that PSF exists only when ``PSF_NAME`` lists two files, and the
    order then matters (checked on real runs):

    - with ``*_DETMODEL`` requested, the first file is the detection PSF and the second the
      measurement PSF (``PSF_NAME det.psf,band.psf``); with one file the detection PSF is
      NULL and SExtractor segfaults (``profit_init(thedpsf, ...)`` in ``makeit.c``);
    - without them, only the first file is read, as the measurement PSF: ``det,band`` would
      measure ``MAG_PSF``/``SPREAD_MODEL``/``MAG_MODEL`` of the band with the det PSF.
    """
    try:
        text = Path(param).read_text()
    except (OSError, UnicodeDecodeError):
        return False  # run_sextractor reports an unreadable parameter file itself
    for line in text.splitlines():
        name = line.split("#", 1)[0].strip()
        if name and "DETMODEL" in name.split("(", 1)[0].upper():
            return True
    return False


def psf_name_value(psf: Path | None, detection_psf: Path | None, needs_detection_psf: bool) -> str | None:
    """The ``PSF_NAME`` value for SExtractor 2.25 (see :func:`param_needs_detection_psf`)."""
    if needs_detection_psf:
        if psf is None or detection_psf is None:
            return None
        return f"{detection_psf},{psf}"
    return str(psf) if psf is not None else None


def sextractor_command(
    detection: ImageRef,
    measurement: ImageRef | None,
    catalog: Path,
    *,
    detection_weight: ImageRef | None = None,
    measurement_weight: ImageRef | None = None,
    psf: Path | None = None,
    detection_psf: Path | None = None,
    zeropoint: float = DEFAULT_ZEROPOINT,
    gain: float = 0.0,
    catalog_type: str = "FITS_1.0",
    setup: SextractorSetup = DEFAULT_SEXTRACTOR,
    extra: Mapping[str, object] | None = None,
    flag_image: ImageRef | None = None,
) -> list[str]:
    """The SExtractor argv for a single-image (``measurement`` None) or dual-image run.

    ``flag_image`` (an integer plane on the detection image's grid, e.g. its MSK) becomes
    ``FLAG_IMAGE``, for ``IMAFLAGS_ISO`` (the Y6 recipe, :mod:`.recipe`).
    """
    images = detection.spec() if measurement is None else f"{detection.spec()},{measurement.spec()}"
    argv = [setup.program, images, "-c", str(setup.config), "-CATALOG_NAME", str(catalog),
            "-CATALOG_TYPE", catalog_type, "-PARAMETERS_NAME", str(setup.param),
            "-FILTER_NAME", str(setup.filter), "-STARNNW_NAME", str(setup.nnw),
            "-MAG_ZEROPOINT", f"{zeropoint:.6f}", "-GAIN", f"{gain:.6f}",
            "-CHECKIMAGE_TYPE", "NONE", "-WRITE_XML", "N", "-VERBOSE_TYPE", "NORMAL"]
    if measurement is not None:
        if (detection_weight is None) != (measurement_weight is None):
            raise InputFileError("dual-image SExtractor needs a weight for both images or for neither")
        weights = [w for w in (detection_weight, measurement_weight) if w is not None]
    else:
        # SExtractor 2.25 quirk: in single-image mode, INTERP_TYPE VAR_ONLY fails with
        # "WEIGHT_IMAGE missing" unless the weight is given for both (identical) image slots.
        weights = [detection_weight, detection_weight] if detection_weight is not None else []
    if weights:
        argv += ["-WEIGHT_TYPE", ",".join(["MAP_WEIGHT"] * len(weights)),
                 "-WEIGHT_IMAGE", ",".join(w.spec() for w in weights)]
    else:
        argv += ["-WEIGHT_TYPE", "NONE"]
    psf_name = psf_name_value(psf, detection_psf, param_needs_detection_psf(setup.param))
    if psf_name is not None:
        argv += ["-PSF_NAME", psf_name]
    if flag_image is not None:
        argv += ["-FLAG_IMAGE", flag_image.spec()]
    argv += _override_args(setup.overrides)
    argv += _override_args(extra or {})
    return argv


def run_sextractor(
    detection: ImageRef | tuple | str | os.PathLike,
    catalog: str | os.PathLike,
    *,
    measurement: ImageRef | tuple | str | os.PathLike | None = None,
    detection_weight: ImageRef | tuple | str | os.PathLike | None = None,
    measurement_weight: ImageRef | tuple | str | os.PathLike | None = None,
    psf: str | os.PathLike | None = None,
    detection_psf: str | os.PathLike | None = None,
    zeropoint: float | None = None,
    gain: float | None = None,
    catalog_type: str = "FITS_1.0",
    setup: SextractorSetup = DEFAULT_SEXTRACTOR,
    extra: Mapping[str, object] | None = None,
    workdir: str | os.PathLike | None = None,
    flag_image: ImageRef | tuple | str | os.PathLike | None = None,
) -> Path:
    """Run SExtractor and atomically write its catalog to ``catalog``; return that path.

    Single-image mode when ``measurement`` is None, else dual-image mode (detection on
    ``detection``, photometry on ``measurement``). ``zeropoint`` (mag) and ``gain`` (e-/ADU)
    default to the measured image's ``SEXMGZPT`` and ``GAIN`` header keywords. ``psf`` is the
    PSFEx model of the measured image (needed by PSF/model-fitting parameters),
    ``detection_psf`` the detection image's (needed by ``*_DETMODEL`` parameters). ``extra``
    holds further ``-KEY value`` overrides (e.g. ``{"DETECT_THRESH": 5}``). ``flag_image`` is
    SExtractor's ``FLAG_IMAGE`` (an integer plane on the detection image's grid).
    """
    det = _as_ref(detection)
    flags = _as_ref(flag_image) if flag_image is not None else None
    if flags is not None:
        _require(flags.path, "SExtractor flag image")
    meas = _as_ref(measurement) if measurement is not None else None
    _require(det.path, "detection image")
    if meas is not None:
        _require(meas.path, "measurement image")
    for f, what in ((setup.config, "SExtractor config"), (setup.param, "SExtractor parameter file"),
                    (setup.filter, "SExtractor filter"), (setup.nnw, "SExtractor NNW file")):
        _require(Path(f), what)
    if psf is not None:
        _require(Path(psf), "PSFEx model")
    if detection_psf is not None:
        _require(Path(detection_psf), "detection PSFEx model")
    if param_needs_detection_psf(setup.param) and (psf is None or detection_psf is None):
        raise ConfigError(f"parameter file {setup.param} asks for *_DETMODEL columns, which need the "
                          "PSFEx models of both the detection and the measured image "
                          "(SExtractor 2.25 segfaults with one)")
    hdr_zp, hdr_gain = read_zeropoint_gain(meas or det)
    zp = hdr_zp if zeropoint is None else zeropoint
    g = hdr_gain if gain is None else gain
    catalog = Path(catalog)
    with scratch_dir(workdir, prefix="sex-") as tmp, atomic_path(catalog) as out:
        argv = sextractor_command(
            det, meas, out,
            detection_weight=_as_ref(detection_weight) if detection_weight is not None else None,
            measurement_weight=_as_ref(measurement_weight) if measurement_weight is not None else None,
            psf=Path(psf) if psf is not None else None,
            detection_psf=Path(detection_psf) if detection_psf is not None else None, zeropoint=zp, gain=g,
            catalog_type=catalog_type, setup=setup, extra=extra, flag_image=flags,
        )
        deadline = setup.timeout or default_deadline(image_megapixels((meas or det).path, (meas or det).hdu))
        run_program(argv, cwd=tmp, expected_outputs=[out], timeout=deadline)
        check_fits_output(out, setup.program, kind="table", shown_as=catalog)
    log.debug("SExtractor wrote %s", catalog)
    return catalog


def image_geometry(ref: ImageRef) -> tuple[int, int, float, float, float]:
    """(naxis1, naxis2, crval1-equivalent centre RA, Dec in degrees, pixel scale in arcsec)."""
    from astropy.io import fits
    from astropy.wcs import WCS
    from astropy.wcs.utils import proj_plane_pixel_scales

    with fits.open(ref.path, memmap=True) as hdul:
        header = hdul[ref.hdu].header
    nx, ny = int(header["NAXIS1"]), int(header["NAXIS2"])
    wcs = WCS(header)
    # The image centre in 1-based FITS pixels, the point SWarp's CENTER refers to.
    ra, dec = wcs.all_pix2world([[(nx + 1) / 2.0, (ny + 1) / 2.0]], 1)[0]
    scale = float(np.mean(proj_plane_pixel_scales(wcs.celestial)) * 3600.0)
    return nx, ny, float(ra), float(dec), scale


def run_swarp_detection(
    images: Sequence[tuple[ImageRef | tuple | str | os.PathLike, ImageRef | tuple | str | os.PathLike]],
    out_sci: str | os.PathLike,
    out_wgt: str | os.PathLike,
    *,
    setup: SwarpSetup = DEFAULT_SWARP,
    workdir: str | os.PathLike | None = None,
) -> tuple[Path, Path]:
    """Combine (science, weight) pairs (r, i, z) into the CHI-MEAN detection image.

    The output is on the first image's own grid: ``RESAMPLE N`` (the inputs already share
    the tile grid, so no interpolation), ``CENTER_TYPE MANUAL`` with the first image's
    centre, ``IMAGE_SIZE`` and ``PIXEL_SCALE`` (arcsec), ``SUBTRACT_BACK N`` (coadds are
    already sky-subtracted), ``WEIGHT_TYPE MAP_WEIGHT``. Flux scales are set explicitly so
    every input is brought to the first image's zeropoint (``FSCALE_KEYWORD`` points at a
    keyword that does not exist, so a stray ``FLXSCALE`` in a header cannot interfere). The
    science output gets ``SEXMGZPT`` (the first image's) and keeps the ``GAIN`` SWarp
    computes for the combination. Returns ``(out_sci, out_wgt)``.
    """
    if len(images) < 1:
        raise InputFileError("SWarp detection image needs at least one (science, weight) pair")
    pairs = [(_as_ref(s), _as_ref(w)) for s, w in images]
    for s, w in pairs:
        _require(s.path, "SWarp input image")
        _require(w.path, "SWarp input weight")
    _require(Path(setup.config), "SWarp config")
    nx, ny, ra, dec, scale = image_geometry(pairs[0][0])
    zps = [read_zeropoint_gain(s)[0] for s, _ in pairs]
    fscales = [10.0 ** (-0.4 * (zp - zps[0])) for zp in zps]
    out_sci, out_wgt = Path(out_sci), Path(out_wgt)
    with scratch_dir(workdir, prefix="swarp-") as tmp:
        sci_tmp, wgt_tmp = tmp / "det_sci.fits", tmp / "det_wgt.fits"
        argv = [setup.program, *[s.spec() for s, _ in pairs], "-c", str(setup.config),
                "-IMAGEOUT_NAME", str(sci_tmp), "-WEIGHTOUT_NAME", str(wgt_tmp),
                "-HEADER_ONLY", "N", "-COMBINE", "Y", "-COMBINE_TYPE", "CHI-MEAN",
                "-RESAMPLE", "N", "-SUBTRACT_BACK", "N",
                "-WEIGHT_TYPE", "MAP_WEIGHT", "-WEIGHT_IMAGE", ",".join(w.spec() for _, w in pairs),
                "-CENTER_TYPE", "MANUAL", "-CENTER", f"{ra:.10f},{dec:.10f}",
                "-PIXELSCALE_TYPE", "MANUAL", "-PIXEL_SCALE", f"{scale:.8f}",
                "-IMAGE_SIZE", f"{nx},{ny}",
                "-FSCALE_KEYWORD", "BALROG_NOFSCALE", "-FSCALE_DEFAULT", ",".join(f"{f:.8g}" for f in fscales),
                "-RESAMPLE_DIR", str(tmp), "-VMEM_DIR", str(tmp),
                "-WRITE_XML", "N", "-NTHREADS", "1", "-VERBOSE_TYPE", "NORMAL"]
        argv += _override_args(setup.overrides)
        deadline = setup.timeout or default_deadline(nx * ny / 1e6)
        run_program(argv, cwd=tmp, expected_outputs=[sci_tmp, wgt_tmp], timeout=deadline)
        for output in (sci_tmp, wgt_tmp):
            check_fits_output(output, setup.program, kind="image", shape=(nx, ny))
        with fitsio.FITS(str(sci_tmp), "rw") as f:
            f[0].write_key("SEXMGZPT", zps[0], comment="Mag zeropoint (from the first input)")
        with atomic_path(out_sci) as o:
            shutil.move(sci_tmp, o)
        with atomic_path(out_wgt) as o:
            shutil.move(wgt_tmp, o)
    return out_sci, out_wgt


def run_psfex(
    catalog: str | os.PathLike,
    out_psf: str | os.PathLike,
    *,
    setup: PsfexSetup = DEFAULT_PSFEX,
    extra: Mapping[str, object] | None = None,
    workdir: str | os.PathLike | None = None,
) -> Path:
    """Fit a PSFEx model to a SExtractor FITS_LDAC catalog (with ``VIGNET``); write ``out_psf``.

    PSFEx names its output after the catalog (``<catalog stem>.psf`` in ``PSF_DIR``), so the
    catalog is linked into a scratch directory and the result renamed onto ``out_psf``.
    """
    catalog = _require(Path(catalog), "PSFEx input catalog")
    _require(Path(setup.config), "PSFEx config")
    out_psf = Path(out_psf)
    with scratch_dir(workdir, prefix="psfex-") as tmp:
        local = tmp / "psfcat.fits"
        try:
            os.link(catalog, local)
        except OSError:
            shutil.copyfile(catalog, local)
        argv = [setup.program, str(local), "-c", str(setup.config), "-PSF_DIR", str(tmp),
                "-PSF_SUFFIX", ".psf", "-WRITE_XML", "N", "-CHECKPLOT_TYPE", "NONE",
                "-CHECKIMAGE_TYPE", "NONE", "-NTHREADS", "1"]
        argv += _override_args(setup.overrides)
        argv += _override_args(extra or {})
        deadline = setup.timeout or default_deadline(catalog.stat().st_size / 1e6)
        run_program(argv, cwd=tmp, expected_outputs=[tmp / "psfcat.psf"], timeout=deadline)
        check_fits_output(tmp / "psfcat.psf", setup.program, kind="table")
        with atomic_path(out_psf) as o:
            shutil.move(tmp / "psfcat.psf", o)
    return out_psf


def write_desdm_image(path: str | os.PathLike, sci: np.ndarray, msk: np.ndarray, wgt: np.ndarray,
                      header, extra: Mapping[str, tuple[object, str]] | None = None) -> Path:
    """Write a DESDM-layout MEF (SCI primary, MSK int32, WGT float32) with CHECKSUM, atomically.

    ``header`` (an astropy Header) supplies the WCS and keywords of SCI; MSK and WGT get
    the WCS keywords only. ``extra`` adds ``{KEY: (value, comment)}`` cards to SCI.
    """
    from astropy.io import fits

    hdr = header.copy()
    for key in ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND"):
        hdr.remove(key, ignore_missing=True)
    hdr["EXTNAME"] = "SCI"
    for key, (value, comment) in (extra or {}).items():
        hdr[key] = (value, comment)
    wcs_keys = fits.Header([c for c in hdr.cards if c.keyword in _WCS_KEYS])
    hdus = fits.HDUList([
        fits.PrimaryHDU(np.asarray(sci, dtype=np.float32), header=hdr),
        fits.ImageHDU(np.asarray(msk, dtype=np.int32), header=wcs_keys, name="MSK"),
        fits.ImageHDU(np.asarray(wgt, dtype=np.float32), header=wcs_keys, name="WGT"),
    ])
    path = Path(path)
    with atomic_path(path) as tmp:
        hdus.writeto(tmp, checksum=True)
    return path


_WCS_KEYS = {"CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CD1_1", "CD1_2", "CD2_1", "CD2_2",
             "CDELT1", "CDELT2", "PC1_1", "PC1_2", "PC2_1", "PC2_2", "CUNIT1", "CUNIT2", "EQUINOX",
             "RADESYS", "RADECSYS", "LONPOLE", "LATPOLE"}

#: MSK bit set on pixels with zero weight in a detection image.
MSK_ZERO_WEIGHT = 1


def make_detection_image(
    images: Sequence[tuple[ImageRef | tuple | str | os.PathLike, ImageRef | tuple | str | os.PathLike]],
    out: str | os.PathLike,
    *,
    setup: SwarpSetup = DEFAULT_SWARP,
    workdir: str | os.PathLike | None = None,
    extra: Mapping[str, tuple[object, str]] | None = None,
) -> Path:
    """SWarp CHI-MEAN of (sci, wgt) pairs, written as a DESDM MEF (SCI, MSK, WGT) at ``out``.

    MSK flags pixels SWarp gave zero weight. SCI keeps SWarp's WCS (the first input's grid)
    and ``GAIN``, plus the ``SEXMGZPT`` set by :func:`run_swarp_detection`.
    """
    from astropy.io import fits

    with scratch_dir(workdir, prefix="det-") as tmp:
        sci_path, wgt_path = run_swarp_detection(images, tmp / "det_sci.fits", tmp / "det_wgt.fits",
                                                 setup=setup, workdir=tmp)
        with fits.open(sci_path) as hs, fits.open(wgt_path) as hw:
            sci = hs[0].data.astype(np.float32)
            wgt = hw[0].data.astype(np.float32)
            header = hs[0].header.copy()
    msk = (wgt <= 0).astype(np.int32) * MSK_ZERO_WEIGHT
    cards = {"BAND": ("det", "CHI-MEAN detection image")}
    cards.update(extra or {})
    return write_desdm_image(out, sci, msk, wgt, header, cards)


#: Diameter (pixels, ~5.3") of the aperture PSFEx normalises its samples with (PHOTFLUX_KEY
#: FLUX_APER(1)). MAG_PSF measures the flux the model is normalised to, so a small aperture
#: (e.g. 2.4") makes MAG_PSF ~0.1 mag faint for a Moffat beta=3.5 PSF; 20 px holds ~99%.
PSF_NORM_APERTURE = 20.0


def make_psf_model(image: str | os.PathLike, out_psf: str | os.PathLike, *, workdir: str | os.PathLike,
                   sex: SextractorSetup | None = None,
                   psfex: PsfexSetup = DEFAULT_PSFEX, weight_hdu: int = 2) -> Path:
    """SExtractor (FITS_LDAC with VIGNET, S/N-limited) + psfex on a DESDM MEF -> PSFEx model.

    What the synthetic surveys' models are made with, and the node's coadd models of a
    single-epoch tile whose file set names none. ``weight_hdu`` is the HDU of ``image`` that weighs it: 2 in a coadd tile (WGT), 1 in a
    single-epoch nwgint file (WGT).
    """
    sex = sex or SextractorSetup(param=PSFEX_SEX_PARAM)
    image = Path(image)
    cat = Path(workdir) / f"{image.name}.psfcat.ldac"
    run_sextractor((image, 0), cat, detection_weight=(image, weight_hdu), catalog_type="FITS_LDAC",
                   setup=sex, extra={"DETECT_THRESH": 5.0, "ANALYSIS_THRESH": 5.0,
                                     "PHOT_APERTURES": PSF_NORM_APERTURE}, workdir=workdir)
    try:
        return run_psfex(cat, out_psf, setup=psfex, workdir=workdir)
    finally:
        cat.unlink(missing_ok=True)
