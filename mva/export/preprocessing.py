"""The input-variable transformations of :mod:`mva.preprocessing` as ONNX nodes (float64).

One function per transformation, registered by its name in :data:`TRANSFORM_EXPORTERS`; a
transformation without one cannot be exported (the contract test checks that every
transformation has one).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mva.export.onnx_graph import Graph, ndtri
from mva.preprocessing import _GAUSS_EPS, Pipeline, Transform

__all__ = ["TRANSFORM_EXPORTERS", "pipeline_to_onnx"]


def _affine(g: Graph, x: str, t: Transform) -> str:
    """``(x - offset) @ matrix`` or ``(x - offset) / scale``, as :class:`mva.preprocessing._Affine`."""
    centred = g.sub(x, g.const(t.offset))
    if t.matrix is not None:
        return g.op("MatMul", centred, g.const(t.matrix))
    return g.div(centred, g.const(t.scale))


def _cdf(g: Graph, x: str, t: Transform) -> str:
    """The per-feature piecewise-linear CDF of ``uniform`` (``np.interp`` over its knots).

    Every feature's knots are padded to a common length ``K`` (with ``+inf``, never crossed):
    the segment of ``x`` is the number of inner knots at or below it, and the value
    ``y[j] + slope[j] (x - x[j])`` with ``x`` clamped to the knots' range, so that values outside
    the training range get the end values, as with ``np.interp``."""
    d = t.n_features
    K = max(2, max(len(k) for k in t.knots_x))
    xs = np.full((d, K), np.inf)
    ys = np.zeros((d, K))
    slopes = np.zeros((d, K))
    lo, hi = np.zeros(d), np.zeros(d)
    last = np.zeros(d, dtype=np.int64)
    for j, (xk, yk) in enumerate(zip(t.knots_x, t.knots_y)):
        n = len(xk)
        xs[j, :n], ys[j, :n] = xk, yk
        lo[j], hi[j] = xk[0], xk[-1]
        if n > 1:
            slopes[j, :n - 1] = np.diff(yk) / np.diff(xk)
        # the last segment that starts at a knot (a single knot: segment 0, slope 0)
        last[j] = max(n - 2, 0)
    xc = g.op("Min", g.op("Max", x, g.const(lo)), g.const(hi))
    inner = g.const(xs[:, 1:])                                   # (d, K - 1)
    below = g.op("LessOrEqual", inner, g.op("Unsqueeze", xc, g.ints([2])))  # (N, d, K - 1)
    seg = g.op("ReduceSum", g.cast(below, "int64"), g.ints([2]), keepdims=0)  # int64
    seg = g.op("Min", seg, g.ints(last))
    flat = g.add(seg, g.ints(np.arange(d) * K))                  # index into (d * K,) tables
    x0 = g.op("Gather", g.const(np.where(np.isfinite(xs), xs, 0.0).ravel()), flat)
    y0 = g.op("Gather", g.const(ys.ravel()), flat)
    s0 = g.op("Gather", g.const(slopes.ravel()), flat)
    return g.add(y0, g.mul(s0, g.sub(xc, x0)))


def _uniform(g: Graph, x: str, t: Transform) -> str:
    return _cdf(g, x, t)


def _gauss(g: Graph, x: str, t: Transform) -> str:
    p = g.op("Min", g.op("Max", _cdf(g, x, t), g.const(_GAUSS_EPS)), g.const(1.0 - _GAUSS_EPS))
    return ndtri(g, p)


#: transformation name -> function adding its nodes: (graph, float64 input, fitted transform)
TRANSFORM_EXPORTERS: dict[str, Callable[[Graph, str, Transform], str]] = {
    "standardize": _affine,
    "minmax": _affine,
    "decorrelate": _affine,
    "pca": _affine,
    "uniform": _uniform,
    "gauss": _gauss,
}


def pipeline_to_onnx(g: Graph, x: str, pipeline: Pipeline) -> str:
    """The nodes of every step of ``pipeline``, in order, on the float64 tensor ``x``."""
    for step in pipeline.steps:
        x = TRANSFORM_EXPORTERS[step.name](g, x, step)
    return x
