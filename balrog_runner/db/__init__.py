"""Stage 2, the results database: tables, pushes and policies on SQLAlchemy Core.

Public API (what the node runner and ``balrog-push`` call):

- :func:`resolve_url` / :func:`make_engine`: the campaign's database from its ``db`` dict.
- :func:`push_realization`: one realization's truth/sim/nosim catalogs, one transaction
  (:func:`push_catalogs` for the same as in-memory arrays).
- :func:`make_realization_pusher`: what the node runner calls per realization;
  :func:`report_nulled_values`: the values stored as NULL, said once per table at the end.
- :func:`reset_tables` / :func:`overwrite_once`: DBoverwrite, once per campaign.
- :func:`find_catalogs` / :func:`push_missing`: what is on disk but not yet in the database.
- :func:`validate_dbname`: the one check of a campaign's dbname (config, CLI, pushes).
- :func:`table_names`: the one place tables are named, ``<prefix><dbname>_<kind>``
  (``db['table-prefix']``: '' or DES's ``'balrog_'``).

Concurrency. Any number of processes may push to one campaign at once -- node runners,
``balrog-push``, even the same catalogs twice: each write transaction first takes a lock
(SQLite ``BEGIN IMMEDIATE``, a PostgreSQL advisory lock per tile, Oracle ``LOCK TABLE``;
see :mod:`.lock`), so each realization is inserted once and the others report "already
pushed". Tables are created under the same lock.

SQLite on a shared parallel filesystem (Lustre, GPFS, NFS, as on HPC clusters): its file
locks do not work reliably across nodes, and concurrent writers from several nodes can
corrupt the file or fail. The safe pattern there is one writer: set ``run['push'] = False``
for the jobs on the nodes and run one ``balrog-push <outdir>`` after they finish (or while
they run, from one place), or use PostgreSQL (``db['url']``), which serves any number of
nodes. SQLite is fine for the pool workers of one node (one machine's locks).

May import: the shared top-level modules and ``sky``. It sits low in the stage order
because DESDM's file lookup (``inputs``), preflight (``campaign``) and the node's pusher all
use its connection layer.
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
    report_nulled_values,
)
from .schema import (
    DbnameError,
    check_identifier,
    check_table_prefix,
    read_column_list,
    table_names,
    validate_dbname,
)
from .tables import pushed_realizations, reset_tables
from .url import make_engine, resolve_url, safe_url, url_from_desservices

__all__ = [
    "CatalogSet",
    "DbnameError",
    "DuplicateRealizationError",
    "PushPolicy",
    "PushResult",
    "PushSummary",
    "check_identifier",
    "check_table_prefix",
    "find_catalogs",
    "make_engine",
    "make_realization_pusher",
    "overwrite_once",
    "push_catalogs",
    "push_missing",
    "push_realization",
    "pushed_realizations",
    "read_column_list",
    "report_nulled_values",
    "reset_tables",
    "resolve_url",
    "safe_url",
    "table_names",
    "url_from_desservices",
    "validate_dbname",
]
