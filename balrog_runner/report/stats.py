"""The report's statistics: intervals, the completeness model, and medians from histograms.

Why batches of realizations. Objects of one realization share a tile, its noise field and
its neighbours, so they are not independent; realizations are. The errors below treat
*batches* of realizations as the independent units: realization ``indexstart`` belongs to
batch ``indexstart mod 61`` (:func:`.exprs.batch`), so a campaign of up to a few dozen
realizations has about one realization per batch, and a campaign of 10^4 has 61 batches of
about 160 each. A batch is as independent of the others as its realizations are, so every
variance estimated from the spread between batches is the realization-to-realization
scatter, at 61 units instead of 10^4 (enough to estimate a variance; the counts stay small).

Completeness in a bin: ``p = k / n`` (recovered / drawn). Its interval is the Jeffreys
interval (Brown, Cai & DasGupta 2001, Statist. Sci. 16, 101: Beta(k + 1/2, n - k + 1/2)
quantiles, 0 as lower end when k = 0 and 1 as upper end when k = n) at the *effective*
sample size ``n_eff = n / deff`` (Korn & Graubard 1998, Survey Methodology 24, 193): the
design effect ``deff = max(1, v / v_bin)`` compares the between-batch variance of the ratio
``v = m/(m-1) * sum_b (k_b - p n_b)^2 / n^2`` (m occupied batches; the linearisation
variance of a ratio over clusters) to the binomial ``v_bin = p (1 - p) / n``. So a 0% or
100% bin of one object gets the binomial width it deserves (not 0), and a bin whose
realizations disagree more than binomial noise gets wider. Intervals are central 68.27%.

50% completeness: the unbinned detections (recovered or not, per object's true magnitude)
fit by maximum likelihood with ``p(m) = A / (1 + exp((m - m_c) / w))`` (plateau A, width w);
m50 is where ``p = 1/2``: ``m_c + w ln(2A - 1)``. The likelihood is summed over 1/64-mag
bins at each bin's mean magnitude, which is the unbinned likelihood to better than 10^-4 of
the width (the test checks it against a per-object fit). Errors: the sandwich covariance
with batches as clusters (the scatter between realizations), never below the binomial
(inverse Fisher information) one.

Magnitude offsets: median and 1.4826 x median absolute deviation from 1/512-mag
histograms (linear within a bin: within 10^-4 mag of the sample's own median for smooth
distributions); their errors are the standard deviation of a seeded bootstrap over batches
(:data:`BOOTSTRAP_N` replicas, seed :data:`BOOTSTRAP_SEED`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize
from scipy.stats import beta

from . import exprs as ex

#: Replicas and seed of every bootstrap in the report (summary.json records them).
BOOTSTRAP_N = 200
BOOTSTRAP_SEED = 20_121
#: Central probability of every interval: 1 sigma.
LEVEL = 0.6827
#: Default fewest objects in a bin for it to be drawn or given a median (``--min-count``).
MIN_COUNT = 10
#: Normal-consistent MAD factor.
MAD_TO_SIGMA = 1.4826


def bootstrap_weights(n_groups: int, n_boot: int = BOOTSTRAP_N, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """``(n_boot, n_groups)`` multiplicities of each group in each replica.

    ``rng = numpy.random.default_rng(seed)``; each replica draws ``n_groups`` groups with
    replacement, ``numpy.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)``.
    """
    rng = np.random.default_rng(seed)
    out = np.zeros((n_boot, n_groups), dtype=np.int64)
    for b in range(n_boot):
        out[b] = np.bincount(rng.integers(0, n_groups, size=n_groups), minlength=n_groups)
    return out


def replica_std(replicas: np.ndarray) -> np.ndarray:
    """Per-column standard deviation (ddof=1) over the finite replica values (NaN with fewer than 2)."""
    replicas = np.asarray(replicas, dtype=float)
    finite = np.isfinite(replicas)
    count = finite.sum(axis=0)
    filled = np.where(finite, replicas, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=0) / count
        var = (np.where(finite, replicas - mean, 0.0) ** 2).sum(axis=0) / (count - 1)
    return np.where(count >= 2, np.sqrt(var), np.nan)


# ------------------------------------------------------------------ completeness intervals


def jeffreys(k: np.ndarray, n: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Jeffreys interval of ``k`` successes in ``n`` (both may be non-integer effective counts)."""
    k, n = np.asarray(k, float), np.asarray(n, float)
    lo_q, hi_q = (1 - level) / 2, (1 + level) / 2
    with np.errstate(invalid="ignore"):
        lower = np.where(k <= 0, 0.0, beta.ppf(lo_q, k + 0.5, np.maximum(n - k, 0) + 0.5))
        upper = np.where(k >= n, 1.0, beta.ppf(hi_q, k + 0.5, np.maximum(n - k, 0) + 0.5))
    bad = n <= 0
    return np.where(bad, np.nan, lower), np.where(bad, np.nan, upper)


