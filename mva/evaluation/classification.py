"""Classification performance measures (ROC, separation, KS test, cut optimisation).

All functions take per-event ``scores`` (higher = more signal-like), ``labels``
(1 = signal, 0 = background) and optional per-event ``weights`` (``None`` means
unit weights).  Weights may be negative, as Monte Carlo generators produce them:
every quantity is built from cumulative weighted sums, so negative weights simply
subtract, and curves may then be non-monotonic.  A class whose total weight is not
positive cannot be normalised and raises ``ValueError``.

A cut always means "select events with ``score >= cut``".
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import numpy as np

from mva.evaluation._arrays import as_1d, check_inputs, weights_or_ones

__all__ = [
    "roc_curve",
    "roc_auc",
    "eff_sig_at_bkg",
    "separation",
    "ks_2samp_weighted",
    "significance_scan",
    "cut_efficiency_curves",
    "cut_for_efficiency",
    "sorted_once",
    "score_bins",
    "class_histograms",
]

logger = logging.getLogger(__name__)

ArrayLike = np.ndarray | Sequence[float]


# --------------------------------------------------------------------------- helpers


_SORTED = threading.local()
_T = TypeVar("_T")


@contextlib.contextmanager
def sorted_once() -> Iterator[None]:
    """Within the block, the sorted cumulative sums of the same ``(scores, labels, weights)``
    array objects are computed once (and whatever else is asked for through :func:`once`,
    such as the ranking behind the uncertainties): the evaluation of one method asks for its
    ROC curve, cuts and scans many times, each a sort of a million events. The arrays must
    not change inside the block (the results are read-only)."""
    outer = getattr(_SORTED, "cache", None)
    if outer is None:
        _SORTED.cache = {}
    try:
        yield
    finally:
        if outer is None:
            _SORTED.cache = None


def once(kind: str, scores: ArrayLike, labels: ArrayLike, weights: ArrayLike | None,
         compute: Callable[[ArrayLike, ArrayLike, ArrayLike | None], _T]) -> _T:
    """``compute(scores, labels, weights)``, computed once per ``kind`` for the same array
    objects inside a :func:`sorted_once` block (outside one: every time)."""
    cache = getattr(_SORTED, "cache", None)
    if cache is None:
        return compute(scores, labels, weights)
    key = (kind, id(scores), id(labels), id(weights))
    hit = cache.get(key)
    # the entry holds the inputs themselves: their ids cannot be reused while it exists
    if hit is None or any(a is not b for a, b in zip(hit[0], (scores, labels, weights),
                                                     strict=True)):
        hit = cache[key] = ((scores, labels, weights), compute(scores, labels, weights))
    return hit[1]


def descending(s: np.ndarray) -> np.ndarray:
    """The indices that sort the scores ``s`` in descending order (any order within ties):
    inside a :func:`sorted_once` block once per array, for the ROC sums and the ranked
    events (:mod:`mva.evaluation.uncertainty`) alike."""
    return once("descending", s, None, None, _read_only_order)


def _read_only_order(s: np.ndarray, _labels: None, _weights: None) -> np.ndarray:
    order = np.argsort(-s)
    order.setflags(write=False)
    return order


def _read_only_sums(scores: ArrayLike, labels: ArrayLike, weights: ArrayLike | None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    out = _sorted_sums(scores, labels, weights)
    for a in out:
        a.setflags(write=False)
    return out


def _cumulative(
    scores: ArrayLike, labels: ArrayLike, weights: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if getattr(_SORTED, "cache", None) is None:
        return _sorted_sums(scores, labels, weights)
    return once("sums", scores, labels, weights, _read_only_sums)


def _sorted_sums(
    scores: ArrayLike, labels: ArrayLike, weights: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted signal/background sums passing ``score >= t`` for each distinct score ``t``.

    Returns
    -------
    thresholds, cum_sig, cum_bkg
        Thresholds in descending order (one per distinct score, ties grouped);
        the last entries of ``cum_sig``/``cum_bkg`` are the class totals.
    """
    s, is_sig, w = check_inputs(scores, labels, weights)
    if not is_sig.any() or is_sig.all():
        raise ValueError("need both signal (label 1) and background (label 0) events")
    order = descending(s)  # ties are grouped below, so the order within them is irrelevant
    s_sorted = s[order]
    w_sorted = w[order]
    sig_sorted = is_sig[order]
    # the cut "score >= t" takes all tied events at once, so sample the running sums
    # only at the last event of each group of equal scores
    last_of_group = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]
    cum_sig = np.cumsum(np.where(sig_sorted, w_sorted, 0.0))[last_of_group]
    cum_bkg = np.cumsum(np.where(sig_sorted, 0.0, w_sorted))[last_of_group]
    return s_sorted[last_of_group], cum_sig, cum_bkg


