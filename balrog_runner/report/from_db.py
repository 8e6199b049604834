"""Counting a campaign from its database: one SQL ``GROUP BY`` per counted table.

The campaign's tables (``<prefix><dbname>_truth``, ``_sim``, ``_nosim``, ``_match``) are
joined into one row per truth object with the summary's columns (:mod:`..node.summary`):

* the sim detection associated with it with the lowest ``number_sex``
  (``ROW_NUMBER() OVER (PARTITION BY tilename, realization, balrog_index ORDER BY number_sex)``);
* ``blended`` when the realization's nosim table associates a detection with it;
* ``blend_class`` from the match table (-1 without one);

and each table of :mod:`.accumulate` is counted by the database with the formulas of
:mod:`.exprs` compiled to SQL: the rows that come back are the occupied bins, never the
objects. SQLAlchemy Core compiles the same statements for SQLite, PostgreSQL and Oracle.

The database does not keep what the catalog headers say (software versions) nor the
runner's records (seconds, failures): with the campaign directory at hand, those come
from its ``status.json`` files and, for the versions, one summary header per tile.
Bands come from the truth table's ``mag_<b>`` columns, in lower case (as the database
folds them) but for DES's ``Y``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..db.schema import table_names, validate_dbname
from ..db.url import db_errors, safe_url
from ..errors import InputFileError
from ..node import summary as node_summary
from ..node.summary import PIXEL_SCALE_ARCSEC
from . import accumulate as acc
from . import exprs as ex
from .campaign_dir import Missing, find_missing, read_statuses, tile_directories
from .from_files import HEADER_KEYS, CampaignInfo

log = logging.getLogger(__name__)

#: Rows fetched at a time from a result (the occupied bins).
FETCH_ROWS = 100_000
#: Math functions the report's SQL calls; SQLite builds without them get Python's.
SQLITE_FUNCTIONS = {"floor": (1, math.floor), "cos": (1, math.cos), "sqrt": (1, math.sqrt),
                    "log10": (1, math.log10)}


def band_name(column_band: str) -> str:
    """A band as the database spells it (lower case) -> as the catalogs do: DES's ``Y`` is upper case."""
    return "Y" if column_band == "y" else column_band


def add_sqlite_functions(engine: Engine) -> None:
    """Give an SQLite without math functions (``-DSQLITE_ENABLE_MATH_FUNCTIONS``) Python's."""
    if engine.dialect.name != "sqlite":
        return

    @sa.event.listens_for(engine, "connect")
    def _register(dbapi_conn, _record) -> None:  # pragma: no cover - depends on the SQLite build
        try:
            dbapi_conn.execute("SELECT floor(1.5), cos(0), sqrt(4), log10(10)")
        except Exception:  # noqa: BLE001 - any failure: the functions are not there
            for name, (nargs, fn) in SQLITE_FUNCTIONS.items():
                dbapi_conn.create_function(name, nargs, lambda x, f=fn: None if x is None else float(f(x)),
                                           deterministic=True)


def _columns(insp, table: str) -> list[str]:
    return [c["name"].lower() for c in insp.get_columns(table)]


