"""The report's figures for a talk or a paper: every curve with bootstrap error bars.

Each function draws one PNG (written atomically) and returns the numbers it plotted, so
``summary.json`` holds exactly what the figures show (and a test can recompute them from
the catalogs). Error bars: :mod:`report_stats` (bootstrap over realizations, seeded).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from . import stats as rs

#: Object types of the truth table.
OBJTYPE_NAMES = {0: "galaxies", 1: "stars"}
CLASS_COLOURS = {0: "tab:blue", 1: "tab:orange", 2: "tab:red"}
TYPE_COLOURS = {0: "tab:blue", 1: "tab:red"}


def band_colour(band: str) -> str:
    return {"g": "tab:green", "r": "tab:red", "i": "tab:orange", "z": "tab:purple", "y": "tab:brown"}.get(
        band.lower(), "tab:gray")


def save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)


def _curve(d: dict) -> dict:
    """JSON-ready lists of a binned result (NaN stays NaN; summary.json writes it as NaN)."""
    return {k: [float(v) if k != "counts" else int(v) for v in arr] for k, arr in d.items()}


def _errorbar(ax, x, y, err, **kw) -> None:
    ok = np.isfinite(y)
    ax.errorbar(x[ok], y[ok], yerr=np.where(np.isfinite(err[ok]), err[ok], 0), fmt="-o", ms=3, capsize=2,
                lw=1, **kw)


def completeness_by_band(matches, group, edges, weights, path: Path, title: str) -> dict:
    """Completeness against true magnitude per band; returns ``{band: curve}`` (with ``m50``)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    out = {}
    for band, m in matches.items():
        c = rs.completeness_boot(m.true_mag, m.recovered, group, edges, weights)
        _errorbar(ax, c["centres"], c["fraction"], c["error"], color=band_colour(band), label=band)
        out[band] = {**_curve(c), "m50": rs.fifty_percent(c["centres"], c["fraction"]),
                     "m50_error": rs.fifty_percent_error(m.true_mag, m.recovered, group, edges, weights)}
    ax.axhline(0.5, color="k", lw=0.6, ls=":")
    ax.set_xlabel("true magnitude [mag]")
    ax.set_ylabel("completeness (recovered / drawn)")
    ax.set_ylim(-0.02, 1.05)
    ax.legend(title="band", frameon=False)
    ax.set_title(title, fontsize=10)
    save(fig, path)
    return out


