#!/usr/bin/env python3
"""Make a ``db-columns`` FITS file from a database table's description.

``run['db-columns']`` (and ``balrog-push --columns``) is a FITS table of DESDM-style column
descriptions -- ``column_name, type, length, precision, scale``, all strings, ``None`` for
an absent value, as ``config/y1a1_coadd_objects-columns.fits`` -- that decides which measured
SExtractor columns go into the database and fills the empty ``<dbname>_des`` table. Two
sources:

- ``--csv FILE``: a CSV export of Oracle's ``ALL_TAB_COLUMNS`` (or ``USER_TAB_COLUMNS``)
  with at least ``COLUMN_NAME, DATA_TYPE, DATA_LENGTH, DATA_PRECISION, DATA_SCALE`` (any
  case; rows in ``COLUMN_ID`` order when that column is there; ``--table`` keeps the rows
  of one ``TABLE_NAME``, ``--schema`` of one ``OWNER``), e.g. from easyaccess::

      SELECT column_name, data_type, data_length, data_precision, data_scale, column_id
      FROM all_tab_columns WHERE owner = 'DES_ADMIN' AND table_name = 'Y3A2_COADD_OBJECT_SUMMARY'

- ``--url URL --table NAME [--schema OWNER]``: reflect a live table with
  ``sqlalchemy.inspect`` (SQLite, PostgreSQL, Oracle; password from ~/.pgpass or the URL)
  and map its types to Oracle names.

Types written (what ``balrog_runner.db`` reads): ``BINARY_FLOAT`` (32-bit float),
``BINARY_DOUBLE`` (64-bit float), ``NUMBER`` (with precision, scale; scale 0 = integer),
``VARCHAR2``/``CHAR``/``NVARCHAR2`` (length in characters). Oracle ``FLOAT(b)`` becomes
BINARY_FLOAT for b <= 24 binary digits, else BINARY_DOUBLE; reflected integers become
NUMBER(5|10|19, 0), reflected floats BINARY_FLOAT (PostgreSQL REAL) or BINARY_DOUBLE
(SQLite REAL is 64-bit). Columns of other types (DATE, TIMESTAMP, CLOB, BLOB, ...) or with
names the database layer refuses are skipped with a warning; ``--strict`` makes them errors.
The output is checked by reading it with ``balrog_runner.db.read_column_list``.
"""

from __future__ import annotations

import argparse
import csv
import logging
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from balrog_runner.atomic import atomic_path  # noqa: E402
from balrog_runner.errors import BalrogError, ConfigError, InputFileError  # noqa: E402

PROG = "db_columns_from_table.py"
log = logging.getLogger(PROG)

#: What balrog_runner.db.schema accepts for a column name.
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
CSV_COLUMNS = ("COLUMN_NAME", "DATA_TYPE", "DATA_LENGTH", "DATA_PRECISION", "DATA_SCALE")
STRING_TYPES = {"VARCHAR2": "VARCHAR2", "VARCHAR": "VARCHAR2", "CHAR": "CHAR", "NVARCHAR2": "NVARCHAR2",
                "NCHAR": "CHAR"}


@dataclass(frozen=True)
class ColumnRow:
    """One output row, Oracle style; ``None`` means absent (written as the string 'None')."""

    column_name: str
    type: str
    length: int | None = None
    precision: int | None = None
    scale: int | None = None


class Skipped(Exception):
    """A column the db-columns format cannot describe (reason in the message)."""


# ----------------------------------------------------------------------------- Oracle names


def _int(text: object, what: str, name: str) -> int | None:
    s = "" if text is None else str(text).strip()
    if s in ("", "None", "NULL", "null"):
        return None
    try:
        return int(float(s))
    except ValueError:
        raise InputFileError(f"column {name}: {what} {s!r} is not an integer") from None


