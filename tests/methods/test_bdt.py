"""BDT (xgboost): separation, weights (negative ones included), per-tree history, early stopping
on a validation set, regression losses, feature importance and storage as UBJSON."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import roundtrip, three_gaussians, two_gaussians
from sklearn.metrics import log_loss, roc_auc_score

from mva.errors import InputError, NotFittedError
from mva.methods.bdt import BDT

FAST = {"n_estimators": 60, "max_depth": 3, "n_jobs": 1}






def test_separates_two_gaussians_with_per_tree_history() -> None:
    X, y = two_gaussians(800, seed=0)
    Xt, yt = two_gaussians(800, seed=1)
    m = BDT(FAST, "classification").fit(X, y, np.ones(len(X)), monitor=(Xt, yt, np.ones(len(Xt))))
    s = m.predict(Xt)
    assert s.shape == (len(Xt),) and np.all((s > 0) & (s < 1))
    assert roc_auc_score(yt, s) > 0.85
    # one history entry per tree, for the training and the monitored sample
    assert set(m.history_) == {"train", "test"}
    assert len(m.history_["train"]) == len(m.history_["test"]) == 60 == m.n_trees_
    # the recorded loss is the weighted log-loss of the final model on that sample
    assert m.history_["test"][-1] == pytest.approx(log_loss(yt, s), rel=1e-4)
    assert m.history_["train"][-1] < m.history_["train"][0]
    # early stopping is on by default, so a validation split is requested (none was given
    # here: all 60 trees were grown); switched off, none is requested
    assert m.wants_validation() == 0.2
    assert BDT({**FAST, "early_stopping": False}, "classification").wants_validation() == 0.0


def test_early_stopping_on_the_validation_set() -> None:
    X, y = two_gaussians(300, seed=2, shift=1.0)
    Xv, yv = two_gaussians(300, seed=3, shift=1.0)
    params = {"n_estimators": 400, "max_depth": 6, "learning_rate": 0.5,
              "early_stopping_rounds": 5, "validation_fraction": 0.25, "n_jobs": 1}
    m = BDT(params, "classification").fit(X, y, np.ones(len(X)),
                                          validation=(Xv, yv, np.ones(len(Xv))))
    assert m.wants_validation() == 0.25
    val = np.array(m.history_["validation"])
    assert m.n_trees_ < 400 and len(val) == m.n_trees_
    # the best iteration is the validation minimum, and training went 5 rounds past it
    assert m.best_iteration_ == int(np.argmin(val)) + 1
    assert m.n_trees_ == m.best_iteration_ + 5
    assert any("early stopping" in n for n in m.notes_)
    # predictions use the best trees only: the validation loss of the model is the minimum
    assert log_loss(yv, m.predict(Xv)) == pytest.approx(val.min(), rel=1e-4)


def test_weights_move_the_score_the_expected_way() -> None:
    X, y = two_gaussians(600, seed=4)
    Xq = np.random.default_rng(5).normal(size=(400, 2))
    base = BDT(FAST, "classification").fit(X, y, np.ones(len(X))).predict(Xq)
    region = Xq[:, 1] > 0.5
    # background up-weighted where x1 > 0.5: the scores drop there, far less elsewhere
    w = np.where((y == 0) & (X[:, 1] > 0.5), 5.0, 1.0)
    down = BDT(FAST, "classification").fit(X, y, w).predict(Xq)
    assert np.mean(down[region] < base[region]) > 0.9
    assert (base - down)[region].mean() > 3 * abs((base - down)[Xq[:, 1] < 0].mean())


def test_negative_weights_are_accepted() -> None:
    X, y = two_gaussians(400, seed=6)
    w = np.ones(len(X))
    w[::10] = -0.5          # NLO-like negative weights: xgboost itself refuses them
    m = BDT(FAST, "classification").fit(X, y, w, monitor=(X, y, w))
    assert any("negative weight" in n for n in m.notes_)
    assert roc_auc_score(y, m.predict(X)) > 0.85
    # set to zero: the same model as without those events
    keep = w > 0
    ref = BDT({**FAST, "subsample": 1.0}, "classification").fit(X[keep], y[keep], w[keep])
    m1 = BDT({**FAST, "subsample": 1.0}, "classification").fit(X, y, w)
    np.testing.assert_allclose(m1.predict(X), ref.predict(X), rtol=1e-6)


@pytest.mark.parametrize("loss", ["squared_error", "absolute_error", "huber"])
def test_regression_fits_a_parabola(loss: str) -> None:
    rng = np.random.default_rng(7)
    X = rng.uniform(-2, 2, (2000, 2))
    t = X[:, 0] ** 2 + rng.normal(0, 0.1, len(X))
    Xt = rng.uniform(-1.8, 1.8, (500, 2))
    params = {**FAST, "n_estimators": 150, "loss": loss, "learning_rate": 0.3}
    m = BDT(params, "regression").fit(X, t, np.ones(len(X)))
    pred = m.predict(Xt)
    assert pred.shape == (500, 1)
    rms = np.sqrt(np.mean((pred[:, 0] - Xt[:, 0] ** 2) ** 2))
    assert rms < 0.2 * np.std(t)


@pytest.mark.parametrize("n_targets", [1, 2])
def test_huber_starts_from_the_weighted_median(n_targets: int) -> None:
    # xgboost 3.2's own intercept for reg:pseudohubererror is ~1e4 on a target of ~20, and with
    # gradients bounded by the slope the trees never got back: the prediction was a constant
    import json

    from mva.evaluation.regression import weighted_median

    rng = np.random.default_rng(40)
    X = rng.uniform(0, 3, (2000, 2))
    truth = np.c_[20 + X[:, 0] ** 2, -50 + 2 * X[:, 1]][:, :n_targets]
    T = truth + rng.normal(0, 0.3, truth.shape)
    w = rng.uniform(0.5, 1.5, len(X))
    m = BDT({**FAST, "n_estimators": 300, "loss": "huber"}, "regression").fit(X, T, w)
    rms = np.sqrt(np.average((m.predict(X) - truth) ** 2, axis=0, weights=w))
    assert np.all(rms < 0.1 * T.std(axis=0)), rms
    config = json.loads(m.booster_.save_config())
    base = config["learner"]["learner_model_param"]["base_score"].strip("[]").split(",")
    np.testing.assert_allclose([float(b) for b in base],
                               [weighted_median(T[:, j], w) for j in range(n_targets)],
                               rtol=1e-6)


def test_two_targets() -> None:
    rng = np.random.default_rng(8)
    X = rng.uniform(-2, 2, (1000, 2))
    T = np.c_[X[:, 0] ** 2, 3 * X[:, 1]]
    m = BDT({**FAST, "n_estimators": 100}, "regression").fit(X, T, np.ones(len(X)))
    pred = m.predict(X)
    assert pred.shape == (1000, 2)
    assert np.all(np.sqrt(np.mean((pred - T) ** 2, axis=0)) < 0.2 * T.std(axis=0))


def test_feature_importance_finds_the_informative_feature() -> None:
    rng = np.random.default_rng(9)
    X, y = two_gaussians(500, seed=10, d=1)
    X = np.c_[rng.normal(size=len(X)), X, rng.normal(size=len(X))]
    m = BDT(FAST, "classification").fit(X, y, np.ones(len(X)))
    imp = m.feature_importance(3)
    assert imp.sum() == pytest.approx(1.0) and np.argmax(imp) == 1 and imp[1] > 0.5


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_state_roundtrip(task: str, tmp_path: Path) -> None:
    X, y = two_gaussians(300, seed=11)
    Xv, yv = two_gaussians(300, seed=12)
    params = {**FAST, "early_stopping_rounds": 3, "learning_rate": 0.5, "max_depth": 6}
    target, vtarget = (y, yv) if task == "classification" else (X[:, :1] ** 2, Xv[:, :1] ** 2)
    m = BDT(params, task).fit(X, target, np.ones(len(X)),
                              validation=(Xv, vtarget, np.ones(len(Xv))))
    m2 = roundtrip(m, params, task, tmp_path)
    assert m2.best_iteration_ == m.best_iteration_
    Xq = np.random.default_rng(13).normal(size=(100, 2))
    np.testing.assert_array_equal(m2.predict(Xq), m.predict(Xq))


def test_predict_before_fit_raises() -> None:
    with pytest.raises(NotFittedError):
        BDT({}, "classification").predict(np.zeros((3, 2)))


@pytest.mark.parametrize("task,loss", [("classification", None), ("regression", "squared_error"),
                                       ("regression", "absolute_error"), ("regression", "huber")])
def test_loss_curves_match_xgboost_own_evaluation(task, loss):
    """The per-tree loss curves, computed after training from leaf values, equal xgboost's
    per-iteration evaluation of the same samples."""
    import xgboost as xgb

    rng = np.random.default_rng(11)
    n = 4000
    X = rng.normal(size=(n, 4))
    w = rng.uniform(0.5, 1.5, n)
    w /= w.mean()  # the BDT scales the weights to mean 1 (min_child_weight in events)
    if task == "classification":
        y = (rng.random(n) < 0.5).astype(float)
        X[:, 0] += y
        params = {"n_estimators": 25}
    else:
        y = X[:, 0] ** 2 + rng.normal(scale=0.2, size=n)
        params = {"n_estimators": 25, "loss": loss}
    Xt, yt, wt = X[::-1].copy(), y[::-1].copy(), np.ones(n)
    model = BDT(params, task, seed=3).fit(X, y, w, monitor=(Xt, yt, wt))
    result: dict = {}
    xgb.train(model._booster_params(1, n),
              xgb.QuantileDMatrix(X, label=y if task == "classification" else y[:, None],
                                  weight=w, max_bin=256),
              25, evals=[(xgb.DMatrix(X, label=y, weight=w), "train"),
                         (xgb.DMatrix(Xt, label=yt, weight=wt), "test")],
              evals_result=result, verbose_eval=False)
    for part in ("train", "test"):
        expected = next(iter(result[part].values()))
        np.testing.assert_allclose(model.history_[part], expected, rtol=1e-5, atol=1e-7)


# multiclass: multi:softprob, one tree per class and round

def test_multiclass_separates_three_gaussians_with_per_round_history() -> None:
    X, y = three_gaussians(400, seed=20)
    Xt, yt = three_gaussians(400, seed=21)
    rng = np.random.default_rng(22)
    w, wt = rng.uniform(0.5, 1.5, len(X)), rng.uniform(0.5, 1.5, len(Xt))
    m = BDT(FAST, "multiclass", n_classes=3).fit(X, y, w, monitor=(Xt, yt, wt))
    p = m.predict(Xt)
    assert p.shape == (len(Xt), 3) and p.dtype == np.float64
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert np.all((p > 0) & (p < 1))
    assert np.mean(p.argmax(axis=1) == yt) > 0.7          # chance is 1/3
    assert m.predict_with_sigma(Xt)[1] is None
    # one entry per boosting round (3 trees each), for the training and the monitored sample
    assert set(m.history_) == {"train", "test"}
    assert len(m.history_["train"]) == len(m.history_["test"]) == 60 == m.n_trees_
    assert len(m.booster_.get_dump()) == 3 * 60
    # the recorded losses are the weighted log-losses of the final model on those samples
    assert m.history_["test"][-1] == pytest.approx(log_loss(yt, p, sample_weight=wt), rel=1e-4)
    assert m.history_["train"][-1] == pytest.approx(
        log_loss(y, m.predict(X), sample_weight=w), rel=1e-4)
    assert m.history_["train"][-1] < m.history_["train"][0]
    # the first round starts near the uniform guess: log(3)
    assert m.history_["train"][0] == pytest.approx(np.log(3), rel=0.1)


def test_multiclass_loss_curves_match_xgboost_own_evaluation() -> None:
    """Every round's staged loss (leaf values, tree t belongs to class t % 3, per-class base
    margin) equals xgboost's per-iteration mlogloss of the same samples."""
    import xgboost as xgb

    X, y = three_gaussians(700, seed=23, d=3)
    rng = np.random.default_rng(24)
    w = rng.uniform(0.5, 1.5, len(X))
    w /= w.mean()  # the BDT scales the weights to mean 1 (min_child_weight in events)
    Xt, yt = three_gaussians(300, seed=25, d=3)
    wt = rng.uniform(0.2, 3.0, len(Xt))
    params = {"n_estimators": 20, "max_depth": 3, "n_jobs": 1}
    model = BDT(params, "multiclass", seed=3, n_classes=3).fit(X, y, w, monitor=(Xt, yt, wt))
    result: dict = {}
    xgb.train(model._booster_params(1, len(X)),
              xgb.QuantileDMatrix(X, label=y, weight=w, max_bin=256), 20,
              evals=[(xgb.DMatrix(X, label=y, weight=w), "train"),
                     (xgb.DMatrix(Xt, label=yt, weight=wt), "test")],
              evals_result=result, verbose_eval=False)
    for part in ("train", "test"):
        np.testing.assert_allclose(model.history_[part], result[part]["mlogloss"],
                                   rtol=1e-5, atol=1e-7)


