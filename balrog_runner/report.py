"""Diagnostics of a campaign: completeness, photometric bias, position offsets, sky map.

The report reads the per-realization catalogs the node runner wrote
(``<outdir>/<TILE>/catalogs/<TILE>_r<jjjj>_{truth,sim,nosim}.fits``), not the database:
the catalogs are the campaign's source of truth and exist even when a push failed.

Definitions (what a reader of the plots needs to know):

* an injected object is *recovered* in a realization when a detection of that
  realization's sim catalog is associated with it (nearest truth position within 2 px,
  SExtractor ASSOC semantics), so completeness = recovered / drawn per magnitude bin;
* objects flagged ``not_drawn`` as off the image (or failed, or skipped as masked) are
  excluded from every statistic; objects whose stamp was only clipped at the image edge
  count as drawn; objects drawn with their centre on a masked pixel (truth ``masked``,
  ``balrog['masked-positions'] = 'flag'``) are left out too and counted on the page: the
  survey throws those pixels away, so they measure the mask, not the selection function;
* the photometric bias uses ``MAG_AUTO_<BAND> - mag_<band>`` of recovered objects, and
  leaves out objects that fell within 2 px of a detection already present in the
  untouched image (the nosim association): their measurement is a blend with a real
  object, which the completeness keeps but the bias should not;
* scatter is the normalised median absolute deviation (1.4826 MAD), robust to the
  blends and outliers a mean/std would chase.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import report_plots, report_stats
from .atomic import atomic_write_text
from .errors import InputFileError
from .inject import NOT_IN_IMAGE

log = logging.getLogger(__name__)

#: Association radius used by the runner, in pixels (reported on the page).
ASSOC_RADIUS_PIX = 2.0
#: ``not_drawn`` bits that mean the object is not in the image: off image, centre off
#: image, drawing failed. ``CLIPPED`` (stamp cut at the image edge) was drawn.
NOT_DRAWN_BITS = NOT_IN_IMAGE
#: DES coadd pixel scale in arcsec per pixel.
PIXEL_SCALE_ARCSEC = 0.263
#: Catalog header cards the report shows (provenance.py and campaign_id.py write them): what made
#: the catalogs, read from the catalogs themselves rather than from the software running the report.
HEADER_KEYS = ("BALRVER", "GALSIMV", "SEXVER", "SWARPVER", "NUMPYVER", "RELEASE", "CAMPAIGN", "CAMPFP")


@dataclass
class BandMatches:
    """Truth magnitudes of one band, with the measured magnitude where recovered (NaN if not)."""

    band: str
    true_mag: np.ndarray
    recovered: np.ndarray
    measured_mag: np.ndarray
    blended: np.ndarray
    #: ``SPREAD_MODEL_<B>`` and ``SPREADERR_MODEL_<B>`` of the recovered objects (NaN otherwise);
    #: ``has_spread`` False when no sim catalog has them (measured with config/light.param).
    spread: np.ndarray | None = None
    spread_err: np.ndarray | None = None
    has_spread: bool = False


@dataclass
class CampaignData:
    """Everything the report plots, gathered from the catalogs of one campaign."""

    outdir: Path
    tiles: list[str]
    n_realizations: int
    n_injected: int
    n_drawn: int
    n_recovered: int
    bands: list[str]
    truth_ra: np.ndarray
    truth_dec: np.ndarray
    truth_tile: np.ndarray
    offsets_arcsec: np.ndarray
    matches: dict[str, BandMatches] = field(default_factory=dict)
    #: Drawn objects centred on a masked pixel (truth ``masked``), left out of every statistic.
    n_masked: int = 0
    seconds_spent: float | None = None
    missing: Missing = field(default_factory=lambda: Missing())
    #: Per drawn object (the order of ``truth_ra``): its realization's number 0..G-1 (the
    #: bootstrap unit), ``objtype`` (0 galaxy, 1 star, -1 unknown), flux-weighted half-light
    #: radius (arcsec, NaN unknown), blend class (blends.py; -1 unknown), recovered flag.
    group: np.ndarray = field(default_factory=lambda: np.empty(0, int))
    objtype: np.ndarray = field(default_factory=lambda: np.empty(0, int))
    size_arcsec: np.ndarray = field(default_factory=lambda: np.empty(0))
    blend_class: np.ndarray = field(default_factory=lambda: np.empty(0, int))
    recovered: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    #: ``group`` number -> (tile, realization).
    realizations: list[tuple[str, int]] = field(default_factory=list)
    #: Realizations whose blend classes came from a match table on disk / were recomputed
    #: from the tile's nosim catalog / are unknown (neither there).
    match_sources: dict[str, int] = field(default_factory=lambda: {"file": 0, "recomputed": 0, "unknown": 0})
    #: Provenance cards of the sim catalogs' headers (:data:`HEADER_KEYS`): key -> distinct values.
    headers: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Missing:
    """What a partial campaign lacks: the report covers what is there and says what is not.

    ``tiles``: tile directories (with a ``status.json`` or a ``catalogs/``) holding no complete
    realization; ``failed``: realizations ``status.json`` records as failed; ``incomplete``:
    truth catalogs whose sim or nosim catalog is missing; ``lost``: realizations
    ``status.json`` records as done whose catalogs are not all there.
    """

    tiles: list[str] = field(default_factory=list)
    failed: int = 0
    incomplete: int = 0
    lost: int = 0

    @property
    def realizations(self) -> int:
        return self.failed + self.incomplete + self.lost

    def __bool__(self) -> bool:
        return bool(self.tiles) or self.realizations > 0

    def describe(self) -> str:
        """One line, e.g. ``1 tile(s) without catalogs (DES0001-4914); 3 realization(s) missing (...)``."""
        parts = []
        if self.tiles:
            shown = ", ".join(self.tiles[:5]) + (", ..." if len(self.tiles) > 5 else "")
            parts.append(f"{len(self.tiles)} tile(s) without catalogs ({shown})")
        if self.realizations:
            parts.append(f"{self.realizations} realization(s) missing ({self.failed} failed per status.json, "
                         f"{self.incomplete} with incomplete catalogs, {self.lost} done per status.json "
                         "but catalogs gone)")
        return "; ".join(parts) or "nothing missing"


def _catalog_triplets(outdir: Path, missing: Missing | None = None) -> list[tuple[Path, Path, Path]]:
    """The (truth, sim, nosim) paths of every complete realization under ``outdir``.

    Incomplete sets are skipped with a warning and counted in ``missing.incomplete``.
    """
    triplets = []
    for truth in sorted(outdir.glob("*/catalogs/*_truth.fits")):
        stem = truth.name[: -len("_truth.fits")]
        sim = truth.with_name(f"{stem}_sim.fits")
        nosim = truth.with_name(f"{stem}_nosim.fits")
        if sim.exists() and nosim.exists():
            triplets.append((truth, sim, nosim))
        else:
            log.warning("skipping %s: its sim or nosim catalog is missing", truth)
            if missing is not None:
                missing.incomplete += 1
    return triplets


def _find_missing(outdir: Path, triplets: list[tuple[Path, Path, Path]], missing: Missing) -> None:
    """Fill ``missing`` from the tile directories and their ``status.json`` (the runner's record)."""
    have: dict[str, set[int]] = {}
    for truth, _, _ in triplets:
        stem = truth.name[: -len("_truth.fits")]
        tile, _, real = stem.rpartition("_r")
        have.setdefault(truth.parent.parent.name, set()).add(int(real) if real.isdigit() else -1)
    tile_dirs = sorted({p.parent for p in outdir.glob("*/status.json")} | {p.parent for p in outdir.glob("*/catalogs")})
    for tile_dir in tile_dirs:
        if tile_dir.name not in have:
            missing.tiles.append(tile_dir.name)
        try:
            status = json.loads((tile_dir / "status.json").read_text())
            entries = status.get("realizations", {})
        except (OSError, ValueError, AttributeError):
            continue
        if not isinstance(entries, dict):
            continue
        for key, entry in entries.items():
            if not isinstance(entry, dict) or not str(key).isdigit():
                continue
            present = int(key) in have.get(tile_dir.name, set())
            if entry.get("state") == "failed" and not present:
                missing.failed += 1
            elif entry.get("state") == "done" and not present:
                missing.lost += 1


def _read_table(path: Path) -> np.ndarray:
    import fitsio

    try:
        return fitsio.read(str(path), ext=1)
    except (OSError, ValueError) as exc:
        raise InputFileError(f"cannot read catalog {path}: {exc}") from exc


def _read_header_cards(path: Path, keys: Sequence[str] = HEADER_KEYS) -> dict[str, str]:
    """The ``keys`` present in the table header (HDU 1) of the catalog at ``path``."""
    import fitsio

    try:
        header = fitsio.read_header(str(path), ext=1)
    except (OSError, ValueError) as exc:
        raise InputFileError(f"cannot read the header of catalog {path}: {exc}") from exc
    return {k: str(header[k]).strip() for k in keys if k in header}


def _column(table: np.ndarray, name: str) -> np.ndarray | None:
    """A column by case-insensitive name, or None (truth columns are lower case, measured upper)."""
    lookup = {n.lower(): n for n in table.dtype.names}
    key = lookup.get(name.lower())
    return None if key is None else table[key]


def _seconds_spent(outdir: Path) -> float | None:
    """Sum of per-realization wall times the runner recorded in ``status.json`` files."""
    total, found = 0.0, False
    for status_file in outdir.glob("*/status.json"):
        try:
            status = json.loads(status_file.read_text())
        except (OSError, ValueError):
            continue
        for entry in status.get("realizations", {}).values():
            if isinstance(entry, dict) and isinstance(entry.get("seconds"), int | float):
                total += float(entry["seconds"])
                found = True
        if isinstance(status.get("nosim_seconds"), int | float):
            total += float(status["nosim_seconds"])
            found = True
    return total if found else None


def _size_arcsec(truth: np.ndarray) -> np.ndarray:
    """Flux-weighted half-light radius (arcsec, major axis) of each object; NaN without hlr columns."""
    comps = [n[4:] for n in truth.dtype.names if n.lower().startswith("hlr_")]
    if not comps:
        return np.full(len(truth), np.nan)
    total = np.zeros(len(truth))
    weight = np.zeros(len(truth))
    for c in comps:
        frac = _column(truth, f"flux_frac_{c}")
        w = np.ones(len(truth)) if frac is None else np.asarray(frac, float)
        total += w * np.asarray(_column(truth, f"hlr_{c}"), float)
        weight += w
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / weight


def _match_for(truth_path: Path, truth: np.ndarray, sim: np.ndarray, sources: dict[str, int]) -> np.ndarray | None:
    """The realization's match table: the runner's file, else recomputed from the tile's nosim catalog.

    A campaign made before the match table existed still has ``<TILE>/nosim/<TILE>_nosim_all.fits``
    (unless removed); ``restricted`` is then inferred from the sim catalog (a restricted run has no
    detection without ``balrog_index``).
    """
    from . import blends

    path = blends.match_path(truth_path)
    if path.exists():
        sources["file"] += 1
        return _read_table(path)
    tile = truth_path.parent.parent
    nosim_all = tile / "nosim" / f"{tile.name}_nosim_all.fits"
    if not nosim_all.exists():
        sources["unknown"] += 1
        return None
    sim_index = _column(sim, "balrog_index")
    restricted = sim_index is not None and bool(np.all(sim_index >= 0))
    try:
        table = blends.match_table(truth, sim, _read_table(nosim_all), restricted=restricted)
    except InputFileError as exc:
        log.warning("blend classes of %s unknown: %s", truth_path.name, exc)
        sources["unknown"] += 1
        return None
    sources["recomputed"] += 1
    return table


def load_campaign(outdir: str | Path, bands: Sequence[str] | None = None) -> CampaignData:
    """Gather truth and measured magnitudes of every realization of the campaign in ``outdir``."""
    outdir = Path(outdir)
    if not outdir.is_dir():
        raise InputFileError(f"campaign directory {outdir} does not exist or is not a directory")
    missing = Missing()
    triplets = _catalog_triplets(outdir, missing)
    if not triplets:
        raise InputFileError(f"no catalogs under {outdir}: nothing to report "
                             "(expected <TILE>/catalogs/<TILE>_r<jjjj>_{truth,sim,nosim}.fits)")
    _find_missing(outdir, triplets, missing)
    if missing:
        log.warning("partial campaign %s: %s; reporting the %d realization(s) present",
                    outdir, missing.describe(), len(triplets))

    tiles: set[str] = set()
    ra_parts, dec_parts, tile_parts, offset_parts = [], [], [], []
    per_band: dict[str, dict[str, list[np.ndarray]]] = {}
    n_injected = n_drawn = n_recovered = n_masked = 0
    found_bands: list[str] | None = list(bands) if bands else None
    group_parts, type_parts, size_parts, class_parts, rec_parts = [], [], [], [], []
    realizations: list[tuple[str, int]] = []
    sources = {"file": 0, "recomputed": 0, "unknown": 0}
    headers: dict[str, set[str]] = {}

    from tqdm import tqdm

    # A bar on a terminal only: in a batch log it would be noise (the warning above says what counts).
    for truth_path, sim_path, nosim_path in tqdm(triplets, desc="catalogs", unit="real", leave=False,
                                                 disable=not sys.stderr.isatty()):
        truth = _read_table(truth_path)
        sim = _read_table(sim_path)
        nosim = _read_table(nosim_path)
        for key, value in _read_header_cards(sim_path).items():
            headers.setdefault(key, set()).add(value)
        tiles.add(truth_path.parent.parent.name)
        n_injected += len(truth)
        not_drawn = _column(truth, "not_drawn")
        drawn = np.ones(len(truth), bool) if not_drawn is None else (not_drawn & NOT_DRAWN_BITS) == 0
        masked = _column(truth, "masked")
        if masked is not None:  # drawn on a masked pixel: the footprint's loss, not the selection's
            on_mask = drawn & (np.asarray(masked) != 0)
            n_masked += int(on_mask.sum())
            drawn &= ~on_mask
        n_drawn += int(drawn.sum())
        index = _column(truth, "balrog_index")
        sim_index = _column(sim, "balrog_index")
        nosim_index = _column(nosim, "balrog_index")
        if index is None or sim_index is None:
            raise InputFileError(f"{truth_path} or {sim_path} has no balrog_index column")

        # One measured row per truth object: the first sim detection associated with it.
        matched = sim_index >= 0
        uniq_index, first = np.unique(sim_index[matched], return_index=True)
        sim_rows = np.flatnonzero(matched)[first]
        row_of = np.full(len(index), -1)
        if len(uniq_index):
            pos = np.clip(np.searchsorted(uniq_index, index), 0, len(uniq_index) - 1)
            hit = uniq_index[pos] == index
            row_of[hit] = sim_rows[pos[hit]]
        recovered = (row_of >= 0) & drawn
        n_recovered += int(recovered.sum())
        blended = np.isin(index, nosim_index[nosim_index >= 0]) if nosim_index is not None else np.zeros(len(index), bool)

        ra_parts.append(_column(truth, "ra")[drawn])
        stem = truth_path.name[: -len("_truth.fits")]
        real_no = stem.rpartition("_r")[2]
        group_parts.append(np.full(int(drawn.sum()), len(realizations)))
        realizations.append((truth_path.parent.parent.name, int(real_no) if real_no.isdigit() else -1))
        objtype = _column(truth, "objtype")
        type_parts.append(np.full(int(drawn.sum()), -1) if objtype is None else np.asarray(objtype, int)[drawn])
        size_parts.append(_size_arcsec(truth)[drawn])
        rec_parts.append(recovered[drawn])
        match = _match_for(truth_path, truth, sim, sources)
        if match is None:
            class_parts.append(np.full(int(drawn.sum()), -1))
        else:
            if not np.array_equal(match["balrog_index"], index):
                raise InputFileError(f"match table of {truth_path} does not list the truth's balrog_index in order")
            class_parts.append(np.asarray(match["blend_class"], int)[drawn])
        tile_parts.append(np.full(int(drawn.sum()), truth_path.parent.parent.name))
        dec_parts.append(_column(truth, "dec")[drawn])

        x_meas = _column(sim, "XWIN_IMAGE_DET")
        y_meas = _column(sim, "YWIN_IMAGE_DET")
        if x_meas is not None and y_meas is not None and recovered.any():
            dx = x_meas[row_of[recovered]] - _column(truth, "x")[recovered]
            dy = y_meas[row_of[recovered]] - _column(truth, "y")[recovered]
            offset_parts.append(np.hypot(dx, dy) * PIXEL_SCALE_ARCSEC)

        if found_bands is None:
            found_bands = [n[4:] for n in truth.dtype.names if n.lower().startswith("mag_")]
        for band in found_bands:
            true_mag = _column(truth, f"mag_{band}")
            meas = _column(sim, f"MAG_AUTO_{band.upper()}")
            if true_mag is None:
                continue
            measured = np.full(len(truth), np.nan)
            if meas is not None and recovered.any():
                values = meas[row_of[recovered]].astype(float)
                values[values >= 99.0] = np.nan  # SExtractor's "no flux" sentinel
                measured[recovered] = values
            parts = per_band.setdefault(band, {"t": [], "r": [], "m": [], "b": [], "s": [], "e": [], "has": False})
            parts["t"].append(true_mag[drawn].astype(float))
            parts["r"].append(recovered[drawn])
            parts["m"].append(measured[drawn])
            parts["b"].append(blended[drawn])
            spread = _column(sim, f"SPREAD_MODEL_{band.upper()}")
            spread_err = _column(sim, f"SPREADERR_MODEL_{band.upper()}")
            s_vals, e_vals = np.full(len(truth), np.nan), np.full(len(truth), np.nan)
            if spread is not None and spread_err is not None:
                parts["has"] = True
                s_vals[recovered] = spread[row_of[recovered]]
                e_vals[recovered] = spread_err[row_of[recovered]]
            parts["s"].append(s_vals[drawn])
            parts["e"].append(e_vals[drawn])

    if n_drawn == 0:
        raise InputFileError(f"the {len(triplets)} realization(s) under {outdir} hold no drawn objects "
                             "(truth catalogs empty or every object off the image): nothing to report")
    matches = {
        band: BandMatches(
            band,
            np.concatenate(p["t"]),
            np.concatenate(p["r"]),
            np.concatenate(p["m"]),
            np.concatenate(p["b"]),
            spread=np.concatenate(p["s"]),
            spread_err=np.concatenate(p["e"]),
            has_spread=p["has"],
        )
        for band, p in per_band.items()
    }
    return CampaignData(
        outdir=outdir,
        tiles=sorted(tiles),
        n_realizations=len(triplets),
        n_injected=n_injected,
        n_drawn=n_drawn,
        n_recovered=n_recovered,
        n_masked=n_masked,
        bands=list(matches),
        truth_ra=np.concatenate(ra_parts),
        truth_dec=np.concatenate(dec_parts),
        truth_tile=np.concatenate(tile_parts),
        offsets_arcsec=np.concatenate(offset_parts) if offset_parts else np.empty(0),
        matches=matches,
        seconds_spent=_seconds_spent(outdir),
        missing=missing,
        group=np.concatenate(group_parts),
        objtype=np.concatenate(type_parts),
        size_arcsec=np.concatenate(size_parts),
        blend_class=np.concatenate(class_parts),
        recovered=np.concatenate(rec_parts),
        realizations=realizations,
        match_sources=sources,
        headers={k: sorted(v) for k, v in headers.items()},
    )


def completeness(true_mag: np.ndarray, recovered: np.ndarray, edges: np.ndarray):
    """Recovered fraction per magnitude bin with a binomial (Wilson) 68% interval.

    Returns ``(centres, fraction, lower, upper, counts)``; empty bins give NaN.
    """
    idx = np.digitize(true_mag, edges) - 1
    nbins = len(edges) - 1
    ok = (idx >= 0) & (idx < nbins)
    n = np.bincount(idx[ok], minlength=nbins).astype(float)
    k = np.bincount(idx[ok], weights=recovered[ok].astype(float), minlength=nbins)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = k / n
        z = 1.0
        denom = 1 + z**2 / n
        centre = (frac + z**2 / (2 * n)) / denom
        half = z * np.sqrt(frac * (1 - frac) / n + z**2 / (4 * n**2)) / denom
    centres = 0.5 * (edges[1:] + edges[:-1])
    return centres, frac, centre - half, centre + half, n.astype(int)


def binned_bias(true_mag: np.ndarray, delta: np.ndarray, edges: np.ndarray, min_count: int = 5):
    """Median and normalised-MAD scatter of ``delta`` per bin of ``true_mag``.

    Bins with fewer than ``min_count`` finite values give NaN.
    Returns ``(centres, median, scatter, counts)``.
    """
    centres = 0.5 * (edges[1:] + edges[:-1])
    median = np.full(len(centres), np.nan)
    scatter = np.full(len(centres), np.nan)
    counts = np.zeros(len(centres), int)
    good = np.isfinite(delta) & np.isfinite(true_mag)
    idx = np.digitize(true_mag[good], edges) - 1
    values = delta[good]
    for b in range(len(centres)):
        sel = values[idx == b]
        counts[b] = len(sel)
        if len(sel) >= min_count:
            med = np.median(sel)
            median[b] = med
            scatter[b] = 1.4826 * np.median(np.abs(sel - med))
    return centres, median, scatter, counts


def _mag_edges(data: CampaignData, width: float = 0.5) -> np.ndarray:
    mags = np.concatenate([m.true_mag for m in data.matches.values()]) if data.matches else np.array([20.0, 26.0])
    mags = mags[np.isfinite(mags)]
    lo = np.floor(np.percentile(mags, 0.5) / width) * width
    hi = np.ceil(np.percentile(mags, 99.5) / width) * width
    return np.arange(lo, hi + width / 2, width)


def _reference_band(bands: Sequence[str]) -> str:
    """The band the split figures use: i (DES's detection-like band) when present, else the first."""
    return "i" if "i" in bands else bands[0]


def _bootstrap_weights(data: CampaignData) -> np.ndarray:
    return report_stats.bootstrap_weights(len(data.realizations))


def plot_completeness(data: CampaignData, path: Path, weights: np.ndarray | None = None) -> dict[str, dict]:
    """Completeness versus true magnitude per band, bootstrap errors; returns the curves (with ``m50``)."""
    weights = _bootstrap_weights(data) if weights is None else weights
    title = f"Detection completeness ({data.n_realizations} realizations, {len(data.tiles)} tiles)"
    return report_plots.completeness_by_band(data.matches, data.group, _mag_edges(data), weights, path, title)


def _fifty_percent(centres: np.ndarray, frac: np.ndarray) -> float:
    """The faintest magnitude where completeness falls through 50% (linear interpolation)."""
    return report_stats.fifty_percent(centres, frac)


def plot_bias(data: CampaignData, path: Path, weights: np.ndarray | None = None) -> dict[str, dict]:
    """MAG_AUTO minus true magnitude (median and scatter, bootstrap errors) per band; returns the curves."""
    weights = _bootstrap_weights(data) if weights is None else weights
    return report_plots.bias_by_band(data.matches, data.group, _mag_edges(data), weights, path)


def bias_bright(data: CampaignData) -> dict[str, tuple[float, float]]:
    """Per band the median offset and scatter of recovered, unblended objects brighter than 22 mag."""
    summary: dict[str, tuple[float, float]] = {}
    for band, m in data.matches.items():
        clean = m.recovered & ~m.blended
        delta = np.where(clean, m.measured_mag - m.true_mag, np.nan)
        bright = clean & np.isfinite(delta) & (m.true_mag < 22.0)
        if bright.sum() >= 5:
            d = delta[bright]
            med = float(np.median(d))
            summary[band] = (med, float(1.4826 * np.median(np.abs(d - med))))
    return summary


def plot_offsets(data: CampaignData, path: Path) -> float:
    """Histogram of measured-minus-true position offsets (arcsec); returns the median offset."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    offsets = data.offsets_arcsec[np.isfinite(data.offsets_arcsec)]
    limit = ASSOC_RADIUS_PIX * PIXEL_SCALE_ARCSEC
    ax.hist(offsets, bins=np.linspace(0, limit, 41), color="tab:blue", alpha=0.8)
    ax.axvline(limit, color="k", ls=":", lw=0.8)
    ax.set_xlabel("|detection - truth| position offset [arcsec] (det image, windowed centroid)")
    ax.set_ylabel("recovered objects")
    median = float(np.median(offsets)) if len(offsets) else float("nan")
    ax.set_title(f"Position offsets (median {median:.3f} arcsec; association radius {limit:.3f} arcsec)")
    report_plots.save(fig, path)
    return median


def _tile_outline(name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """RA, Dec (degrees) of a DES tile's unique-area boundary, or None for an unknown tile."""
    from .geometry import des_tile

    try:
        tile = des_tile(name)
    except Exception:  # noqa: BLE001 - an unknown tile only loses its outline
        return None
    lo, hi = tile.uramin, tile.uramax
    if tile.crossra0:
        lo, hi = hi, lo + 360.0
    ras = np.concatenate([np.linspace(lo, hi, 20), [hi, hi], np.linspace(hi, lo, 20), [lo, lo]])
    decs = np.concatenate([np.full(20, tile.udecmin), [tile.udecmin, tile.udecmax], np.full(20, tile.udecmax),
                           [tile.udecmax, tile.udecmin]])
    return ras % 360.0, decs


def plot_skymap(data: CampaignData, path: Path) -> dict:
    """Detection efficiency on the sky with RA/Dec axes (degrees) and the tiles' unique areas."""
    return report_plots.efficiency_skymap(data.truth_ra, data.truth_dec, data.recovered, data.truth_tile, data.tiles,
                                          _tile_outline, path)


def per_tile_table(data: CampaignData) -> dict[str, dict]:
    """Per tile: realizations, drawn, recovered fraction, m50 per band, seconds (status.json)."""
    edges = _mag_edges(data)
    seconds = _seconds_by_tile(data.outdir)
    out: dict[str, dict] = {}
    for tile in data.tiles:
        sel = data.truth_tile == tile
        m50 = {}
        for band, m in data.matches.items():
            c = report_stats.completeness_boot(m.true_mag[sel], m.recovered[sel], np.zeros(int(sel.sum()), int),
                                               edges, np.ones((1, 1), int))
            m50[band] = report_stats.fifty_percent(c["centres"], c["fraction"])
        n = int(sel.sum())
        out[tile] = {"realizations": sum(1 for t, _ in data.realizations if t == tile), "objects_drawn": n,
                     "objects_recovered": int(data.recovered[sel].sum()),
                     "recovered_fraction": float(data.recovered[sel].mean()) if n else float("nan"),
                     "m50": m50, "seconds": seconds.get(tile)}
    return out


def _seconds_by_tile(outdir: Path) -> dict[str, float]:
    """Realization and nosim wall seconds per tile from its ``status.json``."""
    out: dict[str, float] = {}
    for status_file in outdir.glob("*/status.json"):
        total = _seconds_spent_one(status_file)
        if total is not None:
            out[status_file.parent.name] = total
    return out


def _seconds_spent_one(status_file: Path) -> float | None:
    try:
        status = json.loads(status_file.read_text())
    except (OSError, ValueError):
        return None
    total, found = 0.0, False
    for entry in status.get("realizations", {}).values() if isinstance(status, dict) else ():
        if isinstance(entry, dict) and isinstance(entry.get("seconds"), int | float):
            total += float(entry["seconds"])
            found = True
    if isinstance(status, dict) and isinstance(status.get("nosim_seconds"), int | float):
        total += float(status["nosim_seconds"])
        found = True
    return total if found else None


#: ``status.json`` ``fingerprint_inputs`` entries that are the measurement's configuration files.
CONFIG_INPUTS = ("sex-config", "sex-param", "sex-filter", "sex-nnw", "swarp-config")


def provenance(data: CampaignData) -> dict:
    """What made the catalogs and the report: what a figure caption or a paper's data section needs.

    ``catalogs``: the SExtractor and SWarp versions, the campaign's config digest (``CAMPFP``, the
    fingerprint of positions, population, parameter and configuration files) and the other cards
    of the sim catalogs' headers, each a list of the distinct values found (more than one value
    means the campaign mixes runs; none means catalogs older than the cards). ``config_files``:
    the digest of each SExtractor / SWarp configuration file (``status.json``). ``versions``: the
    software making this report.
    """
    import datetime
    import platform

    from . import __version__

    releases, campaigns = set(), set()
    config_files: dict[str, set[str]] = {}
    for status_file in data.outdir.glob("*/status.json"):
        try:
            status = json.loads(status_file.read_text())
            release, camp, fp = status.get("release"), status.get("campaign"), status.get("fingerprint")
            inputs = status.get("fingerprint_inputs") or {}
        except (OSError, ValueError, AttributeError):
            continue
        if release:
            releases.add(str(release))
        if camp or fp:
            campaigns.add(f"{camp} (config fingerprint {fp})")
        if isinstance(inputs, dict):
            for key in CONFIG_INPUTS:
                if inputs.get(key):
                    config_files.setdefault(key, set()).add(str(inputs[key]))
    versions = {"balrog_runner": __version__, "python": platform.python_version(), "numpy": np.__version__}
    for module in ("galsim", "fitsio", "matplotlib"):
        with contextlib.suppress(Exception):  # a missing optional package is just not listed
            versions[module] = __import__(module).__version__
    cards = data.headers
    return {"versions": versions, "release": sorted(releases), "campaign": sorted(campaigns),
            "sextractor": cards.get("SEXVER", []), "swarp": cards.get("SWARPVER", []),
            "config_digest": cards.get("CAMPFP", []), "catalogs": cards,
            "config_files": {k: sorted(v) for k, v in config_files.items()},
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")}


def _format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "not recorded"
    hours, rem = divmod(seconds, 3600)
    minutes, secs = divmod(rem, 60)
    return f"{int(hours)}h {int(minutes):02d}m {secs:04.1f}s" if hours else f"{int(minutes)}m {secs:04.1f}s"


def star_galaxy(data: CampaignData, band: str, edges: np.ndarray, weights: np.ndarray, path: Path) -> dict:
    """SPREAD_MODEL star/galaxy completeness and purity in ``band`` (``report_stats.spread_class``).

    Over the recovered objects of known truth type (``objtype`` 0 or 1), binned in measured
    ``MAG_AUTO_<BAND>``. Without ``SPREAD_MODEL_<BAND>``/``SPREADERR_MODEL_<BAND>`` in the sim
    catalogs (config/light.param) or without ``objtype`` in the truth, no figure: the returned dict
    says why (``available`` False, ``reason``).
    """
    m = data.matches[band]
    b = band.upper()
    base = {"band": band, "classifier": f"SPREAD_MODEL_{b} + (5/3) SPREADERR_MODEL_{b}",
            "galaxy_above": report_stats.SG_GALAXY_MIN, "star_abs_below": report_stats.SG_STAR_MAX,
            "convention": "DES Y1A1 GOLD MODEST_CLASS (Drlica-Wagner et al. 2018, arXiv:1708.01531)",
            "magnitude": f"MAG_AUTO_{b} (measured)", "objects": "recovered, truth objtype known"}
    if not m.has_spread or m.spread is None:
        return {**base, "available": False,
                "reason": f"the sim catalogs have no SPREAD_MODEL_{b} / SPREADERR_MODEL_{b} columns "
                          "(measured with a parameter file without them, e.g. config/light.param)"}
    sel = m.recovered & ((data.objtype == 0) | (data.objtype == 1))
    if not sel.any():
        return {**base, "available": False,
                "reason": "no recovered object has a known truth type (objtype 0 galaxy / 1 star)"}
    measured = report_stats.spread_class(m.spread[sel], m.spread_err[sel])
    curves = report_plots.star_galaxy(m.measured_mag[sel], data.objtype[sel], measured, data.group[sel], edges,
                                      weights, band, path)
    return {**base, "available": True, **curves}


def write_report(outdir: str | Path, report_dir: str | Path | None = None) -> Path:
    """Make every plot, ``summary.json``, the HTML page and ``report.pdf`` for the campaign in ``outdir``.

    Returns the page.
    """
    data = load_campaign(outdir)
    report_dir = Path(report_dir) if report_dir else data.outdir / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    from .blends import CLASS_NAMES

    weights = _bootstrap_weights(data)
    edges = _mag_edges(data)
    ref = _reference_band(data.bands)
    curves = plot_completeness(data, report_dir / "completeness.png", weights)
    bias_curves = plot_bias(data, report_dir / "photometry.png", weights)
    bias = bias_bright(data)
    median_offset = plot_offsets(data, report_dir / "offsets.png")
    skymap = plot_skymap(data, report_dir / "skymap.png")
    m = data.matches[ref]
    by_class = report_plots.split_panels(m, data.blend_class, CLASS_NAMES, report_plots.CLASS_COLOURS, data.group,
                                         edges, weights, report_dir / "blends.png", "blend class")
    by_type = report_plots.split_panels(m, data.objtype, report_plots.OBJTYPE_NAMES, report_plots.TYPE_COLOURS,
                                        data.group, edges, weights, report_dir / "objtype.png", "object type")
    scatter = report_plots.magnitude_scatter(m, data.objtype, report_dir / "magnitudes.png")
    by_size = report_plots.completeness_by_size(m, data.size_arcsec, data.objtype, data.group, weights,
                                                report_dir / "size.png")
    sg_png = report_dir / "stargalaxy.png"
    sg = star_galaxy(data, ref, edges, weights, sg_png)
    if not sg["available"]:
        sg_png.unlink(missing_ok=True)  # a figure from an earlier report of other catalogs is not this one's

    numbers = {
        "tiles": len(data.tiles),
        "realizations": data.n_realizations,
        "objects_injected": data.n_injected,
        "objects_drawn": data.n_drawn,
        "objects_on_masked_pixels": data.n_masked,
        "objects_recovered": data.n_recovered,
        "recovered_fraction": data.n_recovered / data.n_drawn if data.n_drawn else float("nan"),
        "median_offset_arcsec": median_offset,
        "seconds_spent": data.seconds_spent,
        "m50": {b: c["m50"] for b, c in curves.items()},
        "m50_error": {b: c["m50_error"] for b, c in curves.items()},
        "bias_bright": {b: {"median": v[0], "scatter": v[1]} for b, v in bias.items()},
        "missing": {"tiles": data.missing.tiles, "realizations_failed": data.missing.failed,
                    "realizations_incomplete": data.missing.incomplete, "realizations_lost": data.missing.lost},
        "reference_band": ref,
        "bootstrap": {"unit": "realization", "replicas": int(len(weights)), "seed": report_stats.BOOTSTRAP_SEED,
                      "groups": len(data.realizations), "error": "std (ddof=1) of the replicas"},
        "magnitude_edges": [float(e) for e in edges],
        "completeness": curves,
        "bias": bias_curves,
        "by_blend_class": by_class,
        "blend_classes_from": data.match_sources,
        "by_objtype": by_type,
        "star_galaxy": sg,
        "magnitude_scatter_objects": scatter,
        "completeness_by_size": by_size,
        "per_tile": per_tile_table(data),
        "skymap": skymap,
        "provenance": provenance(data),
    }
    atomic_write_text(report_dir / "summary.json", json.dumps(numbers, indent=2, default=float) + "\n")
    tables = report_tables(data, numbers)
    figures = [(name, caption) for name, caption in figure_captions(numbers) if (report_dir / name).exists()]
    from . import report_pdf

    report_pdf.write_pdf(report_dir / "report.pdf", "Balrog campaign report", str(data.outdir), tables,
                         [(report_dir / name, caption) for name, caption in figures])
    page = report_dir / "index.html"
    atomic_write_text(page, _html_page(data, tables, figures, numbers))
    log.info("report written to %s (and report.pdf)", page)
    return page


def _fmt(value: float, spec: str) -> str:
    """A number for a table; NaN (not measured) as an en dash."""
    return "–" if value is None or not np.isfinite(value) else format(value, spec)


def _percent(fraction: float) -> str:
    """A fraction as a percentage; NaN (nothing to divide by) as an en dash."""
    return "–" if not np.isfinite(fraction) else f"{100 * fraction:.1f}%"


def _one(values: Sequence[str]) -> str:
    """Distinct header values as one cell: ``not recorded`` when none, all of them when several."""
    return ", ".join(values) if values else "not recorded"


def report_tables(data: CampaignData, numbers: dict):
    """The tables of the page and of the PDF's first page(s), as text cells (one formatting for both)."""
    from .report_pdf import Table

    nan = float("nan")
    prov = numbers["provenance"]
    rows = [
        ["Tiles", ", ".join(data.tiles)],
        ["Realizations", str(data.n_realizations)],
        ["Objects injected", f"{data.n_injected:,}"],
        ["Objects drawn and counted (not on a masked pixel)", f"{data.n_drawn:,}"],
        ["Drawn on a masked pixel (left out)", f"{data.n_masked:,}"],
        ["Objects recovered", f"{data.n_recovered:,} ({100 * numbers['recovered_fraction']:.1f}%)"],
        ["Median position offset", f"{numbers['median_offset_arcsec']:.3f} arcsec"],
        ["Time spent in realizations", _format_seconds(data.seconds_spent)],
        ["Error bars", f"bootstrap over {numbers['bootstrap']['groups']} realizations, "
                       f"{numbers['bootstrap']['replicas']} replicas, seed {numbers['bootstrap']['seed']}"],
    ]
    if data.missing:
        rows.append(["Missing (partial campaign)", data.missing.describe()])
    cards = prov["catalogs"]
    config_files = ", ".join(f"{k} {'/'.join(v)}" for k, v in prov["config_files"].items())
    prov_rows = [
        ["Release", ", ".join(prov["release"]) or _one(cards.get("RELEASE", []))],
        ["Campaign", ", ".join(prov["campaign"]) or _one(cards.get("CAMPAIGN", []))],
        ["Config digest (CAMPFP; per tile if several)", _one(prov["config_digest"])],
        ["SExtractor (catalogs)", _one(prov["sextractor"])],
        ["SWarp (catalogs)", _one(prov["swarp"])],
        ["balrog_runner, GalSim (catalogs)",
         f"{_one(cards.get('BALRVER', []))}; GalSim {_one(cards.get('GALSIMV', []))}"],
        ["Configuration file digests", config_files or "not recorded"],
        ["Report software", ", ".join(f"{k} {v}" for k, v in prov["versions"].items())],
        ["Report made", prov["date"]],
    ]
    band_rows = [[b, _fmt(numbers["m50"].get(b, nan), ".2f") + " ± " + _fmt(numbers["m50_error"].get(b, nan), ".2f"),
                  _fmt(numbers["bias_bright"].get(b, {}).get("median", nan), "+.3f"),
                  _fmt(numbers["bias_bright"].get(b, {}).get("scatter", nan), ".3f")] for b in data.bands]
    tile_rows = [[t, str(v["realizations"]), f"{v['objects_drawn']:,}", f"{100 * v['recovered_fraction']:.1f}%",
                  *(_fmt(v["m50"].get(b, nan), ".2f") for b in data.bands), _format_seconds(v["seconds"])]
                 for t, v in numbers["per_tile"].items()]
    split_rows = [[what, name, f"{v['objects']:,}", f"{100 * v['recovered_fraction']:.1f}%", _fmt(v["m50"], ".2f")]
                  for what, split in (("blend class", numbers["by_blend_class"]), ("object type", numbers["by_objtype"]))
                  for name, v in split.items()]
    src = numbers["blend_classes_from"]
    ref = numbers["reference_band"]
    tables = [
        Table("Campaign", rows),
        Table("Provenance", prov_rows),
        Table("Per band", band_rows, ["band", "50% completeness [mag]", "median Δmag (<22) [mag]", "scatter (<22) [mag]"]),
        Table("Per tile", tile_rows, ["tile", "realizations", "drawn", "recovered",
                                      *(f"m50 {b}" for b in data.bands), "time"], note="m50: 50% completeness [mag]."),
        Table(f"By blend class and object type (band {ref})", split_rows,
              ["split", "class", "drawn", "recovered", "m50 [mag]"],
              note=f"Blend classes from {src['file']} match table(s), {src['recomputed']} recomputed from the "
                   f"tile's nosim catalog, {src['unknown']} unknown (no nosim catalog)."),
    ]
    sg = numbers["star_galaxy"]
    title = f"Star/galaxy separation (band {sg['band']})"
    if sg["available"]:
        sg_rows = [[name, f"{sg[name]['true']:,}", f"{sg[name]['classified']:,}", f"{sg[name]['both']:,}",
                    _percent(sg[name]["completeness"]), _percent(sg[name]["purity"])]
                   for name in ("galaxies", "stars")]
        tables.append(Table(title, sg_rows, ["class", "true (recovered)", "classified", "true and classified",
                                             "completeness", "purity"],
                            note=f"{sg['classifier']}: galaxy > {sg['galaxy_above']}, star |value| < "
                                 f"{sg['star_abs_below']} ({sg['convention']}). Recovered objects of "
                                 "known truth type, all magnitudes; per magnitude in the figure."))
    else:
        tables.append(Table(title, [], ["class"], note=f"Not available: {sg['reason']}."))
    return tables


def figure_captions(numbers: dict) -> list[tuple[str, str]]:
    """``(png name, caption)`` of every figure, in page order."""
    ref = numbers["reference_band"]
    sg = numbers["star_galaxy"]
    return [
        ("completeness.png", "Completeness: recovered / drawn per true-magnitude bin; bootstrap errors."),
        ("photometry.png", "MAG_AUTO - true magnitude (median, 1.4826 MAD) of recovered objects not within 2 px "
                           "of a pre-existing detection; bootstrap errors."),
        ("blends.png", f"Band {ref}: completeness and bias of isolated objects and of objects within 2 arcsec "
                       "of a fainter / brighter pre-existing (nosim) detection."),
        ("objtype.png", f"Band {ref}: completeness and bias of stars and galaxies."),
        ("stargalaxy.png", f"Band {ref}: completeness and purity of the galaxy and star classes of "
                           f"{sg['classifier']} (galaxy > {sg['galaxy_above']}, star |value| < {sg['star_abs_below']}; "
                           "DES Y1 MODEST_CLASS) for recovered objects, against measured magnitude; bootstrap errors."),
        ("magnitudes.png", f"Measured MAG_AUTO_{ref.upper()} against injected magnitude, stars and galaxies."),
        ("size.png", "Galaxy completeness against half-light radius and mean surface brightness."),
        ("offsets.png", "Offset between the detection (riz image, windowed centroid) and the injected position."),
        ("skymap.png", "Detection efficiency on the sky (RA, Dec in degrees) over the tiles' unique areas."),
    ]


def _html_table(table) -> str:
    esc = html.escape
    head = f"<h2>{esc(table.title)}</h2>" if table.title != "Campaign" else ""
    note = f"<p>{esc(table.note)}</p>" if table.note else ""
    if table.header is None:
        body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in table.rows)
    elif not table.rows:
        return head + note
    else:
        body = ("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in table.header) + "</tr>"
                + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in table.rows))
    return f"{head}{note}<table>{body}</table>\n"


#: Figures of two panels side by side: at the page's 480 px their labels were unreadable.
WIDE_FIGURES = ("size.png",)


def _html_page(data: CampaignData, tables: list, figures: list[tuple[str, str]], numbers: dict) -> str:
    esc = html.escape
    figure_html = "".join(
        f'<figure{" class=wide" if name in WIDE_FIGURES else ""}><img src="{name}" alt="{esc(caption)}">'
        f'<figcaption>{esc(caption)}</figcaption></figure>'
        for name, caption in figures
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Balrog campaign report: {esc(data.outdir.name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse;margin-bottom:1em}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:left}}figure{{display:inline-block;margin:1em;width:480px;vertical-align:top}}figure.wide{{width:980px}}
img{{width:100%}}</style></head><body>
<h1>Balrog campaign report</h1>
<p>Campaign directory: <code>{esc(str(data.outdir))}</code> &middot; <a href="report.pdf">report.pdf</a>
(these tables and every figure, one per page)</p>
{"".join(_html_table(t) for t in tables)}
<h2>Plots</h2>
{figure_html}
</body></html>
"""
