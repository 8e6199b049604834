"""What made a catalog: software versions, the release, the tile, the campaign's digest.

Every catalog a realization writes carries these in its table header, so a table found on
disk years later says what produced it (the campaign fingerprint, ``CAMPFP``, is the digest
of everything that determines the catalogs: positions, population, parameter files...).
The external programs' versions are asked once per process (``--version``) and cached:
the node runner asks before forking its workers, so they inherit the answer.
"""

from __future__ import annotations

import functools
import logging
import re

log = logging.getLogger(__name__)

_VERSION_RE = re.compile(r"version\s+(\S+)", re.IGNORECASE)


#: Seconds ``--version`` may take: a program that hangs here is caught by its own deadline later.
VERSION_TIMEOUT = 10.0


@functools.lru_cache(maxsize=16)
def program_version(program: str) -> str:
    """``X.Y.Z`` from ``<program> --version`` (SExtractor, SWarp); ``unknown`` if it will not say.

    Run like every external program (:func:`programs.run_program`: its own session, killed
    with everything it started at the deadline), so a hung or odd wrapper leaves nothing behind.
    """
    import tempfile

    from .errors import BalrogError
    from .programs import run_program

    with tempfile.TemporaryDirectory(prefix="balrog-version-") as cwd:
        try:
            out = run_program([program, "--version"], cwd=cwd, timeout=VERSION_TIMEOUT)
        except BalrogError:
            return "unknown"
    text = (out.stdout or b"").decode(errors="replace") + (out.stderr or b"").decode(errors="replace")
    match = _VERSION_RE.search(text)
    return match.group(1) if match else "unknown"


@functools.lru_cache(maxsize=8)
def software_header(sextractor: str = "source-extractor", swarp: str = "SWarp") -> dict[str, str]:
    """FITS header cards (8-character keys) naming the software that made a catalog."""
    import galsim
    import numpy

    from . import __version__

    return {
        "BALRVER": __version__,
        "GALSIMV": galsim.__version__,
        "SEXVER": program_version(sextractor),
        "SWARPVER": program_version(swarp),
        "NUMPYVER": numpy.__version__,
    }


def catalog_header(tile: str, realization: int, indexstart: int, release: str | None,
                   sextractor: str = "source-extractor", swarp: str = "SWarp") -> dict[str, object]:
    """The provenance cards of one realization's catalogs (the campaign identity is added by
    the runner: ``CAMPAIGN``, ``CAMPFP``)."""
    return {"TILENAME": tile, "REALIZ": realization, "INDSTART": indexstart, "RELEASE": release or "unknown",
            **software_header(sextractor, swarp)}
