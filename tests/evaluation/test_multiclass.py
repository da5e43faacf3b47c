"""Tests of mva.evaluation.multiclass against scikit-learn (with weights), closed forms (Bayes'
theorem with known class densities) and the binary measures applied one-vs-rest by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import norm
from sklearn import metrics
from sklearn.preprocessing import label_binarize

from mva.evaluation import classification as cm
from mva.evaluation import multiclass as mc
from mva.evaluation.probability import expected_calibration_error, reliability_curve

CLASSES = ["signal", "ttbar", "wjets"]
K = len(CLASSES)


def sample(seed: int, n: int = 3000, k: int = K, negative: float = 0.0, sharp: float = 1.0):
    """Imperfect classifier: softmax of noisy class scores; weights in [0.2, 3], a fraction
    ``negative`` of them flipped."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + sharp * np.eye(k)[labels] * 1.5
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    weights = rng.uniform(0.2, 3.0, n)
    weights[rng.random(n) < negative] *= -1.0
    return probs, labels, weights


def gaussian_posteriors(x: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """Exact posteriors of three unit Gaussians at -2, 0, 2 for the class priors ``priors``."""
    dens = np.stack([norm.pdf(x, mu, 1.0) for mu in (-2.0, 0.0, 2.0)], axis=1) * priors
    return dens / dens.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------- vs scikit-learn


@pytest.mark.parametrize("negative", [0.0, 0.1])
def test_accuracy_matches_sklearn(negative):
    probs, labels, w = sample(1, negative=negative)
    expected = metrics.accuracy_score(labels, probs.argmax(axis=1), sample_weight=w)
    assert mc.accuracy(probs, labels, w) == pytest.approx(expected, rel=1e-12)
    assert mc.accuracy(probs, labels) == pytest.approx(
        metrics.accuracy_score(labels, probs.argmax(axis=1)), rel=1e-12)


@pytest.mark.parametrize("negative", [0.0, 0.1])
def test_log_loss_matches_sklearn(negative):
    probs, labels, w = sample(2, negative=negative)
    expected = metrics.log_loss(labels, probs, sample_weight=w, labels=list(range(K)))
    assert mc.log_loss(probs, labels, w) == pytest.approx(expected, rel=1e-10)


def test_log_loss_clips_zero_probability():
    probs = np.array([[1.0, 0.0], [0.5, 0.5]])
    labels = np.array([1, 0])
    eps = np.finfo(np.float64).eps
    assert mc.log_loss(probs, labels) == pytest.approx(0.5 * (-math.log(eps) - math.log(0.5)))
    # the same clipping as scikit-learn: a zero probability gives the same finite loss
    assert mc.log_loss(probs, labels) == pytest.approx(metrics.log_loss(labels, probs),
                                                       rel=1e-12)


def test_roc_auc_ovr_matches_sklearn_per_class():
    probs, labels, w = sample(3)
    onehot = label_binarize(labels, classes=list(range(K)))
    aucs = mc.roc_auc_ovr(probs, labels, w, CLASSES)
    assert list(aucs) == CLASSES
    for k, c in enumerate(CLASSES):
        expected = metrics.roc_auc_score(onehot[:, k], probs[:, k], sample_weight=w)
        assert aucs[c] == pytest.approx(expected, abs=1e-12)
    macro = metrics.roc_auc_score(labels, probs, multi_class="ovr", average="macro",
                                  sample_weight=w)
    assert mc.roc_auc_macro(probs, labels, w, CLASSES) == pytest.approx(macro, abs=1e-12)


def test_roc_auc_ovr_with_ties_matches_sklearn():
    probs, labels, w = sample(4)
    # rounding makes many tied scores, which both must group the same way
    probs = np.round(probs, 2)
    onehot = label_binarize(labels, classes=list(range(K)))
    aucs = mc.roc_auc_ovr(probs, labels, w, CLASSES)
    for k, c in enumerate(CLASSES):
        assert aucs[c] == pytest.approx(
            metrics.roc_auc_score(onehot[:, k], probs[:, k], sample_weight=w), abs=1e-12)


@pytest.mark.parametrize("negative", [0.0, 0.05])
def test_confusion_matches_sklearn(negative):
    probs, labels, w = sample(5, n=4000, k=4, negative=negative)
    expected = metrics.confusion_matrix(labels, probs.argmax(axis=1), labels=list(range(4)),
                                        sample_weight=w, normalize="true")
    got = mc.confusion(probs, labels, w, 4)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-12)


