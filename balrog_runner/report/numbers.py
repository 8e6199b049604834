"""The report's numbers: completeness, bias, offsets, sky efficiency, per tile, provenance.

Each function takes the :class:`.load.CampaignData` and returns plain numbers (drawing the
figure that shows them where there is one, with :mod:`.plots`), so ``summary.json``, the
HTML page and the PDF all show the same values.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import plots as report_plots
from . import stats as report_stats
from .load import ASSOC_RADIUS_PIX, PIXEL_SCALE_ARCSEC, CampaignData, seconds_by_tile

log = logging.getLogger(__name__)


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



def mag_edges(data: CampaignData, width: float = 0.5) -> np.ndarray:
    mags = np.concatenate([m.true_mag for m in data.matches.values()]) if data.matches else np.array([20.0, 26.0])
    mags = mags[np.isfinite(mags)]
    if not mags.size:
        mags = np.array([20.0, 26.0])
    lo = np.floor(np.percentile(mags, 0.5) / width) * width
    # at least one bin: every object at one magnitude (a test population) gives lo == hi
    hi = max(np.ceil(np.percentile(mags, 99.5) / width) * width, lo + width)
    return np.arange(lo, hi + width / 2, width)



def reference_band(bands: Sequence[str]) -> str:
    """The band the split figures use: i (DES's detection-like band) when present, else the first."""
    return "i" if "i" in bands else bands[0]



def bootstrap_weights(data: CampaignData) -> np.ndarray:
    return report_stats.bootstrap_weights(len(data.realizations))



def plot_completeness(data: CampaignData, path: Path, weights: np.ndarray | None = None) -> dict[str, dict]:
    """Completeness versus true magnitude per band, bootstrap errors; returns the curves (with ``m50``)."""
    weights = bootstrap_weights(data) if weights is None else weights
    title = f"Detection completeness ({data.n_realizations} realizations, {len(data.tiles)} tiles)"
    return report_plots.completeness_by_band(data.matches, data.group, mag_edges(data), weights, path, title)



def _fifty_percent(centres: np.ndarray, frac: np.ndarray) -> float:
    """The faintest magnitude where completeness falls through 50% (linear interpolation)."""
    return report_stats.fifty_percent(centres, frac)



def plot_bias(data: CampaignData, path: Path, weights: np.ndarray | None = None) -> dict[str, dict]:
    """MAG_AUTO minus true magnitude (median and scatter, bootstrap errors) per band; returns the curves."""
    weights = bootstrap_weights(data) if weights is None else weights
    return report_plots.bias_by_band(data.matches, data.group, mag_edges(data), weights, path)



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
    from ..sky.geometry import des_tile

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
    edges = mag_edges(data)
    seconds = seconds_by_tile(data.outdir)
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

    from .. import __version__

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
