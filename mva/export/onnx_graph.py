"""Building ONNX graphs node by node, and the math that ONNX lacks (erf and the inverse normal
CDF in double precision).

:class:`Graph` wraps :mod:`onnx.helper`: every call adds one node and returns the name of its
output, constants become initializers, and a :meth:`Graph.subgraph` (a ``Loop`` body) shares
the names and constants of its parent. The exported graphs compute in float64 wherever ``mva``
does, so that they reproduce its scores to float32 precision; onnxruntime's CPU kernels have
no float64 ``Erf``, hence :func:`erf` from its power series.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

__all__ = ["Graph", "OPSET", "ML_OPSET", "IR_VERSION", "erf", "ndtri", "softplus"]

#: the default-domain opset of every exported graph: onnxruntime >= 1.14 (CMSSW 13, Athena 24)
OPSET = 17
#: the ``ai.onnx.ml`` opset (TreeEnsembleRegressor)
ML_OPSET = 3
#: the IR version that opset 17 needs: newer onnx packages write newer ones by default, which
#: older onnxruntime releases (as in the experiments' software stacks) refuse to load
IR_VERSION = 8

#: terms of the power series of erf: converges to double precision for |z| <= 4
ERF_TERMS = 60
#: erf's argument is clamped to this (erf(4) = 1 - 1.5e-8); callers never need more
ERF_MAX_Z = 4.0


class Graph:
    """An ONNX graph under construction: nodes, initializers and unique names."""

    def __init__(self, name: str, parent: Graph | None = None):
        self.name = name
        self.parent = parent
        self.nodes: list[Any] = []
        self.initializers: list[Any] = [] if parent is None else parent.initializers
        self._counter = itertools.count() if parent is None else parent._counter
        self._consts: dict[tuple, str] = {} if parent is None else parent._consts

    def fresh(self, hint: str) -> str:
        return f"{hint}_{next(self._counter)}"

    # ------------------------------------------------------------------ building blocks
    def const(self, value: Any, dtype: Any = np.float64, hint: str = "c") -> str:
        """An initializer holding ``value`` (scalars become 0-d tensors, which broadcast).
        Small constants are shared."""
        from onnx import numpy_helper

        arr = np.asarray(value, dtype=dtype)
        key = None
        if arr.size <= 16:
            key = (arr.dtype.str, arr.shape, arr.tobytes())
            if key in self._consts:
                return self._consts[key]
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(arr.copy(order="C"), name))
        if key is not None:
            self._consts[key] = name
        return name

    def ints(self, values: Any) -> str:
        """An int64 constant (shapes, axes, indices)."""
        return self.const(np.asarray(values, dtype=np.int64), np.int64, "i")

    def op(self, op_type: str, *inputs: str, n_out: int = 1, domain: str = "",
           **attrs: Any) -> Any:
        """Add one node; returns its output name (a list of names when ``n_out > 1``)."""
        from onnx import helper

        outs = [self.fresh(op_type.lower()) for _ in range(n_out)]
        node = helper.make_node(op_type, list(inputs), outs, name=self.fresh(f"n_{op_type}"),
                                domain=domain or None, **attrs)
        self.nodes.append(node)
        return outs[0] if n_out == 1 else outs

    def subgraph(self, name: str) -> Graph:
        """A graph for a ``Loop`` body: its nodes may use this graph's names and constants."""
        return Graph(name, parent=self)

    def to_proto(self, inputs: list[Any], outputs: list[Any]) -> Any:
        from onnx import helper

        init = self.initializers if self.parent is None else []
        return helper.make_graph(self.nodes, self.name, inputs, outputs, initializer=init)

    # ------------------------------------------------------------------ arithmetic sugar
    def add(self, a: str, b: str) -> str:
        return self.op("Add", a, b)

    def sub(self, a: str, b: str) -> str:
        return self.op("Sub", a, b)

    def mul(self, a: str, b: str) -> str:
        return self.op("Mul", a, b)

    def div(self, a: str, b: str) -> str:
        return self.op("Div", a, b)

    def where(self, cond: str, a: str, b: str) -> str:
        return self.op("Where", cond, a, b)

    def cast(self, x: str, to: str) -> str:
        from onnx import TensorProto

        return self.op("Cast", x, to={"float": TensorProto.FLOAT, "double": TensorProto.DOUBLE,
                                      "int64": TensorProto.INT64}[to])

    def column(self, x: str, j: int, keep: bool = False) -> str:
        """Column ``j`` of a 2-d tensor: ``(N,)``, or ``(N, 1)`` with ``keep``."""
        col = self.op("Slice", x, self.ints([j]), self.ints([j + 1]), self.ints([1]))
        return col if keep else self.op("Squeeze", col, self.ints([1]))

    def columns(self, x: str, start: int, stop: int) -> str:
        return self.op("Slice", x, self.ints([start]), self.ints([stop]), self.ints([1]))

    def sigmoid(self, x: str) -> str:
        return self.op("Sigmoid", x)

    def softmax(self, x: str) -> str:
        return self.op("Softmax", x, axis=-1)


