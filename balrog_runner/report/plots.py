"""The report's figures, drawn from ``summary.json``'s numbers into a region of a figure.

Each figure is one :class:`FigureSpec`: a draw function that lays its panels out in a box
(inches) of any matplotlib figure, so the same drawing becomes a PNG for the page (a
figure of the box's size) and a vector page region of ``report.pdf`` (an A4 figure).
Every text is :data:`FONT_SIZE` points: the figures are drawn at the width they are shown
(:data:`WIDTH` inches; the page shows them at 96 px per inch), so a legend reads as the
page's own small text. Bins with fewer objects than the report's minimum count are not
drawn; points are never joined across an empty bin; horizontal bars show bin widths where
bins are not uniform in the figure's axis.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from . import exprs as ex

#: Object types of the truth table.
OBJTYPE_NAMES = {0: "galaxies", 1: "stars"}
CLASS_COLOURS = {"isolated": "tab:blue", "near a fainter": "tab:orange", "near a brighter": "tab:red"}
TYPE_COLOURS = {"galaxies": "tab:blue", "stars": "tab:red", "unknown type": "0.5"}
#: Width of every figure (inches) and its one text size (points).
WIDTH = 7.0
FONT_SIZE = 9
#: PNG resolution: 1.5 x the page's 96 px per inch, sharp on a high-density screen.
PNG_DPI = 144
#: A bias or scatter bin is well measured when its error bar is at most this (mag); the
#: panels' ranges are set from those bins.
WELL_MEASURED_ERROR = 0.05
RC = {"font.size": FONT_SIZE, "axes.titlesize": FONT_SIZE, "axes.labelsize": FONT_SIZE,
      "xtick.labelsize": FONT_SIZE, "ytick.labelsize": FONT_SIZE, "legend.fontsize": FONT_SIZE,
      "legend.title_fontsize": FONT_SIZE, "figure.titlesize": FONT_SIZE, "pdf.fonttype": 42, "ps.fonttype": 42,
      "font.family": "DejaVu Sans", "axes.linewidth": 0.8, "lines.linewidth": 1.0, "legend.frameon": False}


def band_colour(band: str) -> str:
    return {"g": "tab:green", "r": "tab:red", "i": "tab:orange", "z": "tab:purple", "y": "tab:brown"}.get(
        band.lower(), "tab:gray")


@contextlib.contextmanager
def style() -> Iterator[None]:
    import matplotlib

    with matplotlib.rc_context(RC):
        yield


@dataclass(frozen=True)
class Box:
    """A region of a figure, in inches from its lower left corner."""

    left: float
    bottom: float
    width: float
    height: float

    def grid(self, fig, nrows: int, ncols: int, pad: tuple[float, float, float, float] = (0.75, 0.55, 0.2, 0.35),
             **kw):
        """A GridSpec filling the box less ``pad`` (left, bottom, right, top; inches)."""
        fw, fh = fig.get_size_inches()
        pl, pb, pr, pt = pad
        return fig.add_gridspec(nrows, ncols, left=(self.left + pl) / fw, right=(self.left + self.width - pr) / fw,
                                bottom=(self.bottom + pb) / fh, top=(self.bottom + self.height - pt) / fh, **kw)

    def title(self, fig, text: str) -> None:
        if not text:
            return
        fw, fh = fig.get_size_inches()
        fig.text((self.left + 0.75) / fw, (self.bottom + self.height - 0.1) / fh, text, va="top", ha="left",
                 fontsize=FONT_SIZE)


def _a(values) -> np.ndarray:
    return np.asarray(values, dtype=float)


def _segments(mask: np.ndarray) -> list[slice]:
    """Runs of consecutive True: the pieces a line may join."""
    out, start = [], None
    for i, m in enumerate(list(mask) + [False]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            out.append(slice(start, i))
            start = None
    return out


def _fraction_points(ax, curve: dict, colour: str, label: str | None, lines: bool = True, xerr=None,
                     marker: str = "o", open_marker: bool = False) -> None:
    """A binned fraction with its interval; only shown bins; lines only within runs of adjacent bins."""
    x, p = _a(curve["centres"]), _a(curve["fraction"])
    lo, hi = _a(curve["lower"]), _a(curve["upper"])
    shown = np.asarray(curve["shown"], bool) & np.isfinite(p)
    if not shown.any():
        return
    yerr = np.vstack([p - lo, hi - p])[:, shown]
    xe = None if xerr is None else np.asarray(xerr)[:, shown]
    ax.errorbar(x[shown], p[shown], yerr=yerr, xerr=xe, fmt=marker, ms=3, color=colour, capsize=0, lw=0.9,
                label=label, mfc="none" if open_marker else colour)
    if lines:
        for seg in _segments(shown):
            ax.plot(x[seg], p[seg], "-", color=colour, lw=0.6, alpha=0.6)


def _range_from(values: list[np.ndarray], errors: list[np.ndarray], counts: list[np.ndarray], min_count: int,
                include_zero: bool) -> tuple[float, float] | None:
    """The y range covering the well-measured bins (:data:`WELL_MEASURED_ERROR`), padded."""
    lows, highs = [], []
    for v, e, n in zip(values, errors, counts, strict=True):
        ok = np.isfinite(v) & (n >= min_count)
        well = ok & np.isfinite(e) & (e <= WELL_MEASURED_ERROR)
        use = well if well.any() else ok
        if use.any():
            ee = np.where(np.isfinite(e), e, 0.0)
            lows.append(float(np.min(v[use] - ee[use])))
            highs.append(float(np.max(v[use] + ee[use])))
    if not lows:
        return None
    lo, hi = min(lows), max(highs)
    if include_zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    span = max(hi - lo, 0.01)
    return lo - 0.1 * span, hi + 0.1 * span


def _clipped_points(ax, x, v, e, n, min_count: int, colour: str, label: str | None) -> None:
    """Median-like points with errors; those outside the axis range as open triangles on its edge."""
    ok = np.isfinite(v) & (n >= min_count)
    if not ok.any():
        return
    lo, hi = ax.get_ylim()
    inside = ok & (v >= lo) & (v <= hi)
    ee = np.where(np.isfinite(e), e, 0.0)
    if inside.any():
        ax.errorbar(x[inside], v[inside], yerr=ee[inside], fmt="o", ms=3, color=colour, lw=0.9, capsize=0,
                    label=label)
        for seg in _segments(inside):
            ax.plot(x[seg], v[seg], "-", color=colour, lw=0.6, alpha=0.6)
    above, below = ok & (v > hi), ok & (v < lo)
    pad = 0.03 * (hi - lo)
    ax.plot(x[above], np.full(above.sum(), hi - pad), "^", mfc="none", color=colour, ms=5)
    ax.plot(x[below], np.full(below.sum(), lo + pad), "v", mfc="none", color=colour, ms=5)


# ------------------------------------------------------------------ the figures


def draw_completeness(fig, box: Box, numbers: dict) -> None:
    gs = box.grid(fig, 2, 1, height_ratios=[3, 1], hspace=0.08, pad=(0.75, 0.55, 0.2, 0.45))
    ax, axn = fig.add_subplot(gs[0]), fig.add_subplot(gs[1])
    edges = _a(numbers["magnitude_edges"])
    fine = np.linspace(edges[0], edges[-1], 400)
    from . import stats

    for band, c in numbers["completeness"].items():
        col = band_colour(band)
        fit = c["fit"]
        m50 = fit["m50"]
        label = f"{band}: m50 {m50:.2f} ± {fit['m50_error']:.2f}" if np.isfinite(m50) else f"{band}: no m50"
        _fraction_points(ax, c, col, label, lines=False)
        model = stats.model_curve(fit, fine)
        if np.isfinite(model).any():
            ax.plot(fine, model, "-", color=col, lw=0.9)
        if np.isfinite(m50):
            ax.axvline(m50, color=col, lw=0.6, ls=":")
        n = _a(c["n"])
        axn.stairs(np.where(n > 0, n, np.nan), edges, color=col, lw=0.9)
    ax.axhline(0.5, color="k", lw=0.5, ls=":")
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlim(edges[0], edges[-1])
    axn.set_xlim(edges[0], edges[-1])
    ax.set_ylabel("completeness")
    ax.tick_params(labelbottom=False)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower left", ncols=1 if len(numbers["completeness"]) < 4 else 2)
    axn.set_yscale("log")
    axn.axhline(numbers["min_count"], color="k", lw=0.5, ls="--")
    axn.set_ylabel("drawn")
    axn.set_xlabel("true magnitude [mag]")
    box.title(fig, f"Detection completeness: {numbers['realizations']:,} realizations, {numbers['tiles']:,} "
                   f"tile(s); lines: logistic fit")


def _bias_panels(ax_m, ax_s, curves: dict[str, dict], colours: dict[str, str], min_count: int,
                 legend: bool) -> None:
    """Median (``ax_m``) and scatter (``ax_s``) of the magnitude offset per true-magnitude bin."""
    for ax, key, zero in ((ax_m, "median", True), (ax_s, "scatter", False)):
        rng = _range_from([_a(c[key]) for c in curves.values()], [_a(c[f"{key}_error"]) for c in curves.values()],
                          [_a(c["n"]) for c in curves.values()], min_count, include_zero=zero)
        if rng is None:
            ax.text(0.5, 0.5, f"fewer than {min_count} recovered objects in every bin", transform=ax.transAxes,
                    ha="center", va="center")
            continue
        ax.set_ylim(*rng)
        for name, c in curves.items():
            _clipped_points(ax, _a(c["centres"]), _a(c[key]), _a(c[f"{key}_error"]), _a(c["n"]), min_count,
                            colours[name], name if ax is ax_m else None)
    ax_m.axhline(0, color="k", lw=0.5)
    ax_m.set_ylabel("median Δm [mag]")
    ax_s.set_ylabel("scatter of Δm [mag]")
    ax_s.set_xlabel("true magnitude [mag]")
    ax_m.tick_params(labelbottom=False)
    any_c = next(iter(curves.values()), None)
    if any_c is not None:
        x = _a(any_c["centres"])
        for ax in (ax_m, ax_s):
            ax.set_xlim(x[0] - 0.25, x[-1] + 0.25)
    handles, labels = ax_m.get_legend_handles_labels()
    if handles and legend:
        ax_m.legend(handles, labels, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=min(len(handles), 6),
                    handletextpad=0.3, columnspacing=1.2)


def draw_bias(fig, box: Box, numbers: dict) -> None:
    gs = box.grid(fig, 2, 1, hspace=0.08, pad=(0.8, 0.55, 0.2, 0.7))
    _bias_panels(fig.add_subplot(gs[0]), fig.add_subplot(gs[1]), numbers["bias"],
                 {b: band_colour(b) for b in numbers["bias"]}, numbers["min_count"], legend=True)
    box.title(fig, "Δm = MAG_AUTO - true magnitude, recovered objects not on a pre-existing detection")


def _split(fig, box: Box, numbers: dict, key: str, colours: dict[str, str], what: str) -> None:
    gs = box.grid(fig, 3, 1, hspace=0.1, pad=(0.8, 0.55, 0.2, 0.7), height_ratios=[1.2, 1, 1])
    ax_c = fig.add_subplot(gs[0])
    split = numbers[key]
    ref = numbers["reference_band"]
    from . import stats

    edges = _a(numbers["magnitude_edges"])
    fine = np.linspace(edges[0], edges[-1], 400)
    for name, v in split.items():
        c = v["completeness"]
        label = f"{name} ({v['objects']:,})"
        _fraction_points(ax_c, c, colours.get(name, "0.5"), label, lines=False)
        model = stats.model_curve(v["fit"], fine)
        if np.isfinite(model).any():
            ax_c.plot(fine, model, "-", color=colours.get(name, "0.5"), lw=0.9)
    ax_c.axhline(0.5, color="k", lw=0.5, ls=":")
    ax_c.set_ylim(-0.02, 1.05)
    ax_c.set_xlim(edges[0] - 0.25, edges[-1] + 0.25)
    ax_c.set_ylabel("completeness")
    ax_c.tick_params(labelbottom=False)
    if ax_c.get_legend_handles_labels()[0]:
        ax_c.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=len(split), handletextpad=0.3)
    elif split:
        ax_c.text(0.5, 0.5, f"no {what} bin holds {numbers['min_count']} objects", transform=ax_c.transAxes,
                  ha="center")
    else:
        ax_c.text(0.5, 0.5, f"no {what} known (no match tables, no nosim catalog)", transform=ax_c.transAxes,
                  ha="center")
    _bias_panels(fig.add_subplot(gs[1]), fig.add_subplot(gs[2]), {n: v["bias"] for n, v in split.items()},
                 {n: colours.get(n, "0.5") for n in split}, numbers["min_count"], legend=False)
    box.title(fig, f"Band {ref}: completeness (lines: logistic fit) and Δm = MAG_AUTO_{ref.upper()} - true by "
                   f"{what}")


def draw_blends(fig, box: Box, numbers: dict) -> None:
    _split(fig, box, numbers, "by_blend_class", CLASS_COLOURS, "blend class")


def draw_objtype(fig, box: Box, numbers: dict) -> None:
    _split(fig, box, numbers, "by_objtype", TYPE_COLOURS, "object type")


def draw_star_galaxy(fig, box: Box, numbers: dict) -> None:
    sg = numbers["star_galaxy"]
    gs = box.grid(fig, 2, 1, hspace=0.1, pad=(0.8, 0.55, 0.2, 0.6))
    axes = [fig.add_subplot(gs[0]), fig.add_subplot(gs[1])]
    edges = _a(numbers["magnitude_edges"])
    for ax, name in zip(axes, ("galaxies", "stars"), strict=True):
        res = sg[name]
        _fraction_points(ax, res["completeness_curve"], "tab:blue",
                         f"completeness ({res['both']:,}/{res['true']:,} true {name})")
        _fraction_points(ax, res["purity_curve"], "tab:red",
                         f"purity ({res['both']:,}/{res['classified']:,} classified {name})", marker="s")
        ax.set_ylim(-0.02, 1.05)
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylabel(f"{name}: fraction")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower left")
        if not res["true"]:
            ax.text(0.5, 0.55, f"no {name} among the recovered objects", transform=ax.transAxes, ha="center",
                    color="0.3")
        elif not any(res["completeness_curve"]["shown"]) and not any(res["purity_curve"]["shown"]):
            ax.text(0.5, 0.55, f"no bin of at least {numbers['min_count']} {name}", transform=ax.transAxes,
                    ha="center", color="0.3")
    axes[0].tick_params(labelbottom=False)
    b = sg["band"].upper()
    axes[1].set_xlabel(f"measured MAG_AUTO_{b} [mag]")
    box.title(fig, f"Star/galaxy classes of v = SPREAD_MODEL_{b} + 5/3 SPREADERR_MODEL_{b} (DES Y1 MODEST_CLASS)")


def draw_magnitudes(fig, box: Box, numbers: dict) -> None:
    from matplotlib.colors import LogNorm

    img = numbers["magnitude_image"]["_image"]
    total = img.sum(0)
    ref = numbers["reference_band"]
    gs = box.grid(fig, 1, 1, pad=(1.6, 0.55, 1.6, 0.35))
    ax = fig.add_subplot(gs[0])
    edges = np.arange(ex.N_MAGMAG + 1) / ex.MAGMAG_PER_MAG
    lo_e = _a(numbers["magnitude_edges"])
    lo, hi = lo_e[0] - 0.5, lo_e[-1] + 0.5
    if total.sum() == 0:
        ax.text(0.5, 0.5, "no recovered object", transform=ax.transAxes, ha="center")
    else:
        from matplotlib.ticker import LogFormatter

        mesh = ax.pcolormesh(edges, edges, np.where(total.T > 0, total.T, np.nan),
                             norm=LogNorm(vmin=1, vmax=max(float(total.max()), 10.0)), cmap="viridis", rasterized=True)
        fig.colorbar(mesh, ax=ax, label="recovered objects per (1/16 mag)$^2$", pad=0.02,
                     format=LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.6)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo - 1.0, hi + 1.0)
    ax.set_aspect("equal")
    ax.set_xlabel(f"injected {ref} magnitude [mag]")
    ax.set_ylabel(f"measured MAG_AUTO_{ref.upper()} [mag]")
    objects = numbers["magnitude_image"]["objects"]
    box.title(fig, "Measured against injected magnitude: " + ", ".join(f"{v:,} {k}" for k, v in objects.items()))


def draw_size(fig, box: Box, numbers: dict) -> None:
    panels = numbers["completeness_by_size"]
    gs = box.grid(fig, 1, 2, wspace=0.08, pad=(0.75, 0.55, 0.2, 0.7))
    ax_r, ax_mu = fig.add_subplot(gs[0]), fig.add_subplot(gs[1])
    colours = ["tab:blue", "tab:orange", "tab:red", "tab:green", "tab:purple"]
    for j, s in enumerate(panels["slices"]):
        label = f"{s['mag_lo']:.1f} ≤ {numbers['reference_band']} < {s['mag_hi']:.1f}"
        for ax, key in ((ax_r, "size"), (ax_mu, "surface_brightness")):
            c = s.get(key)
            if not c:
                continue
            x = _a(c["centres"]) if key != "size" else np.sqrt(_a(c["lo_edges"]) * _a(c["hi_edges"]))
            xerr = np.vstack([x - _a(c["lo_edges"]), _a(c["hi_edges"]) - x])
            _fraction_points(ax, {**c, "centres": x}, colours[j % len(colours)], label, lines=False, xerr=xerr)
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    ax_r.set_xscale("log")
    ax_r.xaxis.set_major_locator(FixedLocator([0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10]))
    ax_r.xaxis.set_major_formatter(ScalarFormatter())
    ax_r.xaxis.set_minor_formatter(NullFormatter())
    ax_r.set_xlabel("half-light radius [arcsec]")
    ax_mu.set_xlabel("mean surface brightness within hlr [mag arcsec$^{-2}$]")
    ax_r.set_ylabel("galaxy completeness")
    for ax in (ax_r, ax_mu):
        ax.set_ylim(-0.02, 1.05)
        ax.axhline(0.5, color="k", lw=0.5, ls=":")
    ax_mu.tick_params(labelleft=False)
    handles, labels = ax_r.get_legend_handles_labels()
    if handles:
        ax_r.legend(handles, labels, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=len(handles),
                    handletextpad=0.3)
    else:
        for ax in (ax_r, ax_mu):
            ax.text(0.5, 0.5, "no galaxy with a size", transform=ax.transAxes, ha="center")
    box.title(fig, f"Galaxy completeness at fixed {numbers['reference_band']} magnitude "
                   f"({panels['galaxies']:,} galaxies; horizontal bars: bin widths)")


def draw_offsets(fig, box: Box, numbers: dict) -> None:
    off = numbers["offsets"]
    gs = box.grid(fig, 1, 1, pad=(0.8, 0.55, 0.2, 0.35))
    ax = fig.add_subplot(gs[0])
    hist = off["_hist"]
    edges = np.arange(len(hist) + 1) / ex.OFFSET_PER_ARCSEC
    limit = 2.0 * 0.263
    if hist.sum():
        step = 10  # 10 mas bins in the figure
        n = len(hist) // step
        coarse = hist[: n * step].reshape(n, step).sum(1)
        top = int(np.nonzero(coarse)[0].max()) + 1
        ax.stairs(coarse[: top + 1], edges[: (top + 1) * step + 1: step], fill=True, color="tab:blue", alpha=0.8)
        ax.axvline(off["median_arcsec"], color="k", lw=0.8, label=f"median {off['median_arcsec']:.3f} arcsec")
    ax.axvline(limit, color="k", lw=0.8, ls=":", label=f"association radius {limit:.3f} arcsec")
    ax.set_xlabel("|detection - truth| position [arcsec] (detection image, windowed centroid)")
    ax.set_ylabel("recovered objects per 10 mas")
    ax.legend(loc="upper right")
    box.title(fig, f"Position offsets of {off['objects']:,} recovered objects")


#: A drawn sky pixel is at least this many PNG pixels wide: finer maps are drawn with their
#: counts summed into parent pixels (the summary keeps the counted nside).
MIN_SKY_PIXEL_PX = 2.5


def display_nside(nside: int, pix: np.ndarray, width_in: float) -> int:
    """The finest nside (a parent of ``nside``) whose pixels are at least :data:`MIN_SKY_PIXEL_PX` wide
    on a map of the occupied pixels ``pix`` drawn ``width_in`` inches wide."""
    import healpy

    ra, dec = healpy.pix2ang(nside, pix, lonlat=True)
    centre = np.rad2deg(np.arctan2(np.sin(np.deg2rad(ra)).mean(), np.cos(np.deg2rad(ra)).mean()))
    dra = (ra - centre + 180.0) % 360.0 - 180.0
    extent = max(float(np.ptp(dra)) * float(np.cos(np.deg2rad(np.median(dec)))), float(np.ptp(dec)),
                 healpy.nside2resol(nside, arcmin=True) / 60.0)
    need = MIN_SKY_PIXEL_PX * extent / (width_in * PNG_DPI)
    shown = nside
    while shown > 1 and np.rad2deg(healpy.nside2resol(shown)) < need:
        shown //= 2
    return shown


def _degrade(nside: int, shown: int, pix: np.ndarray, n: np.ndarray, k: np.ndarray):
    """Counts of RING pixels at ``nside`` summed into NESTED pixels at ``shown``."""
    import healpy

    nest = healpy.ring2nest(nside, pix) >> (2 * int(np.log2(nside // shown)))
    parent, inverse = np.unique(nest, return_inverse=True)
    return parent, np.bincount(inverse, weights=n), np.bincount(inverse, weights=k)


def draw_skymap(fig, box: Box, numbers: dict) -> None:
    """Detection efficiency per HEALPix pixel as DES draws its maps (skyproj, McBryde-Thomas)."""
    import healpy
    import matplotlib.pyplot as plt
    import skyproj

    sky = numbers["skymap"]
    nside, pix, n, k = sky["nside"], sky["_pix"], sky["_n"], sky["_k"]
    gs = box.grid(fig, 1, 1, pad=(0.9, 0.55, 0.3, 0.75))
    ax = fig.add_subplot(gs[0])
    if not len(pix):
        ax.text(0.5, 0.5, "no drawn object", transform=ax.transAxes, ha="center")
        return
    shown = display_nside(nside, pix, box.width - 1.2)
    parent, n_s, k_s = _degrade(nside, shown, pix, n, k)
    values = np.where(n_s >= sky["min_count"], k_s / np.maximum(n_s, 1), -1.0)  # too few objects: grey
    ra, dec = healpy.pix2ang(shown, parent, nest=True, lonlat=True)
    lon_0 = float(np.rad2deg(np.arctan2(np.sin(np.deg2rad(ra)).mean(), np.cos(np.deg2rad(ra)).mean())))
    half = np.rad2deg(healpy.nside2resol(shown))
    dra = (ra - lon_0 + 180.0) % 360.0 - 180.0
    pad = max(half, 0.05 * max(float(np.ptp(dra)), float(np.ptp(dec))))
    lon_range = (lon_0 + float(dra.min()) - pad, lon_0 + float(dra.max()) + pad)
    lat_range = (max(float(dec.min()) - pad, -90.0), min(float(dec.max()) + pad, 90.0))
    cmap = plt.get_cmap("viridis").with_extremes(under="0.75")
    sp = skyproj.DESMcBrydeSkyproj(ax=ax, lon_0=lon_0, n_grid_lon=4, n_grid_lat=5)
    if lon_range[1] - lon_range[0] > 15.0:
        sp.draw_des(edgecolor="k", lw=0.6)  # the footprint, for a campaign wide enough to see it
    sp.draw_hpxpix(shown, parent, values, nest=True, vmin=0.0, vmax=1.0, cmap=cmap, lon_range=lon_range,
                   lat_range=lat_range)  # the occupied pixels only: no full-sky array
    sp.ax.set_xlabel("RA [deg]", fontsize=FONT_SIZE)
    sp.ax.set_ylabel("Dec [deg]", fontsize=FONT_SIZE)
    sp.draw_colorbar(label="detection efficiency (recovered / drawn)", fontsize=FONT_SIZE)
    res = healpy.nside2resol(shown, arcmin=True)
    counted = f"; counted at {nside}" if shown != nside else ""
    box.title(fig, f"Detection efficiency, HEALPix nside {shown} ({res:.3g}' pixels{counted}); grey: fewer than "
                   f"{sky['min_count']} objects")


@dataclass(frozen=True)
class FigureSpec:
    """One figure: its PNG name, height at :data:`WIDTH`, drawing, caption and when it exists."""

    name: str
    height: float
    draw: Callable
    caption: Callable[[dict], str]
    available: Callable[[dict], bool] = lambda numbers: True


def draw_compare(fig, box: Box, numbers: dict) -> None:
    """Both campaigns' completeness per band (``--compare``): points and fitted curves, this campaign
    filled and solid, the other open and dashed; each panel gives the m50 difference."""
    from . import stats

    cmp = numbers["comparison"]
    bands = cmp["bands"]
    ncols = min(3, len(bands))
    nrows = math.ceil(len(bands) / ncols)
    gs = box.grid(fig, nrows, ncols, hspace=0.45, wspace=0.08, pad=(0.6, 0.5, 0.15, 0.9))
    curves = ((numbers["completeness"], _a(numbers["magnitude_edges"]), cmp["label"], "o", "-", None),
              (cmp["other_completeness"], _a(cmp["other_magnitude_edges"]), cmp["other_label"], "s", "--", "none"))
    lo = min(float(e[0]) for _, e, *_ in curves)
    hi = max(float(e[-1]) for _, e, *_ in curves)
    fine = np.linspace(lo, hi, 400)
    for k, band in enumerate(bands):
        ax = fig.add_subplot(gs[k // ncols, k % ncols])
        col = band_colour(band)
        for comp, _edges, _label, marker, ls, face in curves:
            c = comp[band]
            _fraction_points(ax, c, col, None, lines=False, marker=marker, open_marker=face == "none")
            model = stats.model_curve(c["fit"], fine)
            if np.isfinite(model).any():
                ax.plot(fine, model, ls, color=col, lw=0.9)
        d = cmp["per_band"][band]
        text = (f"{band}: Δm50 {d['delta_m50']:+.2f} ± {d['delta_m50_error']:.2f}" if np.isfinite(d["delta_m50"])
                else f"{band}: no Δm50")
        ax.set_title(text, fontsize=FONT_SIZE)
        ax.axhline(0.5, color="k", lw=0.5, ls=":")
        ax.set_ylim(-0.02, 1.05)
        ax.set_xlim(lo, hi)
        if k % ncols:
            ax.tick_params(labelleft=False)
        else:
            ax.set_ylabel("completeness")
        if k // ncols == nrows - 1 or k + ncols >= len(bands):
            ax.set_xlabel("true magnitude [mag]")
    handles = [_legend_handle(marker, ls, face, label) for _c, _e, label, marker, ls, face in curves]
    fig.legend(handles=handles, loc="upper right", bbox_to_anchor=((box.left + box.width - 0.15) / fig.get_size_inches()[0],
                                                                   (box.bottom + box.height - 0.3) / fig.get_size_inches()[1]),
               ncols=2, frameon=False)
    box.title(fig, f"Completeness, {cmp['label']} against {cmp['other_label']}; lines: logistic fits")


def _legend_handle(marker: str, ls: str, face: str | None, label: str):
    """A grey legend handle of one campaign's style (the colours are the bands')."""
    from matplotlib.lines import Line2D

    return Line2D([], [], color="0.3", marker=marker, ls=ls, lw=0.9, ms=4, label=label,
                  markerfacecolor="none" if face == "none" else "0.3")


def _captions_sg(n: dict) -> str:
    sg = n["star_galaxy"]
    return (f"Band {n['reference_band']}: completeness and purity of the galaxy and star classes of "
            f"{sg['classifier']} (galaxy > {sg['galaxy_above']}, star |value| < {sg['star_abs_below']}; DES Y1 "
            "MODEST_CLASS) for recovered objects of known type, against measured magnitude; Jeffreys intervals.")


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("completeness.png", 5.0, draw_completeness,
               lambda n: f"Completeness (recovered / drawn) per 0.5-mag bin of true magnitude: points with 68% "
                         f"Jeffreys intervals at the effective sample size (binomial and realization-to-"
                         f"realization scatter), only bins of at least {n['min_count']} objects; lines: the "
                         "maximum-likelihood logistic fit to the unbinned objects, dotted at its m50. Lower panel: "
                         "objects drawn per bin (dashed: the minimum count)."),
    FigureSpec("photometry.png", 5.0, draw_bias,
               lambda n: "MAG_AUTO - true magnitude (median, 1.4826 MAD) of recovered objects not within 2 px of a "
                         "pre-existing detection; bootstrap errors over batches of realizations. Axis ranges from "
                         f"the bins with errors below {WELL_MEASURED_ERROR} mag; open triangles: bins outside."),
    FigureSpec("blends.png", 6.4, draw_blends,
               lambda n: f"Band {n['reference_band']}: completeness and photometry of isolated objects and of "
                         "objects within 2 arcsec of a fainter / brighter pre-existing (nosim) detection."),
    FigureSpec("objtype.png", 6.4, draw_objtype,
               lambda n: f"Band {n['reference_band']}: completeness and photometry of stars and galaxies."),
    FigureSpec("stargalaxy.png", 5.4, draw_star_galaxy, _captions_sg, lambda n: n["star_galaxy"]["available"]),
    FigureSpec("compare.png", 5.2, draw_compare,
               lambda n: f"Completeness per band of this campaign ({n['comparison']['label']}: filled points, solid "
                         f"fits) and of {n['comparison']['other_campaign']} ({n['comparison']['other_label']}: open "
                         "squares, dashed fits), each with its own 68% Jeffreys intervals and maximum-likelihood "
                         "logistic fit; Δm50 = this - other, errors added in quadrature (an upper bound on the same "
                         "positions and survey).", lambda n: n.get("comparison") is not None),
    FigureSpec("magnitudes.png", 4.6, draw_magnitudes,
               lambda n: f"Measured MAG_AUTO_{n['reference_band'].upper()} against injected magnitude of the "
                         "recovered objects (counts per cell, logarithmic)."),
    FigureSpec("size.png", 3.6, draw_size,
               lambda n: f"Galaxy completeness against half-light radius and mean surface brightness within it, in "
                         f"{n['reference_band']}-magnitude slices about m50; bins of at least {n['min_count']} "
                         "galaxies, horizontal bars their widths."),
    FigureSpec("offsets.png", 3.2, draw_offsets,
               lambda n: "Offset between the detection (detection image, windowed centroid) and the injected "
                         "position.", lambda n: n["offsets"]["available"]),
    FigureSpec("skymap.png", 4.6, draw_skymap,
               lambda n: f"Detection efficiency per HEALPix pixel (nside {n['skymap']['nside']}), McBryde-Thomas "
                         "projection as DES maps; RA and Dec in degrees."),
)


def render_png(spec: FigureSpec, numbers: dict, path: Path) -> Path:
    """The figure as a PNG of :data:`WIDTH` x ``spec.height`` inches, written atomically."""
    import matplotlib.pyplot as plt

    with style():
        fig = plt.figure(figsize=(WIDTH, spec.height))
        try:
            spec.draw(fig, Box(0, 0, WIDTH, spec.height), numbers)
            with atomic_path(path) as tmp:
                fig.savefig(tmp, dpi=PNG_DPI, format="png")
        finally:
            plt.close(fig)
    return path
