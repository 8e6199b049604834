"""A realization's compact summary: the few columns the report needs, one row per truth object.

``<outdir>/<TILE>/catalogs/<TILE>_r<jjjj>_summary.fits`` (HDU 1 ``SUMMARY``), written by the
runner beside the catalogs, before the truth catalog (whose arrival marks the realization
complete). A campaign of 10^4 realizations is then reported by reading 10^4 tables of a
few hundred kB instead of 4 x 10^4 catalogs of up to 797 columns each; the catalogs stay
the source of truth, and the report builds the same table from them (:func:`build_summary`)
for realizations that have none (campaigns made before it).

Columns (the report's definitions apply to them; nothing is selected here):

* ``balrog_index`` (i8), ``ra``, ``dec`` (f8, degrees), ``not_drawn`` (i4, the truth's bit
  flags, 0 when absent), ``masked`` (i2, centre on a masked pixel, 0 when absent),
  ``objtype`` (i2, 0 galaxy, 1 star, -1 unknown), ``size`` (f8, arcsec: flux-weighted
  half-light radius of the components, NaN without ``hlr_*`` columns);
* ``recovered`` (i1): a detection of the sim catalog is associated with the object
  (``balrog_index``, SExtractor ASSOC nearest within 2 px); its measured values below come
  from the associated detection with the lowest ``NUMBER`` (several: a shredded object);
* ``blended`` (i1): the realization's nosim catalog associates a pre-existing detection with
  the object (one within 2 px in the untouched image); ``blend_class`` (i2): the match
  table's class (blends.py: 0 isolated, 1 near a fainter, 2 near a brighter), -1 unknown;
* ``offset`` (f8, arcsec): detection-image windowed position (``XWIN_IMAGE_DET``,
  ``YWIN_IMAGE_DET``) minus the truth ``x``, ``y``, times the DES pixel scale; NaN when not
  recovered or not measured;
* per band ``b`` of the truth: ``mag_<b>`` (f8, true), ``mag_auto_<b>`` (f4, measured
  ``MAG_AUTO_<B>``; NaN when not recovered or SExtractor's 99), and where the sim catalog has
  them ``spread_model_<b>``, ``spreaderr_model_<b>`` (f4).

Header: the catalogs' provenance and campaign identity cards, ``SUMVER`` (this layout's
version) and ``MATCHSRC`` (where ``blend_class`` came from: ``file``, ``recomputed`` from the
tile's nosim catalog, or ``unknown``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import InputFileError
from ..measurement.blends import DES_PIXEL_SCALE
from .layout import tile_dir

log = logging.getLogger(__name__)

#: Version of the column layout above (``SUMVER`` in the header).
SUMMARY_VERSION = 1
SUMMARY_KIND = "summary"
#: DES coadd pixel scale, arcsec per pixel (offsets in arcsec).
PIXEL_SCALE_ARCSEC = DES_PIXEL_SCALE
#: Values of ``MATCHSRC``.
MATCH_SOURCES = ("file", "recomputed", "unknown")


def summary_path(outdir: str | os.PathLike, tile: str, realization: int) -> Path:
    """``<outdir>/<TILE>/catalogs/<TILE>_r<jjjj>_summary.fits``."""
    return tile_dir(outdir, tile) / "catalogs" / f"{tile}_r{realization:04d}_{SUMMARY_KIND}.fits"


def summary_beside(truth_path: str | os.PathLike) -> Path:
    """The summary of the realization whose truth catalog is ``truth_path``."""
    truth_path = Path(truth_path)
    return truth_path.with_name(truth_path.name[: -len("_truth.fits")] + f"_{SUMMARY_KIND}.fits")


def _column(table: np.ndarray, name: str) -> np.ndarray | None:
    """A column by case-insensitive name, or None (truth columns are lower case, measured upper)."""
    lookup = {n.lower(): n for n in (table.dtype.names or ())}
    key = lookup.get(name.lower())
    return None if key is None else table[key]


def truth_bands(table: np.ndarray) -> list[str]:
    """The bands of a truth (or summary) table, from its ``mag_<b>`` columns, in column order."""
    return [n[4:] for n in (table.dtype.names or ())
            if n.lower().startswith("mag_") and not n.lower().startswith("mag_auto_")]


def object_size(truth: np.ndarray) -> np.ndarray:
    """Flux-weighted half-light radius (arcsec, major axis) per object; NaN without ``hlr_*`` columns.

    ``sum_c w_c hlr_c / sum_c w_c`` over the components ``c`` in column order, ``w_c`` the
    ``flux_frac_<c>`` column (1 without it). The database path of the report computes the
    same expression, in the same order, in SQL.
    """
    comps = [n[4:] for n in (truth.dtype.names or ()) if n.lower().startswith("hlr_")]
    if not comps:
        return np.full(len(truth), np.nan)
    total = np.zeros(len(truth))
    weight = np.zeros(len(truth))
    for c in comps:
        frac = _column(truth, f"flux_frac_{c}")
        w = np.ones(len(truth)) if frac is None else np.asarray(frac, float)
        total = total + w * np.asarray(_column(truth, f"hlr_{c}"), float)
        weight = weight + w
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / weight


def summary_dtype(bands: list[str], spread_bands: list[str]) -> np.dtype:
    fields = [("balrog_index", "i8"), ("ra", "f8"), ("dec", "f8"), ("not_drawn", "i4"), ("masked", "i2"),
              ("objtype", "i2"), ("size", "f8"), ("recovered", "i1"), ("blended", "i1"), ("blend_class", "i2"),
              ("offset", "f8")]
    for b in bands:
        fields += [(f"mag_{b}", "f8"), (f"mag_auto_{b}", "f4")]
        if b in spread_bands:
            fields += [(f"spread_model_{b}", "f4"), (f"spreaderr_model_{b}", "f4")]
    return np.dtype(fields)


def first_detection_rows(truth_index: np.ndarray, sim: np.ndarray) -> np.ndarray:
    """Per truth row, the sim row associated with it with the lowest ``NUMBER`` (-1: none).

    Without a ``NUMBER`` column, the first such row in the catalog's order.
    """
    sim_index = _column(sim, "balrog_index")
    if sim_index is None:
        raise InputFileError("the sim catalog has no balrog_index column")
    number = _column(sim, "NUMBER")
    rows = np.flatnonzero(sim_index >= 0)
    order = rows[np.lexsort((np.asarray(number)[rows] if number is not None else rows, sim_index[rows]))]
    uniq, first = np.unique(sim_index[order], return_index=True)
    best = order[first]
    row_of = np.full(len(truth_index), -1, dtype=np.int64)
    if len(uniq):
        pos = np.clip(np.searchsorted(uniq, truth_index), 0, len(uniq) - 1)
        hit = uniq[pos] == truth_index
        row_of[hit] = best[pos[hit]]
    return row_of


def build_summary(truth: np.ndarray, sim: np.ndarray, nosim: np.ndarray,
                  match: np.ndarray | None) -> np.ndarray:
    """The summary table of one realization (module docstring) from its catalogs.

    ``match``: the realization's match table (blends.py), or None when unknown.
    """
    index = _column(truth, "balrog_index")
    if index is None:
        raise InputFileError("the truth catalog has no balrog_index column")
    index = np.asarray(index, np.int64)
    n = len(truth)
    bands = truth_bands(truth)
    spread_bands = [b for b in bands if _column(sim, f"SPREAD_MODEL_{b}") is not None
                    and _column(sim, f"SPREADERR_MODEL_{b}") is not None]
    out = np.zeros(n, dtype=summary_dtype(bands, spread_bands))
    out["balrog_index"] = index
    for name in ("ra", "dec"):
        col = _column(truth, name)
        out[name] = np.nan if col is None else col
    for name, default in (("not_drawn", 0), ("masked", 0), ("objtype", -1)):
        col = _column(truth, name)
        out[name] = default if col is None else col
    out["size"] = object_size(truth)
    row_of = first_detection_rows(index, sim)
    got = row_of >= 0
    out["recovered"] = got
    nosim_index = _column(nosim, "balrog_index")
    out["blended"] = np.isin(index, nosim_index[nosim_index >= 0]) if nosim_index is not None else False
    if match is None:
        out["blend_class"] = -1
    else:
        if not np.array_equal(np.asarray(match["balrog_index"]), index):
            raise InputFileError("the match table does not list the truth's balrog_index in order")
        out["blend_class"] = match["blend_class"]
    out["offset"] = np.nan
    x_meas, y_meas = _column(sim, "XWIN_IMAGE_DET"), _column(sim, "YWIN_IMAGE_DET")
    x_true, y_true = _column(truth, "x"), _column(truth, "y")
    if x_meas is not None and y_meas is not None and x_true is not None and y_true is not None and got.any():
        dx = np.asarray(x_meas, float)[row_of[got]] - np.asarray(x_true, float)[got]
        dy = np.asarray(y_meas, float)[row_of[got]] - np.asarray(y_true, float)[got]
        out["offset"][got] = np.sqrt(dx * dx + dy * dy) * PIXEL_SCALE_ARCSEC
    for b in bands:
        out[f"mag_{b}"] = _column(truth, f"mag_{b}")
        values = np.full(n, np.nan, dtype=np.float32)
        meas = _column(sim, f"MAG_AUTO_{b}")
        if meas is not None and got.any():
            values[got] = meas[row_of[got]]
            values[values >= 99.0] = np.nan  # SExtractor's "no flux" sentinel
        out[f"mag_auto_{b}"] = values
        if b in spread_bands:
            for kind in ("spread_model", "spreaderr_model"):
                col = np.full(n, np.nan, dtype=np.float32)
                col[got] = _column(sim, f"{kind}_{b}")[row_of[got]]
                out[f"{kind}_{b}"] = col
    return out


def write_summary(path: str | os.PathLike, summary: np.ndarray, header: Mapping[str, object],
                  match_source: str) -> Path:
    """Write the summary atomically, with the catalogs' ``header`` cards, ``SUMVER`` and ``MATCHSRC``."""
    from ..measurement.measure import write_catalog

    if match_source not in MATCH_SOURCES:
        raise ValueError(f"match source {match_source!r} is not one of {MATCH_SOURCES}")
    cards = {**header, "SUMVER": SUMMARY_VERSION, "MATCHSRC": match_source}
    return write_catalog(path, summary, extname="SUMMARY", header=cards)


