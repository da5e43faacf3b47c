"""Statistical uncertainties of the figures of merit from the finite, weighted test sample.

Every figure is linearised (delta method, influence functions): an estimate from events
``i`` with weights ``w_i`` deviates from its large-sample value by ``sum_i phi_i`` to first
order, where ``phi_i`` is the event's influence (its weight times the derivative of the figure
with respect to that event's weight).  The events of each class are sampled independently and
each class separately (signal and background, or the classes of a multiclass run, come from
their own samples), so the variance is the stratified sum over classes ``c``

    Var = sum_c n_c / (n_c - 1) * sum_{i in c} (phi_i - mean_c phi)^2,

with ``n_c`` events in class ``c``.  For the AUC this is DeLong, DeLong & Clarke-Pearson
(Biometrics 44, 1988, 837) generalised to weights: for unit weights it is DeLong's variance
exactly.  Figures computed from the same events have the covariance ``sum phi_a phi_b`` (same
formula), so the difference of two methods on the same test events (paired) has the
influence ``phi_a - phi_b``: :func:`compare`.

Everything is sort-based, ``O(n log n)`` in the number of events: one sort of the scores serves
the AUC, the signal efficiencies at fixed background efficiencies and the ROC band.  The
uncertainties describe the test sample only; expected yields (``evaluation.yields``) are taken
as exact, and the model is taken as fixed (a retrained model would differ: that spread is what
the cross-validation table shows).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mva.evaluation._arrays import as_1d, check_inputs, positive_total, weights_or_ones
from mva.evaluation.classification import class_histograms, descending, once, score_bins

__all__ = [
    "SIGNIFICANT",
    "Linearised",
    "auc",
    "eff_sig_at_bkg",
    "separation",
    "significance",
    "accuracy",
    "log_loss",
    "auc_ovr",
    "auc_macro",
    "mean",
    "std",
    "mean_abs",
    "fraction",
    "quantile",
    "sigma_eff",
    "rms_trunc",
    "binary_errors",
    "multiclass_errors",
    "regression_errors",
    "beside",
    "format_pm",
    "compare",
]

ArrayLike = np.ndarray | Sequence[float]

#: a difference of two methods counts as significant above this many standard deviations
SIGNIFICANT = 2.0


# --------------------------------------------------------------------------- the variance


def _strata(labels: Any, n: int) -> np.ndarray:
    """Non-negative integer stratum (class) per event; ``None``: one stratum."""
    if labels is None:
        return np.zeros(n, dtype=np.intp)
    lab = np.asarray(labels).reshape(-1)
    if lab.size != n:
        raise ValueError(f"strata has length {lab.size}, expected {n}")
    if lab.dtype == bool or (np.issubdtype(lab.dtype, np.integer) and lab.size
                             and lab.min() >= 0):
        return lab.astype(np.intp)  # class indices already (gaps are empty strata)
    _, inverse = np.unique(lab, return_inverse=True)
    return inverse.reshape(-1).astype(np.intp)


def _stratified_var(phi: np.ndarray, strata: np.ndarray) -> float:
    """``sum_c n_c/(n_c - 1) sum_{i in c} (phi_i - mean_c phi)^2`` (a class of one event adds
    nothing: its spread cannot be estimated)."""
    k = int(strata.max()) + 1 if strata.size else 0
    n = np.bincount(strata, minlength=k).astype(float)
    s1 = np.bincount(strata, weights=phi, minlength=k)
    s2 = np.bincount(strata, weights=phi * phi, minlength=k)
    ok = n > 1
    ss = np.maximum(s2[ok] - s1[ok] ** 2 / n[ok], 0.0)
    return float(np.sum(ss * n[ok] / (n[ok] - 1.0)))


@dataclass(frozen=True, eq=False)
class Linearised:
    """A figure of merit with the influence of every event on it.

    Attributes
    ----------
    value
        The figure.
    phi
        Influence per event: the first-order change of the figure that each event brings.
    strata
        Class (independently sampled group) of every event, integers from 0.
    """

    value: float
    phi: np.ndarray
    strata: np.ndarray

    @property
    def err(self) -> float:
        """Standard deviation of the figure from the finite sample."""
        return float(np.sqrt(_stratified_var(self.phi, self.strata)))

    @property
    def json_err(self) -> float | None:
        """:attr:`err` for metrics.json: None where it cannot be estimated."""
        e = self.err
        return e if np.isfinite(e) else None

    def __sub__(self, other: Linearised) -> Linearised:
        """The difference of two figures of the same events, with its (paired) influence."""
        if self.phi.shape != other.phi.shape or not (
                self.strata is other.strata or np.array_equal(self.strata, other.strata)):
            raise ValueError("a paired difference needs figures of the same events")
        return Linearised(self.value - other.value, self.phi - other.phi, self.strata)

    def __add__(self, other: Linearised) -> Linearised:
        if self.phi.shape != other.phi.shape:
            raise ValueError("a sum needs figures of the same events")
        return Linearised(self.value + other.value, self.phi + other.phi, self.strata)

    def scaled(self, factor: float) -> Linearised:
        return Linearised(self.value * factor, self.phi * factor, self.strata)


# --------------------------------------------------------------------------- ROC based


class _Ranked:
    """Events sorted by score once (descending, ties grouped): the ROC and its pieces.

    ``group[i]`` is the tie group of event ``i`` (0 = highest score); ``sig``/``bkg`` the
    signal/background weight per group; ``roc_b``/``roc_s`` the ROC points with a leading
    ``(0, 0)``: point ``k`` selects groups ``0 .. k-1``.
    """

    def __init__(self, scores: Any, labels: Any, weights: Any):
        s, is_sig, w = check_inputs(scores, labels, weights)
        if not is_sig.any() or is_sig.all():
            raise ValueError("need both signal (label 1) and background (label 0) events")
        order = descending(s)  # the order within ties does not matter: they are grouped
        ss = s[order]
        first = np.r_[True, ss[1:] != ss[:-1]]
        group = np.empty(s.size, dtype=np.intp)
        group[order] = np.cumsum(first) - 1
        self.n_groups = int(np.count_nonzero(first))
        w_sig = np.where(is_sig, w, 0.0)
        self.sig = np.bincount(group, weights=w_sig, minlength=self.n_groups)
        self.bkg = np.bincount(group, weights=w - w_sig, minlength=self.n_groups)
        self.tot_sig, self.tot_bkg = float(self.sig.sum()), float(self.bkg.sum())
        if self.tot_sig <= 0 or self.tot_bkg <= 0:
            raise ValueError(f"class weights must sum to a positive value (signal "
                             f"{self.tot_sig:g}, background {self.tot_bkg:g})")
        self.s, self.is_sig, self.w, self.group = s, is_sig, w, group
        self.cum_sig, self.cum_bkg = np.cumsum(self.sig), np.cumsum(self.bkg)
        self.roc_s = np.r_[0.0, self.cum_sig / self.tot_sig]
        self.roc_b = np.r_[0.0, self.cum_bkg / self.tot_bkg]
        # Kish effective number of background events: how well the cut is known
        wb = w[~is_sig]
        self.n_eff_bkg = float(np.sum(np.abs(wb)) ** 2 / max(np.sum(wb * wb), 1e-300))

    def auc(self, strata: np.ndarray) -> Linearised:
        """Weighted DeLong: the AUC with each event's influence (placement values)."""
        # a signal event of group g beats the background below it and half of its ties;
        # a background event is beaten by the signal above it and half of its ties
        v10 = (self.tot_bkg - self.cum_bkg + 0.5 * self.bkg) / self.tot_bkg
        v01 = (self.cum_sig - 0.5 * self.sig) / self.tot_sig
        value = float(np.dot(self.sig, v10) / self.tot_sig)
        g = self.group
        phi = np.where(self.is_sig, self.w * (v10[g] - value) / self.tot_sig,
                       self.w * (v01[g] - value) / self.tot_bkg)
        return Linearised(value, phi, strata)

    def interpolate(self, eff_bkg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Signal efficiency at ``eff_bkg`` as :func:`classification.eff_sig_at_bkg` finds it
        (the first segment crossing the target), with the partially selected group of each
        target and the fraction ``lam`` of it that is selected (``n_groups``, 0: all)."""
        # first point with roc_b > target (running maximum: negative weights may make the
        # curve go back)
        j = np.searchsorted(np.maximum.accumulate(self.roc_b), eff_bkg, side="right")
        last = j >= self.roc_b.size
        jj = np.where(last, 1, j)
        b0, b1 = self.roc_b[jj - 1], self.roc_b[jj]
        s0, s1 = self.roc_s[jj - 1], self.roc_s[jj]
        lam = np.where(last, 0.0, (eff_bkg - b0) / np.where(last, 1.0, b1 - b0))
        value = np.where(last, self.roc_s[-1], s0 + lam * (s1 - s0))
        partial = np.where(last, self.n_groups, jj - 1)
        return value, partial, lam

    def eff_sig_err(self, eff_bkg: np.ndarray, strata: np.ndarray) -> tuple[np.ndarray,
                                                                            np.ndarray]:
        """Signal efficiency at each background efficiency and its standard deviation.

        The selected signal fraction varies binomially (weighted), and the cut that gives the
        background efficiency varies with the background sample, which moves the signal
        efficiency along the ROC curve by its local slope: influence ``w (pass - effS) / W_S``
        for signal and ``-slope w (pass - effB) / W_B`` for background events. The slope is
        the ROC curve's over +-2 standard deviations of the background efficiency.
        """
        x = np.clip(np.asarray(eff_bkg, dtype=float), 0.0, 1.0)
        value, partial, lam = self.interpolate(x)
        h = 2.0 * np.sqrt(x * (1.0 - x) / self.n_eff_bkg)
        h = np.maximum(h, 5.0 / self.n_eff_bkg)   # at least a few events wide
        lo, hi = np.clip(x - h, 0.0, 1.0), np.clip(x + h, 0.0, 1.0)
        slope = (self.interpolate(hi)[0] - self.interpolate(lo)[0]) / np.maximum(hi - lo, 1e-300)
        var = np.zeros_like(x)
        G = self.n_groups
        inside = partial < G
        p_idx = np.minimum(partial, G - 1)
        for c in range(int(strata.max()) + 1):
            m = strata == c
            n_c = int(np.count_nonzero(m))
            if n_c < 2:
                continue
            sig_c = self.is_sig[m]
            if sig_c.any() != sig_c.all():
                raise ValueError("a stratum holds signal and background events")
            wc, gc = self.w[m], self.group[m]
            w1 = np.bincount(gc, weights=wc, minlength=G)
            w2 = np.bincount(gc, weights=wc * wc, minlength=G)
            c1, c2 = np.r_[0.0, np.cumsum(w1)], np.r_[0.0, np.cumsum(w2)]
            # groups before the partial one pass, a fraction lam of it, none after
            p1 = np.where(inside, w1[p_idx], 0.0)
            p2 = np.where(inside, w2[p_idx], 0.0)
            if sig_c[0]:
                a, e = np.full_like(x, 1.0 / self.tot_sig), value
            else:
                a, e = -slope / self.tot_bkg, x
            s1 = a * (c1[partial] + lam * p1 - e * c1[-1])
            s2 = a * a * ((1 - e) ** 2 * c2[partial] + (lam - e) ** 2 * p2
                          + e * e * (c2[-1] - c2[partial] - p2))
            var += np.maximum(s2 - s1 * s1 / n_c, 0.0) * n_c / (n_c - 1.0)
        # below one background event beyond the cut the curve is a step: no linearisation
        var[x * self.n_eff_bkg < 1.0] = np.nan
        return value, np.sqrt(var)


def _ranked(scores: ArrayLike, labels: ArrayLike, weights: ArrayLike | None) -> _Ranked:
    """The events ranked once per :func:`mva.evaluation.classification.sorted_once` block."""
    return once("ranked", scores, labels, weights, _Ranked)


def auc(scores: ArrayLike, labels: ArrayLike, weights: ArrayLike | None = None,
        strata: ArrayLike | None = None) -> Linearised:
    """Weighted ROC AUC with DeLong's influence per event (``O(n log n)``).

    Parameters
    ----------
    scores, labels, weights
        As :func:`mva.evaluation.classification.roc_auc` (labels 1 signal, 0 background).
    strata
        Independently sampled class of every event (default: the labels). A multiclass
        one-vs-rest AUC passes the true classes, so that the "rest" is stratified too.
    """
    if strata is None:  # stratified by the labels: once per sorted_once block
        return once("auc", scores, labels, weights, _labels_auc)
    r = _ranked(scores, labels, weights)
    return r.auc(_strata(strata, r.s.size))


def _labels_auc(scores: ArrayLike, labels: ArrayLike, weights: ArrayLike | None) -> Linearised:
    r = _ranked(scores, labels, weights)
    return r.auc(_strata(labels, r.s.size))


def eff_sig_at_bkg(scores: ArrayLike, labels: ArrayLike, weights: ArrayLike | None = None,
                   eff_bkg: float | Sequence[float] = (0.01, 0.1, 0.3),
                   strata: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Signal efficiency at the given background efficiencies and its standard deviation.

    Returns
    -------
    eff_sig, err
        Arrays shaped like ``eff_bkg``; ``eff_sig`` equals
        :func:`mva.evaluation.classification.eff_sig_at_bkg`.
    """
    r = _ranked(scores, labels, weights)
    targets = np.atleast_1d(np.asarray(eff_bkg, dtype=float))
    return r.eff_sig_err(targets, _strata(labels if strata is None else strata, r.s.size))


def separation(scores: ArrayLike, labels: ArrayLike, weights: ArrayLike | None = None,
               bins: int = 100, strata: ArrayLike | None = None) -> Linearised:
    """TMVA's separation (:func:`mva.evaluation.classification.separation`, same binning)
    with its influence: ``d<S^2>/dpS_k = r_k - r_k^2/2``, ``d<S^2>/dpB_k = -r_k - r_k^2/2``
    with ``r = (pS - pB) / (pS + pB)``. The histogram range is taken as fixed."""
    s, is_sig, w = check_inputs(scores, labels, weights)
    st = _strata(labels if strata is None else strata, s.size)
    idx = score_bins(s, int(bins))
    if idx is None:
        return Linearised(0.0, np.zeros(s.size), st)
    h_sig, h_bkg = class_histograms(idx, is_sig, w, int(bins))
    tot_sig, tot_bkg = h_sig.sum(), h_bkg.sum()
    if tot_sig <= 0 or tot_bkg <= 0:
        raise ValueError("class weights must sum to a positive value")
    p_sig, p_bkg = h_sig / tot_sig, h_bkg / tot_bkg
    den = p_sig + p_bkg
    ok = den > 0
    r = np.zeros_like(den)
    r[ok] = (p_sig[ok] - p_bkg[ok]) / den[ok]
    value = float(0.5 * np.sum(r[ok] ** 2 * den[ok]))
    g_sig = np.where(ok, r - 0.5 * r * r, 0.0)
    g_bkg = np.where(ok, -r - 0.5 * r * r, 0.0)
    phi = np.where(is_sig, w * (g_sig[idx] - np.dot(g_sig, p_sig)) / tot_sig,
                   w * (g_bkg[idx] - np.dot(g_bkg, p_bkg)) / tot_bkg)
    return Linearised(value, phi, st)


def significance(scores: ArrayLike, labels: ArrayLike, weights: ArrayLike | None,
                 cut: float, n_sig: float | None = None, n_bkg: float | None = None
                 ) -> Linearised:
    """``Z = S / sqrt(S + B)`` of the selection ``score >= cut`` with the classes scaled to
    the yields ``n_sig``/``n_bkg`` (taken as exact; ``None``: the weighted sums).

    At the optimal cut ``dZ/dcut = 0``, so the uncertainty of where the optimum lies does not
    enter to first order: only the selected fractions of the two classes vary.
    """
    s, is_sig, w = check_inputs(scores, labels, weights)
    passed = (s >= float(cut)).astype(float)
    w_sig = np.where(is_sig, w, 0.0)
    tot_sig, tot_bkg = float(w_sig.sum()), float((w - w_sig).sum())
    if tot_sig <= 0 or tot_bkg <= 0:
        raise ValueError("class weights must sum to a positive value")
    e_sig = float(np.dot(w_sig, passed) / tot_sig)
    e_bkg = float(np.dot(w - w_sig, passed) / tot_bkg)
    n_s = tot_sig if n_sig is None else float(n_sig)
    n_b = tot_bkg if n_bkg is None else float(n_bkg)
    sig, bkg = n_s * e_sig, n_b * e_bkg
    st = _strata(labels, s.size)
    if not sig + bkg > 0:
        return Linearised(float("nan"), np.zeros(s.size), st)
    value = sig / np.sqrt(sig + bkg)
    d_sig = (sig + 2.0 * bkg) / (2.0 * (sig + bkg) ** 1.5)
    d_bkg = -sig / (2.0 * (sig + bkg) ** 1.5)
    phi = np.where(is_sig, d_sig * n_s * w * (passed - e_sig) / tot_sig,
                   d_bkg * n_b * w * (passed - e_bkg) / tot_bkg)
    return Linearised(float(value), phi, st)


# --------------------------------------------------------------------------- multiclass


def _class_inputs(probs: Any, labels: Any, weights: Any) -> tuple[np.ndarray, np.ndarray,
                                                                   np.ndarray]:
    from mva.evaluation.multiclass import _check

    return _check(probs, labels, weights)


def _weighted_mean_figure(values: np.ndarray, w: np.ndarray, strata: np.ndarray) -> Linearised:
    """A weighted mean ``sum w v / sum w``: influence ``w (v - mean) / sum w``."""
    total = positive_total(w)
    value = float(np.dot(w, values) / total)
    return Linearised(value, w * (values - value) / total, strata)


def accuracy(probs: Any, labels: Any, weights: Any = None) -> Linearised:
    """Weighted accuracy (argmax), stratified by the true class."""
    p, y, w = _class_inputs(probs, labels, weights)
    return _weighted_mean_figure((np.argmax(p, axis=1) == y).astype(float), w, y)


def log_loss(probs: Any, labels: Any, weights: Any = None) -> Linearised:
    """Weighted log loss (:func:`mva.evaluation.multiclass.log_loss`), stratified by class."""
    from mva.evaluation.multiclass import LOG_LOSS_EPS

    p, y, w = _class_inputs(probs, labels, weights)
    loss = -np.log(np.clip(p[np.arange(y.size), y], LOG_LOSS_EPS, 1.0))
    return _weighted_mean_figure(loss, w, y)


def auc_ovr(probs: Any, labels: Any, weights: Any = None) -> list[Linearised]:
    """One-vs-rest AUC of every class, stratified by the true class."""
    p, y, w = _class_inputs(probs, labels, weights)
    return [auc(p[:, k], y == k, w, strata=y) for k in range(p.shape[1])]


def auc_macro(aucs: Sequence[Linearised]) -> Linearised:
    """The mean of one-vs-rest AUCs (:func:`auc_ovr`), with the correlations between the
    classes (the same events) in its influence."""
    total = aucs[0]
    for a in aucs[1:]:
        total = total + a
    return total.scaled(1.0 / len(aucs))


# --------------------------------------------------------------------------- regression


def _values(x: Any, weights: Any, name: str = "x") -> tuple[np.ndarray, np.ndarray]:
    arr = as_1d(x, name)
    if arr.size == 0:
        raise ValueError("need at least one entry")
    return arr, weights_or_ones(weights, arr.size)


def _one_stratum(n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.intp)


def mean(x: ArrayLike, weights: ArrayLike | None = None) -> Linearised:
    """Weighted mean (the bias of residuals)."""
    arr, w = _values(x, weights)
    return _weighted_mean_figure(arr, w, _one_stratum(arr.size))


def mean_abs(x: ArrayLike, weights: ArrayLike | None = None) -> Linearised:
    """Weighted mean of ``|x|`` (the MAE of residuals)."""
    arr, w = _values(x, weights)
    return _weighted_mean_figure(np.abs(arr), w, _one_stratum(arr.size))


def fraction(selected: ArrayLike, weights: ArrayLike | None = None) -> Linearised:
    """Weighted fraction of events with ``selected`` true (binomial, with weights)."""
    sel = np.asarray(selected, dtype=bool).reshape(-1)
    w = weights_or_ones(weights, sel.size)
    return _weighted_mean_figure(sel.astype(float), w, _one_stratum(sel.size))


def std(x: ArrayLike, weights: ArrayLike | None = None) -> Linearised:
    """Weighted (population) standard deviation, the rms of residuals about their mean:
    influence ``w ((x - mean)^2 - std^2) / (2 std sum w)`` (includes the kurtosis)."""
    arr, w = _values(x, weights)
    total = positive_total(w)
    mu = float(np.dot(w, arr) / total)
    dev2 = (arr - mu) ** 2
    var = max(float(np.dot(w, dev2) / total), 0.0)
    sd = float(np.sqrt(var))
    phi = w * (dev2 - var) / (2.0 * sd * total) if sd > 0 else np.zeros(arr.size)
    return Linearised(sd, phi, _one_stratum(arr.size))


def _bandwidth(arr: np.ndarray, w: np.ndarray) -> float:
    """Silverman's rule ``0.9 min(sd, IQR/1.34) n_eff^(-1/5)`` with weights."""
    from mva.evaluation._arrays import weighted_quantile

    keep = w > 0
    a, ww = arr[keep], w[keep]
    total = float(ww.sum())
    mu = float(np.dot(ww, a) / total)
    sd = float(np.sqrt(np.dot(ww, (a - mu) ** 2) / total))
    q1, q3 = weighted_quantile(a, [0.25, 0.75], ww)
    spread = min(sd, (q3 - q1) / 1.34) if q3 > q1 else sd
    n_eff = total**2 / float(np.sum(ww * ww))
    return 0.9 * spread * n_eff ** (-0.2)


def _density(arr: np.ndarray, w: np.ndarray, points: Sequence[float]) -> np.ndarray:
    """Weighted density of ``arr`` at ``points`` (box kernel of Silverman's width)."""
    h = _bandwidth(arr, w)
    if not h > 0:
        return np.full(len(points), np.nan)
    order = np.argsort(arr)
    xs, cum = arr[order], np.r_[0.0, np.cumsum(w[order])]
    pts = np.asarray(points, dtype=float)
    lo = np.searchsorted(xs, pts - h, side="left")
    hi = np.searchsorted(xs, pts + h, side="right")
    return (cum[hi] - cum[lo]) / (2.0 * h * cum[-1])


def _with_density(value: float, indicator: np.ndarray, w: np.ndarray, scale: float,
                  strata: np.ndarray) -> Linearised:
    """Figure whose influence is ``scale * w (indicator - its weighted mean) / sum w``."""
    if not np.isfinite(scale):
        return Linearised(value, np.full(w.size, np.nan), strata)
    total = positive_total(w)
    frac = float(np.dot(w, indicator) / total)
    return Linearised(value, scale * w * (indicator - frac) / total, strata)


def quantile(x: ArrayLike, q: float, weights: ArrayLike | None = None) -> Linearised:
    """Weighted quantile (:func:`mva.evaluation._arrays.weighted_quantile`): influence
    ``(q - [x <= x_q]) / f(x_q)``, with the density ``f`` from a box kernel."""
    from mva.evaluation._arrays import weighted_quantile

    arr, w = _values(x, weights)
    value = float(weighted_quantile(arr, q, w))
    f = float(_density(arr, w, [value])[0])
    return _with_density(value, (arr <= value).astype(float), w,
                         -1.0 / f if f > 0 else np.nan, _one_stratum(arr.size))


def sigma_eff(x: ArrayLike, weights: ArrayLike | None = None,
              fraction: float = 0.683) -> Linearised:
    """Half-width of the smallest interval with ``fraction`` of the weight
    (:func:`mva.evaluation.regression.sigma_eff`).

    For the narrowest interval ``[a, b]`` the density is the same at both ends, so moving
    either end gives the influence ``-([a <= x <= b] - fraction) / (2 f)``; ``f`` is the
    kernel density averaged (harmonically) over the two ends.
    """
    from mva.evaluation.regression import shortest_interval

    arr, w = _values(x, weights)
    lo, hi = shortest_interval(arr, w, fraction)
    f_lo, f_hi = _density(arr, w, [lo, hi])
    f = 2.0 / (1.0 / f_lo + 1.0 / f_hi) if f_lo > 0 and f_hi > 0 else np.nan
    inside = ((arr >= lo) & (arr <= hi)).astype(float)
    return _with_density(0.5 * (hi - lo), inside, w, -0.5 / f, _one_stratum(arr.size))


def rms_trunc(x: ArrayLike, weights: ArrayLike | None = None, k: float = 2.0) -> Linearised:
    """TMVA's truncated rms: the standard deviation of the ``x`` within ``mean +- k rms``
    (:func:`mva.evaluation.regression.regression_metrics`). The influence includes the
    window's ends, which move with the mean and the rms of all events."""
    arr, w = _values(x, weights)
    st = _one_stratum(arr.size)
    total = positive_total(w)
    mu = float(np.dot(w, arr) / total)
    sd = float(np.sqrt(max(np.dot(w, (arr - mu) ** 2) / total, 0.0)))
    inside = np.abs(arr - mu) < k * sd
    if not (inside.any() and np.sum(w[inside]) > 0) or sd == 0:
        return std(arr, w)
    wi = np.where(inside, w, 0.0) / total
    a0, a1, a2 = float(wi.sum()), float(np.dot(wi, arr)), float(np.dot(wi, arr * arr))
    m_t = a1 / a0
    r2 = max(a2 / a0 - m_t * m_t, 0.0)
    r = float(np.sqrt(r2))
    if r == 0:
        return Linearised(0.0, np.zeros(arr.size), st)
    ends = (mu - k * sd, mu + k * sd)
    f_lo, f_hi = _density(arr, w, ends)
    if not (np.isfinite(f_lo) and np.isfinite(f_hi)):
        return Linearised(r, np.full(arr.size, np.nan), st)
    # per-event influence functions (before the weight factor w / total)
    if_mu = arr - mu
    if_sd = ((arr - mu) ** 2 - sd * sd) / (2.0 * sd)
    if_ends = (if_mu - k * if_sd, if_mu + k * if_sd)
    ind = inside.astype(float)

    def if_moment(p: int) -> np.ndarray:
        base = ind * arr**p - (a0, a1, a2)[p]
        return (base + f_hi * ends[1] ** p * if_ends[1] - f_lo * ends[0] ** p * if_ends[0])

    i0, i1, i2 = if_moment(0), if_moment(1), if_moment(2)
    if_r2 = i2 / a0 - a2 * i0 / a0**2 - 2.0 * m_t * (i1 / a0 - a1 * i0 / a0**2)
    return Linearised(r, w * if_r2 / (2.0 * r * total), st)


# --------------------------------------------------------------------------- per task


def _json_float(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _eff_keys(eff_bkg: Sequence[float]) -> list[str]:
    return [f"{float(t):g}" for t in eff_bkg]


def binary_errors(scores: ArrayLike, labels: ArrayLike, weights: ArrayLike | None,
                  eff_bkg: Sequence[float] = (0.01, 0.1, 0.3)) -> dict[str, Any]:
    """``roc_auc_err``, ``eff_sig_at_bkg_err`` (``{"0.01": .., ...}``) and
    ``separation_err`` of binary classification scores (one sort for all)."""
    r = _ranked(scores, labels, weights)
    st = _strata(labels, r.s.size)
    _, eff_err = r.eff_sig_err(np.asarray(eff_bkg, dtype=float), st)
    return {
        # the AUC that auc() gives for these arrays, on this ranking
        "roc_auc_err": once("auc", scores, labels, weights, lambda *_: r.auc(st)).json_err,
        "eff_sig_at_bkg_err": dict(zip(_eff_keys(eff_bkg), map(_json_float, eff_err),
                                       strict=True)),
        "separation_err": separation(r.s, r.is_sig, r.w, strata=st).json_err,
    }


def multiclass_errors(probs: Any, labels: Any, weights: Any, classes: Sequence[str],
                      eff_bkg: Sequence[float] = (0.01, 0.1, 0.3)) -> dict[str, Any]:
    """``accuracy_err``, ``log_loss_err``, ``roc_auc_ovr_err`` (per class),
    ``roc_auc_macro_err`` and ``eff_at_bkg_err`` (per class) of class probabilities."""
    p, y, w = _class_inputs(probs, labels, weights)
    names = [str(c) for c in classes]
    aucs = auc_ovr(p, y, w)
    effs = {}
    for k, c in enumerate(names):
        _, err = eff_sig_at_bkg(p[:, k], y == k, w, eff_bkg, strata=y)
        effs[c] = dict(zip(_eff_keys(eff_bkg), map(_json_float, err), strict=True))
    return {
        "accuracy_err": accuracy(p, y, w).json_err,
        "log_loss_err": log_loss(p, y, w).json_err,
        "roc_auc_ovr_err": {c: a.json_err for c, a in zip(names, aucs, strict=True)},
        "roc_auc_macro_err": auc_macro(aucs).json_err,
        "eff_at_bkg_err": effs,
    }


def regression_figures(prediction: ArrayLike, target: ArrayLike,
                       weights: ArrayLike | None = None, width: ArrayLike | None = None
                       ) -> dict[str, Linearised]:
    """The regression figures of :func:`mva.evaluation.regression.regression_metrics` with
    their influences (``d = prediction - target``)."""
    pred, w = _values(prediction, weights, "prediction")
    tgt = as_1d(target, "target")
    if tgt.size != pred.size:
        raise ValueError(f"target has length {tgt.size}, expected {pred.size}")
    d = pred - tgt
    out = {"bias": mean(d, w), "rms": std(d, w), "rms_trunc": rms_trunc(d, w),
           "mae": mean_abs(d, w), "sigma_eff": sigma_eff(d, w)}
    nonzero = tgt != 0
    if nonzero.any() and np.sum(w[nonzero]) > 0:
        # the median of the ratio, its influence spread over the events with a target
        med = quantile(pred[nonzero] / tgt[nonzero], 0.5, w[nonzero])
        phi = np.zeros(d.size)
        phi[nonzero] = med.phi
        out["median"] = Linearised(med.value, phi, _one_stratum(d.size))
    if width is not None:
        sig = as_1d(width, "width")
        if sig.size == d.size and np.all(sig > 0):
            out["pull_sigma_eff"] = sigma_eff(d / sig, w)
            out["coverage_68"] = fraction(np.abs(d) < sig, w)
    return out


def regression_errors(prediction: ArrayLike, target: ArrayLike,
                      weights: ArrayLike | None = None, width: ArrayLike | None = None
                      ) -> dict[str, float | None]:
    """``<figure>_err`` of every figure of :func:`regression_figures`."""
    return {f"{k}_err": v.json_err
            for k, v in regression_figures(prediction, target, weights, width).items()}


# --------------------------------------------------------------------------- results


def format_pm(value: float, err: float | None, spec: str) -> str:
    """``value ± err`` as text. A fixed-point ``spec`` (``.4f``) formats both; a general one
    (``#.4g``) gives both as many decimals as two significant digits of ``err`` need."""
    if err is None or not np.isfinite(err):
        return format(value, spec)
    if spec.endswith("g") and err > 0:
        dec = max(0, 1 - int(np.floor(np.log10(err))))
        return f"{value:{spec[0] if spec[0] == '+' else ''}.{dec}f} ± {err:.{dec}f}"
    return f"{format(value, spec)} ± {format(err, spec.lstrip('+'))}"


def beside(values: Mapping[str, Any], errors: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with each ``<key>_err`` of ``errors`` placed right after ``<key>``."""
    out: dict[str, Any] = {}
    for key, v in values.items():
        out[key] = v
        if f"{key}_err" in errors:
            out[f"{key}_err"] = errors[f"{key}_err"]
    out.update({k: v for k, v in errors.items() if k not in out})
    return out


def compare(figures: Mapping[str, Linearised], larger_is_better: bool = True,
            threshold: float = SIGNIFICANT) -> dict[str, Any] | None:
    """Paired differences of one figure between every two methods on the same events.

    Returns
    -------
    dict or None
        ``pairs``: for every two methods ``a`` (the better) and ``b``, ``diff`` (a - b),
        ``diff_err`` (from the paired influences ``phi_a - phi_b``) and ``z`` (how many
        standard deviations ``a`` is better by); ``best``, ``next`` (the runner-up), their
        ``diff``, ``diff_err``, ``z``, ``threshold`` and ``significant`` (``z > threshold``).
        None for fewer than two methods.
    """
    finite = {n: f for n, f in figures.items() if np.isfinite(f.value)}
    if len(finite) < 2:
        return None
    sign = 1.0 if larger_is_better else -1.0
    ranked = sorted(finite, key=lambda n: -sign * finite[n].value)
    pairs = []
    for a, b in itertools.combinations(ranked, 2):
        d = finite[a] - finite[b]
        err = d.json_err
        z = sign * d.value / err if err else None
        pairs.append({"a": a, "b": b, "diff": float(d.value), "diff_err": err,
                      "z": None if z is None or not np.isfinite(z) else float(z)})
    head = pairs[0]
    return {"best": ranked[0], "next": ranked[1], "diff": head["diff"],
            "diff_err": head["diff_err"], "z": head["z"], "threshold": float(threshold),
            "significant": bool(head["z"] is not None and head["z"] > threshold),
            "pairs": pairs}