def test_confusion_unweighted_counts():
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    labels = np.array([0, 1, 1, 2])
    np.testing.assert_allclose(mc.confusion(probs, labels, None, 3),
                               [[1, 0, 0], [0.5, 0.5, 0], [0, 0, 1]])


def test_confusion_row_without_weight_is_nan():
    probs, labels, w = sample(6)
    labels = np.where(labels == 1, 0, labels)  # no event of class 1
    m = mc.confusion(probs, labels, w, K)
    assert np.all(np.isnan(m[1]))
    assert np.all(np.isfinite(m[[0, 2]]))
    np.testing.assert_allclose(m[[0, 2]].sum(axis=1), 1.0)


def test_eff_at_bkg_is_one_vs_rest_eff_sig_at_bkg():
    probs, labels, w = sample(7)
    got = mc.eff_at_bkg(probs, labels, w, CLASSES, eff_bkg=(0.01, 0.1, 0.3))
    for k, c in enumerate(CLASSES):
        expected = cm.eff_sig_at_bkg(probs[:, k], labels == k, w, (0.01, 0.1, 0.3))
        assert got[c] == expected
        assert list(got[c]) == ["0.01", "0.1", "0.3"]
        # at 30 % of the other classes a useful classifier keeps more than 30 % of class k
        assert got[c]["0.3"] > 0.3


def test_eff_at_bkg_against_sklearn_roc_interpolation():
    probs, labels, w = sample(8)
    onehot = label_binarize(labels, classes=list(range(K)))
    got = mc.eff_at_bkg(probs, labels, w, CLASSES, eff_bkg=0.1)
    for k, c in enumerate(CLASSES):
        fpr, tpr, _ = metrics.roc_curve(onehot[:, k], probs[:, k], sample_weight=w,
                                        drop_intermediate=False)
        assert got[c]["0.1"] == pytest.approx(np.interp(0.1, fpr, tpr), abs=1e-9)


def test_ks_pvalues_per_class():
    probs, labels, w = sample(9, n=4000)
    half = np.arange(labels.size) % 2 == 0
    tr, te = (probs[half], labels[half], w[half]), (probs[~half], labels[~half], w[~half])
    got = mc.ks_pvalues(*tr, *te, CLASSES)
    assert list(got) == CLASSES
    for k, c in enumerate(CLASSES):
        a, b = tr[1] == k, te[1] == k
        expected = cm.ks_2samp_weighted(tr[0][a, k], te[0][b, k], tr[2][a], te[2][b])[1]
        assert got[c] == pytest.approx(expected, rel=1e-12)
        assert 0.0 <= got[c] <= 1.0
    # the same sample on both sides: no difference at all
    same = mc.ks_pvalues(*tr, *tr, CLASSES)
    assert all(p == pytest.approx(1.0) for p in same.values())


def test_ks_pvalues_detects_shifted_class():
    probs, labels, w = sample(10, n=6000)
    half = np.arange(labels.size) % 2 == 0
    test_probs = probs[~half].copy()
    sel = labels[~half] == 2
    # a classifier that is much more confident on its own training events of class 2
    test_probs[sel, 2] *= 0.7
    got = mc.ks_pvalues(probs[half], labels[half], w[half], test_probs, labels[~half], w[~half],
                        CLASSES)
    assert got["wjets"] < 1e-6
    assert got["signal"] > 1e-3 and got["ttbar"] > 1e-3


