"""One realization's truth, match, sim and nosim rows joined on ``balrog_index``, and apart again.

The merged tables (DEVELOPING.md, "Merged catalogs"), after DES Y3 Balrog's detection and
matched catalogs:

* ``OBJECTS``: one row per truth row (every injected object, in the truth's order): the
  truth columns, the match columns (without its ``balrog_index``) and ``detection_row``,
  the object's row in ``DETECTIONS`` (-1: not detected).
* ``DETECTIONS``: one row per detected injected object: its truth and match columns again,
  ``sim_row`` (the row in the realization's sim catalog) and the sim columns of its own
  detection: the nearest (``X_IMAGE_DET``, ``Y_IMAGE_DET`` to the truth ``x``, ``y``) of the
  sim rows carrying the object's ``balrog_index``, the one the match table's ``det_dist``
  describes. Truth and measurement side by side, without empty cells for the undetected.
* ``SIM_OTHER``: every other sim row, columns as in the catalog after ``cat_row`` (its row
  number): pre-existing objects (``balrog_index`` -1: an unrestricted run's, or the
  restricted run's listed neighbours), the second piece of a shredded object, and rows whose
  ``tilename``/``realization``/``indexstart`` differ from the truth's (never seen; kept
  apart so that nothing is lost).
* ``NOSIM``: every nosim row (the pre-existing detections within 2 px of an injected
  object, keyed by that object's ``balrog_index``), as in the catalogs.

With every column kept, :func:`split` gives back each catalog exactly (the digests of
:func:`table_digest` match), which is what lets the runner delete the per-realization files
after a merge. With selected columns (:class:`ColumnSelection`) the file is for analysis only.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, InputFileError

KINDS = ("truth", "match", "sim", "nosim")
OBJECTS, DETECTIONS, SIM_OTHER, NOSIM = "OBJECTS", "DETECTIONS", "SIM_OTHER", "NOSIM"
ROW_TABLES = (OBJECTS, DETECTIONS, SIM_OTHER, NOSIM)
#: The per-object columns every truth / sim / nosim catalog starts with (measure.FRONT_COLUMNS).
FRONT = ("balrog_index", "tilename", "realization", "indexstart")
DETECTION_ROW, SIM_ROW, CAT_ROW = "detection_row", "sim_row", "cat_row"
#: Columns kept whatever ``--columns`` says: what identifies a row and says where it came from.
REQUIRED = {OBJECTS: {*FRONT, DETECTION_ROW}, DETECTIONS: {*FRONT, SIM_ROW},
            SIM_OTHER: {*FRONT, CAT_ROW, "NUMBER"}, NOSIM: {*FRONT, "NUMBER"}}
_BAND_RE = re.compile(r"^(?P<base>.+?)(?:_\d+)?_(?:[GRIZY]|DET)$", re.IGNORECASE)


@dataclass(frozen=True)
class ColumnSelection:
    """Which columns a merged file keeps: names or shell patterns, case-insensitive.

    A pattern matches a column's name or its base name (the name without the band suffix
    and vector index: ``MAG_AUTO`` keeps ``MAG_AUTO_G`` ... ``MAG_AUTO_DET``, ``MAG_APER``
    every ``MAG_APER_<k>_<B>``, ``mag`` every ``mag_<b>``), in every table that has it.
    """

    patterns: tuple[str, ...]

    @classmethod
    def parse(cls, values: Iterable[str]) -> ColumnSelection:
        patterns = tuple(p.strip() for v in values for p in str(v).split(",") if p.strip())
        if not patterns:
            raise ConfigError("--columns lists no column (give names or patterns, comma-separated)")
        return cls(patterns)

    def keeps(self, *names: str) -> bool:
        candidates = set()
        for name in names:
            if not name:
                continue
            candidates.add(name.lower())
            m = _BAND_RE.match(name)
            if m:
                candidates.add(m["base"].lower())
        return any(fnmatch.fnmatchcase(c, p.lower()) for p in self.patterns for c in candidates)

    def describe(self) -> str:
        return ",".join(self.patterns)


@dataclass(frozen=True)
class Column:
    """One column of a merged table and where its values come from."""

    table: str
    name: str
    #: ``truth`` / ``match`` / ``sim`` / ``nosim``, or ``""`` for a column the join adds.
    kind: str
    source: str
    dtype: str


def _shape_and_base(dt: np.dtype, name: str) -> tuple[np.dtype, tuple[int, ...]]:
    field = dt[name]
    return field.base, field.shape


@dataclass(frozen=True)
class JoinPlan:
    """The merged tables' columns, made from the catalogs' dtypes (the same for every realization)."""

    sources: Mapping[str, np.dtype | None]
    columns: tuple[Column, ...]
    lossless: bool

    @classmethod
    def build(cls, sources: Mapping[str, np.dtype | None], select: ColumnSelection | None = None) -> JoinPlan:
        """The plan for catalogs with these dtypes (``sources['match']`` may be None)."""
        for kind in ("truth", "sim", "nosim"):
            dt = sources.get(kind)
            if dt is None or not dt.names:
                raise InputFileError(f"no {kind} catalog columns to merge")
            missing = [n for n in FRONT if n not in dt.names]
            if missing:
                raise InputFileError(f"{kind} catalog lacks the column(s) {', '.join(missing)}")
        match = sources.get("match")
        if match is not None and "balrog_index" not in (match.names or ()):
            raise InputFileError("match catalog lacks the balrog_index column")
        cols: list[Column] = []

        def add(table: str, name: str, kind: str, source: str, dt: np.dtype) -> None:
            keep = name in REQUIRED[table] or select is None or select.keeps(name, source)
            if keep:
                cols.append(Column(table, name, kind, source, _field_descr(dt, source)))

        truth = sources["truth"]
        for table, row_col in ((OBJECTS, DETECTION_ROW), (DETECTIONS, SIM_ROW)):
            for n in truth.names:
                add(table, n, "truth", n, truth)
            if match is not None:
                for n in match.names:
                    if n != "balrog_index":
                        add(table, n, "match", n, match)
            cols.append(Column(table, row_col, "", "", "<i8"))
        for n in sources["sim"].names:
            if n not in FRONT:
                add(DETECTIONS, n, "sim", n, sources["sim"])
        cols.append(Column(SIM_OTHER, CAT_ROW, "", "", "<i8"))
        for n in sources["sim"].names:
            add(SIM_OTHER, n, "sim", n, sources["sim"])
        for n in sources["nosim"].names:
            add(NOSIM, n, "nosim", n, sources["nosim"])
        plan = cls(dict(sources), tuple(cols), lossless=select is None)
        plan._check_unique()
        return plan

    def _check_unique(self) -> None:
        for table in ROW_TABLES:
            seen: dict[str, str] = {}
            for c in self.table_columns(table):
                key = c.name.lower()
                if key in seen:
                    raise InputFileError(f"merged table {table} would have two columns {seen[key]!r} and {c.name!r} "
                                         f"({c.kind or 'join'} {c.source or c.name}): names must differ in more than case")
                seen[key] = c.name

    def table_columns(self, table: str) -> list[Column]:
        return [c for c in self.columns if c.table == table]

    def groups(self, table: str) -> list[tuple[str, list[str]]]:
        """The table's columns in groups that belong together (a FITS HDU holds at most 999 columns).

        DETECTIONS: the truth and match columns with ``sim_row``, then the sim columns; every
        other table is one group.
        """
        names = [c.name for c in self.table_columns(table)]
        if table != DETECTIONS:
            return [("", names)]
        sim = {c.name for c in self.table_columns(table) if c.kind == "sim"}
        return [("", [n for n in names if n not in sim]), ("SIM", [n for n in names if n in sim])]

    def table_dtype(self, table: str) -> np.dtype:
        return np.dtype([_descr_item(c.name, c.dtype) for c in self.table_columns(table)])

    def check_sources(self, sources: Mapping[str, np.dtype | None], where: str) -> None:
        """Refuse catalogs whose columns differ from the plan's (one merged file, one schema)."""
        for kind in KINDS:
            want, got = self.sources.get(kind), sources.get(kind)
            if kind == "match" and (got is None or want is None):
                if got is not None and want is None:
                    raise InputFileError(f"{where}: has a match catalog, the realizations merged before it have none")
                continue
            if want != got:
                diff = _describe_difference(want, got)
                raise InputFileError(f"{where}: its {kind} catalog has other columns than the first realization's "
                                     f"({diff}); merge catalogs made with one configuration")

    # ---------------------------------------------------------------- the COLUMNS table

    def as_array(self) -> np.ndarray:
        """The ``COLUMNS`` table: every merged column with its source kind, name and dtype."""
        width = max([8, *(len(c.name) for c in self.columns), *(len(c.source) for c in self.columns)])
        out = np.zeros(len(self.columns), dtype=[("table", "U12"), ("name", f"U{width}"), ("kind", "U8"),
                                                  ("source", f"U{width}"), ("dtype", "U16")])
        for k, c in enumerate(self.columns):
            out[k] = (c.table, c.name, c.kind, c.source, c.dtype)
        return out

    @classmethod
    def from_array(cls, table: np.ndarray, sources: Mapping[str, np.dtype | None], lossless: bool) -> JoinPlan:
        cols = tuple(Column(*(_text(row[f]) for f in ("table", "name", "kind", "source", "dtype"))) for row in table)
        return cls(dict(sources), cols, lossless)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _field_descr(dt: np.dtype, name: str) -> str:
    base, shape = _shape_and_base(dt, name)
    return base.str if not shape else f"{shape}{base.str}"


