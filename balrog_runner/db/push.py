"""Pushing one realization's catalogs: one transaction, all rows or none, policies applied.

A realization is the unit: its truth, sim and nosim rows, its match rows (the blend-aware
table of blends.py, when the realization has one) and its bookkeeping row in
``<dbname>_pushed`` are written in a single transaction, which first takes the tile's lock
(:mod:`.lock`) so that simultaneous pushes of the same catalogs give one insert and
"already" for the others. A crash (or ``kill -9``) before the
commit leaves nothing of it; after the commit, everything. The bookkeeping row is how a
repeated push is recognised:

- ``duplicate='error'`` (default): if the realization is already recorded with the same
  ``indexstart`` and row counts, the push is a no-op (status ``already``) -- so a runner
  that crashed between the database commit and writing its own status file can simply push
  again. Any other overlap with the realization's ``balrog_index`` range for that tile is
  refused with :class:`DuplicateRealizationError` naming the tile and realization.
- ``duplicate='replace'``: the tile's rows of every realization overlapping that range (and
  of this realization number) are deleted in the same transaction, then the new rows go in.

The bookkeeping row counts truth, sim and nosim rows only (its columns predate the match
table): the match table has one row per truth row, checked before anything is written. A
realization written before the match table existed pushes without match rows.

``DBoverwrite`` (drop and recreate everything) is :func:`reset_tables`, to be called once per
campaign before any push, never per realization.

Bulk insert paths, chosen by dialect (all inside the same SQLAlchemy transaction):
PostgreSQL+psycopg uses ``COPY ... FROM STDIN`` on the connection's driver connection;
SQLite uses the driver's ``executemany`` with the statement SQLAlchemy compiled; others
(Oracle) use Core ``insert()`` with a list of parameter dicts (array binding in oracledb).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from ..errors import DatabaseError, InputFileError, one_line
from .lock import locked_transaction
from .schema import (
    CATALOG_KINDS,
    DEFAULT_BANDS,
    MATCH_KIND,
    ColumnSpec,
    DbType,
    check_table_prefix,
    read_column_list,
    table_names,
    validate_dbname,
)
from .tables import ensure_tables, plan_tables
from .url import as_engine, db_errors

log = logging.getLogger(__name__)

PAUSE_ENV = "BALROG_DB_PAUSE_BEFORE_COMMIT"
"""Test hook: when set, a push writes ``paused-before-commit`` to fd 1 and blocks reading fd 0
just before committing, so a test can SIGKILL it at a known point. Never set in production."""

DUPLICATE_POLICIES = ("error", "replace")


class DuplicateRealizationError(DatabaseError):
    """A realization's balrog_index range is already in the tables and the policy is 'error'."""


@dataclass(frozen=True)
class PushPolicy:
    """How a push behaves.

    duplicate: 'error' or 'replace' (see the module docstring).
    reader: role granted SELECT on tables this push creates; None = DES_READER on Oracle
        (as DES did) and no GRANT elsewhere; '' = no GRANT. PostgreSQL and Oracle only.
    columns_file: the ``db-columns`` FITS file; None = the shipped DESDM Y1A1 list.
    bands: band names whose upper-case suffix marks a measured column (``_G`` ... ``_DET``).
    table_prefix: put before ``<dbname>_<kind>`` in table names (``db['table-prefix']``;
        ``'balrog_'`` names them as DES did).
    """

    duplicate: str = "error"
    reader: str | None = None
    columns_file: str | os.PathLike | None = None
    bands: tuple[str, ...] = DEFAULT_BANDS
    table_prefix: str = ""

    def __post_init__(self) -> None:
        if self.duplicate not in DUPLICATE_POLICIES:
            raise DatabaseError(f"duplicate policy {self.duplicate!r} is not one of {', '.join(DUPLICATE_POLICIES)}")
        check_table_prefix(self.table_prefix)


@dataclass(frozen=True)
class PushResult:
    """What a push did. status: 'pushed', 'replaced' or 'already' (identical, nothing written).

    ``nmatch``: match rows in the push (0: the realization has no match catalog).
    """

    tilename: str
    realization: int
    indexstart: int
    ntruth: int
    nsim: int
    nnosim: int
    status: str
    nmatch: int = 0


