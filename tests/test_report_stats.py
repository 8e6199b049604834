"""The report's statistics on samples whose truth is known: intervals cover, the fit finds m50."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize
from scipy.stats import beta

from balrog_runner.report import exprs, stats


def test_jeffreys_interval_edges_and_values():
    lo, hi = stats.jeffreys(np.array([0, 1, 5, 10]), np.array([10, 1, 10, 10]))
    assert lo[0] == 0.0 and hi[0] == pytest.approx(beta.ppf(0.84135, 0.5, 10.5), abs=1e-4) and hi[0] > 0.05
    assert hi[1] == 1.0 and lo[1] == pytest.approx(beta.ppf(0.15865, 1.5, 0.5), abs=1e-4) and lo[1] < 0.7
    assert lo[2] == pytest.approx(beta.ppf(0.15865, 5.5, 5.5), abs=1e-4) and hi[2] == pytest.approx(1 - lo[2])
    assert hi[3] == 1.0 and lo[3] < 1.0
    lo, hi = stats.jeffreys(np.array([0.0]), np.array([0.0]))
    assert np.isnan(lo[0]) and np.isnan(hi[0])


def test_design_effect_is_one_for_agreeing_batches_and_widens_for_scattered_ones():
    n_b = np.full((10, 1), 100.0)
    same = stats.completeness(n_b, np.full((10, 1), 50.0))
    assert same["deff"][0] == 1.0  # no scatter beyond binomial: the binomial width
    spread = stats.completeness(n_b, np.array([[20.0], [80.0]] * 5))
    p = 0.5
    v = 10 / 9 * np.sum((np.array([20, 80] * 5) - p * 100) ** 2) / 1000**2
    assert spread["deff"][0] == pytest.approx(v / (p * (1 - p) / 1000))
    assert spread["upper"][0] - spread["lower"][0] > 3 * (same["upper"][0] - same["lower"][0])


def test_intervals_cover_with_realization_scatter():
    """Monte Carlo: each realization's completeness scatters about p; the 68% interval covers p
    about 68% of the time, where the binomial one alone would not."""
    rng = np.random.default_rng(7)
    p_true, trials, covered, binomial_covered = 0.7, 400, 0, 0
    for _ in range(trials):
        p_real = np.clip(rng.normal(p_true, 0.08, 30), 0, 1)
        n_b = np.full((30, 1), 60.0)
        k_b = rng.binomial(60, p_real)[:, None].astype(float)
        c = stats.completeness(n_b, k_b)
        covered += c["lower"][0] <= p_true <= c["upper"][0]
        lo, hi = stats.jeffreys(k_b.sum(), n_b.sum())
        binomial_covered += lo <= p_true <= hi
    assert 0.60 < covered / trials < 0.77
    assert binomial_covered / trials < 0.5


def _counts(m, y, groups, n_groups=61):
    f = np.floor(m * 64).astype(int)
    n_b, k_b, s_b = (np.zeros((n_groups, exprs.N_FINE)) for _ in range(3))
    np.add.at(n_b, (groups, f), 1)
    np.add.at(k_b, (groups, f), y)
    np.add.at(s_b, (groups, f), m)
    return n_b, k_b, s_b


def test_fit_equals_the_per_object_likelihood_and_finds_m50():
    rng = np.random.default_rng(3)
    m = rng.uniform(20, 26, 30000)
    p = 0.93 / (1 + np.exp((m - 24.0) / 0.25))
    y = (rng.uniform(size=len(m)) < p).astype(float)
    fit = stats.fit_completeness(*_counts(m, y, rng.integers(0, 61, len(m))), 1 / 64)

    def nll(theta):
        a, mc, w = theta
        q = np.clip(a / (1 + np.exp((m - mc) / w)), 1e-12, 1 - 1e-12)
        return -np.sum(y * np.log(q) + (1 - y) * np.log1p(-q))

    a, mc, w = optimize.minimize(nll, [0.9, 24.0, 0.3], method="Nelder-Mead",
                                 options={"xatol": 1e-7, "fatol": 1e-10, "maxiter": 5000}).x
    assert fit["m50"] == pytest.approx(mc + w * np.log(2 * a - 1), abs=1e-3)  # binned at 1/64 mag: unbinned
    assert fit["width"] == pytest.approx(w, abs=1e-3) and fit["plateau"] == pytest.approx(a, abs=1e-3)
    truth = 24.0 + 0.25 * np.log(2 * 0.93 - 1)
    assert abs(fit["m50"] - truth) < 4 * fit["m50_error"] and 0.002 < fit["m50_error"] < 0.03


def test_m50_error_covers_with_realization_scatter():
    """Each realization's m50 moves by 0.1 mag: the sandwich error follows, the binomial one would not."""
    rng = np.random.default_rng(5)
    pulls = []
    for _ in range(60):
        groups = np.repeat(np.arange(40), 400)
        shift = rng.normal(0, 0.1, 40)[groups]
        m = rng.uniform(21, 26, len(groups))
        y = (rng.uniform(size=len(m)) < 0.95 / (1 + np.exp((m - 24.0 - shift) / 0.3))).astype(float)
        fit = stats.fit_completeness(*_counts(m, y, groups, 40), 1 / 64)
        pulls.append((fit["m50"] - (24.0 + 0.3 * np.log(0.9))) / fit["m50_error"])
    pulls = np.array(pulls)
    assert 0.5 < np.mean(np.abs(pulls) < 1) < 0.85 and np.std(pulls) < 1.5