def bias_by_band(matches, group, edges, weights, path: Path) -> dict:
    """Median and scatter of MAG_AUTO - true per band (recovered, unblended); returns curves."""
    import matplotlib.pyplot as plt

    fig, (ax_med, ax_sig) = plt.subplots(2, 1, figsize=(6.4, 6.0), sharex=True)
    out = {}
    for band, m in matches.items():
        clean = m.recovered & ~m.blended
        delta = np.where(clean, m.measured_mag - m.true_mag, np.nan)
        b = rs.bias_boot(m.true_mag, delta, group, edges, weights)
        _errorbar(ax_med, b["centres"], b["median"], b["median_error"], color=band_colour(band), label=band)
        _errorbar(ax_sig, b["centres"], b["scatter"], b["scatter_error"], color=band_colour(band))
        out[band] = _curve(b)
    ax_med.axhline(0, color="k", lw=0.6)
    ax_med.set_ylabel("median MAG_AUTO - true [mag]")
    ax_sig.set_ylabel("scatter (1.4826 MAD) [mag]")
    ax_sig.set_xlabel("true magnitude [mag]")
    # beside the axes: inside, the bright-end points (all near 0) ran through it
    ax_med.legend(title="band", frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax_med.set_title("Photometric bias and scatter of recovered objects not on a pre-existing detection", fontsize=10)
    save(fig, path)
    return out


def split_panels(m, labels: np.ndarray, names: dict[int, str], colours: dict[int, str], group, edges, weights,
                 path: Path, what: str) -> dict:
    """Completeness and bias of one band split by ``labels`` (blend class, object type)."""
    import matplotlib.pyplot as plt

    fig, (ax_c, ax_b) = plt.subplots(2, 1, figsize=(6.4, 7.0), sharex=True)
    out = {}
    delta = np.where(m.recovered, m.measured_mag - m.true_mag, np.nan)
    for value, name in names.items():
        sel = labels == value
        if not sel.any():
            continue
        c = rs.completeness_boot(m.true_mag[sel], m.recovered[sel], group[sel], edges, weights)
        b = rs.bias_boot(m.true_mag[sel], delta[sel], group[sel], edges, weights)
        label = f"{name} ({int(sel.sum())})"
        _errorbar(ax_c, c["centres"], c["fraction"], c["error"], color=colours.get(value), label=label)
        _errorbar(ax_b, b["centres"], b["median"], b["median_error"], color=colours.get(value), label=label)
        out[name] = {"objects": int(sel.sum()), "recovered_fraction": float(m.recovered[sel].mean()),
                     "m50": rs.fifty_percent(c["centres"], c["fraction"]), "completeness": _curve(c),
                     "bias": _curve(b)}
    ax_c.axhline(0.5, color="k", lw=0.6, ls=":")
    ax_c.set_ylabel("completeness")
    ax_c.set_ylim(-0.02, 1.05)
    if out:
        ax_c.legend(frameon=False, fontsize=8)
    else:
        ax_c.text(0.5, 0.5, f"no {what} known (no match tables, no nosim catalog)", transform=ax_c.transAxes,
                  ha="center")
    ax_c.set_title(f"Band {m.band}: completeness and bias by {what}", fontsize=10)
    ax_b.axhline(0, color="k", lw=0.6)
    ax_b.set_ylabel(f"median MAG_AUTO_{m.band.upper()} - true [mag]")
    ax_b.set_xlabel(f"true {m.band} magnitude [mag]")
    save(fig, path)
    return out


def magnitude_scatter(m, objtype: np.ndarray, path: Path) -> dict:
    """Measured against injected magnitude of recovered objects, stars and galaxies apart."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 5.4))
    ok = m.recovered & np.isfinite(m.measured_mag)
    lo = float(np.nanmin(m.true_mag)) - 0.3 if len(m.true_mag) else 18.0
    hi = float(np.nanmax(m.true_mag)) + 0.3 if len(m.true_mag) else 26.0
    out = {}
    for value, name in [*OBJTYPE_NAMES.items(), (-1, "unknown type")]:
        sel = ok & (objtype == value)
        if sel.any():
            ax.scatter(m.true_mag[sel], m.measured_mag[sel], s=4, alpha=0.5, color=TYPE_COLOURS.get(value, "gray"),
                       label=f"{name} ({int(sel.sum())})", rasterized=True)
            out[name] = int(sel.sum())
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.7)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo - 1.0, hi + 1.0)
    ax.set_xlabel(f"injected {m.band} magnitude [mag]")
    ax.set_ylabel(f"measured MAG_AUTO_{m.band.upper()} [mag]")
    if out:  # nothing recovered (every object too faint): no points, no legend
        ax.legend(frameon=False, fontsize=8, markerscale=3)
    ax.set_title("Injected against measured magnitude (recovered objects)", fontsize=10)
    save(fig, path)
    return out


def completeness_by_size(m, size: np.ndarray, objtype: np.ndarray, group, weights, path: Path) -> dict:
    """Galaxy completeness against half-light radius and against mean surface brightness.

    Surface brightness within the half-light radius: ``mag + 2.5 log10(2 pi hlr^2)``
    (mag per arcsec^2, half the flux over pi hlr^2).
    """
    import matplotlib.pyplot as plt

    fig, (ax_r, ax_mu) = plt.subplots(1, 2, figsize=(10.0, 4.2), sharey=True)
    gal = (objtype == 0) & np.isfinite(size) & (size > 0)
    out: dict = {"galaxies": int(gal.sum())}
    if gal.sum() >= 2:
        r = size[gal]
        r_edges = np.unique(np.quantile(r, np.linspace(0, 1, 9)))
        r_edges[-1] = np.nextafter(r_edges[-1], np.inf)
        c = rs.completeness_boot(r, m.recovered[gal], group[gal], r_edges, weights)
        _errorbar(ax_r, c["centres"], c["fraction"], c["error"], color="tab:blue")
        out["hlr"] = {**_curve(c), "edges": [float(e) for e in r_edges]}
        mu = m.true_mag[gal] + 2.5 * np.log10(2 * np.pi * r**2)
        mu_edges = np.arange(np.floor(np.nanmin(mu)), np.ceil(np.nanmax(mu)) + 0.5, 0.5)
        c = rs.completeness_boot(mu, m.recovered[gal], group[gal], mu_edges, weights)
        _errorbar(ax_mu, c["centres"], c["fraction"], c["error"], color="tab:blue")
        out["surface_brightness"] = _curve(c)
    ax_r.set_xlabel("half-light radius (flux-weighted, major axis) [arcsec]")
    ax_mu.set_xlabel(f"mean {m.band} surface brightness within hlr [mag arcsec$^{{-2}}$]")
    ax_r.set_ylabel("galaxy completeness")
    ax_r.set_ylim(-0.02, 1.05)
    fig.suptitle(f"Galaxy completeness against size and surface brightness ({int(gal.sum())} galaxies)", fontsize=10)
    save(fig, path)
    return out


def efficiency_skymap(ra: np.ndarray, dec: np.ndarray, recovered: np.ndarray, tile_of: np.ndarray, tiles: list[str],
                      outline: Callable[[str], tuple[np.ndarray, np.ndarray] | None], path: Path) -> dict:
    """Detection efficiency (recovered / drawn) on the sky, RA increasing to the left.

    Cells are hexagons (about ten drawn objects each, at least; an efficiency from two objects
    is noise) in (RA offset, Dec) about the campaign's centre, drawn with aspect 1/cos(Dec), so a
    campaign across RA = 0 stays contiguous; the tick labels are true RA in degrees.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ra_rad = np.deg2rad(ra)
    ra0 = float(np.rad2deg(np.arctan2(np.sin(ra_rad).mean(), np.cos(ra_rad).mean()))) % 360.0
    dec0 = float(np.mean(dec))
    cosd = np.cos(np.deg2rad(dec0))
    x = ((ra - ra0 + 180.0) % 360.0 - 180.0)
    fig, ax = plt.subplots(figsize=(7.0, 5.6))
    extent = max(float(np.ptp(x * cosd)), float(np.ptp(dec)), 1e-3)
    cells = int(np.clip(np.sqrt(len(ra) / 10.0), 4, 40))  # about 10 objects or more per cell
    hb = ax.hexbin(x, dec, C=recovered.astype(float), reduce_C_function=np.mean, gridsize=cells, cmap="viridis",
                   vmin=0, vmax=1, mincnt=1)
    fig.colorbar(hb, ax=ax, label="detection efficiency (recovered / drawn)")
    pad_x, pad_y = 0.08 * extent / cosd, 0.08 * extent
    xlim = (float(x.max()) + pad_x, float(x.min()) - pad_x)  # RA grows to the left (east)
    ylim = (float(dec.min()) - pad_y, float(dec.max()) + pad_y)
    for name in tiles:
        box = outline(name)
        if box is None:
            continue
        bra, bdec = box
        ax.plot((bra - ra0 + 180.0) % 360.0 - 180.0, bdec, color="k", lw=0.8)
        sel = np.char.startswith(np.asarray(tile_of, dtype=str), name)
        if sel.any():  # the name above its objects, inside the view (a cutout is smaller than its tile)
            ax.text(float(np.median(x[sel])), float(dec[sel].max()) + 0.3 * pad_y, name, ha="center", va="bottom",
                    fontsize=8)
    ax.set_aspect(1.0 / cosd)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{(v + ra0) % 360.0:.3f}"))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3f}"))
    ax.set_xlabel("RA [deg]")
    ax.set_ylabel("Dec [deg]")
    ax.set_title(f"Detection efficiency on the sky ({len(ra)} drawn objects)", fontsize=10)
    ax.grid(alpha=0.3)
    save(fig, path)
    return {"ra_centre": ra0, "dec_centre": dec0, "cells": cells}