def _class_totals(cum_sig: np.ndarray, cum_bkg: np.ndarray) -> tuple[float, float]:
    tot_sig, tot_bkg = float(cum_sig[-1]), float(cum_bkg[-1])
    if tot_sig <= 0 or tot_bkg <= 0:
        raise ValueError(
            f"class weights must sum to a positive value (signal {tot_sig:g}, "
            f"background {tot_bkg:g})"
        )
    return tot_sig, tot_bkg


def _safe_divide(num: np.ndarray, den: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """``num / den`` where ``ok``, NaN elsewhere, without floating-point warnings."""
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=ok)
    return out


# --------------------------------------------------------------------------- ROC


def roc_curve(
    scores: ArrayLike, labels: ArrayLike, weights: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact weighted ROC curve.

    Parameters
    ----------
    scores, labels, weights
        Per-event classifier output, 1/0 signal/background label and weight.

    Returns
    -------
    eff_bkg, eff_sig, thresholds
        One point per distinct score (ties grouped), thresholds descending;
        ``eff = (weight with score >= threshold) / (total class weight)``.
        A leading point ``(0, 0)`` with threshold ``+inf`` is prepended, so the
        curve runs from (0, 0) to (1, 1).
    """
    thresholds, cum_sig, cum_bkg = _cumulative(scores, labels, weights)
    tot_sig, tot_bkg = _class_totals(cum_sig, cum_bkg)
    eff_sig = np.r_[0.0, cum_sig / tot_sig]
    eff_bkg = np.r_[0.0, cum_bkg / tot_bkg]
    # the cumulative sum is the total itself, so the end point is exactly (1, 1)
    return eff_bkg, eff_sig, np.r_[np.inf, thresholds]


def roc_auc(scores: ArrayLike, labels: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Area under the weighted ROC curve (trapezoidal rule on :func:`roc_curve`)."""
    eff_bkg, eff_sig, _ = roc_curve(scores, labels, weights)
    return float(np.trapezoid(eff_sig, eff_bkg))


def eff_sig_at_bkg(
    scores: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike | None = None,
    eff_bkg: float | Sequence[float] = (0.01, 0.1, 0.3),
) -> dict[str, float]:
    """Signal efficiency at given background efficiencies (TMVA's "effS at effB").

    Linear interpolation on the ROC curve.  Walking from the tightest cut, the
    segment used is the first one that crosses the requested background
    efficiency; if the curve has a vertical step exactly there, the highest signal
    efficiency of that step is returned.

    Returns
    -------
    dict
        ``{f"{eb:g}": eff_sig}``, e.g. keys ``"0.01", "0.1", "0.3"``.
    """
    roc_b, roc_s, _ = roc_curve(scores, labels, weights)
    targets = np.atleast_1d(np.asarray(eff_bkg, dtype=float))
    if np.any((targets < 0) | (targets > 1)):
        raise ValueError(f"background efficiencies must lie in [0, 1], got {targets}")
    result: dict[str, float] = {}
    for target in targets:
        above = np.flatnonzero(roc_b > target)
        if above.size == 0:
            value = float(roc_s[-1])
        else:
            # roc_b[0] == 0 <= target, so the first crossing has a predecessor
            j = int(above[0])
            b0, b1, s0, s1 = roc_b[j - 1], roc_b[j], roc_s[j - 1], roc_s[j]
            value = float(s0 + (target - b0) / (b1 - b0) * (s1 - s0))
        result[f"{target:g}"] = value
    return result


# --------------------------------------------------------------------------- separation


def score_bins(s: np.ndarray, bins: int) -> np.ndarray | None:
    """The bin of every score on ``bins`` equal bins spanning ``[min, max]`` (the last bin
    closed), exactly as :func:`numpy.histogram` with ``bins=bins, range=(min, max)`` assigns
    them; ``None`` when all scores are equal. Inside a :func:`sorted_once` block once per
    score array: the separation and its uncertainty share it.

    :func:`numpy.histogram` finds the bins of a second class histogram given its edges by
    sorting the values; this is its equal-bin arithmetic for both classes at once.
    """
    return once(f"bins{int(bins)}", s, None, None, lambda a, _l, _w: _equal_bins(a, int(bins)))


def _equal_bins(s: np.ndarray, bins: int) -> np.ndarray | None:
    lo, hi = float(s.min()), float(s.max())
    if lo == hi:
        return None
    edges = np.linspace(lo, hi, bins + 1)
    # numpy.histogram's uniform-bin path: the index from the value, then corrected where
    # round-off put a value on the wrong side of an edge
    idx = ((s - lo) * (bins / (hi - lo))).astype(np.intp)
    idx[idx == bins] = bins - 1
    idx[s < edges[idx]] -= 1
    idx[(s >= edges[idx + 1]) & (idx != bins - 1)] += 1
    idx.setflags(write=False)
    return idx


def class_histograms(idx: np.ndarray, is_sig: np.ndarray, w: np.ndarray, bins: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Weighted signal and background histograms of binned scores (:func:`score_bins`)."""
    w_sig = np.where(is_sig, w, 0.0)
    return (np.bincount(idx, weights=w_sig, minlength=bins),
            np.bincount(idx, weights=w - w_sig, minlength=bins))


def separation(
    scores: ArrayLike, labels: ArrayLike, weights: ArrayLike | None = None, bins: int = 100
) -> float:
    """TMVA separation ``<S^2> = 1/2 sum_i (pS_i - pB_i)^2 / (pS_i + pB_i)``.

    ``pS`` and ``pB`` are the weighted score histograms of each class, normalised
    to unit sum, on ``bins`` equal bins spanning the range of all scores.  Bins
    with ``pS + pB <= 0`` (possible with negative weights) are skipped, as in TMVA.
    The result is 0 for identical and 1 for disjoint distributions.
    """
    s, is_sig, w = check_inputs(scores, labels, weights)
    if not is_sig.any() or is_sig.all():
        raise ValueError("need both signal (label 1) and background (label 0) events")
    if int(bins) < 1:
        raise ValueError(f"bins must be positive, got {bins}")
    idx = score_bins(s, int(bins))
    if idx is None:
        # every event has the same score: the distributions are identical
        return 0.0
    h_sig, h_bkg = class_histograms(idx, is_sig, w, int(bins))
    tot_sig, tot_bkg = h_sig.sum(), h_bkg.sum()
    if tot_sig <= 0 or tot_bkg <= 0:
        raise ValueError("class weights must sum to a positive value")
    p_sig, p_bkg = h_sig / tot_sig, h_bkg / tot_bkg
    den = p_sig + p_bkg
    ok = den > 0
    return float(0.5 * np.sum((p_sig[ok] - p_bkg[ok]) ** 2 / den[ok]))


# --------------------------------------------------------------------------- KS test


def _ks_distance(xa: np.ndarray, wa: np.ndarray, xb: np.ndarray, wb: np.ndarray) -> float:
    """max |F_a - F_b| over all data points, from one sort of the merged samples: both
    weighted ECDFs are running sums along the merged order, read at the end of each group of
    equal values (the same as evaluating each ECDF at every point, without the searches)."""
    ta, tb = wa.sum(), wb.sum()
    if ta <= 0 or tb <= 0:
        raise ValueError("sample weights must sum to a positive value")
    x = np.concatenate([xa, xb])
    order = np.argsort(x)
    x_sorted = x[order]
    step_a = np.concatenate([wa, np.zeros(xb.size)])[order]
    step_b = np.concatenate([np.zeros(xa.size), wb])[order]
    last = np.r_[np.flatnonzero(np.diff(x_sorted)), x_sorted.size - 1]
    # clipping keeps negative-weight excursions from inflating the distance
    fa = np.clip(np.cumsum(step_a)[last] / ta, 0.0, 1.0)
    fb = np.clip(np.cumsum(step_b)[last] / tb, 0.0, 1.0)
    return float(np.max(np.abs(fa - fb)))


def _n_eff(w: np.ndarray) -> float:
    """Kish effective sample size ``(sum|w|)^2 / sum w^2``."""
    return float(np.sum(np.abs(w)) ** 2 / np.sum(w**2))


def ks_2samp_weighted(
    a: ArrayLike,
    b: ArrayLike,
    wa: ArrayLike | None = None,
    wb: ArrayLike | None = None,
) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov test for weighted samples.

    The statistic is the exact maximum distance between the two weighted ECDFs,
    evaluated at every data point (unbinned, deterministic).  The p-value mirrors
    ``scipy.stats.ks_2samp(method="asymp")``: ``scipy.stats.kstwo.sf(D, round(n))``
    with ``n = n_a n_b / (n_a + n_b)``, where each sample size is replaced by its
    effective size ``(sum|w|)^2 / sum w^2``.  With unit weights both numbers agree
    with scipy.

    Returns
    -------
    statistic, p_value
    """
    xa, xb = as_1d(a, "a"), as_1d(b, "b")
    if xa.size == 0 or xb.size == 0:
        raise ValueError("both samples must be non-empty")
    wa_ = weights_or_ones(wa, xa.size, "wa")
    wb_ = weights_or_ones(wb, xb.size, "wb")
    if not (np.any(wa_ != 0) and np.any(wb_ != 0)):
        raise ValueError("each sample needs at least one non-zero weight")
    statistic = _ks_distance(xa, wa_, xb, wb_)
    na, nb = _n_eff(wa_), _n_eff(wb_)
    # scipy rounds the combined size because kstwo is defined for integer n
    n = max(1.0, float(np.round(na * nb / (na + nb))))
    from scipy import stats  # here: scipy.stats takes a second to import (mva apply needs none)

    p_value = float(np.clip(stats.kstwo.sf(statistic, n), 0.0, 1.0))
    return statistic, p_value


# --------------------------------------------------------------------------- cut scans


def _scaled_cumulative(
    scores: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike | None,
    n_sig: float | None,
    n_bkg: float | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """:func:`_cumulative` with the classes rescaled to ``n_sig`` / ``n_bkg`` events."""
    thresholds, cum_sig, cum_bkg = _cumulative(scores, labels, weights)
    tot_sig, tot_bkg = _class_totals(cum_sig, cum_bkg)
    if n_sig is not None:
        cum_sig = cum_sig * (float(n_sig) / tot_sig)
        tot_sig = float(n_sig)
    if n_bkg is not None:
        cum_bkg = cum_bkg * (float(n_bkg) / tot_bkg)
        tot_bkg = float(n_bkg)
    return thresholds, cum_sig, cum_bkg, tot_sig, tot_bkg


def _significance(sig: np.ndarray, bkg: np.ndarray) -> np.ndarray:
    """``S / sqrt(S + B)``, NaN where ``S + B <= 0``."""
    tot = sig + bkg
    ok = tot > 0
    return _safe_divide(sig, np.sqrt(np.where(ok, tot, 1.0)), ok)


def significance_scan(
    scores: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike | None = None,
    n_sig: float | None = None,
    n_bkg: float | None = None,
) -> dict[str, float]:
    """Cut ``score >= cut`` maximising ``S / sqrt(S + B)``, exactly over all distinct scores.

    Parameters
    ----------
    n_sig, n_bkg
        Expected signal/background yields before the cut; weights of each class are
        rescaled to sum to them.  ``None`` keeps the raw weighted sums.

    Returns
    -------
    dict
        ``cut`` (the score threshold), ``significance``, ``eff_sig``, ``eff_bkg``,
        and ``n_sig`` / ``n_bkg`` (the yields S and B passing the cut).  Among equal
        maxima the tightest cut is reported.
    """
    thresholds, cum_sig, cum_bkg, tot_sig, tot_bkg = _scaled_cumulative(
        scores, labels, weights, n_sig, n_bkg
    )
    z = _significance(cum_sig, cum_bkg)
    if np.all(np.isnan(z)):
        raise ValueError("no cut leaves a positive number of selected events")
    # thresholds are descending, so argmax's first hit is the tightest optimal cut
    best = int(np.nanargmax(z))
    return {
        "cut": float(thresholds[best]),
        "significance": float(z[best]),
        "eff_sig": float(cum_sig[best] / tot_sig),
        "eff_bkg": float(cum_bkg[best] / tot_bkg),
        "n_sig": float(cum_sig[best]),
        "n_bkg": float(cum_bkg[best]),
    }


def cut_efficiency_curves(
    scores: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike | None = None,
    n_sig: float | None = None,
    n_bkg: float | None = None,
) -> dict[str, np.ndarray]:
    """Efficiencies, purity and significance versus cut value (TMVA's ``mvaeffs``).

    Returns
    -------
    dict
        Arrays over all distinct scores in ascending order: ``cut``, ``eff_sig``,
        ``eff_bkg``, ``purity = S / (S + B)`` and ``significance = S / sqrt(S + B)``
        for the selection ``score >= cut``, with yields rescaled as in
        :func:`significance_scan`.  Purity and significance are NaN where
        ``S + B <= 0``.
    """
    thresholds, cum_sig, cum_bkg, tot_sig, tot_bkg = _scaled_cumulative(
        scores, labels, weights, n_sig, n_bkg
    )
    tot = cum_sig + cum_bkg
    purity = _safe_divide(cum_sig, tot, tot > 0)
    significance = _significance(cum_sig, cum_bkg)
    # plots read left to right, from loose to tight cuts
    asc = slice(None, None, -1)
    return {
        "cut": thresholds[asc].copy(),
        "eff_sig": (cum_sig / tot_sig)[asc].copy(),
        "eff_bkg": (cum_bkg / tot_bkg)[asc].copy(),
        "purity": purity[asc].copy(),
        "significance": significance[asc].copy(),
    }


def cut_for_efficiency(
    scores: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    eff_sig: float | None = None,
    eff_bkg: float | None = None,
) -> float:
    """Cut whose signal (or background) efficiency is closest to the requested one.

    Exactly one of ``eff_sig`` / ``eff_bkg`` must be given.  Candidate cuts are the
    distinct scores (selection ``score >= cut``); among equally close candidates the
    tightest (highest) cut is returned.
    """
    if (eff_sig is None) == (eff_bkg is None):
        raise ValueError("give exactly one of eff_sig or eff_bkg")
    thresholds, cum_sig, cum_bkg = _cumulative(scores, labels, weights)
    tot_sig, tot_bkg = _class_totals(cum_sig, cum_bkg)
    if eff_sig is not None:
        eff, target = cum_sig / tot_sig, float(eff_sig)
    else:
        eff, target = cum_bkg / tot_bkg, float(eff_bkg)  # type: ignore[arg-type]
    # descending thresholds: argmin's first hit is the tightest of equally close cuts
    best = int(np.argmin(np.abs(eff - target)))
    logger.debug("cut %g gives efficiency %g (requested %g)", thresholds[best], eff[best], target)
    return float(thresholds[best])
