"""Defaults that adapt to the training sample (issue 10): fast versions of the checks of
``benchmarks/bench_defaults.py``, and a value given by the user always winning over them.

The methods are fitted as ``mva train`` fits them: class weights normalised, preprocessing
fitted on the training events, early stopping on a validation split of the training events.
"""

from __future__ import annotations

import numpy as np
import pytest

from mva.evaluation.classification import ks_2samp_weighted, roc_auc
from mva.methods import adaptive
from mva.methods.bdt import BDT
from mva.methods.knn import KNN
from mva.methods.linear import Linear
from mva.methods.mlp import MLP
from mva.methods.svm import SVM
from mva.preprocessing import Pipeline
from mva.split import training_weights, validation_split
from mva.toys import classification_toy, regression_truth


def _tmva(n_train: int, n_test: int, seed: int):
    """The TMVA-style toy (four correlated Gaussians, weighted background), as arrays."""
    sig, bkg = classification_toy(n_train + n_test, n_train + n_test, seed=seed)

    def part(sl: slice):
        X = np.vstack([np.column_stack([d[f"var{i}"][sl] for i in range(1, 5)])
                       for d in (sig, bkg)])
        n = len(X) // 2
        return X, np.r_[np.ones(n), np.zeros(n)].astype(np.int8), np.r_[sig["weight"][sl],
                                                                         bkg["weight"][sl]]
    return part(slice(0, n_train)), part(slice(n_train, None))


def _fit_as_mva_train(model, X, y, w, groups=True):
    """Fit ``model`` as ``mva train`` does: its validation split from the training events."""
    fraction = model.wants_validation()
    if fraction > 0:
        fit, val = validation_split(y if groups else None, len(X), fraction, model.seed)
        return model.fit(X[fit], y[fit], w[fit], validation=(X[val], y[val], w[val]))
    return model.fit(X, y, w)


def _ks(model, train, test) -> float:
    (X, y, w), (Xt, yt, wt) = train, test
    s, st = model.predict(Xt), model.predict(X)
    return min(ks_2samp_weighted(st[y == c], s[yt == c], w[y == c], wt[yt == c])[1]
               for c in (0, 1))


@pytest.fixture(scope="module")
def tmva_1k():
    train, test = _tmva(1000, 10000, seed=2)
    X, y, w = train
    return (X, y, training_weights(y, w, "equal", "keep")), train, test


def test_default_bdt_does_not_overtrain_a_small_sample(tmva_1k) -> None:
    (X, y, w_norm), train, test = tmva_1k
    Xt, yt, wt = test
    bdt = _fit_as_mva_train(BDT({"n_jobs": 1}, "classification", seed=7), X, y, w_norm)
    fisher = Linear({}, "classification").fit(X, y, w_norm)
    assert _ks(bdt, train, test) > 0.01
    assert roc_auc(bdt.predict(Xt), yt, wt) >= roc_auc(fisher.predict(Xt), yt, wt)
    # what the defaults chose is in the notes, and early stopping ended before the bound
    assert any(n.startswith("defaults for 1600 training events: max_depth 2") for n in bdt.notes_)
    assert bdt.best_iteration_ < bdt.params.n_estimators
    # the former defaults (500 trees of depth 3, no early stopping) overtrain the same sample
    old = BDT({"n_estimators": 500, "max_depth": 3, "min_child_weight": 1, "subsample": 0.8,
               "early_stopping": False, "n_jobs": 1}, "classification", seed=7)
    old = _fit_as_mva_train(old, X, y, w_norm)
    assert _ks(old, train, test) < 0.01


def test_bdt_adaptive_values_follow_the_sample_and_given_values_win() -> None:
    assert adaptive.bdt_max_depth(2000) == 2 and adaptive.bdt_max_depth(50_000) == 3
    assert adaptive.bdt_max_depth(2000, "regression") == 3
    assert adaptive.bdt_min_child_weight(1600) == pytest.approx(10.0)
    assert adaptive.bdt_min_child_weight(10) == 1.0
    # ten classes: an event's hessian in one class's tree is ~0.09, not 0.25
    assert adaptive.bdt_min_child_weight(1600, n_classes=10) == pytest.approx(3.6)
    assert adaptive.early_stopping_rounds(0.1) == 50 and adaptive.early_stopping_rounds(0.5) == 20
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 2))
    y = (X[:, 0] + rng.normal(size=400) > 0).astype(np.int8)
    given = {"max_depth": 5, "min_child_weight": 0.5, "early_stopping_rounds": 7,
             "n_estimators": 30, "n_jobs": 1}
    m = BDT(given, "classification").fit(X, y, np.ones(400))
    p = m._booster_params(1, 400)
    assert (p["max_depth"], p["min_child_weight"]) == (5, 0.5)
    assert m.resolved_["early_stopping_rounds"] == 7
    assert not any(n.startswith("defaults for") for n in m.notes_)
    auto = BDT({"n_estimators": 30, "n_jobs": 1}, "classification").fit(X, y, np.ones(400))
    assert auto._booster_params(1, 400)["max_depth"] == 2
    # the weights are scaled to mean 1: min_child_weight counts events whatever their scale
    scaled = BDT({"n_estimators": 30, "n_jobs": 1}, "classification").fit(X, y,
                                                                         1e-4 * np.ones(400))
    np.testing.assert_allclose(scaled.predict(X), auto.predict(X), rtol=1e-6)


def _parabola(n: int, noise: float, seed: int):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 5, (n, 2))
    truth = regression_truth(X[:, 0], X[:, 1])
    return X, truth + rng.normal(0, noise, n), truth


