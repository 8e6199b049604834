"""``<outdir>/campaign.json``: where a campaign's results go, recorded by the runner.

``balrog-push <outdir>`` with nothing else must push into the campaign's own database, not
into a new ``balrog.sqlite``: the runner records the dbname and the database settings here
(never a password: a URL is stored without it, and a desservices section by name, read
again from the ini file when pushing), and ``balrog-push`` reads them when it is given
neither ``--config`` nor ``--db``/``--dbname``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..errors import InputFileError

log = logging.getLogger(__name__)

RECORD_FILE = "campaign.json"
FORMAT = "balrog-campaign"
#: The db keys that say where and how to push (the password is never among them).
DB_KEYS = ("url", "section", "ini", "duplicate", "reader", "table-prefix")


def record_path(outdir: str | os.PathLike) -> Path:
    return Path(outdir) / RECORD_FILE


def write_record(outdir: str | os.PathLike, dbname: str, db: Mapping[str, Any],
                 db_columns: str | os.PathLike | None) -> Path:
    """Write (or refresh) the record; identical content is left alone (many subjobs write it)."""
    from .derived import strip_password

    stored = {k: db.get(k) for k in DB_KEYS if db.get(k) is not None}
    if stored.get("url"):
        stored["url"] = strip_password(str(stored["url"]))
    record = {"format": FORMAT, "dbname": dbname, "db": stored,
              "db-columns": str(db_columns) if db_columns else None}
    text = json.dumps(record, indent=1, sort_keys=True) + "\n"
    path = record_path(outdir)
    try:
        if path.read_text() == text:
            return path
    except OSError:
        pass
    return atomic_write_text(path, text)


def read_record(outdir: str | os.PathLike) -> dict[str, Any] | None:
    """The record of the campaign in ``outdir``, or None when there is none."""
    path = record_path(outdir)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{path} is not a campaign record ({exc})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT or not record.get("dbname"):
        raise InputFileError(f"{path} is not a campaign record (format {FORMAT!r} with a dbname)")
    return record
