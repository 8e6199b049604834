"""Table layouts: which catalog columns become which database columns, with which types.

Naming. Database column names are the catalog names in lower case (``MAG_AUTO_G`` ->
``mag_auto_g``), ``NUMBER`` -> ``number_sex``. Lower case is what SQLAlchemy treats as
case-insensitive: it emits the names unquoted, so Oracle stores them upper case (``MAG_AUTO_G``,
as DESDM's tables), PostgreSQL lower case, SQLite as given; on every backend a query may spell
them in either case, unquoted (``SELECT MAG_AUTO_G``). Only a quoted upper-case name
(``"MAG_AUTO_G"``) fails, on PostgreSQL.

Tables are ``<prefix><dbname>_<kind>`` (:func:`table_names`, the one place that names them):
``db['table-prefix']`` is ``''`` by default, ``'balrog_'`` for DES's own style
(``balrog_<dbname>_truth``).

The match table (``<dbname>_match``, from ``<TILE>_r<jjjj>_match.fits``, blends.py) is planned
like truth: every (lower-case) column kept, its type from the FITS dtype. The file is keyed
by ``balrog_index`` alone; the push adds ``tilename``, ``realization``, ``indexstart`` in
front, so it is indexed, replaced and deleted per realization like the others.

Positions. Sim and nosim tables get per-object ``ra``/``dec`` (degrees, J2000) from the
detection image's windowed position (``ALPHAWIN_J2000_DET``/``DELTAWIN_J2000_DET``; else
``ALPHA_J2000_DET``/``DELTA_J2000_DET``), whatever ``db-columns`` keeps: DES users select
positions without joining the truth table. Identifiers must match ``[A-Za-z][A-Za-z0-9_]*``
and fit the dialect's limit (``dialect.max_identifier_length``: 128 bytes on Oracle 12.2+,
30 on older Oracle as SQLAlchemy detects it at connect, 63 on PostgreSQL). Anything else is
refused, so no SQL text is ever built from an unchecked string; values are always bound.

Selection. The ``db-columns`` FITS file (DESDM's coadd-objects column list) decides which
measured columns are kept. A band-suffixed entry (``MAG_AUTO_G``) keeps that base name for
every band, ``_DET`` included; an unsuffixed entry (``A_IMAGE``, DESDM's detection-image
value) keeps that base name for every band too, because Balrog measures every band. The
lower-case per-object columns and ``NUMBER`` are always kept.

Types. Where the list gives one, it is used (Oracle gets exactly DESDM's type through a
dialect variant; the others a generic equivalent): ``BINARY_FLOAT`` -> REAL,
``BINARY_DOUBLE`` -> DOUBLE PRECISION, ``NUMBER(p,s)`` -> NUMERIC(p,s), ``NUMBER(p,0)`` ->
SMALLINT/INTEGER/BIGINT, ``VARCHAR2(n)`` -> VARCHAR(n). Otherwise the FITS dtype decides.
A value that cannot fit a fixed-point ``NUMBER(p,s)`` (SExtractor's 99 sentinel in a
``NUMBER(5,4)`` error column) is stored as NULL and counted in the log: DESDM's columns
were sized for clipped values and a server would otherwise abort the whole realization.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import oracle
from sqlalchemy.engine import Dialect

from ..errors import ConfigError, DatabaseError, InputFileError

log = logging.getLogger(__name__)

DEFAULT_BANDS = ("g", "r", "i", "z", "Y", "det")
#: The catalogs every realization has (a realization is complete with these three).
TABLE_KINDS = ("truth", "sim", "nosim")
#: The blend-aware match table: pushed when its file exists (older campaigns lack it).
MATCH_KIND = "match"
#: Every per-object table, in creation order.
CATALOG_KINDS = (*TABLE_KINDS, MATCH_KIND)
ALL_TABLES = (*CATALOG_KINDS, "des", "pushed")
#: Where sim/nosim ``ra``/``dec`` come from, in order of preference (the first pair present).
RADEC_SOURCES = (("ALPHAWIN_J2000_DET", "DELTAWIN_J2000_DET"), ("ALPHA_J2000_DET", "DELTA_J2000_DET"))
#: Columns a push adds that tables made by versions before them lack: pushed without them there.
DERIVED_COLUMNS = ("ra", "dec")
DEFAULT_COLUMNS_FILE = Path(__file__).resolve().parents[2] / "config" / "y1a1_coadd_objects-columns.fits"
IDENTIFIER_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
DEFAULT_MAX_IDENTIFIER = 128
#: The identifier limit every campaign's dbname must fit, whatever database it is pushed to
#: first: PostgreSQL's 63 bytes (NAMEDATALEN - 1; it would truncate longer names silently),
#: which Oracle 12.2+ (128) and SQLite also take. A campaign pushed to SQLite on the nodes is
#: often loaded into PostgreSQL or Oracle later (``balrog-push --db``). Oracle before 12.2
#: (30) is checked once connected.
PORTABLE_MAX_IDENTIFIER = 63


def check_identifier(name: str, dialect: Dialect | None = None, what: str = "identifier") -> str:
    """Return ``name`` lower-cased if it is a safe SQL identifier for ``dialect``, else raise."""
    if not isinstance(name, str) or not IDENTIFIER_RE.match(name):
        raise DatabaseError(
            f"{what} {name!r} is not allowed: use letters, digits and underscores, starting with a letter"
        )
    limit = getattr(dialect, "max_identifier_length", None) or DEFAULT_MAX_IDENTIFIER
    if len(name.encode()) > limit:
        dname = getattr(dialect, "name", "the database")
        raise DatabaseError(f"{what} {name!r} is {len(name)} bytes, longer than {dname}'s limit of {limit}")
    return name.lower()


@dataclass(frozen=True)
class DbType:
    """A column type independent of the dialect.

    ``kind``: ``float32``, ``float64``, ``numeric`` (fixed point, ``precision``/``scale``
    digits), ``int`` (``precision`` decimal digits when the list gives them, else ``bits``),
    ``str`` (``length`` characters).
    """

    kind: str
    precision: int | None = None
    scale: int | None = None
    length: int | None = None
    bits: int = 64

    def sqla(self) -> sa.types.TypeEngine:
        """The SQLAlchemy type, with an Oracle variant where DESDM's type differs."""
        if self.kind == "float32":
            return sa.Float(24).with_variant(oracle.BINARY_FLOAT(), "oracle")
        if self.kind == "float64":
            return sa.Double().with_variant(oracle.BINARY_DOUBLE(), "oracle")
        if self.kind == "numeric":
            return sa.Numeric(self.precision, self.scale, asdecimal=False).with_variant(
                oracle.NUMBER(self.precision, self.scale, asdecimal=False), "oracle"
            )
        if self.kind == "int":
            if self.precision:
                base = (
                    sa.SmallInteger() if self.precision <= 4
                    else sa.Integer() if self.precision <= 9 else sa.BigInteger()
                )
                return base.with_variant(oracle.NUMBER(self.precision, 0, asdecimal=False), "oracle")
            return sa.SmallInteger() if self.bits <= 16 else sa.Integer() if self.bits <= 32 else sa.BigInteger()
        if self.kind == "str":
            return sa.String(self.length or 1)
        raise ValueError(f"unknown DbType kind {self.kind!r}")

    @property
    def numeric_like(self) -> bool:
        return self.kind != "str"


