"""Regression performance measures (bias, resolution, quantiles, profiles).

Deviations are ``d = prediction - target``.  Optional per-event ``weights``
(``None`` means unit weights) may be negative, as Monte Carlo weights can be:
means are ratios of weighted sums, and quantile-type measures use the running
maximum of the cumulative weight (the "first crossing" of the weighted CDF), which
is exact for non-negative weights and never produces negative widths otherwise.
:func:`sigma_eff` sums the weights of equal values first, so ``+w``/``-w`` pairs at
one value cancel exactly; the quantiles interpolate between individual events (to
match ``numpy``), so there such pairs cancel only approximately.
A total weight that is not positive raises ``ValueError``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from mva.evaluation.classification import _as_1d

__all__ = [
    "weighted_quantile",
    "weighted_median",
    "sigma_eff",
    "regression_metrics",
    "binned_profile",
]

logger = logging.getLogger(__name__)

ArrayLike = np.ndarray | Sequence[float]

# relative slack when comparing cumulative weights, so that e.g. 500 of 1000 unit
# weights count as holding a fraction 0.5 despite rounding
_REL_TOL = 1e-12


# --------------------------------------------------------------------------- helpers




def _values_weights(
    x: ArrayLike, weights: ArrayLike | None, name: str = "x"
) -> tuple[np.ndarray, np.ndarray]:
    arr = _as_1d(x, name)
    if weights is None:
        w = np.ones(arr.size)
    else:
        w = _as_1d(weights, "weights")
        if w.size != arr.size:
            raise ValueError(f"weights has length {w.size}, expected {arr.size}")
    return arr, w


def _total(w: np.ndarray) -> float:
    total = float(np.sum(w))
    if not total > 0:
        raise ValueError(f"weights must sum to a positive value, got {total:g}")
    return total


def _wmean(x: np.ndarray, w: np.ndarray) -> float:
    return float(np.sum(w * x) / _total(w))


def _wstd(x: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted mean and standard deviation (population, i.e. normalised by sum w)."""
    mean = _wmean(x, w)
    var = float(np.sum(w * (x - mean) ** 2) / _total(w))
    # negative weights can push the variance estimate below zero
    return mean, float(np.sqrt(max(var, 0.0)))


# --------------------------------------------------------------------------- quantiles


def weighted_quantile(
    x: ArrayLike, q: float | ArrayLike, weights: ArrayLike | None = None
) -> float | np.ndarray:
    """Weighted quantile(s) with linear interpolation.

    Each sorted value ``x_i`` sits at the cumulative position
    ``p_i = (sum_{j<=i} w_j - w_i / 2) / sum w`` (the "hazen" plotting position),
    and ``q`` is interpolated linearly between neighbouring positions; ``q``
    outside ``[p_0, p_last]`` gives the extreme values.  With unit weights this
    equals ``numpy.quantile(x, q, method="hazen")`` and the median equals
    ``numpy.median``.  Zero-weight entries are ignored.

    Returns
    -------
    float or numpy.ndarray
        A float for scalar ``q``, else an array shaped like ``q``.
    """
    arr, w = _values_weights(x, weights)
    keep = w != 0
    arr, w = arr[keep], w[keep]
    if arr.size == 0:
        raise ValueError("need at least one entry with non-zero weight")
    total = _total(w)
    q_arr = np.asarray(q, dtype=float)
    if np.any((q_arr < 0) | (q_arr > 1)) or not np.all(np.isfinite(q_arr)):
        raise ValueError(f"quantiles must lie in [0, 1], got {q}")

    order = np.argsort(arr, kind="stable")
    xs, ws = arr[order], w[order]
    pos = np.maximum.accumulate((np.cumsum(ws) - 0.5 * ws) / total)

    flat_q = q_arr.reshape(-1)
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
    if q_arr.ndim == 0:
        return float(out[0])
    return out.reshape(q_arr.shape)


