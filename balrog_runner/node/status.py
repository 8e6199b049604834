"""A tile's ``status.json``: each realization's state (done / failed + reason / pushed), seconds
per stage, the pool's size and why, and the campaign identity of the tile's owner.

Written atomically after every change, so a killed runner leaves the last complete state;
an unreadable file is rewritten, never trusted: the catalogs on disk are the record of
what is done (:func:`.layout.is_complete`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from ..atomic import atomic_write_text
from .layout import STATUS_FILE, tile_dir

log = logging.getLogger(__name__)


def read_status(outdir: str | os.PathLike, tile: str) -> dict[str, Any]:
    path = tile_dir(outdir, tile) / STATUS_FILE
    try:
        status = json.loads(path.read_text())
    except FileNotFoundError:
        status = {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s (%s); it will be rewritten", path, exc)
        status = {}
    status.setdefault("tilename", tile)
    status.setdefault("realizations", {})
    return status



def write_status(outdir: str | os.PathLike, tile: str, status: Mapping[str, Any]) -> None:
    atomic_write_text(tile_dir(outdir, tile) / STATUS_FILE, json.dumps(status, indent=1, sort_keys=True) + "\n")
