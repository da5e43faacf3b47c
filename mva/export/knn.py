"""k nearest neighbours (:mod:`mva.methods.knn`) as ONNX: the training points are a constant,
``TopK`` finds the k nearest (squared Euclidean distance in float64, as the KD-tree's), and the
neighbours' weights give the score exactly as ``KNN._predict`` computes it.

Every evaluation computes the distance to every training event, so the graph grows with the
training sample and so does its cost per event: export is refused beyond
:data:`KNN_MAX_VALUES` stored values (training events x features).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mva.export.onnx_model import Features

__all__ = ["to_onnx", "KNN_MAX_VALUES", "knn_values"]

#: training events x features up to which a kNN is exported: 40 MB of float64 in the file,
#: and about 5 ms per event on one core (e.g. 500k training events with 10 features)
KNN_MAX_VALUES = 5_000_000


def knn_values(model: Any) -> int:
    """The number of stored training values (events x features) of a fitted kNN."""
    return int(np.asarray(model.X_).size)


def to_onnx(f: Features, model: Any, task: str) -> dict[str, str]:
    g = f.g
    X = np.asarray(model.X_, dtype=np.float64)
    w = np.asarray(model.w_, dtype=np.float64)
    diff = g.sub(g.op("Unsqueeze", f.x, g.ints([1])), g.const(X, hint="train_x"))  # (N, M, d)
    dist2 = g.op("ReduceSum", g.mul(diff, diff), g.ints([2]), keepdims=0)           # (N, M)
    _, idx = g.op("TopK", dist2, g.ints([model.k_]), n_out=2, largest=0, sorted=1)  # (N, k)

    def neighbour_sum(per_event: np.ndarray) -> str:
        """Sum over the k neighbours of a per-training-event quantity ((M,) or (M, C))."""
        return g.op("ReduceSum", g.op("Gather", g.const(per_event), idx), g.ints([1]),
                    keepdims=0)

    den = neighbour_sum(w)                                                          # (N,)
    if task == "classification":
        num = neighbour_sum(w * np.asarray(model.y_, dtype=np.float64))
        nonzero = g.op("Not", g.op("Equal", den, g.const(0.0)))
        safe = g.where(nonzero, den, g.const(1.0))
        return {"score": g.where(nonzero, g.div(num, safe), g.const(0.5))}
    if task == "multiclass":
        K = model.n_classes
        onehot = (np.asarray(model.y_)[:, None] == np.arange(K)[None, :])
        num = g.op("Max", neighbour_sum(np.where(onehot, w[:, None], 0.0)), g.const(0.0))
        total = g.op("ReduceSum", num, g.ints([1]), keepdims=1)                     # (N, 1)
        positive = g.op("Greater", total, g.const(0.0))
        safe = g.where(positive, total, g.const(1.0))
        return {"probabilities": g.where(positive, g.div(num, safe), g.const(1.0 / K))}
    T = np.asarray(model.y_, dtype=np.float64).reshape(len(X), -1)
    num = neighbour_sum(w[:, None] * T)                                             # (N, T)
    den = g.op("Unsqueeze", den, g.ints([1]))
    nonzero = g.op("Not", g.op("Equal", den, g.const(0.0)))
    safe = g.where(nonzero, den, g.const(1.0))
    # the plain mean of the neighbours' targets (np.mean: their sum over k)
    fallback = g.div(neighbour_sum(T), g.const(float(model.k_)))
    return {"prediction": g.where(nonzero, g.div(num, safe), fallback)}
