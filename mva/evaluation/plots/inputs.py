"""Input-variable plots: distributions per class and weighted linear correlation matrices."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.patches import StepPatch

from mva.evaluation._arrays import positive_total
from mva.evaluation.plots._common import (
    _RC_GRID,
    BACKGROUND,
    COLOURS,
    DEFAULT_FORMATS,
    SIGNAL,
    Formats,
    _figure,
    _grid_margins,
    _matrix,
    _save,
    _signal_mask,
    _unit_area,
    _weights,
    logger,
)


def _input_edges(finite: np.ndarray, quantiles: list[np.ndarray], bins: int) -> np.ndarray:
    """Bin edges spanning the central 99.8% of every class; unit bins for small integers.

    ``finite``: the variable's finite values; ``quantiles``: its 0.1 % and 99.9 % quantiles
    in each class that has finite values."""
    if finite.size == 0 or not quantiles:
        return np.linspace(-0.5, 0.5, bins + 1)
    # per class, so that a small class sitting in the tail of a large one is not cut away
    lo = float(min(q[0] for q in quantiles))
    hi = float(max(q[1] for q in quantiles))
    if hi - lo <= max(bins, 50) and _integer_valued(finite):
        # integer-valued (multiplicities, charges): one bin per value, centred on it
        return np.arange(math.floor(lo) - 0.5, math.ceil(hi) + 1.0, 1.0)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def _integer_valued(x: np.ndarray) -> bool:
    """Whether every value is an integer (a few leading values first: most variables are not)."""
    head = x[:1000]
    return bool(np.all(head == np.round(head)) and np.all(x == np.round(x)))


def _class_columns(arr: np.ndarray, sel: np.ndarray, w: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One class's variables as rows ``(p, n_class)`` (each contiguous), their finite mask,
    weights, and the 0.1 % / 99.9 % quantiles of each variable's finite values ``(p, 2)``
    (NaN without any): gathered once, not once per variable."""
    rows = np.ascontiguousarray(arr[sel].T)
    finite = np.isfinite(rows)
    q = np.full((rows.shape[0], 2), np.nan)
    if finite.all():
        if rows.shape[1]:
            q = np.quantile(rows, [0.001, 0.999], axis=1).T
    else:
        for j in range(rows.shape[0]):
            if finite[j].any():
                q[j] = np.quantile(rows[j][finite[j]], [0.001, 0.999])
    return rows, finite, w[sel], q


def _stairs(ax: Axes, values: np.ndarray, edges: np.ndarray, *, fill: bool = False,
            color: Any = None, **kwargs: Any) -> StepPatch:
    """``ax.stairs`` (the same patch, colours and widths) without its update of the data
    limits, which measures every step of the outline: each panel's limits are set explicitly,
    and the measuring took a seventh of the drawing time of a 20-panel figure."""
    if color is not None:
        kwargs.setdefault("facecolor" if fill else "edgecolor", color)
    if fill:
        kwargs.setdefault("linewidth", 0)
    patch = StepPatch(values, edges, baseline=0, fill=fill, **kwargs)
    ax.add_artist(patch)
    return patch


def _grid(n: int) -> tuple[int, int]:
    ncols = max(1, math.ceil(math.sqrt(n)))
    return math.ceil(n / ncols), ncols


def plot_inputs(
    X: Any,
    labels: Any,
    weights: Any,
    names: Sequence[str] | None,
    stem: str | Path,
    bins: int = 40,
    formats: Formats = DEFAULT_FORMATS,
    classes: Sequence[str] | None = None,
) -> list[Path]:
    """Input-variable distributions, signal versus background, one panel per variable.

    Each class is normalised to unit area within the drawn range (the central 99.8% of each
    class).  ``labels=None`` draws all events as one distribution (regression); with
    ``classes`` the labels are class indices and every class is drawn (multiclass).
    """
    arr, names = _matrix(X, names)
    n, p = arr.shape
    w = _weights(weights, n)
    if labels is None:
        groups = [(np.ones(n, dtype=bool), "all events", "#000000")]
    elif classes is not None:
        lab = np.asarray(labels).astype(np.int64)
        if lab.shape != (n,):
            raise ValueError(f"labels has shape {lab.shape}, expected ({n},)")
        groups = [(lab == k, str(c), COLOURS[k % len(COLOURS)]) for k, c in enumerate(classes)]
        groups = [g for g in groups if g[0].any()]
    else:
        is_sig = _signal_mask(labels, n)
        groups = [(is_sig, "Signal", SIGNAL), (~is_sig, "Background", BACKGROUND)]
        groups = [g for g in groups if g[0].any()]
    nrows, ncols = _grid(p)
    with _figure(nrows, ncols, figsize=(6.0 * ncols, 5.0 * nrows + 0.8), squeeze=False,
                 rc=_RC_GRID) as (fig, axes):
        _grid_margins(fig)
        handles: dict[str, Any] = {}
        per_class = [_class_columns(arr, g[0], w) for g in groups]
        all_finite = np.isfinite(arr).all()
        for j, ax in enumerate(axes.flat):
            if j >= p:
                ax.set_visible(False)
                continue
            finite = arr[:, j] if all_finite else arr[:, j][np.isfinite(arr[:, j])]
            quantiles = [c[3][j] for c in per_class if not np.isnan(c[3][j, 0])]
            edges = _input_edges(finite, quantiles, int(bins))
            top = 0.0
            for (_, label, colour), (rows, fin, wc, _q) in zip(groups, per_class):
                x, wx = rows[j], wc
                if not fin[j].all():
                    x, wx = x[fin[j]], wc[fin[j]]
                hist = _unit_area(x, wx, edges)
                if hist is None:
                    logger.warning("%s: %s has no positive weight to normalise", names[j], label)
                    continue
                if classes is not None:  # many classes: outlines only, filled ones would hide
                    art = _stairs(ax, hist[0], edges, color=colour, lw=1.8, label=label)
                elif colour == BACKGROUND:
                    art = _stairs(ax, hist[0], edges, fill=True, facecolor="none",
                                  edgecolor=colour, hatch="//", lw=1.5, label=label)
                else:
                    art = _stairs(ax, hist[0], edges, fill=True, color=colour, alpha=0.35,
                                  label=label)
                    _stairs(ax, hist[0], edges, color=colour, lw=1.5)
                handles.setdefault(label, art)
                top = max(top, float(np.max(hist[0])))
            if top > 0:
                ax.set_ylim(0.0, 1.1 * top)
            ax.set_xlim(edges[0], edges[-1])
            ax.set_xlabel(names[j])
            ax.set_ylabel("normalised")
        if handles:
            fig.legend(list(handles.values()), list(handles.keys()), loc="upper center",
                       ncols=len(handles), bbox_to_anchor=(0.5, 1.0), frameon=False)
        return _save(fig, stem, formats, tight=False)


