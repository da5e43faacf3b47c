"""SVM: the numpy decision function equals scikit-learn's for every kernel (positive = signal),
the training subset limit, weights, regression, and storage without pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import roundtrip, two_gaussians
from sklearn.metrics import roc_auc_score
from sklearn.metrics.pairwise import linear_kernel, polynomial_kernel, rbf_kernel
from sklearn.svm import SVC, SVR

from mva.errors import NotFittedError
from mva.methods.svm import SVM, kernel_matrix


def test_kernel_matrix_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(20, 3)), rng.normal(size=(15, 3))
    np.testing.assert_allclose(kernel_matrix(A, B, "rbf", 0.3, 3, 0.0), rbf_kernel(A, B, gamma=0.3),
                               rtol=1e-12)
    np.testing.assert_allclose(kernel_matrix(A, B, "poly", 0.5, 2, 1.5),
                               polynomial_kernel(A, B, degree=2, gamma=0.5, coef0=1.5), rtol=1e-12)
    np.testing.assert_allclose(kernel_matrix(A, B, "linear", 1.0, 3, 0.0), linear_kernel(A, B),
                               rtol=1e-12)


@pytest.mark.parametrize(
    "params",
    [
        {"kernel": "rbf"},
        {"kernel": "rbf", "gamma": "auto", "C": 3.0},
        {"kernel": "poly", "degree": 3, "coef0": 1.0, "gamma": 0.4},
        {"kernel": "poly", "degree": 2, "coef0": 1.0},
        {"kernel": "linear", "C": 0.5},
    ],
)
def test_decision_function_equals_sklearn_svc(params: dict) -> None:
    X, y = two_gaussians(150, seed=1)
    Xq = np.random.default_rng(2).normal(size=(80, 2)) * 1.5
    m = SVM(params, "classification").fit(X, y, np.ones(len(X)))
    ref = SVC(**params).fit(X, y)
    np.testing.assert_allclose(m.predict(Xq), ref.decision_function(Xq), rtol=1e-7, atol=1e-9)
    # positive = signal: signal events score higher, and separate well
    s = m.predict(X)
    assert s[y == 1].mean() > 0 > s[y == 0].mean()
    assert roc_auc_score(y, s) > 0.85


def test_weighted_fit_equals_sklearn_and_honours_weights() -> None:
    X, y = two_gaussians(150, seed=3)
    w = np.random.default_rng(4).uniform(0.2, 3.0, len(X))
    Xq = np.random.default_rng(5).normal(size=(60, 2))
    # a tight tolerance, so that round-off in the weights cannot move the solver's end point
    m = SVM({"tol": 1e-10}, "classification").fit(X, y, w)
    # an overall factor on the weights does not change the model: only relative weights count
    ref = SVC(tol=1e-10).fit(X, y, sample_weight=w / w.mean())
    np.testing.assert_allclose(m.predict(Xq), ref.decision_function(Xq), rtol=1e-6, atol=1e-8)
    m10 = SVM({"tol": 1e-10}, "classification").fit(X, y, 10 * w)
    np.testing.assert_allclose(m10.predict(Xq), m.predict(Xq), rtol=1e-6, atol=1e-8)
    # heavier signal pushes the boundary into the background: more events scored positive
    heavy = SVM({}, "classification").fit(X, y, np.where(y == 1, 5.0, 1.0))
    base = SVM({}, "classification").fit(X, y, np.ones(len(X)))
    assert (heavy.predict(Xq) > 0).sum() > (base.predict(Xq) > 0).sum()
    assert heavy.predict(Xq).mean() > base.predict(Xq).mean()


def test_max_train_events_limits_training_but_scores_all() -> None:
    X, y = two_gaussians(400, seed=6)
    # the exact solver on a subset (auto would train the Nystroem machine on all events)
    params = {"max_train_events": 100, "solver": "exact"}
    m = SVM(params, "classification", seed=3).fit(X, y, np.ones(len(X)))
    assert m.n_train_ == 100
    assert any("max_train_events" in n and "100 of 800" in n for n in m.notes_)
    # every support vector is one of the training events
    assert all(np.any(np.all(X == sv, axis=1)) for sv in m.sv_)
    assert m.predict(X).shape == (800,)
    assert roc_auc_score(y, m.predict(X)) > 0.85
    # the subset is seeded: the same seed gives the same model, another seed another one
    again = SVM(params, "classification", seed=3).fit(X, y, np.ones(len(X)))
    np.testing.assert_array_equal(again.predict(X), m.predict(X))
    other = SVM(params, "classification", seed=4).fit(X, y, np.ones(len(X)))
    assert not np.allclose(other.predict(X), m.predict(X))
    # below the limit nothing is dropped and nothing is noted
    full = SVM({}, "classification").fit(X, y, np.ones(len(X)))
    assert full.n_train_ == 800 and not full.notes_


def test_block_size_does_not_change_scores() -> None:
    X, y = two_gaussians(100, seed=7)
    Xq = np.random.default_rng(8).normal(size=(101, 2))
    a = SVM({"block_size": 7}, "classification").fit(X, y, np.ones(len(X))).predict(Xq)
    b = SVM({}, "classification").fit(X, y, np.ones(len(X))).predict(Xq)
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_regression_fits_a_parabola() -> None:
    rng = np.random.default_rng(9)
    X = rng.uniform(-2, 2, (800, 2))
    t = X[:, 0] ** 2 + rng.normal(0, 0.1, len(X))
    Xt = rng.uniform(-1.8, 1.8, (300, 2))
    m = SVM({"C": 10.0}, "regression").fit(X, t, np.ones(len(X)))
    pred = m.predict(Xt)
    assert pred.shape == (300, 1)
    rms = np.sqrt(np.mean((pred[:, 0] - Xt[:, 0] ** 2) ** 2))
    assert rms < 0.2 * np.std(t)


def test_regression_each_target_equals_sklearn_svr_on_the_standardised_target() -> None:
    rng = np.random.default_rng(10)
    X = rng.normal(size=(200, 2))
    T = np.c_[3 * X[:, 0] + 10 + rng.normal(0, 0.5, 200), 0.01 * np.sin(X[:, 1])]
    Xq = rng.normal(size=(40, 2))
    m = SVM({"kernel": "rbf", "C": 2.0, "epsilon": 0.05, "tol": 1e-10}, "regression").fit(
        X, T, np.ones(200))
    pred = m.predict(Xq)
    assert pred.shape == (40, 2)
    for j in range(2):
        mu, sd = T[:, j].mean(), T[:, j].std()
        ref = SVR(C=2.0, epsilon=0.05, tol=1e-10).fit(X, (T[:, j] - mu) / sd)
        np.testing.assert_allclose(pred[:, j], ref.predict(Xq) * sd + mu, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(("task", "kernel"), [("classification", "rbf"),
                                              ("classification", "poly"),
                                              ("regression", "linear")])
def test_state_roundtrip(task: str, kernel: str, tmp_path: Path) -> None:
    X, y = two_gaussians(100, seed=11)
    target = y if task == "classification" else np.c_[X[:, 0], X[:, 1] ** 2]
    params = {"kernel": kernel}
    m = SVM(params, task).fit(X, target, np.ones(len(X)))
    m2 = roundtrip(m, params, task, tmp_path)
    Xq = np.random.default_rng(12).normal(size=(50, 2))
    np.testing.assert_array_equal(m2.predict(Xq), m.predict(Xq))


def test_predict_before_fit_raises() -> None:
    with pytest.raises(NotFittedError):
        SVM({}, "classification").predict(np.zeros((3, 2)))


def three_classes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` events of each of three Gaussian classes with centres on a circle of radius 2."""
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(3) / 3
    centres = 2 * np.c_[np.cos(angles), np.sin(angles)]
    y = np.repeat(np.arange(3), n)
    return centres[y] + rng.normal(size=(3 * n, 2)), y


