"""Diagnostics of a campaign: completeness, photometric bias, position offsets, sky map.

The report reads the per-realization catalogs the node runner wrote
(``<outdir>/<TILE>/catalogs/<TILE>_r<jjjj>_{truth,sim,nosim}.fits``), not the database:
the catalogs are the campaign's source of truth and exist even when a push failed.

Definitions (what a reader of the plots needs to know):

* an injected object is *recovered* in a realization when a detection of that
  realization's sim catalog is associated with it (nearest truth position within 2 px,
  SExtractor ASSOC semantics), so completeness = recovered / drawn per magnitude bin;
* objects flagged ``not_drawn`` as off the image (or failed) are excluded from every
  statistic; objects whose stamp was only clipped at the image edge count as drawn;
* the photometric bias uses ``MAG_AUTO_<BAND> - mag_<band>`` of recovered objects, and
  leaves out objects that fell within 2 px of a detection already present in the
  untouched image (the nosim association): their measurement is a blend with a real
  object, which the completeness keeps but the bias should not;
* scatter is the normalised median absolute deviation (1.4826 MAD), robust to the
  blends and outliers a mean/std would chase.
"""

from __future__ import annotations

import html
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import atomic_path, atomic_write_text
from .errors import InputFileError
from .inject import CENTRE_OFF_IMAGE, DRAW_FAILED, OFF_IMAGE

log = logging.getLogger(__name__)

#: Association radius used by the runner, in pixels (reported on the page).
ASSOC_RADIUS_PIX = 2.0
#: ``not_drawn`` bits that mean the object is not in the image: off image, centre off
#: image, drawing failed. ``CLIPPED`` (stamp cut at the image edge) was drawn.
NOT_DRAWN_BITS = OFF_IMAGE | CENTRE_OFF_IMAGE | DRAW_FAILED
#: DES coadd pixel scale in arcsec per pixel.
PIXEL_SCALE_ARCSEC = 0.263


@dataclass
class BandMatches:
    """Truth magnitudes of one band, with the measured magnitude where recovered (NaN if not)."""

    band: str
    true_mag: np.ndarray
    recovered: np.ndarray
    measured_mag: np.ndarray
    blended: np.ndarray


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
    seconds_spent: float | None = None
    missing: Missing = field(default_factory=lambda: Missing())


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
    n_injected = n_drawn = n_recovered = 0
    found_bands: list[str] | None = list(bands) if bands else None

    from tqdm import tqdm

    # A bar on a terminal only: in a batch log it would be noise (the warning above says what counts).
    for truth_path, sim_path, nosim_path in tqdm(triplets, desc="catalogs", unit="real", leave=False,
                                                 disable=not sys.stderr.isatty()):
        truth = _read_table(truth_path)
        sim = _read_table(sim_path)
        nosim = _read_table(nosim_path)
        tiles.add(truth_path.parent.parent.name)
        n_injected += len(truth)
        not_drawn = _column(truth, "not_drawn")
        drawn = np.ones(len(truth), bool) if not_drawn is None else (not_drawn & NOT_DRAWN_BITS) == 0
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
            parts = per_band.setdefault(band, {"t": [], "r": [], "m": [], "b": []})
            parts["t"].append(true_mag[drawn].astype(float))
            parts["r"].append(recovered[drawn])
            parts["m"].append(measured[drawn])
            parts["b"].append(blended[drawn])

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
        bands=list(matches),
        truth_ra=np.concatenate(ra_parts),
        truth_dec=np.concatenate(dec_parts),
        truth_tile=np.concatenate(tile_parts),
        offsets_arcsec=np.concatenate(offset_parts) if offset_parts else np.empty(0),
        matches=matches,
        seconds_spent=_seconds_spent(outdir),
        missing=missing,
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


def _band_colour(band: str) -> str:
    return {"g": "tab:green", "r": "tab:red", "i": "tab:orange", "z": "tab:purple", "y": "tab:brown"}.get(
        band.lower(), "tab:gray"
    )


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")


def plot_completeness(data: CampaignData, path: Path) -> dict[str, float]:
    """Completeness versus true magnitude, one curve per band; returns the 50% magnitudes."""
    import matplotlib.pyplot as plt

    edges = _mag_edges(data)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    m50: dict[str, float] = {}
    for band, m in data.matches.items():
        centres, frac, lo, hi, n = completeness(m.true_mag, m.recovered, edges)
        ok = n > 0
        ax.plot(centres[ok], frac[ok], "-o", ms=3, color=_band_colour(band), label=band)
        ax.fill_between(centres[ok], lo[ok], hi[ok], color=_band_colour(band), alpha=0.15, lw=0)
        m50[band] = _fifty_percent(centres[ok], frac[ok])
    ax.axhline(0.5, color="k", lw=0.6, ls=":")
    ax.set_xlabel("true magnitude")
    ax.set_ylabel("completeness (recovered / drawn)")
    ax.set_ylim(-0.02, 1.05)
    ax.legend(title="band", frameon=False)
    ax.set_title(f"Detection completeness ({data.n_realizations} realizations, {len(data.tiles)} tiles)")
    _save(fig, path)
    plt.close(fig)
    return m50