def _descr_item(name: str, descr: str) -> tuple:
    if descr.startswith("("):
        shape_text, base = descr[1:].split(")", 1)
        shape = tuple(int(s) for s in shape_text.split(",") if s.strip())
        return (name, base, shape)
    return (name, descr)


def _describe_difference(want: np.dtype | None, got: np.dtype | None) -> str:
    if want is None or got is None:
        return "one of them is missing"
    a, b = list(want.names or ()), list(got.names or ())
    extra, lost = [n for n in b if n not in a], [n for n in a if n not in b]
    if extra or lost:
        return "; ".join(p for p in (f"extra {', '.join(extra[:5])}" if extra else "",
                                     f"missing {', '.join(lost[:5])}" if lost else "") if p)
    changed = [n for n in a if want[n] != got[n]]
    if changed:
        return f"{changed[0]} is {got[changed[0]]}, was {want[changed[0]]}"
    return "the column order differs"


def source_dtypes(tables: Mapping[str, np.ndarray | None]) -> dict[str, np.dtype | None]:
    return {k: (None if tables.get(k) is None else tables[k].dtype) for k in KINDS}


# ------------------------------------------------------------------------------ joining


def _own_rows(index: np.ndarray, tx: np.ndarray, ty: np.ndarray, rows: np.ndarray,
              truth: np.ndarray) -> np.ndarray:
    """Per truth row, the catalog row it joins (nearest of those with its index and its labels), -1 for none."""
    n = len(index)
    own = np.full(n, -1, dtype=np.int64)
    if len(rows) == 0 or n == 0:
        return own
    order = np.argsort(index, kind="stable")
    sorted_index = index[order]
    bi = np.asarray(rows["balrog_index"], dtype=np.int64)
    pos = np.clip(np.searchsorted(sorted_index, bi), 0, n - 1)
    k = order[pos]
    ok = (bi >= 0) & (sorted_index[pos] == bi)
    for label in FRONT[1:]:  # a row labelled with another tile / realization is not this object's
        ok &= _same(rows[label], truth[label][k])
    cand = np.flatnonzero(ok)
    if not len(cand):
        return own
    names = rows.dtype.names
    if "X_IMAGE_DET" in names and "Y_IMAGE_DET" in names:
        d = np.hypot(np.asarray(rows["X_IMAGE_DET"][cand], float) - tx[k[cand]],
                     np.asarray(rows["Y_IMAGE_DET"][cand], float) - ty[k[cand]])
        d = np.where(np.isfinite(d), d, np.inf)
    else:
        d = np.zeros(len(cand))
    pick = np.lexsort((cand, d, k[cand]))  # per object: nearest first, then the earlier row
    first = np.unique(k[cand][pick], return_index=True)[1]
    chosen = cand[pick][first]
    own[k[chosen]] = chosen
    return own


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind in "SU" or b.dtype.kind in "SU":
        return np.char.rstrip(_as_str(a)) == np.char.rstrip(_as_str(b))
    return np.asarray(a) == np.asarray(b)


