"""Counting a campaign into bins, one realization (or one SQL ``GROUP BY``) at a time.

The report never holds a campaign's objects: it holds counts per bin. Each *table* here
(:data:`TABLES`) says which objects it counts (a filter), into which bins (integer keys),
and what it adds up (values: 1 for a count, the recovered flag, the magnitude for a mean).
The formulas are :mod:`.exprs`'s, evaluated on numpy arrays for the files on disk
(:func:`add_chunk`) and compiled into SQL for the database (:mod:`.from_db`); both end in
the same :class:`Counts`. Memory is the number of occupied bins, whatever the number of
objects: about 100 MB for 10^4 realizations of a DES tile.

Keys: ``batch`` (the error-estimate unit, :func:`.exprs.batch`), ``band`` (its position in
the campaign's band list), ``tile`` (position in the sorted tile list), and the bins of
:mod:`.exprs`. Objects counted are the *counted* ones everywhere but in ``totals``: drawn
(no ``not_drawn`` bit of :data:`NOT_DRAWN_BITS`) and not centred on a masked pixel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..injection.draw import NOT_IN_IMAGE
from . import exprs as ex

#: ``not_drawn`` bits that mean the object is not in the image (off image, centre off image,
#: drawing failed, skipped as masked); a stamp clipped at the edge was drawn.
NOT_DRAWN_BITS = NOT_IN_IMAGE
#: Realization numbers are below this (a key's radix).
MAX_REALIZATION = 1_000_000
#: Per-object columns every table may read (the summary's, per band through ``mag`` etc.).
BAND_COLUMNS = ("mag", "mag_auto", "spread_model", "spreaderr_model")


#: Tables of at most this many cells are summed densely (``bincount``), larger ones sparsely.
DENSE_CELLS = 4_000_000


@dataclass
class Counts:
    """A ``GROUP BY``: keys (integer tuples within ``radix``) -> summed float values.

    Small tables (:data:`DENSE_CELLS`) are a dense array summed with ``bincount``; larger ones
    (the sky, the magnitude offsets) keep the rows given and merge them (sum per key) whenever
    more than ``merge_rows`` are buffered, so memory follows the occupied bins.
    """

    radix: tuple[int, ...]
    n_values: int
    merge_rows: int = 2_000_000
    _keys: list[np.ndarray] = field(default_factory=list)
    _vals: list[np.ndarray] = field(default_factory=list)
    _buffered: int = 0
    _merged: bool = False
    _dense: np.ndarray | None = None

    def __post_init__(self) -> None:
        cells = int(np.prod(self.radix, dtype=np.float64))
        if cells <= DENSE_CELLS:
            self._dense = np.zeros((cells, self.n_values))

    def add(self, keys: Sequence[np.ndarray], values: np.ndarray) -> None:
        """``keys``: one integer array per key; ``values``: shape ``(rows, n_values)``."""
        if not len(values):
            return
        self.add_linear(np.ravel_multi_index(tuple(np.asarray(k, dtype=np.int64) for k in keys), self.radix),
                        np.asarray(values, dtype=float).reshape(-1, self.n_values))

    def add_linear(self, lin: np.ndarray, values: np.ndarray) -> None:
        """Rows already as linear keys (C order of ``radix``), values ``(rows, n_values)``."""
        if not len(lin):
            return
        if self._dense is not None:
            cells = len(self._dense)
            for j in range(self.n_values):
                self._dense[:, j] += np.bincount(lin, weights=values[:, j], minlength=cells)
            return
        self._keys.append(lin)
        self._vals.append(values)
        self._buffered += len(lin)
        self._merged = False
        if self._buffered > self.merge_rows:
            self._merge()

    def _merge(self) -> None:
        if len(self._keys) == 1 and self._merged:
            return
        lin = np.concatenate(self._keys) if self._keys else np.empty(0, np.int64)
        vals = np.concatenate(self._vals) if self._vals else np.empty((0, self.n_values))
        uniq, inverse = np.unique(lin, return_inverse=True)
        summed = np.zeros((len(uniq), self.n_values))
        for j in range(self.n_values):
            summed[:, j] = np.bincount(inverse, weights=vals[:, j], minlength=len(uniq))
        self._keys, self._vals, self._buffered, self._merged = [uniq], [summed], len(uniq), True

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``(keys, values)`` of the occupied bins: keys ``(n, len(radix))`` sorted, values ``(n, n_values)``."""
        if self._dense is not None:
            lin = np.flatnonzero(np.any(self._dense != 0, axis=1))
            vals = self._dense[lin]
        else:
            self._merge()
            lin = self._keys[0] if self._keys else np.empty(0, np.int64)
            vals = self._vals[0] if self._vals else np.empty((0, self.n_values))
        keys = np.stack(np.unravel_index(lin, self.radix), axis=1) if len(lin) else np.empty((0, len(self.radix)),
                                                                                              np.int64)
        return keys.astype(np.int64), vals