def _fifty_percent(centres: np.ndarray, frac: np.ndarray) -> float:
    """The faintest magnitude where completeness falls through 50% (linear interpolation)."""
    below = np.flatnonzero((frac[:-1] >= 0.5) & (frac[1:] < 0.5))
    if len(below) == 0:
        return float("nan")
    i = below[-1]
    f0, f1 = frac[i], frac[i + 1]
    return float(centres[i] + (0.5 - f0) / (f1 - f0) * (centres[i + 1] - centres[i]))


def plot_bias(data: CampaignData, path: Path) -> dict[str, tuple[float, float]]:
    """MAG_AUTO minus true magnitude (median and scatter) versus true magnitude, per band.

    Returns per band the median offset and scatter of objects brighter than 22 mag.
    """
    import matplotlib.pyplot as plt

    edges = _mag_edges(data)
    fig, (ax_med, ax_sig) = plt.subplots(2, 1, figsize=(6.4, 6.0), sharex=True)
    summary: dict[str, tuple[float, float]] = {}
    for band, m in data.matches.items():
        clean = m.recovered & ~m.blended
        delta = np.where(clean, m.measured_mag - m.true_mag, np.nan)
        centres, median, scatter, _ = binned_bias(m.true_mag, delta, edges)
        ax_med.plot(centres, median, "-o", ms=3, color=_band_colour(band), label=band)
        ax_sig.plot(centres, scatter, "-o", ms=3, color=_band_colour(band), label=band)
        bright = clean & np.isfinite(delta) & (m.true_mag < 22.0)
        if bright.sum() >= 5:
            d = delta[bright]
            med = float(np.median(d))
            summary[band] = (med, float(1.4826 * np.median(np.abs(d - med))))
    ax_med.axhline(0, color="k", lw=0.6)
    ax_med.set_ylabel("median MAG_AUTO - true [mag]")
    ax_sig.set_ylabel("scatter (1.4826 MAD) [mag]")
    ax_sig.set_xlabel("true magnitude")
    ax_med.legend(title="band", frameon=False, ncol=len(data.matches) or 1, loc="upper left", fontsize=8)
    ax_med.set_title("Photometric bias and scatter of recovered, unblended objects")
    _save(fig, path)
    plt.close(fig)
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
    _save(fig, path)
    plt.close(fig)
    return median


def _skymap_nside(extent_deg: float) -> int:
    """A HEALPix nside whose pixels are about 1/40 of the mapped extent (64 .. 8192)."""
    import healpy as hp

    target_arcmin = max(extent_deg, 1e-3) * 60.0 / 40.0
    nside = 64
    while nside < 8192 and hp.nside2resol(nside, arcmin=True) > target_arcmin:
        nside *= 2
    return nside