@dataclass
class _Realization:
    tilename: str
    realization: int
    indexstart: int
    lo: int
    hi: int
    data: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.tilename} realization {self.realization}"


# --------------------------------------------------------------------------- reading


def read_catalog(path: str | os.PathLike, kind: str) -> np.ndarray:
    """Read HDU 1 of a truth/sim/nosim/match FITS catalog as a numpy structured array."""
    import fitsio

    path = Path(path)
    try:
        with fitsio.FITS(str(path)) as fits:
            if len(fits) < 2:
                raise InputFileError(f"{kind} catalog {path} has no table HDU")
            hdu = fits[1]
            if hdu.get_exttype() not in ("BINARY_TBL", "ASCII_TBL"):
                raise InputFileError(f"{kind} catalog {path}: HDU 1 is {hdu.get_exttype()}, not a table")
            data = hdu.read() if hdu.get_nrows() else np.zeros(0, dtype=hdu.get_rec_dtype()[0])
    except (OSError, ValueError) as exc:
        # ValueError: fitsio's own (a corrupt header, data past the file's end) and the
        # UnicodeDecodeError of CFITSIO's message about a file of random bytes.
        if isinstance(exc, InputFileError):
            raise
        reason = "not a FITS file, or a corrupt one" if isinstance(exc, UnicodeDecodeError) else one_line(exc)
        raise InputFileError(f"cannot read {kind} catalog {path}: {reason}") from exc
    if data.dtype.names is None:
        raise InputFileError(f"{kind} catalog {path}: HDU 1 holds no columns")
    return data


def _one_value(data: np.ndarray, name: str, source: str, kind: str) -> object | None:
    if name not in (data.dtype.names or ()) or len(data) == 0:
        return None
    col = data[name]
    if col.dtype.kind == "S":
        col = np.char.rstrip(np.char.decode(col, "ascii", errors="replace"))
    elif col.dtype.kind == "U":
        col = np.char.rstrip(col)
    values = np.unique(col)
    if len(values) != 1:
        raise InputFileError(f"{kind} catalog {source}: column {name} is not constant ({values[:5].tolist()} ...)")
    return values[0].item()


def _realization(data: dict[str, np.ndarray], sources: dict[str, str]) -> _Realization:
    """Identify the realization from its truth rows; check sim/nosim belong to it."""
    truth = data["truth"]
    src = sources["truth"]
    if len(truth) == 0:
        raise InputFileError(f"truth catalog {src} is empty: nothing identifies the realization")
    if "balrog_index" not in (truth.dtype.names or ()):
        raise InputFileError(f"truth catalog {src} lacks the balrog_index column")
    tile = _one_value(truth, "tilename", src, "truth")
    real = _one_value(truth, "realization", src, "truth")
    if tile is None or real is None:
        raise InputFileError(f"truth catalog {src} lacks tilename/realization columns")
    start = _one_value(truth, "indexstart", src, "truth")
    for kind in ("sim", "nosim"):
        for name, want in (("tilename", tile), ("realization", real)):
            got = _one_value(data[kind], name, sources[kind], kind)
            if got is not None and got != want:
                raise InputFileError(f"{kind} catalog {sources[kind]} has {name}={got}, truth has {want}")
    bi = truth["balrog_index"]
    lo, hi = int(bi.min()), int(bi.max())
    return _Realization(str(tile), int(real), int(start if start is not None else lo), lo, hi, data)