def test_fit_says_why_there_is_no_m50():
    m = np.linspace(20, 22, 200)
    g = np.zeros(200, int)
    assert stats.fit_completeness(*_counts(m, np.ones(200), g, 1), 1 / 64)["reason"].startswith("every object")
    assert stats.fit_completeness(*_counts(m, np.zeros(200), g, 1), 1 / 64)["reason"] == "no object recovered"
    assert stats.fit_completeness(np.zeros((1, 10)), np.zeros((1, 10)), np.zeros((1, 10)), 1 / 64)["reason"] == \
        "no object to fit"


@pytest.mark.parametrize("sigma,mu", [(0.002, 0.0), (0.01, 0.02), (0.3, -0.1)])
def test_histogram_median_and_scatter_are_the_sample_ones(sigma, mu):
    rng = np.random.default_rng(1)
    d = rng.normal(mu, sigma, 20000)
    h = np.bincount(np.asarray(exprs.delta_bin(exprs.NP, d), int), minlength=exprs.N_DELTA)
    med, sig = stats.hist_median_scatter(h[None])
    assert med[0] == pytest.approx(np.median(d), abs=3e-4)
    assert sig[0] == pytest.approx(1.4826 * np.median(np.abs(d - np.median(d))), abs=5e-4)
    res = stats.median_scatter_boot(h[None].astype(float), stats.bootstrap_weights(1))
    assert res["median"] == med[0] and np.isnan(res["median_error"])  # one batch: nothing to resample


def test_histogram_median_edge_cases():
    h = np.zeros(exprs.N_DELTA)
    assert np.isnan(stats.hist_median_scatter(h[None])[0][0])
    h[0] = 100  # everything below -2 mag: no median to quote
    assert np.isnan(stats.hist_median_scatter(h[None])[0][0])
    h[:] = 0
    h[exprs.DELTA_OFFSET] = 5  # fewer than the minimum count
    assert np.isnan(stats.hist_median_scatter(h[None], min_count=10)[0][0])


def test_bootstrap_errors_follow_the_spread_between_batches():
    rng = np.random.default_rng(2)
    hist = np.zeros((20, exprs.N_DELTA))
    offsets = rng.normal(0, 0.05, 20)  # each batch its own zero point
    for b in range(20):
        d = rng.normal(offsets[b], 0.01, 200)
        np.add.at(hist[b], np.asarray(exprs.delta_bin(exprs.NP, d), int), 1)
    res = stats.median_scatter_boot(hist, stats.bootstrap_weights(20))
    assert 0.005 < res["median_error"] < 0.03  # ~ 0.05 / sqrt(20), not 0.01 / sqrt(4000)


