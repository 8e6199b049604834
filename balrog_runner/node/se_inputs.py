"""A single-epoch tile's inputs on the node: its CCD images and PSF models, fetched and recorded.

The runner of a ``run['inject-into'] = 'single-epoch'`` campaign calls :func:`fetch_se_inputs`
where a coadd campaign calls :func:`.runner.fetch_inputs`: it reads the tile's lines of the
single-epoch manifest (``run['fetch-manifest']``), fetches the set into ``<outdir>/<TILE>/se``
(:func:`balrog_runner.inputs.fetch_se.fetch_se_tile`: parallel, verified, resumed, the free
space checked first), and records the set in the tile's ``status.json``: images per band
(``se_images``) and the CCDs left out (``se_dropped``: missing from the archive with
``run['fetch-se-drop-missing']``, or left out by ``balrog-inputs --drop-incomplete``).
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from ..inputs import fetch, fetch_se
from ..inputs.single_epoch import SESet, tile_se_dir
from .settings import RunSettings
from .status import record_se_inputs, write_status

log = logging.getLogger(__name__)


def fetch_se_inputs(settings: RunSettings, tile: str, status: MutableMapping[str, Any]) -> SESet:
    """Fetch (or find, verified) ``tile``'s single-epoch set in ``settings.bands``; write it
    into ``status`` and the tile's ``status.json``. Raises what the fetch raises (one line
    naming the file or the folder), with ``status`` untouched."""
    opts = dict(settings.fetch)
    source = fetch.source_from_options(opts, mode="single-epoch", tiles=[tile])
    se_set = fetch_se.fetch_se_tile(
        tile, tile_se_dir(settings.outdir, tile), source, bands=settings.bands,
        workers=int(opts.get("workers") or 4), drop_missing=bool(opts.get("se-drop-missing")),
        funpack_bin=settings.funpack, deadline=float(opts.get("deadline") or fetch.DEFAULT_FILE_DEADLINE),
        funpack_timeout=settings.program_timeout,
    )
    record_se_inputs(status, se_set)
    write_status(settings.outdir, tile, status)
    if se_set.dropped:
        log.warning("tile %s: %d CCD(s) left out of the single-epoch set (status.json se_dropped)", tile,
                    len(se_set.dropped))
    return se_set


__all__ = ["fetch_se_inputs"]
