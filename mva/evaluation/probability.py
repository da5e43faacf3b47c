"""Signal probability P(S|y) and Rarity R(y) of a classifier score.

A classifier score ``y`` is turned into a physics-usable signal probability
``P(S|y) = p(y|S) f_s / (p(y|S) f_s + p(y|B) (1 - f_s))`` for a chosen signal fraction ``f_s``, and
into TMVA's Rarity ``R(y)``, the background cumulative distribution of ``y`` (uniform for
background). The class densities are smoothed, weighted kernel density estimates fitted on events
the classifier did not train on, tabulated on a grid so that evaluation is an interpolation.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from scipy.special import expit

from mva.evaluation._arrays import check_inputs, weighted_quantile

logger = logging.getLogger(__name__)

_FORMAT = "mva.ScoreDensities"
_VERSION = 1
# Events are merged into bins of a quarter bandwidth before the kernel sum: this adds a variance
# of at most (h/4)^2/12 to the kernel (< 0.6 % of h^2) and bounds the cost by the range / h.
_BINS_PER_BANDWIDTH = 4
# Gaussian kernel truncation in standard deviations: exp(-8^2/2) ~ 1e-14 lies below the density
# floor, so the truncation leaves no visible step.
_KERNEL_TRUNCATE = 8.0
# Kernel width, as a fraction of the score range, for a class whose scores are all equal.
_ZERO_SPREAD_BANDWIDTH_REL = 1e-3
# Densities are clipped at this fraction of their peak (negative weights, truncated kernels).
_FLOOR_REL = 1e-12
# Where both densities are below this fraction of their peaks, their ratio is round-off noise.
_TINY_REL = 1e-9
# Knots of the background CDF table: interpolation error in the Rarity <= ~1/(knots - 1).
_N_CDF_KNOTS = 2001


def _rule_bandwidth(x: np.ndarray, w: np.ndarray, rule: str) -> float:
    """Scott (``A n^-1/5``, as scipy.stats.gaussian_kde) or Silverman (``0.9 A n^-1/5``) width.

    The spread ``A = min(std, IQR / 1.349)`` is robust, so that a few far outliers of an unbounded
    score do not blow the kernel up. Uses ``|w|`` (a spread and an effective count need positive
    weights) and Kish's effective sample size ``(sum |w|)^2 / sum w^2``, so that weighted events
    do not count as more events than they are.
    """
    aw = np.abs(w)
    total = aw.sum()
    n_eff = total**2 / np.sum(aw**2)
    mean = np.sum(aw * x) / total
    sigma = float(np.sqrt(np.sum(aw * (x - mean) ** 2) / total))
    q25, q75 = weighted_quantile(x, [0.25, 0.75], aw, method="inverted_cdf")
    spread = min(sigma, (q75 - q25) / 1.349) if q75 > q25 else sigma
    return (1.0 if rule == "scott" else 0.9) * spread * n_eff ** (-0.2)


def _score_grid(
    x: np.ndarray, w: np.ndarray, is_sig: np.ndarray, lo: float, hi: float, n_grid: int
) -> np.ndarray:
    """Grid nodes: half evenly spaced on ``[lo, hi]``, half at quantiles of the class-balanced
    pooled scores.

    The quantile nodes put resolution where the events are (scores piling up at 0 and 1, the
    bulk of an unbounded score with far outliers); the even nodes cover the gaps.
    """
    aw = np.abs(w)
    # Each class gets half of the quantile nodes' weight, whatever the class sizes.
    balance = np.where(is_sig, 1.0 / aw[is_sig].sum(), 1.0 / aw[~is_sig].sum())
    n_even = n_grid // 2
    quantiles = weighted_quantile(x, np.linspace(0.0, 1.0, n_grid - n_even), aw * balance,
                                  method="inverted_cdf")
    return np.unique(np.r_[lo, np.linspace(lo, hi, n_even), quantiles, hi])


def _reflected_kde(
    x: np.ndarray, w: np.ndarray, lo: float, hi: float, nodes: np.ndarray, bandwidth: float
) -> np.ndarray:
    """Weighted Gaussian KDE at ``nodes``, reflected at ``lo`` and ``hi``.

    Events are merged into sparse bins of width ``bandwidth / 4`` (located at their mean score,
    so isolated events keep their position), then the kernel is summed exactly over the bins and
    their mirror images about ``lo`` and ``hi`` (all images that reach the range, so the density
    integrates to one on ``[lo, hi]``). May be negative where negative weights dominate.
    """
    width = hi - lo
    step = bandwidth / _BINS_PER_BANDWIDTH
    _, inverse = np.unique(np.floor((x - lo) / step).astype(np.int64), return_inverse=True)
    mass = np.bincount(inverse, weights=w)
    aw = np.abs(w)
    norm = np.bincount(inverse, weights=aw)
    # A bin of zero-weight events has no mass, so where it sits does not matter.
    position = np.bincount(inverse, weights=aw * x) / np.where(norm > 0, norm, 1.0)
    # Images p + 2kR (and their mirrors) lie (2|k| - 1) R from the range: keep those within 8 h.
    n_images = int(np.ceil(4.0 * bandwidth / width + 0.5))
    shifts = 2.0 * width * np.arange(-n_images, n_images + 1)
    sources = np.concatenate([np.add.outer(shifts, position).ravel(),
                              np.add.outer(shifts, 2.0 * lo - position).ravel()])
    source_mass = np.tile(mass, 2 * shifts.size)
    reach = _KERNEL_TRUNCATE * bandwidth
    near = (sources > lo - reach) & (sources < hi + reach)
    order = np.argsort(sources[near], kind="stable")
    sources, source_mass = sources[near][order], source_mass[near][order]
    # Only the sources within the truncation radius of a node contribute: a window per node keeps
    # the cost bounded by (nodes x events within 2 * reach), whatever the score range.
    first = np.searchsorted(sources, nodes - reach, side="left")
    last = np.searchsorted(sources, nodes + reach, side="right")
    dens = np.empty(nodes.size)
    for i, (a, b) in enumerate(zip(first, last)):
        z = (nodes[i] - sources[a:b]) / bandwidth
        dens[i] = np.exp(-0.5 * z * z) @ source_mass[a:b]
    return dens / (np.sqrt(2.0 * np.pi) * bandwidth * w.sum())


def _background_cdf_table(
    x: np.ndarray, w: np.ndarray, lo: float, hi: float
) -> tuple[np.ndarray, np.ndarray]:
    """Knots ``(score, CDF)`` of the weighted empirical background CDF, mid-rank convention.

    The mid-rank value ``F(x_i) - w_i / (2 W)`` makes the Rarity of a continuous background uniform
    rather than shifted by half an event; ties (scores piled at a boundary) share one mid value.
    """
    order = np.argsort(x)
    xs, ws = x[order], w[order]
    uniq, first = np.unique(xs, return_index=True)
    wu = np.add.reduceat(ws, first)
    total = ws.sum()
    mid = (np.cumsum(wu) - 0.5 * wu) / total
    # Negative weights can make the empirical CDF decrease; a CDF cannot.
    mid = np.maximum.accumulate(np.clip(mid, 0.0, 1.0))
    knots_x, knots_f = uniq, mid
    if lo < uniq[0]:
        knots_x, knots_f = np.r_[lo, knots_x], np.r_[0.0, knots_f]
    if hi > uniq[-1]:
        knots_x, knots_f = np.r_[knots_x, hi], np.r_[knots_f, 1.0]
    if knots_x.size > _N_CDF_KNOTS:
        # Keep knots evenly spaced in probability, so the table stays small for large samples.
        keep = np.searchsorted(knots_f, np.linspace(0.0, 1.0, _N_CDF_KNOTS))
        keep = np.unique(np.clip(np.r_[0, keep, knots_x.size - 1], 0, knots_x.size - 1))
        knots_x, knots_f = knots_x[keep], knots_f[keep]
    return knots_x, knots_f


def _fill_unreliable(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace ``values`` where ``valid`` is False by interpolation between the nearest valid
    neighbours (constant beyond the first/last valid point)."""
    if valid.all():
        return values
    pos = np.arange(values.size)
    good = np.flatnonzero(valid)
    return np.where(valid, values, np.interp(pos, good, values[good]))