def _with_realization_keys(match: np.ndarray, real: _Realization, source: str) -> np.ndarray:
    """The match rows with ``tilename``, ``realization``, ``indexstart`` in front.

    The match file is keyed by ``balrog_index`` alone (one row per truth row, same order);
    in the database it must be found, replaced and deleted per realization like the other
    tables. A file whose ``balrog_index`` is not the truth's is refused before any write.
    """
    names = match.dtype.names or ()
    if "balrog_index" not in names:
        raise InputFileError(f"match catalog {source} lacks the balrog_index column")
    truth = real.data["truth"]
    if not np.array_equal(np.asarray(match["balrog_index"], dtype=np.int64),
                          np.asarray(truth["balrog_index"], dtype=np.int64)):
        raise InputFileError(
            f"match catalog {source} does not hold one row per truth row of {real.label} "
            f"({len(match)} rows, truth {len(truth)}; balrog_index must be the truth's, in order)")
    front = [(n, truth.dtype[n] if n == "tilename" else t) for n, t in
             (("tilename", None), ("realization", np.dtype("i4")), ("indexstart", np.dtype("i8")))
             if n not in names]
    out = np.empty(len(match), dtype=[*front, *((n, match.dtype[n]) for n in names)])
    for n in names:
        out[n] = match[n]
    values = {"tilename": truth["tilename"], "realization": real.realization, "indexstart": real.indexstart}
    for n, _ in front:
        out[n] = values[n]
    return out


# --------------------------------------------------------------------------- values


def _max_abs(dbtype: DbType) -> float | None:
    """Largest magnitude a fixed-point column holds after rounding to its scale (None: any)."""
    if dbtype.kind == "numeric" and dbtype.precision:
        scale = dbtype.scale or 0
        return 10.0 ** (dbtype.precision - scale) - 0.5 * 10.0**-scale
    if dbtype.kind == "int" and dbtype.precision:
        return 10.0**dbtype.precision - 0.5
    return None


def column_values(values: np.ndarray, dbtype: DbType) -> tuple[list, int]:
    """Python values for one column: NaN -> None; values a fixed-point column cannot hold -> None.

    Returns the list and how many (finite) out-of-range values were nulled. Vectorised:
    one ``tolist()`` per column (faster than a structured array's row-wise ``tolist()``);
    an object array only when some value must become None.
    """
    a = np.asarray(values)
    if dbtype.kind == "str":
        if a.dtype.kind == "S":
            a = np.char.decode(a, "ascii", errors="replace")
        return np.char.rstrip(a.astype(str)).tolist(), 0
    if a.dtype.kind in "SU":
        raise InputFileError(f"a text column cannot be stored as {dbtype.kind}")
    if a.dtype.kind == "b":
        a = a.astype(np.int16)
    limit = _max_abs(dbtype)
    floating = a.dtype.kind == "f"
    if limit is None and not floating:
        return a.tolist(), 0
    with np.errstate(invalid="ignore", over="ignore"):
        if limit is None:  # float column: only NaN becomes NULL (inf is a float)
            null = np.isnan(a)
            nover = 0
        else:  # fixed point: NaN, inf and out-of-range become NULL
            null = ~(np.abs(a) < limit)  # NaN compares False: null too
            nover = int(np.count_nonzero(null & ~np.isnan(a))) if floating else int(np.count_nonzero(null))
    if dbtype.kind == "int" and floating:
        a = np.rint(np.where(null, 0, a)).astype(np.int64)
    if not null.any():
        return a.tolist(), nover
    out = a.astype(object)
    out[null] = None
    return out.tolist(), nover


def catalog_rows(data: np.ndarray, specs: Sequence[ColumnSpec]) -> tuple[list[tuple], dict[str, int]]:
    """Rows (tuples in ``specs`` order) and per-column counts of nulled out-of-range values."""
    cols = []
    nulled: dict[str, int] = {}
    for spec in specs:
        try:
            vals, nover = column_values(data[spec.catalog_name], spec.dbtype)
        except InputFileError as exc:
            raise InputFileError(f"column {spec.catalog_name}: {exc}") from None
        if nover:
            nulled[spec.db_name] = nover
        cols.append(vals)
    return list(zip(*cols, strict=True)), nulled


# --------------------------------------------------------------------------- inserting


