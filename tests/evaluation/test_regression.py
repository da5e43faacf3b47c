"""Tests for mva.evaluation.regression against numpy, scipy and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from mva.evaluation.regression import (
    binned_profile,
    regression_metrics,
    sigma_eff,
    weighted_median,
    weighted_quantile,
)

QS = np.array([0.0, 0.01, 0.1, 0.25, 0.5, 0.6, 0.9, 0.99, 1.0])


# --------------------------------------------------------------------------- quantiles


@pytest.mark.parametrize("n", [1, 2, 7, 100, 1001])
def test_weighted_quantile_unit_weights_matches_numpy_hazen(n):
    rng = np.random.default_rng(n)
    x = np.round(rng.normal(size=n), 1)  # ties included
    np.testing.assert_allclose(
        weighted_quantile(x, QS), np.quantile(x, QS, method="hazen"), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(
        weighted_quantile(x, QS, np.full(n, 3.7)), np.quantile(x, QS, method="hazen"), atol=1e-12
    )
    assert weighted_median(x) == pytest.approx(np.median(x), abs=1e-12)


def test_weighted_quantile_brackets_numpy_inverted_cdf():
    # the inverted-CDF quantile is x_(k); the interpolated one must lie in [x_(k-1), x_(k+1)]
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=500), rng.uniform(0.1, 3.0, 500)
    xs = np.sort(x)
    ours = weighted_quantile(x, QS[1:-1], w)
    ref = np.quantile(x, QS[1:-1], weights=w, method="inverted_cdf")
    for value, r in zip(ours, ref):
        k = int(np.flatnonzero(xs == r)[0])
        assert xs[max(k - 1, 0)] <= value <= xs[min(k + 1, xs.size - 1)]


def test_weighted_quantile_closed_form_and_shapes():
    # x = 1, 2, 3 with weights 1, 2, 1 sit at cumulative positions 1/8, 1/2, 7/8
    x, w = [3.0, 1.0, 2.0], [1.0, 1.0, 2.0]
    assert weighted_median(x, w) == pytest.approx(2.0)
    assert weighted_quantile(x, 0.25, w) == pytest.approx(1.0 + (0.25 - 0.125) / 0.375)
    assert weighted_quantile(x, 0.05, w) == 1.0  # below the first position
    assert isinstance(weighted_quantile(x, 0.5, w), float)
    assert weighted_quantile(x, np.full((2, 3), 0.5), w).shape == (2, 3)
    # zero weights are ignored
    assert weighted_median([1.0, 2.0, 100.0], [1.0, 1.0, 0.0]) == pytest.approx(1.5)
    with pytest.raises(ValueError):
        weighted_quantile(x, 1.5, w)
    with pytest.raises(ValueError):
        weighted_median(x, [1.0, -1.0, 0.0])


def test_weighted_quantile_large_sample_matches_ppf():
    rng = np.random.default_rng(2)
    x = rng.normal(size=200_000)
    w = rng.uniform(0.5, 1.5, x.size)
    q = np.array([0.05, 0.3, 0.5, 0.8, 0.95])
    np.testing.assert_allclose(weighted_quantile(x, q, w), stats.norm.ppf(q), atol=0.02)


def test_weighted_quantile_negative_weights_stay_sane():
    rng = np.random.default_rng(3)
    x = rng.normal(size=1000)
    w = np.where(rng.uniform(size=x.size) < 0.2, -1.0, 1.0)
    values = weighted_quantile(x, np.linspace(0, 1, 51), w)
    assert np.all(np.isfinite(values))
    assert np.all(np.diff(values) >= 0)
    assert x.min() <= values[0] and values[-1] <= x.max()


# --------------------------------------------------------------------------- sigma_eff


def test_sigma_eff_gaussian_and_uniform():
    rng = np.random.default_rng(4)
    assert sigma_eff(rng.normal(0.0, 2.5, 200_000)) == pytest.approx(2.5, rel=0.02)
    assert sigma_eff(rng.uniform(0.0, 1.0, 200_000)) == pytest.approx(0.683 / 2, rel=0.01)
    # importance weights pdf(N(0, 1.3)) / pdf(N(0, 1)) turn a N(0, 1) sample into N(0, 1.3)
    x = rng.normal(0.0, 1.0, 200_000)
    w = stats.norm.pdf(x, scale=1.3) / stats.norm.pdf(x)
    assert sigma_eff(x, w) == pytest.approx(1.3, rel=0.03)


def _brute_sigma_eff(x, w, fraction):
    """Smallest value interval [a, b] holding the fraction, over all pairs of values."""
    values = np.unique(x)
    need = fraction * w.sum()
    best = np.inf
    for i, a in enumerate(values):
        for b in values[i:]:
            if w[(x >= a) & (x <= b)].sum() >= need * (1 - 1e-12):
                best = min(best, b - a)
                break
    return best / 2


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.683, 0.9, 1.0])
def test_sigma_eff_matches_brute_force(fraction):
    rng = np.random.default_rng(int(fraction * 100))
    x = np.round(rng.standard_cauchy(300), 1)  # heavy tails and ties
    w = rng.uniform(0.1, 2.0, x.size)
    assert sigma_eff(x, w, fraction) == pytest.approx(_brute_sigma_eff(x, w, fraction))
    assert sigma_eff(x, None, fraction) == pytest.approx(
        _brute_sigma_eff(x, np.ones(x.size), fraction)
    )


def test_sigma_eff_exact_counts_and_limits():
    x = np.arange(1000.0)
    # 500 consecutive integers span 499
    assert sigma_eff(x, fraction=0.5) == pytest.approx(499 / 2)
    assert sigma_eff(x, fraction=1.0) == pytest.approx(999 / 2)
    assert sigma_eff(np.full(10, 4.2)) == 0.0
    with pytest.raises(ValueError):
        sigma_eff(x, fraction=0.0)


def test_sigma_eff_cancelling_negative_weights():
    rng = np.random.default_rng(5)
    x = rng.normal(size=2000)
    w = rng.uniform(0.5, 1.5, x.size)
    idx = rng.integers(0, x.size, 300)
    extra = rng.uniform(0.5, 5.0, idx.size)
    x2, w2 = np.r_[x, x[idx], x[idx]], np.r_[w, extra, -extra]
    assert sigma_eff(x2, w2) == pytest.approx(sigma_eff(x, w), rel=1e-12)
    w3 = w * np.where(rng.uniform(size=x.size) < 0.2, -0.5, 1.0)
    assert np.isfinite(sigma_eff(x, w3)) and sigma_eff(x, w3) > 0


# --------------------------------------------------------------------------- metrics


def test_regression_metrics_match_numpy():
    rng = np.random.default_rng(6)
    target = rng.uniform(1.0, 10.0, 5000)
    prediction = target * rng.normal(1.05, 0.1, target.size) + rng.standard_t(3, target.size)
    w = rng.uniform(0.2, 2.0, target.size)
    d = prediction - target
    res = regression_metrics(prediction, target, w)
    assert set(res) == {"bias", "rms", "rms_trunc", "mae", "sigma_eff", "median"}
    bias = np.average(d, weights=w)
    rms = np.sqrt(np.cov(d, aweights=w, ddof=0))
    inside = np.abs(d - bias) < 2 * rms
    assert inside.sum() < d.size  # the truncation really removes events here
    assert res["bias"] == pytest.approx(bias, rel=1e-12)
    assert res["rms"] == pytest.approx(rms, rel=1e-12)
    assert res["rms_trunc"] == pytest.approx(
        np.sqrt(np.cov(d[inside], aweights=w[inside], ddof=0)), rel=1e-12
    )
    assert res["mae"] == pytest.approx(np.average(np.abs(d), weights=w), rel=1e-12)
    assert res["sigma_eff"] == pytest.approx(_brute_sigma_eff_fast(d, w), rel=1e-12)
    res_unit = regression_metrics(prediction, target)
    assert res_unit["median"] == pytest.approx(np.median(prediction / target), rel=1e-12)
    assert res_unit["rms"] == pytest.approx(np.std(d), rel=1e-12)


def _brute_sigma_eff_fast(d, w, fraction=0.683):
    """Sliding window over sorted events (continuous data: no ties)."""
    order = np.argsort(d)
    ds, cum = d[order], np.r_[0.0, np.cumsum(w[order])]
    need = fraction * cum[-1] * (1 - 1e-12)
    best = np.inf
    k = 0
    for i in range(ds.size):
        while k <= ds.size and cum[k] - cum[i] < need:
            k += 1
        if k > ds.size:
            break
        best = min(best, ds[k - 1] - ds[i])
    return best / 2


def test_regression_metrics_gaussian_closed_forms():
    rng = np.random.default_rng(7)
    n = 200_000
    target = rng.uniform(5.0, 6.0, n)
    width = rng.uniform(0.5, 2.0, n)
    prediction = target + width * rng.normal(size=n)
    d = prediction - target
    res = regression_metrics(prediction, target, width=width)
    assert res["bias"] == pytest.approx(0.0, abs=0.01)
    # d is a scale mixture of Gaussians: var = E[width^2] = (2^3 - 0.5^3) / (3 * 1.5)
    assert res["rms"] == pytest.approx(np.sqrt((8 - 0.125) / 4.5), rel=0.01)
    # pulls are standard normal: sigma_eff 1, 68.27 % within one predicted sigma
    assert res["pull_sigma_eff"] == pytest.approx(1.0, rel=0.02)
    assert res["coverage_68"] == pytest.approx(stats.norm.cdf(1) - stats.norm.cdf(-1), abs=0.005)
    assert res["coverage_68"] == pytest.approx(np.mean(np.abs(d) < width))
    shifted = regression_metrics(prediction + 0.3, target, width=width)
    assert shifted["bias"] == pytest.approx(res["bias"] + 0.3, rel=1e-9)
    assert shifted["rms"] == pytest.approx(res["rms"], rel=1e-9)
    # a bias lowers coverage: E_width[Phi(1 - 0.3/width) - Phi(-1 - 0.3/width)]
    expected, _ = integrate.quad(
        lambda s: (stats.norm.cdf(1 - 0.3 / s) - stats.norm.cdf(-1 - 0.3 / s)) / 1.5, 0.5, 2.0
    )
    assert shifted["coverage_68"] == pytest.approx(expected, abs=0.005)

    # plain Gaussian: truncated RMS at +-2 sigma is the std of a truncated normal
    d = rng.normal(0.0, 1.5, n)
    res = regression_metrics(d, np.zeros(n))
    assert res["rms_trunc"] == pytest.approx(1.5 * stats.truncnorm(-2, 2).std(), rel=0.01)
    assert res["mae"] == pytest.approx(1.5 * np.sqrt(2 / np.pi), rel=0.01)
    assert np.isnan(res["median"])  # every target is zero


def test_regression_metrics_constant_offset():
    target = np.linspace(1.0, 2.0, 50)
    res = regression_metrics(target + 0.25, target)
    assert res["bias"] == pytest.approx(0.25)
    assert res["rms"] == pytest.approx(0.0, abs=1e-12)
    assert res["rms_trunc"] == pytest.approx(0.0, abs=1e-12)
    assert res["mae"] == pytest.approx(0.25)
    assert res["sigma_eff"] == pytest.approx(0.0, abs=1e-12)
    assert res["median"] == pytest.approx(np.median((target + 0.25) / target))


def test_regression_metrics_cancelling_negative_weights():
    rng = np.random.default_rng(8)
    target = rng.uniform(1.0, 3.0, 1000)
    prediction = target + rng.normal(0.1, 0.3, target.size)
    width = np.full(target.size, 0.3)
    w = rng.uniform(0.5, 1.5, target.size)
    idx = rng.integers(0, target.size, 200)
    extra = rng.uniform(0.5, 3.0, idx.size)
    p2 = np.r_[prediction, prediction[idx], prediction[idx]]
    t2 = np.r_[target, target[idx], target[idx]]
    w2, s2 = np.r_[w, extra, -extra], np.r_[width, width[idx], width[idx]]
    ref = regression_metrics(prediction, target, w, width)
    res = regression_metrics(p2, t2, w2, s2)
    for key in ("bias", "rms", "rms_trunc", "mae", "sigma_eff", "pull_sigma_eff", "coverage_68"):
        assert res[key] == pytest.approx(ref[key], rel=1e-9, abs=1e-12), key
    assert np.isfinite(res["median"])
    # genuinely negative weights: finite numbers, no warnings
    w3 = w * np.where(rng.uniform(size=w.size) < 0.2, -0.5, 1.0)
    assert all(np.isfinite(v) for v in regression_metrics(prediction, target, w3, width).values())


def test_regression_metrics_validation():
    with pytest.raises(ValueError):
        regression_metrics([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        regression_metrics([1.0, 2.0], [1.0, 2.0], width=[1.0, 0.0])
    with pytest.raises(ValueError):
        regression_metrics([1.0, 2.0], [1.0, 2.0], weights=[1.0, -1.0])


# --------------------------------------------------------------------------- profile


def test_binned_profile_matches_per_bin_numpy():
    rng = np.random.default_rng(9)
    x = rng.uniform(0.0, 10.0, 5000)
    d = 0.1 * x + rng.normal(0.0, 0.2 + 0.05 * x)
    w = rng.uniform(0.5, 1.5, x.size)
    prof = binned_profile(x, d, w, bins=8)
    edges = prof["edges"]
    assert edges.size == 9
    assert edges[0] == x.min() and edges[-1] == x.max()
    np.testing.assert_allclose(prof["centres"], 0.5 * (edges[1:] + edges[:-1]))
    assert prof["count"].sum() == x.size
    # quantile bins hold about the same weight
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, 7)
    bin_w = np.bincount(idx, weights=w)
    np.testing.assert_allclose(bin_w, w.sum() / 8, rtol=0.01)
    for b in range(8):
        sel = idx == b
        assert prof["bias"][b] == pytest.approx(np.average(d[sel], weights=w[sel]), rel=1e-12)
        assert prof["sigma_eff"][b] == pytest.approx(sigma_eff(d[sel], w[sel]), rel=1e-12)
        assert prof["count"][b] == sel.sum()
    # the injected bias 0.1 x is recovered near each bin's centre
    np.testing.assert_allclose(prof["bias"], 0.1 * prof["centres"], atol=0.05)


def test_binned_profile_discrete_x_merges_edges():
    x = np.repeat([1.0, 2.0, 3.0], 100)
    d = np.repeat([0.1, 0.2, 0.3], 100)
    prof = binned_profile(x, d, bins=10)
    assert prof["edges"].size - 1 == prof["bias"].size < 10
    assert prof["count"].sum() == 300
    edges = prof["edges"]
    assert np.all(np.diff(edges) > 0)
    last = edges.size - 2
    for b in range(last + 1):
        # bins are [lo, hi), the last one [lo, hi]
        sel = (x >= edges[b]) & ((x < edges[b + 1]) | (b == last))
        assert prof["count"][b] == sel.sum()
        assert prof["bias"][b] == pytest.approx(d[sel].mean())