class ScoreDensities:
    """Smoothed weighted densities p(y|S), p(y|B) of a classifier score.

    Fit on events the model did not train on (test events). The densities are Gaussian kernel
    density estimates with reflection at the observed minimum and maximum of all scores, so
    bounded scores (BDT probabilities piling at 0 and 1) are not depleted at the ends; scores
    outside the fitted range are evaluated at the nearest end. Everything is stored as plain JSON
    data (grid, densities, log likelihood ratio, background CDF table) and evaluation is linear
    interpolation.

    Parameters
    ----------
    n_grid : int
        Number of grid points between the lowest and highest fitted score: half evenly spaced,
        half at quantiles of the scores (fewer if scores tie).
    bandwidth : {"scott", "silverman"} or float
        Rule for the per-class kernel width (with Kish's effective number of weighted events), or
        a fixed width in score units.

    Attributes
    ----------
    grid_ : numpy.ndarray
        Score nodes (increasing) where the tables below are given.
    pdf_signal_, pdf_background_ : numpy.ndarray
        Densities at the nodes, clipped at a small positive floor.
    log_ratio_ : numpy.ndarray
        ``log(pdf_signal_ / pdf_background_)``, filled in where both densities are negligible.
    cdf_x_, cdf_background_ : numpy.ndarray
        Knots of the weighted background CDF (the Rarity).
    bandwidths_ : dict
        Kernel width used for ``"signal"`` and ``"background"``, in score units.
    """

    def __init__(self, n_grid: int = 200, bandwidth: float | str = "scott") -> None:
        if int(n_grid) < 3:
            raise ValueError(f"n_grid must be >= 3, got {n_grid}")
        if isinstance(bandwidth, str):
            if bandwidth not in ("scott", "silverman"):
                raise ValueError(f"bandwidth must be 'scott', 'silverman' or > 0: {bandwidth!r}")
        elif not (np.isfinite(bandwidth) and bandwidth > 0):
            raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
        self.n_grid = int(n_grid)
        self.bandwidth: float | str = bandwidth if isinstance(bandwidth, str) else float(bandwidth)
        self.grid_: np.ndarray | None = None
        self.pdf_signal_: np.ndarray | None = None
        self.pdf_background_: np.ndarray | None = None
        self.log_ratio_: np.ndarray | None = None
        self.cdf_x_: np.ndarray | None = None
        self.cdf_background_: np.ndarray | None = None
        self.bandwidths_: dict[str, float] = {}

    # ------------------------------------------------------------------ fitting
    def fit(self, scores: Any, labels: Any, weights: Any = None) -> ScoreDensities:
        """Fit both class densities and the background CDF.

        Parameters
        ----------
        scores : array_like
            Classifier outputs of test events.
        labels : array_like
            1 for signal, 0 for background.
        weights : array_like, optional
            Event weights (negative allowed; each class needs a positive total).

        Returns
        -------
        ScoreDensities
            ``self``.
        """
        s, is_sig, w = check_inputs(scores, labels, weights, flatten=True)
        for name, mask in (("signal", is_sig), ("background", ~is_sig)):
            if not mask.any():
                raise ValueError(f"no {name} events to fit")
            if w[mask].sum() <= 0:
                raise ValueError(f"{name} events have a non-positive total weight")
        lo, hi = float(s.min()), float(s.max())
        if hi <= lo:
            # All scores equal: give the grid a width so that it is still a valid table.
            pad = max(abs(lo), 1.0) * 1e-6
            lo, hi = lo - pad, hi + pad
        grid = _score_grid(s, w, is_sig, lo, hi, self.n_grid)

        pdfs: dict[str, np.ndarray] = {}
        reliable = np.zeros(grid.size, dtype=bool)
        for name, mask in (("signal", is_sig), ("background", ~is_sig)):
            h = self._bandwidth_for(s[mask], w[mask])
            if not h > 0:
                # One distinct score: the class still needs a kernel.
                h = _ZERO_SPREAD_BANDWIDTH_REL * (hi - lo)
            # Beyond the range the reflected density is flat anyway; wider only costs images.
            h = float(min(h, hi - lo))
            self.bandwidths_[name] = h
            dens = _reflected_kde(s[mask], w[mask], lo, hi, grid, h)
            peak = dens.max()
            if np.any(dens < 0):
                logger.info("%s density negative on %d of %d grid points (negative weights); "
                            "clipped", name, int(np.sum(dens < 0)), dens.size)
            reliable |= dens > _TINY_REL * peak
            pdfs[name] = np.maximum(dens, _FLOOR_REL * peak)
        logger.debug("fitted score densities on [%g, %g], bandwidths %s", lo, hi, self.bandwidths_)

        log_ratio = np.log(pdfs["signal"]) - np.log(pdfs["background"])
        self.grid_ = grid
        self.pdf_signal_ = pdfs["signal"]
        self.pdf_background_ = pdfs["background"]
        self.log_ratio_ = _fill_unreliable(log_ratio, reliable)
        self.cdf_x_, self.cdf_background_ = _background_cdf_table(s[~is_sig], w[~is_sig], lo, hi)
        return self

    def _bandwidth_for(self, x: np.ndarray, w: np.ndarray) -> float:
        if isinstance(self.bandwidth, str):
            return _rule_bandwidth(x, w, self.bandwidth)
        return self.bandwidth

    # --------------------------------------------------------------- evaluation
    def _fitted(self) -> None:
        if self.grid_ is None:
            raise RuntimeError("ScoreDensities is not fitted; call fit() or from_dict() first")

    def _interp(self, y: Any, table: np.ndarray | None) -> np.ndarray:
        self._fitted()
        return np.asarray(np.interp(np.asarray(y, dtype=float), self.grid_, table), dtype=float)

    def pdf_signal(self, y: Any) -> np.ndarray:
        """Signal density p(y|S); scores outside the fitted range take the edge value."""
        return self._interp(y, self.pdf_signal_)

    def pdf_background(self, y: Any) -> np.ndarray:
        """Background density p(y|B); scores outside the fitted range take the edge value."""
        return self._interp(y, self.pdf_background_)

    def probability(self, y: Any, signal_fraction: float) -> np.ndarray:
        """Signal probability P(S|y) for a signal fraction ``f_s`` of the sample.

        Computed as ``expit(log p(y|S)/p(y|B) + logit f_s)``, which is the formula in the module
        docstring without its 0/0: where both densities are negligible the log ratio is taken
        from the nearest grid points where they are not.
        """
        f = float(signal_fraction)
        if not 0.0 <= f <= 1.0:
            raise ValueError(f"signal_fraction must be in [0, 1], got {signal_fraction}")
        log_ratio = self._interp(y, self.log_ratio_)
        if f == 0.0 or f == 1.0:
            return np.full_like(log_ratio, f)
        return np.asarray(expit(log_ratio + np.log(f) - np.log1p(-f)), dtype=float)

    def rarity(self, y: Any) -> np.ndarray:
        """TMVA Rarity: the weighted background CDF at ``y``, uniform in [0, 1] for background.

        Taken from the empirical (not smoothed) weighted background distribution, so that it is
        flat to the statistical precision of the fit sample even where scores pile up.
        """
        self._fitted()
        return np.asarray(
            np.interp(np.asarray(y, dtype=float), self.cdf_x_, self.cdf_background_), dtype=float
        )

    # ---------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        """Plain JSON-serialisable content (lists of floats; exact round trip through ``json``)."""
        self._fitted()
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "n_grid": self.n_grid,
            "bandwidth": self.bandwidth,
            "bandwidths": {k: float(v) for k, v in self.bandwidths_.items()},
            "grid": self.grid_.tolist(),
            "pdf_signal": self.pdf_signal_.tolist(),
            "pdf_background": self.pdf_background_.tolist(),
            "log_ratio": self.log_ratio_.tolist(),
            "cdf_x": self.cdf_x_.tolist(),
            "cdf_background": self.cdf_background_.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> ScoreDensities:
        """Rebuild a fitted instance from :meth:`to_dict` output."""
        if d.get("format") != _FORMAT or d.get("version") != _VERSION:
            raise ValueError(
                f"not a {_FORMAT} v{_VERSION} record: {d.get('format')!r} v{d.get('version')!r}"
            )
        obj = cls(n_grid=d["n_grid"], bandwidth=d["bandwidth"])
        obj.bandwidths_ = {k: float(v) for k, v in d["bandwidths"].items()}
        obj.grid_ = np.asarray(d["grid"], dtype=float)
        obj.pdf_signal_ = np.asarray(d["pdf_signal"], dtype=float)
        obj.pdf_background_ = np.asarray(d["pdf_background"], dtype=float)
        obj.log_ratio_ = np.asarray(d["log_ratio"], dtype=float)
        obj.cdf_x_ = np.asarray(d["cdf_x"], dtype=float)
        obj.cdf_background_ = np.asarray(d["cdf_background"], dtype=float)
        n = obj.grid_.size
        if not all(a.size == n for a in (obj.pdf_signal_, obj.pdf_background_, obj.log_ratio_)):
            raise ValueError("grid and density tables have different lengths")
        if obj.cdf_x_.size != obj.cdf_background_.size:
            raise ValueError("background CDF table has mismatched lengths")
        return obj


