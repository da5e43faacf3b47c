"""``mva export --check``: run the exported models on the run's test events and compare.

The events are the run's ``TestTree`` (``output.root``): its feature branches, fed as float32
(the type the graph takes), and the scores ``mva`` wrote there for every method (for a k-fold
run each fold model gets the events of its fold, whose TestTree scores it made). ONNX models run
in onnxruntime, xgboost JSON models in xgboost; the largest absolute difference over all of a
model's output branches (relative to the value where it exceeds 1, see :func:`max_diff`) is
recorded on its :class:`~mva.export.ExportedModel`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from mva.errors import InputError

__all__ = ["check_models", "read_test_events", "max_diff", "onnx_predict", "xgboost_predict"]

log = logging.getLogger(__name__)

#: float64 values of the largest intermediate per evaluation block (the kNN distance tensor)
_BLOCK_VALUES = 20_000_000


def read_test_events(run_dir: Path, branches: list[str], max_events: int | None = None
                     ) -> dict[str, np.ndarray]:
    """``branches`` of the run's TestTree (the first ``max_events`` entries)."""
    import uproot

    path = Path(run_dir) / "output.root"
    if not path.is_file():
        raise InputError(f"{path}: missing: --check compares with the run's TestTree")
    with uproot.open(path) as f:
        if "TestTree" not in f:
            raise InputError(f"{path}: no TestTree (--check compares with its scores)")
        tree = f["TestTree"]
        missing = [b for b in branches if b not in tree.keys()]
        if missing:
            raise InputError(f"{path}:TestTree: no branch {missing[0]!r} (needed by --check)")
        return tree.arrays(branches, library="np", entry_stop=max_events)


def max_diff(got: np.ndarray, expected: np.ndarray) -> float:
    """The largest ``|got - expected| / max(1, |expected|)``: the absolute difference for values
    up to 1 (every score and probability), the relative one beyond (float32 holds 7 digits: a
    regression prediction of 1000 is exact to 6e-5 only). inf where one value is NaN and the
    other not; 0 for no events."""
    a, b = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if a.size == 0:
        return 0.0
    d = np.abs(a - b) / np.maximum(1.0, np.abs(b))
    d = np.where(np.isnan(a) & np.isnan(b), 0.0, d)
    return float(np.max(np.where(np.isnan(d), np.inf, d)))


def _block_size(per_event: int) -> int:
    return max(1, min(65536, _BLOCK_VALUES // max(per_event, 1)))


def onnx_predict(path: Path, X: np.ndarray, per_event: int = 1
                 ) -> dict[str, np.ndarray]:
    """The outputs of the ONNX model at ``path`` for the float32 features ``X``, by name,
    evaluated in blocks (``per_event``: intermediate values per event, to size them)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # warnings would break one-line errors
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    X = np.ascontiguousarray(X, dtype=np.float32)
    step = _block_size(per_event)
    for s in range(0, len(X), step):
        for n, v in zip(names, session.run(names, {"features": X[s:s + step]})):
            parts[n].append(v)
    return {n: np.concatenate(v) if v else np.empty(0, np.float32) for n, v in parts.items()}


def xgboost_predict(path: Path, X: np.ndarray) -> np.ndarray:
    """What xgboost predicts with the JSON model at ``path`` for the float32 features ``X``."""
    from mva.methods._xgb import xgb

    booster = xgb.Booster(model_file=str(path))
    if len(X) == 0:
        return np.empty(0, np.float32)
    return np.asarray(booster.inplace_predict(np.ascontiguousarray(X, dtype=np.float32)))


def _per_event(unit: Any) -> int:
    """Intermediate float64 values per event of a model (the kNN's distances to every training
    event in every feature; the SVM's kernel row)."""
    model = unit.trained.model
    if unit.type == "knn":
        return int(np.asarray(model.X_).size)
    if unit.type == "svm":
        return int(np.asarray(model.sv_).size)
    return 1


def _columns(task: Any, name: str, pred: np.ndarray, sigma: np.ndarray | None
             ) -> dict[str, np.ndarray]:
    """The TestTree branches of one method's predictions (the task names them)."""
    return task.method_columns(name, pred, sigma)


def _as_prediction(task: Any, width: int, fmt: str, out: dict[str, np.ndarray]
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """The exported model's outputs as mva's (prediction, sigma)."""
    if fmt == "xgboost-json":
        pred = out["predict"]
        if task.name == "classification":
            return pred.reshape(-1), None
        return pred.reshape(len(pred), width), None
    if task.name == "classification":
        return out["score"], None
    if task.name == "multiclass":
        return out["probabilities"], None
    return out["prediction"], out.get("sigma")


def check_models(run: Any, units: list[Any], models: list[Any], directory: Path, fmt: str,
                 max_events: int | None = None) -> None:
    """Evaluate every exported model of ``directory`` on the TestTree events and record on
    each of ``models`` the number of events compared and the largest difference."""
    task = run.task
    width = run.width
    # the branch names of every model's outputs (from dummy predictions of the right shape)
    dummy = np.zeros((1, width)) if task.name != "classification" else np.zeros(1)
    wanted: dict[str, list[str]] = {}
    for unit, m in zip(units, models):
        sigma = dummy if "sigma" in m.outputs else None
        wanted[unit.name] = list(_columns(task, unit.name, dummy, sigma))
    folded = any(u.fold is not None for u in units)
    branches = list(dict.fromkeys(run.feature_branches
                                  + [b for names in wanted.values() for b in names]
                                  + (["fold"] if folded else [])))
    events = read_test_events(run.path, branches, max_events)
    X = np.column_stack([events[b] for b in run.feature_branches]).astype(np.float32)
    for unit, m in zip(units, models):
        rows = (np.flatnonzero(events["fold"] == unit.fold) if unit.fold is not None
                else np.arange(len(X)))
        path = directory / m.file
        if fmt == "onnx":
            out = onnx_predict(path, X[rows], _per_event(unit))
        else:
            out = {"predict": xgboost_predict(path, X[rows])}
        pred, sigma = _as_prediction(task, width, fmt, out)
        got = _columns(task, unit.name, pred, sigma)
        m.n_checked = len(rows)
        m.max_diff = max((max_diff(got[b], events[b][rows]) for b in wanted[unit.name]),
                         default=0.0)
        log.info("checked %s on %d test events: max |diff| %.2e", m.file, len(rows), m.max_diff)