class CampaignTables:
    """The campaign's tables as found in the database, and the per-object join over them."""

    def __init__(self, engine: Engine, dbname: str, prefix: str = "") -> None:
        self.engine = engine
        self.dbname = validate_dbname(dbname, engine.dialect, prefix)
        self.names = table_names(dbname, engine.dialect, prefix)
        with db_errors(engine, f"reading the {prefix}{dbname} tables"):
            insp = sa.inspect(engine)
            existing = {n.lower() for n in insp.get_table_names()}
            for kind in ("truth", "sim", "nosim"):
                if self.names[kind] not in existing:
                    raise InputFileError(f"database {safe_url(engine.url)} has no table {self.names[kind]}: "
                                         f"nothing of campaign {prefix}{dbname} was pushed there")
            self.cols = {kind: _columns(insp, self.names[kind]) for kind in ("truth", "sim", "nosim")}
            self.has_match = self.names["match"] in existing and "blend_class" in _columns(insp, self.names["match"])
            self.has_pushed = self.names["pushed"] in existing
        md = sa.MetaData()
        self.t = {kind: sa.Table(self.names[kind], md, *(sa.Column(c) for c in self.cols[kind]))
                  for kind in ("truth", "sim", "nosim")}
        if self.has_match:
            self.t["match"] = sa.Table(self.names["match"], md, sa.Column("tilename"), sa.Column("realization"),
                                       sa.Column("balrog_index"), sa.Column("blend_class"))
        self.db_bands = [c[4:] for c in self.cols["truth"] if c.startswith("mag_")]
        self.bands = [band_name(b) for b in self.db_bands]
        self.spread_bands = [band_name(b) for b in self.db_bands
                             if f"spread_model_{b}" in self.cols["sim"] and f"spreaderr_model_{b}" in self.cols["sim"]]
        self.has_offsets = {"xwin_image_det", "ywin_image_det"} <= set(self.cols["sim"])

    def objects(self) -> sa.Subquery:
        """One row per truth object with the summary's columns (module docstring)."""
        truth, sim, nosim = self.t["truth"], self.t["sim"], self.t["nosim"]
        tc, sc = truth.c, set(self.cols["sim"])
        keys = ("tilename", "realization", "balrog_index")
        order = sim.c.number_sex if "number_sex" in sc else sim.c.balrog_index
        sim_cols = [sim.c[k] for k in keys]
        for b in self.db_bands:
            sim_cols += [sim.c[f"{c}_{b}"] for c in ("mag_auto", "spread_model", "spreaderr_model") if f"{c}_{b}" in sc]
        if self.has_offsets:
            sim_cols += [sim.c.xwin_image_det, sim.c.ywin_image_det]
        ranked = sa.select(*sim_cols, sa.func.row_number().over(
            partition_by=[sim.c[k] for k in keys], order_by=order).label("rn")).where(sim.c.balrog_index >= 0).subquery("s")
        first = sa.select(*(ranked.c[c.name] for c in sim_cols)).where(ranked.c.rn == 1).subquery("s1")
        pre = sa.select(*(nosim.c[k] for k in keys)).where(nosim.c.balrog_index >= 0).distinct().subquery("n")

        def on(other) -> sa.ColumnElement:
            return sa.and_(*(other.c[k] == tc[k] for k in keys))

        joined = truth.outerjoin(first, on(first)).outerjoin(pre, on(pre))
        if self.has_match:
            match = self.t["match"]
            joined = joined.outerjoin(match, on(match))
            blend_class = sa.func.coalesce(match.c.blend_class, -1)
        else:
            blend_class = sa.literal_column("-1")
        tcols = set(self.cols["truth"])
        recovered = first.c.balrog_index.is_not(None)
        cols = [tc.tilename.label("tile"), tc.realization.label("realization"),
                (tc.indexstart if "indexstart" in tcols else tc.balrog_index).label("indexstart"),
                tc.ra.label("ra"), tc.dec.label("dec"),
                (tc.not_drawn if "not_drawn" in tcols else sa.literal_column("0")).label("not_drawn"),
                (tc.masked if "masked" in tcols else sa.literal_column("0")).label("masked"),
                (tc.objtype if "objtype" in tcols else sa.literal_column("-1")).label("objtype"),
                self._size(tc, tcols).label("size"),
                sa.case((recovered, 1), else_=0).label("recovered"),
                sa.case((pre.c.balrog_index.is_not(None), 1), else_=0).label("blended"),
                blend_class.label("blend_class")]
        if self.has_offsets:
            dx, dy = first.c.xwin_image_det - tc.x, first.c.ywin_image_det - tc.y
            cols.append((ex.SQL.sqrt(dx * dx + dy * dy) * PIXEL_SCALE_ARCSEC).label("offset"))
        else:
            cols.append(sa.null().label("offset"))
        for b, name in zip(self.db_bands, self.bands, strict=True):
            cols.append(tc[f"mag_{b}"].label(f"mag_{name}"))
            if f"mag_auto_{b}" in first.c:
                meas = first.c[f"mag_auto_{b}"]
                cols.append(sa.case((meas < 99.0, meas), else_=sa.null()).label(f"mag_auto_{name}"))
            else:
                cols.append(sa.null().label(f"mag_auto_{name}"))
            if name in self.spread_bands:
                for c in ("spread_model", "spreaderr_model"):
                    cols.append(first.c[f"{c}_{b}"].label(f"{c}_{name}"))
        return sa.select(*cols).select_from(joined).subquery("objects")

    @staticmethod
    def _size(tc, tcols: set[str]) -> sa.ColumnElement:
        """:func:`..node.summary.object_size` in SQL, the same sums in the same order."""
        comps = [c.name[4:] for c in tc if c.name.startswith("hlr_")]
        if not comps:
            return sa.null()
        total, weight = sa.literal(0.0), sa.literal(0.0)
        for c in comps:
            w = tc[f"flux_frac_{c}"] if f"flux_frac_{c}" in tcols else sa.literal(1.0)
            total = total + w * tc[f"hlr_{c}"]
            weight = weight + w
        return sa.case((weight != 0, total / weight), else_=sa.null())