# ------------------------------------------------------------------ calibration
def _bin_probabilities(
    prob: Any, labels: Any, weights: Any, bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    p, is_sig, w = check_inputs(prob, labels, weights, flatten=True)
    if np.any((p < 0) | (p > 1)):
        raise ValueError("probabilities must lie in [0, 1]")
    if int(bins) < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    edges = np.linspace(0.0, 1.0, int(bins) + 1)
    # Same convention as sklearn.calibration.calibration_curve: bins (a, b], the first one [0, b].
    idx = np.searchsorted(edges[1:-1], p, side="left")
    sum_w = np.bincount(idx, weights=w, minlength=bins)
    sum_wp = np.bincount(idx, weights=w * p, minlength=bins)
    sum_ws = np.bincount(idx, weights=w * is_sig, minlength=bins)
    return edges, sum_w, sum_wp, sum_ws, w


def reliability_curve(
    prob: Any, labels: Any, weights: Any = None, bins: int = 10
) -> dict[str, np.ndarray]:
    """Weighted reliability diagram of predicted signal probabilities.

    Parameters
    ----------
    prob : array_like
        Predicted P(S), in [0, 1].
    labels : array_like
        1 for signal, 0 for background.
    weights : array_like, optional
        Event weights.
    bins : int
        Equal-width bins on [0, 1]; bin k is (edge_k, edge_k+1], the first also includes 0.

    Returns
    -------
    dict
        ``bin_edges`` (bins + 1), and per bin ``mean_prob`` (weighted mean prediction),
        ``signal_fraction`` (weighted observed signal fraction) and ``sum_weights``. Bins whose
        total weight is not positive have NaN mean and fraction.
    """
    edges, sum_w, sum_wp, sum_ws, _ = _bin_probabilities(prob, labels, weights, bins)
    filled = sum_w > 0
    safe = np.where(filled, sum_w, 1.0)
    return {
        "bin_edges": edges,
        "mean_prob": np.where(filled, sum_wp / safe, np.nan),
        "signal_fraction": np.where(filled, sum_ws / safe, np.nan),
        "sum_weights": sum_w,
    }


def expected_calibration_error(
    prob: Any, labels: Any, weights: Any = None, bins: int = 10
) -> float:
    """Expected calibration error: ``sum_k W_k |mean_prob_k - signal_fraction_k| / sum_k W_k``.

    Bins as in :func:`reliability_curve`; bins with non-positive total weight are left out.
    """
    curve = reliability_curve(prob, labels, weights, bins)
    filled = curve["sum_weights"] > 0
    w = curve["sum_weights"][filled]
    if w.sum() <= 0:
        raise ValueError("no bin has a positive total weight")
    gap = np.abs(curve["mean_prob"][filled] - curve["signal_fraction"][filled])
    return float(np.sum(w * gap) / w.sum())


def reweight_to_fraction(labels: Any, weights: Any, signal_fraction: float) -> np.ndarray:
    """Scale signal and background weights so signal is ``signal_fraction`` of the total.

    Relative weights within each class and the total weight are kept.

    Parameters
    ----------
    labels : array_like
        1 for signal, 0 for background.
    weights : array_like or None
        Event weights (None: unit weights).
    signal_fraction : float
        Target fraction f_s in [0, 1].

    Returns
    -------
    numpy.ndarray
        New weights.
    """
    lab = np.asarray(labels).ravel()
    _, is_sig, w = check_inputs(np.zeros(lab.size), lab, weights, flatten=True)
    f = float(signal_fraction)
    if not 0.0 <= f <= 1.0:
        raise ValueError(f"signal_fraction must be in [0, 1], got {signal_fraction}")
    w_sig, w_bkg = w[is_sig].sum(), w[~is_sig].sum()
    if (f > 0 and w_sig <= 0) or (f < 1 and w_bkg <= 0):
        raise ValueError("a class needed for this signal fraction has no positive total weight")
    total = w_sig + w_bkg
    if total <= 0:
        raise ValueError("the total weight is not positive")
    scale_sig = f * total / w_sig if w_sig > 0 else 0.0
    scale_bkg = (1.0 - f) * total / w_bkg if w_bkg > 0 else 0.0
    return np.where(is_sig, w * scale_sig, w * scale_bkg)
