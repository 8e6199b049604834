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

from ..errors import InputFileError
from .lock import create_missing, locked_transaction
from .schema import (
    CATALOG_KINDS,
    DERIVED_COLUMNS,
    ColumnList,
    ColumnSpec,
    catalog_table,
    check_identifier,
    des_table,
    plan_columns,
    pushed_table,
    table_names,
)
from .url import as_engine, db_errors, safe_url

log = logging.getLogger(__name__)


_TABLE_CACHE: dict[tuple[str, str], dict[str, set[str]]] = {}

#: The role DES's Oracle databases give read access to (what Balrog granted on DESDM).
ORACLE_DEFAULT_READER = "DES_READER"


def _cache_key(engine: Engine, dbname: str, prefix: str = "") -> tuple[str, str]:
    return (safe_url(engine.url), f"{prefix}{dbname}")


def effective_reader(reader: str | None, dialect: Dialect) -> str | None:
    """The role to grant SELECT to: ``reader``; None means DES_READER on Oracle, nobody elsewhere.

    ``''`` means no GRANT anywhere (an Oracle without a DES_READER role). On DESDM the
    tables are read by others through DES_READER, so granting is the default there.
    """
    if reader is None:
        return ORACLE_DEFAULT_READER if dialect.name == "oracle" else None
    return reader or None


def grant_statement(table: sa.Table, reader: str | None, dialect: Dialect) -> str | None:
    """The GRANT SELECT a newly created table gets on ``dialect`` (None: none).

    ``reader`` as in :func:`effective_reader`. The role is a checked identifier emitted
    unquoted where it can be (``des_reader``: Oracle folds it to DES_READER).
    """
    role = effective_reader(reader, dialect)
    if not role:
        return None
    if dialect.name not in ("postgresql", "oracle"):
        log.warning("%s has no roles: not granting SELECT on %s to %s", dialect.name, table.name, role)
        return None
    role = check_identifier(role, dialect, "reader role")
    q = dialect.identifier_preparer
    return f"GRANT SELECT ON {q.format_table(table)} TO {q.quote(role)}"


def _grant(conn: Connection, table: sa.Table, reader: str | None) -> None:
    sql = grant_statement(table, reader, conn.dialect)
    if sql:
        conn.exec_driver_sql(sql)
        log.info("%s", sql)


def build_tables(
    dbname: str, specs: dict[str, Sequence[ColumnSpec]], dialect: Dialect | None = None, prefix: str = ""
) -> dict[str, sa.Table]:
    """Table objects (truth, sim, nosim, match if planned, pushed) for catalogs planned as ``specs``."""
    names = table_names(dbname, dialect, prefix)
    md = sa.MetaData()
    tables = {kind: catalog_table(md, names[kind], specs[kind], dialect) for kind in CATALOG_KINDS
              if kind in specs}
    tables["pushed"] = pushed_table(md, names["pushed"])
    return tables


_PLAN_CACHE: dict[tuple, tuple[dict[str, list[ColumnSpec]], dict[str, sa.Table]]] = {}