def from_oracle(name: str, data_type: str, length: object, precision: object, scale: object) -> ColumnRow:
    """One ``ALL_TAB_COLUMNS`` row as a db-columns row (raises :class:`Skipped`)."""
    name = name.strip().upper()
    if not NAME_RE.match(name):
        raise Skipped(f"{name!r} is not a plain column name (letters, digits, _)")
    otype = re.sub(r"\(.*\)", "", data_type.strip().upper()).strip()
    n, p, s = _int(length, "DATA_LENGTH", name), _int(precision, "DATA_PRECISION", name), _int(scale, "DATA_SCALE", name)
    if otype == "BINARY_FLOAT":
        return ColumnRow(name, "BINARY_FLOAT", n or 4)
    if otype == "BINARY_DOUBLE":
        return ColumnRow(name, "BINARY_DOUBLE", n or 8)
    if otype in ("NUMBER", "INTEGER", "SMALLINT", "DECIMAL", "NUMERIC"):
        if otype in ("INTEGER", "SMALLINT"):
            s = 0
        return ColumnRow(name, "NUMBER", n or 22, p, s)
    if otype == "FLOAT":  # Oracle FLOAT(b): b is binary precision (126 by default)
        return ColumnRow(name, "BINARY_FLOAT", 4) if p is not None and p <= 24 else ColumnRow(name, "BINARY_DOUBLE", 8)
    if otype in STRING_TYPES:
        return ColumnRow(name, STRING_TYPES[otype], n or 1)
    raise Skipped(f"type {data_type.strip()} is not one of BINARY_FLOAT, BINARY_DOUBLE, NUMBER, FLOAT, VARCHAR2, CHAR")