def dtype_to_dbtype(dtype: np.dtype) -> DbType:
    """The DbType a FITS column of this numpy dtype gets when the list says nothing."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return DbType("float32" if dtype.itemsize <= 4 else "float64")
    if dtype.kind == "b":
        return DbType("int", bits=16)
    if dtype.kind in "iu":
        bits = dtype.itemsize * 8 + (1 if dtype.kind == "u" else 0)
        return DbType("int", bits=16 if bits <= 16 else 32 if bits <= 32 else 64)
    if dtype.kind == "S":
        return DbType("str", length=max(dtype.itemsize, 1))
    if dtype.kind == "U":
        return DbType("str", length=max(dtype.itemsize // 4, 1))
    raise InputFileError(f"cannot store a column of dtype {dtype} in the database")


def _parse_oracle_type(name: str, otype: str, length: str, precision: str, scale: str, source: Path) -> DbType:
    def num(text: str) -> int | None:
        text = text.strip()
        return None if text in ("", "None") else int(text)

    otype = otype.strip().upper()
    try:
        p, s, n = num(precision), num(scale), num(length)
    except ValueError:
        raise InputFileError(f"{source}: column {name}: bad length/precision/scale") from None
    if otype == "BINARY_FLOAT":
        return DbType("float32")
    if otype == "BINARY_DOUBLE":
        return DbType("float64")
    if otype == "NUMBER":
        if s == 0:
            return DbType("int", precision=p)
        if p is None:
            return DbType("float64")
        return DbType("numeric", precision=p, scale=s or 0)
    if otype in ("VARCHAR2", "VARCHAR", "CHAR", "NVARCHAR2"):
        return DbType("str", length=n or 1)
    raise InputFileError(
        f"{source}: column {name} has type {otype}; allowed: BINARY_FLOAT, BINARY_DOUBLE, NUMBER, VARCHAR2"
    )


@dataclass(frozen=True)
class ColumnList:
    """A parsed ``db-columns`` file: every entry (for the ``_des`` table) and kept base names."""

    source: Path
    entries: tuple[tuple[str, DbType], ...]
    bases: dict[str, DbType]
    full: dict[str, DbType]

    def lookup(self, catalog_name: str, bands: Iterable[str]) -> tuple[bool, DbType | None]:
        """Is an upper-case catalog column kept, and with which listed type (if any)."""
        if catalog_name in self.full:
            return True, self.full[catalog_name]
        base, band = split_band(catalog_name, bands)
        if band is not None and base in self.bases:
            return True, self.bases[base]
        return False, None


def split_band(name: str, bands: Iterable[str]) -> tuple[str, str | None]:
    """``MAG_APER_1_G`` -> (``MAG_APER_1``, ``G``); no band suffix -> (name, None)."""
    base, sep, suffix = name.rpartition("_")
    if sep and base and suffix in {b.upper() for b in bands}:
        return base, suffix
    return name, None


@functools.lru_cache(maxsize=8)
def _read_column_list(path: str, mtime: float) -> ColumnList:
    import fitsio

    source = Path(path)
    try:
        data = fitsio.read(path, ext=1)
    except (OSError, ValueError):
        raise InputFileError(f"cannot read db-columns file {source}: not a FITS table "
                             "(column_name, type, length, precision, scale)") from None
    need = {"column_name", "type", "length", "precision", "scale"}
    names = {n.lower(): n for n in (data.dtype.names or ())}
    if not need <= set(names):
        raise InputFileError(
            f"db-columns file {source} lacks columns {sorted(need - set(names))} "
            "(needs column_name, type, length, precision, scale)"
        )

    def text(v) -> str:
        return (v.decode() if isinstance(v, bytes) else str(v)).strip()

    entries: list[tuple[str, DbType]] = []
    bases: dict[str, DbType] = {}
    for row in data:
        cname = text(row[names["column_name"]]).upper()
        if not IDENTIFIER_RE.match(cname):
            raise InputFileError(f"db-columns file {source}: {cname!r} is not a column name")
        dbt = _parse_oracle_type(
            cname, text(row[names["type"]]), text(row[names["length"]]),
            text(row[names["precision"]]), text(row[names["scale"]]), source,
        )
        entries.append((cname, dbt))
        base, band = split_band(cname, DEFAULT_BANDS)
        bases.setdefault(base if band else cname, dbt)
    return ColumnList(source, tuple(entries), bases, dict(entries))


def read_column_list(path: str | os.PathLike | None = None) -> ColumnList:
    """Read (and cache) a ``db-columns`` FITS file; None means the shipped DESDM Y1A1 list."""
    p = Path(path) if path is not None else DEFAULT_COLUMNS_FILE
    try:
        mtime = p.stat().st_mtime
    except OSError as exc:
        raise InputFileError(f"db-columns file {p} not found: {exc.strerror}") from None
    return _read_column_list(str(p), mtime)


@dataclass(frozen=True)
class ColumnSpec:
    """One stored column: where it comes from in the catalog, its DB name and type."""

    catalog_name: str
    db_name: str
    dbtype: DbType


def plan_columns(
    dtype: np.dtype,
    kind: str,
    columns: ColumnList,
    bands: Sequence[str] = DEFAULT_BANDS,
    dialect: Dialect | None = None,
) -> list[ColumnSpec]:
    """Which columns of a truth/sim/nosim/match catalog are stored, under which names and types."""
    specs: list[ColumnSpec] = []
    for name in dtype.names or ():
        field = dtype.fields[name][0]
        if field.shape:
            raise InputFileError(
                f"{kind} catalog column {name} is a vector {field.shape}; catalogs must hold "
                "flattened columns (MAG_APER_1_G, ...)"
            )
        npt = dtype_to_dbtype(field.base)
        if kind in ("truth", MATCH_KIND) or name != name.upper():
            specs.append(ColumnSpec(name, check_identifier(name, dialect, "column"), npt))
            continue
        if name == "NUMBER":
            specs.append(ColumnSpec(name, "number_sex", npt))
            continue
        keep, listed = columns.lookup(name, bands)
        if not keep:
            continue
        dbt = listed if listed is not None and listed.numeric_like == npt.numeric_like else npt
        specs.append(ColumnSpec(name, check_identifier(name, dialect, "column"), dbt))
    if kind in ("sim", "nosim"):
        specs = _with_radec(specs, dtype, kind)
    seen: set[str] = set()
    for s in specs:
        if s.db_name in seen:
            raise InputFileError(f"{kind} catalog has two columns named {s.db_name} (case-insensitive)")
        seen.add(s.db_name)
    for required in ("balrog_index", "tilename", "realization"):
        if required not in seen:
            raise InputFileError(f"{kind} catalog lacks the column {required!r} (DEVELOPING.md: Catalog columns)")
    return specs


def _with_radec(specs: list[ColumnSpec], dtype: np.dtype, kind: str) -> list[ColumnSpec]:
    """``specs`` with per-object ``ra``, ``dec`` after the front columns, unless the catalog has them.

    From the first :data:`RADEC_SOURCES` pair the catalog holds (float64 degrees). Without
    any (a parameter file with no world position of the detection image) the table has no
    ``ra``/``dec``, and a warning says so.
    """
    if {"ra", "dec"} & {s.db_name for s in specs}:
        return specs
    names = set(dtype.names or ())
    pair = next((p for p in RADEC_SOURCES if set(p) <= names), None)
    if pair is None:
        log.warning("%s catalog has none of %s: its table gets no ra/dec columns (add ALPHAWIN_J2000 and "
                    "DELTAWIN_J2000 to the SExtractor parameter file)", kind,
                    ", ".join("/".join(p) for p in RADEC_SOURCES))
        return specs
    front = next((i + 1 for i, s in enumerate(specs) if s.db_name == "indexstart"), 0)
    radec = [ColumnSpec(src, name, DbType("float64")) for src, name in zip(pair, DERIVED_COLUMNS, strict=True)]
    return specs[:front] + radec + specs[front:]


class DbnameError(DatabaseError, ConfigError):
    """A dbname that cannot name the campaign's tables (a config value and a database refusal)."""


