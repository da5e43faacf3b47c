"""Linear methods: Fisher's discriminant against scikit-learn's LDA and its defining properties,
logistic regression against scikit-learn, weighted least squares against scikit-learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import roundtrip
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import roc_auc_score

from mva.errors import NotFittedError
from mva.methods.linear import Linear, fisher_coefficients

COV = np.array([[1.0, 0.6, 0.2], [0.6, 2.0, -0.3], [0.2, -0.3, 0.5]])


def two_gaussians(n_sig: int, n_bkg: int, seed: int):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.multivariate_normal([1.2, 0.5, 0.5], COV, n_sig),
                   rng.multivariate_normal([-0.6, -0.5, -0.3], COV, n_bkg)])
    y = np.r_[np.ones(n_sig), np.zeros(n_bkg)].astype(np.int8)
    return X, y


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)




@pytest.mark.parametrize("method", ["fisher", "logistic"])
def test_separates_two_gaussians(method: str) -> None:
    X, y = two_gaussians(1000, 1000, seed=0)
    Xt, yt = two_gaussians(1000, 1000, seed=1)
    m = Linear({"method": method}, "classification").fit(X, y, np.ones(len(X)))
    s = m.predict(Xt)
    assert s.shape == (len(Xt),)
    assert roc_auc_score(yt, s) > 0.85
    if method == "logistic":
        assert np.all((s > 0) & (s < 1))


def test_fisher_is_proportional_to_lda_for_unit_weights() -> None:
    # equal class sizes: sklearn's prior-weighted pooled covariance is half of S_cov + B_cov
    X, y = two_gaussians(800, 800, seed=2)
    m = Linear({}, "classification").fit(X, y, np.ones(len(X)))
    lda = LinearDiscriminantAnalysis(solver="lsqr").fit(X, y)
    np.testing.assert_allclose(unit(m.coef_[:, 0]), unit(lda.coef_[0]), atol=1e-10)
    # same sign: larger = more signal-like for both
    assert m.coef_[:, 0] @ lda.coef_[0] > 0


def test_fisher_offset_puts_the_class_mean_midpoint_at_zero() -> None:
    X, y = two_gaussians(500, 300, seed=3)
    m = Linear({}, "classification").fit(X, y, np.ones(len(X)))
    mid = (X[y == 1].mean(0) + X[y == 0].mean(0)) / 2
    assert abs(m.predict(mid[None, :])[0]) < 1e-12
    # the coefficients solve W c = mu_S - mu_B with W the summed class covariances
    W = np.cov(X[y == 1].T, bias=True) + np.cov(X[y == 0].T, bias=True)
    np.testing.assert_allclose(W @ m.coef_[:, 0], X[y == 1].mean(0) - X[y == 0].mean(0),
                               atol=1e-12)


def test_fisher_integer_weights_equal_duplicated_events() -> None:
    X, y = two_gaussians(200, 200, seed=4)
    counts = np.random.default_rng(5).integers(1, 5, len(X))
    a = fisher_coefficients(X, y, counts.astype(float))
    b = fisher_coefficients(np.repeat(X, counts, 0), np.repeat(y, counts), np.ones(counts.sum()))
    np.testing.assert_allclose(a[0], b[0], rtol=1e-10)
    assert a[1] == pytest.approx(b[1], rel=1e-10)


def test_fisher_weights_matter_but_class_normalisation_does_not() -> None:
    X, y = two_gaussians(600, 600, seed=6)
    base = fisher_coefficients(X, y, np.ones(len(X)))[0]
    # each class's weights are normalised: a factor on one class changes nothing
    scaled = fisher_coefficients(X, y, np.where(y == 1, 7.0, 0.3))[0]
    np.testing.assert_allclose(scaled, base, rtol=1e-10)
    # weighting events by x1 within the classes moves the class means, so the direction
    w = np.exp(X[:, 1])
    moved = fisher_coefficients(X, y, w)[0]
    assert abs(unit(moved) @ unit(base)) < 0.999


def test_negative_weights_count_as_zero() -> None:
    X, y = two_gaussians(300, 300, seed=7)
    w = np.ones(len(X))
    w[::7] = -2.0
    keep = w > 0
    a = Linear({}, "classification").fit(X, y, w)
    b = Linear({}, "classification").fit(X[keep], y[keep], w[keep])
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-10)


def test_logistic_matches_sklearn_with_weights() -> None:
    X, y = two_gaussians(700, 400, seed=8)
    w = np.random.default_rng(9).uniform(0.2, 2.0, len(X))
    m = Linear({"method": "logistic", "C": 0.5}, "classification").fit(X, y, w)
    ref = LogisticRegression(C=0.5, max_iter=1000, tol=1e-10).fit(X, y, sample_weight=w)
    Xq = np.random.default_rng(10).normal(size=(100, 3))
    # the method uses the solver's default tolerance: agreement to ~1e-3 in probability
    np.testing.assert_allclose(m.predict(Xq), ref.predict_proba(Xq)[:, 1], atol=3e-3)


def test_regression_matches_weighted_least_squares() -> None:
    rng = np.random.default_rng(11)
    X = rng.normal(size=(400, 3))
    T = np.c_[X @ [2.0, -1.0, 0.5] + 1.0, X[:, 0] - 3.0] + rng.normal(0, 0.3, (400, 2))
    w = rng.uniform(0.1, 3.0, 400)
    m = Linear({}, "regression").fit(X, T, w)
    ref = LinearRegression().fit(X, T, sample_weight=w)
    Xq = rng.normal(size=(50, 3))
    pred = m.predict(Xq)
    assert pred.shape == (50, 2)
    np.testing.assert_allclose(pred, ref.predict(Xq), rtol=1e-9, atol=1e-9)
    # integer weights equal duplicated events
    counts = rng.integers(1, 4, 400)
    a = Linear({}, "regression").fit(X, T[:, 0], counts.astype(float)).predict(Xq)
    b = Linear({}, "regression").fit(np.repeat(X, counts, 0), np.repeat(T[:, 0], counts),
                                     np.ones(counts.sum())).predict(Xq)
    np.testing.assert_allclose(a, b, rtol=1e-9)


def test_regression_fits_a_parabola_given_the_square_as_feature() -> None:
    # a linear model is linear in its inputs: with x1^2 among them it fits y = x1^2 + noise
    rng = np.random.default_rng(12)
    x = rng.uniform(-2, 2, 2000)
    t = x ** 2 + rng.normal(0, 0.1, 2000)
    m = Linear({}, "regression").fit(np.c_[x, x ** 2], t, np.ones(2000))
    rms = np.sqrt(np.mean((m.predict(np.c_[x, x ** 2])[:, 0] - x ** 2) ** 2))
    assert rms < 0.05 * np.std(t)


@pytest.mark.parametrize(("task", "method"), [("classification", "fisher"),
                                              ("classification", "logistic"),
                                              ("regression", "fisher")])
def test_state_roundtrip(task: str, method: str, tmp_path: Path) -> None:
    X, y = two_gaussians(300, 300, seed=13)
    target = y if task == "classification" else X[:, :2] @ [1.0, -2.0]
    params = {"method": method}
    m = Linear(params, task).fit(X, target, np.ones(len(X)))
    m2 = roundtrip(m, params, task, tmp_path)
    Xq = np.random.default_rng(14).normal(size=(100, 3))
    np.testing.assert_array_equal(m2.predict(Xq), m.predict(Xq))


def test_predict_before_fit_raises() -> None:
    with pytest.raises(NotFittedError):
        Linear({}, "classification").predict(np.zeros((3, 2)))


MEANS3 = np.array([[1.2, 0.5, 0.5], [-0.6, -0.5, -0.3], [0.3, 1.5, -1.0]])


def three_gaussians(n: int, seed: int, sizes: tuple[int, int, int] | None = None):
    """Three classes with the common covariance ``COV`` (LDA's model), ``n`` events each."""
    rng = np.random.default_rng(seed)
    sizes = sizes or (n, n, n)
    X = np.vstack([rng.multivariate_normal(mu, COV, k) for mu, k in zip(MEANS3, sizes)])
    y = np.repeat(np.arange(3), sizes)
    return X, y


def test_multiclass_lda_equals_sklearn_lda_posteriors() -> None:
    X, y = three_gaussians(600, seed=20)
    Xq = np.random.default_rng(21).normal(size=(200, 3)) * 1.5
    m = Linear({}, "multiclass", n_classes=3).fit(X, y, np.ones(len(X)))
    p = m.predict(Xq)
    ref = LinearDiscriminantAnalysis(solver="lsqr").fit(X, y).predict_proba(Xq)
    assert p.shape == (200, 3)
    np.testing.assert_allclose(p, ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-12)
    Xt, yt = three_gaussians(600, seed=22)
    assert np.mean(m.predict(Xt).argmax(1) == yt) > 0.7   # ~0.74: the classes overlap


def test_multiclass_lda_integer_weights_equal_duplicated_events() -> None:
    X, y = three_gaussians(150, seed=23, sizes=(150, 90, 200))
    counts = np.random.default_rng(24).integers(1, 5, len(X))
    Xq = np.random.default_rng(25).normal(size=(100, 3))
    a = Linear({}, "multiclass", n_classes=3).fit(X, y, counts.astype(float))
    b = Linear({}, "multiclass", n_classes=3).fit(np.repeat(X, counts, 0), np.repeat(y, counts),
                                                  np.ones(counts.sum()))
    np.testing.assert_allclose(a.predict(Xq), b.predict(Xq), rtol=1e-9, atol=1e-14)
    # and both equal scikit-learn on the duplicated events (unequal class sizes: its priors
    # are the class fractions, as ours)
    ref = LinearDiscriminantAnalysis(solver="lsqr").fit(np.repeat(X, counts, 0),
                                                        np.repeat(y, counts))
    np.testing.assert_allclose(a.predict(Xq), ref.predict_proba(Xq), rtol=1e-9, atol=1e-12)


def test_multiclass_lda_ignores_constant_features() -> None:
    # always-empty pixels make the within-class covariance singular
    X, y = three_gaussians(300, seed=26)
    Xc = np.c_[np.zeros(len(X)), X[:, :2], np.full(len(X), 3.0), X[:, 2]]
    Xq = np.random.default_rng(27).normal(size=(50, 3))
    Xqc = np.c_[np.zeros(50), Xq[:, :2], np.full(50, 3.0), Xq[:, 2]]
    a = Linear({}, "multiclass", n_classes=3).fit(Xc, y, np.ones(len(X))).predict(Xqc)
    b = Linear({}, "multiclass", n_classes=3).fit(X, y, np.ones(len(X))).predict(Xq)
    assert np.all(np.isfinite(a))
    np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-10)


