"""The linear baseline (:mod:`mva.methods.linear`) as ONNX: one matrix product in float64, then
the logistic function (``method: logistic``) or the softmax (multiclass)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mva.export.onnx_model import Features

__all__ = ["to_onnx"]


def to_onnx(f: Features, model: Any, task: str) -> dict[str, str]:
    g = f.g
    out = g.add(g.op("MatMul", f.x, g.const(model.coef_)), g.const(np.asarray(model.intercept_)))
    if task == "multiclass":
        # a class without training weight has the offset -inf: probability 0
        return {"probabilities": g.softmax(out)}
    if task == "classification":
        score = g.column(out, 0)
        if model.params.method == "logistic":
            score = g.sigmoid(score)
        return {"score": score}
    return {"prediction": out}
