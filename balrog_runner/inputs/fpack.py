"""fpack and funpack: DESDM ships its images tile-compressed (``.fits.fz``).

SExtractor cannot read ``.fits.fz`` files, so the node funpacks what it fetched; the demo's
synthetic survey is fpacked to look like DESDM's archive.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..atomic import atomic_path
from ..errors import InputFileError
from ..programs import default_deadline, image_megapixels, run_program, scratch_dir


def _existing(path: Path, what: str) -> Path:
    if not path.is_file():
        raise InputFileError(f"{what} {path} does not exist")
    return path


#: fpack options: Rice, floats quantized at noise/4 with SUBTRACTIVE_DITHER_2, the dither
#: seed taken from the first tile's checksum (``t``) rather than the clock.
FPACK_OPTIONS = ("-qzt", "4")



def run_fpack(src: str | os.PathLike, out_fz: str | os.PathLike, *, program: str = "fpack",
              options: Sequence[str] = FPACK_OPTIONS, workdir: str | os.PathLike | None = None,
              timeout: float | None = None) -> Path:
    """Tile-compress ``src`` with ``fpack`` into ``out_fz``.

    ``-qz`` (SUBTRACTIVE_DITHER_2) matters: with fpack's default dithering, the zero-weight
    pixels of a WGT HDU come back from funpack as small positive *and negative* numbers,
    which SExtractor then takes as real (or invalid) weights. ``-qz`` keeps zeros exactly.
    ``t`` makes the compressed file a function of the image alone (fpack otherwise seeds
    its dithering from the clock), so the same seed gives the same synthetic tile.
    """
    src = _existing(Path(src), "fpack input")
    out_fz = Path(out_fz)
    with scratch_dir(workdir, prefix="fpack-") as tmp, atomic_path(out_fz, suffix=".fz") as o:
        deadline = timeout or default_deadline(image_megapixels(src))
        run_program([program, *options, "-S", str(src)], cwd=tmp, stdout_path=o, expected_outputs=[o],
                    timeout=deadline)
    return out_fz



def run_funpack(src: str | os.PathLike, out: str | os.PathLike, *, program: str = "funpack",
                workdir: str | os.PathLike | None = None, timeout: float | None = None) -> Path:
    """Uncompress a ``.fits.fz`` file with ``funpack`` into ``out`` (SExtractor needs this).

    ``timeout``: deadline in seconds (None: :func:`default_deadline` of the largest image).
    """
    src = _existing(Path(src), "funpack input")
    out = Path(out)
    with scratch_dir(workdir, prefix="funpack-") as tmp, atomic_path(out) as o:
        deadline = timeout or default_deadline(image_megapixels(src))
        run_program([program, "-S", str(src)], cwd=tmp, stdout_path=o, expected_outputs=[o], timeout=deadline)
    return out