def softplus(g: Graph, x: str) -> str:
    """torch's ``softplus`` (``log(1 + e^x)``, and ``x`` itself above 20) in double precision
    (onnxruntime has no double ``Softplus`` kernel)."""
    big = g.op("Greater", x, g.const(20.0))
    # e^x overflows for x > 709 in the branch that Where discards: inf, never NaN
    small = g.op("Log", g.add(g.const(1.0), g.op("Exp", x)))
    return g.where(big, x, small)


def erf(g: Graph, z: str) -> str:
    """erf of a float64 tensor, from ``erf(z) = 2/sqrt(pi) e^(-z^2) sum_n 2^n z^(2n+1) /
    (2n+1)!!``: every term positive (no cancellation), double precision (1e-15) for
    |z| <= :data:`ERF_MAX_Z`, where the argument is clamped."""
    sign = g.op("Sign", z)
    a = g.op("Min", g.op("Abs", z), g.const(ERF_MAX_Z))
    z2 = g.mul(a, a)
    two_z2 = g.mul(z2, g.const(2.0))
    r = g.const(1.0)
    one = g.const(1.0)
    for n in range(ERF_TERMS, 0, -1):  # Horner: r = 1 + r * 2 z^2 / (2n + 1)
        r = g.add(one, g.mul(r, g.div(two_z2, g.const(2.0 * n + 1.0))))
    series = g.mul(a, r)
    value = g.mul(g.mul(g.const(2.0 / math.sqrt(math.pi)), g.op("Exp", g.op("Neg", z2))),
                  series)
    return g.mul(sign, value)


#: Newton steps after the initial approximation of :func:`ndtri` (error 4.5e-4 -> 1e-7 ->
#: 1e-13 -> machine precision: the convergence is quadratic)
NDTRI_NEWTON_STEPS = 3


def ndtri(g: Graph, p: str) -> str:
    """The inverse of the standard normal CDF (scipy's ``ndtri``) of a float64 tensor with
    values in (0, 1) (the ``gauss`` transformation clips them to ``[1e-6, 1 - 1e-6]``).

    For ``q = min(p, 1 - p)`` the rational approximation of Abramowitz & Stegun 26.2.23 (error
    below 4.5e-4) is refined by Newton steps on ``Phi(x) = q`` with ``Phi`` from :func:`erf`;
    the sign follows ``p - 1/2``. Agrees with scipy's ``ndtri`` to 1e-10 (at ``p = 1e-6``, where
    ``1 - erf`` loses digits) and better towards the median.
    """
    half = g.const(0.5)
    upper = g.op("Greater", p, half)
    q = g.where(upper, g.sub(g.const(1.0), p), p)
    # initial guess for x = Phi^-1(q) <= 0
    t = g.op("Sqrt", g.mul(g.const(-2.0), g.op("Log", q)))

    def poly(coefs: list[float]) -> str:
        acc = g.const(coefs[-1])
        for c in reversed(coefs[:-1]):
            acc = g.add(g.mul(acc, t), g.const(c))
        return acc

    num = poly([2.515517, 0.802853, 0.010328])
    den = poly([1.0, 1.432788, 0.189269, 0.001308])
    x = g.op("Neg", g.sub(t, g.div(num, den)))
    inv_sqrt2 = g.const(1.0 / math.sqrt(2.0))
    inv_sqrt_2pi = g.const(1.0 / math.sqrt(2.0 * math.pi))
    for _ in range(NDTRI_NEWTON_STEPS):
        # Phi(x) = (1 + erf(x / sqrt 2)) / 2, density phi(x) = e^(-x^2/2) / sqrt(2 pi)
        cdf = g.mul(half, g.add(g.const(1.0), erf(g, g.mul(x, inv_sqrt2))))
        pdf = g.mul(inv_sqrt_2pi, g.op("Exp", g.mul(g.const(-0.5), g.mul(x, x))))
        x = g.sub(x, g.div(g.sub(cdf, q), pdf))
    return g.where(upper, g.op("Neg", x), x)
