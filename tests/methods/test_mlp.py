"""MLP (torch): separation, reproducibility, history and early stopping, every activation and
optimizer, weights, regression with point and likelihood losses, and storage without pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import roundtrip, three_gaussians, two_gaussians
from sklearn.metrics import log_loss, roc_auc_score

from mva.errors import InputError, NotFittedError
from mva.methods.mlp import MLP, MLPParams

SMALL = {"hidden_layers": [16, 16], "epochs": 15, "early_stopping": False, "batch_size": 128,
         "learning_rate": 0.01, "device": "cpu"}




def parabola(n: int, seed: int, sigma: float):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, (n, 2))
    return X, X[:, 0] ** 2 + rng.normal(0, sigma, n)




@pytest.fixture(scope="module")
def gauss():
    X, y = two_gaussians(600, seed=0)
    Xt, yt = two_gaussians(600, seed=1)
    return X, y, Xt, yt


def test_separates_two_gaussians(gauss) -> None:
    X, y, Xt, yt = gauss
    m = MLP(SMALL, "classification").fit(X, y, np.ones(len(X)))
    s = m.predict(Xt)
    assert s.shape == (len(Xt),) and np.all((s > 0) & (s < 1))
    assert roc_auc_score(yt, s) > 0.85
    assert m.predict_with_sigma(Xt)[1] is None


def test_same_seed_same_model_other_seed_other_model(gauss) -> None:
    X, y, Xt, _ = gauss
    params = {**SMALL, "epochs": 3, "dropout": 0.2}
    a = MLP(params, "classification", seed=5).fit(X, y, np.ones(len(X))).predict(Xt)
    b = MLP(params, "classification", seed=5).fit(X, y, np.ones(len(X))).predict(Xt)
    c = MLP(params, "classification", seed=6).fit(X, y, np.ones(len(X))).predict(Xt)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-4


def test_history_and_early_stopping_restore_the_best_epoch() -> None:
    # few events, a wide net and a large step: the validation loss soon rises again
    X, y = two_gaussians(100, seed=2, shift=0.8)
    Xv, yv = two_gaussians(300, seed=3, shift=0.8)
    params = {**SMALL, "hidden_layers": [128, 128], "epochs": 300, "early_stopping": True,
              "patience": 5, "learning_rate": 0.03, "batch_size": 32, "ensemble": 1}
    m = MLP(params, "classification").fit(X, y, np.ones(len(X)),
                                          validation=(Xv, yv, np.ones(len(Xv))))
    assert m.wants_validation() == MLPParams().validation_fraction
    h = m.history_
    assert set(h) == {"train", "validation"} and len(h["train"]) == len(h["validation"])
    assert len(h["train"]) < 300
    assert any("early stopping" in n for n in m.notes_)
    best = int(np.argmin(h["validation"]))
    assert len(h["validation"]) == best + 1 + 5
    # the kept network is the best epoch's: its validation log-loss is the recorded minimum
    assert log_loss(yv, m.predict(Xv)) == pytest.approx(min(h["validation"]), rel=1e-4)


def test_monitor_is_recorded_but_does_not_stop(gauss) -> None:
    X, y, Xt, yt = gauss
    params = {**SMALL, "epochs": 6, "early_stopping": True, "patience": 1}
    m = MLP(params, "classification").fit(X, y, np.ones(len(X)), monitor=(Xt, yt, np.ones(len(Xt))))
    assert set(m.history_) == {"train", "test"}
    assert len(m.history_["train"]) == len(m.history_["test"]) == 6
    assert m.history_["test"][-1] == pytest.approx(log_loss(yt, m.predict(Xt)), rel=1e-4)


def test_validation_without_early_stopping_runs_every_epoch(gauss) -> None:
    X, y, Xt, yt = gauss
    params = {**SMALL, "epochs": 6, "early_stopping": False, "patience": 1}
    m = MLP(params, "classification").fit(X, y, np.ones(len(X)),
                                          validation=(Xt, yt, np.ones(len(Xt))))
    assert m.wants_validation() == 0.0
    assert len(m.history_["train"]) == len(m.history_["validation"]) == 6
    # the last epoch's network is kept, not the best one
    assert m.history_["validation"][-1] == pytest.approx(log_loss(yt, m.predict(Xt)), rel=1e-4)


@pytest.mark.parametrize(
    ("activation", "optimizer"),
    [(a, "adam") for a in ("relu", "sigmoid", "tanh", "leaky_relu", "elu")]
    + [("relu", "sgd"), ("tanh", "momentum")],
)
def test_every_activation_and_optimizer_trains(gauss, activation: str, optimizer: str) -> None:
    X, y, Xt, yt = gauss
    lr = 0.01 if optimizer == "adam" else 0.1
    params = {**SMALL, "epochs": 8, "activation": activation, "optimizer": optimizer,
              "learning_rate": lr, "lr_decay": 0.95, "l2": 1e-4}
    m = MLP(params, "classification").fit(X, y, np.ones(len(X)))
    assert m.history_["train"][-1] < m.history_["train"][0]
    assert roc_auc_score(yt, m.predict(Xt)) > 0.85


def test_weights_move_the_score_the_expected_way(gauss) -> None:
    X, y, Xt, _ = gauss
    params = {**SMALL, "epochs": 10}
    base = MLP(params, "classification").fit(X, y, np.ones(len(X))).predict(Xt)
    heavy = MLP(params, "classification").fit(X, y, np.where(y == 1, 4.0, 1.0)).predict(Xt)
    # 4x heavier signal: the odds rise about 4-fold everywhere, never fall
    assert np.mean(heavy > base) > 0.95
    odds = np.log(heavy / (1 - heavy)) - np.log(base / (1 - base))
    assert 0.7 < np.median(odds) < 2.1          # log(4) = 1.39
    # an overall factor on the weights changes nothing (the loss is normalised by their sum)
    scaled = MLP(params, "classification").fit(X, y, 3.0 * np.ones(len(X))).predict(Xt)
    np.testing.assert_allclose(scaled, base, atol=1e-5)


@pytest.mark.parametrize("loss", [None, "absolute_error", "huber", "gaussian",
                                  "double_crystal_ball"])
def test_regression_fits_a_parabola(loss: str | None) -> None:
    X, t = parabola(1000, seed=4, sigma=0.1)
    Xt, _ = parabola(500, seed=5, sigma=0.1)
    params = {**SMALL, "epochs": 30, "loss": loss, "learning_rate": 0.02}
    m = MLP(params, "regression").fit(X, t, np.ones(len(X)))
    pred, sigma = m.predict_with_sigma(Xt)
    assert pred.shape == (500, 1)
    rms = np.sqrt(np.mean((pred[:, 0] - Xt[:, 0] ** 2) ** 2))
    assert rms < 0.2 * np.std(t)
    assert (sigma is None) == (loss not in ("gaussian", "double_crystal_ball"))


def test_gaussian_loss_predicts_the_noise_width() -> None:
    # the target is in units far from 1 (standardised inside): the width comes back in them
    X, t = parabola(1500, seed=6, sigma=0.5)
    scale = 100.0
    params = {**SMALL, "epochs": 30, "loss": "gaussian"}
    m = MLP(params, "regression").fit(X, scale * t, np.ones(len(X)))
    Xt, _ = parabola(400, seed=7, sigma=0.5)
    pred, sigma = m.predict_with_sigma(Xt)
    assert sigma.shape == (400, 1) and np.all(sigma > 0)
    assert np.median(sigma) == pytest.approx(0.5 * scale, rel=0.2)
    assert np.sqrt(np.mean((pred[:, 0] - scale * Xt[:, 0] ** 2) ** 2)) < 0.3 * scale


def test_two_targets_with_gaussian_widths() -> None:
    X, t = parabola(1000, seed=8, sigma=0.1)
    T = np.c_[t, 2 * X[:, 1] + np.random.default_rng(9).normal(0, 0.4, len(X))]
    params = {**SMALL, "epochs": 20, "loss": "gaussian", "learning_rate": 0.02}
    m = MLP(params, "regression").fit(X, T, np.ones(len(X)))
    pred, sigma = m.predict_with_sigma(X)
    assert pred.shape == sigma.shape == (1000, 2)
    # each target gets its own width: the second is the noisier one
    assert np.median(sigma[:, 1]) > 2 * np.median(sigma[:, 0])


def test_check_task_rejects_mismatched_losses() -> None:
    with pytest.raises(ValueError, match="regression"):
        MLP.check_task("classification", MLPParams(loss="gaussian"))
    with pytest.raises(ValueError, match="classification"):
        MLP.check_task("regression", MLPParams(loss="binary_crossentropy"))
    MLP.check_task("regression", MLPParams(loss="huber"))


@pytest.mark.parametrize(("task", "loss"), [("classification", None), ("regression", "gaussian"),
                                            ("regression", "double_crystal_ball")])
def test_state_roundtrip(task: str, loss: str | None, tmp_path: Path) -> None:
    X, y = two_gaussians(200, seed=10)
    target = y if task == "classification" else np.c_[X[:, 0] ** 2, X[:, 1]]
    params = {**SMALL, "epochs": 2, "loss": loss, "dropout": 0.1, "activation": "elu"}
    m = MLP(params, task).fit(X, target, np.ones(len(X)))
    m2 = roundtrip(m, params, task, tmp_path)
    Xq = np.random.default_rng(11).normal(size=(100, 2))
    a, b = m.predict_with_sigma(Xq), m2.predict_with_sigma(Xq)
    np.testing.assert_array_equal(a[0], b[0])
    if a[1] is not None:
        np.testing.assert_array_equal(a[1], b[1])


def test_predict_before_fit_raises() -> None:
    with pytest.raises(NotFittedError):
        MLP({}, "classification").predict(np.zeros((3, 2)))


# multiclass: n_classes logits, softmax and weighted cross-entropy

@pytest.fixture(scope="module")
def three():
    X, y = three_gaussians(300, seed=20)
    Xt, yt = three_gaussians(300, seed=21)
    return X, y, Xt, yt


def test_multiclass_separates_three_gaussians(three) -> None:
    X, y, Xt, yt = three
    wt = np.random.default_rng(22).uniform(0.2, 3.0, len(Xt))
    params = {**SMALL, "epochs": 10}
    m = MLP(params, "multiclass", n_classes=3).fit(X, y, np.ones(len(X)), monitor=(Xt, yt, wt))
    assert m.loss_name == "categorical_crossentropy" and m.n_outputs_ == 3
    p, sigma = m.predict_with_sigma(Xt)
    assert sigma is None
    assert p.shape == (len(Xt), 3) and p.dtype == np.float64
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert np.all((p > 0) & (p < 1))
    assert np.mean(p.argmax(axis=1) == yt) > 0.7          # chance is 1/3
    assert set(m.history_) == {"train", "test"}
    assert len(m.history_["train"]) == len(m.history_["test"]) == 10
    assert m.history_["train"][-1] < m.history_["train"][0] < 1.2 * np.log(3)
    # the monitored loss is the weighted cross-entropy of the final network
    assert m.history_["test"][-1] == pytest.approx(log_loss(yt, p, sample_weight=wt), rel=1e-4)


def test_multiclass_early_stopping_restores_the_best_epoch() -> None:
    # few events, a wide net and a large step: the validation loss soon rises again
    X, y = three_gaussians(40, seed=23, radius=0.8)
    Xv, yv = three_gaussians(150, seed=24, radius=0.8)
    wv = np.random.default_rng(25).uniform(0.5, 1.5, len(Xv))
    params = {**SMALL, "hidden_layers": [128, 128], "epochs": 300, "early_stopping": True,
              "patience": 5, "learning_rate": 0.03, "batch_size": 32, "ensemble": 1}
    m = MLP(params, "multiclass", n_classes=3).fit(X, y, np.ones(len(X)),
                                                   validation=(Xv, yv, wv))
    h = m.history_
    assert set(h) == {"train", "validation"} and len(h["train"]) == len(h["validation"]) < 300
    assert any("early stopping" in n for n in m.notes_)
    assert len(h["validation"]) == int(np.argmin(h["validation"])) + 1 + 5
    # the kept network is the best epoch's: its weighted validation loss is the minimum
    assert log_loss(yv, m.predict(Xv), sample_weight=wv) == pytest.approx(
        min(h["validation"]), rel=1e-4)


def test_multiclass_weights_move_the_probabilities_the_expected_way(three) -> None:
    X, y, Xt, _ = three
    params = {**SMALL, "epochs": 10}
    base = MLP(params, "multiclass", n_classes=3).fit(X, y, np.ones(len(X))).predict(Xt)
    heavy = MLP(params, "multiclass", n_classes=3).fit(
        X, y, np.where(y == 2, 4.0, 1.0)).predict(Xt)
    # class 2 four times heavier: its odds against each other class rise about 4-fold
    assert np.mean(heavy[:, 2] > base[:, 2]) > 0.95
    for other in (0, 1):
        shift = np.log(heavy[:, 2] / heavy[:, other]) - np.log(base[:, 2] / base[:, other])
        assert 0.7 < np.median(shift) < 2.1         # log(4) = 1.39
    # an overall factor on the weights changes nothing (the loss is normalised by their sum)
    scaled = MLP(params, "multiclass", n_classes=3).fit(X, y, 3.0 * np.ones(len(X))).predict(Xt)
    np.testing.assert_allclose(scaled, base, atol=1e-5)


def test_check_task_multiclass_losses() -> None:
    MLP.check_task("multiclass", MLPParams())
    MLP.check_task("multiclass", MLPParams(loss="categorical_crossentropy"))
    for loss in ("gaussian", "huber", "squared_error"):
        with pytest.raises(ValueError, match="is for regression; multiclass uses categorical"):
            MLP.check_task("multiclass", MLPParams(loss=loss))
    with pytest.raises(ValueError, match="binary classification; multiclass uses categorical"):
        MLP.check_task("multiclass", MLPParams(loss="binary_crossentropy"))
    with pytest.raises(ValueError, match="is for multiclass; classification uses binary"):
        MLP.check_task("classification", MLPParams(loss="categorical_crossentropy"))
    with pytest.raises(ValueError, match="is for multiclass"):
        MLP.check_task("regression", MLPParams(loss="categorical_crossentropy"))


def test_multiclass_state_roundtrip(three, tmp_path: Path) -> None:
    X, y, _, _ = three
    params = {**SMALL, "epochs": 2, "dropout": 0.1, "activation": "elu"}
    m = MLP(params, "multiclass", n_classes=3).fit(X, y, np.ones(len(X)))
    assert m.state()[0]["n_classes"] == 3
    m2 = roundtrip(m, params, "multiclass", tmp_path, n_classes=3)
    Xq = np.random.default_rng(26).normal(size=(100, 2))
    np.testing.assert_array_equal(m2.predict(Xq), m.predict(Xq))
    with pytest.raises(InputError, match="3 classes"):
        roundtrip(m, params, "multiclass", tmp_path, n_classes=4)


def test_multiclass_refuses_labels_out_of_range_and_predict_before_fit() -> None:
    X, y = three_gaussians(20, seed=27)
    with pytest.raises(ValueError, match="class indices 0 .. 1"):
        MLP(SMALL, "multiclass", n_classes=2).fit(X, y, np.ones(len(X)))
    with pytest.raises(NotFittedError):
        MLP({}, "multiclass", n_classes=3).predict(np.zeros((3, 2)))


def test_default_ensemble_of_small_samples(tmp_path: Path) -> None:
    """Below 20k events with early stopping a classifier is five networks, each trained on all
    parts of the training and validation events but one and stopped on that one; its score is
    the logistic function of the networks' mean logit, and it is stored and reloaded as such.
    Regression stays one network and refuses an ensemble."""
    import torch

    from mva.split import random_parts

    X, y = two_gaussians(300, seed=4, shift=1.0)
    Xv, yv = two_gaussians(75, seed=5, shift=1.0)
    Xt, _ = two_gaussians(200, seed=6, shift=1.0)
    params = {"hidden_layers": [8], "epochs": 40, "patience": 3, "device": "cpu", "n_jobs": 1}
    m = MLP(params, "classification", seed=3).fit(X, y, np.ones(len(X)),
                                                  validation=(Xv, yv, np.ones(len(Xv))))
    assert m.n_networks == MLP.ENSEMBLE_MEMBERS == 5
    assert m.training_events_ == len(X) + len(Xv)
    assert any(n.startswith("default ensemble of 5 networks") for n in m.notes_)
    with torch.no_grad():
        logits = torch.stack([net(torch.as_tensor(Xt, dtype=torch.float32))[:, 0]
                              for net in m.net_.members]).double()
    np.testing.assert_allclose(m.predict(Xt), torch.sigmoid(logits.mean(0)).numpy(), rtol=1e-5)
    # the networks differ (other events, other seeds)
    assert np.abs(logits[0] - logits[1]).max() > 1e-3
    again = roundtrip(m, params, "classification", tmp_path)
    assert again.n_networks == 5
    np.testing.assert_array_equal(again.predict(Xt), m.predict(Xt))
    single = MLP({**params, "ensemble": 1}, "classification", seed=3).fit(
        X, y, np.ones(len(X)), validation=(Xv, yv, np.ones(len(Xv))))
    assert single.n_networks == 1 and single.training_events_ == len(X)
    assert MLP(params, "classification").members(MLP.ENSEMBLE_EVENTS) == 1
    assert MLP({**params, "early_stopping": False}, "classification").members(100) == 1
    assert MLP(params, "multiclass", n_classes=3).members(100) == 5
    assert MLP(params, "regression").members(100) == 1
    with pytest.raises(ValueError, match="ensemble is for classification"):
        MLP.check_task("regression", MLPParams(ensemble=3))
    # each class spread evenly over the parts
    labels = np.r_[np.zeros(103), np.ones(47)]
    part = random_parts(labels, len(labels), 5, 1, [("b", 0), ("s", 1)], rotate=True)
    for c in (0, 1):
        counts = np.bincount(part[labels == c], minlength=5)
        assert counts.max() - counts.min() <= 1