def test_multiclass_early_stopping_on_the_validation_set() -> None:
    X, y = three_gaussians(200, seed=26, radius=0.8)
    Xv, yv = three_gaussians(200, seed=27, radius=0.8)
    wv = np.random.default_rng(28).uniform(0.5, 1.5, len(Xv))
    params = {"n_estimators": 300, "max_depth": 6, "learning_rate": 0.5,
              "early_stopping_rounds": 5, "n_jobs": 1}
    m = BDT(params, "multiclass", n_classes=3).fit(X, y, np.ones(len(X)),
                                                   validation=(Xv, yv, wv))
    val = np.array(m.history_["validation"])
    assert set(m.history_) == {"train", "validation"}
    assert m.n_trees_ < 300 and len(val) == len(m.history_["train"]) == m.n_trees_
    assert m.best_iteration_ == int(np.argmin(val)) + 1
    assert m.n_trees_ == m.best_iteration_ + 5
    assert any("early stopping" in n for n in m.notes_)
    # predictions use the best rounds only: their weighted validation loss is the minimum
    assert log_loss(yv, m.predict(Xv), sample_weight=wv) == pytest.approx(val.min(), rel=1e-4)


def test_multiclass_weights_move_the_probabilities_the_expected_way() -> None:
    X, y = three_gaussians(400, seed=29)
    Xq, _ = three_gaussians(200, seed=30)
    params = {**FAST, "subsample": 1.0}
    base = BDT(params, "multiclass", n_classes=3).fit(X, y, np.ones(len(X))).predict(Xq)
    # class 2 four times heavier: its predicted share rises nearly everywhere
    heavy = BDT(params, "multiclass", n_classes=3).fit(
        X, y, np.where(y == 2, 4.0, 1.0)).predict(Xq)
    assert np.mean(heavy[:, 2] > base[:, 2]) > 0.9
    assert heavy[:, 2].mean() > base[:, 2].mean() + 0.05
    assert np.mean(heavy.argmax(axis=1) == 2) > np.mean(base.argmax(axis=1) == 2)