def completeness(n_b: np.ndarray, k_b: np.ndarray, level: float = LEVEL) -> dict[str, np.ndarray]:
    """Completeness per bin from per-batch counts ``n_b``, ``k_b`` of shape ``(batches, bins)``.

    Returns ``n``, ``k``, ``fraction``, ``lower``, ``upper`` (module docstring), ``deff`` and
    ``batches`` (occupied batches per bin).
    """
    n_b, k_b = np.atleast_2d(np.asarray(n_b, float)), np.atleast_2d(np.asarray(k_b, float))
    n, k = n_b.sum(axis=0), k_b.sum(axis=0)
    occupied = (n_b > 0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        resid = ((k_b - p * n_b) ** 2).sum(axis=0)
        v = np.where(occupied >= 2, occupied / np.maximum(occupied - 1, 1) * resid / n**2, np.nan)
        v_bin = p * (1 - p) / n
        deff = np.where((v_bin > 0) & np.isfinite(v), np.maximum(1.0, v / v_bin), 1.0)
    n_eff = np.where(n > 0, n / deff, 0.0)
    lower, upper = jeffreys(np.where(n > 0, p, 0.0) * n_eff, n_eff, level)
    return {"n": n.astype(np.int64), "k": k.astype(np.int64), "fraction": p, "lower": lower, "upper": upper,
            "deff": deff, "batches": occupied.astype(np.int64)}


# ------------------------------------------------------------------ the completeness model


def _model(theta: np.ndarray, m: np.ndarray):
    """``p(m)`` and its gradient in (A, m_c, w)."""
    a, mc, w = theta
    x = np.clip((m - mc) / w, -500, 500)
    s = 1.0 / (1.0 + np.exp(x))
    p = a * s
    ds = s * (1 - s)
    grad = np.stack([s, a * ds / w, a * ds * x / w])
    return p, grad


def _loglike(theta: np.ndarray, m: np.ndarray, n: np.ndarray, k: np.ndarray) -> tuple[float, np.ndarray]:
    p, grad = _model(theta, m)
    p = np.clip(p, 1e-12, 1 - 1e-12)
    ll = float(np.sum(k * np.log(p) + (n - k) * np.log1p(-p)))
    dp = k / p - (n - k) / (1 - p)
    return ll, grad @ dp


def m50_of(theta: np.ndarray) -> float:
    a, mc, w = theta
    return float(mc + w * math.log(2 * a - 1)) if a > 0.5 else float("nan")


def fit_completeness(n_b: np.ndarray, k_b: np.ndarray, msum_b: np.ndarray, mag_step: float) -> dict:
    """Maximum-likelihood logistic completeness (module docstring) from per-batch fine-bin counts.

    ``n_b``, ``k_b``, ``msum_b``: ``(batches, bins)`` objects, recovered objects and summed
    true magnitude per 1/64-mag bin. Returns ``m50``, ``m50_error``, ``width``,
    ``width_error``, ``plateau``, ``plateau_error``, ``m_c``, the covariance, and ``reason``
    (why m50 is NaN, else None).
    """
    n_b, k_b, msum_b = (np.atleast_2d(np.asarray(a, float)) for a in (n_b, k_b, msum_b))
    n, k = n_b.sum(0), k_b.sum(0)
    use = n > 0
    nan = float("nan")
    out = {"m50": nan, "m50_error": nan, "width": nan, "width_error": nan, "plateau": nan, "plateau_error": nan,
           "m_c": nan, "objects": int(n.sum()), "recovered": int(k.sum()), "batches": int((n_b.sum(1) > 0).sum()),
           "reason": None}
    if not use.any():
        return {**out, "reason": "no object to fit"}
    m = msum_b.sum(0)[use] / n[use]
    nn, kk = n[use], k[use]
    if kk.sum() == 0:
        return {**out, "reason": "no object recovered"}
    if kk.sum() == nn.sum():
        return {**out, "reason": "every object recovered: completeness never falls to 50% in the injected range"}
    frac = kk / nn
    bright = np.cumsum(nn) <= 0.2 * nn.sum()  # the brightest fifth of the objects (bins are in magnitude order)
    bright[0] = True
    a0 = float(np.clip(kk[bright].sum() / nn[bright].sum(), 0.55, 0.999))
    crossing = np.flatnonzero(frac < a0 / 2)
    mc0 = float(m[crossing[0]]) if len(crossing) else float(np.median(m))
    lo, hi = float(m.min()), float(m.max())

    def neg(theta):
        ll, g = _loglike(theta, m, nn, kk)
        return -ll, -g

    res = optimize.minimize(neg, np.array([a0, mc0, 0.3]), jac=True, method="L-BFGS-B",
                            bounds=[(1e-3, 1.0), (lo - 5.0, hi + 5.0), (mag_step / 4, 5.0)])
    theta = res.x
    a, mc, w = (float(v) for v in theta)
    out.update(plateau=a, m_c=mc, width=w)
    p, grad = _model(theta, m)
    p = np.clip(p, 1e-12, 1 - 1e-12)
    fisher = (grad * (nn / (p * (1 - p)))) @ grad.T
    try:
        model_cov = np.linalg.inv(fisher)
    except np.linalg.LinAlgError:
        return {**out, "reason": "the completeness model is not constrained by the data"}
    if not (np.isfinite(model_cov).all() and (np.diag(model_cov) > 0).all()):
        # a numerically singular information matrix (a few recovered objects, a parameter at its
        # bound): its inverse has negative variances, and the fit is no better constrained
        return {**out, "reason": "the completeness model is not constrained by the data"}
    # per-batch scores at the optimum: the spread between realizations
    scores = []
    for b in range(len(n_b)):
        nb, kb = n_b[b][use], k_b[b][use]
        if nb.sum() == 0:
            continue
        scores.append(grad @ (kb / p - (nb - kb) / (1 - p)))
    cov = model_cov
    if len(scores) >= 2:
        s = np.array(scores)
        meat = len(s) / (len(s) - 1) * (s.T @ s)
        cov = model_cov @ meat @ model_cov
    m50 = m50_of(theta)
    dm = np.array([2 * w / (2 * a - 1), 1.0, math.log(2 * a - 1)]) if a > 0.5 else np.full(3, np.nan)
    var_m50 = max(float(dm @ cov @ dm), float(dm @ model_cov @ dm)) if a > 0.5 else nan
    out.update(m50=m50, m50_error=math.sqrt(var_m50) if var_m50 >= 0 else nan,
               width_error=math.sqrt(max(cov[2, 2], model_cov[2, 2])),
               plateau_error=math.sqrt(max(cov[0, 0], model_cov[0, 0])),
               covariance=[[float(v) for v in row] for row in cov])
    if not res.success:
        out["reason"] = f"the fit did not converge ({res.message})"
    elif a <= 0.5:
        out.update(m50=nan, m50_error=nan, reason="the plateau is below 50%: completeness never reaches 50%")
    elif not lo <= m50 <= hi:
        out.update(m50=nan, m50_error=nan, reason=f"the 50% point ({m50:.2f}) is outside the injected magnitudes "
                                                  f"({lo:.2f}-{hi:.2f})")
    return out


def model_curve(fit: dict, m: np.ndarray) -> np.ndarray:
    """The fitted completeness at magnitudes ``m`` (NaN without a fit)."""
    if not np.isfinite(fit.get("plateau", np.nan)):
        return np.full(len(m), np.nan)
    return _model(np.array([fit["plateau"], fit["m_c"], fit["width"]]), np.asarray(m, float))[0]


def shift_fit(n: np.ndarray, k: np.ndarray, msum: np.ndarray, fit: dict, iterations: int = 30) -> tuple[np.ndarray,
                                                                                                        np.ndarray]:
    """m50 per row (a tile) of coarse-bin counts: the campaign's fitted shape moved to the row's data.

    Plateau and width stay the campaign's (``fit``); ``m_c`` is each row's maximum-likelihood
    value (Fisher scoring, vectorised over rows). Returns ``(m50, error)``; NaN for rows whose
    data do not pin it (nothing recovered, everything recovered, or the 50% point outside
    their magnitudes).
    """
    n, k, msum = (np.atleast_2d(np.asarray(a, float)) for a in (n, k, msum))
    rows = len(n)
    if not np.isfinite(fit.get("m50", np.nan)):
        return np.full(rows, np.nan), np.full(rows, np.nan)
    a, w = fit["plateau"], fit["width"]
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.where(n > 0, msum / n, 0.0)
    mc = np.full(rows, fit["m_c"])
    info = np.zeros(rows)
    for _ in range(iterations):
        x = np.clip((m - mc[:, None]) / w, -500, 500)
        s = 1 / (1 + np.exp(x))
        p = np.clip(a * s, 1e-12, 1 - 1e-12)
        dp = a * s * (1 - s) / w
        score = ((k / p - (n - k) / (1 - p)) * dp * (n > 0)).sum(1)
        info = (n * dp**2 / (p * (1 - p))).sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            step = np.clip(np.where(info > 0, score / info, 0.0), -0.5, 0.5)
        mc = mc + step
    m50 = mc + w * math.log(2 * a - 1)
    lo = np.where(n > 0, m, np.inf).min(1)
    hi = np.where(n > 0, m, -np.inf).max(1)
    ok = (k.sum(1) > 0) & (k.sum(1) < n.sum(1)) & (m50 >= lo) & (m50 <= hi) & (info > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        err = 1 / np.sqrt(info)
    return np.where(ok, m50, np.nan), np.where(ok, err, np.nan)


def fifty_percent(centres: np.ndarray, frac: np.ndarray) -> float:
    """The faintest value where a binned fraction falls through 50% (linear interpolation), NaN if never.

    Kept for comparison with the fit (the figure marks both).
    """
    ok = np.isfinite(frac)
    centres, frac = np.asarray(centres)[ok], np.asarray(frac)[ok]
    below = np.flatnonzero((frac[:-1] >= 0.5) & (frac[1:] < 0.5))
    if len(below) == 0:
        return float("nan")
    i = below[-1]
    f0, f1 = frac[i], frac[i + 1]
    return float(centres[i] + (0.5 - f0) / (f1 - f0) * (centres[i + 1] - centres[i]))


# ------------------------------------------------------------------ medians from histograms


def _edge(j: np.ndarray) -> np.ndarray:
    """Lower edge (mag) of interior delta bin ``j`` (:func:`.exprs.delta_bin`)."""
    return (j - ex.DELTA_OFFSET) / ex.DELTA_PER_MAG


def _window(total: np.ndarray) -> tuple[int, int]:
    """Absolute bins ``[j0, j1)`` holding every count, with an empty bin each side where there is room."""
    nz = np.flatnonzero(total)
    if not len(nz):
        return 0, 1
    return max(int(nz[0]) - 1, 0), min(int(nz[-1]) + 2, ex.N_DELTA)


def _cdf(hist: np.ndarray, cum: np.ndarray, j0: int, x: np.ndarray) -> np.ndarray:
    """Cumulative count at ``x`` (per row) of histograms over absolute bins ``j0 ..``, linear within a bin.

    The underflow bin counts as below every ``x``, the overflow bin as above; the window's
    edge bins are empty unless they are those.
    """
    rows, w = hist.shape
    lo, hi = -float(ex.DELTA_RANGE), float(ex.DELTA_RANGE)
    r = np.arange(rows)
    xc = np.clip(x, lo, hi - 1e-12)
    j = np.clip(np.floor(xc * ex.DELTA_PER_MAG).astype(np.int64) + ex.DELTA_OFFSET, 1, ex.N_DELTA - 2)
    rel = np.clip(j - j0, 0, w - 1)
    before = np.where(rel > 0, cum[r, np.maximum(rel - 1, 0)], 0.0)
    inside = before + hist[r, rel] * (xc - _edge(j)) * ex.DELTA_PER_MAG
    under = hist[:, 0] if j0 == 0 else np.zeros(rows)
    over = hist[:, w - 1] if j0 + w == ex.N_DELTA else np.zeros(rows)
    return np.where(x < lo, under, np.where(x >= hi, cum[:, -1] - over, inside))


def hist_median_scatter(hist: np.ndarray, min_count: int = MIN_COUNT, j0: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Median and 1.4826 x MAD of each row of delta histograms (NaN below ``min_count``).

    ``hist``: ``(rows, bins)`` counts of the absolute bins ``j0 ..`` of :func:`.exprs.delta_bin`
    (the whole ``N_DELTA`` by default).
    """
    hist = np.atleast_2d(np.asarray(hist, float))
    rows, w = hist.shape
    cum = np.cumsum(hist, axis=1)
    total = cum[:, -1]
    half = total / 2
    rel = np.argmax(cum >= half[:, None], axis=1)
    j = rel + j0
    r = np.arange(rows)
    before = np.where(rel > 0, cum[r, np.maximum(rel - 1, 0)], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        median = _edge(j) + (half - before) / hist[r, rel] / ex.DELTA_PER_MAG
    ok = (total >= max(min_count, 1)) & (j >= 1) & (j <= ex.N_DELTA - 2)
    median = np.where(ok, median, np.nan)
    lo, hi = np.zeros(rows), np.full(rows, 2.0 * ex.DELTA_RANGE)
    med = np.where(ok, median, 0.0)
    enough = _cdf(hist, cum, j0, med + hi) - _cdf(hist, cum, j0, med - hi) >= half
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        inside = _cdf(hist, cum, j0, med + mid) - _cdf(hist, cum, j0, med - mid)
        lo, hi = np.where(inside >= half, lo, mid), np.where(inside >= half, mid, hi)
    scatter = np.where(ok & enough, MAD_TO_SIGMA * 0.5 * (lo + hi), np.nan)
    return median, scatter


def median_scatter_boot(hist_b: np.ndarray, weights: np.ndarray, min_count: int = MIN_COUNT) -> dict[str, float]:
    """Median and scatter of per-batch histograms ``(batches, N_DELTA)`` with bootstrap errors.

    ``weights``: :func:`bootstrap_weights` over the same batches (``(replicas, batches)``).
    """
    hist_b = np.atleast_2d(np.asarray(hist_b, float))
    total = hist_b.sum(0)
    nan = float("nan")
    out = {"n": int(total.sum()), "median": nan, "scatter": nan, "median_error": nan, "scatter_error": nan}
    if total.sum() < max(min_count, 1):
        return out
    j0, j1 = _window(total)
    window = hist_b[:, j0:j1]
    med, sig = hist_median_scatter(window.sum(0)[None, :], min_count, j0)
    out.update(median=float(med[0]), scatter=float(sig[0]))
    if np.isfinite(med[0]) and len(hist_b) >= 2:
        rm, rs = hist_median_scatter(weights.astype(float) @ window, min_count, j0)
        out["median_error"] = float(replica_std(rm[:, None])[0])
        out["scatter_error"] = float(replica_std(rs[:, None])[0])
    return out


def median_from_counts(counts: np.ndarray, per_unit: int) -> float:
    """Median of values histogrammed in bins of ``1/per_unit`` from 0 (linear within a bin)."""
    counts = np.asarray(counts, float)
    total = counts.sum()
    if total <= 0:
        return float("nan")
    cum = np.cumsum(counts)
    j = int(np.argmax(cum >= total / 2))
    before = cum[j - 1] if j else 0.0
    return float((j + (total / 2 - before) / counts[j]) / per_unit)


# ------------------------------------------------------------------ star/galaxy classification

#: DES morphological classifier ``SPREAD_MODEL + SG_ERR_FACTOR * SPREADERR_MODEL`` (one band, the
#: reference band: i in DES) and its thresholds, the Y1A1 GOLD ``MODEST_CLASS`` convention
#: (Drlica-Wagner et al. 2018, ApJS 235, 33, arXiv:1708.01531, star/galaxy section; Sevilla-Noarbe
#: et al. 2018, arXiv:1805.02427): a galaxy when the value is > 0.005, a star when its absolute value
#: is < 0.002, neither in between (or below -0.002: artefacts smaller than the PSF). DES DR1's
#: ``EXTENDED_COADD`` and Y3 GOLD's ``EXTENDED_CLASS`` sum several such cuts (e.g. SPREADERR factor 3
#: and threshold 0.005 for the highest class); the single Y1 cut is the one a report can state in a line.
SG_ERR_FACTOR = ex.SG_ERR_FACTOR
SG_GALAXY_MIN = ex.SG_GALAXY_MIN
SG_STAR_MAX = ex.SG_STAR_MAX
#: Classes of :func:`.exprs.spread_class`.
SG_GALAXY, SG_STAR, SG_NEITHER = 0, 1, -1