def test_multiclass_weights_clipped_and_weightless_class_never_predicted() -> None:
    X, y = three_gaussians(200, seed=28)
    w = np.ones(len(X))
    w[::5] = -1.5
    keep = w > 0
    Xq = np.random.default_rng(29).normal(size=(40, 3))
    for method in ("fisher", "logistic"):
        a = Linear({"method": method}, "multiclass", n_classes=3).fit(X, y, w).predict(Xq)
        b = Linear({"method": method}, "multiclass", n_classes=3).fit(
            X[keep], y[keep], w[keep]).predict(Xq)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # no weight in class 1: LDA gives it probability 0 (prior 0), the others still sum to 1
    p = Linear({}, "multiclass", n_classes=3).fit(X, y, np.where(y == 1, 0.0, 1.0)).predict(Xq)
    np.testing.assert_array_equal(p[:, 1], 0.0)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-12)


def test_multiclass_logistic_matches_sklearn_multinomial_with_weights() -> None:
    X, y = three_gaussians(400, seed=30, sizes=(400, 250, 300))
    w = np.random.default_rng(31).uniform(0.2, 2.0, len(X))
    m = Linear({"method": "logistic", "C": 0.5}, "multiclass", n_classes=3).fit(X, y, w)
    ref = LogisticRegression(C=0.5, max_iter=1000, tol=1e-10).fit(X, y, sample_weight=w)
    Xq = np.random.default_rng(32).normal(size=(100, 3))
    p = m.predict(Xq)
    assert p.shape == (100, 3)
    np.testing.assert_allclose(p, ref.predict_proba(Xq), atol=3e-3)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-12)