@dataclass(frozen=True)
class Table:
    """One counted table: its key names and value names, and the formula.

    ``formula(ops, cols)`` returns ``(filter, keys, values)``, expressions of ``cols`` (numpy
    arrays or SQL columns) built with ``ops`` (:data:`.exprs.NP` / :data:`.exprs.SQL`).
    ``per_band``: evaluated for each band (``cols`` then has ``mag``, ``mag_auto``, ...
    of that band, and the key ``band`` is added first after ``batch``/``tile``); ``ref_band``:
    evaluated for the reference band only.
    """

    name: str
    keys: tuple[str, ...]
    values: tuple[str, ...]
    formula: Callable
    per_band: bool = False
    ref_band: bool = False
    needs: tuple[str, ...] = ()


def counted(ops, cols):
    """Drawn (no :data:`NOT_DRAWN_BITS`) and not centred on a masked pixel."""
    if "_counted" in cols:  # numpy: computed once per chunk (add_chunk)
        return cols["_counted"]
    return ops.and_(ops.bitand(cols["not_drawn"], NOT_DRAWN_BITS) == 0, cols["masked"] == 0)


def _batch(ops, cols):
    return cols["_batch"] if "_batch" in cols else ex.batch(ops, cols["indexstart"])


def _recovered(ops, cols):
    return cols["_recovered"] if "_recovered" in cols else ops.num(cols["recovered"] == 1)


def _mag_ok(ops, cols):
    return cols["_mag_ok"] if "_mag_ok" in cols else ex.mag_ok(ops, cols["mag"])


def _fine_bin(ops, cols):
    return cols["_fine"] if "_fine" in cols else ex.fine_bin(ops, cols["mag"])


def _coarse_bin(ops, cols):
    return cols["_coarse"] if "_coarse" in cols else ex.coarse_bin(ops, cols["mag"])


def _totals(ops, cols):
    c = counted(ops, cols)
    on_mask = ops.and_(ops.bitand(cols["not_drawn"], NOT_DRAWN_BITS) == 0, cols["masked"] != 0)
    return None, [cols["tile"], cols["realization"]], [
        ops.num(cols["one"] == 1), ops.num(c), ops.num(on_mask), ops.num(ops.and_(c, cols["recovered"] == 1))]


def _fine(ops, cols):
    mag = cols["mag"]
    return (ops.and_(counted(ops, cols), _mag_ok(ops, cols)),
            [_batch(ops, cols), cols["band"], _fine_bin(ops, cols)],
            [cols["one"], _recovered(ops, cols), mag])


def _bias_filter(ops, cols, unblended: bool):
    conds = [counted(ops, cols), cols["recovered"] == 1, _mag_ok(ops, cols), ops.isfinite(cols["mag_auto"])]
    if unblended:
        conds.append(cols["blended"] == 0)
    return ops.and_(*conds)


def _bias(ops, cols):
    mag, meas = cols["mag"], cols["mag_auto"]
    return (_bias_filter(ops, cols, True),
            [_batch(ops, cols), cols["band"], _coarse_bin(ops, cols), ex.delta_bin(ops, meas - mag)],
            [cols["one"]])


def _split_value(ops, cols, split: str):
    """Blend class 0/1/2 or object type 0/1 as 1.., anything else (unknown) as 0."""
    if split == "blend_class":
        v = cols["blend_class"]
        return ops.where(ops.and_(v >= 0, v <= 2), v + 1, 0)
    v = cols["objtype"]
    return ops.where(ops.and_(v >= 0, v <= 1), v + 1, 0)


def _split_fine(split: str):
    def formula(ops, cols):
        mag = cols["mag"]
        return (ops.and_(counted(ops, cols), _mag_ok(ops, cols)),
                [_batch(ops, cols), _split_value(ops, cols, split), _fine_bin(ops, cols)],
                [cols["one"], _recovered(ops, cols), mag])
    return formula


def _split_bias(split: str):
    def formula(ops, cols):
        mag, meas = cols["mag"], cols["mag_auto"]
        return (_bias_filter(ops, cols, False),
                [_batch(ops, cols), _split_value(ops, cols, split), _coarse_bin(ops, cols),
                 ex.delta_bin(ops, meas - mag)],
                [cols["one"]])
    return formula