def _as_str(a: np.ndarray) -> np.ndarray:
    return np.char.decode(a, "ascii", errors="replace") if a.dtype.kind == "S" else a.astype(str)


def join(plan: JoinPlan, truth: np.ndarray, match: np.ndarray | None, sim: np.ndarray,
         nosim: np.ndarray) -> dict[str, np.ndarray]:
    """One realization's rows of each merged table (module docstring); ``detection_row`` counts from 0."""
    n = len(truth)
    index = np.asarray(truth["balrog_index"], dtype=np.int64)
    if len(np.unique(index)) != n:
        raise InputFileError("truth catalog has a balrog_index twice: the rows cannot be joined on it")
    if match is not None and not np.array_equal(np.asarray(match["balrog_index"], dtype=np.int64), index):
        raise InputFileError(f"match catalog does not hold one row per truth row ({len(match)} rows, truth {n}; "
                             "balrog_index must be the truth's, in order)")
    tx = np.asarray(truth["x"], float) if "x" in truth.dtype.names else np.zeros(n)
    ty = np.asarray(truth["y"], float) if "y" in truth.dtype.names else np.zeros(n)
    sources: dict[str, np.ndarray | None] = {"truth": truth, "match": match}
    own = _own_rows(index, tx, ty, sim, truth)
    detected = np.flatnonzero(own >= 0)
    objects = np.zeros(n, dtype=plan.table_dtype(OBJECTS))
    found = np.zeros(len(detected), dtype=plan.table_dtype(DETECTIONS))
    for table, rows, at in ((OBJECTS, objects, slice(None)), (DETECTIONS, found, detected)):
        for c in plan.table_columns(table):
            if c.kind in sources and sources[c.kind] is not None:
                rows[c.name] = sources[c.kind][c.source][at]
    objects[DETECTION_ROW] = -1
    objects[DETECTION_ROW][detected] = np.arange(len(detected))  # within the realization: the writer shifts it
    found[SIM_ROW] = own[detected]
    for c in plan.table_columns(DETECTIONS):
        if c.kind == "sim":
            found[c.name] = sim[c.source][own[detected]]
    rest = np.setdiff1d(np.arange(len(sim)), own[detected], assume_unique=True)
    other = np.zeros(len(rest), dtype=plan.table_dtype(SIM_OTHER))
    other[CAT_ROW] = rest
    for c in plan.table_columns(SIM_OTHER):
        if c.kind == "sim":
            other[c.name] = sim[c.source][rest]
    pre = np.zeros(len(nosim), dtype=plan.table_dtype(NOSIM))
    for c in plan.table_columns(NOSIM):
        pre[c.name] = nosim[c.source]
    return {OBJECTS: objects, DETECTIONS: found, SIM_OTHER: other, NOSIM: pre}