TABLE_PREFIX_RE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9_]*)?$")


def check_table_prefix(prefix: object) -> str:
    """Return ``prefix`` lower-cased if it can start a table name ('' or a letter, then letters,
    digits and ``_``: ``'balrog_'`` gives DES's ``balrog_<dbname>_truth``), else raise."""
    if not isinstance(prefix, str) or not TABLE_PREFIX_RE.match(prefix):
        raise DbnameError(
            f"table prefix {prefix!r} is not allowed: '' or a letter, then letters, digits and "
            "underscores (e.g. 'balrog_' for DES's balrog_<dbname>_truth)"
        )
    return prefix.lower()


def _derived_names(dbname: str, prefix: str = "") -> list[str]:
    """Every identifier a dbname makes: its six tables and the indexes of the four per-object ones."""
    tables = [f"{prefix}{dbname}_{kind}" for kind in ALL_TABLES]
    return tables + [ix for t in tables[:len(CATALOG_KINDS)] for ix, _ in _index_names(t)]


def validate_dbname(dbname: object, dialect: Dialect | None = None, prefix: str = "") -> str:
    """Return ``dbname`` lower-cased if every table and index name it makes is valid, else raise.

    The one check for a campaign's dbname: balrog-push, the node runner's pusher, every
    table function and the config loader call it. A dbname must start with a letter
    (``''`` would make tables named ``_truth``; a leading ``_`` is refused by Oracle
    unquoted) and hold only letters, digits and ``_``; the longest name it makes,
    ``ix_<dbname>_truth_bi``, must fit :data:`PORTABLE_MAX_IDENTIFIER` (63 bytes: at most 51
    characters, 44 with the prefix ``'balrog_'``) on every backend, SQLite included, and the
    dialect's own limit when lower (30 bytes on Oracle before 12.2, known only once
    connected). ``prefix`` (``db['table-prefix']``) counts towards the length. Raises
    :class:`DbnameError`.
    """
    prefix = check_table_prefix(prefix)
    if not isinstance(dbname, str) or not IDENTIFIER_RE.match(dbname):
        raise DbnameError(
            f"dbname {dbname!r} is not allowed: use letters, digits and underscores, starting with a "
            f"letter (it names the tables {prefix}<dbname>_truth, _sim, _nosim, _match, _des, _pushed)"
        )
    own = getattr(dialect, "max_identifier_length", None) or DEFAULT_MAX_IDENTIFIER
    limit = min(own, PORTABLE_MAX_IDENTIFIER)
    longest = max(_derived_names(dbname, prefix), key=lambda n: len(n.encode()))
    if len(longest.encode()) > limit:
        where = (f"for {dialect.name}" if dialect is not None and own <= PORTABLE_MAX_IDENTIFIER
                 else "for every database (PostgreSQL's limit)")
        room = limit - (len(longest.encode()) - len(dbname.encode()))
        raise DbnameError(
            f"dbname {dbname!r} is too long {where}: it makes the name {longest} of "
            f"{len(longest.encode())} bytes, over the limit of {limit}; use at most {room} characters"
            + (f" with the table prefix {prefix!r}" if prefix else "")
        )
    return dbname.lower()