def weighted_correlation(X: Any, weights: Any = None) -> np.ndarray:
    """Weighted linear (Pearson) correlation matrix of the columns of ``X``.

    ``cov_jk = sum w (x_j - m_j)(x_k - m_k) / sum w`` with weighted means ``m``; equals
    ``numpy.corrcoef(X, rowvar=False)`` for unit weights.  Entries of a variable without a
    positive variance (constant, or made non-positive by negative weights) are NaN.
    """
    arr = np.asarray(X, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"X must be two-dimensional, got shape {arr.shape}")
    w = _weights(weights, arr.shape[0])
    total = positive_total(w)
    mean = w @ arr / total
    centred = arr - mean
    cov = (centred * w[:, None]).T @ centred / total
    var = np.diag(cov).copy()
    # a constant column leaves round-off variance from the mean: exactly undefined instead
    ok = (var > 0) & (np.ptp(arr, axis=0) > 0)
    sd = np.sqrt(np.where(ok, var, np.nan))
    corr = np.clip(cov / np.outer(sd, sd), -1.0, 1.0)
    corr[np.diag_indices_from(corr)] = np.where(ok, 1.0, np.nan)
    return corr


#: correlation matrices with more variables than this are drawn without the numbers
ANNOTATE_MAX = 12


def _draw_correlation(ax: Axes, corr: np.ndarray, names: list[str], title: str) -> Any:
    pct = 100.0 * corr
    p = len(names)
    # a mesh of p x p cells, not an image: nothing to resample at every draw
    im = ax.pcolormesh(np.ma.masked_invalid(pct), cmap="RdBu_r", vmin=-100.0, vmax=100.0)
    ax.set_xlim(0, p)
    ax.set_ylim(p, 0)
    ax.set_aspect("equal")
    # numbers only where they stay readable (and cheap: each is a text object to lay out)
    for i in range(p if p <= ANNOTATE_MAX else 0):
        for j in range(p):
            if np.isfinite(pct[i, j]):
                # int() first, so that -0.3 % reads "0", not "-0"
                # inside its cell: no part of the layout, which would measure every number
                ax.text(j + 0.5, i + 0.5, f"{int(round(pct[i, j]))}", ha="center", va="center",
                        fontsize=14, color="white" if abs(pct[i, j]) > 60 else "black",
                        in_layout=False)
    ax.set_xticks(np.arange(p) + 0.5, names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(np.arange(p) + 0.5, names)
    ax.minorticks_off()
    ax.tick_params(top=False, right=False, length=0)
    ax.set_title(title)
    return im


def plot_correlations(
    X: Any,
    labels: Any,
    weights: Any,
    names: Sequence[str] | None,
    stem: str | Path,
    formats: Formats = DEFAULT_FORMATS,
) -> list[Path]:
    """Weighted linear correlation matrices in %, signal and background side by side.

    ``labels=None`` draws one matrix of all events (regression).  A class without events or
    positive total weight is left out.
    """
    arr, names = _matrix(X, names)
    n, p = arr.shape
    w = _weights(weights, n)
    if labels is None:
        groups = [(np.ones(n, dtype=bool), "Correlation matrix")]
    else:
        is_sig = _signal_mask(labels, n)
        groups = [(is_sig, "Correlation matrix (signal)"),
                  (~is_sig, "Correlation matrix (background)")]
    matrices = []
    for sel, title in groups:
        if sel.sum() < 2 or not w[sel].sum() > 0:
            logger.warning("%s: too few events or no positive weight, not drawn", title)
            continue
        matrices.append((weighted_correlation(arr[sel], w[sel]), title))
    if not matrices:
        raise ValueError("no class has enough events for a correlation matrix")
    size = max(6.0, 0.75 * p + 2.5)
    with _figure(1, len(matrices), figsize=(size * len(matrices) + 1.5, size), squeeze=False,
                 layout="constrained", rc=_RC_GRID) as (fig, axes):
        im = None
        for ax, (corr, title) in zip(axes.flat, matrices):
            im = _draw_correlation(ax, corr, names, title)
        cbar = fig.colorbar(im, ax=list(axes.flat), shrink=0.8)
        cbar.set_label("linear correlation [%]")
        cbar.ax.minorticks_off()
        return _save(fig, stem, formats)
