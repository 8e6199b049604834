"""Binned statistics of the report with bootstrap errors over realizations.

Why realizations: objects of one realization share a tile, its noise field and its
neighbours, so they are not independent; realizations (and tiles) are. Each bootstrap
replica draws the campaign's ``G`` realizations with replacement and recomputes the
statistic on every object of the drawn realizations, counted as many times as its
realization was drawn. The replicas are fixed by the seed (:data:`BOOTSTRAP_SEED`):

    rng = numpy.random.default_rng(seed)
    for each of n_boot replicas: pick = rng.integers(0, G, size=G)
                                 weight = numpy.bincount(pick, minlength=G)

The error of a statistic is the standard deviation (ddof=1) of its finite replica values.
With one realization the error is NaN: there is nothing to resample.
"""

from __future__ import annotations

import numpy as np

#: Replicas and seed of every bootstrap in the report (summary.json records them).
BOOTSTRAP_N = 200
BOOTSTRAP_SEED = 20_121
#: Fewest finite values in a bin for a median / scatter.
MIN_COUNT = 5


def bootstrap_weights(n_groups: int, n_boot: int = BOOTSTRAP_N, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """``(n_boot, n_groups)`` multiplicities of each group in each replica (module docstring)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n_boot, n_groups), dtype=np.int64)
    for b in range(n_boot):
        out[b] = np.bincount(rng.integers(0, n_groups, size=n_groups), minlength=n_groups)
    return out


def _std(replicas: np.ndarray) -> np.ndarray:
    """Per-column standard deviation over the finite replica values (NaN with fewer than 2)."""
    replicas = np.asarray(replicas, dtype=float)
    out = np.full(replicas.shape[1:], np.nan)
    for idx in np.ndindex(*replicas.shape[1:]):
        v = replicas[(slice(None), *idx)]
        v = v[np.isfinite(v)]
        if len(v) >= 2:
            out[idx] = np.std(v, ddof=1)
    return out


def bin_index(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value (-1 outside ``[edges[0], edges[-1])`` or not finite)."""
    idx = np.digitize(x, edges) - 1
    idx[(idx < 0) | (idx >= len(edges) - 1) | ~np.isfinite(x)] = -1
    return idx


def _group_counts(x: np.ndarray, recovered: np.ndarray, groups: np.ndarray, edges: np.ndarray,
                  n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n, k)``: objects and recovered objects per (group, bin of ``x``), shape ``(n_groups, bins)``."""
    nb = len(edges) - 1
    idx = bin_index(np.asarray(x, float), edges)
    ok = idx >= 0
    flat = groups[ok] * nb + idx[ok]
    n = np.bincount(flat, minlength=n_groups * nb).reshape(n_groups, nb).astype(float)
    k = np.bincount(flat, weights=recovered[ok].astype(float), minlength=n_groups * nb).reshape(n_groups, nb)
    return n, k


def completeness_boot(x: np.ndarray, recovered: np.ndarray, groups: np.ndarray, edges: np.ndarray,
                      weights: np.ndarray) -> dict[str, np.ndarray]:
    """Recovered fraction per bin of ``x`` and its bootstrap error.

    ``groups`` is each object's realization number 0..G-1; ``weights`` from
    :func:`bootstrap_weights`. Returns ``centres, fraction, error, counts``.
    """
    n, k = _group_counts(x, recovered, groups, edges, weights.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = k.sum(0) / n.sum(0)
        reps = (weights @ k) / (weights @ n)
    return {"centres": 0.5 * (edges[1:] + edges[:-1]), "fraction": frac, "error": _std(reps),
            "counts": n.sum(0).astype(int)}


def fifty_percent_error(x: np.ndarray, recovered: np.ndarray, groups: np.ndarray, edges: np.ndarray,
                        weights: np.ndarray) -> float:
    """Bootstrap error of :func:`fifty_percent` of the completeness curve: the m50 of each replica's curve.

    NaN with one realization, or when fewer than two replicas cross 50%.
    """
    n, k = _group_counts(x, recovered, groups, edges, weights.shape[1])
    centres = 0.5 * (edges[1:] + edges[:-1])
    with np.errstate(invalid="ignore", divide="ignore"):
        reps = (weights @ k) / (weights @ n)
    m50 = np.array([[fifty_percent(centres, r)] for r in reps])
    return float(_std(m50)[0])


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The median of ``values`` each repeated ``weights`` times (integers), without repeating."""
    keep = weights > 0
    v, w = values[keep], weights[keep]
    total = int(w.sum())
    if total == 0:
        return float("nan")
    order = np.argsort(v, kind="stable")
    v, c = v[order], np.cumsum(w[order])

    def at(p: int) -> float:
        return float(v[np.searchsorted(c, p, side="right")])

    return at(total // 2) if total % 2 else 0.5 * (at(total // 2 - 1) + at(total // 2))


def _median_scatter(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    if weights.sum() < MIN_COUNT:
        return float("nan"), float("nan")
    med = weighted_median(values, weights)
    return med, 1.4826 * weighted_median(np.abs(values - med), weights)


def bias_boot(x: np.ndarray, delta: np.ndarray, groups: np.ndarray, edges: np.ndarray,
              weights: np.ndarray) -> dict[str, np.ndarray]:
    """Median and 1.4826-MAD scatter of ``delta`` per bin of ``x``, with bootstrap errors.

    Non-finite ``delta`` (not recovered, not measured) is left out; bins with fewer than
    :data:`MIN_COUNT` values give NaN. Returns ``centres, median, median_error, scatter,
    scatter_error, counts``.
    """
    nb = len(edges) - 1
    good = np.isfinite(delta)
    idx = bin_index(np.asarray(x, float), edges)
    ones = np.ones(weights.shape[1], dtype=np.int64)
    med = np.full(nb, np.nan)
    sig = np.full(nb, np.nan)
    reps = np.full((len(weights), nb, 2), np.nan)
    counts = np.zeros(nb, int)
    for b in range(nb):
        sel = good & (idx == b)
        counts[b] = int(sel.sum())
        vals, grp = delta[sel], groups[sel]
        med[b], sig[b] = _median_scatter(vals, ones[grp])
        if counts[b] < MIN_COUNT:
            continue
        for r, w in enumerate(weights):
            reps[r, b] = _median_scatter(vals, w[grp])
    err = _std(reps)
    return {"centres": 0.5 * (edges[1:] + edges[:-1]), "median": med, "median_error": err[:, 0],
            "scatter": sig, "scatter_error": err[:, 1], "counts": counts}


def fifty_percent(centres: np.ndarray, frac: np.ndarray) -> float:
    """The faintest value where the fraction falls through 50% (linear interpolation), NaN if never."""
    ok = np.isfinite(frac)
    centres, frac = centres[ok], frac[ok]
    below = np.flatnonzero((frac[:-1] >= 0.5) & (frac[1:] < 0.5))
    if len(below) == 0:
        return float("nan")
    i = below[-1]
    f0, f1 = frac[i], frac[i + 1]
    return float(centres[i] + (0.5 - f0) / (f1 - f0) * (centres[i + 1] - centres[i]))


# ------------------------------------------------------------------ star/galaxy classification

#: DES morphological classifier ``SPREAD_MODEL + SG_ERR_FACTOR * SPREADERR_MODEL`` (one band, the
#: reference band: i in DES) and its thresholds, the Y1A1 GOLD ``MODEST_CLASS`` convention
#: (Drlica-Wagner et al. 2018, ApJS 235, 33, arXiv:1708.01531, star/galaxy section; Sevilla-Noarbe
#: et al. 2018, arXiv:1805.02427): a galaxy when the value is > 0.005, a star when its absolute value
#: is < 0.002, neither in between (or below -0.002: artefacts smaller than the PSF). DES DR1's
#: ``EXTENDED_COADD`` and Y3 GOLD's ``EXTENDED_CLASS`` sum several such cuts (e.g. SPREADERR factor 3
#: and threshold 0.005 for the highest class); the single Y1 cut is the one a report can state in a line.
#: The original Balrog's Y1A1 analysis helpers computed ``modest_class`` with these same numbers.
SG_ERR_FACTOR = 5.0 / 3.0
SG_GALAXY_MIN = 0.005
SG_STAR_MAX = 0.002
#: Classes of :func:`spread_class`.
SG_GALAXY, SG_STAR, SG_NEITHER = 0, 1, -1


def spread_class(spread_model: np.ndarray, spreaderr_model: np.ndarray) -> np.ndarray:
    """Morphological class per object: 0 galaxy, 1 star, -1 neither (or not measured: NaN).

    The codes match the truth table's ``objtype`` (0 galaxy, 1 star), so a comparison is ``==``.
    """
    value = np.asarray(spread_model, float) + SG_ERR_FACTOR * np.asarray(spreaderr_model, float)
    out = np.full(value.shape, SG_NEITHER, dtype=int)
    with np.errstate(invalid="ignore"):
        out[value > SG_GALAXY_MIN] = SG_GALAXY
        out[np.abs(value) < SG_STAR_MAX] = SG_STAR
    return out


def purity_completeness(x: np.ndarray, truth_type: np.ndarray, measured_type: np.ndarray, groups: np.ndarray,
                        edges: np.ndarray, weights: np.ndarray) -> dict[str, dict]:
    """Completeness and purity of the galaxy and the star class per bin of ``x``, bootstrap errors.

    For class ``c``: completeness = objects of true type ``c`` classified ``c`` / objects of true
    type ``c``; purity = objects of true type ``c`` among those classified ``c``. Objects of unknown
    true type (not 0 or 1) are left out. Both are a recovered fraction of a subset, so the binning
    and the bootstrap are :func:`completeness_boot`'s. Returns ``{"galaxies"|"stars":
    {"completeness": curve, "purity": curve, "totals": {...}}}``.
    """
    known = (truth_type == SG_GALAXY) | (truth_type == SG_STAR)
    out: dict[str, dict] = {}
    for name, c in (("galaxies", SG_GALAXY), ("stars", SG_STAR)):
        true_c = known & (truth_type == c)
        said_c = known & (measured_type == c)
        comp = completeness_boot(x[true_c], measured_type[true_c] == c, groups[true_c], edges, weights)
        pur = completeness_boot(x[said_c], truth_type[said_c] == c, groups[said_c], edges, weights)
        both = int((true_c & said_c).sum())
        out[name] = {"completeness": comp, "purity": pur,
                     "totals": {"true": int(true_c.sum()), "classified": int(said_c.sum()), "both": both,
                                "completeness": both / int(true_c.sum()) if true_c.any() else float("nan"),
                                "purity": both / int(said_c.sum()) if said_c.any() else float("nan")}}
    return out
