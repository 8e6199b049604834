"""Values derived from a campaign's config: job name and directory, position file, database
URL, tile groups.

They are functions of the ``run``/``db`` dicts and never stored in them, so they cannot
disagree with the keys they come from.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError

log = logging.getLogger(__name__)


def jobname(run: dict[str, Any]) -> str:
    """``<dbname>`` or ``<dbname>-<joblabel>``: SLURM job name and job directory name."""
    return run["dbname"] if not run.get("joblabel") else f"{run['dbname']}-{run['joblabel']}"



def job_dir(run: dict[str, Any]) -> Path:
    """Where this campaign's job files, specs and job logs go: ``<jobdir>/<jobname>``."""
    return Path(run["jobdir"]) / jobname(run)



def position_file(run: dict[str, Any], tile: str) -> Path:
    """The position file of a tile (contract: ``<pos>/<TILENAME>.fits``)."""
    return Path(run["pos"]) / f"{tile}.fits"



def db_url(run: dict[str, Any], db: dict[str, Any]) -> str | None:
    """The database URL without password; None when the node reads it from ``db['section']``.

    Mirrors the order of :func:`balrog_runner.db.url.resolve_url` (url, section, sqlite in
    outdir); the dicts keep ``url`` as the user gave it so the two never disagree.
    """
    if db.get("url"):
        return strip_password(db["url"])
    if db.get("section"):
        return None
    return f"sqlite:///{Path(run['outdir']) / (run['dbname'] + '.sqlite')}"



def strip_password(url: str) -> str:
    """The URL with any password removed; passwords are read at run time (.pgpass, desservices)."""
    from sqlalchemy.engine import URL, make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:  # its message repeats the URL, which may hold a password
        raise ConfigError("db['url'] is not a database URL (dialect+driver://user@host/name)") from None
    if parsed.password is not None:
        log.warning("db['url'] contains a password: removed; supply it at run time (~/.pgpass or desservices)")
        # URL.set(password=None) means "leave unchanged"; rebuild the URL without it instead.
        parsed = URL.create(parsed.drivername, username=parsed.username, host=parsed.host,
                            port=parsed.port, database=parsed.database, query=parsed.query)
    return parsed.render_as_string(hide_password=False)



def n_groups(run: dict[str, Any], tiles: list[str]) -> int:
    """Number of node groups (SLURM jobs when chained): ceil(len(tiles) / (nodes*npersubjob))."""
    return math.ceil(len(tiles) / (run["nodes"] * run["npersubjob"]))



def subjob_tiles(run: dict[str, Any], tiles: list[str]) -> list[list[str]]:
    """Tiles of each subjob (one node runner), in order: consecutive chunks of ``npersubjob``.

    Subjob ``k`` belongs to group ``k // nodes`` and runs on that group's node ``k % nodes``.
    """
    n = run["npersubjob"]
    return [tiles[i : i + n] for i in range(0, len(tiles), n)]



def fetch_options(run: Mapping[str, Any]) -> dict[str, Any]:
    """The ``fetch-*`` keys of ``run`` without their prefix (what :func:`fetch.source_from_options`
    and :func:`fetch.fetch_tile` take)."""
    return {k[len("fetch-"):]: v for k, v in run.items() if k.startswith("fetch-")}