def plan_tables(engine: Engine, dbname: str, columns: ColumnList, bands: Sequence[str],
          data: dict[str, np.ndarray], prefix: str = "",
          omit: frozenset[tuple[str, str]] = frozenset()) -> tuple[dict[str, list[ColumnSpec]], dict[str, sa.Table]]:
    """Column specs and Table objects, cached per (database, tables, column list, dtypes, omit).

    Every realization of a campaign has the same dtypes, so planning and compiling happen
    once per process instead of once per realization (a third of the time otherwise).
    ``omit``: (kind, column) pairs left out -- derived columns an older table lacks.
    ``data`` may hold a ``match`` array too (then the match table is planned as well).
    """
    kinds = [k for k in CATALOG_KINDS if k in data]
    key = (_cache_key(engine, dbname, prefix), str(columns.source), tuple(bands),
           *(data[k].dtype if k in data else None for k in CATALOG_KINDS), omit)
    hit = _PLAN_CACHE.get(key)
    if hit is None:
        specs = {k: plan_columns(data[k].dtype, k, columns, bands, engine.dialect) for k in kinds}
        specs = {k: [s for s in v if (k, s.db_name) not in omit] for k, v in specs.items()}
        hit = (specs, build_tables(dbname, specs, engine.dialect, prefix))
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
    prefix: str = "",
) -> frozenset[tuple[str, str]]:
    """Create the campaign's tables if missing; check the catalogs fit the existing ones.

    ``tables`` come from :func:`build_tables`. The look and the creation (with the empty
    ``_des`` table) happen in one transaction holding the campaign lock (:mod:`.lock`), so
    of simultaneous first pushes one creates and the others find the tables made; no data
    goes in this transaction. The existing tables' columns are looked up once per process
    and database, and again when a push brings a table not seen yet (the match table, first
    pushed after realizations that had none). ``reader``: see :func:`effective_reader`
    (None = DES_READER on Oracle).

    Returns the (kind, column) pairs of :data:`~.schema.DERIVED_COLUMNS` (``ra``, ``dec``)
    that existing tables, made by an earlier version, lack: the caller pushes without them
    (a warning says so) rather than refusing the campaign's next realization.
    """
    key = _cache_key(engine, dbname, prefix)
    kinds = [k for k in CATALOG_KINDS if k in tables]
    known = _TABLE_CACHE.get(key)
    if known is None or any(k not in known for k in kinds):
        with db_errors(engine, f"creating the {prefix}{dbname} tables"), \
                locked_transaction(engine, dbname) as conn:
            # Connected now: the dialect knows the server's identifier limit (Oracle < 12.2: 30).
            names = table_names(dbname, conn.dialect, prefix)
            des = des_table(sa.MetaData(), names["des"], columns, conn.dialect)
            for table in create_missing(conn, [*tables.values(), des]):
                _grant(conn, table, reader)
            insp = sa.inspect(conn)
            known = {
                kind: {c["name"].lower() for c in insp.get_columns(names[kind])} for kind in kinds
            }
        _TABLE_CACHE[key] = {**_TABLE_CACHE.get(key, {}), **known}
        known = _TABLE_CACHE[key]
    names = table_names(dbname, engine.dialect, prefix)
    missing_derived = set()
    for kind in kinds:
        extra = [c.name for c in tables[kind].columns if c.name not in known[kind]]
        missing_derived |= {(kind, c) for c in extra if kind != "truth" and c in DERIVED_COLUMNS}
        extra = [c for c in extra if (kind, c) not in missing_derived]
        if extra:
            raise InputFileError(
                f"{kind} catalog columns {', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''} are not in "
                f"table {names[kind]} (made by an earlier push with other columns); push to another dbname "
                "or drop the tables (DBoverwrite / balrog-push --overwrite)"
            )
    return frozenset(missing_derived)


def reset_tables(engine_or_db: Engine | URL | str, dbname: str, prefix: str = "") -> list[str]:
    """DBoverwrite: drop all of the campaign's tables (they are recreated by the next push).

    Call once per campaign, before any push. Logged at WARNING: this deletes results. The
    drop holds the campaign lock, so it never interleaves with another process creating
    the tables (on SQLite the drops are one transaction).
    """
    engine = as_engine(engine_or_db)
    names = table_names(dbname, engine.dialect, prefix)
    with db_errors(engine, f"dropping the {prefix}{dbname} tables"), locked_transaction(engine, dbname) as conn:
        existing = set(sa.inspect(conn).get_table_names())
        doomed = [n for n in names.values() if n in existing]
        if doomed:
            log.warning("DBoverwrite: DROPPING tables %s on %s", ", ".join(doomed), safe_url(engine.url))
            md = sa.MetaData()
            for name in doomed:
                sa.Table(name, md).drop(conn)
    _TABLE_CACHE.pop(_cache_key(engine, dbname, prefix), None)
    return doomed


def pushed_realizations(engine_or_db: Engine | URL | str, dbname: str,
                        prefix: str = "") -> dict[tuple[str, int], tuple[int, int, int, int]]:
    """The bookkeeping table as {(tilename, realization): (indexstart, ntruth, nsim, nnosim)}."""
    engine = as_engine(engine_or_db)
    name = table_names(dbname, engine.dialect, prefix)["pushed"]
    with db_errors(engine, f"reading {name}"):
        if name not in set(sa.inspect(engine).get_table_names()):
            return {}
        t = pushed_table(sa.MetaData(), name)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.tilename, t.c.realization, t.c.indexstart, t.c.ntruth, t.c.nsim, t.c.nnosim))
            return {(r[0], int(r[1])): (int(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows}
