"""The report's numbers, from a counted campaign (:class:`.accumulate.CampaignCounts`).

One function per section of the page; :func:`compute` gathers them into the dictionary
that is ``summary.json``, and the figures (:mod:`.plots`) and the page (:mod:`.page`) draw
and print from that dictionary only, so no figure shows a value the summary does not hold.
Statistics: :mod:`.stats`.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import platform
from dataclasses import dataclass

import numpy as np

from . import exprs as ex
from . import stats
from .accumulate import CampaignCounts
from .from_files import CampaignInfo

#: Magnitude below which the headline bias is quoted (bright, well-measured objects).
BRIGHT_MAG = 22.0
#: ``status.json`` ``fingerprint_inputs`` that differ per tile by design (the tile's own positions).
PER_TILE_INPUTS = ("positions",)
#: ``fingerprint_inputs`` entries that are the measurement's configuration files.
CONFIG_INPUTS = ("sex-config", "sex-param", "sex-filter", "sex-nnw", "swarp-config")
#: The size and surface-brightness panels: magnitude slices of this width (mag) about m50.
SLICE_WIDTH = 1.0
SLICES = 3


@dataclass(frozen=True)
class Options:
    """What the user may choose (``balrog-report`` options)."""

    min_count: int = stats.MIN_COUNT
    level: float = stats.LEVEL


def _floats(a) -> list[float]:
    return [float(v) for v in np.asarray(a, float)]


def _ints(a) -> list[int]:
    return [int(v) for v in np.asarray(a)]


class Batches:
    """The occupied batches (the error-estimate unit) and the bootstrap replicas over them."""

    def __init__(self, counts: CampaignCounts) -> None:
        keys, vals = counts.table("fine")
        used = np.unique(keys[vals[:, 0] > 0, 0]) if len(keys) else np.zeros(1, np.int64)
        self.ids = used if len(used) else np.zeros(1, np.int64)
        self.index = np.full(ex.N_BATCH, -1)
        self.index[self.ids] = np.arange(len(self.ids))
        self.weights = stats.bootstrap_weights(len(self.ids))

    def __len__(self) -> int:
        return len(self.ids)


def _per_batch(keys: np.ndarray, vals: np.ndarray, sel: np.ndarray, bin_col: int, n_bins: int,
               batches: Batches) -> np.ndarray:
    """Dense ``(batches, bins, values)`` of the rows ``sel`` (batch in column 0, bin in ``bin_col``)."""
    out = np.zeros((len(batches), n_bins, vals.shape[1]))
    b = batches.index[keys[sel, 0]]
    ok = b >= 0
    np.add.at(out, (b[ok], keys[sel, bin_col][ok]), vals[sel][ok])
    return out


def magnitude_range(counts: CampaignCounts) -> tuple[int, int]:
    """Coarse bins ``[lo, hi)`` holding the 0.5th to 99.5th percentile of the true magnitudes of all bands."""
    keys, vals = counts.table("fine")
    if not len(keys):
        return 40, 52
    lows, highs = [], []
    for band in range(len(counts.bands)):
        sel = keys[:, 1] == band
        if not sel.any():
            continue
        hist = np.bincount(keys[sel, 2], weights=vals[sel, 0], minlength=ex.N_FINE)
        cum = np.cumsum(hist) / hist.sum()
        lows.append(int(np.argmax(cum >= 0.005)) // ex.FINE_PER_COARSE)
        highs.append(int(np.argmax(cum >= 0.995)) // ex.FINE_PER_COARSE + 1)
    return (min(lows), max(highs)) if lows else (40, 52)


def _coarse_edges(lo: int, hi: int) -> np.ndarray:
    return np.arange(lo, hi + 1) / ex.MAG_COARSE_PER_MAG


def _curve(comp: dict, centres: np.ndarray, min_count: int) -> dict:
    shown = comp["n"] >= min_count
    return {"centres": _floats(centres), "n": _ints(comp["n"]), "k": _ints(comp["k"]),
            "fraction": _floats(comp["fraction"]), "lower": _floats(comp["lower"]), "upper": _floats(comp["upper"]),
            "deff": _floats(comp["deff"]), "shown": [bool(s) for s in shown]}


def _fine_fit(fine: np.ndarray) -> dict:
    """The logistic fit of per-batch fine counts ``(batches, N_FINE, 3)``."""
    fit = stats.fit_completeness(fine[..., 0], fine[..., 1], fine[..., 2], 1.0 / ex.MAG_FINE_PER_MAG)
    fit.pop("covariance", None)
    return fit


def _completeness_of(fine: np.ndarray, lo: int, hi: int, options: Options) -> dict:
    coarse = fine.reshape(len(fine), ex.N_COARSE, ex.FINE_PER_COARSE, 3).sum(2)[:, lo:hi]
    comp = stats.completeness(coarse[..., 0], coarse[..., 1], options.level)
    edges = _coarse_edges(lo, hi)
    curve = _curve(comp, 0.5 * (edges[1:] + edges[:-1]), options.min_count)
    curve["binned_m50"] = stats.fifty_percent(np.array(curve["centres"]),
                                              np.where(comp["n"] >= options.min_count, comp["fraction"], np.nan))
    return curve


def completeness_by_band(counts: CampaignCounts, batches: Batches, lo: int, hi: int, options: Options) -> dict:
    """Per band: the binned curve (Jeffreys intervals with the design effect) and the logistic fit."""
    keys, vals = counts.table("fine")
    out = {}
    for i, band in enumerate(counts.bands):
        fine = _per_batch(keys, vals, keys[:, 1] == i, 2, ex.N_FINE, batches)
        out[band] = {**_completeness_of(fine, lo, hi, options), "fit": _fine_fit(fine)}
    return out


def _bias_curves(keys: np.ndarray, vals: np.ndarray, sel: np.ndarray, lo: int, hi: int, batches: Batches,
                 options: Options) -> dict:
    """Median and scatter of the magnitude offset per coarse bin ``lo..hi`` of the rows ``sel``."""
    names = ("n", "median", "median_error", "scatter", "scatter_error")
    out: dict[str, list] = {k: [] for k in names}
    rows = keys[sel]
    values = vals[sel, 0]
    for c in range(lo, hi):
        in_bin = rows[:, -2] == c
        hist = np.zeros((len(batches), ex.N_DELTA))
        b = batches.index[rows[in_bin, 0]]
        ok = b >= 0
        np.add.at(hist, (b[ok], rows[in_bin, -1][ok]), values[in_bin][ok])
        res = stats.median_scatter_boot(hist, batches.weights, options.min_count)
        for k in names:
            out[k].append(res[k])
    edges = _coarse_edges(lo, hi)
    return {"centres": _floats(0.5 * (edges[1:] + edges[:-1])), **out}


def bias_by_band(counts: CampaignCounts, batches: Batches, lo: int, hi: int, options: Options) -> dict:
    """Per band, MAG_AUTO - true of recovered objects not on a pre-existing detection."""
    keys, vals = counts.table("bias")
    return {band: _bias_curves(keys, vals, keys[:, 1] == i, lo, hi, batches, options)
            for i, band in enumerate(counts.bands)}


def bias_bright(counts: CampaignCounts, batches: Batches, options: Options) -> dict:
    """Per band, the median offset and scatter of the same objects brighter than :data:`BRIGHT_MAG`."""
    keys, vals = counts.table("bias")
    limit = int(BRIGHT_MAG * ex.MAG_COARSE_PER_MAG)
    out = {}
    for i, band in enumerate(counts.bands):
        sel = (keys[:, 1] == i) & (keys[:, 2] < limit)
        hist = np.zeros((len(batches), ex.N_DELTA))
        b = batches.index[keys[sel, 0]]
        ok = b >= 0
        np.add.at(hist, (b[ok], keys[sel, 3][ok]), vals[sel, 0][ok])
        res = stats.median_scatter_boot(hist, batches.weights, options.min_count)
        if np.isfinite(res["median"]):
            out[band] = res
    return out


def splits(counts: CampaignCounts, batches: Batches, lo: int, hi: int, options: Options, what: str,
           names: dict[int, str]) -> dict:
    """Completeness (with its fit) and bias of the reference band per blend class or object type."""
    fkeys, fvals = counts.table(f"{what}_fine")
    bkeys, bvals = counts.table(f"{what}_bias")
    out = {}
    for value, name in names.items():
        code = value + 1
        sel = fkeys[:, 1] == code
        if not sel.any():
            continue
        fine = _per_batch(fkeys, fvals, sel, 2, ex.N_FINE, batches)
        n = int(fine[..., 0].sum())
        out[name] = {"objects": n, "recovered": int(fine[..., 1].sum()),
                     "recovered_fraction": float(fine[..., 1].sum() / n) if n else float("nan"),
                     "completeness": _completeness_of(fine, lo, hi, options), "fit": _fine_fit(fine),
                     "bias": _bias_curves(bkeys, bvals, bkeys[:, 1] == code, lo, hi, batches, options)}
    return out


def _slices(centre: float) -> list[tuple[int, int]]:
    """Coarse-bin ranges of :data:`SLICES` magnitude slices of :data:`SLICE_WIDTH` about ``centre``."""
    step = int(SLICE_WIDTH * ex.MAG_COARSE_PER_MAG)
    mid = int(round(centre * ex.MAG_COARSE_PER_MAG))
    first = mid - step // 2 - step * (SLICES // 2)
    return [(first + j * step, first + (j + 1) * step) for j in range(SLICES)]


def size_panels(counts: CampaignCounts, batches: Batches, centre: float, options: Options) -> dict:
    """Galaxy completeness against size and surface brightness in magnitude slices about ``centre``."""
    out: dict = {"slices": []}
    skeys, svals = counts.table("size")
    bkeys, bvals = counts.table("sb")
    out["galaxies"] = int(svals[:, 0].sum()) if len(svals) else 0
    size_edges = np.array(ex.SIZE_EDGES)
    sb_edges = np.arange(ex.N_SB + 1) / ex.SB_PER_MAG
    for lo, hi in _slices(centre):
        entry = {"mag_lo": lo / ex.MAG_COARSE_PER_MAG, "mag_hi": hi / ex.MAG_COARSE_PER_MAG}
        for name, keys, vals, edges, nb in (("size", skeys, svals, size_edges, ex.N_SIZE),
                                            ("surface_brightness", bkeys, bvals, sb_edges, ex.N_SB)):
            sel = (keys[:, 1] >= lo) & (keys[:, 1] < hi) if len(keys) else np.zeros(0, bool)
            dense = _per_batch(keys, vals, sel, 2, nb, batches) if len(keys) else np.zeros((len(batches), nb, 2))
            comp = stats.completeness(dense[..., 0], dense[..., 1], options.level)
            occupied = np.flatnonzero(comp["n"] > 0)
            if not len(occupied):
                entry[name] = None
                continue
            a, b = occupied[0], occupied[-1] + 1
            part = {k: v[a:b] for k, v in comp.items()}
            curve = _curve(part, 0.5 * (edges[a:b] + edges[a + 1:b + 1]), options.min_count)
            curve["lo_edges"], curve["hi_edges"] = _floats(edges[a:b]), _floats(edges[a + 1:b + 1])
            entry[name] = curve
        out["slices"].append(entry)
    return out


def sky(counts: CampaignCounts, options: Options) -> dict:
    """Detection efficiency per HEALPix pixel (RING, ``nside``); pixels of fewer than ``min_count`` apart."""
    keys, vals = counts.table("sky")
    n, k = vals[:, 0], vals[:, 1]
    shown = n >= options.min_count
    return {"nside": counts.nside, "order": "ring", "pixels": int(len(keys)), "pixels_shown": int(shown.sum()),
            "min_count": options.min_count, "_pix": keys[:, 0], "_n": n, "_k": k}


def per_tile(counts: CampaignCounts, info: CampaignInfo, fits: dict, lo: int, hi: int) -> dict:
    """Per tile: realizations, objects, recovered fraction, m50 per band (the campaign's curve shifted), seconds."""
    tkeys, tvals = counts.table("totals")
    n_t = len(counts.tiles)
    real = np.bincount(tkeys[:, 0], minlength=n_t) if len(tkeys) else np.zeros(n_t, int)
    drawn = np.bincount(tkeys[:, 0], weights=tvals[:, 1], minlength=n_t) if len(tkeys) else np.zeros(n_t)
    rec = np.bincount(tkeys[:, 0], weights=tvals[:, 3], minlength=n_t) if len(tkeys) else np.zeros(n_t)
    keys, vals = counts.table("tile")
    m50: dict[str, np.ndarray] = {}
    for i, band in enumerate(counts.bands):
        sel = keys[:, 1] == i
        dense = np.zeros((n_t, ex.N_COARSE, 3))
        np.add.at(dense, (keys[sel, 0], keys[sel, 2]), vals[sel])
        m50[band], _ = stats.shift_fit(dense[..., 0], dense[..., 1], dense[..., 2], fits[band])
    out = {}
    for t, tile in enumerate(counts.tiles):
        status = info.statuses.get(tile)
        out[tile] = {"realizations": int(real[t]), "objects_drawn": int(drawn[t]), "objects_recovered": int(rec[t]),
                     "recovered_fraction": float(rec[t] / drawn[t]) if drawn[t] else float("nan"),
                     "m50": {b: float(m50[b][t]) for b in counts.bands},
                     "seconds": status.seconds if status else None}
    return out


def star_galaxy(counts: CampaignCounts, batches: Batches, lo: int, hi: int, options: Options) -> dict:
    """SPREAD_MODEL galaxy and star completeness and purity in the reference band, per measured magnitude."""
    band = counts.reference_band
    b = band.upper()
    base = {"band": band, "classifier": f"SPREAD_MODEL_{b} + (5/3) SPREADERR_MODEL_{b}",
            "galaxy_above": stats.SG_GALAXY_MIN, "star_abs_below": stats.SG_STAR_MAX,
            "convention": "DES Y1A1 GOLD MODEST_CLASS (Drlica-Wagner et al. 2018, arXiv:1708.01531)",
            "magnitude": f"MAG_AUTO_{b} (measured)", "objects": "recovered, truth objtype known"}
    if band not in counts.spread_bands:
        return {**base, "available": False,
                "reason": f"the sim catalogs have no SPREAD_MODEL_{b} / SPREADERR_MODEL_{b} columns "
                          "(measured with a parameter file without them, e.g. config/light.param)"}
    keys, vals = counts.table("stargalaxy")
    if not len(keys):
        return {**base, "available": False,
                "reason": "no recovered object has a known truth type (objtype 0 galaxy / 1 star)"}
    dense = np.zeros((len(batches), 2, 3, ex.N_COARSE))
    bi = batches.index[keys[:, 0]]
    ok = bi >= 0
    np.add.at(dense, (bi[ok], keys[ok, 1], keys[ok, 2], keys[ok, 3]), vals[ok, 0])
    dense = dense[..., lo:hi]
    edges = _coarse_edges(lo, hi)
    centres = 0.5 * (edges[1:] + edges[:-1])
    out = {**base, "available": True}
    for name, code in (("galaxies", 0), ("stars", 1)):
        true_c = dense[:, code].sum(1)            # (batches, bins): true type c, any class
        said_c = dense[:, :, code + 1].sum(1)     # classified c, any true type
        both = dense[:, code, code + 1]
        totals = {"true": int(true_c.sum()), "classified": int(said_c.sum()), "both": int(both.sum())}
        totals["completeness"] = totals["both"] / totals["true"] if totals["true"] else float("nan")
        totals["purity"] = totals["both"] / totals["classified"] if totals["classified"] else float("nan")
        out[name] = {**totals,
                     "completeness_curve": _curve(stats.completeness(true_c, both, options.level), centres,
                                                  options.min_count),
                     "purity_curve": _curve(stats.completeness(said_c, both, options.level), centres,
                                            options.min_count)}
    return out


def offsets(counts: CampaignCounts) -> dict:
    keys, vals = counts.table("offsets")
    hist = np.zeros(ex.N_OFFSET)
    if len(keys):
        np.add.at(hist, keys[:, 0], vals[:, 0])
    return {"available": counts.has_offsets and hist.sum() > 0, "objects": int(hist.sum()),
            "median_arcsec": stats.median_from_counts(hist, ex.OFFSET_PER_ARCSEC), "_hist": hist}


def magnitude_image(counts: CampaignCounts) -> dict:
    keys, vals = counts.table("magmag")
    image = np.zeros((3, ex.N_MAGMAG, ex.N_MAGMAG))
    if len(keys):
        np.add.at(image, (keys[:, 0], keys[:, 1], keys[:, 2]), vals[:, 0])
    return {"objects": {name: int(image[code].sum()) for code, name in ((1, "galaxies"), (2, "stars"),
                                                                        (0, "unknown type")) if image[code].sum()},
            "_image": image}


def _varying(values: dict[str, int], what: str) -> str:
    """One value as itself; several as ``varies (N values: a in n, b in m ...)``."""
    if not values:
        return "not recorded"
    if len(values) == 1:
        return next(iter(values))
    shown = ", ".join(f"{v} ({n})" for v, n in sorted(values.items(), key=lambda kv: -kv[1])[:4])
    more = ", ..." if len(values) > 4 else ""
    return f"varies: {len(values)} values over the {what} ({shown}{more})"


def provenance(info: CampaignInfo) -> dict:
    """What made the catalogs, once per campaign: one value per item, or 'varies' with the counts.

    The tiles' fingerprints differ by design (each covers its own positions); the campaign's
    fingerprint is the digest of every other input when the tiles agree on them
    (``status.json`` ``fingerprint_inputs``), else the inputs that differ are named.
    """
    from .. import __version__

    cards = info.headers
    statuses = list(info.statuses.values())
    inputs: dict[str, dict[str, int]] = {}
    for s in statuses:
        for key, digest in s.inputs.items():
            if key not in PER_TILE_INPUTS:
                inputs.setdefault(key, {}).setdefault(digest, 0)
                inputs[key][digest] += 1
    with_inputs = sum(1 for s in statuses if s.inputs)
    varying = {k: v for k, v in inputs.items() if len(v) > 1 or sum(v.values()) < with_inputs}
    if with_inputs and not varying:
        shared = json.dumps({k: next(iter(v)) for k, v in sorted(inputs.items())}, sort_keys=True)
        fingerprint = hashlib.sha256(shared.encode()).hexdigest()[:16]
        fp_text = f"{fingerprint} (every input but the tiles' own positions, the same in all {with_inputs} tiles)"
    elif with_inputs:
        fingerprint = None
        fp_text = "varies: " + "; ".join(f"{k} has {len(v)} value(s) over {sum(v.values())} of {with_inputs} tiles"
                                         for k, v in sorted(varying.items()))
    else:
        fingerprint, fp_text = None, "not recorded (no status.json with fingerprint_inputs)"
    tile_fps = {s.fingerprint for s in statuses if s.fingerprint}
    releases: dict[str, int] = {}
    for s in statuses:
        if s.release:
            releases[s.release] = releases.get(s.release, 0) + 1
    versions = {"balrog_runner": __version__, "python": platform.python_version(), "numpy": np.__version__}
    for module in ("galsim", "fitsio", "matplotlib", "healpy", "scipy", "skyproj"):
        with contextlib.suppress(Exception):  # a missing optional package is just not listed
            versions[module] = __import__(module).__version__
    names = info.campaign_names
    return {
        "campaign": names[0] if len(names) == 1 else (", ".join(names) if names else "not recorded"),
        "campaign_fingerprint": fingerprint, "fingerprint": fp_text, "tile_fingerprints": len(tile_fps),
        "release": _varying(releases or cards.get("RELEASE", {}), "tiles"),
        "sextractor": _varying(cards.get("SEXVER", {}), "realizations"),
        "swarp": _varying(cards.get("SWARPVER", {}), "realizations"),
        "balrog_runner": _varying(cards.get("BALRVER", {}), "realizations"),
        "galsim": _varying(cards.get("GALSIMV", {}), "realizations"),
        "inject_into": _varying(cards.get("INJINTO", {}), "realizations"),
        "config_files": {k: _varying(inputs[k], "tiles") for k in CONFIG_INPUTS if k in inputs},
        "cards": {k: dict(v) for k, v in cards.items()},
        "versions": versions,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def totals(counts: CampaignCounts) -> dict:
    keys, vals = counts.table("totals")
    s = vals.sum(0) if len(vals) else np.zeros(4)
    return {"objects_injected": int(s[0]), "objects_drawn": int(s[1]), "objects_on_masked_pixels": int(s[2]),
            "objects_recovered": int(s[3]), "recovered_fraction": float(s[3] / s[1]) if s[1] else float("nan")}


def compute(counts: CampaignCounts, info: CampaignInfo, options: Options | None = None) -> dict:
    """Every number of the report (``summary.json``; keys starting ``_`` are arrays for the figures only)."""
    from ..measurement.blends import CLASS_NAMES
    from .plots import OBJTYPE_NAMES

    options = options or Options()
    batches = Batches(counts)
    lo, hi = magnitude_range(counts)
    comp = completeness_by_band(counts, batches, lo, hi, options)
    fits = {b: c["fit"] for b, c in comp.items()}
    ref = counts.reference_band
    centre = fits[ref]["m50"]
    if not np.isfinite(centre):
        centre = 0.5 * (lo + hi) / ex.MAG_COARSE_PER_MAG
    missing = info.missing
    present = len(info.realizations)
    planned = max(missing.planned, present + missing.realizations)
    seconds = [s.seconds for s in info.statuses.values() if s.seconds is not None]
    off = offsets(counts)
    return {
        "campaign": provenance_name(info),
        "source": {"kind": info.source, "where": info.where, "read_from": info.read_from},
        "tiles": len(counts.tiles),
        "realizations": present,
        **totals(counts),
        "partial": bool(missing),
        "realizations_expected": planned,
        "median_offset_arcsec": off["median_arcsec"],
        "offsets": off,
        "seconds_spent": float(sum(seconds)) if seconds else None,
        "m50": {b: f["m50"] for b, f in fits.items()},
        "m50_error": {b: f["m50_error"] for b, f in fits.items()},
        "m50_width": {b: f["width"] for b, f in fits.items()},
        "bias_bright": bias_bright(counts, batches, options),
        "bright_mag": BRIGHT_MAG,
        "missing": missing.as_dict(),
        "reference_band": ref,
        "bands": counts.bands,
        "min_count": options.min_count,
        "interval": {"kind": "Jeffreys at the effective sample size n/deff (Korn & Graubard 1998)",
                     "level": options.level},
        "bootstrap": {"unit": f"batch of realizations (indexstart mod {ex.N_BATCH})", "batches": len(batches),
                      "replicas": int(len(batches.weights)), "seed": stats.BOOTSTRAP_SEED,
                      "groups": present, "error": "std (ddof=1) of the replicas"},
        "magnitude_edges": _floats(_coarse_edges(lo, hi)),
        "completeness": comp,
        "bias": bias_by_band(counts, batches, lo, hi, options),
        "by_blend_class": splits(counts, batches, lo, hi, options, "blend", CLASS_NAMES),
        "blend_classes_from": counts.match_sources,
        "by_objtype": splits(counts, batches, lo, hi, options, "type", OBJTYPE_NAMES),
        "star_galaxy": star_galaxy(counts, batches, lo, hi, options),
        "completeness_by_size": size_panels(counts, batches, centre, options),
        "magnitude_image": magnitude_image(counts),
        "per_tile": per_tile(counts, info, fits, lo, hi),
        "skymap": sky(counts, options),
        "provenance": provenance(info),
    }


def provenance_name(info: CampaignInfo) -> str:
    names = info.campaign_names
    return names[0] if len(names) == 1 else (" + ".join(names) if names else "")
