"""The contract every registered method keeps, for every task (binary, 3-class, regression).

Each entry of :data:`mva.methods.METHODS` refuses to predict before training, survives the
storage round trip unchanged, returns the documented shapes (``(n,)``, ``(n, K)`` probabilities,
``(n, n_targets)``), honours event weights and learns a separable toy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import roundtrip
from sklearn.metrics import roc_auc_score

from mva.errors import NotFittedError
from mva.methods import METHODS, method_class

#: small, fast parameters per method type (every registry entry needs one)
FAST_PARAMS: dict[str, dict] = {
    "knn": {"k": 15},
    # 20 trees: fixed depth and leaf minimum, not the defaults for the sample (which regularise
    # a few hundred events more than 20 trees can learn through)
    "bdt": {"n_estimators": 20, "max_depth": 3, "min_child_weight": 1, "n_jobs": 1},
    "svm": {"max_train_events": 500},
    "mlp": {"epochs": 5, "hidden_layers": [16], "learning_rate": 0.01, "batch_size": 32,
            "early_stopping": False, "device": "cpu", "n_jobs": 1},
    "linear": {},
}
TASKS = ("classification", "multiclass", "regression")
K = 3
N_TARGETS = 2


def test_every_registered_method_has_fast_params() -> None:
    assert set(FAST_PARAMS) == set(METHODS)


def toy(task: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated toy data for a task: ``n`` events per class (binary, multiclass) or
    ``3 n`` events with two smooth targets (regression), in three features."""
    rng = np.random.default_rng(seed)
    if task == "regression":
        X = rng.normal(size=(3 * n, 3))
        T = np.c_[X[:, 0] + 0.5 * X[:, 1], np.tanh(X[:, 2])] + rng.normal(0, 0.1, (3 * n, 2))
        return X, T
    n_cls = K if task == "multiclass" else 2
    angles = 2 * np.pi * np.arange(n_cls) / n_cls
    centres = np.zeros((n_cls, 3))
    centres[:, 0], centres[:, 1] = 2.5 * np.cos(angles), 2.5 * np.sin(angles)
    y = np.repeat(np.arange(n_cls), n)
    if task == "classification":
        y = 1 - y      # class 1 (signal) is the first centre
    return centres[np.repeat(np.arange(n_cls), n)] + rng.normal(size=(n_cls * n, 3)), y


def make(kind: str, task: str, seed: int = 0):
    cls = method_class(kind)
    params = FAST_PARAMS[kind]
    cls.check_task(task, cls.Params(**params))
    return cls(params, task, seed=seed, n_classes=K if task == "multiclass" else 2)


def check_output(pred: np.ndarray, task: str, n: int) -> None:
    assert pred.dtype == np.float64
    assert np.all(np.isfinite(pred))
    if task == "classification":
        assert pred.shape == (n,)
    elif task == "multiclass":
        assert pred.shape == (n, K)
        assert np.all((pred >= 0) & (pred <= 1))
        np.testing.assert_allclose(pred.sum(axis=1), 1.0, rtol=1e-9)
    else:
        assert pred.shape == (n, N_TARGETS)


parametrise = pytest.mark.parametrize(("kind", "task"),
                                      [(k, t) for k in FAST_PARAMS for t in TASKS])


@parametrise
def test_refuses_to_predict_before_fit(kind: str, task: str) -> None:
    m = make(kind, task)
    with pytest.raises(NotFittedError):
        m.predict(np.zeros((3, 3)))
    with pytest.raises(NotFittedError):
        m.predict_with_sigma(np.zeros((3, 3)))


@parametrise
def test_shapes_and_storage_roundtrip(kind: str, task: str, tmp_path: Path) -> None:
    X, y = toy(task, 150, seed=1)
    w = np.random.default_rng(2).uniform(0.5, 1.5, len(X))
    m = make(kind, task).fit(X, y, w)
    Xq = toy(task, 40, seed=3)[0]
    pred, sigma = m.predict_with_sigma(Xq)
    check_output(pred, task, len(Xq))
    if sigma is not None:
        assert sigma.shape == pred.shape and np.all(sigma >= 0)
    np.testing.assert_array_equal(m.predict(Xq), pred)
    m2 = roundtrip(m, FAST_PARAMS[kind], task, tmp_path, n_classes=m.n_classes)
    np.testing.assert_array_equal(m2.predict(Xq), pred)
    pred2, sigma2 = m2.predict_with_sigma(Xq)
    np.testing.assert_array_equal(pred2, pred)
    assert (sigma2 is None) == (sigma is None)
    if sigma is not None:
        np.testing.assert_array_equal(sigma2, sigma)


@parametrise
def test_fit_predictions_are_predictions(kind: str, task: str) -> None:
    """A method that hands out the predictions of its training events from the fit (instead
    of a second prediction) hands out exactly what predicting them gives."""
    X, y = toy(task, 150, seed=4)
    m = make(kind, task).fit(X, y, np.ones(len(X)))
    parts = m.take_fit_predictions()
    if parts is not None:
        (pred, sigma), = parts
        ref, ref_sigma = m.predict_with_sigma(X)
        np.testing.assert_array_equal(pred, ref)
        assert (sigma is None) == (ref_sigma is None)
    assert m.take_fit_predictions() is None


