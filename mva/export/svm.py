"""The support vector machines (:mod:`mva.methods.svm`) as ONNX: the kernel expansion over the
stored support vectors in float64, ``K(x, sv) @ dual + intercept``, then per task what
``SVM._predict`` does (the decision value; the softmax of the one-vs-rest values over the
fitted temperature; the standardised target transformed back)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mva.export.onnx_graph import Graph
from mva.export.onnx_model import Features

__all__ = ["to_onnx"]


def _kernel(g: Graph, x: str, sv: np.ndarray, kernel: str, gamma: float, degree: int,
            coef0: float) -> str:
    """``mva.methods.svm.kernel_matrix(x, sv)``, term by term."""
    dot = g.op("MatMul", x, g.const(np.ascontiguousarray(sv.T)))
    if kernel == "linear":
        return dot
    if kernel == "poly":
        return g.op("Pow", g.add(g.mul(g.const(gamma), dot), g.const(coef0)),
                    g.const(float(degree)))
    x_sq = g.op("ReduceSum", g.mul(x, x), g.ints([1]), keepdims=1)          # (N, 1)
    sv_sq = g.const((sv * sv).sum(1)[None, :])                             # (1, S)
    sq = g.sub(g.add(x_sq, sv_sq), g.mul(g.const(2.0), dot))
    return g.op("Exp", g.mul(g.const(-gamma), g.op("Max", sq, g.const(0.0))))


def to_onnx(f: Features, model: Any, task: str) -> dict[str, str]:
    g, p = f.g, model.params
    K = _kernel(g, f.x, model.sv_, p.kernel, model.gamma_, p.degree, p.coef0)
    out = g.add(g.op("MatMul", K, g.const(model.dual_)), g.const(model.intercept_))
    if task == "classification":
        return {"score": g.column(out, 0)}
    if task == "multiclass":
        return {"probabilities": g.softmax(g.div(out, g.const(model.temperature_)))}
    return {"prediction": g.add(g.mul(out, g.const(model.y_scale_)), g.const(model.y_mean_))}
