"""SVM, Nystroem solver: the primal L-BFGS reaches the optimum LinearSVC / LinearSVR find on the
same features, the approximate machine is as good as the exact one, ``solver: auto`` switches
above ``max_train_events``, and the model is a kernel expansion over its landmarks that is
stored and scored like support vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import roundtrip, three_gaussians, two_gaussians
from sklearn.metrics import roc_auc_score
from sklearn.svm import LinearSVC, LinearSVR

from mva.methods._nystroem import _features, kernel_gamma, solve
from mva.methods.svm import SVM, kernel_matrix


def ring(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Signal inside a ring of background in the first two of four features: no linear cut."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(2 * n, 4))
    r = np.hypot(X[:, 0], X[:, 1])
    y = (r + rng.normal(0, 0.3, 2 * n) < 1.1).astype(np.int8)
    return X, y


def landmark_features(X: np.ndarray, m: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    L = X[rng.choice(len(X), m, replace=False)]
    args = ("rbf", kernel_gamma("scale", X), 3, 0.0)
    S, U = np.linalg.eigh(kernel_matrix(L, L, *args))
    return _features(X, L, U[:, S > 1e-8 * S.max()] / np.sqrt(S[S > 1e-8 * S.max()]), args)


def test_solver_reaches_the_linear_svc_optimum() -> None:
    X, y = ring(300, seed=0)
    Phi = landmark_features(X, 60)
    w = np.random.default_rng(1).uniform(0.5, 1.5, len(X))
    w /= w.mean()
    Y = np.where(y == 1, 1.0, -1.0)[:, None]
    W, b, info = solve(Phi, Y, w, C=0.5, loss="squared_hinge", ftol=1e-12)
    assert info["converged"]
    # liblinear's primal solver; a large intercept_scaling leaves the intercept unregularised
    ref = LinearSVC(C=0.5, loss="squared_hinge", dual=False, tol=1e-12, max_iter=100000,
                    intercept_scaling=1000.0).fit(Phi.astype(np.float64), y, sample_weight=w)
    expected = ref.decision_function(Phi.astype(np.float64))
    np.testing.assert_allclose(Phi.astype(np.float64) @ W[:, 0] + b[0], expected, atol=1e-3)
    # the default tolerance stops earlier, close to the optimum
    W, b, _ = solve(Phi, Y, w, C=0.5, loss="squared_hinge")
    np.testing.assert_allclose(Phi.astype(np.float64) @ W[:, 0] + b[0], expected, atol=1e-2)


def test_regression_solver_reaches_the_linear_svr_optimum() -> None:
    rng = np.random.default_rng(2)
    X = rng.uniform(-2, 2, (500, 2))
    t = np.sin(X[:, 0]) + 0.5 * X[:, 1] + rng.normal(0, 0.1, 500)
    Phi = landmark_features(X, 40)
    W, b, info = solve(Phi, t[:, None], np.ones(500), C=2.0, loss="squared_epsilon_insensitive",
                       eps=np.array([0.05]), ftol=1e-12)
    ref = LinearSVR(C=2.0, epsilon=0.05, loss="squared_epsilon_insensitive", dual=False,
                    tol=1e-12, max_iter=100000, intercept_scaling=1000.0).fit(
        Phi.astype(np.float64), t)
    ours = Phi.astype(np.float64) @ W[:, 0] + b[0]
    np.testing.assert_allclose(ours, ref.predict(Phi.astype(np.float64)), atol=2e-3)


def test_nystroem_is_as_good_as_the_exact_svc() -> None:
    X, y = ring(1500, seed=3)
    Xt, yt = ring(2000, seed=4)
    w = np.ones(len(X))
    exact = SVM({"solver": "exact"}, "classification").fit(X, y, w)
    approx = SVM({"solver": "nystroem", "n_components": 200}, "classification").fit(X, y, w)
    auc_exact = roc_auc_score(yt, exact.predict(Xt))
    auc_approx = roc_auc_score(yt, approx.predict(Xt))
    assert auc_exact > 0.9 and auc_approx > auc_exact - 0.01
    # positive = signal, as for the exact machine
    s = approx.predict(X)
    assert s[y == 1].mean() > 0 > s[y == 0].mean()


def test_auto_solver_switches_above_max_train_events() -> None:
    X, y = ring(300, seed=5)
    w = np.ones(len(X))
    small = SVM({"max_train_events": 600}, "classification").fit(X, y, w)
    assert small.solver_ == "exact" and small.training_events_ == 600
    big = SVM({"max_train_events": 599, "n_components": 50}, "classification", seed=2).fit(X, y, w)
    assert big.solver_ == "nystroem" and big.training_events_ == 600 and big.n_train_ == 600
    assert any("solver nystroem: 50 landmarks" in n and "600 training events" in n
               for n in big.notes_)
    # the machine is a kernel expansion over 50 training events
    assert big.sv_.shape == (50, 4) and big.dual_.shape == (50, 1)
    assert all(np.any(np.all(X == sv, axis=1)) for sv in big.sv_)
    # beyond nystroem_max_events a seeded subset
    capped = SVM({"solver": "nystroem", "n_components": 50, "nystroem_max_events": 400},
                 "classification", seed=2).fit(X, y, w)
    assert capped.training_events_ == 400 and any("400 of 600" in n for n in capped.notes_)


def test_weights_are_honoured() -> None:
    X, y = two_gaussians(400, seed=6)
    Xq = np.random.default_rng(7).normal(size=(300, 2))
    p = {"solver": "nystroem", "n_components": 60}
    base = SVM(p, "classification").fit(X, y, np.ones(len(X)))
    heavy = SVM(p, "classification").fit(X, y, np.where(y == 1, 5.0, 1.0))
    assert (heavy.predict(Xq) > 0).sum() > (base.predict(Xq) > 0).sum()
    # an overall factor changes nothing; negative weights count as zero
    scaled = SVM(p, "classification").fit(X, y, 7.0 * np.ones(len(X)))
    np.testing.assert_allclose(scaled.predict(Xq), base.predict(Xq), rtol=1e-6, atol=1e-6)
    w = np.ones(len(X))
    w[:50] = 0
    neg = w.copy()
    neg[:50] = -3.0
    np.testing.assert_array_equal(SVM(p, "classification").fit(X, y, neg).predict(Xq),
                                  SVM(p, "classification").fit(X, y, w).predict(Xq))


def test_multiclass_probabilities() -> None:
    X, y = three_gaussians(300, seed=8, d=3)
    w = np.ones(len(X))
    p = {"solver": "nystroem", "n_components": 80}
    m = SVM(p, "multiclass", n_classes=3).fit(X, y, w)
    prob = m.predict(X)
    assert prob.shape == (900, 3)
    np.testing.assert_allclose(prob.sum(1), 1.0, rtol=1e-12)
    exact = SVM({"solver": "exact"}, "multiclass", n_classes=3).fit(X, y, w)
    assert np.mean(prob.argmax(1) == y) > np.mean(exact.predict(X).argmax(1) == y) - 0.02
    # a class without weight is never predicted
    w0 = np.where(y == 2, 0.0, 1.0)
    p0 = SVM(p, "multiclass", n_classes=3).fit(X, y, w0).predict(X)
    assert np.all(p0[:, 2] == 0.0) and np.allclose(p0.sum(1), 1.0)


def test_regression_fits_a_smooth_target() -> None:
    rng = np.random.default_rng(9)
    X = rng.uniform(-2, 2, (2000, 2))
    T = np.c_[X[:, 0] ** 2 + rng.normal(0, 0.1, 2000), 3 * X[:, 1] + 10]
    m = SVM({"solver": "nystroem", "n_components": 100, "epsilon": 0.05}, "regression").fit(
        X, T, np.ones(2000))
    pred = m.predict(X)
    assert pred.shape == (2000, 2)
    # within the tube (epsilon 0.05 of each target's spread) of the truth
    assert np.sqrt(np.mean((pred[:, 0] - X[:, 0] ** 2) ** 2)) < 0.1
    assert np.sqrt(np.mean((pred[:, 1] - T[:, 1]) ** 2)) < 0.05 * T[:, 1].std()


@pytest.mark.parametrize("task", ["classification", "multiclass", "regression"])
def test_state_roundtrip(task: str, tmp_path: Path) -> None:
    X, y = three_gaussians(100, seed=10)
    if task == "classification":
        y = (y == 0).astype(np.int8)
    target = X[:, 0] * 2 if task == "regression" else y
    params = {"solver": "nystroem", "n_components": 30, "block_size": 17}
    n_classes = 3 if task == "multiclass" else 2
    m = SVM(params, task, n_classes=n_classes).fit(X, target, np.ones(len(X)))
    assert m.state()[0]["solver"] == "nystroem"
    m2 = roundtrip(m, params, task, tmp_path, n_classes=n_classes)
    assert m2.solver_ == "nystroem" and m2.training_events_ == len(X)
    Xq = np.random.default_rng(11).normal(size=(40, 2))
    np.testing.assert_array_equal(m2.predict(Xq), m.predict(Xq))