def _galaxies_sized(ops, cols):
    return ops.and_(counted(ops, cols), cols["objtype"] == 0, ex.size_ok(ops, cols["size"]), _mag_ok(ops, cols))


def _size(ops, cols):
    return (_galaxies_sized(ops, cols),
            [_batch(ops, cols), _coarse_bin(ops, cols), ex.size_bin(ops, cols["size"])],
            [cols["one"], _recovered(ops, cols)])


def _sb(ops, cols):
    sb = ex.surface_brightness(ops, cols["mag"], cols["size"])
    return (ops.and_(_galaxies_sized(ops, cols), sb >= 0.0, sb < float(ex.MAG_MAX)),
            [_batch(ops, cols), _coarse_bin(ops, cols), ex.sb_bin(ops, sb)],
            [cols["one"], _recovered(ops, cols)])


def _sky(ops, cols):
    return (ops.and_(counted(ops, cols), ops.isfinite(cols["ra"]), ops.isfinite(cols["dec"])),
            [cols["hpix"]], [cols["one"], _recovered(ops, cols)])


def _tile(ops, cols):
    mag = cols["mag"]
    return (ops.and_(counted(ops, cols), _mag_ok(ops, cols)),
            [cols["tile"], cols["band"], _coarse_bin(ops, cols)],
            [cols["one"], _recovered(ops, cols), mag])


def _sg(ops, cols):
    meas, spread, err = cols["mag_auto"], cols["spread_model"], cols["spreaderr_model"]
    ok = ops.and_(counted(ops, cols), cols["recovered"] == 1, cols["objtype"] >= 0, cols["objtype"] <= 1,
                  ops.isfinite(spread), ops.isfinite(err), ex.mag_ok(ops, meas))
    return (ok, [_batch(ops, cols), cols["objtype"], ex.spread_class(ops, spread, err) + 1,
                 ex.coarse_bin(ops, meas)], [cols["one"]])


def _offsets(ops, cols):
    off = cols["offset"]
    return (ops.and_(counted(ops, cols), cols["recovered"] == 1, ex.offset_ok(ops, off)),
            [ex.offset_bin(ops, off)], [cols["one"]])


def _magmag(ops, cols):
    mag, meas = cols["mag"], cols["mag_auto"]
    return (ops.and_(counted(ops, cols), cols["recovered"] == 1, _mag_ok(ops, cols), ex.mag_ok(ops, meas)),
            [_split_value(ops, cols, "objtype"), ex.magmag_bin(ops, mag), ex.magmag_bin(ops, meas)], [cols["one"]])


#: Every table the report counts, in the order they are computed.
TABLES: tuple[Table, ...] = (
    Table("totals", ("tile", "realization"), ("injected", "counted", "on_mask", "recovered"), _totals),
    Table("fine", ("batch", "band", "fine"), ("n", "k", "mag_sum"), _fine, per_band=True),
    Table("bias", ("batch", "band", "coarse", "delta"), ("n",), _bias, per_band=True),
    Table("blend_fine", ("batch", "split", "fine"), ("n", "k", "mag_sum"), _split_fine("blend_class"), ref_band=True),
    Table("blend_bias", ("batch", "split", "coarse", "delta"), ("n",), _split_bias("blend_class"), ref_band=True),
    Table("type_fine", ("batch", "split", "fine"), ("n", "k", "mag_sum"), _split_fine("objtype"), ref_band=True),
    Table("type_bias", ("batch", "split", "coarse", "delta"), ("n",), _split_bias("objtype"), ref_band=True),
    Table("size", ("batch", "coarse", "size"), ("n", "k"), _size, ref_band=True),
    Table("sb", ("batch", "coarse", "sb"), ("n", "k"), _sb, ref_band=True),
    Table("sky", ("hpix",), ("n", "k"), _sky),
    Table("tile", ("tile", "band", "coarse"), ("n", "k", "mag_sum"), _tile, per_band=True),
    Table("stargalaxy", ("batch", "objtype", "class", "coarse"), ("n",), _sg, ref_band=True,
          needs=("spread_model", "spreaderr_model")),
    Table("offsets", ("offset",), ("n",), _offsets),
    Table("magmag", ("split", "true", "measured"), ("n",), _magmag, ref_band=True),
)
TABLE_BY_NAME = {t.name: t for t in TABLES}


