"""One SWarp call of DESDM's single-epoch re-coadd, run the way DESDM runs it.

DESDM coadds a band with two SWarp calls over the same SCI planes (DESIGN.md section 12,
eastlake ``steps/swarp.py``): weighted by ``WGT_ME`` for the coadd's science and weight, and
weighted by ``WGT`` for the weight that becomes the mask. :func:`run_coadd_call` is one such
call; :mod:`.recoadd` makes the pair.

How it is run, and why:

- **Relative paths from the work folder.** SWarp (and SExtractor) segfault on long input
  paths (eastlake ``swarp.py``:25-43), and a band has 100-200 inputs. The image, weight and
  flux-scale lists go into ``@list`` files in the work folder, each path relative to it
  (or absolute when that is shorter), and SWarp runs with the work folder as its cwd, where
  it also writes its resampled temporaries (``RESAMPLE_DIR .``, removed after the call).
- **Flux scales.** ``FSCALE_DEFAULT`` is ``10**(0.4*(30 - zp))`` per image from the zero
  point of the file set, with ``FSCALE_KEYWORD nokey`` so no header keyword can override it
  (eastlake ``swarp.py``:311-312): the coadd is at zero point 30.
- **Keys.** The config file (``config/se_coadd.swarp``) holds the keys of DESDM's config
  (LANCZOS3, FSCALASTRO_TYPE VARIABLE, SUBTRACT_BACK Y, BACK_SIZE 256, ...); the command line
  adds ``COMBINE_TYPE WEIGHTED``, ``BLANK_BADPIXELS Y``, the grid (``CENTER``,
  ``PIXEL_SCALE``, ``IMAGE_SIZE``), the lists and the outputs, as eastlake's does.
- **Failures.** A non-zero exit, a run past its deadline (killed with its process group,
  :mod:`balrog_runner.programs`) or an output that is not a whole FITS image of the grid's
  size is an :class:`~balrog_runner.errors.ExternalProgramError`: the caller's unit (a
  realization, the tile's nosim) fails, nothing else. When the work folder's filesystem is
  full at that moment (SWarp writes a resampled image and weight per input there, about 8 bytes
  per input pixel), it is a :class:`~balrog_runner.errors.DiskError` naming the folder.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import fitsio

from ..atomic import disk_error
from ..errors import ExternalProgramError, InputFileError
from ..inputs.single_epoch import NWGINT_HDUS, CoaddGrid
from ..programs import check_fits_output, default_deadline, run_program

log = logging.getLogger(__name__)

#: The shipped configuration files (``config/`` at the repository root).
CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
DEFAULT_CONFIG = CONFIG_DIR / "se_coadd.swarp"
#: The coadd's magnitude zero point: every image is scaled to it.
COADD_ZEROPOINT = 30.0
#: The weight plane of each call: WGT_ME for the science and its weight, WGT for the mask.
SCIENCE_WEIGHT_HDU = NWGINT_HDUS["WGT_ME"]
MASK_WEIGHT_HDU = NWGINT_HDUS["WGT"]


@dataclass(frozen=True)
class CoaddSwarpSetup:
    """Which SWarp and config file the re-coadd runs, plus ``-KEY value`` overrides.

    ``timeout`` is the deadline of one call in seconds; None = :func:`call_deadline`.
    """

    program: str = "SWarp"
    config: Path = DEFAULT_CONFIG
    overrides: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None


DEFAULT_SETUP = CoaddSwarpSetup()


@dataclass(frozen=True)
class CoaddInput:
    """One CCD image going into the coadd.

    ``sci`` holds the image in HDU 0: the nwgint file itself, or a realization's SCI-only copy
    with injected light. ``weights`` is the nwgint file whose WGT and WGT_ME planes weigh it
    (never rewritten). ``mag_zero`` is its zero point, magnitudes.
    """

    sci: Path
    weights: Path
    mag_zero: float


def flux_scale(mag_zero: float) -> float:
    """SWarp's ``FSCALE`` bringing an image of zero point ``mag_zero`` to the coadd's 30."""
    return 10.0 ** (0.4 * (COADD_ZEROPOINT - mag_zero))


def short_path(path: str | os.PathLike, cwd: str | os.PathLike) -> str:
    """``path`` relative to ``cwd``, or absolute when that is shorter (eastlake's rule)."""
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute, os.path.abspath(cwd))
    return relative if len(relative) < len(absolute) else absolute


def input_megapixels(inputs: Sequence[CoaddInput]) -> float:
    """Pixels of all input images, in millions (SWarp's time grows with them, resampling each)."""
    total = 0
    for item in inputs:
        try:
            header = fitsio.read_header(str(item.sci), ext=0)
        except (OSError, ValueError) as exc:
            raise InputFileError(f"cannot read the header of single-epoch image {item.sci}: {exc}") from exc
        total += int(header.get("NAXIS1", 0)) * int(header.get("NAXIS2", 0))
    return total / 1e6


def call_deadline(inputs: Sequence[CoaddInput], grid: CoaddGrid) -> float:
    """Default deadline of one call: :func:`~balrog_runner.programs.default_deadline` of the
    input plus output megapixels (30 s each; measured about 1.7 s per input megapixel)."""
    return default_deadline(input_megapixels(inputs) + grid.naxis1 * grid.naxis2 / 1e6)