def plot_skymap(data: CampaignData, path: Path) -> None:
    """HEALPix map of injected positions (count per pixel) with the campaign's tile outlines.

    The view and the pixel size follow the extent of the injected positions, so a full
    campaign and a small synthetic one both show their structure.
    """
    import warnings

    import healpy as hp
    import matplotlib.pyplot as plt

    from .geometry import des_tile

    logging.getLogger("healpy").setLevel(logging.WARNING)
    # Centre the view on the objects; the circular mean handles tiles on both sides of RA = 0.
    ra_rad = np.deg2rad(data.truth_ra)
    lon0 = float(np.rad2deg(np.arctan2(np.sin(ra_rad).mean(), np.cos(ra_rad).mean())))
    lon_off = (data.truth_ra - lon0 + 180.0) % 360.0 - 180.0
    extent = max(float(np.ptp(lon_off)), float(np.ptp(data.truth_dec)), 1e-3)
    pad = 0.1 * extent
    lonra = [float(lon_off.min() - pad), float(lon_off.max() + pad)]
    latra = [float(data.truth_dec.min() - pad), float(data.truth_dec.max() + pad)]
    nside = _skymap_nside(extent)
    pix = hp.ang2pix(nside, data.truth_ra, data.truth_dec, lonlat=True)
    counts = np.bincount(pix, minlength=hp.nside2npix(nside)).astype(float)
    counts[counts == 0] = hp.UNSEEN
    fig = plt.figure(figsize=(8.5, 5.4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # healpy re-uses our figure and says so
        hp.cartview(
            counts, rot=(lon0, 0.0), lonra=lonra, latra=latra, fig=fig.number,
            title=f"Injected positions per HEALPix pixel (nside {nside}, {hp.nside2resol(nside, arcmin=True):.2f}')",
            unit="objects per pixel", cmap="viridis", notext=True,
        )
        step = max(extent / 4.0, 0.01)
        hp.graticule(dpar=step, dmer=step, alpha=0.3)
    for name in data.tiles:
        try:
            tile = des_tile(name)
        except Exception:  # noqa: BLE001 - an unknown tile only loses its outline
            continue
        lo, hi = tile.uramin, tile.uramax
        if tile.crossra0:
            lo, hi = hi, lo + 360.0
        ras = np.concatenate([np.linspace(lo, hi, 20), [hi, hi], np.linspace(hi, lo, 20), [lo, lo]])
        decs = np.concatenate(
            [np.full(20, tile.udecmin), [tile.udecmin, tile.udecmax], np.full(20, tile.udecmax), [tile.udecmax, tile.udecmin]]
        )
        hp.projplot(ras, decs, lonlat=True, color="w", lw=0.8)
        sel = np.flatnonzero(np.char.startswith(np.asarray(data.truth_tile, dtype=str), name))
        if len(sel):
            hp.projtext(float(np.median(data.truth_ra[sel])), float(data.truth_dec[sel].max() + 0.03 * extent), name,
                        lonlat=True, color="k", fontsize=8, ha="center")
    _save(fig, path)
    plt.close(fig)


def _format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "not recorded"
    hours, rem = divmod(seconds, 3600)
    minutes, secs = divmod(rem, 60)
    return f"{int(hours)}h {int(minutes):02d}m {secs:04.1f}s" if hours else f"{int(minutes)}m {secs:04.1f}s"


def write_report(outdir: str | Path, report_dir: str | Path | None = None) -> Path:
    """Make every plot and the HTML page for the campaign in ``outdir``; returns the page's path."""
    data = load_campaign(outdir)
    report_dir = Path(report_dir) if report_dir else data.outdir / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")

    m50 = plot_completeness(data, report_dir / "completeness.png")
    bias = plot_bias(data, report_dir / "photometry.png")
    median_offset = plot_offsets(data, report_dir / "offsets.png")
    plot_skymap(data, report_dir / "skymap.png")

    numbers = {
        "tiles": len(data.tiles),
        "realizations": data.n_realizations,
        "objects_injected": data.n_injected,
        "objects_drawn": data.n_drawn,
        "objects_recovered": data.n_recovered,
        "recovered_fraction": data.n_recovered / data.n_drawn if data.n_drawn else float("nan"),
        "median_offset_arcsec": median_offset,
        "seconds_spent": data.seconds_spent,
        "m50": m50,
        "bias_bright": {b: {"median": v[0], "scatter": v[1]} for b, v in bias.items()},
        "missing": {"tiles": data.missing.tiles, "realizations_failed": data.missing.failed,
                    "realizations_incomplete": data.missing.incomplete, "realizations_lost": data.missing.lost},
    }
    atomic_write_text(report_dir / "summary.json", json.dumps(numbers, indent=2, default=float) + "\n")
    page = report_dir / "index.html"
    atomic_write_text(page, _html_page(data, numbers))
    log.info("report written to %s", page)
    return page


def _html_page(data: CampaignData, numbers: dict) -> str:
    esc = html.escape
    rows = [
        ("Tiles", ", ".join(data.tiles)),
        ("Realizations", str(data.n_realizations)),
        ("Objects injected", f"{data.n_injected:,}"),
        ("Objects drawn (on the image)", f"{data.n_drawn:,}"),
        ("Objects recovered", f"{data.n_recovered:,} ({100 * numbers['recovered_fraction']:.1f}%)"),
        ("Median position offset", f"{numbers['median_offset_arcsec']:.3f} arcsec"),
        ("Time spent in realizations", _format_seconds(data.seconds_spent)),
    ]
    if data.missing:
        rows.append(("Missing (partial campaign)", data.missing.describe()))
    band_rows = "".join(
        f"<tr><td>{esc(b)}</td><td>{numbers['m50'].get(b, float('nan')):.2f}</td>"
        f"<td>{numbers['bias_bright'].get(b, {}).get('median', float('nan')):+.3f}</td>"
        f"<td>{numbers['bias_bright'].get(b, {}).get('scatter', float('nan')):.3f}</td></tr>"
        for b in data.bands
    )
    table = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    figures = "".join(
        f'<figure><img src="{name}" alt="{esc(caption)}"><figcaption>{esc(caption)}</figcaption></figure>'
        for name, caption in [
            ("completeness.png", "Completeness: recovered / drawn per true-magnitude bin, 68% Wilson interval."),
            ("photometry.png", "MAG_AUTO - true magnitude of recovered objects not blended with a pre-existing detection."),
            ("offsets.png", "Offset between the detection (riz image, windowed centroid) and the injected position."),
            ("skymap.png", "Injected positions over the unique areas of the campaign's tiles."),
        ]
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Balrog campaign report: {esc(data.outdir.name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:left}}figure{{display:inline-block;margin:1em;width:480px}}
img{{width:100%}}</style></head><body>
<h1>Balrog campaign report</h1>
<p>Campaign directory: <code>{esc(str(data.outdir))}</code></p>
<table>{table}</table>
<h2>Per band</h2>
<table><tr><th>band</th><th>50% completeness [mag]</th><th>median &Delta;mag (&lt;22)</th><th>scatter (&lt;22)</th></tr>{band_rows}</table>
<h2>Plots</h2>
{figures}
</body></html>
"""