def table_statement(table: acc.Table, objects: sa.Subquery, bands: Sequence[str], ref: str,
                    nside: int) -> sa.Select | None:
    """The ``GROUP BY`` that counts ``table`` (None when the database lacks a column it needs)."""
    oc = objects.c
    cols: dict[str, sa.ColumnElement] = {c.key: c for c in oc}
    cols["one"] = sa.literal_column("1")
    cols["hpix"] = ex.healpix_ring(ex.SQL, nside, oc.ra, oc.dec)
    source: sa.FromClause = objects
    if table.per_band:
        band_ids = sa.union_all(*(sa.select(sa.literal_column(str(i)).label("band_id")) for i in range(len(bands)))).subquery("b")
        source = objects.join(band_ids, sa.true())
        cols["band"] = band_ids.c.band_id
        for c in acc.BAND_COLUMNS:
            names = [f"{c}_{b}" for b in bands]
            if any(n not in oc for n in names):
                cols[c] = sa.null()
                continue
            cols[c] = sa.case(*((band_ids.c.band_id == i, oc[n]) for i, n in enumerate(names)), else_=sa.null())
    else:
        if any(f"{c}_{ref}" not in oc for c in table.needs):
            return None
        cols["band"] = sa.literal_column(str(bands.index(ref)))
        for c in acc.BAND_COLUMNS:
            cols[c] = oc[f"{c}_{ref}"] if f"{c}_{ref}" in oc else sa.null()
    keep, keys, values = table.formula(ex.SQL, cols)
    inner = sa.select(*(k.label(f"k{i}") for i, k in enumerate(keys)),
                      *(sa.cast(v, sa.Float).label(f"v{j}") for j, v in enumerate(values))).select_from(source)
    if keep is not None:
        inner = inner.where(keep)
    inner = inner.subquery("binned")
    key_cols = [inner.c[f"k{i}"] for i in range(len(keys))]
    return sa.select(*key_cols, *(sa.func.sum(inner.c[f"v{j}"]) for j in range(len(values)))).group_by(*key_cols)


def _run(conn, statement: sa.Select, n_keys: int) -> tuple[list, np.ndarray]:
    """The statement's rows as (key columns, values array)."""
    result = conn.execution_options(stream_results=True, yield_per=FETCH_ROWS).execute(statement)
    keys: list[list] = [[] for _ in range(n_keys)]
    vals: list[np.ndarray] = []
    for part in result.partitions(FETCH_ROWS):
        for i in range(n_keys):
            keys[i].extend(r[i] for r in part)
        vals.append(np.array([[float(x or 0.0) for x in r[n_keys:]] for r in part], dtype=float))
    values = np.concatenate(vals) if vals else np.empty((0, 0))
    return keys, values