def rows_from_csv(path: str | Path, table: str | None = None, schema: str | None = None) -> list[tuple[str, object]]:
    """(column name, ColumnRow or Skipped) per row of an ALL_TAB_COLUMNS CSV export."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = {h.strip().upper(): h for h in (reader.fieldnames or [])}
            missing = [c for c in CSV_COLUMNS if c not in header]
            if missing:
                raise InputFileError(
                    f"{path} lacks the ALL_TAB_COLUMNS columns {', '.join(missing)} "
                    f"(has: {', '.join(header) or 'nothing'})"
                )
            records = list(reader)
    except FileNotFoundError:
        raise InputFileError(f"CSV file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputFileError(f"cannot read CSV file {path}: {exc}") from None

    def get(rec: dict, col: str) -> str:
        return (rec.get(header[col]) or "").strip() if col in header else ""

    for col, want in (("TABLE_NAME", table), ("OWNER", schema)):
        if want is not None:
            if col not in header:
                raise ConfigError(f"{path} has no {col} column to select {want!r} with")
            records = [r for r in records if get(r, col).upper() == want.upper()]
    if not records:
        raise InputFileError(f"{path}: no column rows" + (f" for table {table}" if table else ""))
    if "COLUMN_ID" in header:
        records.sort(key=lambda r: _int(get(r, "COLUMN_ID"), "COLUMN_ID", get(r, "COLUMN_NAME")) or 0)
    out: list[tuple[str, object]] = []
    for rec in records:
        name = get(rec, "COLUMN_NAME")
        try:
            out.append((name, from_oracle(name, get(rec, "DATA_TYPE"), get(rec, "DATA_LENGTH"),
                                          get(rec, "DATA_PRECISION"), get(rec, "DATA_SCALE"))))
        except Skipped as exc:
            out.append((name, exc))
    return out


# ----------------------------------------------------------------------------- reflection


def from_sqlalchemy(name: str, satype, dialect_name: str) -> ColumnRow:
    """A reflected SQLAlchemy column type as a db-columns row (raises :class:`Skipped`)."""
    import sqlalchemy as sa
    from sqlalchemy.dialects import oracle

    uname = name.upper()
    if not NAME_RE.match(uname):
        raise Skipped(f"{name!r} is not a plain column name (letters, digits, _)")
    if isinstance(satype, oracle.BINARY_DOUBLE):
        return ColumnRow(uname, "BINARY_DOUBLE", 8)
    if isinstance(satype, oracle.BINARY_FLOAT):
        return ColumnRow(uname, "BINARY_FLOAT", 4)
    if isinstance(satype, sa.Float):  # before Numeric: Float is a Numeric
        if dialect_name == "sqlite" or isinstance(satype, sa.Double | sa.DOUBLE_PRECISION):
            return ColumnRow(uname, "BINARY_DOUBLE", 8)
        if isinstance(satype, sa.REAL):
            return ColumnRow(uname, "BINARY_FLOAT", 4)
        # Oracle FLOAT(b) gives binary digits; other dialects' FLOAT(p) too (SQL standard)
        bits = getattr(satype, "binary_precision", None) or satype.precision
        return ColumnRow(uname, "BINARY_FLOAT", 4) if bits is not None and bits <= 24 else ColumnRow(uname, "BINARY_DOUBLE", 8)
    if isinstance(satype, oracle.NUMBER):  # also an Integer in SQLAlchemy: keep its digits
        return ColumnRow(uname, "NUMBER", 22, satype.precision, satype.scale)
    if isinstance(satype, sa.Boolean):
        return ColumnRow(uname, "NUMBER", 22, 1, 0)
    if isinstance(satype, sa.Integer):
        if dialect_name == "sqlite" or isinstance(satype, sa.BigInteger):
            digits = 19
        elif isinstance(satype, sa.SmallInteger):
            digits = 5
        else:
            digits = 10
        return ColumnRow(uname, "NUMBER", 22, digits, 0)
    if isinstance(satype, sa.Numeric):
        return ColumnRow(uname, "NUMBER", 22, satype.precision, satype.scale)
    if isinstance(satype, sa.String) and not isinstance(satype, sa.Text | sa.Enum):
        if not satype.length:
            raise Skipped("a string column without a length (TEXT/CLOB)")
        kind = "CHAR" if isinstance(satype, sa.CHAR | sa.NCHAR) else "VARCHAR2"
        return ColumnRow(uname, kind, int(satype.length))
    raise Skipped(f"type {satype} has no db-columns equivalent")


def rows_from_database(url: str, table: str, schema: str | None = None) -> list[tuple[str, object]]:
    """(column name, ColumnRow or Skipped) per column of a live table, in table order."""
    import sqlalchemy as sa

    from balrog_runner.db import make_engine, safe_url
    from balrog_runner.db.url import db_errors

    engine = make_engine(url)
    try:
        with db_errors(engine, f"reading the columns of {table}"):
            insp = sa.inspect(engine)
            names = insp.get_table_names(schema=schema)
            lookup = {n.lower(): n for n in names}
            if table.lower() not in lookup:
                raise InputFileError(
                    f"no table {table} in {safe_url(engine.url)}" + (f" schema {schema}" if schema else "")
                    + f" (tables: {', '.join(sorted(names)[:20]) or 'none'})"
                )
            columns = insp.get_columns(lookup[table.lower()], schema=schema)
        out: list[tuple[str, object]] = []
        for col in columns:
            try:
                out.append((col["name"], from_sqlalchemy(col["name"], col["type"], engine.dialect.name)))
            except Skipped as exc:
                out.append((col["name"], exc))
        return out
    finally:
        engine.dispose()


# ----------------------------------------------------------------------------- output


def write_columns_fits(rows: Sequence[ColumnRow], path: str | Path) -> Path:
    """The db-columns FITS table: string columns column_name, type, length, precision, scale."""
    import numpy as np
    from astropy.table import Table

    def text(v: object) -> str:
        return "None" if v is None else str(v)

    table = Table()
    for field in ("column_name", "type", "length", "precision", "scale"):
        values = [text(getattr(r, field)) for r in rows]
        width = max(len(v) for v in values)
        table[field] = np.array(values, dtype=f"U{width}")
    path = Path(path)
    with atomic_path(path) as tmp:
        table.write(tmp, format="fits")
    return path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0],
                                epilog="See the module docstring for the type mapping.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--csv", metavar="FILE",
                     help="CSV export of ALL_TAB_COLUMNS (COLUMN_NAME, DATA_TYPE, DATA_LENGTH, DATA_PRECISION, DATA_SCALE)")
    src.add_argument("--url", metavar="URL", help="SQLAlchemy URL of the database to reflect the table from")
    p.add_argument("--table", metavar="NAME", help="table name (required with --url; with --csv: keep its TABLE_NAME rows)")
    p.add_argument("--schema", metavar="OWNER", help="schema / owner of the table (default: the user's)")
    p.add_argument("--strict", action="store_true", help="fail on columns that cannot be described instead of skipping them")
    p.add_argument("-o", "--output", required=True, metavar="FITS", help="db-columns FITS file to write")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.url is not None:
            if not args.table:
                raise ConfigError("--url needs --table NAME")
            described = rows_from_database(args.url, args.table, args.schema)
        else:
            described = rows_from_csv(args.csv, args.table, args.schema)
        skipped = [(n, r) for n, r in described if isinstance(r, Skipped)]
        rows = [r for _, r in described if isinstance(r, ColumnRow)]
        if skipped and args.strict:
            raise ConfigError("cannot describe " + "; ".join(f"{n}: {r}" for n, r in skipped))
        for n, why in skipped:
            log.warning("skipped column %s: %s", n, why)
        if not rows:
            raise InputFileError("no column could be described; nothing to write")
        counts = Counter(r.column_name for r in rows)
        dups = sorted(n for n, c in counts.items() if c > 1)
        if dups:
            raise InputFileError(f"columns listed twice: {', '.join(dups)} (select one table with --table / --schema)")
        out = write_columns_fits(rows, args.output)
        from balrog_runner.db import read_column_list

        read_column_list(out)  # the database layer must accept what we wrote
    except BalrogError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    if not args.quiet:
        print(f"{PROG}: {len(rows)} columns -> {out}" + (f" ({len(skipped)} skipped)" if skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
