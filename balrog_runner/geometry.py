"""DES tile geometry: tile names, the DES tiling, unique areas and tile WCS (offline).

(Being written: see issue 2. Other modules may rely on ``is_des_tilename`` already.)
"""

from __future__ import annotations

import re

#: A DES coadd tile name: ``DESHHMM+DDMM`` or ``DESHHMM-DDMM`` (centre RA in hours and
#: minutes, Dec in degrees and arcminutes, truncated).
TILENAME_RE = re.compile(r"^DES(?P<hh>[0-2]\d)(?P<mm>[0-5]\d)(?P<sign>[+-])(?P<dd>[0-8]\d)(?P<am>[0-5]\d)$")


def is_des_tilename(name: str) -> bool:
    """True when ``name`` has the form of a DES tile name (no shell metacharacters possible)."""
    return isinstance(name, str) and TILENAME_RE.fullmatch(name) is not None
