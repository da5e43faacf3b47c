"""Tests of mva.evaluation.probability: P(S|y), Rarity, calibration metrics.

References are closed forms (scipy.stats.norm), scipy.stats.gaussian_kde, scikit-learn's
calibration_curve and hand computations, never numbers taken from the code under test.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.integrate import trapezoid
from scipy.special import expit, logit
from scipy.stats import gaussian_kde, kstest, norm
from sklearn.calibration import calibration_curve

from mva.evaluation.probability import (
    ScoreDensities,
    expected_calibration_error,
    reliability_curve,
    reweight_to_fraction,
)

N_EVENTS = 50_000


def gaussian_sample(rng: np.random.Generator, n: int = N_EVENTS) -> tuple[np.ndarray, np.ndarray]:
    """Signal N(1, 1), background N(-1, 1), n events each; labels 1 signal, 0 background."""
    scores = np.r_[rng.normal(1.0, 1.0, n), rng.normal(-1.0, 1.0, n)]
    labels = np.r_[np.ones(n, dtype=int), np.zeros(n, dtype=int)]
    return scores, labels


def exact_probability(y: np.ndarray, f_s: float) -> np.ndarray:
    ps, pb = norm.pdf(y, 1.0, 1.0) * f_s, norm.pdf(y, -1.0, 1.0) * (1.0 - f_s)
    return ps / (ps + pb)


@pytest.fixture(scope="module")
def gaussian_fit() -> ScoreDensities:
    scores, labels = gaussian_sample(np.random.default_rng(20240601))
    return ScoreDensities().fit(scores, labels)


# ------------------------------------------------------------------ P(S|y)
@pytest.mark.parametrize("f_s", [0.2, 0.5])
def test_probability_matches_closed_form_for_gaussians(gaussian_fit, f_s):
    y = np.linspace(-2.0, 2.0, 401)
    dev = np.abs(gaussian_fit.probability(y, f_s) - exact_probability(y, f_s))
    # With 50k events per class the largest deviation on |y| < 2 is statistical noise from the
    # tail of the minority class near |y| = 1.5 (over 20 seeds: 0.008 to 0.028, median 0.015);
    # the mean deviation is ~0.004 and would be far larger for a wrong formula or bandwidth.
    assert dev.max() < 0.03
    assert dev.mean() < 0.007


def test_probability_is_bayes_formula_of_the_densities(gaussian_fit):
    nodes = gaussian_fit.grid_
    ps, pb = gaussian_fit.pdf_signal(nodes), gaussian_fit.pdf_background(nodes)
    bulk = (nodes > -3) & (nodes < 3)
    for f_s in (0.05, 0.3, 0.9):
        expected = ps * f_s / (ps * f_s + pb * (1 - f_s))
        np.testing.assert_allclose(gaussian_fit.probability(nodes, f_s)[bulk], expected[bulk],
                                   rtol=1e-9, atol=1e-12)


def test_signal_fraction_enters_as_prior_odds(gaussian_fit):
    y = np.linspace(-3.0, 3.0, 61)
    p1, p2 = gaussian_fit.probability(y, 0.1), gaussian_fit.probability(y, 0.7)
    np.testing.assert_allclose(logit(p1) - logit(p2), logit(0.1) - logit(0.7), atol=1e-9)
    assert np.all(gaussian_fit.probability(y, 0.0) == 0.0)
    assert np.all(gaussian_fit.probability(y, 1.0) == 1.0)


def test_probability_bounded_finite_and_shape_preserving(gaussian_fit):
    y = np.linspace(-50.0, 50.0, 5001)
    p = gaussian_fit.probability(y, 0.2)
    assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))
    assert gaussian_fit.probability(0.3, 0.2).shape == ()
    assert gaussian_fit.probability(np.zeros((3, 4)), 0.2).shape == (3, 4)


def test_scores_outside_fitted_range_take_edge_values(gaussian_fit):
    lo, hi = gaussian_fit.grid_[0], gaussian_fit.grid_[-1]
    for method in (gaussian_fit.pdf_signal, gaussian_fit.pdf_background, gaussian_fit.rarity):
        assert method(lo - 100.0) == method(lo)
        assert method(hi + 100.0) == method(hi)
    assert gaussian_fit.probability(hi + 7.0, 0.2) == gaussian_fit.probability(hi, 0.2)


def test_probability_defined_between_separated_classes():
    # Between two far-apart narrow clusters both densities vanish: P must stay finite, go from
    # background-like to signal-like, and not produce 0/0 artefacts.
    rng = np.random.default_rng(3)
    scores = np.r_[rng.normal(5.0, 0.1, 2000), rng.normal(-5.0, 0.1, 2000)]
    labels = np.r_[np.ones(2000), np.zeros(2000)]
    dens = ScoreDensities().fit(scores, labels)
    y = np.linspace(-6.0, 6.0, 2401)
    p = dens.probability(y, 0.5)
    assert np.all(np.isfinite(p))
    # Inside a cluster the other class sits at its density floor, so P - 1 wiggles at ~1e-12.
    assert np.all(np.diff(p) >= -1e-9)
    assert p[y < -4.5].max() < 1e-6 and p[y > 4.5].min() > 1 - 1e-6


def test_small_sample_gives_smooth_probability():
    # Few events: a histogram would have empty bins and jumps; the kernel estimate must not.
    scores, labels = gaussian_sample(np.random.default_rng(11), n=300)
    dens = ScoreDensities().fit(scores, labels)
    y = np.linspace(-2.5, 2.5, 2001)  # steps of 0.0025
    p = dens.probability(y, 0.5)
    assert np.abs(np.diff(p)).max() < 0.01
    assert np.abs(p - exact_probability(y, 0.5)).max() < 0.2


# ------------------------------------------------------------------ densities
def test_densities_match_truth_and_integrate_to_one(gaussian_fit):
    h = gaussian_fit.bandwidths_["signal"]
    y = np.linspace(-1.0, 3.0, 401)
    # The expected KDE of N(1, 1) data is N(1, 1 + h^2).
    truth = norm.pdf(y, 1.0, np.sqrt(1.0 + h**2))
    assert np.abs(gaussian_fit.pdf_signal(y) - truth).max() < 0.015
    fine = np.linspace(gaussian_fit.grid_[0], gaussian_fit.grid_[-1], 20001)
    for pdf in (gaussian_fit.pdf_signal, gaussian_fit.pdf_background):
        assert trapezoid(pdf(fine), fine) == pytest.approx(1.0, abs=0.01)


def test_scott_bandwidth_matches_scipy_for_gaussian_data():
    rng = np.random.default_rng(5)
    x = rng.normal(0.0, 2.0, 20000)
    weights = rng.uniform(0.2, 1.8, x.size)
    labels = np.r_[np.ones(x.size // 2), np.zeros(x.size // 2)]
    dens = ScoreDensities().fit(x, labels, weights)
    for name, mask in (("signal", labels == 1), ("background", labels == 0)):
        kde = gaussian_kde(x[mask], weights=weights[mask])  # Scott's rule, Kish's n_eff
        assert dens.bandwidths_[name] == pytest.approx(np.sqrt(kde.covariance[0, 0]), rel=0.03)


def test_weighted_density_matches_scipy_kde_in_the_bulk():
    rng = np.random.default_rng(8)
    scores, labels = gaussian_sample(rng, n=5000)
    weights = rng.uniform(0.5, 2.0, scores.size)
    h = 0.2
    dens = ScoreDensities(bandwidth=h).fit(scores, labels, weights)
    sig = labels == 1
    kde = gaussian_kde(scores[sig], weights=weights[sig])
    kde.set_bandwidth(h / np.sqrt(kde.covariance[0, 0] / kde.factor**2))
    nodes = dens.grid_[(dens.grid_ > -1.0) & (dens.grid_ < 3.0)]
    np.testing.assert_allclose(dens.pdf_signal(nodes), kde(nodes), rtol=0.01)


def test_bounded_scores_reflected_at_the_edges():
    # A flat background on [0, 1]: without reflection the density at 0 and 1 would be ~1/2.
    rng = np.random.default_rng(9)
    n = 40000
    scores = np.r_[rng.beta(4.0, 1.0, n), rng.uniform(0.0, 1.0, n)]
    labels = np.r_[np.ones(n), np.zeros(n)]
    dens = ScoreDensities().fit(scores, labels)
    edges = np.array([dens.grid_[0], dens.grid_[-1]])
    np.testing.assert_allclose(dens.pdf_background(edges), 1.0, atol=0.06)
    # Reflection reference: scipy KDE of the data plus its mirror images about 0 and 1.
    bkg = scores[labels == 0]
    kde = gaussian_kde(bkg)
    h = dens.bandwidths_["background"]
    kde.set_bandwidth(h / np.sqrt(kde.covariance[0, 0] / kde.factor**2))
    y = np.linspace(dens.grid_[0], dens.grid_[-1], 101)
    lo, hi = dens.grid_[0], dens.grid_[-1]
    reflected = kde(y) + kde(2 * lo - y) + kde(2 * hi - y)
    np.testing.assert_allclose(dens.pdf_background(y), reflected, rtol=0.02)
    # Beta(4, 1) has density 4 y^3: 4 at the upper edge.
    assert dens.pdf_signal(hi) == pytest.approx(4.0, rel=0.1)


# ------------------------------------------------------------------ calibration on bounded scores
@pytest.mark.parametrize(
    ("steepness", "max_ece"),
    [
        (1.0, 0.02),
        (3.0, 0.02),
        # sigmoid(6 y) puts a fifth of the events within 1e-3 of 0 or 1, narrower than any
        # kernel a bandwidth rule picks: P is averaged across each spike. Measured over 60 seeds
        # the ECE is 0.004 to 0.021 (median 0.01), hence the looser bound.
        (6.0, 0.03),
    ],
)
def test_probability_calibrated_on_scores_piling_at_the_edges(steepness, max_ece):
    rng = np.random.default_rng(int(steepness * 100))
    fit_scores, fit_labels = gaussian_sample(rng)
    dens = ScoreDensities().fit(expit(steepness * fit_scores), fit_labels)
    scores, labels = gaussian_sample(rng)  # independent sample
    scores = expit(steepness * scores)
    weights = reweight_to_fraction(labels, None, 0.1)
    assert expected_calibration_error(dens.probability(scores, 0.1), labels, weights) <= max_ece
    # Power check: the probability for the wrong signal fraction is visibly miscalibrated.
    assert expected_calibration_error(dens.probability(scores, 0.5), labels, weights) > 0.05


# ------------------------------------------------------------------ rarity
def test_rarity_flat_for_independent_background(gaussian_fit):
    rng = np.random.default_rng(12)
    background = rng.normal(-1.0, 1.0, 10000)
    rarity = gaussian_fit.rarity(background)
    assert np.all((rarity >= 0) & (rarity <= 1))
    assert kstest(rarity, "uniform").pvalue > 0.01
    # Signal piles up at high rarity: the test has power.
    assert kstest(gaussian_fit.rarity(rng.normal(1.0, 1.0, 10000)), "uniform").pvalue < 1e-6


def test_rarity_flat_for_scores_piling_at_the_edges():
    rng = np.random.default_rng(13)
    scores, labels = gaussian_sample(rng)
    dens = ScoreDensities().fit(expit(6.0 * scores), labels)
    background = expit(6.0 * rng.normal(-1.0, 1.0, 10000))
    assert kstest(dens.rarity(background), "uniform").pvalue > 0.01


def test_rarity_uses_weights():
    # Background drawn from N(-1, 1.5) and importance-weighted to N(-1, 1): the Rarity of an
    # N(-1, 1) sample is flat only if the weights are used.
    rng = np.random.default_rng(14)
    n = 50000
    drawn = rng.normal(-1.0, 1.5, n)
    weights = norm.pdf(drawn, -1.0, 1.0) / norm.pdf(drawn, -1.0, 1.5)
    scores = np.r_[rng.normal(1.0, 1.0, n), drawn]
    labels = np.r_[np.ones(n), np.zeros(n)]
    all_weights = np.r_[np.ones(n), weights]
    test = rng.normal(-1.0, 1.0, 5000)
    weighted = ScoreDensities().fit(scores, labels, all_weights)
    assert kstest(weighted.rarity(test), "uniform").pvalue > 0.01
    unweighted = ScoreDensities().fit(scores, labels)
    assert kstest(unweighted.rarity(test), "uniform").pvalue < 1e-6


# ------------------------------------------------------------------ weights
def test_weighted_fit_equals_fit_on_duplicated_sample():
    rng = np.random.default_rng(15)
    scores, labels = gaussian_sample(rng, n=20000)
    # Integer weights that depend on the score, so ignoring them changes the densities.
    weights = np.where(labels == 1, 1 + (scores > 1) + (scores > 2), 1 + (scores > -1))
    duplicated = (np.repeat(scores, weights), np.repeat(labels, weights))
    y = np.linspace(-3.0, 3.0, 301)

    fixed_w = ScoreDensities(bandwidth=0.15).fit(scores, labels, weights)
    fixed_d = ScoreDensities(bandwidth=0.15).fit(*duplicated)
    np.testing.assert_allclose(fixed_w.pdf_signal(y), fixed_d.pdf_signal(y), rtol=1e-9)
    np.testing.assert_allclose(fixed_w.pdf_background(y), fixed_d.pdf_background(y), rtol=1e-9)
    np.testing.assert_allclose(fixed_w.probability(y, 0.2), fixed_d.probability(y, 0.2),
                               atol=1e-9)
    np.testing.assert_allclose(fixed_w.rarity(y), fixed_d.rarity(y), atol=1e-9)

    # With a bandwidth rule the weighted sample counts as fewer (Kish) events, so the kernels
    # differ slightly; the probability still agrees closely.
    rule_w = ScoreDensities().fit(scores, labels, weights)
    rule_d = ScoreDensities().fit(*duplicated)
    assert np.abs(rule_w.probability(y, 0.2) - rule_d.probability(y, 0.2)).max() < 0.02
    unweighted = ScoreDensities().fit(scores, labels)
    assert np.abs(unweighted.probability(y, 0.2) - rule_w.probability(y, 0.2)).max() > 0.1


def test_negative_weights_give_positive_densities_and_valid_probability():
    rng = np.random.default_rng(16)
    scores, labels = gaussian_sample(rng, n=20000)
    weights = np.ones(scores.size)
    # Negative-weight background events with the same shape (e.g. NLO subtraction): net
    # background still N(-1, 1).
    neg = rng.normal(-1.0, 1.0, 5000)
    # And a cluster where negative weights dominate, making the raw density negative there.
    dip = rng.normal(2.5, 0.05, 300)
    scores = np.r_[scores, neg, dip]
    labels = np.r_[labels, np.zeros(neg.size + dip.size, dtype=int)]
    weights = np.r_[weights, np.full(neg.size, -0.5), np.full(dip.size, -1.0)]
    dens = ScoreDensities().fit(scores, labels, weights)
    y = np.linspace(-6.0, 6.0, 1201)
    assert np.all(dens.pdf_background(y) > 0) and np.all(dens.pdf_signal(y) > 0)
    p = dens.probability(y, 0.2)
    assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))
    bulk = np.abs(y) < 1.5
    assert np.abs(p[bulk] - exact_probability(y[bulk], 0.2)).max() < 0.05
    rarity = dens.rarity(y)
    assert np.all(np.diff(rarity) >= 0) and rarity.min() >= 0 and rarity.max() <= 1


# ------------------------------------------------------------------ persistence
def test_json_round_trip_gives_identical_outputs(gaussian_fit):
    text = json.dumps(gaussian_fit.to_dict())
    restored = ScoreDensities.from_dict(json.loads(text))
    y = np.r_[np.linspace(-10.0, 10.0, 1001), np.random.default_rng(1).normal(0, 2, 1000)]
    for name in ("pdf_signal", "pdf_background", "rarity"):
        assert np.array_equal(getattr(restored, name)(y), getattr(gaussian_fit, name)(y))
    assert np.array_equal(restored.probability(y, 0.2), gaussian_fit.probability(y, 0.2))
    assert restored.bandwidths_ == gaussian_fit.bandwidths_


def test_from_dict_rejects_foreign_records(gaussian_fit):
    record = gaussian_fit.to_dict()
    with pytest.raises(ValueError):
        ScoreDensities.from_dict({**record, "format": "something else"})
    with pytest.raises(ValueError):
        ScoreDensities.from_dict({**record, "log_ratio": record["log_ratio"][:-1]})


# ------------------------------------------------------------------ input checks
def test_invalid_inputs_raise():
    with pytest.raises(RuntimeError):
        ScoreDensities().probability([0.1], 0.2)
    with pytest.raises(ValueError):
        ScoreDensities().fit([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError):
        ScoreDensities().fit([0.1, np.nan], [0, 1])
    with pytest.raises(ValueError):
        ScoreDensities().fit([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError):
        ScoreDensities(bandwidth="wide")
    dens = ScoreDensities().fit([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1])
    with pytest.raises(ValueError):
        dens.probability([0.1], 1.5)


def test_identical_scores_do_not_break_the_fit():
    dens = ScoreDensities().fit(np.r_[np.full(50, 0.7), np.linspace(0, 1, 50)],
                                np.r_[np.ones(50), np.zeros(50)])
    p = dens.probability(np.linspace(0, 1, 101), 0.5)
    assert np.all(np.isfinite(p)) and p[70] > 0.9


# ------------------------------------------------------------------ calibration metrics
def test_ece_and_reliability_by_hand():
    prob = np.array([0.05, 0.15, 0.12, 0.95, 0.85])
    labels = np.array([0, 0, 1, 1, 1])
    weights = np.array([1.0, 2.0, 1.0, 1.0, 3.0])
    # Bins (10 on [0, 1]): 0 -> {0.05}, 1 -> {0.15 (w 2), 0.12}, 8 -> {0.85 (w 3)}, 9 -> {0.95}.
    bin1_mean = (2 * 0.15 + 0.12) / 3
    expected = (1 * abs(0.05 - 0) + 3 * abs(bin1_mean - 1 / 3) + 3 * abs(0.85 - 1)
                + 1 * abs(0.95 - 1)) / 8
    assert expected_calibration_error(prob, labels, weights) == pytest.approx(expected, rel=1e-12)
    curve = reliability_curve(prob, labels, weights)
    np.testing.assert_allclose(curve["sum_weights"], [1, 3, 0, 0, 0, 0, 0, 0, 3, 1])
    np.testing.assert_allclose(curve["mean_prob"][[0, 1, 8, 9]], [0.05, bin1_mean, 0.85, 0.95])
    np.testing.assert_allclose(curve["signal_fraction"][[0, 1, 8, 9]], [0, 1 / 3, 1, 1])
    assert np.all(np.isnan(curve["mean_prob"][2:8]))
    np.testing.assert_allclose(curve["bin_edges"], np.linspace(0, 1, 11))


def test_reliability_curve_matches_sklearn():
    rng = np.random.default_rng(17)
    prob = rng.beta(0.7, 0.9, 3000)
    labels = (rng.uniform(size=prob.size) < prob**1.3).astype(int)
    prob_true, prob_pred = calibration_curve(labels, prob, n_bins=10, strategy="uniform")
    curve = reliability_curve(prob, labels, bins=10)
    filled = curve["sum_weights"] > 0
    np.testing.assert_allclose(curve["signal_fraction"][filled], prob_true, rtol=1e-12)
    np.testing.assert_allclose(curve["mean_prob"][filled], prob_pred, rtol=1e-12)
    counts = np.histogram(prob, bins=10, range=(0, 1))[0][filled]
    ece = np.sum(counts * np.abs(prob_true - prob_pred)) / counts.sum()
    assert expected_calibration_error(prob, labels) == pytest.approx(ece, rel=1e-12)


def test_ece_integer_weights_equal_duplicated_events():
    rng = np.random.default_rng(18)
    prob = rng.uniform(size=500)
    labels = (rng.uniform(size=500) < prob).astype(int)
    weights = rng.integers(1, 4, 500)
    assert expected_calibration_error(prob, labels, weights) == pytest.approx(
        expected_calibration_error(np.repeat(prob, weights), np.repeat(labels, weights)),
        rel=1e-12)


def test_ece_rejects_values_outside_unit_interval():
    with pytest.raises(ValueError):
        expected_calibration_error([0.5, 1.2], [0, 1])


# ------------------------------------------------------------------ reweighting
def test_reweight_to_fraction():
    rng = np.random.default_rng(19)
    labels = rng.integers(0, 2, 1000)
    weights = rng.uniform(0.1, 3.0, 1000)
    new = reweight_to_fraction(labels, weights, 0.15)
    sig = labels == 1
    assert new[sig].sum() / new.sum() == pytest.approx(0.15, rel=1e-12)
    assert new.sum() == pytest.approx(weights.sum(), rel=1e-12)
    # Shapes within each class unchanged: a constant ratio per class.
    for mask in (sig, ~sig):
        ratio = new[mask] / weights[mask]
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-12)
    unit = reweight_to_fraction(labels, None, 0.5)
    assert unit[sig].sum() == pytest.approx(unit[~sig].sum(), rel=1e-12)
    with pytest.raises(ValueError):
        reweight_to_fraction(labels, weights, 1.5)