@parametrise
def test_no_events_in_no_events_out(kind: str, task: str) -> None:
    X, y = toy(task, 50, seed=14)
    m = make(kind, task).fit(X, y, np.ones(len(X)))
    check_output(m.predict(X[:0]), task, 0)


@pytest.mark.parametrize("kind", list(FAST_PARAMS))
def test_multiclass_weights_are_honoured(kind: str) -> None:
    # zero weight on class 0: it loses most of its predicted probability
    X, y = toy("multiclass", 150, seed=4)
    Xq, yq = toy("multiclass", 100, seed=5)
    base = make(kind, "multiclass").fit(X, y, np.ones(len(X))).predict(Xq)
    zero = make(kind, "multiclass").fit(X, y, np.where(y == 0, 0.0, 1.0)).predict(Xq)
    check_output(zero, "multiclass", len(Xq))
    assert zero[:, 0].mean() < 0.5 * base[:, 0].mean()
    assert zero[yq == 0, 0].mean() < 0.5 * base[yq == 0, 0].mean()


@pytest.mark.parametrize("kind", list(FAST_PARAMS))
def test_binary_weights_are_honoured(kind: str) -> None:
    # zero weight on the signal events with x1 > 0: there the signal score drops
    X, y = toy("classification", 200, seed=6)
    Xq, yq = toy("classification", 200, seed=7)
    region = (yq == 1) & (Xq[:, 1] > 0.5)
    base = make(kind, "classification").fit(X, y, np.ones(len(X))).predict(Xq)
    w = np.where((y == 1) & (X[:, 1] > 0), 0.0, 1.0)
    less = make(kind, "classification").fit(X, y, w).predict(Xq)
    check_output(less, "classification", len(Xq))
    assert less[region].mean() < base[region].mean() - 0.1 * base.std()


@pytest.mark.parametrize("kind", list(FAST_PARAMS))
def test_learns_separable_toys(kind: str) -> None:
    X, y = toy("multiclass", 200, seed=8)
    Xt, yt = toy("multiclass", 200, seed=9)
    p = make(kind, "multiclass").fit(X, y, np.ones(len(X))).predict(Xt)
    # chance is 1/3 and log 3 = 1.10
    assert np.mean(p.argmax(axis=1) == yt) > 0.85
    assert -np.mean(np.log(np.clip(p[np.arange(len(yt)), yt], 1e-12, None))) < 0.6
    X, y = toy("classification", 200, seed=10)
    Xt, yt = toy("classification", 200, seed=11)
    s = make(kind, "classification").fit(X, y, np.ones(len(X))).predict(Xt)
    assert roc_auc_score(yt, s) > 0.9
    X, T = toy("regression", 200, seed=12)
    Xt, Tt = toy("regression", 200, seed=13)
    pred = make(kind, "regression").fit(X, T, np.ones(len(X))).predict(Xt)
    # every target explains most of its variance better than its mean does
    assert np.all(np.mean((pred - Tt) ** 2, axis=0) < 0.5 * Tt.var(axis=0))


@pytest.mark.parametrize("kind", list(FAST_PARAMS))
def test_declared_libraries_are_what_the_fit_imports(kind: str) -> None:
    """``Method.libraries`` (imported ahead while the inputs are read) names modules that the
    fit imports and importing the method's module does not; importing them brings in every
    heavy library that the fit imports."""
    import json
    import subprocess
    import sys

    script = f"""
import importlib, json, sys
import numpy as np
from mva.methods import method_class
HEAVY = ("xgboost", "torch", "sklearn", "faiss", "scipy")
cls = method_class({kind!r})
before = [lib for lib in cls.libraries if lib in sys.modules]
heavy_before = {{h for h in HEAVY if h in sys.modules}}
if sys.argv[1] == "fit":
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(300, 3)), (rng.random(300) < 0.5).astype(int)
    cls(json.loads({json.dumps(json.dumps(FAST_PARAMS[kind]))}), "classification").fit(
        X, y, np.ones(300))
else:
    for lib in cls.libraries:
        importlib.import_module(lib)
print(json.dumps({{"declared": list(cls.libraries), "before": before,
                  "after": [lib for lib in cls.libraries if lib in sys.modules],
                  "heavy": sorted(h for h in HEAVY if h in sys.modules and h not in heavy_before)
                  }}))
"""

    def run(mode: str) -> dict:
        out = subprocess.run([sys.executable, "-c", script, mode], capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])

    fit, ahead = run("fit"), run("import")
    assert fit["before"] == []
    assert fit["after"] == fit["declared"]
    assert set(fit["heavy"]) <= set(ahead["heavy"])


def test_import_ahead_imports_the_libraries_in_a_thread() -> None:
    import subprocess
    import sys

    script = """
import sys
from mva.methods import import_ahead
assert "xgboost" not in sys.modules
t = import_ahead(["bdt"])
assert t.name == "mva-import-ahead" and t.daemon
t.join()
assert "xgboost" in sys.modules
assert import_ahead([]) is None
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
