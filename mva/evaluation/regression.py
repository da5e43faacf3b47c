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

from mva.evaluation._arrays import as_1d, positive_total, weighted_quantile, weights_or_ones

__all__ = [
    "weighted_quantile",
    "weighted_median",
    "sigma_eff",
    "shortest_interval",
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
    arr = as_1d(x, name)
    return arr, weights_or_ones(weights, arr.size)


def _wmean(x: np.ndarray, w: np.ndarray) -> float:
    return float(np.sum(w * x) / positive_total(w))


def _wstd(x: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted mean and standard deviation (population, i.e. normalised by sum w)."""
    mean = _wmean(x, w)
    var = float(np.sum(w * (x - mean) ** 2) / positive_total(w))
    # negative weights can push the variance estimate below zero
    return mean, float(np.sqrt(max(var, 0.0)))


# --------------------------------------------------------------------------- quantiles


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
    lo, hi = shortest_interval(x, weights, fraction)
    return float(0.5 * (hi - lo))


def shortest_interval(
    x: ArrayLike, weights: ArrayLike | None = None, fraction: float = 0.683
) -> tuple[float, float]:
    """Ends ``(lo, hi)`` of the smallest interval holding ``fraction`` of the weight, as
    :func:`sigma_eff` finds it (the first of equally narrow ones); both ends are included."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    arr, w = _values_weights(x, weights)
    if arr.size == 0:
        raise ValueError("need at least one entry")
    total = positive_total(w)
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
    best = int(np.argmin(widths))
    return float(xs[start[best]]), float(xs[k[valid][best] - 1])


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
    tgt = as_1d(target, "target")
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
        sig = as_1d(width, "width")
        if sig.size != d.size:
            raise ValueError(f"width has length {sig.size}, expected {d.size}")
        if np.any(sig <= 0):
            raise ValueError("width must be positive")
        result["pull_sigma_eff"] = sigma_eff(d / sig, w)
        result["coverage_68"] = float(np.sum(w[np.abs(d) < sig]) / positive_total(w))
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
    dv = as_1d(d, "d")
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