def test_multiclass_negative_weights_are_set_to_zero() -> None:
    X, y = three_gaussians(300, seed=31)
    w = np.ones(len(X))
    w[::7] = -0.5
    params = {**FAST, "subsample": 1.0}
    m = BDT(params, "multiclass", n_classes=3).fit(X, y, w, monitor=(X, y, w))
    assert any("negative weight" in n for n in m.notes_)
    assert np.all(np.isfinite(m.history_["test"]))
    keep = w > 0
    ref = BDT(params, "multiclass", n_classes=3).fit(X[keep], y[keep], w[keep])
    np.testing.assert_allclose(m.predict(X), ref.predict(X), rtol=1e-6)


def test_multiclass_feature_importance_finds_the_informative_features() -> None:
    X, y = three_gaussians(400, seed=32, d=3)
    m = BDT(FAST, "multiclass", n_classes=3).fit(X, y, np.ones(len(X)))
    imp = m.feature_importance(3)
    assert imp.sum() == pytest.approx(1.0) and imp[2] < 0.1 and min(imp[:2]) > 0.3


def test_multiclass_state_roundtrip(tmp_path: Path) -> None:
    X, y = three_gaussians(200, seed=33)
    Xv, yv = three_gaussians(200, seed=34)
    params = {**FAST, "early_stopping_rounds": 3, "learning_rate": 0.5, "max_depth": 6}
    m = BDT(params, "multiclass", n_classes=3).fit(X, y, np.ones(len(X)),
                                                   validation=(Xv, yv, np.ones(len(Xv))))
    assert m.state()[0]["n_classes"] == 3
    m2 = roundtrip(m, params, "multiclass", tmp_path, n_classes=3)
    assert m2.best_iteration_ == m.best_iteration_ < m.n_trees_
    Xq = np.random.default_rng(35).normal(size=(100, 2))
    np.testing.assert_array_equal(m2.predict(Xq), m.predict(Xq))
    with pytest.raises(InputError, match="3 classes"):
        roundtrip(m, params, "multiclass", tmp_path, n_classes=4)