def table_names(dbname: str, dialect: Dialect | None = None, prefix: str = "") -> dict[str, str]:
    """The campaign's table names: truth, sim, nosim, match, des, pushed (checked identifiers).

    The one function that names tables (pushes, bookkeeping, DBoverwrite, the demo's
    counts): ``<prefix><dbname>_<kind>``, ``prefix`` being ``db['table-prefix']``.
    """
    validate_dbname(dbname, dialect, prefix)
    return {
        kind: check_identifier(f"{prefix}{dbname}_{kind}", dialect, "table name")
        for kind in ALL_TABLES
    }


def _index_names(table: str) -> list[tuple[str, tuple[str, ...]]]:
    return [(f"ix_{table}_bi", ("balrog_index",)), (f"ix_{table}_tr", ("tilename", "realization"))]


def _indexes(table: str, dialect: Dialect | None) -> list[tuple[str, tuple[str, ...]]]:
    return [(check_identifier(name, dialect, "index name"), cols) for name, cols in _index_names(table)]


def catalog_table(
    metadata: sa.MetaData, name: str, specs: Sequence[ColumnSpec], dialect: Dialect | None = None
) -> sa.Table:
    """A truth/sim/nosim/match table with indexes on balrog_index and (tilename, realization)."""
    table = sa.Table(name, metadata, *(sa.Column(s.db_name, s.dbtype.sqla()) for s in specs))
    for ix_name, cols in _indexes(name, dialect):
        sa.Index(ix_name, *(table.c[c] for c in cols))
    return table


def des_table(metadata: sa.MetaData, name: str, columns: ColumnList, dialect: Dialect | None = None) -> sa.Table:
    """The empty ``<dbname>_des`` table: every column of the DESDM list, with its type."""
    return sa.Table(
        name, metadata,
        *(sa.Column(check_identifier(n, dialect, "column"), t.sqla()) for n, t in columns.entries),
    )


def pushed_table(metadata: sa.MetaData, name: str) -> sa.Table:
    """Bookkeeping: one row per realization pushed, written in the same transaction as its rows.

    It is what ``balrog-push`` consults for "what is missing", and what makes a re-push of
    an identical realization a no-op under ``duplicate='error'``. ``pushed_at`` is UTC.
    """
    return sa.Table(
        name, metadata,
        sa.Column("tilename", sa.String(32), primary_key=True),
        sa.Column("realization", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("indexstart", sa.BigInteger, nullable=False),
        sa.Column("ntruth", sa.Integer, nullable=False),
        sa.Column("nsim", sa.Integer, nullable=False),
        sa.Column("nnosim", sa.Integer, nullable=False),
        sa.Column("pushed_at", sa.DateTime, nullable=False),
    )