def test_ks_pvalues_missing_class_raises():
    probs, labels, w = sample(11)
    labels_te = np.where(labels == 2, 0, labels)
    with pytest.raises(ValueError, match="'wjets'.*test sample"):
        mc.ks_pvalues(probs, labels, w, probs, labels_te, w, CLASSES)


def test_class_fractions():
    probs, labels, w = sample(12, negative=0.1)
    expected = np.bincount(labels, weights=w, minlength=K) / w.sum()
    np.testing.assert_allclose(mc.class_fractions(labels, w, K), expected, rtol=1e-12)
    np.testing.assert_allclose(mc.class_fractions([0, 0, 2, 1], None, 4), [0.5, 0.25, 0.25, 0])
    with pytest.raises(ValueError, match="positive"):
        mc.class_fractions([0, 1], [1.0, -1.0], 2)


# --------------------------------------------------------------------------- priors (Bayes)


def test_reweight_to_priors_equals_bayes_posterior():
    x = np.linspace(-6.0, 6.0, 501)
    equal = np.full(3, 1.0 / 3.0)
    pi = np.array([0.05, 0.25, 0.7])
    got = mc.reweight_to_priors(gaussian_posteriors(x, equal), equal, pi)
    np.testing.assert_allclose(got, gaussian_posteriors(x, pi), rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-12)


def test_reweight_to_priors_between_unequal_priors_and_back():
    x = np.linspace(-5.0, 5.0, 201)
    tau = np.array([0.6, 0.3, 0.1])
    pi = np.array([0.1, 0.1, 0.8])
    p_tau = gaussian_posteriors(x, tau)
    got = mc.reweight_to_priors(p_tau, tau, pi)
    np.testing.assert_allclose(got, gaussian_posteriors(x, pi), rtol=1e-10)
    np.testing.assert_allclose(mc.reweight_to_priors(got, pi, tau), p_tau, rtol=1e-10)
    # priors need not be normalised: only their ratios matter
    np.testing.assert_allclose(mc.reweight_to_priors(p_tau, 10 * tau, 3 * pi), got, rtol=1e-12)


def test_reweight_to_priors_identity_and_zero_prior():
    probs, _, _ = sample(13)
    np.testing.assert_allclose(mc.reweight_to_priors(probs, [1, 2, 3], [1, 2, 3]), probs,
                               rtol=1e-12)
    zeroed = mc.reweight_to_priors(probs, [1, 1, 1], [1, 1, 0])
    assert np.all(zeroed[:, 2] == 0)
    np.testing.assert_allclose(zeroed[:, :2], probs[:, :2] / probs[:, :2].sum(1, keepdims=True))


def test_reweight_to_priors_bad_input():
    probs, _, _ = sample(14, n=10)
    with pytest.raises(ValueError, match="train_priors must be positive"):
        mc.reweight_to_priors(probs, [1, 0, 1], [1, 1, 1])
    with pytest.raises(ValueError, match="priors has 2 entries, expected 3"):
        mc.reweight_to_priors(probs, [1, 1, 1], [1, 1])
    with pytest.raises(ValueError, match="non-negative"):
        mc.reweight_to_priors(probs, [1, 1, 1], [1, -1, 1])
    with pytest.raises(ValueError, match="non-negative"):
        mc.reweight_to_priors(probs, [1, 1, 1], [1, np.nan, 1])


# --------------------------------------------------------------------------- summaries