def read_summary(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, str]]:
    """The summary table and its header cards (upper-case keys, values as text).

    Raises :class:`InputFileError` for a file that is not a summary of this layout version.
    """
    import fitsio

    try:
        with fitsio.FITS(str(path)) as f:
            table = f[1].read()
            header = f[1].read_header()
    except (OSError, ValueError, IndexError) as exc:
        raise InputFileError(f"cannot read summary {path}: {exc}") from exc
    cards = {k.upper(): str(header[k]).strip() for k in header if k}
    if cards.get("SUMVER") != str(SUMMARY_VERSION):
        raise InputFileError(f"{path} is not a realization summary of version {SUMMARY_VERSION} "
                             f"(SUMVER {cards.get('SUMVER', 'absent')})")
    return table, cards


def write_beside(truth_path: str | os.PathLike, truth: np.ndarray, sim: np.ndarray, nosim: np.ndarray,
                 header: Mapping[str, object], match: np.ndarray | None = None) -> Path:
    """The runner's call: the summary of a realization whose match table is already on disk.

    Written after the sim, nosim and match catalogs and before the truth catalog, so a
    complete realization always has its summary (a killed run redoes the realization).
    ``match`` is the table just written (the runner has it); without it, it is read from its
    file beside ``truth_path`` when there is one.
    """
    if match is None:
        import fitsio

        from ..measurement import blends

        match_file = blends.match_path(truth_path)
        match = fitsio.read(str(match_file), ext=1) if match_file.exists() else None
    summary = build_summary(truth, sim, nosim, match)
    return write_summary(summary_beside(truth_path), summary, header, "file" if match is not None else "unknown")