def split(plan: JoinPlan, objects: np.ndarray, detections: np.ndarray, sim_other: np.ndarray, nosim: np.ndarray,
          has_match: bool, where: str) -> dict[str, np.ndarray | None]:
    """The realization's four catalogs from its merged rows (only for a plan keeping every column)."""
    if not plan.lossless:
        raise InputFileError(f"{where} was merged with selected columns: it cannot give back the catalogs")
    n = len(objects)
    truth = np.empty(n, dtype=plan.sources["truth"])
    cols = plan.table_columns(OBJECTS)
    for c in cols:
        if c.kind == "truth":
            truth[c.source] = objects[c.name]
    match = None
    if has_match:
        if plan.sources.get("match") is None:
            raise InputFileError(f"{where}: a realization has a match table but the file has no match columns")
        match = np.empty(n, dtype=plan.sources["match"])
        match["balrog_index"] = objects["balrog_index"]
        for c in cols:
            if c.kind == "match":
                match[c.source] = objects[c.name]
    rows_at = np.asarray(detections[SIM_ROW], dtype=np.int64)
    other_at = np.asarray(sim_other[CAT_ROW], dtype=np.int64)
    total = len(detections) + len(sim_other)
    if not np.array_equal(np.sort(np.concatenate([rows_at, other_at])), np.arange(total)):
        raise InputFileError(f"{where}: the sim rows' {SIM_ROW}/{CAT_ROW} numbers are not 0..{total - 1}: "
                             "the merged file is damaged")
    sim = np.empty(total, dtype=plan.sources["sim"])
    for name in FRONT:
        sim[name][rows_at] = detections[name]
    for c in plan.table_columns(DETECTIONS):
        if c.kind == "sim":
            sim[c.source][rows_at] = detections[c.name]
    for name in sim.dtype.names:
        sim[name][other_at] = sim_other[name]
    pre = np.empty(len(nosim), dtype=plan.sources["nosim"])
    for name in pre.dtype.names:
        pre[name] = nosim[name]
    return {"truth": truth, "match": match, "sim": sim, "nosim": pre}


