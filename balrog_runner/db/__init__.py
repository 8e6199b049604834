"""The results database: tables, pushes and policies on SQLAlchemy Core.

Public API (what the node runner and ``balrog-push`` call):

- :func:`resolve_url` / :func:`make_engine`: the campaign's database from its ``db`` dict.
- :func:`push_realization`: one realization's truth/sim/nosim catalogs, one transaction
  (:func:`push_catalogs` for the same as in-memory arrays).
- :func:`make_realization_pusher`: what the node runner calls per realization.
- :func:`reset_tables` / :func:`overwrite_once`: DBoverwrite, once per campaign.
- :func:`find_catalogs` / :func:`push_missing`: what is on disk but not yet in the database.
"""

from .campaign import (
    CatalogSet,
    PushSummary,
    find_catalogs,
    make_realization_pusher,
    overwrite_once,
    push_missing,
)
from .push import (
    DuplicateRealizationError,
    PushPolicy,
    PushResult,
    push_catalogs,
    push_realization,
)
from .schema import check_identifier, read_column_list, table_names
from .tables import pushed_realizations, reset_tables
from .url import make_engine, resolve_url, safe_url, url_from_desservices

__all__ = [
    "CatalogSet",
    "DuplicateRealizationError",
    "PushPolicy",
    "PushResult",
    "PushSummary",
    "check_identifier",
    "find_catalogs",
    "make_engine",
    "make_realization_pusher",
    "overwrite_once",
    "push_catalogs",
    "push_missing",
    "push_realization",
    "pushed_realizations",
    "read_column_list",
    "reset_tables",
    "resolve_url",
    "safe_url",
    "table_names",
    "url_from_desservices",
]
