"""The multi-layer perceptron (:mod:`mva.methods.mlp`) as ONNX, built from the stored weights:
``Gemm`` and activation nodes in float32 (as torch computes), then in float64 what
``MLP.predict_with_sigma`` does with the raw outputs: the logistic function, the softmax, or per
regression target the loss's prediction and width (:mod:`mva.methods.losses`: Gaussian
``sigma``; the double crystal ball's effective width ``sigma * dcb_sigma_eff`` by the same
60-step bisection, as a ``Loop``), transformed back from the standardised target.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mva.export.onnx_graph import Graph, erf, softplus
from mva.export.onnx_model import Features

__all__ = ["to_onnx", "UnsupportedLoss"]

#: mva.methods.losses constants (that module imports torch; the export does not need it)
SIGMA_FLOOR = 1e-4
DCB_ALPHA = (0.5, 5.0)
DCB_N = (1.01, 20.0)
_SQRT_HALF = math.sqrt(0.5)
_SQRT_HALF_PI = math.sqrt(0.5 * math.pi)
#: dcb_sigma_eff's defaults
DCB_FRACTION = 0.683
DCB_ITERATIONS = 60

_ACTIVATIONS = {
    "relu": ("Relu", {}),
    "sigmoid": ("Sigmoid", {}),
    "tanh": ("Tanh", {}),
    "leaky_relu": ("LeakyRelu", {"alpha": 0.01}),   # torch's default negative slope
    "elu": ("Elu", {"alpha": 1.0}),
}


class UnsupportedLoss(ValueError):
    """A regression loss whose prediction the exporter does not know."""


def _layers(arrays: dict[str, np.ndarray], prefix: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight, bias) of every ``nn.Linear`` of one network, in order (``state()``'s arrays
    under ``prefix``)."""
    idx = sorted({int(k[len(prefix):].split(".")[0]) for k in arrays if k.startswith(prefix)})
    return [(np.asarray(arrays[f"{prefix}{i}.weight"], dtype=np.float32),
             np.asarray(arrays[f"{prefix}{i}.bias"], dtype=np.float32)) for i in idx]


def _network(g: Graph, x: str, model: Any) -> str:
    """The raw network outputs, float32 ``(N, n_outputs)`` (an ensemble's: the mean over its
    networks, as torch sums and divides); dropout is the identity at inference."""
    act, attrs = _ACTIVATIONS[model.params.activation]
    meta, arrays, _ = model.state()
    k = int(meta.get("ensemble", 1))
    outs = []
    for prefix in ["param."] if k == 1 else [f"param.members.{m}." for m in range(k)]:
        layers, y = _layers(arrays, prefix), x
        for i, (weight, bias) in enumerate(layers):
            y = g.op("Gemm", y, g.const(weight, np.float32, "weight"),
                     g.const(bias, np.float32, "bias"), transB=1)
            if i < len(layers) - 1:
                y = g.op(act, y, **attrs)
        outs.append(y)
    return outs[0] if k == 1 else g.div(g.op("Sum", *outs), g.const(float(k), np.float32))


def _bounded(g: Graph, raw: str, low: float, high: float) -> str:
    return g.add(g.const(low), g.mul(g.const(high - low), g.sigmoid(raw)))


def _tail_mass_beyond(g: Graph, u: str | None, alpha: str, n: str) -> str:
    """``losses._tail_mass_beyond``: unnormalised tail mass beyond ``u`` (None: 0) past the
    join."""
    a2 = g.mul(g.mul(g.const(-0.5), alpha), alpha)
    mass = g.div(g.mul(g.op("Exp", a2), n), g.mul(alpha, g.sub(n, g.const(1.0))))
    if u is None:
        return mass
    log1p = g.op("Log", g.add(g.const(1.0), g.div(g.mul(alpha, u), n)))
    return g.mul(mass, g.op("Exp", g.mul(g.sub(g.const(1.0), n), log1p)))


def _side(g: Graph, log_h: str, alpha: str, n: str, erf_alpha: str, want: str) -> str:
    """``losses._side``: the distance from the mode (``want="t"``) or the unnormalised mass
    beyond it (``want="mass"``) where the standardised shape drops to ``exp(log_h)``."""
    half_a2 = g.mul(g.mul(g.const(0.5), alpha), alpha)
    in_core = g.op("GreaterOrEqual", log_h, g.op("Neg", half_a2))
    t_core = g.op("Sqrt", g.op("Max", g.mul(g.const(-2.0), log_h), g.const(0.0)))
    v = g.op("Max", g.div(g.op("Neg", g.add(log_h, half_a2)), n), g.const(0.0))
    u = g.mul(g.div(n, alpha), g.sub(g.op("Exp", v), g.const(1.0)))
    if want == "t":
        return g.where(in_core, t_core, g.add(alpha, u))
    # erf of t_core beyond 4 / sqrt(0.5) is clamped, but then the event is not in the core
    core = g.add(g.mul(g.const(_SQRT_HALF_PI),
                       g.sub(erf_alpha, erf(g, g.mul(t_core, g.const(_SQRT_HALF))))),
                 _tail_mass_beyond(g, None, alpha, n))
    return g.where(in_core, core, _tail_mass_beyond(g, u, alpha, n))


