"""The campaign's tables in the database: plan, create (once, under the lock), check, drop, read.

Table layouts come from :mod:`.schema`; here they meet a live database. Two per-process
caches keep per-realization pushes cheap: the planned Table objects per catalog dtypes, and
the columns of the existing tables per (database, dbname). :func:`reset_tables` clears the
latter; a table dropped by another process while this one runs makes the next insert fail
with a clean DatabaseError.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Dialect, Engine

from ..errors import DatabaseError
from .lock import create_missing, locked_transaction
from .schema import (
    TABLE_KINDS,
    ColumnList,
    ColumnSpec,
    catalog_table,
    check_identifier,
    des_table,
    plan_columns,
    pushed_table,
    table_names,
    validate_dbname,
)
from .url import as_engine, db_errors, safe_url

log = logging.getLogger(__name__)


_TABLE_CACHE: dict[tuple[str, str], dict[str, set[str]]] = {}


def _cache_key(engine: Engine, dbname: str) -> tuple[str, str]:
    return (safe_url(engine.url), dbname)


def _grant(conn: Connection, table: sa.Table, reader: str) -> None:
    dialect = conn.dialect
    if dialect.name not in ("postgresql", "oracle"):
        log.warning("%s has no roles: not granting SELECT on %s to %s", dialect.name, table.name, reader)
        return
    role = check_identifier(reader, dialect, "reader role")
    q = dialect.identifier_preparer
    conn.exec_driver_sql(f"GRANT SELECT ON {q.format_table(table)} TO {q.quote(role)}")
    log.info("granted SELECT on %s to %s", table.name, role)


def build_tables(
    dbname: str, specs: dict[str, Sequence[ColumnSpec]], dialect: Dialect | None = None
) -> dict[str, sa.Table]:
    """Table objects (truth, sim, nosim, pushed) for catalogs planned as ``specs``."""
    names = table_names(dbname, dialect)
    md = sa.MetaData()
    tables = {kind: catalog_table(md, names[kind], specs[kind], dialect) for kind in TABLE_KINDS}
    tables["pushed"] = pushed_table(md, names["pushed"])
    return tables


_PLAN_CACHE: dict[tuple, tuple[dict[str, list[ColumnSpec]], dict[str, sa.Table]]] = {}


def plan_tables(engine: Engine, dbname: str, columns: ColumnList, bands: Sequence[str],
          data: dict[str, np.ndarray]) -> tuple[dict[str, list[ColumnSpec]], dict[str, sa.Table]]:
    """Column specs and Table objects, cached per (database, dbname, column list, dtypes).

    Every realization of a campaign has the same dtypes, so planning and compiling happen
    once per process instead of once per realization (a third of the time otherwise).
    """
    key = (_cache_key(engine, dbname), str(columns.source), tuple(bands),
           *(data[k].dtype for k in TABLE_KINDS))
    hit = _PLAN_CACHE.get(key)
    if hit is None:
        specs = {k: plan_columns(data[k].dtype, k, columns, bands, engine.dialect) for k in TABLE_KINDS}
        hit = (specs, build_tables(dbname, specs, engine.dialect))
        if len(_PLAN_CACHE) >= 64:
            _PLAN_CACHE.clear()
        _PLAN_CACHE[key] = hit
    return hit


def ensure_tables(
    engine: Engine,
    dbname: str,
    tables: dict[str, sa.Table],
    columns: ColumnList,
    reader: str | None = None,
) -> None:
    """Create the campaign's tables if missing; check the catalogs fit the existing ones.

    ``tables`` come from :func:`build_tables`. The look and the creation (with the empty
    ``_des`` table) happen in one transaction holding the campaign lock (:mod:`.lock`), so
    of simultaneous first pushes one creates and the others find the tables made; no data
    goes in this transaction. The existing tables' columns are looked up once per process
    and database.
    """
    key = _cache_key(engine, dbname)
    known = _TABLE_CACHE.get(key)
    if known is None:
        with db_errors(engine, f"creating the {dbname} tables"), locked_transaction(engine, dbname) as conn:
            # Connected now: the dialect knows the server's identifier limit (Oracle < 12.2: 30).
            validate_dbname(dbname, conn.dialect)
            names = table_names(dbname, conn.dialect)
            des = des_table(sa.MetaData(), names["des"], columns, conn.dialect)
            for table in create_missing(conn, [*tables.values(), des]):
                if reader:
                    _grant(conn, table, reader)
            insp = sa.inspect(conn)
            known = {
                kind: {c["name"].lower() for c in insp.get_columns(names[kind])} for kind in TABLE_KINDS
            }
        _TABLE_CACHE[key] = known
    names = table_names(dbname, engine.dialect)
    for kind in TABLE_KINDS:
        extra = [c.name for c in tables[kind].columns if c.name not in known[kind]]
        if extra:
            raise DatabaseError(
                f"{kind} catalog columns {', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''} are not in "
                f"table {names[kind]} (made by an earlier push with other columns); push to another dbname "
                "or drop the tables (DBoverwrite / balrog-push --overwrite)"
            )


def reset_tables(engine_or_db: Engine | URL | str, dbname: str) -> list[str]:
    """DBoverwrite: drop all of the campaign's tables (they are recreated by the next push).

    Call once per campaign, before any push. Logged at WARNING: this deletes results. The
    drop holds the campaign lock, so it never interleaves with another process creating
    the tables (on SQLite the five drops are one transaction).
    """
    engine = as_engine(engine_or_db)
    names = table_names(dbname, engine.dialect)
    with db_errors(engine, f"dropping the {dbname} tables"), locked_transaction(engine, dbname) as conn:
        existing = set(sa.inspect(conn).get_table_names())
        doomed = [n for n in names.values() if n in existing]
        if doomed:
            log.warning("DBoverwrite: DROPPING tables %s on %s", ", ".join(doomed), safe_url(engine.url))
            md = sa.MetaData()
            for name in doomed:
                sa.Table(name, md).drop(conn)
    _TABLE_CACHE.pop(_cache_key(engine, dbname), None)
    return doomed


def pushed_realizations(engine_or_db: Engine | URL | str, dbname: str) -> dict[tuple[str, int], tuple[int, int, int, int]]:
    """The bookkeeping table as {(tilename, realization): (indexstart, ntruth, nsim, nnosim)}."""
    engine = as_engine(engine_or_db)
    name = table_names(dbname, engine.dialect)["pushed"]
    with db_errors(engine, f"reading {name}"):
        if name not in set(sa.inspect(engine).get_table_names()):
            return {}
        t = pushed_table(sa.MetaData(), name)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.tilename, t.c.realization, t.c.indexstart, t.c.ntruth, t.c.nsim, t.c.nnosim))
            return {(r[0], int(r[1])): (int(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows}