def weighted_median(x: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Weighted median, :func:`weighted_quantile` at 0.5 (``numpy.median`` for unit weights)."""
    return float(weighted_quantile(x, 0.5, weights))


def sigma_eff(x: ArrayLike, weights: ArrayLike | None = None, fraction: float = 0.683) -> float:
    """Half-width of the smallest interval containing ``fraction`` of the weight.

    Exact over the sorted distinct values: each window ``[x_i, x_k]`` starting at
    ``x_i`` is grown until its cumulative weight reaches ``fraction`` of the total,
    and the narrowest such window wins.  For a Gaussian this is about sigma.  With
    negative weights the cumulative weight is replaced by its running maximum.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    arr, w = _values_weights(x, weights)
    if arr.size == 0:
        raise ValueError("need at least one entry")
    total = _total(w)
    # an interval holds all events at its end values, so work on distinct values with
    # their summed weight (this also makes +w/-w pairs at one value cancel exactly)
    xs, inverse = np.unique(arr, return_inverse=True)
    wsum = np.bincount(inverse.reshape(-1), weights=w, minlength=xs.size)
    # cum[k] = weight of the k smallest values, made monotone for negative weights
    cum = np.maximum.accumulate(np.r_[0.0, np.cumsum(wsum)])
    need = fraction * total * (1.0 - _REL_TOL)
    # window starting at value i ends at value k - 1, the first with cum[k] - cum[i] >= need
    k = np.searchsorted(cum, cum[:-1] + need, side="left")
    valid = k <= xs.size
    if not valid.any():
        raise ValueError("no interval holds the requested fraction of the weight")
    start = np.flatnonzero(valid)
    widths = xs[k[valid] - 1] - xs[start]
    return float(0.5 * widths.min())


# --------------------------------------------------------------------------- summaries


def regression_metrics(
    prediction: ArrayLike,
    target: ArrayLike,
    weights: ArrayLike | None = None,
    width: ArrayLike | None = None,
) -> dict[str, float]:
    """Weighted summary of the deviations ``d = prediction - target``.

    Returns
    -------
    dict
        ``bias``: weighted mean of d.
        ``rms``: weighted RMS of d about its mean, i.e. the (population) standard
        deviation, as TMVA reports it.
        ``rms_trunc``: TMVA's truncated RMS, the standard deviation (about their own
        mean) of the d with ``|d - bias| < 2 rms``.
        ``mae``: weighted mean of |d|.
        ``sigma_eff``: :func:`sigma_eff` of d.
        ``median``: weighted median of ``prediction / target`` (events with
        ``target == 0`` are left out; NaN if none remain).
        With ``width`` (per-event predicted uncertainty, > 0) also
        ``pull_sigma_eff`` (:func:`sigma_eff` of d / width) and ``coverage_68``
        (weighted fraction of events with ``|d| < width``).
    """
    pred, w = _values_weights(prediction, weights, "prediction")
    tgt = _as_1d(target, "target")
    if tgt.size != pred.size:
        raise ValueError(f"target has length {tgt.size}, expected {pred.size}")
    if pred.size == 0:
        raise ValueError("need at least one event")
    d = pred - tgt
    bias, rms = _wstd(d, w)

    inside = np.abs(d - bias) < 2.0 * rms
    if inside.any() and np.sum(w[inside]) > 0:
        _, rms_trunc = _wstd(d[inside], w[inside])
    else:
        # rms == 0 (all d equal) leaves nothing strictly inside: nothing to truncate
        rms_trunc = rms

    nonzero = tgt != 0
    if nonzero.any() and np.sum(w[nonzero]) > 0:
        median = weighted_median(pred[nonzero] / tgt[nonzero], w[nonzero])
    else:
        median = float("nan")

    result = {
        "bias": bias,
        "rms": rms,
        "rms_trunc": float(rms_trunc),
        "mae": _wmean(np.abs(d), w),
        "sigma_eff": sigma_eff(d, w),
        "median": float(median),
    }
    if width is not None:
        sig = _as_1d(width, "width")
        if sig.size != d.size:
            raise ValueError(f"width has length {sig.size}, expected {d.size}")
        if np.any(sig <= 0):
            raise ValueError("width must be positive")
        result["pull_sigma_eff"] = sigma_eff(d / sig, w)
        result["coverage_68"] = float(np.sum(w[np.abs(d) < sig]) / _total(w))
    return result


def binned_profile(
    x: ArrayLike, d: ArrayLike, weights: ArrayLike | None = None, bins: int = 10
) -> dict[str, np.ndarray]:
    """Bias and resolution of ``d`` in quantile bins of ``x`` (for profile plots).

    Bin edges are weighted quantiles of ``x``, so bins hold about equal weight;
    coinciding edges (discrete ``x``) are merged, which can leave fewer bins.  The
    last bin includes its upper edge.

    Returns
    -------
    dict
        ``edges`` (n_bins + 1), and per bin ``centres`` (edge midpoints), ``bias``
        (weighted mean of d), ``sigma_eff`` (of d) and ``count`` (events).
        ``bias`` and ``sigma_eff`` are NaN for bins without positive weight.
    """
    xv, w = _values_weights(x, weights)
    dv = _as_1d(d, "d")
    if dv.size != xv.size:
        raise ValueError(f"d has length {dv.size}, expected {xv.size}")
    if int(bins) < 1:
        raise ValueError(f"bins must be positive, got {bins}")
    edges = np.unique(weighted_quantile(xv, np.linspace(0.0, 1.0, int(bins) + 1), w))
    if edges.size == 1:
        # all x equal: one degenerate bin
        edges = np.r_[edges, edges]
    n_bins = edges.size - 1
    idx = np.clip(np.searchsorted(edges, xv, side="right") - 1, 0, n_bins - 1)
    bias = np.full(n_bins, np.nan)
    width = np.full(n_bins, np.nan)
    count = np.bincount(idx, minlength=n_bins)
    for b in range(n_bins):
        sel = idx == b
        if sel.any() and np.sum(w[sel]) > 0:
            bias[b] = _wmean(dv[sel], w[sel])
            width[b] = sigma_eff(dv[sel], w[sel])
        else:
            logger.debug(
                "profile bin %d [%g, %g] has no positive weight", b, edges[b], edges[b + 1]
            )
    return {
        "edges": edges,
        "centres": 0.5 * (edges[:-1] + edges[1:]),
        "bias": bias,
        "sigma_eff": width,
        "count": count,
    }