def _dcb_sigma_eff(g: Graph, a_l: str, n_l: str, a_r: str, n_r: str) -> str:
    """``losses.dcb_sigma_eff``: half-width, in units of sigma, of the smallest interval with
    68.3 % of the DCB, by bisection on the log density level (a ``Loop`` of 60 steps)."""
    from onnx import TensorProto, helper

    erf_l = erf(g, g.mul(a_l, g.const(_SQRT_HALF)))
    erf_r = erf(g, g.mul(a_r, g.const(_SQRT_HALF)))
    core = g.mul(g.const(_SQRT_HALF_PI), g.add(erf_l, erf_r))
    norm = g.add(g.add(core, _tail_mass_beyond(g, None, a_l, n_l)),
                 _tail_mass_beyond(g, None, a_r, n_r))
    total = g.op("Exp", g.op("Log", norm))
    zeros = g.mul(a_l, g.const(0.0))
    lo0 = g.add(zeros, g.const(-200.0))

    body = g.subgraph("bisection")
    it, cond, lo, hi = (body.fresh(s) for s in ("iter", "cond", "lo", "hi"))
    mid = body.mul(body.const(0.5), body.add(lo, hi))
    out_l = _side(body, mid, a_l, n_l, erf_l, "mass")
    out_r = _side(body, mid, a_r, n_r, erf_r, "mass")
    inside = body.div(body.sub(body.sub(total, out_l), out_r), total)
    wide = body.op("GreaterOrEqual", inside, body.const(DCB_FRACTION))
    lo_next, hi_next = body.where(wide, mid, lo), body.where(wide, hi, mid)
    cond_next = body.op("Identity", cond)
    dbl = TensorProto.DOUBLE
    proto = body.to_proto(
        [helper.make_tensor_value_info(it, TensorProto.INT64, []),
         helper.make_tensor_value_info(cond, TensorProto.BOOL, []),
         helper.make_tensor_value_info(lo, dbl, None),
         helper.make_tensor_value_info(hi, dbl, None)],
        [helper.make_tensor_value_info(cond_next, TensorProto.BOOL, []),
         helper.make_tensor_value_info(lo_next, dbl, None),
         helper.make_tensor_value_info(hi_next, dbl, None)])
    lo_end, _ = g.op("Loop", g.const(DCB_ITERATIONS, np.int64), g.const(True, np.bool_),
                     lo0, zeros, n_out=2, body=proto)
    t_l = _side(g, lo_end, a_l, n_l, erf_l, "t")
    t_r = _side(g, lo_end, a_r, n_r, erf_r, "t")
    return g.mul(g.const(0.5), g.add(t_l, t_r))


def _regression(g: Graph, raw: str, model: Any) -> dict[str, str]:
    """Prediction (and width) per target, from the raw outputs (float64)."""
    loss, k = model.loss_name, model.n_per_target_
    preds, sigmas = [], []
    for j in range(len(model.y_mean_)):
        col = [g.column(raw, j * k + i, keep=True) for i in range(k)]
        mu, width = col[0], None
        if loss == "gaussian":
            width = g.add(g.const(SIGMA_FLOOR), softplus(g, col[1]))
        elif loss == "double_crystal_ball":
            sigma = g.add(g.const(SIGMA_FLOOR), softplus(g, col[1]))
            scale = _dcb_sigma_eff(g, _bounded(g, col[2], *DCB_ALPHA), _bounded(g, col[3], *DCB_N),
                                   _bounded(g, col[4], *DCB_ALPHA), _bounded(g, col[5], *DCB_N))
            width = g.mul(sigma, scale)
        elif loss not in ("mse", "mae", "huber"):
            raise UnsupportedLoss(f"regression loss {loss!r} has no ONNX form")
        y_scale, y_mean = float(model.y_scale_[j]), float(model.y_mean_[j])
        preds.append(g.add(g.mul(mu, g.const(y_scale)), g.const(y_mean)))
        if width is not None:
            sigmas.append(g.mul(width, g.const(y_scale)))
    out = {"prediction": preds[0] if len(preds) == 1 else g.op("Concat", *preds, axis=1)}
    if sigmas:
        out["sigma"] = sigmas[0] if len(sigmas) == 1 else g.op("Concat", *sigmas, axis=1)
    return out


def to_onnx(f: Features, model: Any, task: str) -> dict[str, str]:
    g = f.g
    raw = g.cast(_network(g, f.float32(), model), "double")
    if task == "classification":
        return {"score": g.sigmoid(g.column(raw, 0))}
    if task == "multiclass":
        return {"probabilities": g.softmax(raw)}
    return _regression(g, raw, model)
