"""Tests for mva.evaluation.classification against scikit-learn, scipy and brute force."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats
from sklearn import metrics

from mva.evaluation.classification import (
    cut_efficiency_curves,
    cut_for_efficiency,
    eff_sig_at_bkg,
    ks_2samp_weighted,
    roc_auc,
    roc_curve,
    score_bins,
    separation,
    significance_scan,
    sorted_once,
)


def _sample(seed: int, n: int = 1500, discrete: bool = True, shift: float = 1.0):
    """Gaussian signal/background scores; rounding makes many ties."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    scores = rng.normal(shift * labels, 1.0)
    if discrete:
        scores = np.round(scores, 1)
    weights = rng.uniform(0.2, 3.0, n)
    return scores, labels, weights


def _with_cancelling_pairs(scores, labels, weights, seed: int = 99, n_pairs: int = 200):
    """Append events twice, once with weight +w and once with -w: nothing should change."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, scores.size, n_pairs)
    extra_w = rng.uniform(0.5, 5.0, n_pairs)
    s = np.r_[scores, scores[idx], scores[idx]]
    y = np.r_[labels, labels[idx], labels[idx]]
    w = np.r_[weights, extra_w, -extra_w]
    perm = rng.permutation(s.size)
    return s[perm], y[perm], w[perm]


def _brute_force_cut_scan(scores, labels, weights, n_sig=None, n_bkg=None):
    """Independent loop over every distinct score with the selection score >= cut."""
    sig, bkg = labels == 1, labels == 0
    scale_s = 1.0 if n_sig is None else n_sig / weights[sig].sum()
    scale_b = 1.0 if n_bkg is None else n_bkg / weights[bkg].sum()
    rows = []
    for cut in np.unique(scores):
        sel = scores >= cut
        s_pass = weights[sel & sig].sum() * scale_s
        b_pass = weights[sel & bkg].sum() * scale_b
        z = s_pass / np.sqrt(s_pass + b_pass) if s_pass + b_pass > 0 else np.nan
        rows.append((cut, s_pass, b_pass, z))
    return np.array(rows)


# --------------------------------------------------------------------------- ROC


@pytest.mark.parametrize("discrete", [True, False])
def test_roc_curve_matches_sklearn(discrete):
    scores, labels, weights = _sample(0, discrete=discrete)
    eff_b, eff_s, thr = roc_curve(scores, labels, weights)
    fpr, tpr, sk_thr = metrics.roc_curve(
        labels, scores, sample_weight=weights, drop_intermediate=False
    )
    np.testing.assert_allclose(eff_b, fpr, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(eff_s, tpr, rtol=1e-12, atol=1e-12)
    assert thr[0] == np.inf
    np.testing.assert_array_equal(thr[1:], sk_thr[1:])


def test_roc_curve_definition_and_shape():
    scores, labels, weights = _sample(1)
    eff_b, eff_s, thr = roc_curve(scores, labels, weights)
    # one point per distinct score plus the (0, 0) start
    assert thr.size == np.unique(scores).size + 1
    assert np.all(np.diff(thr) < 0)
    assert (eff_b[0], eff_s[0]) == (0.0, 0.0)
    assert (eff_b[-1], eff_s[-1]) == (1.0, 1.0)
    sig = labels == 1
    for k in (1, 5, thr.size // 2, thr.size - 1):
        sel = scores >= thr[k]
        assert eff_s[k] == pytest.approx(weights[sel & sig].sum() / weights[sig].sum())
        assert eff_b[k] == pytest.approx(weights[sel & ~sig].sum() / weights[~sig].sum())


def test_roc_unweighted_equals_unit_weights():
    scores, labels, _ = _sample(2)
    for a, b in zip(roc_curve(scores, labels), roc_curve(scores, labels, np.ones(scores.size))):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("discrete", [True, False])
def test_roc_auc_matches_sklearn(discrete):
    scores, labels, weights = _sample(3, discrete=discrete)
    expected = metrics.roc_auc_score(labels, scores, sample_weight=weights)
    assert roc_auc(scores, labels, weights) == pytest.approx(expected, rel=1e-12)
    assert roc_auc(scores, labels) == pytest.approx(metrics.roc_auc_score(labels, scores))


def test_roc_auc_is_weighted_mann_whitney_probability():
    # AUC = P(s > b) + P(s == b) / 2 over weighted signal-background pairs
    scores, labels, weights = _sample(4, n=400)
    sig, bkg = labels == 1, labels == 0
    ds = scores[sig][:, None] - scores[bkg][None, :]
    pair_w = weights[sig][:, None] * weights[bkg][None, :]
    expected = (pair_w * ((ds > 0) + 0.5 * (ds == 0))).sum() / pair_w.sum()
    assert roc_auc(scores, labels, weights) == pytest.approx(expected, rel=1e-12)


def test_roc_auc_extremes():
    labels = np.r_[np.ones(50), np.zeros(50)]
    scores = np.r_[np.linspace(1, 2, 50), np.linspace(-1, 0, 50)]
    assert roc_auc(scores, labels) == pytest.approx(1.0)
    assert roc_auc(-scores, labels) == pytest.approx(0.0)
    assert roc_auc(np.zeros(100), labels) == pytest.approx(0.5)


def test_roc_negative_weights_cancel_and_match_definition():
    scores, labels, weights = _sample(5)
    s2, y2, w2 = _with_cancelling_pairs(scores, labels, weights)
    eff_b, eff_s, thr = roc_curve(s2, y2, w2)
    ref_b, ref_s, ref_thr = roc_curve(scores, labels, weights)
    np.testing.assert_array_equal(thr, ref_thr)
    np.testing.assert_allclose(eff_b, ref_b, atol=1e-12)
    np.testing.assert_allclose(eff_s, ref_s, atol=1e-12)
    assert roc_auc(s2, y2, w2) == pytest.approx(roc_auc(scores, labels, weights), abs=1e-12)


def test_roc_genuine_negative_weights_follow_cumulative_definition():
    rng = np.random.default_rng(6)
    scores, labels, weights = _sample(6, n=600)
    weights = weights * np.where(rng.uniform(size=weights.size) < 0.15, -0.5, 1.0)
    eff_b, eff_s, thr = roc_curve(scores, labels, weights)
    sig = labels == 1
    assert (eff_b[-1], eff_s[-1]) == (1.0, 1.0)
    expected_s = [weights[(scores >= t) & sig].sum() / weights[sig].sum() for t in thr[1:]]
    np.testing.assert_allclose(eff_s[1:], expected_s, atol=1e-12)
    assert np.isfinite(roc_auc(scores, labels, weights))


def test_roc_input_validation():
    with pytest.raises(ValueError):
        roc_curve([0.1, 0.2], [1, 2])
    with pytest.raises(ValueError):
        roc_curve([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError):
        roc_curve([0.1, 0.2], [1, 0], [1.0, -2.0])
    with pytest.raises(ValueError):
        roc_curve([0.1, np.nan], [1, 0])


# --------------------------------------------------------------------------- eff_sig_at_bkg


def test_eff_sig_at_bkg_keys_and_exact_roc_points():
    rng = np.random.default_rng(7)
    bkg = rng.normal(0, 1, 1000)
    sig = rng.normal(1.5, 1, 700)
    scores = np.r_[sig, bkg]
    labels = np.r_[np.ones(sig.size), np.zeros(bkg.size)]
    res = eff_sig_at_bkg(scores, labels)
    assert list(res) == ["0.01", "0.1", "0.3"]
    bkg_desc = np.sort(bkg)[::-1]
    for key, k in (("0.01", 10), ("0.1", 100), ("0.3", 300)):
        # exactly k background events pass any cut above the (k+1)-th highest one,
        # and the best such cut keeps all signal above that background score
        assert res[key] == pytest.approx(np.mean(sig > bkg_desc[k]))


def test_eff_sig_at_bkg_interpolates_linearly():
    # every distinct score holds both classes, so sklearn's fpr is strictly increasing
    rng = np.random.default_rng(8)
    values = np.arange(15)
    labels = np.r_[np.ones(values.size), np.zeros(values.size), rng.integers(0, 2, 500)]
    scores = np.r_[values, values, rng.integers(0, 12, 500) + labels[2 * values.size :] * 3]
    weights = rng.uniform(0.5, 2.0, scores.size)
    fpr, tpr, _ = metrics.roc_curve(labels, scores, sample_weight=weights, drop_intermediate=False)
    assert np.all(np.diff(fpr) > 0)
    targets = (0.013, 0.05, 0.2, 0.37, 0.9)
    res = eff_sig_at_bkg(scores, labels, weights, eff_bkg=targets)
    for t in targets:
        assert res[f"{t:g}"] == pytest.approx(np.interp(t, fpr, tpr), rel=1e-12)


def test_eff_sig_at_bkg_scalar_and_limits():
    scores, labels, weights = _sample(9)
    res = eff_sig_at_bkg(scores, labels, weights, eff_bkg=1.0)
    assert res == {"1": 1.0}
    assert eff_sig_at_bkg(scores, labels, weights, eff_bkg=0.25)["0.25"] <= 1.0
    with pytest.raises(ValueError):
        eff_sig_at_bkg(scores, labels, weights, eff_bkg=1.5)


# --------------------------------------------------------------------------- separation


def test_separation_identical_is_zero_and_disjoint_is_one():
    rng = np.random.default_rng(10)
    x = rng.normal(size=500)
    labels = np.r_[np.ones(500), np.zeros(500)]
    assert separation(np.r_[x, x], labels) == pytest.approx(0.0, abs=1e-15)
    assert separation(np.r_[x + 20.0, x], labels) == pytest.approx(1.0, rel=1e-12)
    # identical shapes with different normalisation are still identical
    w = np.r_[np.full(500, 3.0), np.full(500, 0.1)]
    assert separation(np.r_[x, x], labels, w) == pytest.approx(0.0, abs=1e-15)


def test_separation_gaussians_match_integral():
    # deterministic quantile samples of N(0,1) and N(1,1): no statistical noise
    n = 100_000
    u = (np.arange(n) + 0.5) / n
    sig, bkg = stats.norm.ppf(u), stats.norm.ppf(u) + 1.0
    labels = np.r_[np.ones(n), np.zeros(n)]

    def integrand(x):
        ps, pb = stats.norm.pdf(x), stats.norm.pdf(x, loc=1.0)
        return 0.5 * (ps - pb) ** 2 / (ps + pb)

    expected, _ = integrate.quad(integrand, -15, 16)
    assert separation(np.r_[sig, bkg], labels, bins=200) == pytest.approx(expected, rel=0.01)


def test_separation_half_overlapping_uniforms():
    # U(0,2) vs U(1,3): the non-overlapping halves give 1/2 (1/2 + 1/2) = 1/2
    n = 30_000
    sig = (np.arange(n) + 0.5) * 2.0 / n
    scores = np.r_[sig, sig + 1.0]
    labels = np.r_[np.ones(n), np.zeros(n)]
    assert separation(scores, labels, bins=300) == pytest.approx(0.5, abs=0.005)


def test_separation_integer_weights_equal_replication():
    scores, labels, _ = _sample(11, discrete=False, n=500)
    reps = np.random.default_rng(11).integers(1, 4, scores.size)
    weighted = separation(scores, labels, reps.astype(float), bins=40)
    replicated = separation(np.repeat(scores, reps), np.repeat(labels, reps), bins=40)
    assert weighted == pytest.approx(replicated, rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_score_bins_are_numpy_histograms_bins(seed):
    # values on the edges (a linspace), many ties (rounded) and plain floats: every score in
    # the bin numpy.histogram counts it in, and the edges' bins as searchsorted finds them
    rng = np.random.default_rng(seed)
    n, bins = int(rng.integers(2, 20_000)), int(rng.integers(1, 150))
    s = [np.linspace(-1.0, 2.0, n), np.round(rng.normal(size=n), 1), rng.normal(size=n)][seed % 3]
    idx = score_bins(s, bins)
    lo, hi = s.min(), s.max()
    hist, edges = np.histogram(s, bins=bins, range=(lo, hi))
    assert np.array_equal(np.bincount(idx, minlength=bins), hist)
    assert np.array_equal(idx, np.clip(np.searchsorted(edges, s, side="right") - 1, 0, bins - 1))
    assert score_bins(np.full(5, 0.3), bins) is None


def test_separation_is_tmva_formula_on_numpy_histograms():
    # the definition written out with numpy.histogram of each class on the common range
    scores, labels, weights = _sample(13, n=20_000, discrete=False)
    sig = labels == 1
    rng = (scores.min(), scores.max())
    hs, _ = np.histogram(scores[sig], bins=100, range=rng, weights=weights[sig])
    hb, _ = np.histogram(scores[~sig], bins=100, range=rng, weights=weights[~sig])
    ps, pb = hs / hs.sum(), hb / hb.sum()
    ok = ps + pb > 0
    expected = 0.5 * np.sum((ps[ok] - pb[ok]) ** 2 / (ps[ok] + pb[ok]))
    assert separation(scores, labels, weights) == pytest.approx(expected, rel=1e-12)
    with sorted_once():  # the bins computed once for the block, the same figure
        assert separation(scores, labels, weights) == pytest.approx(expected, rel=1e-12)
        assert score_bins(scores, 100) is score_bins(scores, 100)


def test_separation_negative_weights_do_not_crash():
    scores, labels, weights = _sample(12)
    s2, y2, w2 = _with_cancelling_pairs(scores, labels, weights)
    assert separation(s2, y2, w2) == pytest.approx(separation(scores, labels, weights), abs=1e-12)


# --------------------------------------------------------------------------- KS test


@pytest.mark.parametrize(
    ("n_a", "n_b", "discrete", "shift"),
    [(300, 500, False, 0.2), (1000, 1000, False, 0.05), (257, 911, True, 0.3), (40, 7, True, 0.0)],
)
def test_ks_unit_weights_match_scipy_asymp(n_a, n_b, discrete, shift):
    rng = np.random.default_rng(n_a + n_b)
    a, b = rng.normal(size=n_a), rng.normal(shift, 1.0, n_b)
    if discrete:
        a, b = np.round(a, 1), np.round(b, 1)
    ref = stats.ks_2samp(a, b, method="asymp")
    stat, p = ks_2samp_weighted(a, b)
    assert stat == ref.statistic
    assert p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)


def test_ks_statistic_matches_brute_force_weighted_ecdf():
    rng = np.random.default_rng(13)
    a, b = np.round(rng.normal(size=200), 1), np.round(rng.normal(0.3, 1.2, 150), 1)
    wa, wb = rng.uniform(0.1, 2.0, a.size), rng.uniform(0.1, 2.0, b.size)
    expected = max(
        abs(wa[a <= t].sum() / wa.sum() - wb[b <= t].sum() / wb.sum()) for t in np.r_[a, b]
    )
    stat, p = ks_2samp_weighted(a, b, wa, wb)
    assert stat == pytest.approx(expected, rel=1e-12)
    # p-value uses Kish effective sizes
    na = wa.sum() ** 2 / (wa**2).sum()
    nb = wb.sum() ** 2 / (wb**2).sum()
    assert p == pytest.approx(stats.kstwo.sf(expected, np.round(na * nb / (na + nb))), rel=1e-9)


def test_ks_weight_scaling_and_replication():
    rng = np.random.default_rng(14)
    a, b = rng.normal(size=300), rng.normal(0.2, 1.0, 400)
    ref = ks_2samp_weighted(a, b)
    # a common weight changes neither the ECDFs nor the effective sizes
    scaled = ks_2samp_weighted(a, b, np.full(a.size, 2.5), np.full(b.size, 0.3))
    assert scaled == pytest.approx(ref, rel=1e-12)
    reps = rng.integers(1, 4, a.size)
    stat, _ = ks_2samp_weighted(a, b, reps.astype(float))
    assert stat == pytest.approx(stats.ks_2samp(np.repeat(a, reps), b).statistic, rel=1e-12)


def test_ks_identical_and_negative_weights():
    rng = np.random.default_rng(15)
    a = rng.normal(size=200)
    assert ks_2samp_weighted(a, a) == (0.0, 1.0)
    b = rng.normal(size=300)
    wa = rng.uniform(0.5, 1.5, a.size)
    # +w/-w pairs at the same value leave the ECDF unchanged
    extra = rng.uniform(0.5, 3.0, 50)
    idx = rng.integers(0, a.size, 50)
    a2, wa2 = np.r_[a, a[idx], a[idx]], np.r_[wa, extra, -extra]
    stat, p = ks_2samp_weighted(a2, b, wa2)
    assert stat == pytest.approx(ks_2samp_weighted(a, b, wa)[0], abs=1e-12)
    assert 0.0 <= p <= 1.0
    wb = np.where(rng.uniform(size=b.size) < 0.2, -0.7, 1.0)
    stat, p = ks_2samp_weighted(a, b, wa, wb)
    assert 0.0 <= stat <= 1.0 and 0.0 <= p <= 1.0
    with pytest.raises(ValueError):
        ks_2samp_weighted([], b)


# --------------------------------------------------------------------------- cut scans


@pytest.mark.parametrize(
    ("seed", "n_sig", "n_bkg"), [(20, None, None), (21, 50.0, 5000.0), (22, 3.0, None)]
)
def test_significance_scan_matches_brute_force(seed, n_sig, n_bkg):
    scores, labels, weights = _sample(seed, n=800)
    table = _brute_force_cut_scan(scores, labels, weights, n_sig, n_bkg)
    best = np.nanargmax(table[:, 3])
    res = significance_scan(scores, labels, weights, n_sig=n_sig, n_bkg=n_bkg)
    assert set(res) == {"cut", "significance", "eff_sig", "eff_bkg", "n_sig", "n_bkg"}
    assert res["significance"] == pytest.approx(table[best, 3], rel=1e-12)
    assert res["cut"] == table[best, 0]
    assert res["n_sig"] == pytest.approx(table[best, 1], rel=1e-12)
    assert res["n_bkg"] == pytest.approx(table[best, 2], rel=1e-12)
    tot_s, tot_b = table[0, 1], table[0, 2]  # lowest cut keeps everything
    assert res["eff_sig"] == pytest.approx(table[best, 1] / tot_s, rel=1e-12)
    assert res["eff_bkg"] == pytest.approx(table[best, 2] / tot_b, rel=1e-12)
    if n_sig is not None:
        assert tot_s == pytest.approx(n_sig)


def test_significance_scan_continuous_scores_and_negative_weights():
    scores, labels, weights = _sample(23, n=700, discrete=False)
    rng = np.random.default_rng(23)
    weights = weights * np.where(rng.uniform(size=weights.size) < 0.1, -1.0, 1.0)
    table = _brute_force_cut_scan(scores, labels, weights, 20.0, 200.0)
    res = significance_scan(scores, labels, weights, n_sig=20.0, n_bkg=200.0)
    assert res["significance"] == pytest.approx(np.nanmax(table[:, 3]), rel=1e-12)
    assert res["cut"] == table[np.nanargmax(table[:, 3]), 0]


def test_cut_efficiency_curves_match_brute_force():
    scores, labels, weights = _sample(24, n=600)
    curves = cut_efficiency_curves(scores, labels, weights, n_sig=10.0, n_bkg=100.0)
    table = _brute_force_cut_scan(scores, labels, weights, 10.0, 100.0)
    np.testing.assert_array_equal(curves["cut"], table[:, 0])
    np.testing.assert_allclose(curves["eff_sig"], table[:, 1] / 10.0, rtol=1e-12)
    np.testing.assert_allclose(curves["eff_bkg"], table[:, 2] / 100.0, rtol=1e-12)
    np.testing.assert_allclose(curves["significance"], table[:, 3], rtol=1e-12)
    np.testing.assert_allclose(
        curves["purity"], table[:, 1] / (table[:, 1] + table[:, 2]), rtol=1e-12
    )
    res = significance_scan(scores, labels, weights, n_sig=10.0, n_bkg=100.0)
    assert np.nanmax(curves["significance"]) == pytest.approx(res["significance"])


def test_cut_efficiency_curves_nan_where_nothing_selected():
    # the tightest cut keeps only negative weight: purity/significance are undefined there
    scores = np.array([0.0, 1.0, 2.0, 3.0])
    labels = np.array([1, 0, 1, 0])
    weights = np.array([2.0, 1.0, 1.0, -0.5])
    curves = cut_efficiency_curves(scores, labels, weights)
    assert np.isnan(curves["purity"][-1]) and np.isnan(curves["significance"][-1])
    assert np.all(np.isfinite(curves["purity"][:-1]))


def test_cut_for_efficiency():
    rng = np.random.default_rng(25)
    sig, bkg = rng.normal(1.0, 1.0, 1000), rng.normal(0.0, 1.0, 2000)
    scores = np.r_[sig, bkg]
    labels = np.r_[np.ones(sig.size), np.zeros(bkg.size)]
    # 500 of 1000 signal events pass score >= the 500th highest signal score
    assert cut_for_efficiency(scores, labels, eff_sig=0.5) == np.sort(sig)[::-1][499]
    assert cut_for_efficiency(scores, labels, eff_bkg=0.1) == np.sort(bkg)[::-1][199]

    scores, labels, weights = _sample(26, n=500)
    table = _brute_force_cut_scan(scores, labels, weights)
    eff_b = table[:, 2] / table[0, 2]
    cut = cut_for_efficiency(scores, labels, weights, eff_bkg=0.37)
    assert abs(eff_b[table[:, 0] == cut][0] - 0.37) == pytest.approx(np.min(np.abs(eff_b - 0.37)))
    with pytest.raises(ValueError):
        cut_for_efficiency(scores, labels, weights)
    with pytest.raises(ValueError):
        cut_for_efficiency(scores, labels, weights, eff_sig=0.5, eff_bkg=0.5)


def test_sorted_once_sorts_each_array_once_and_changes_no_figure(monkeypatch) -> None:
    import mva.evaluation.classification as cm

    rng = np.random.default_rng(4)
    s, y, w = rng.normal(size=3000), rng.integers(0, 2, 3000), rng.uniform(0.5, 1.5, 3000)
    plain = (cm.roc_auc(s, y, w), cm.eff_sig_at_bkg(s, y, w), cm.cut_for_efficiency(
        s, y, w, eff_sig=0.7), cm.significance_scan(s, y, w, 10.0, 100.0))
    calls = []
    real = cm._sorted_sums
    monkeypatch.setattr(cm, "_sorted_sums", lambda *a: calls.append(a) or real(*a))
    with cm.sorted_once():
        cached = (cm.roc_auc(s, y, w), cm.eff_sig_at_bkg(s, y, w), cm.cut_for_efficiency(
            s, y, w, eff_sig=0.7), cm.significance_scan(s, y, w, 10.0, 100.0))
        assert len(calls) == 1
        # other arrays (equal values, another object) are sorted on their own
        cm.roc_auc(s.copy(), y, w)
        assert len(calls) == 2
        with cm.sorted_once():  # nested: the same cache
            cm.roc_curve(s, y, w)
        assert len(calls) == 2
    assert cached == plain
    cm.roc_auc(s, y, w)          # outside the block: no cache
    assert len(calls) == 3