# ------------------------------------------------------------------------------ digests


def _canonical_dtype(dt: np.dtype) -> np.dtype:
    """Big-endian numbers, byte strings: one form whatever the file format gave back."""
    fields = []
    for name in dt.names:
        base, shape = _shape_and_base(dt, name)
        if base.kind == "U":
            base = np.dtype(f"S{max(1, base.itemsize // 4)}")
        elif base.kind in "iufc" and base.itemsize > 1:
            base = base.newbyteorder(">")
        fields.append((name, base, shape) if shape else (name, base))
    return np.dtype(fields)


def canonical(table: np.ndarray) -> np.ndarray:
    """``table`` in :func:`_canonical_dtype`, packed (strings encoded as ASCII)."""
    dt = _canonical_dtype(table.dtype)
    out = np.empty(len(table), dtype=dt)
    for name in dt.names:
        col = table[name]
        if col.dtype.kind == "U":
            col = np.char.encode(col, "ascii")
        out[name] = col
    return out


class TableDigest:
    """sha256 of a table's column names, types and rows, fed in row chunks of any size."""

    def __init__(self, dtype: np.dtype):
        self._dtype = _canonical_dtype(dtype)
        self._sha = hashlib.sha256(repr([(n, self._dtype[n].str, self._dtype[n].shape)
                                         for n in self._dtype.names]).encode())
        self.rows = 0

    def update(self, rows: np.ndarray) -> None:
        if rows.dtype.names != self._dtype.names:
            raise InputFileError("digest of a table fed rows with other columns")
        self._sha.update(canonical(rows).tobytes())
        self.rows += len(rows)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def table_digest(table: np.ndarray) -> str:
    d = TableDigest(table.dtype)
    d.update(table)
    return d.hexdigest()


def row_bytes(dtype: np.dtype) -> int:
    return max(1, int(dtype.itemsize))


def chunk_rows(dtype: np.dtype, budget: int = 32 << 20) -> int:
    """Rows per chunk so that one chunk of ``dtype`` stays within ``budget`` bytes."""
    return max(1, budget // row_bytes(dtype))