def memory_caps(setup: CoaddSwarpSetup = DEFAULT_SETUP) -> tuple[int, int]:
    """SWarp's ``MEM_MAX`` and ``COMBINE_BUFSIZE`` of ``setup`` (config file, then overrides), bytes.

    SWarp keeps resampled images in memory up to ``MEM_MAX`` (then in ``VMEM_DIR`` files) and
    co-adds through a ``COMBINE_BUFSIZE`` buffer: the RAM one call may take besides its base.
    SWarp's own defaults (256 MB each) where neither says.
    """
    values = {"MEM_MAX": 256, "COMBINE_BUFSIZE": 256}
    try:
        lines = Path(setup.config).read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and fields[0].upper() in values:
            values[fields[0].upper()] = int(float(fields[1]))
    for key, value in setup.overrides.items():
        if key.upper() in values:
            values[key.upper()] = int(float(value))
    return values["MEM_MAX"] * 1024 * 1024, values["COMBINE_BUFSIZE"] * 1024 * 1024


def write_lists(inputs: Sequence[CoaddInput], weight_hdu: int, workdir: Path) -> tuple[str, str, str]:
    """The ``@image``, ``@weight`` and ``@fscale`` list files of a call, in ``workdir``."""
    images = [f"{short_path(i.sci, workdir)}[0]" for i in inputs]
    weights = [f"{short_path(i.weights, workdir)}[{weight_hdu}]" for i in inputs]
    scales = [f"{flux_scale(i.mag_zero):.10g}" for i in inputs]
    names = ("images.lst", "weights.lst", "fscales.lst")
    for name, lines in zip(names, (images, weights, scales), strict=True):
        (workdir / name).write_text("\n".join(lines) + "\n")
    return names


def swarp_command(grid: CoaddGrid, lists: tuple[str, str, str], image_out: str, weight_out: str,
                  setup: CoaddSwarpSetup = DEFAULT_SETUP, combine_type: str = "WEIGHTED") -> list[str]:
    """The argv of one call (names relative to the work folder it runs in).

    ``combine_type``: ``WEIGHTED`` for the band coadds; the Y6 detection image's calls
    (:mod:`balrog_runner.measurement.detection`) use ``AVERAGE``.
    """
    images, weights, scales = lists
    # absolute: SWarp runs in the work folder, and a config it cannot find is a warning, not an error
    argv = [setup.program, f"@{images}", "-c", os.path.abspath(setup.config),
            "-IMAGEOUT_NAME", image_out, "-WEIGHTOUT_NAME", weight_out,
            "-COMBINE_TYPE", combine_type, "-BLANK_BADPIXELS", "Y",
            "-WEIGHT_TYPE", "MAP_WEIGHT", "-WEIGHT_IMAGE", f"@{weights}",
            "-FSCALE_KEYWORD", "nokey", "-FSCALE_DEFAULT", f"@{scales}",
            "-CENTER_TYPE", "MANUAL", "-CENTER", f"{grid.ra:.10f},{grid.dec:.10f}",
            "-PIXELSCALE_TYPE", "MANUAL", "-PIXEL_SCALE", f"{grid.pixel_scale:.10g}",
            "-IMAGE_SIZE", f"{grid.naxis1},{grid.naxis2}",
            "-RESAMPLE_DIR", ".", "-VMEM_DIR", ".", "-WRITE_XML", "N", "-NTHREADS", "1"]
    for key, value in setup.overrides.items():
        argv += [f"-{key.upper()}", str(value)]
    return argv


def run_coadd_call(inputs: Sequence[CoaddInput], weight_hdu: int, grid: CoaddGrid, workdir: str | os.PathLike,
                   *, setup: CoaddSwarpSetup = DEFAULT_SETUP, image_out: str = "coadd_sci.fits",
                   weight_out: str = "coadd_wgt.fits", combine_type: str = "WEIGHTED") -> tuple[Path, Path]:
    """One weighted SWarp coadd of ``inputs`` onto ``grid``, run in ``workdir``.

    ``weight_hdu`` is the nwgint plane weighing each image (:data:`SCIENCE_WEIGHT_HDU` or
    :data:`MASK_WEIGHT_HDU`). Returns the paths of the science and weight outputs, in
    ``workdir``; the caller moves or removes them.
    """
    if not inputs:
        raise InputFileError("the re-coadd needs at least one single-epoch image")
    for item in inputs:
        for path, what in ((item.sci, "single-epoch image"), (item.weights, "single-epoch weight file")):
            if not Path(path).is_file():
                raise InputFileError(f"{what} {path} does not exist")
    if not Path(setup.config).is_file():
        raise InputFileError(f"SWarp config {setup.config} does not exist")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    lists = write_lists(inputs, weight_hdu, workdir)
    argv = swarp_command(grid, lists, image_out, weight_out, setup, combine_type)
    deadline = setup.timeout or call_deadline(inputs, grid)
    try:
        run_program(argv, cwd=workdir, expected_outputs=[image_out, weight_out], timeout=deadline)
        for name in (image_out, weight_out):
            check_fits_output(workdir / name, setup.program, kind="image", shape=(grid.naxis1, grid.naxis2))
    except ExternalProgramError as exc:  # SWarp's resampled temporaries fill the work folder's disk first
        full = disk_error(exc, workdir / image_out)
        if full is None:
            raise
        raise full from exc
    for name in lists:
        (workdir / name).unlink(missing_ok=True)
    return workdir / image_out, workdir / weight_out