@pytest.fixture(scope="module")
def smooth_low_noise():
    """The parabola of ``mva example regression`` with noise 0.05 (0.3 % of its range)."""
    X, y, _ = _parabola(3000, 0.05, seed=4)
    Xt, yt, truth = _parabola(4000, 0.05, seed=5)
    pipe = Pipeline(["standardize"]).fit(X, np.ones(len(X)))
    floor = np.std(yt - truth)
    return pipe.transform(X), y, pipe.transform(Xt), yt, floor


def _ratio(model, data) -> float:
    X, y, Xt, yt, floor = data
    return float(np.std(model.predict(Xt)[:, 0] - yt) / floor)


def test_default_svr_is_near_the_noise_floor_of_a_smooth_target(smooth_low_noise) -> None:
    X, y, *_ = smooth_low_noise
    m = SVM({}, "regression", seed=1).fit(X, y, np.ones(len(X)))
    assert _ratio(m, smooth_low_noise) < 1.3
    note = next(n for n in m.notes_ if n.startswith("default epsilon"))
    assert "C = 3" in note
    # the former epsilon, 0.1 of the target's spread, is far above the noise (0.013 of it)
    old = SVM({"epsilon": 0.1, "C": 1.0}, "regression", seed=1).fit(X, y, np.ones(len(X)))
    assert _ratio(old, smooth_low_noise) > 2


def test_noise_estimate_follows_the_noise_not_the_spread() -> None:
    for noise in (0.05, 0.5):
        X, y, _ = _parabola(4000, noise, seed=6)
        sigma = adaptive.noise_sigma((X - 2.5) / 1.44, y[:, None], np.ones(len(X)), seed=0)
        assert sigma[0] == pytest.approx(noise, rel=0.1)
    # a noise with tails (a fifth of the events 20 times wider): the width of its core
    X, y, truth = _parabola(4000, 0.05, seed=9)
    tail = np.random.default_rng(10).random(4000) < 0.2
    y = np.where(tail, truth + np.random.default_rng(11).normal(0, 1.0, 4000), y)
    core = adaptive.noise_sigma(X, y, np.ones(4000))[0]
    assert 0.04 < core < 0.2 < np.std(y - truth) / 2   # plain rms-based: about 0.45
    # weights enter: events of weight 0 do not count (here the noisy half)
    X, y, _ = _parabola(4000, 0.05, seed=7)
    noisy = np.arange(4000) % 2 == 0
    y = y + np.where(noisy, np.random.default_rng(8).normal(0, 1.0, 4000), 0.0)
    w = np.where(noisy, 0.0, 1.0)
    assert adaptive.noise_sigma(X, y, w)[0] < 0.2 < adaptive.noise_sigma(X, y, np.ones(4000))[0]


def test_given_epsilon_and_C_win(smooth_low_noise) -> None:
    X, y, *_ = smooth_low_noise
    m = SVM({"epsilon": 0.3, "C": 0.5}, "regression").fit(X[:500], y[:500], np.ones(500))
    assert not any(n.startswith("default epsilon") for n in m.notes_)
    # a tube of 0.3 spreads leaves fewer support vectors than the default's
    auto = SVM({}, "regression").fit(X[:500], y[:500], np.ones(500))
    assert len(m.sv_) < 0.5 * len(auto.sv_)


def test_default_knn_k_is_near_the_best_k_and_grows_with_the_sample(smooth_low_noise) -> None:
    X, y, Xt, yt, floor = smooth_low_noise
    m = KNN({}, "regression").fit(X, y, np.ones(len(X)))
    assert any(n.startswith(f"default k = {m.k_} ") for n in m.notes_)
    ratios = {k: _ratio(KNN({"k": k}, "regression").fit(X, y, np.ones(len(X))),
                        smooth_low_noise) for k in (1, 2, 3, 5, 8, 12, 20, 40)}
    assert _ratio(m, smooth_low_noise) <= 1.02 * min(ratios.values())
    assert _ratio(m, smooth_low_noise) < 3
    # classification: noisier labels and more events want more neighbours
    (Xc, yc, wc), _ = _tmva(3000, 0, seed=9)
    small = KNN({}, "classification").fit(Xc[::6], yc[::6], wc[::6]).k_
    large = KNN({}, "classification").fit(Xc, yc, wc).k_
    assert 5 < small < large
    # a given k wins
    assert KNN({"k": 7}, "classification").fit(Xc, yc, wc).k_ == 7


def test_leave_one_out_errors_match_brute_force() -> None:
    rng = np.random.default_rng(10)
    X = rng.normal(size=(60, 2))
    y = (rng.random(60) < 0.5).astype(float)
    w = rng.uniform(0.5, 1.5, 60)
    ks, err = adaptive.loo_errors(X, y, w, "classification", k_max=10)
    d = ((X[:, None] - X[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    order = np.argsort(d, axis=1)
    for k in (1, 4, 10):
        nb = order[:, :k]
        frac = (w[nb] * y[nb]).sum(1) / w[nb].sum(1)
        assert err[k - 1] == pytest.approx(np.average((frac - y) ** 2, weights=w), rel=1e-12)
    assert list(ks) == list(range(1, 11))


def test_default_mlp_converges_on_a_smooth_low_noise_target(smooth_low_noise) -> None:
    X, y, *_ = smooth_low_noise
    m = MLP({"device": "cpu", "n_jobs": 1}, "regression", seed=2)
    m = _fit_as_mva_train(m, X, y, np.ones(len(X)), groups=False)
    assert _ratio(m, smooth_low_noise) < 1.3
    # the plateau schedule lowered the learning rate before training stopped
    assert m._schedule == "plateau"