def test_multiclass_logistic_with_two_classes_present_uses_the_one_logit() -> None:
    # scikit-learn fits one logit when only two of the classes occur in the labels
    X, y = three_gaussians(200, seed=33)
    keep = y != 1
    m = Linear({"method": "logistic"}, "multiclass", n_classes=3).fit(X[keep], y[keep],
                                                                      np.ones(keep.sum()))
    ref = LogisticRegression(max_iter=1000).fit(X[keep], y[keep])
    Xq = np.random.default_rng(34).normal(size=(30, 3))
    p = m.predict(Xq)
    np.testing.assert_array_equal(p[:, 1], 0.0)
    np.testing.assert_allclose(p[:, [0, 2]], ref.predict_proba(Xq), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", ["fisher", "logistic"])
def test_multiclass_state_roundtrip(method: str, tmp_path: Path) -> None:
    X, y = three_gaussians(100, seed=35)
    params = {"method": method}
    m = Linear(params, "multiclass", n_classes=3).fit(X, y, np.ones(len(X)))
    assert m.state()[0] == {"n_classes": 3}
    m2 = roundtrip(m, params, "multiclass", tmp_path)
    Xq = np.random.default_rng(36).normal(size=(50, 3))
    np.testing.assert_array_equal(m2.predict(Xq), m.predict(Xq))