def weighted_log_loss(p: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    return -float(np.average(np.log(p[np.arange(len(y)), y]), weights=w))


@pytest.mark.parametrize(
    "params",
    [{"kernel": "rbf", "tol": 1e-10}, {"kernel": "poly", "degree": 2, "coef0": 1.0, "tol": 1e-10},
     {"kernel": "linear", "C": 0.5, "tol": 1e-10}],
)
def test_multiclass_one_vs_rest_decisions_equal_sklearn_svc(params: dict) -> None:
    X, y = three_classes(70, seed=13)
    w = np.random.default_rng(14).uniform(0.2, 3.0, len(X))
    Xq = np.random.default_rng(15).normal(size=(60, 2)) * 2
    m = SVM(params, "multiclass", n_classes=3).fit(X, y, w)
    f = m.decision_function(Xq)
    assert f.shape == (60, 3)
    for c in range(3):
        ref = SVC(**params).fit(X, (y == c).astype(int), sample_weight=w / w.mean())
        np.testing.assert_allclose(f[:, c], ref.decision_function(Xq), rtol=1e-6, atol=1e-8)
    # one kernel matrix: each support vector stored once, though machines share them
    assert len(np.unique(m.sv_, axis=0)) == len(m.sv_)
    # probabilities: softmax of f / T, rows sum to 1
    p = m.predict(Xq)
    z = f / m.temperature_
    ref_p = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(p, ref_p / ref_p.sum(1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-12)


def test_multiclass_temperature_minimises_training_log_loss() -> None:
    X, y = three_classes(150, seed=16)
    w = np.random.default_rng(17).uniform(0.5, 2.0, len(X))
    m = SVM({}, "multiclass", n_classes=3).fit(X, y, w)
    best = weighted_log_loss(m.predict(X), y, w)
    T = m.temperature_
    for factor in (0.8, 0.95, 1.05, 1.25):
        m.temperature_ = T * factor
        assert weighted_log_loss(m.predict(X), y, w) > best
    m.temperature_ = T
    Xt, yt = three_classes(300, seed=18)
    p = m.predict(Xt)
    assert np.mean(p.argmax(1) == yt) > 0.85
    # calibrated on training events: the test log loss is close to the best possible here
    assert weighted_log_loss(p, yt, np.ones(len(yt))) < 0.4


def test_multiclass_weightless_class_is_never_predicted_and_weights_matter() -> None:
    X, y = three_classes(100, seed=19)
    Xq = np.random.default_rng(20).normal(size=(80, 2)) * 2
    p = SVM({}, "multiclass", n_classes=3).fit(X, y, np.where(y == 2, 0.0, 1.0)).predict(Xq)
    np.testing.assert_array_equal(p[:, 2], 0.0)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-12)
    base = SVM({}, "multiclass", n_classes=3).fit(X, y, np.ones(len(X))).predict(Xq)
    heavy = SVM({}, "multiclass", n_classes=3).fit(X, y, np.where(y == 1, 5.0, 1.0)).predict(Xq)
    assert heavy[:, 1].mean() > base[:, 1].mean() + 0.05
    # zero weights on part of a class (libsvm drops those events): still the sklearn machines
    w = np.where((y == 0) & (np.arange(len(y)) % 4 != 0), 0.0, 1.0)
    m = SVM({"tol": 1e-10}, "multiclass", n_classes=3).fit(X, y, w)
    for c in range(3):
        ref = SVC(tol=1e-10).fit(X, (y == c).astype(int), sample_weight=w / w.mean())
        np.testing.assert_allclose(m.decision_function(Xq)[:, c], ref.decision_function(Xq),
                                   rtol=1e-6, atol=1e-8)
    assert np.mean(m.predict(X)[w > 0].argmax(1) == y[w > 0]) > 0.85
    # negative weights count as zero, as for binary
    neg = SVM({"tol": 1e-10}, "multiclass", n_classes=3).fit(X, y, np.where(w == 0, -2.0, w))
    np.testing.assert_array_equal(neg.predict(Xq), m.predict(Xq))


def test_multiclass_max_train_events_limits_training_but_scores_all() -> None:
    X, y = three_classes(200, seed=21)
    params = {"max_train_events": 150, "solver": "exact"}
    m = SVM(params, "multiclass", n_classes=3, seed=2).fit(X, y, np.ones(len(X)))
    assert m.n_train_ == 150 and any("150 of 600" in n for n in m.notes_)
    assert all(np.any(np.all(X == sv, axis=1)) for sv in m.sv_)
    p = m.predict(X)
    assert p.shape == (600, 3) and np.mean(p.argmax(1) == y) > 0.8
    again = SVM(params, "multiclass", n_classes=3, seed=2).fit(X, y, np.ones(len(X)))
    np.testing.assert_array_equal(again.predict(X), p)


def test_multiclass_state_roundtrip(tmp_path: Path) -> None:
    X, y = three_classes(50, seed=22)
    params = {"kernel": "rbf", "block_size": 13}
    m = SVM(params, "multiclass", n_classes=3).fit(X, y, np.ones(len(X)))
    meta = m.state()[0]
    assert meta["n_classes"] == 3 and meta["temperature"] == m.temperature_
    m2 = roundtrip(m, params, "multiclass", tmp_path)
    Xq = np.random.default_rng(23).normal(size=(30, 2))
    np.testing.assert_array_equal(m2.predict(Xq), m.predict(Xq))