def radices(n_tiles: int, n_bands: int, nside: int) -> dict[str, int]:
    """The range of every key."""
    return {"tile": max(n_tiles, 1), "realization": MAX_REALIZATION, "batch": ex.N_BATCH, "band": max(n_bands, 1),
            "fine": ex.N_FINE, "coarse": ex.N_COARSE, "delta": ex.N_DELTA, "split": 4,
            "size": ex.N_SIZE, "sb": ex.N_SB, "hpix": 12 * nside * nside, "objtype": 2, "class": 3,
            "offset": ex.N_OFFSET, "true": ex.N_MAGMAG, "measured": ex.N_MAGMAG}


@dataclass
class CampaignCounts:
    """A campaign counted: every :data:`TABLES` table, and what describes the counting."""

    bands: list[str]
    reference_band: str
    tiles: list[str]
    nside: int
    tables: dict[str, Counts]
    #: Bands whose sim catalogs have SPREAD_MODEL / SPREADERR_MODEL.
    spread_bands: list[str] = field(default_factory=list)
    #: Where the blend classes came from: realizations per source (file, recomputed, unknown).
    match_sources: dict[str, int] = field(default_factory=lambda: {"file": 0, "recomputed": 0, "unknown": 0})
    #: Whether offsets (XWIN_IMAGE_DET) were measured at all.
    has_offsets: bool = True

    def table(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return self.tables[name].result()


def new_counts(bands: Sequence[str], tiles: Sequence[str], nside: int) -> dict[str, Counts]:
    r = radices(len(tiles), len(bands), nside)
    return {t.name: Counts(tuple(r[k] for k in t.keys), len(t.values)) for t in TABLES}


def reference_band(bands: Sequence[str]) -> str:
    """The band the split figures use: i (DES's detection-like band) when present, else the first."""
    return "i" if "i" in bands else bands[0]


def _band_view(chunk: Mapping[str, np.ndarray], band: str, band_id: int) -> dict[str, np.ndarray]:
    n = len(chunk["one"])
    view = dict(chunk)
    nan = np.full(n, np.nan)
    for col in BAND_COLUMNS:
        view[col] = chunk.get(f"{col}_{band}", nan)
    view["band"] = np.full(n, band_id, dtype=np.int64)
    # what every table of the band asks for, once
    view["_mag_ok"] = ex.mag_ok(ex.NP, view["mag"])
    view["_fine"] = np.where(view["_mag_ok"], ex.fine_bin(ex.NP, view["mag"]), 0)
    view["_coarse"] = np.where(view["_mag_ok"], ex.coarse_bin(ex.NP, view["mag"]), 0)
    return view


def _prepare(chunk: dict[str, np.ndarray]) -> None:
    """The per-object values every table asks for, computed once per chunk (numpy path only)."""
    chunk["_counted"] = counted(ex.NP, chunk)
    chunk["_batch"] = ex.batch(ex.NP, chunk["indexstart"])
    chunk["_recovered"] = ex.NP.num(chunk["recovered"] == 1)


def add_chunk(counts: Mapping[str, Counts], chunk: dict[str, np.ndarray], bands: Sequence[str],
              ref: str) -> None:
    """Count the objects of ``chunk`` (summary columns of one or more realizations, plus
    ``tile``, ``realization``, ``indexstart``, ``hpix`` and ``one`` per row) into ``counts``."""
    n = len(chunk["one"])
    if not n:
        return
    with np.errstate(all="ignore"):  # formulas run on every row; the filters drop the undefined ones
        _prepare(chunk)
        ref_view = _band_view(chunk, ref, bands.index(ref))
        band_views = [ref_view if b == ref else _band_view(chunk, b, i) for i, b in enumerate(bands)]
        for table in TABLES:
            if any(f"{c}_{ref}" not in chunk for c in table.needs):
                continue
            counter = counts[table.name]
            for view in band_views if table.per_band else [ref_view]:
                keep, keys, values = table.formula(ex.NP, view)
                idx = np.arange(n) if keep is None else np.flatnonzero(keep)
                if not len(idx):
                    continue
                lin = np.zeros(len(idx))
                for key, r in zip(keys, counter.radix, strict=True):  # C order, as ravel_multi_index
                    lin *= r
                    lin += np.take(key, idx) if np.ndim(key) else float(key)
                vals = np.empty((len(idx), len(values)))
                for j, v in enumerate(values):
                    vals[:, j] = np.take(v, idx) if np.ndim(v) else float(v)
                counter.add_linear(lin.astype(np.int64), vals)