def test_multiclass_metrics_is_json_safe_and_consistent():
    probs, labels, w = sample(15, negative=0.05)
    m = mc.multiclass_metrics(probs, labels, w, CLASSES)
    assert set(m) == {"accuracy", "log_loss", "roc_auc_ovr", "roc_auc_macro", "eff_at_bkg",
                      "confusion"}
    json.dumps(m, allow_nan=False)
    assert m["accuracy"] == pytest.approx(mc.accuracy(probs, labels, w))
    assert m["log_loss"] == pytest.approx(mc.log_loss(probs, labels, w))
    assert m["roc_auc_ovr"] == mc.roc_auc_ovr(probs, labels, w, CLASSES)
    assert m["roc_auc_macro"] == pytest.approx(np.mean(list(m["roc_auc_ovr"].values())))
    assert m["eff_at_bkg"] == mc.eff_at_bkg(probs, labels, w, CLASSES)
    np.testing.assert_allclose(m["confusion"], mc.confusion(probs, labels, w, K))
    assert all(type(v) is float for row in m["confusion"] for v in row)


def test_class_without_positive_weight():
    probs, labels, w = sample(16, k=4)
    # class 3 has events (for the AUCs) but no positive total weight
    w = np.where(labels == 3, 0.0, w)
    w[np.flatnonzero(labels == 3)[:2]] = [1.0, -1.0]
    with pytest.raises(ValueError, match="'d'"):
        mc.multiclass_metrics(probs, labels, w, list("abcd"))
    cm_ = mc.confusion(probs, labels, w, 4)
    assert np.all(np.isnan(cm_[3]))
    assert mc._json(cm_)[3] == [None] * 4


def test_perfect_classifier():
    rng = np.random.default_rng(17)
    labels = rng.integers(0, K, 500)
    probs = np.full((500, K), 0.05)
    probs[np.arange(500), labels] = 0.9
    w = rng.uniform(0.5, 2.0, 500)
    assert mc.accuracy(probs, labels, w) == 1.0
    assert mc.roc_auc_ovr(probs, labels, w, CLASSES) == dict.fromkeys(CLASSES, 1.0)
    assert mc.roc_auc_macro(probs, labels, w, CLASSES) == 1.0
    np.testing.assert_array_equal(mc.confusion(probs, labels, w, K), np.eye(K))
    assert mc.log_loss(probs, labels, w) == pytest.approx(-math.log(0.9))
    eff = mc.eff_at_bkg(probs, labels, w, CLASSES)
    assert all(v == 1.0 for d in eff.values() for v in d.values())


def test_reliability_per_class_matches_binary_reliability():
    probs, labels, w = sample(18)
    got = mc.reliability_per_class(probs, labels, w, CLASSES, bins=8)
    json.dumps(got, allow_nan=False)
    assert list(got) == CLASSES
    for k, c in enumerate(CLASSES):
        curve = reliability_curve(probs[:, k], labels == k, w, bins=8)
        rel = got[c]["reliability"]
        assert set(rel) == set(curve)
        for key, values in curve.items():
            expected = [None if not np.isfinite(v) else float(v) for v in values]
            assert rel[key] == pytest.approx(expected, rel=1e-12)
        assert got[c]["ece"] == pytest.approx(
            expected_calibration_error(probs[:, k], labels == k, w, bins=8), rel=1e-12)


def test_reliability_per_class_empty_bins_are_none():
    # every probability in {0.1, 0.8}: most bins are empty
    labels = np.array([0, 1, 0, 1, 1, 0])
    probs = np.where(np.eye(2)[labels] == 1, 0.8, 0.2)
    got = mc.reliability_per_class(probs, labels, None, ["a", "b"])
    json.dumps(got, allow_nan=False)
    assert got["a"]["reliability"]["mean_prob"].count(None) == 8