def count_db(engine: Engine, dbname: str, prefix: str = "", nside: int = 1024,
             outdir: str | Path | None = None) -> tuple[acc.CampaignCounts, CampaignInfo]:
    """Count the campaign ``dbname`` in the database (``outdir``: its directory, for the records)."""
    add_sqlite_functions(engine)
    tables = CampaignTables(engine, dbname, prefix)
    if not tables.bands:
        raise InputFileError(f"table {tables.names['truth']} has no mag_<band> column: nothing to report")
    bands, ref = tables.bands, acc.reference_band(tables.bands)
    where = f"{safe_url(engine.url)} tables {prefix}{tables.dbname}_*"
    with db_errors(engine, f"reading campaign {prefix}{tables.dbname}"), engine.connect() as conn:
        truth = tables.t["truth"]
        pairs = conn.execute(sa.select(truth.c.tilename, truth.c.realization).distinct()).all()
        realizations = sorted((str(t), int(r)) for t, r in pairs)
        if not realizations:
            raise InputFileError(f"no realizations of campaign {prefix}{tables.dbname} in {safe_url(engine.url)}: "
                                 "nothing to report")
        tiles = sorted({t for t, _ in realizations})
        tile_index = {t: i for i, t in enumerate(tiles)}
        counts = acc.new_counts(bands, tiles, nside)
        objects = tables.objects()
        for table in acc.TABLES:
            statement = table_statement(table, objects, bands, ref, nside)
            if statement is None:
                continue
            keys, values = _run(conn, statement, len(table.keys))
            if not len(values):
                continue
            key_arrays = [np.array([tile_index[str(v)] for v in col], np.int64) if name == "tile"
                          else np.array(col, dtype=np.int64) for name, col in zip(table.keys, keys, strict=True)]
            counts[table.name].add(key_arrays, values)
        with_match = 0
        if tables.has_match:
            match = tables.t["match"]
            with_match = len(conn.execute(sa.select(match.c.tilename, match.c.realization).distinct()).all())
    info = _info(where, realizations, outdir, tables.dbname)
    info.read_from = {"database": len(realizations)}
    counted = acc.CampaignCounts(bands=bands, reference_band=ref, tiles=tiles, nside=nside, tables=counts,
                                 spread_bands=tables.spread_bands,
                                 match_sources={"file": with_match, "recomputed": 0,
                                                "unknown": len(realizations) - with_match},
                                 has_offsets=tables.has_offsets)
    return counted, info


def _info(where: str, realizations: list[tuple[str, int]], outdir: str | Path | None, dbname: str) -> CampaignInfo:
    """The campaign's records beside the database's counts: status.json files and a summary header per tile."""
    info = CampaignInfo(source="database", where=where, realizations=realizations, missing=Missing(),
                        campaign_names=[dbname], headers={"CAMPAIGN": {dbname: len(realizations)}})
    if outdir is None or not Path(outdir).is_dir():
        return info
    outdir = Path(outdir)
    info.outdir = outdir
    info.statuses = read_statuses(outdir)
    present: dict[str, set[int]] = {}
    for t, r in realizations:
        present.setdefault(t, set()).add(r)
    info.missing = find_missing(present, {}, info.statuses, tile_directories(outdir))
    info.missing.lost_label = "done per status.json but not in the database (balrog-push pushes them)"
    per_tile: dict[str, int] = {}
    for t, _ in realizations:
        per_tile[t] = per_tile.get(t, 0) + 1
    headers: dict[str, dict[str, int]] = {}
    for tile, n in per_tile.items():
        path = next(iter(sorted((outdir / tile / "catalogs").glob(f"{tile}_r*_{node_summary.SUMMARY_KIND}.fits"))),
                    None)
        if path is None:
            continue
        try:
            _, cards = node_summary.read_summary(path)
        except InputFileError as exc:
            log.warning("%s", exc)
            continue
        for key in HEADER_KEYS:
            if key in cards:
                headers.setdefault(key, {}).setdefault(cards[key], 0)
                headers[key][cards[key]] += n  # the tile's realizations share their software
    info.headers = {**headers, "CAMPAIGN": {dbname: len(realizations)}}
    return info
