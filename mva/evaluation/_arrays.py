"""Input checks and the weighted quantile shared by the evaluation modules.

Every evaluation function takes per-event arrays (scores, labels, weights, predictions) from
user code as lists, columns or arrays; these helpers turn them into float arrays and raise
``ValueError`` with a message that names the offending argument.  ``weights=None`` means unit
weights everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

__all__ = [
    "as_1d",
    "weights_or_ones",
    "signal_mask",
    "check_inputs",
    "positive_total",
    "weighted_quantile",
]

ArrayLike = np.ndarray | Sequence[float]


def as_1d(x: Any, name: str, *, finite: bool = True, flatten: bool = False) -> np.ndarray:
    """``x`` as a one-dimensional float array.

    Parameters
    ----------
    x
        Values; an ``(n, 1)`` column (model outputs often come as one) becomes 1-d.
    name
        Argument name used in the error messages.
    finite
        Reject NaN and infinite values (plots instead drop them with a warning).
    flatten
        Accept any shape and flatten it (a scalar becomes one entry).
    """
    arr = np.asarray(x, dtype=float)
    if flatten:
        arr = arr.ravel()
    elif arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if finite:
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        if bad:
            raise ValueError(f"{name} contains NaN or infinite values ({bad} of {arr.size})")
    return arr


def weights_or_ones(
    weights: Any, n: int, name: str = "weights", *, finite: bool = True, flatten: bool = False
) -> np.ndarray:
    """Per-event weights as a float array of length ``n``; ``None`` gives unit weights.

    ``finite`` and ``flatten`` are passed to :func:`as_1d`.
    """
    if weights is None:
        return np.ones(n)
    w = as_1d(weights, name, finite=finite, flatten=flatten)
    if w.size != n:
        raise ValueError(f"{name} has length {w.size}, expected {n}")
    return w


def signal_mask(labels: Any, n: int) -> np.ndarray:
    """Boolean signal mask of ``n`` labels that must be 1 (signal) or 0 (background)."""
    lab = np.asarray(labels).reshape(-1)
    if lab.size != n:
        raise ValueError(f"labels has length {lab.size}, expected {n}")
    if not np.all(np.isin(lab, (0, 1))):
        raise ValueError("labels must be 1 (signal) or 0 (background)")
    return lab.astype(bool)


def check_inputs(
    scores: Any, labels: Any, weights: Any, *, flatten: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated ``(scores, signal mask, weights)``: finite float scores and weights.

    ``flatten`` accepts scores and weights of any shape (see :func:`as_1d`).
    """
    s = as_1d(scores, "scores", flatten=flatten)
    is_sig = signal_mask(labels, s.size)
    w = weights_or_ones(weights, s.size, flatten=flatten)
    return s, is_sig, w


def positive_total(w: np.ndarray) -> float:
    """``sum(w)``; raises ``ValueError`` unless it is positive."""
    total = float(np.sum(w))
    if not total > 0:
        raise ValueError(f"weights must sum to a positive value, got {total:g}")
    return total


def weighted_quantile(
    x: ArrayLike,
    q: float | ArrayLike,
    weights: ArrayLike | None = None,
    *,
    method: Literal["hazen", "inverted_cdf"] = "hazen",
) -> float | np.ndarray:
    """Weighted quantile(s) of ``x``; both methods equal ``numpy.quantile`` with the same
    ``method`` for unit weights.

    ``method="hazen"`` (default) interpolates linearly.  Each sorted value ``x_i`` sits at the
    cumulative position ``p_i = (sum_{j<=i} w_j - w_i / 2) / sum w`` (the "hazen" plotting
    position), and ``q`` is interpolated between neighbouring positions; ``q`` outside
    ``[p_0, p_last]`` gives the extreme values.  The median equals ``numpy.median`` for unit
    weights.  Zero-weight entries are ignored.

    ``method="inverted_cdf"`` takes the smallest ``x`` whose cumulative weight reaches ``q`` of
    the total.  Unlike an interpolating definition it gives the same answer for an event of
    integer weight ``k`` and for ``k`` copies of it (used for kernel widths and grid nodes).

    With negative weights the cumulative weight is replaced by its running maximum.

    Returns
    -------
    float or numpy.ndarray
        A float for scalar ``q``, else an array shaped like ``q``.
    """
    arr = as_1d(x, "x")
    w = weights_or_ones(weights, arr.size)
    q_arr = np.asarray(q, dtype=float)
    if np.any((q_arr < 0) | (q_arr > 1)) or not np.all(np.isfinite(q_arr)):
        raise ValueError(f"quantiles must lie in [0, 1], got {q}")
    flat_q = q_arr.reshape(-1)
    if method == "hazen":
        out = _hazen(arr, w, flat_q)
    elif method == "inverted_cdf":
        out = _inverted_cdf(arr, w, flat_q)
    else:
        raise ValueError(f"method must be 'hazen' or 'inverted_cdf', got {method!r}")
    if q_arr.ndim == 0:
        return float(out[0])
    return out.reshape(q_arr.shape)


def _hazen(arr: np.ndarray, w: np.ndarray, flat_q: np.ndarray) -> np.ndarray:
    keep = w != 0
    arr, w = arr[keep], w[keep]
    if arr.size == 0:
        raise ValueError("need at least one entry with non-zero weight")
    total = positive_total(w)
    order = np.argsort(arr, kind="stable")
    xs, ws = arr[order], w[order]
    pos = np.maximum.accumulate((np.cumsum(ws) - 0.5 * ws) / total)
    # j = first position >= q; for j >= 1 the left neighbour lies strictly below q
    j = np.searchsorted(pos, flat_q, side="left")
    out = np.empty(flat_q.size)
    low = j == 0
    high = j >= xs.size
    out[low] = xs[0]
    out[high] = xs[-1]
    mid = ~(low | high)
    jm = j[mid]
    frac = (flat_q[mid] - pos[jm - 1]) / (pos[jm] - pos[jm - 1])
    out[mid] = xs[jm - 1] + frac * (xs[jm] - xs[jm - 1])
    return out


def _inverted_cdf(arr: np.ndarray, w: np.ndarray, flat_q: np.ndarray) -> np.ndarray:
    if arr.size == 0:
        raise ValueError("need at least one entry")
    order = np.argsort(arr)
    # a no-op for non-negative weights
    cum = np.maximum.accumulate(np.cumsum(w[order]))
    if not cum[-1] > 0:
        raise ValueError(f"weights must sum to a positive value, got {float(cum[-1]):g}")
    idx = np.searchsorted(cum, flat_q * cum[-1], side="left")
    return arr[order][np.clip(idx, 0, arr.size - 1)]