def test_reliability_per_class_calibrated_after_reweighting_to_priors():
    """Events from known Gaussians with posteriors for equal priors: reweighting probabilities
    and events to other priors keeps them calibrated (ECE at the statistical level)."""
    rng = np.random.default_rng(19)
    n = 60_000
    labels = rng.integers(0, 3, n)
    x = rng.normal(np.array([-2.0, 0.0, 2.0])[labels], 1.0)
    equal = np.full(3, 1.0 / 3.0)
    pi = np.array([0.1, 0.3, 0.6])
    probs = mc.reweight_to_priors(gaussian_posteriors(x, equal), equal, pi)
    names = ["a", "b", "c"]
    got = mc.reliability_per_class(probs, labels, None, names, priors=dict(zip(names, pi)))
    for k, c in enumerate(names):
        rel = got[c]["reliability"]
        sw = np.array(rel["sum_weights"])
        frac = np.array([np.nan if v is None else v for v in rel["signal_fraction"]])
        filled = sw > 0
        # the events now have the requested composition
        assert np.sum(sw[filled] * frac[filled]) / sw.sum() == pytest.approx(pi[k], rel=1e-9)
        assert got[c]["ece"] < 0.01
    # without reweighting the events the posteriors for pi do not describe the sample
    unweighted = mc.reliability_per_class(probs, labels, None, names)
    assert max(unweighted[c]["ece"] for c in names) > 0.05


def test_reliability_per_class_bad_priors():
    probs, labels, w = sample(20, n=50)
    with pytest.raises(ValueError, match="unknown classes"):
        mc.reliability_per_class(probs, labels, w, CLASSES, priors={"qcd": 1.0})
    with pytest.raises(ValueError, match="priors has 2 entries"):
        mc.reliability_per_class(probs, labels, w, CLASSES, priors=[0.5, 0.5])
    labels = np.where(labels == 1, 0, labels)
    with pytest.raises(ValueError, match="non-zero prior but no positive weight"):
        mc.reliability_per_class(probs, labels, w, CLASSES, priors=[1, 1, 1])


# --------------------------------------------------------------------------- bad input


def test_nan_and_shape_errors():
    probs, labels, w = sample(21, n=20)
    bad = probs.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="probs contains NaN"):
        mc.accuracy(bad, labels, w)
    with pytest.raises(ValueError, match="weights contains NaN"):
        mc.log_loss(probs, labels, np.r_[w[:-1], np.inf])
    with pytest.raises(ValueError, match=r"shape \(n_events, n_classes\)"):
        mc.accuracy(probs[:, 0], labels, w)
    with pytest.raises(ValueError, match="labels has length 19, expected 20"):
        mc.accuracy(probs, labels[:-1], w)
    with pytest.raises(ValueError, match="weights has length 19, expected 20"):
        mc.accuracy(probs, labels, w[:-1])
    with pytest.raises(ValueError, match="2 class names for 3 probability columns"):
        mc.roc_auc_ovr(probs, labels, w, CLASSES[:2])
    with pytest.raises(ValueError, match="K = 4 but probs has 3"):
        mc.confusion(probs, labels, w, 4)
    with pytest.raises(ValueError, match=r"labels must lie in 0 \.\. 2"):
        mc.accuracy(probs, np.r_[labels[:-1], 3], w)
    with pytest.raises(ValueError, match="integer class indices"):
        mc.accuracy(probs, labels + 0.5, w)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mc.accuracy(probs * 2, labels, w)
    with pytest.raises(ValueError, match="at least 2 class columns"):
        mc.accuracy(probs[:, :1], labels * 0, w)
    with pytest.raises(ValueError, match="unique"):
        mc.roc_auc_ovr(probs, labels, w, ["a", "b", "a"])
    with pytest.raises(ValueError, match="train_probs contains NaN"):
        mc.ks_pvalues(bad, labels, w, probs, labels, w, CLASSES)


def test_absent_class_names_the_class():
    probs, labels, w = sample(22, n=200)
    labels = np.where(labels == 1, 0, labels)
    with pytest.raises(ValueError, match="class 'ttbar' \\(index 1\\)"):
        mc.roc_auc_ovr(probs, labels, w, CLASSES)


def test_float_labels_accepted():
    probs, labels, w = sample(23, n=100)
    assert mc.accuracy(probs, labels.astype(float), w) == mc.accuracy(probs, labels, w)
