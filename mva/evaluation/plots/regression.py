"""Regression plots: prediction versus target, ratios, residual profiles, pulls and the
calibration of predicted widths."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.colors import LogNorm

from mva.evaluation.plots._common import (
    _RC_GRID,
    BACKGROUND,
    COLOURS,
    DEFAULT_FORMATS,
    REFERENCE,
    SIGNAL,
    Formats,
    _array,
    _figure,
    _headroom,
    _legend,
    _legend_above,
    _matrix,
    _save,
    _unit_area,
    _weights,
    logger,
)
from mva.evaluation.regression import binned_profile, sigma_eff, weighted_median


def _finite_pair(a: Any, b: Any, weights: Any, names: tuple[str, str]) -> tuple[np.ndarray, ...]:
    x, y = _array(a, names[0]), _array(b, names[1])
    if x.size != y.size:
        raise ValueError(f"{names[1]} has length {y.size}, expected {x.size}")
    w = _weights(weights, x.size)
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(w)
    if not ok.all():
        logger.warning("ignoring %d events with non-finite values", int((~ok).sum()))
    return x[ok], y[ok], w[ok]


def plot_prediction_vs_true(
    name: str,
    prediction: Any,
    target: Any,
    weights: Any,
    stem: str | Path,
    bins: int = 60,
    formats: Formats = DEFAULT_FORMATS,
) -> list[Path]:
    """Weighted 2D histogram of prediction versus target (log colour scale) with the diagonal.

    Both axes span the central 99% of targets and predictions; bins without positive weight
    are left white.
    """
    pred, tgt, w = _finite_pair(prediction, target, weights, ("prediction", "target"))
    if pred.size == 0:
        raise ValueError("no events to plot")
    q = np.quantile(np.r_[pred, tgt], [0.005, 0.995])
    lo, hi = float(q[0]), float(q[1])
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, int(bins) + 1)
    h, _, _ = np.histogram2d(tgt, pred, bins=[edges, edges], weights=w)
    masked = np.ma.masked_less_equal(h.T, 0.0)
    norm = None
    if masked.count() and masked.max() > masked.min():
        norm = LogNorm(vmin=float(masked.min()), vmax=float(masked.max()))
    with _figure(figsize=(11.5, 10.0)) as (fig, ax):
        mesh = ax.pcolormesh(edges, edges, masked, norm=norm, cmap="viridis", rasterized=True)
        if masked.count():
            cbar = fig.colorbar(mesh, ax=ax, pad=0.02)
            cbar.set_label("weighted events")
        ax.plot([lo, hi], [lo, hi], lw=2, ls="--", color=BACKGROUND, label="prediction = target")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        ax.set_xlabel("target")
        ax.set_ylabel(f"{name} prediction" if name else "prediction")
        _legend(ax, loc="upper left")
        return _save(fig, stem, formats)


def _safe_stat(fn: Any, x: np.ndarray, w: np.ndarray) -> float:
    try:
        return float(fn(x, w))
    except ValueError as err:  # no positive weight left
        logger.warning("cannot compute %s: %s", getattr(fn, "__name__", fn), err)
        return math.nan


def plot_ratio(
    ratios: Mapping[str, Any],
    weights: Any,
    stem: str | Path,
    bins: int = 60,
    formats: Formats = DEFAULT_FORMATS,
) -> list[Path]:
    """Distributions of prediction/target per method (e.g. including a ``"raw"`` entry),
    normalised to unit area, with the weighted median and sigma_eff in the legend.

    ``weights`` is shared by all entries (same events); non-finite ratios are ignored.
    """
    entries = []
    for key, values in ratios.items():
        r = _array(values, f"{key} ratio")
        w = _weights(weights, r.size)
        ok = np.isfinite(r) & np.isfinite(w)
        r, w = r[ok], w[ok]
        med = _safe_stat(weighted_median, r, w) if r.size else math.nan
        width = _safe_stat(sigma_eff, r, w) if r.size else math.nan
        entries.append((str(key), r, w, med, width))
    if not entries:
        raise ValueError("no ratios to plot")
    # the range follows the cores, not the tails from targets near zero
    los = [m - 5.0 * s for _, _, _, m, s in entries if np.isfinite(m) and np.isfinite(s) and s > 0]
    his = [m + 5.0 * s for _, _, _, m, s in entries if np.isfinite(m) and np.isfinite(s) and s > 0]
    if los:
        lo, hi = min(los), max(his)
    else:
        pooled = np.concatenate([e[1] for e in entries])
        lo, hi = (float(pooled.min()) - 0.5, float(pooled.max()) + 0.5) if pooled.size else (0, 2)
    edges = np.linspace(lo, hi, int(bins) + 1)
    top = 0.0
    with _figure() as (fig, ax):
        for k, (key, r, w, med, width) in enumerate(entries):
            hist = _unit_area(r, w, edges) if r.size else None
            if hist is None:
                logger.warning("%s: no positive weight in the plotted range", key)
                continue
            ax.stairs(hist[0], edges, lw=2.5, color=COLOURS[k % len(COLOURS)],
                      label=fr"{key}: median {med:.3f}, $\sigma_\mathrm{{eff}}$ {width:.3f}")
            top = max(top, float(np.max(hist[0])))
        ax.axvline(1.0, lw=1.5, ls=":", color=REFERENCE)
        ax.set_xlim(lo, hi)
        _headroom(ax, top, len(entries))
        ax.set_xlabel("prediction / target")
        ax.set_ylabel("normalised")
        _legend(ax, loc="upper left")
        return _save(fig, stem, formats)


def plot_profiles(
    name: str,
    X: Any,
    names: Sequence[str] | None,
    d: Any,
    weights: Any,
    stem: str | Path,
    bins: int = 10,
    formats: Formats = DEFAULT_FORMATS,
) -> list[Path]:
    """Bias (weighted mean) and sigma_eff of the deviations ``d`` in quantile bins of each
    feature: one column per feature, bias on top, resolution below.

    Error bars are Gaussian approximations: ``sigma_eff / sqrt(n)`` for the bias and
    ``sigma_eff / sqrt(2 n)`` for the resolution, with ``n`` events in the bin; horizontal
    bars show the bin extent.
    """
    arr, names = _matrix(X, names)
    n, p = arr.shape
    dev = _array(d, "d")
    if dev.size != n:
        raise ValueError(f"d has length {dev.size}, expected {n}")
    w = _weights(weights, n)
    with _figure(2, p, figsize=(5.5 * p + 1.5, 9.0), squeeze=False, sharex="col", sharey="row",
                 layout="constrained", rc=_RC_GRID) as (fig, axes):
        for j in range(p):
            x = arr[:, j]
            ok = np.isfinite(x) & np.isfinite(dev) & np.isfinite(w)
            prof = binned_profile(x[ok], dev[ok], w[ok], bins=bins)
            edges, centres, count = prof["edges"], prof["centres"], prof["count"]
            xerr = 0.5 * np.diff(edges)
            root_n = np.sqrt(np.maximum(count, 1))
            axes[0, j].errorbar(centres, prof["bias"], xerr=xerr, yerr=prof["sigma_eff"] / root_n,
                                fmt="o", ms=6, color=SIGNAL)
            axes[0, j].axhline(0.0, lw=1.5, ls="--", color=REFERENCE)
            axes[1, j].errorbar(centres, prof["sigma_eff"], xerr=xerr,
                                yerr=prof["sigma_eff"] / (np.sqrt(2.0) * root_n),
                                fmt="o", ms=6, color=BACKGROUND)
            axes[1, j].set_xlabel(names[j])
        axes[0, 0].set_ylabel("bias (mean d)")
        axes[1, 0].set_ylabel(r"$\sigma_\mathrm{eff}$(d)")
        axes[1, 0].set_ylim(bottom=0.0)
        title = "d = prediction − target"
        fig.suptitle(f"{name}: {title}" if name else title)
        return _save(fig, stem, formats)


def _deviation_width(
    d: Any, width: Any, weights: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dev, wid, w = _finite_pair(d, width, weights, ("d", "width"))
    positive = wid > 0
    if not positive.all():
        logger.warning("ignoring %d events with non-positive width", int((~positive).sum()))
    return dev[positive], wid[positive], w[positive]


def plot_pulls(
    name: str,
    d: Any,
    width: Any,
    weights: Any,
    stem: str | Path,
    bins: int = 50,
    limit: float = 5.0,
    formats: Formats = DEFAULT_FORMATS,
) -> list[Path]:
    """Pull ``d / width`` histogram in ``[-limit, limit]`` with a unit Gaussian overlay.

    The histogram is normalised to the total weight, including pulls outside the range, so
    that its area is directly comparable with the Gaussian's.
    """
    dev, wid, w = _deviation_width(d, width, weights)
    pull = dev / wid
    total = float(w.sum())
    if pull.size == 0 or not total > 0:
        raise ValueError("no events with positive total weight to plot")
    edges = np.linspace(-limit, limit, int(bins) + 1)
    hist = _unit_area(pull, w, edges, norm=total)
    assert hist is not None  # total > 0
    mean = float(np.sum(w * pull) / total)
    spread = _safe_stat(sigma_eff, pull, w)
    xs = np.linspace(-limit, limit, 401)
    gauss = np.exp(-0.5 * xs**2) / math.sqrt(2.0 * math.pi)
    with _figure() as (fig, ax):
        ax.errorbar(0.5 * (edges[:-1] + edges[1:]), hist[0], yerr=hist[1], fmt="o", ms=6,
                    color="#000000",
                    label=fr"{name or 'pulls'}: mean {mean:.2f}, "
                    fr"$\sigma_\mathrm{{eff}}$ {spread:.2f}")
        ax.plot(xs, gauss, lw=2.5, color=BACKGROUND, label="unit Gaussian")
        ax.set_xlim(-limit, limit)
        _headroom(ax, max(float(np.max(hist[0] + hist[1])), float(gauss.max())), 2)
        ax.set_xlabel("pull (prediction − target) / width")
        ax.set_ylabel("normalised")
        _legend(ax, loc="upper right")
        return _save(fig, stem, formats)


def plot_width_calibration(
    name: str,
    d: Any,
    width: Any,
    weights: Any,
    stem: str | Path,
    bins: int = 10,
    formats: Formats = DEFAULT_FORMATS,
) -> list[Path]:
    """Observed spread (sigma_eff of ``d``) in quantile bins of the predicted width versus
    the bin's weighted mean predicted width; calibrated widths lie on the diagonal.

    Vertical error bars are the Gaussian approximation ``sigma_eff / sqrt(2 n)``.
    """
    dev, wid, w = _deviation_width(d, width, weights)
    if dev.size == 0:
        raise ValueError("no events with positive width to plot")
    observed = binned_profile(wid, dev, w, bins=bins)
    # the "bias" of the width itself is its weighted mean in the same bins
    predicted = binned_profile(wid, wid, w, bins=bins)["bias"]
    spread = observed["sigma_eff"]
    yerr = spread / np.sqrt(2.0 * np.maximum(observed["count"], 1))
    finite = np.r_[predicted[np.isfinite(predicted)], (spread + yerr)[np.isfinite(spread)]]
    top = 1.1 * float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    with _figure() as (fig, ax):
        ax.plot([0, top], [0, top], lw=2, ls="--", color=REFERENCE, label="perfect calibration")
        ax.errorbar(predicted, spread, yerr=yerr, fmt="o", ms=8, color=SIGNAL,
                    label=name or "regressor")
        ax.set_xlim(0.0, top)
        ax.set_ylim(0.0, top)
        ax.set_aspect("equal")
        ax.set_xlabel("Mean predicted width")
        ax.set_ylabel(r"Observed $\sigma_\mathrm{eff}$(prediction − target)")
        _legend_above(ax, ncols=2)
        return _save(fig, stem, formats)