def test_multiclass_refuses_labels_out_of_range_and_predict_before_fit() -> None:
    X, y = three_gaussians(50, seed=36)
    with pytest.raises(ValueError, match="class indices 0 .. 1"):
        BDT(FAST, "multiclass", n_classes=2).fit(X, y, np.ones(len(X)))
    with pytest.raises(NotFittedError):
        BDT({}, "multiclass", n_classes=3).predict(np.zeros((3, 2)))


@pytest.mark.parametrize("user", [None, "ACTIVE"])
def test_xgboost_openmp_threads_sleep_when_idle_unless_the_user_says(user) -> None:
    """xgboost's OpenMP runtime loads with the passive wait policy (no spinning between
    regions: the plot workers get the idle cycles) and the environment is restored; a user's
    OMP_WAIT_POLICY is kept, and torch's runtime loads with its own default."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env["OMP_DISPLAY_ENV"] = "VERBOSE"
    if user:
        env["OMP_WAIT_POLICY"] = user
    script = ("import os, sys\n"
              "import mva.methods._xgb\n"
              "print('AFTER', os.environ.get('OMP_WAIT_POLICY'), file=sys.stderr, flush=True)\n"
              "import torch\n"
              "torch.ones(3) + 1\n")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    before, _, after = out.stderr.partition("AFTER")
    spin = [line.split("=")[1].strip(" '") for line in before.splitlines()
            if "GOMP_SPINCOUNT" in line]
    if user is None:
        assert spin == ["0"]
    else:
        assert len(spin) == 1 and spin[0] != "0"
    assert after.split()[0] == str(user)
    torch_spin = [line for line in after.splitlines() if "GOMP_SPINCOUNT" in line]
    assert len(torch_spin) == 1 and "'0'" not in torch_spin[0]


def _awkward_inputs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 inputs with ties (small integers) and missing values, and a weight of each sign."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    X[:, 1] = rng.integers(0, 5, n)
    X[rng.random(n) < 0.05, 2] = np.nan
    return X, rng.uniform(-0.2, 1.5, n)


@pytest.mark.parametrize("task", ["classification", "multiclass", "regression"])
@pytest.mark.parametrize("validation", [False, True])
def test_fit_predictions_are_the_model_predictions(task: str, validation: bool) -> None:
    """The training and validation events' scores that the fit hands out (xgboost's
    prediction caches) are what predicting those events gives, bit for bit."""
    X, w = _awkward_inputs(6000, seed=3)
    y = {"classification": (X[:, 0] + X[:, 1] > 2).astype(np.int8),
         "multiclass": (X[:, 1] % 3).astype(np.int64),
         "regression": (2 * X[:, 0] + X[:, 1])[:, None]}[task]
    fit, val = np.arange(0, len(X), 2), np.arange(1, len(X), 2)
    m = BDT({**FAST, "early_stopping": validation}, task, n_classes=3)
    m.fit(X[fit], y[fit], w[fit], validation=(X[val], y[val], w[val]) if validation else None)
    assert m.best_iteration_ == m.n_trees_ == 60   # no early stop: every tree counts
    parts = m.take_fit_predictions()
    assert len(parts) == (2 if validation else 1)
    for (pred, sigma), rows in zip(parts, [fit, val], strict=False):
        assert sigma is None
        assert pred.dtype == np.float64
        np.testing.assert_array_equal(pred, m.predict(X[rows]))
    assert m.take_fit_predictions() is None   # handed out once


def test_no_fit_predictions_when_early_stopping_drops_trees() -> None:
    X, y = two_gaussians(300, seed=2, shift=1.0)
    Xv, yv = two_gaussians(300, seed=3, shift=1.0)
    params = {"n_estimators": 400, "max_depth": 6, "learning_rate": 0.5,
              "early_stopping_rounds": 5, "n_jobs": 1}
    m = BDT(params, "classification").fit(X, y, np.ones(len(X)),
                                          validation=(Xv, yv, np.ones(len(Xv))))
    assert m.best_iteration_ < m.n_trees_
    # the caches hold the sum over every tree; the model predicts with the best ones
    assert m.take_fit_predictions() is None


@pytest.mark.parametrize("early_stopping", [False, True])
def test_training_scores_of_a_run_come_from_the_fit(early_stopping: bool, monkeypatch) -> None:
    """``_fit_method`` takes the training scores from the fit (no second prediction of the
    training events) and puts them in event order, validation events included."""
    from mva.config import parse_config
    from mva.io.events import Events
    from mva.methods.bdt import BDT as Bdt
    from mva.training import _fit_method

    X, w = _awkward_inputs(4000, seed=5)
    y = (X[:, 0] + X[:, 1] > 2).astype(np.int8)
    names = [f"x{j}" for j in range(5)]
    cfg = parse_config({"task": "classification",
                        "data": {"signal": {"files": ["s.root"], "tree": "t"},
                                 "background": {"files": ["b.root"], "tree": "t"},
                                 "features": names},
                        "methods": {"bdt": {"type": "bdt", **FAST,
                                            "early_stopping": early_stopping}}})
    tr = Events(features=X[:3000], weights=w[:3000], feature_names=names, labels=y[:3000])
    te = Events(features=X[3000:], weights=w[3000:], feature_names=names, labels=y[3000:])
    predicted_rows = []
    original = Bdt._predict
    monkeypatch.setattr(Bdt, "_predict",
                        lambda self, Z: predicted_rows.append(len(Z)) or original(self, Z))
    res = _fit_method(cfg, cfg.task_, cfg.methods["bdt"], tr, te, np.abs(tr.weights), None)
    assert predicted_rows == [len(te)]   # the test events only
    np.testing.assert_array_equal(res.pred_train, res.trained.model.predict(tr.features))