def star_galaxy(x: np.ndarray, truth_type: np.ndarray, measured_type: np.ndarray, group, edges, weights,
                band: str, path: Path) -> dict:
    """Galaxy and star completeness and purity of the SPREAD_MODEL classifier against MAG_AUTO.

    ``x`` is the measured ``MAG_AUTO`` of the band (what a catalog user cuts on); classes and
    thresholds: :func:`report_stats.spread_class`. Returns the curves and the totals.
    """
    import matplotlib.pyplot as plt

    found = rs.purity_completeness(x, truth_type, measured_type, group, edges, weights)
    fig, axes = plt.subplots(2, 1, figsize=(6.4, 7.0), sharex=True)
    out: dict = {}
    for ax, (name, res) in zip(axes, found.items(), strict=True):
        t = res["totals"]
        _errorbar(ax, res["completeness"]["centres"], res["completeness"]["fraction"], res["completeness"]["error"],
                  color="tab:blue", label=f"completeness ({t['both']}/{t['true']} true {name})")
        _errorbar(ax, res["purity"]["centres"], res["purity"]["fraction"], res["purity"]["error"],
                  color="tab:red", label=f"purity ({t['both']}/{t['classified']} classified {name})")
        ax.set_ylim(-0.02, 1.05)
        ax.set_ylabel(f"{name}: fraction")
        ax.legend(frameon=False, fontsize=8, loc="lower left")
        if not t["true"]:  # e.g. a population without stars: say so rather than leave the panel blank
            ax.text(0.5, 0.55, f"no {name} among the recovered objects:\nno completeness; purity counts "
                    f"the {t['classified']} objects classified {name}", transform=ax.transAxes, ha="center",
                    va="center", fontsize=9, color="0.3")
        out[name] = {**t, "completeness_curve": _curve(res["completeness"]), "purity_curve": _curve(res["purity"])}
    b = band.upper()
    axes[0].set_title(f"Star/galaxy separation: v = SPREAD_MODEL_{b} + 5/3 SPREADERR_MODEL_{b}\n"
                      f"galaxy: v > {rs.SG_GALAXY_MIN}, star: |v| < {rs.SG_STAR_MAX} (DES Y1 MODEST_CLASS)",
                      fontsize=10)
    axes[1].set_xlabel(f"measured MAG_AUTO_{b} [mag]")
    save(fig, path)
    return out