def bulk_insert(conn: Connection, table: sa.Table, rows: list[tuple]) -> None:
    """Insert ``rows`` (tuples in the table's column order) on the fastest path of the dialect."""
    if not rows:
        return
    dialect = conn.dialect
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        q = dialect.identifier_preparer
        cols = ", ".join(q.quote(c.name) for c in table.columns)
        raw = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(f"COPY {q.format_table(table)} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    elif dialect.name == "sqlite":
        cached = table.info.get("sqlite_insert")
        if cached is None:
            keys = [c.name for c in table.columns]
            compiled = sa.insert(table).compile(dialect=dialect, column_keys=keys)
            order = [keys.index(k) for k in compiled.positiontup]
            cached = table.info["sqlite_insert"] = (compiled.string, order if order != list(range(len(keys))) else None)
        sql, order = cached
        if order is not None:
            rows = [tuple(r[i] for i in order) for r in rows]
        conn.exec_driver_sql(sql, rows)
    else:
        keys = [c.name for c in table.columns]
        conn.execute(sa.insert(table), [dict(zip(keys, r, strict=True)) for r in rows])


def _pause_for_tests() -> None:
    os.write(1, b"paused-before-commit\n")
    os.read(0, 1)


def _resolve_duplicates(conn: Connection, dbname: str, tables: dict[str, sa.Table], real: _Realization,
                        counts: tuple[int, int, int], policy: PushPolicy) -> str | None:
    """Apply the duplicate policy; return 'already' (do nothing), 'replaced' or None (fresh)."""
    pushed, truth = tables["pushed"], tables["truth"]
    prev = conn.execute(
        sa.select(pushed.c.indexstart, pushed.c.ntruth, pushed.c.nsim, pushed.c.nnosim).where(
            pushed.c.tilename == real.tilename, pushed.c.realization == real.realization
        )
    ).first()
    # Filter on balrog_index alone (its index) and the tile in Python: with the tile in the
    # WHERE clause SQLite picks the (tilename, realization) index and scans the whole tile,
    # which makes every push slower than the last.
    overlapping = {
        int(r) for t, r in conn.execute(
            sa.select(truth.c.tilename, truth.c.realization).distinct().where(
                truth.c.balrog_index.between(real.lo, real.hi)
            )
        ) if t == real.tilename
    }
    if prev is None and not overlapping:
        return None
    if policy.duplicate == "error":
        if prev is not None and tuple(prev) == (real.indexstart, *counts) and overlapping <= {real.realization}:
            return "already"
        raise DuplicateRealizationError(
            f"{real.label} (balrog_index {real.lo}..{real.hi}) is already in {truth.name}"
            + (f" (realizations {sorted(overlapping)})" if overlapping else "")
            + (" with different row counts" if prev is not None else "")
            + "; use duplicate='replace' to replace it"
        )
    victims = sorted(overlapping | {real.realization})
    doomed = [tables[k] for k in (*CATALOG_KINDS, "pushed") if k in tables]
    if MATCH_KIND not in tables:  # this push has no match rows, an earlier one of the tile may have
        name = table_names(dbname, conn.dialect, policy.table_prefix)[MATCH_KIND]
        if sa.inspect(conn).has_table(name):
            doomed.append(sa.Table(name, sa.MetaData(), sa.Column("tilename", sa.String(32)),
                                   sa.Column("realization", sa.Integer)))
    for t in doomed:
        conn.execute(sa.delete(t).where(t.c.tilename == real.tilename, t.c.realization.in_(victims)))
    log.warning("replacing %s: deleted the rows of realizations %s of %s", real.label, victims, real.tilename)
    return "replaced"


#: Columns named one by one in a table's NULL summary; the rest are counted.
NULL_SUMMARY_COLUMNS = 8


@dataclass
class NulledValues:
    """Values stored as NULL because their DESDM column cannot hold them, tallied over the
    realizations this process pushed (:func:`report_nulled_values` says it once per table).

    One WARNING per realization (1.2-1.7 kB each: ~100,000 lines for a 1000-tile campaign)
    drowned everything else; the per-realization list is logged at DEBUG instead.
    """

    columns: dict[str, dict[str, int]] = field(default_factory=dict)  # table -> column -> values
    realizations: dict[str, int] = field(default_factory=dict)  # table -> realizations with some
    pushed: int = 0  # realizations written (not "already")

    def add(self, label: str, nulled: dict[tuple[str, str], int]) -> None:
        self.pushed += 1
        if not nulled:
            return
        log.debug("%s: %d values outside their DESDM column's range stored as NULL: %s", label,
                  sum(nulled.values()), ", ".join(f"{t}.{c} {v}" for (t, c), v in sorted(nulled.items())))
        for table in {t for t, _ in nulled}:
            self.realizations[table] = self.realizations.get(table, 0) + 1
        for (table, column), n in nulled.items():
            per = self.columns.setdefault(table, {})
            per[column] = per.get(column, 0) + n

    def summary(self) -> list[str]:
        """One line per table: the values, the realizations, the columns by count."""
        lines = []
        for table in sorted(self.columns):
            per = sorted(self.columns[table].items(), key=lambda kv: (-kv[1], kv[0]))
            shown = ", ".join(f"{c} {n}" for c, n in per[:NULL_SUMMARY_COLUMNS])
            more = len(per) - NULL_SUMMARY_COLUMNS
            lines.append(
                f"{table}: {sum(n for _, n in per)} values outside their DESDM column's range stored as NULL in "
                f"{self.realizations[table]} of the {self.pushed} realization(s) pushed: {shown}"
                + (f" and {more} more column(s)" if more > 0 else "")
                + " (values a DESDM NUMBER(p,s) column cannot hold, e.g. SExtractor's 99; -v lists them per "
                  "realization)")
        return lines


_NULLED = NulledValues()


def report_nulled_values() -> list[str]:
    """Log the NULL summary of the pushes since the last call, one WARNING per table, and
    start a new tally; returns the lines. The runner calls it at the end of a subjob,
    :func:`~balrog_runner.db.campaign.push_missing` at the end of a campaign push."""
    global _NULLED
    lines = _NULLED.summary()
    for line in lines:
        log.warning("%s", line)
    _NULLED = NulledValues()
    return lines


_WARNED_OLD: set[tuple[str, ...]] = set()


def _warn_old_tables(tables: dict[str, sa.Table], omit: frozenset[tuple[str, str]]) -> None:
    """Once per process and tables: existing tables predate ``ra``/``dec``; pushed without them."""
    key = tuple(sorted(f"{tables[k].name}.{c}" for k, c in omit))
    if key in _WARNED_OLD:
        return
    _WARNED_OLD.add(key)
    log.warning("tables made by an earlier balrog_runner lack %s: pushing without them (positions are in "
                "ALPHAWIN_J2000_DET/DELTAWIN_J2000_DET if kept, or join the truth table; a new dbname or "
                "DBoverwrite makes tables with them)", ", ".join(key))


def _write(engine: Engine, dbname: str, tables: dict[str, sa.Table], real: _Realization,
           rows: dict[str, list[tuple]], counts: tuple[int, int, int], policy: PushPolicy) -> str:
    """Check and write one realization in one transaction holding the tile's lock (:mod:`.lock`).

    The lock comes before the duplicate check, so of simultaneous pushes of the same
    realization one inserts and the others find its committed bookkeeping row: "already".
    """
    with locked_transaction(engine, dbname, real.tilename, tables["pushed"].name) as conn:
        status = _resolve_duplicates(conn, dbname, tables, real, counts, policy)
        if status == "already":
            log.info("%s is already in %s with the same rows: nothing to do", real.label, dbname)
            return status
        now = _dt.datetime.now(_dt.UTC).replace(tzinfo=None)
        # The bookkeeping row first: its primary key is the arbiter should two writers meet.
        conn.execute(sa.insert(tables["pushed"]).values(
            tilename=real.tilename, realization=real.realization, indexstart=real.indexstart,
            ntruth=counts[0], nsim=counts[1], nnosim=counts[2], pushed_at=now,
        ))
        for kind in CATALOG_KINDS:
            if kind in rows:
                bulk_insert(conn, tables[kind], rows[kind])
        if os.environ.get(PAUSE_ENV):
            _pause_for_tests()
        return status or "pushed"


def push_realization(
    engine_or_db: Engine | URL | str,
    dbname: str,
    truth_path: str | os.PathLike,
    sim_path: str | os.PathLike,
    nosim_path: str | os.PathLike,
    policy: PushPolicy | None = None,
    match_path: str | os.PathLike | None = None,
) -> PushResult:
    """Push one realization's truth/sim/nosim (and match) FITS catalogs in one transaction.

    ``match_path``: the realization's ``<TILE>_r<jjjj>_match.fits`` (blends.py), or None
    for a realization without one (no match rows). Raises InputFileError for
    unreadable/inconsistent catalogs, DuplicateRealizationError when the policy refuses,
    DatabaseError (password-free) for anything the database says. The catalog files are
    only read, never changed.
    """
    paths = {"truth": truth_path, "sim": sim_path, "nosim": nosim_path}
    if match_path is not None:
        paths[MATCH_KIND] = match_path
    data = {kind: read_catalog(p, kind) for kind, p in paths.items()}
    return push_catalogs(engine_or_db, dbname, data["truth"], data["sim"], data["nosim"], policy,
                         sources={k: str(p) for k, p in paths.items()}, match=data.get(MATCH_KIND))


def push_catalogs(
    engine_or_db: Engine | URL | str,
    dbname: str,
    truth: np.ndarray,
    sim: np.ndarray,
    nosim: np.ndarray,
    policy: PushPolicy | None = None,
    sources: dict[str, str] | None = None,
    match: np.ndarray | None = None,
) -> PushResult:
    """Push one realization given as structured arrays (columns as in the catalog files).

    Same transaction and policies as :func:`push_realization`; ``sources`` only names the
    arrays in error messages; ``match`` is the match table (None: no match rows).
    """
    policy = policy or PushPolicy()
    engine = as_engine(engine_or_db)
    dialect = engine.dialect
    prefix = policy.table_prefix
    validate_dbname(dbname, dialect, prefix)
    columns = read_column_list(policy.columns_file)
    sources = {**{k: f"<{k} array>" for k in CATALOG_KINDS}, **(sources or {})}
    real = _realization({"truth": truth, "sim": sim, "nosim": nosim}, sources)
    if match is not None:
        real.data[MATCH_KIND] = _with_realization_keys(match, real, sources[MATCH_KIND])
    specs, tables = plan_tables(engine, dbname, columns, policy.bands, real.data, prefix)
    omit = ensure_tables(engine, dbname, tables, columns, policy.reader, prefix)
    if omit:
        _warn_old_tables(tables, omit)
        specs, tables = plan_tables(engine, dbname, columns, policy.bands, real.data, prefix, omit)
        ensure_tables(engine, dbname, tables, columns, policy.reader, prefix)
    rows: dict[str, list[tuple]] = {}
    nulled: dict[tuple[str, str], int] = {}  # (table, column) -> values stored as NULL
    for kind in (k for k in CATALOG_KINDS if k in real.data):
        try:
            rows[kind], n = catalog_rows(real.data[kind], specs[kind])
        except InputFileError as exc:
            raise InputFileError(f"{kind} catalog {sources[kind]}, {exc}") from None
        nulled.update({(tables[kind].name, k): v for k, v in n.items()})
    counts = (len(rows["truth"]), len(rows["sim"]), len(rows["nosim"]))
    with db_errors(engine, f"pushing {real.label} to {dbname}"):
        try:
            status = _write(engine, dbname, tables, real, rows, counts, policy)
        except sa.exc.IntegrityError:
            # Only the <dbname>_pushed primary key can clash: another writer committed this
            # realization between our look and our insert (possible only where the lock is
            # not taken). All of ours is rolled back; look again, now seeing its row.
            log.info("%s was pushed by another process at the same time; checking again", real.label)
            status = _write(engine, dbname, tables, real, rows, counts, policy)
    nmatch = len(rows.get(MATCH_KIND, ()))
    if status != "already":
        # Data lost to the schema (DESDM's NUMBER(p,s) columns were sized for clipped values;
        # SExtractor writes 99 sentinels): counted, and said once per table by report_nulled_values.
        _NULLED.add(real.label, nulled)
        log.info("%s %s to %s: %d truth, %d sim, %d nosim, %d match rows", status, real.label, dbname,
                 *counts, nmatch)
    return PushResult(real.tilename, real.realization, real.indexstart, *counts, status, nmatch)
