"""One writer at a time per campaign (and tile): the lock a push takes before it looks.

A push is check-then-act -- are the tables there, is the realization already recorded --
so two writers at once (two ``balrog-push`` of the same catalogs, or a node runner and a
``balrog-push``) must not both look before either acts: both would see "missing" and the
second would die on ``table already exists`` or on the ``<dbname>_pushed`` primary key.
Every write transaction therefore starts with a lock that its commit or rollback releases
(so does a crash or ``kill -9``: the server or the file lock ends with the session):

- SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock before the first read. A
  second writer waits for it (the engine's busy timeout, ``url.SQLITE_LOCK_TIMEOUT_S``),
  then sees the first one's committed rows. SQLite DDL is transactional, so table creation
  happens inside the lock too.
- PostgreSQL: ``pg_advisory_xact_lock(k1, k2)``, k1 from the dbname, k2 from the tile name
  (0 for creating or dropping the tables). Pushes of different tiles (what different nodes
  do) still run in parallel; everything a push checks and writes is per tile. DDL is
  transactional, so another creator is never seen half-done.
- Oracle: DDL commits implicitly and cannot be held in a transaction, so creation instead
  tolerates a concurrent creator: ORA-00955 ("name is already used by an existing object")
  on ``CREATE TABLE``/``CREATE INDEX`` means another push made it (see
  :func:`already_exists`). Data transactions start with
  ``LOCK TABLE <dbname>_pushed IN EXCLUSIVE MODE`` (held to commit or rollback; readers
  are not blocked), serialising the campaign's writers. ``DBMS_LOCK`` would allow a
  per-tile lock but needs an EXECUTE grant that DES accounts do not have.

The ``<dbname>_pushed`` primary key (tilename, realization) stays as the arbiter behind the
lock: a unique violation there (ORA-00001, or any writer that bypassed the lock) makes the
push roll back everything and look again, which then reports "already pushed" or refuses
by name (see ``push.push_catalogs``).

On a shared parallel filesystem (Lustre, GPFS, NFS) SQLite's file locks are not reliable
across nodes: the safe pattern is one writer (``run['push'] = False`` on the nodes and one
``balrog-push`` afterwards) or a server database.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Engine

from .schema import check_identifier

log = logging.getLogger(__name__)

LOCK_TIMEOUT_S = 600.0
"""Seconds a writer waits for the lock before its push fails (a hung holder must not stall a
campaign: the waiting realization fails cleanly and stays on disk for ``balrog-push``).
PostgreSQL ``lock_timeout`` / Oracle ``WAIT``; SQLite has ``url.SQLITE_LOCK_TIMEOUT_S``."""

_ORACLE_NAME_IN_USE = 955  # ORA-00955: name is already used by an existing object


def advisory_key(text: str) -> int:
    """A stable signed 32-bit key for ``text`` (PostgreSQL's two-int advisory lock form).

    Python's ``hash()`` is salted per process; every writer must compute the same key.
    A collision between two names only makes them wait for each other.
    """
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big", signed=True)


def lock_statements(dialect: Dialect, dbname: str, tilename: str | None,
                    pushed_table: str | None = None) -> list[tuple[str, dict]]:
    """The SQL that starts a locked transaction on ``dialect``, as (text, bound parameters).

    ``tilename`` None: the whole campaign (creating/dropping tables); else one tile's data.
    ``pushed_table``: the checked ``<dbname>_pushed`` name (Oracle locks that table).
    """
    name = dialect.name
    wait = int(LOCK_TIMEOUT_S)
    if name == "sqlite":  # waits up to the connection's busy timeout (url.SQLITE_LOCK_TIMEOUT_S)
        return [("BEGIN IMMEDIATE", {})]
    if name == "postgresql":
        k2 = 0 if tilename is None else advisory_key(f"tile:{tilename}")
        return [(f"SET LOCAL lock_timeout = '{wait}s'", {}),
                ("SELECT pg_advisory_xact_lock(%(k1)s, %(k2)s)",
                 {"k1": advisory_key(f"balrog_runner:{dbname}"), "k2": k2})]
    if name == "oracle" and tilename is not None and pushed_table:
        quoted = dialect.identifier_preparer.quote(check_identifier(pushed_table, dialect, "table name"))
        return [(f"LOCK TABLE {quoted} IN EXCLUSIVE MODE WAIT {wait}", {})]
    return []


@contextlib.contextmanager
def locked_transaction(engine: Engine, dbname: str, tilename: str | None = None,
                       pushed_table: str | None = None) -> Iterator[Connection]:
    """A transaction (commit on success, rollback on error) holding the campaign/tile lock.

    The lock statements run first, before any read, so what the block checks is still true
    when it writes. A writer waits until the holder commits, rolls back or its session dies,
    at most :data:`LOCK_TIMEOUT_S` (then DatabaseError: this realization is not pushed).
    """
    with engine.begin() as conn:
        # pysqlite opens a transaction by itself only before DML, so an explicit BEGIN
        # IMMEDIATE as the first statement is the transaction its commit()/rollback() end.
        for sql, params in lock_statements(conn.dialect, dbname, tilename, pushed_table):
            if params:
                conn.exec_driver_sql(sql, params)
            else:
                conn.exec_driver_sql(sql)
        yield conn


def _error_code(exc: BaseException) -> int | None:
    """The Oracle error number of a (wrapped) python-oracledb error, if any."""
    orig = getattr(exc, "orig", exc)
    args = getattr(orig, "args", ())
    code = getattr(args[0], "code", None) if args else None
    return code if isinstance(code, int) else None


def already_exists(exc: BaseException, dialect: Dialect) -> bool:
    """Did a CREATE fail only because another session created the same object first?

    Needed on Oracle alone (DDL there is outside the lock); elsewhere the lock prevents it.
    """
    if dialect.name == "oracle":
        return _error_code(exc) == _ORACLE_NAME_IN_USE or "ORA-00955" in str(exc)
    return False


def create_missing(conn: Connection, tables: list[sa.Table]) -> list[sa.Table]:
    """Create those of ``tables`` the database lacks (with their indexes); return the new ones.

    Runs inside :func:`locked_transaction` (SQLite, PostgreSQL: nobody else is creating).
    On Oracle each CREATE commits by itself and a concurrent creator is tolerated.
    """
    existing = set(sa.inspect(conn).get_table_names())
    made = []
    for table in tables:
        if table.name in existing:
            continue
        try:
            table.create(conn)
        except sa.exc.DBAPIError as exc:
            if not already_exists(exc, conn.dialect):
                raise
            log.info("table %s was created by another push at the same time", table.name)
            continue
        log.info("created table %s", table.name)
        made.append(table)
    return made
