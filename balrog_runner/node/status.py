"""A tile's ``status.json``: each realization's state (done / failed + reason / pushed), seconds
per stage, the pool's size and why, and the campaign identity of the tile's owner; for a
single-epoch tile, its images per band and the CCDs left out (``se_images``, ``se_dropped``).

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
from ..inputs.single_epoch import SESet
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


#: status.json keys of a single-epoch tile: images per band, and ``"<key>: <reason>"`` per CCD left out.
SE_IMAGES_KEY, SE_DROPPED_KEY = "se_images", "se_dropped"


def record_se_inputs(status: dict[str, Any], se_set: SESet) -> None:
    """Put a tile's single-epoch set into its status: how many images per band, which CCDs were
    dropped and why (missing from the archive with ``run['fetch-se-drop-missing']``, or left out
    by ``balrog-inputs --drop-incomplete``)."""
    status[SE_IMAGES_KEY] = {band: len(images) for band, images in se_set.images.items()}
    status[SE_DROPPED_KEY] = list(se_set.dropped)