def test_shift_fit_finds_each_tiles_m50():
    rng = np.random.default_rng(9)
    fit = {"m50": 24.0 + 0.3 * np.log(0.9), "m_c": 24.0, "plateau": 0.95, "width": 0.3}
    shifts = np.array([-0.3, 0.0, 0.2])
    n, k, s = (np.zeros((3, exprs.N_COARSE)) for _ in range(3))
    for t, dm in enumerate(shifts):
        m = rng.uniform(21, 27, 20000)
        y = rng.uniform(size=len(m)) < 0.95 / (1 + np.exp((m - 24.0 - dm) / 0.3))
        c = np.floor(m * 2).astype(int)
        np.add.at(n[t], c, 1)
        np.add.at(k[t], c, y)
        np.add.at(s[t], c, m)
    m50, err = stats.shift_fit(n, k, s, fit)
    assert np.allclose(m50, fit["m50"] + shifts, atol=4 * err.max()) and err.max() < 0.02


#: A blend-class split of a small demo campaign (balrog-demo --single-epoch --size 360 --ngal 40): two
#: batches of (fine bin, drawn, recovered, sum of true magnitudes); 5 of 59 recovered. Its information
#: matrix is numerically singular: the inverse had negative variances, and the report crashed on their
#: square root.
SINGULAR_SPLIT = [[(3, 1, 0, 22.437058587748837), (4, 1, 1, 22.696656841611997), (5, 1, 1, 22.76031915071774), (9, 1, 0, 23.54964374629701), (13, 1, 0, 24.467094156595586), (14, 1, 0, 24.494276033955845), (18, 1, 0, 24.653665338155793), (21, 1, 0, 24.77544722698944), (22, 1, 0, 24.827526092834322), (23, 1, 0, 24.833221241372467), (26, 1, 0, 24.911209556623803), (27, 2, 0, 50.04135099360967), (28, 1, 0, 25.109610312037105), (29, 1, 0, 25.202734700957087), (32, 2, 0, 50.57341894023382), (34, 1, 0, 25.376782233631545), (35, 1, 0, 25.41295049790817), (42, 1, 0, 25.66346816044839), (44, 1, 0, 25.723692588861656), (45, 2, 0, 51.490200862154836), (46, 1, 0, 25.763440308666272), (47, 1, 0, 25.774704306470735), (48, 1, 0, 25.871571285389617), (49, 1, 0, 25.880676767620454)], [(0, 1, 1, 21.583781679839834), (1, 1, 0, 22.071399453524126), (2, 1, 0, 22.341315891436484), (6, 1, 1, 22.898058958339767), (7, 1, 0, 22.950925846439603), (8, 1, 1, 23.020880668399386), (10, 1, 0, 24.073857885835938), (11, 1, 0, 24.1248736180309), (12, 1, 0, 24.439327665083745), (15, 1, 0, 24.543647028465344), (16, 1, 0, 24.571325495379654), (17, 1, 0, 24.601620500602166), (18, 1, 0, 24.65202306265394), (19, 1, 0, 24.67540285042565), (20, 2, 0, 49.4589283641331), (24, 1, 0, 24.859565410052447), (25, 1, 0, 24.89727004734683), (30, 1, 0, 25.212930863988234), (31, 1, 0, 25.24634214501038), (33, 1, 0, 25.371910464239313), (36, 1, 0, 25.431281387835874), (37, 1, 0, 25.44150986107112), (38, 1, 0, 25.51215803744409), (39, 1, 0, 25.550009414765896), (40, 1, 0, 25.573458574392706), (41, 1, 0, 25.601071888146958), (43, 1, 0, 25.703361620977642), (44, 1, 0, 25.727252130189004), (46, 1, 0, 25.754779373771697), (50, 1, 0, 25.909273549450244), (51, 1, 0, 25.935306851495188)]]


def test_a_fit_the_data_do_not_constrain_has_no_m50_and_does_not_crash():
    n_b, k_b, m_b = (np.zeros((2, 52)) for _ in range(3))
    for b, rows in enumerate(SINGULAR_SPLIT):
        for j, n, k, msum in rows:
            n_b[b, j], k_b[b, j], m_b[b, j] = n, k, msum
    fit = stats.fit_completeness(n_b, k_b, m_b, 1 / 64)
    assert np.isnan(fit["m50"]) and fit["reason"] == "the completeness model is not constrained by the data"
    assert (fit["objects"], fit["recovered"]) == (59, 5)
