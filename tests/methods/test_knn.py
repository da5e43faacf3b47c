"""kNN: the score is the weighted signal fraction of the k nearest training events (checked by
brute force), the regression the weighted mean of their targets; storage without pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import roundtrip, two_gaussians
from sklearn.metrics import roc_auc_score

from mva.errors import NotFittedError
from mva.methods.knn import KNN


def brute_force(Xtr, ytr, wtr, Xq, k):
    """Weighted mean of ``ytr`` over the k nearest training events, by sorting all distances."""
    d = ((Xq[:, None, :] - Xtr[None, :, :]) ** 2).sum(-1)
    idx = np.argsort(d, axis=1)[:, :k]
    w = wtr[idx]
    yk = ytr[idx] if ytr.ndim == 1 else ytr[idx].transpose(0, 2, 1)   # (q, t, k) for targets
    if ytr.ndim == 1:
        return (w * yk).sum(1) / w.sum(1)
    return (w[:, None, :] * yk).sum(-1) / w.sum(1)[:, None]




def test_separates_two_gaussians() -> None:
    X, y = two_gaussians(600, seed=0)
    Xt, yt = two_gaussians(600, seed=1)
    m = KNN({"k": 30}, "classification").fit(X, y, np.ones(len(X)))
    s = m.predict(Xt)
    assert s.shape == (len(Xt),) and np.all((s >= 0) & (s <= 1))
    assert roc_auc_score(yt, s) > 0.85


def test_score_is_brute_force_weighted_neighbour_fraction() -> None:
    X, y = two_gaussians(200, seed=2, d=3)
    w = np.random.default_rng(3).uniform(0.2, 3.0, len(X))
    Xq = np.random.default_rng(4).normal(size=(50, 3))
    m = KNN({"k": 7, "block_size": 16}, "classification").fit(X, y, w)
    np.testing.assert_allclose(m.predict(Xq), brute_force(X, y.astype(float), w, Xq, 7),
                               rtol=1e-12)


def test_weights_move_the_score_the_expected_way() -> None:
    X, y = two_gaussians(300, seed=5)
    Xq = np.random.default_rng(6).normal(size=(200, 2))
    base = KNN({"k": 15}, "classification").fit(X, y, np.ones(len(X))).predict(Xq)
    # signal up-weighted where x0 > 0: scores rise only there (where signal neighbours exist)
    w = np.where((y == 1) & (X[:, 0] > 0), 4.0, 1.0)
    up = KNN({"k": 15}, "classification").fit(X, y, w).predict(Xq)
    assert np.all(up >= base - 1e-12)
    mixed = (base > 0) & (base < 1)
    assert np.mean(up[mixed & (Xq[:, 0] > 0.5)] > base[mixed & (Xq[:, 0] > 0.5)]) > 0.8
    # an overall factor on all weights changes nothing
    scaled = KNN({"k": 15}, "classification").fit(X, y, 10.0 * np.ones(len(X))).predict(Xq)
    np.testing.assert_allclose(scaled, base, rtol=1e-12)


def test_zero_weight_neighbours_give_one_half() -> None:
    X = np.array([[0.0], [0.1], [5.0], [5.1]])
    y = np.array([1, 0, 1, 1])
    m = KNN({"k": 2}, "classification").fit(X, y, np.array([0.0, 0.0, 1.0, 1.0]))
    np.testing.assert_allclose(m.predict(np.array([[0.05], [5.05]])), [0.5, 1.0])


def test_k_larger_than_training_set_is_reduced() -> None:
    X, y = two_gaussians(5, seed=7)
    m = KNN({"k": 50}, "classification").fit(X, y, np.ones(10))
    assert m.k_ == 10 and any("k reduced" in n for n in m.notes_)
    # all events are neighbours: the score is the overall signal fraction
    np.testing.assert_allclose(m.predict(X[:3]), 0.5)


def test_regression_fits_a_parabola() -> None:
    rng = np.random.default_rng(8)
    X = rng.uniform(-2, 2, (3000, 2))
    t = X[:, 0] ** 2 + rng.normal(0, 0.1, len(X))
    Xt = rng.uniform(-1.8, 1.8, (500, 2))
    m = KNN({"k": 20}, "regression").fit(X, t, np.ones(len(X)))
    pred = m.predict(Xt)
    assert pred.shape == (500, 1)
    rms = np.sqrt(np.mean((pred[:, 0] - Xt[:, 0] ** 2) ** 2))
    assert rms < 0.2 * np.std(t)


def test_regression_is_brute_force_weighted_mean_for_several_targets() -> None:
    rng = np.random.default_rng(9)
    X = rng.normal(size=(150, 2))
    T = np.c_[X[:, 0] + rng.normal(size=150), rng.normal(size=150)]
    w = rng.uniform(0.1, 2.0, 150)
    Xq = rng.normal(size=(40, 2))
    m = KNN({"k": 9}, "regression").fit(X, T, w)
    np.testing.assert_allclose(m.predict(Xq), brute_force(X, T, w, Xq, 9), rtol=1e-12)


def test_integer_weights_equal_duplicates_when_k_covers_them() -> None:
    # with k = all events, an integer weight and that many copies are the same average
    rng = np.random.default_rng(10)
    X = rng.normal(size=(30, 2))
    t = rng.normal(size=30)
    counts = rng.integers(1, 4, 30)
    Xq = rng.normal(size=(10, 2))
    a = KNN({"k": 30}, "regression").fit(X, t, counts.astype(float)).predict(Xq)
    b = KNN({"k": int(counts.sum())}, "regression").fit(
        np.repeat(X, counts, 0), np.repeat(t, counts), np.ones(counts.sum())).predict(Xq)
    np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_state_roundtrip(task: str, tmp_path: Path) -> None:
    X, y = two_gaussians(200, seed=11)
    target = y if task == "classification" else X[:, 0] * 2
    params = {"k": 12}
    m = KNN(params, task).fit(X, target, np.random.default_rng(1).uniform(0.5, 1.5, len(X)))
    m2 = roundtrip(m, params, task, tmp_path)
    Xq = np.random.default_rng(12).normal(size=(100, 2))
    np.testing.assert_array_equal(m2.predict(Xq), m.predict(Xq))


def test_predict_before_fit_raises() -> None:
    with pytest.raises(NotFittedError):
        KNN({}, "classification").predict(np.zeros((3, 2)))


def three_classes(n: int, seed: int, d: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """``n`` events of each of three Gaussian classes with centres on a circle of radius 2."""
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(3) / 3
    centres = np.zeros((3, d))
    centres[:, 0], centres[:, 1] = 2 * np.cos(angles), 2 * np.sin(angles)
    y = np.repeat(np.arange(3), n)
    return centres[y] + rng.normal(size=(3 * n, d)), y


def test_multiclass_fractions_are_brute_force_weighted_neighbour_counts() -> None:
    X, y = three_classes(80, seed=13, d=3)
    w = np.random.default_rng(14).uniform(0.2, 3.0, len(X))
    Xq = np.random.default_rng(15).normal(size=(60, 3)) * 2
    m = KNN({"k": 9, "block_size": 16}, "multiclass", n_classes=3).fit(X, y, w)
    p = m.predict(Xq)
    assert p.shape == (60, 3) and p.dtype == np.float64
    for c in range(3):
        np.testing.assert_allclose(p[:, c], brute_force(X, (y == c).astype(float), w, Xq, 9),
                                   rtol=1e-12)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-12)
    # unit weights: the fractions are neighbour counts over k
    u = KNN({"k": 9}, "multiclass", n_classes=3).fit(X, y, np.ones(len(X))).predict(Xq)
    np.testing.assert_allclose(u * 9, np.round(u * 9), atol=1e-12)


def test_multiclass_separates_three_gaussians() -> None:
    X, y = three_classes(400, seed=16)
    Xt, yt = three_classes(400, seed=17)
    p = KNN({"k": 25}, "multiclass", n_classes=3).fit(X, y, np.ones(len(X))).predict(Xt)
    assert np.mean(p.argmax(1) == yt) > 0.8


def test_multiclass_weightless_neighbours_give_uniform_and_empty_classes_zero() -> None:
    X = np.array([[0.0], [0.1], [5.0], [5.1], [5.2]])
    y = np.array([0, 1, 0, 1, 1])
    m = KNN({"k": 2}, "multiclass", n_classes=4).fit(X, y, np.array([0.0, 0.0, 1.0, 3.0, 1.0]))
    np.testing.assert_allclose(m.predict(np.array([[0.05], [5.05]])),
                               [[0.25] * 4, [0.25, 0.75, 0.0, 0.0]])
    # a class's negative neighbour weight counts as 0, so the rows stay probabilities
    m = KNN({"k": 3}, "multiclass", n_classes=3).fit(X, y, np.array([1, 1, -1.0, 2.0, 1.0]))
    np.testing.assert_allclose(m.predict(np.array([[5.1]])), [[0.0, 1.0, 0.0]])
    assert KNN({}, "multiclass", n_classes=3).fit(X, y, np.ones(5)).predict(
        np.empty((0, 1))).shape == (0, 3)


def test_multiclass_state_roundtrip(tmp_path: Path) -> None:
    X, y = three_classes(60, seed=18)
    params = {"k": 7}
    m = KNN(params, "multiclass", n_classes=3).fit(X, y, np.ones(len(X)))
    meta = m.state()[0]
    assert meta["n_classes"] == 3
    m2 = roundtrip(m, params, "multiclass", tmp_path)
    Xq = np.random.default_rng(19).normal(size=(40, 2))
    assert m2.n_classes == 3
    np.testing.assert_array_equal(m2.predict(Xq), m.predict(Xq))
