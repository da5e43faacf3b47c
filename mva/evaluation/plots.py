"""Every plot the tool makes: ROC curves, overtraining checks, inputs, correlations, regression.

Functions take numpy arrays, write ``stem.<fmt>`` for each format in ``formats`` (default PNG
and PDF) and return the written paths.  Each one closes its figure, also on errors, so a long
training session does not accumulate open figures.

Conventions: labels are 1 (signal) and 0 (background); weights may be ``None`` (unit weights)
or negative (Monte Carlo).  Histograms "normalised to unit area" divide by the summed weight of
the entries inside the histogram range; a class whose weight there is not positive cannot be
normalised and is left out with a warning.  The style is mplhep's CMS style without any
experiment label.  Legends sit in reserved head-room above the data or outside the axes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib

# a batch tool writes files only: never try to open a window (e.g. on a node without display)
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import mplhep  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402

from mva.evaluation.regression import binned_profile, sigma_eff, weighted_median  # noqa: E402

__all__ = [
    "save",
    "weighted_correlation",
    "plot_roc",
    "plot_rejection",
    "plot_overtraining",
    "plot_loss",
    "plot_inputs",
    "plot_correlations",
    "plot_cut_efficiencies",
    "plot_probability",
    "plot_reliability",
    "plot_prediction_vs_true",
    "plot_ratio",
    "plot_profiles",
    "plot_pulls",
    "plot_width_calibration",
]

logger = logging.getLogger(__name__)

Formats = Sequence[str]
DEFAULT_FORMATS: tuple[str, ...] = ("png", "pdf")

# Petroff colour-blind-safe palette, the one mplhep's CMS style cycles through
SIGNAL = "#5790fc"
BACKGROUND = "#e42536"
COLOURS = ("#5790fc", "#f89c20", "#e42536", "#964a8b", "#9c9ca1", "#7a21dd", "#2ca02c", "#000000")
REFERENCE = "#7f7f7f"

# curves with one point per distinct score (10^6 for large test sets) make huge PDFs; this
# many points, spread along the drawn arc length, are indistinguishable from all of them
_MAX_POINTS = 2000
# fixed resolution so that file sizes and test expectations do not depend on local rcParams
_RC: dict[str, Any] = {"savefig.dpi": 100, "figure.dpi": 100}
# grids of panels need smaller text than CMS's 26 pt single plots
# and no minor ticks: matplotlib's tick objects dominate the drawing time of a 20-panel grid
_RC_GRID: dict[str, Any] = {"font.size": 18, "xtick.minor.visible": False,
                            "ytick.minor.visible": False}


# --------------------------------------------------------------------------- infrastructure


def _formats(formats: Formats | str) -> list[str]:
    if isinstance(formats, str):
        formats = (formats,)
    return [str(f).lower().lstrip(".") for f in formats]


def _grid_margins(fig: Figure, top_in: float = 0.8) -> None:
    """Fixed margins (in inches) for a grid of panels: constrained layout and tight bounding
    boxes cost a full extra draw each, seconds for a 20-panel figure."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=1.3 / w, right=1 - 0.3 / w, bottom=1.0 / h, top=1 - top_in / h,
                        wspace=0.38, hspace=0.42)


def save(fig: Figure, stem: str | Path, formats: Formats = DEFAULT_FORMATS,
         tight: bool = True) -> list[Path]:
    """Write ``fig`` as ``stem.<fmt>`` for each format, creating parent directories.

    The figure is not closed (the plot functions close their own figures).

    Returns
    -------
    list of pathlib.Path
        The written files, in the order of ``formats``.
    """
    stem = Path(stem)
    fmts = _formats(formats)
    supported = fig.canvas.get_supported_filetypes()
    unknown = [f for f in fmts if f not in supported]
    if unknown:
        raise ValueError(f"unsupported plot format(s) {unknown}; choose from {sorted(supported)}")
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in fmts:
        # not with_suffix: a stem such as "roc_v1.2" must keep its dot
        path = stem.with_name(f"{stem.name}.{fmt}")
        # no creation date in PDFs, so that re-running a configuration reproduces the file
        metadata = {"CreationDate": None} if fmt == "pdf" else None
        fig.savefig(path, format=fmt, bbox_inches="tight" if tight else None, metadata=metadata)
        paths.append(path)
    logger.debug("wrote %s", ", ".join(str(p) for p in paths))
    return paths


@contextmanager
def _figure(*args: Any, rc: dict[str, Any] | None = None, **kwargs: Any) -> Iterator[Any]:
    """``plt.subplots`` inside the plot style; the figure is closed when the block ends.

    Saving must happen inside the block: tick labels pick up the style only when drawn.
    """
    with plt.style.context([mplhep.style.CMS, _RC, rc or {}]):
        fig, axes = plt.subplots(*args, **kwargs)
        try:
            yield fig, axes
        finally:
            plt.close(fig)


def _legend_fraction(ax: Axes, n_lines: int) -> float:
    """Fraction of the height of ``ax`` taken by an upper legend with ``n_lines`` rows."""
    size = FontProperties(size=plt.rcParams["legend.fontsize"]).get_size_in_points()
    height = ax.get_position().height * ax.figure.get_figheight()
    # a row is the text plus the label spacing; 0.3 in for the border padding
    needed = n_lines * 1.75 * size / 72.0 + 0.3
    return min(0.7, needed / max(height, 1e-3))


def _headroom(ax: Axes, ymax: float, n_lines: int, ymin: float = 0.0, log: bool = False) -> None:
    """Extend the y range above ``ymax`` so that an upper legend does not cover the data."""
    if not np.isfinite(ymax) or ymax <= ymin:
        return
    frac = _legend_fraction(ax, n_lines)
    if log:
        if ymin <= 0:
            return
        top = ymax * (ymax / ymin) ** (frac / (1.0 - frac))
    else:
        top = ymin + (ymax - ymin) / (1.0 - frac)
    ax.set_ylim(ymin, top)


def _legend(ax: Axes, **kwargs: Any) -> None:
    """``ax.legend`` unless nothing is labelled (matplotlib warns about an empty legend)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def _legend_above(
    ax: Axes, handles: list[Any] | None = None, ncols: int = 2, **kwargs: Any
) -> None:
    """Legend in a box above the axes, for plots where no region is guaranteed free of data."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    else:
        labels = [h.get_label() for h in handles]
    if handles:
        ax.legend(
            handles,
            labels,
            loc="lower center",
            bbox_to_anchor=(0.5, 1.01),
            ncols=ncols,
            borderaxespad=0.0,
            **kwargs,
        )


def _thin(*coords: np.ndarray, max_points: int = _MAX_POINTS) -> np.ndarray:
    """Indices of at most ~``max_points`` points spread evenly along a curve's drawn length.

    Each coordinate is scaled to its range first, so the spacing is even on the plot; the
    first and last points are always kept.
    """
    n = len(coords[0])
    if n <= max_points:
        return np.arange(n)
    step2 = np.zeros(n - 1)
    for c in coords:
        c = np.asarray(c, dtype=float)
        finite = np.isfinite(c)
        span = float(np.ptp(c[finite])) if finite.any() else 0.0
        if span > 0:
            step2 += np.nan_to_num(np.diff(c) / span) ** 2
    arc = np.r_[0.0, np.cumsum(np.sqrt(step2))]
    if arc[-1] <= 0:
        idx = np.linspace(0, n - 1, max_points).astype(int)
    else:
        idx = np.searchsorted(arc, np.linspace(0.0, arc[-1], max_points))
    return np.unique(np.r_[0, np.clip(idx, 0, n - 1), n - 1])


def _array(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _weights(weights: Any, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    w = _array(weights, "weights")
    if w.size != n:
        raise ValueError(f"weights has length {w.size}, expected {n}")
    return w


def _signal_mask(labels: Any, n: int) -> np.ndarray:
    lab = np.asarray(labels).reshape(-1)
    if lab.size != n:
        raise ValueError(f"labels has length {lab.size}, expected {n}")
    if not np.all(np.isin(lab, (0, 1))):
        raise ValueError("labels must be 1 (signal) or 0 (background)")
    return lab.astype(bool)


def _matrix(X: Any, names: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    arr = np.asarray(X, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"X must be two-dimensional, got shape {arr.shape}")
    if names is None:
        names = [f"x{j}" for j in range(arr.shape[1])]
    names = [str(n) for n in names]
    if len(names) != arr.shape[1]:
        raise ValueError(f"{len(names)} names for {arr.shape[1]} variables")
    return arr, names


def _unit_area(
    x: np.ndarray, w: np.ndarray, edges: np.ndarray, norm: float | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Weighted histogram divided by ``norm * bin width`` and its statistical error.

    ``norm`` defaults to the weight inside the range (unit area); ``None`` is returned where
    the normalisation is not positive.
    """
    h, _ = np.histogram(x, bins=edges, weights=w)
    h2, _ = np.histogram(x, bins=edges, weights=w * w)
    total = float(h.sum()) if norm is None else float(norm)
    if not total > 0:
        return None
    scale = total * np.diff(edges)
    return h / scale, np.sqrt(h2) / scale


def _fmt_p(p: Any) -> str:
    return "n/a" if p is None or not np.isfinite(p) else f"{float(p):.3f}"


def _response_label(name: str) -> str:
    return f"{name} response" if name else "response"


# --------------------------------------------------------------------------- classification


def _sorted_curves(
    curves: Mapping[str, tuple[Any, Any, Any]],
) -> list[tuple[str, np.ndarray, np.ndarray, float]]:
    """(name, eff_bkg, eff_sig, auc) by decreasing AUC; a missing AUC is integrated here."""
    out = []
    for name, curve in curves.items():
        eb, es = _array(curve[0], f"{name} eff_bkg"), _array(curve[1], f"{name} eff_sig")
        if eb.size != es.size:
            raise ValueError(f"{name}: eff_bkg and eff_sig differ in length")
        auc = curve[2] if len(curve) > 2 else None
        if auc is None:
            order = np.argsort(eb, kind="stable")
            auc = float(np.trapezoid(es[order], eb[order]))
        out.append((str(name), eb, es, float(auc)))
    # NaN AUCs go last
    return sorted(out, key=lambda c: -c[3] if np.isfinite(c[3]) else math.inf)


def plot_roc(
    curves: Mapping[str, tuple[Any, Any, Any]],
    stem: str | Path,
    formats: Formats = DEFAULT_FORMATS,
) -> list[Path]:
    """ROC curves of all methods: background rejection ``1 - effB`` versus signal efficiency.

    Parameters
    ----------
    curves
        ``{method: (eff_bkg, eff_sig, auc)}``, e.g. from ``classification.roc_curve`` and
        ``roc_auc``.  The legend lists the methods by decreasing AUC.
    """
    with _figure() as (fig, ax):
        for k, (name, eb, es, auc) in enumerate(_sorted_curves(curves)):
            ok = np.isfinite(eb) & np.isfinite(es)
            x, y = es[ok], 1.0 - eb[ok]
            idx = _thin(x, y)
            ax.plot(x[idx], y[idx], lw=2.5, color=COLOURS[k % len(COLOURS)],
                    label=f"{name} (AUC = {auc:.3f})")
        ax.plot([0, 1], [1, 0], ls="--", lw=1.5, color=REFERENCE, label="random")
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(0.0, 1.05)
        ax.set_xlabel(r"Signal efficiency $\varepsilon_S$")
        ax.set_ylabel(r"Background rejection $1-\varepsilon_B$")
        # a useful classifier's curve stays above the diagonal: the lower left is free
        _legend(ax, loc="lower left")
        return save(fig, stem, formats)


def plot_rejection(
    curves: Mapping[str, tuple[Any, Any, Any]],
    stem: str | Path,
    formats: Formats = DEFAULT_FORMATS,
) -> list[Path]:
    """Background rejection ``1/effB`` (log scale) versus signal efficiency, all methods.

    Points with ``effB <= 0`` (no background passing, infinite rejection) are not drawn.
    """
    ymin, ymax = math.inf, -math.inf
    with _figure() as (fig, ax):
        sorted_curves = _sorted_curves(curves)
        for k, (name, eb, es, auc) in enumerate(sorted_curves):
            ok = np.isfinite(eb) & np.isfinite(es) & (eb > 0)
            if not ok.any():
                logger.warning("%s: no point with positive background efficiency", name)
                continue
            x, y = es[ok], 1.0 / eb[ok]
            idx = _thin(x, np.log10(y))
            ax.plot(x[idx], y[idx], lw=2.5, color=COLOURS[k % len(COLOURS)],
                    label=f"{name} (AUC = {auc:.3f})")
            ymin, ymax = min(ymin, float(y.min())), max(ymax, float(y.max()))
        ax.set_yscale("log")
        ax.set_xlim(0.0, 1.0)
        if np.isfinite(ymax):
            bottom = min(1.0, ymin)
            # at least a decade, so that a flat curve still gets a readable axis
            _headroom(ax, max(ymax, 10.0 * bottom), len(sorted_curves), ymin=bottom, log=True)
        ax.set_xlabel(r"Signal efficiency $\varepsilon_S$")
        ax.set_ylabel(r"Background rejection $1/\varepsilon_B$")
        _legend(ax, loc="upper right")
        return save(fig, stem, formats)


def _scores_labels_weights(
    sample: tuple[Any, Any, Any] | tuple[Any, Any], what: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scores = _array(sample[0], f"{what} scores")
    is_sig = _signal_mask(sample[1], scores.size)
    w = _weights(sample[2] if len(sample) > 2 else None, scores.size)
    ok = np.isfinite(scores) & np.isfinite(w)
    if not ok.all():
        logger.warning("%s: ignoring %d non-finite scores or weights", what, int((~ok).sum()))
    return scores[ok], is_sig[ok], w[ok]


def plot_overtraining(
    name: str,
    train: tuple[Any, Any, Any],
    test: tuple[Any, Any, Any],
    ks_pvalues: tuple[float | None, float | None] | None,
    stem: str | Path,
    bins: int = 40,
    formats: Formats = DEFAULT_FORMATS,
) -> list[Path]:
    """TMVA's overtraining check: classifier output on the test (histograms) and training
    (points) samples, both classes, each normalised to unit area.

    Parameters
    ----------
    train, test
        ``(scores, labels, weights)``; weights may be ``None``.
    ks_pvalues
        ``(p_signal, p_background)`` of the train/test Kolmogorov-Smirnov tests, shown in the
        legend title (``None`` or NaN is shown as "n/a").
    """
    tr = _scores_labels_weights(train, "training sample")
    te = _scores_labels_weights(test, "test sample")
    every = np.concatenate([tr[0], te[0]])
    if every.size == 0:
        raise ValueError("no events to plot")
    lo, hi = float(every.min()), float(every.max())
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, int(bins) + 1)
    centres = 0.5 * (edges[:-1] + edges[1:])
    p_sig, p_bkg = ks_pvalues if ks_pvalues is not None else (None, None)

    ymax = 0.0
    with _figure() as (fig, ax):
        for cls, colour, label in ((True, SIGNAL, "Signal"), (False, BACKGROUND, "Background")):
            s, is_sig, w = te
            sel = is_sig == cls
            hist = _unit_area(s[sel], w[sel], edges) if sel.any() else None
            if hist is None:
                logger.warning("%s: no %s in the test sample to draw", name, label.lower())
            else:
                if cls:
                    ax.stairs(hist[0], edges, fill=True, color=colour, alpha=0.35,
                              label=f"{label} (test)")
                    ax.stairs(hist[0], edges, color=colour, lw=2)
                else:
                    ax.stairs(hist[0], edges, fill=True, facecolor="none", edgecolor=colour,
                              hatch="//", lw=2, label=f"{label} (test)")
                ymax = max(ymax, float(np.max(hist[0])))
            s, is_sig, w = tr
            sel = is_sig == cls
            hist = _unit_area(s[sel], w[sel], edges) if sel.any() else None
            if hist is None:
                logger.warning("%s: no %s in the training sample to draw", name, label.lower())
            else:
                ax.errorbar(centres, hist[0], yerr=hist[1], fmt="o", ms=6, color=colour,
                            label=f"{label} (training)")
                ymax = max(ymax, float(np.max(hist[0] + hist[1])))
        ax.set_xlim(lo, hi)
        # legend: title line plus two rows of two entries
        _headroom(ax, ymax, 3)
        ax.set_xlabel(_response_label(name))
        ax.set_ylabel(r"$(1/N)\,\mathrm{d}N/\mathrm{d}x$")
        _legend(ax, loc="upper center", ncols=2,
                  title=f"KS p-value: signal {_fmt_p(p_sig)}, background {_fmt_p(p_bkg)}",
                  title_fontsize="small")
        return save(fig, stem, formats)


def plot_loss(
    name: str,
    history: Mapping[str, Sequence[float]],
    stem: str | Path,
    xlabel: str = "epoch",
    formats: Formats = DEFAULT_FORMATS,
) -> list[Path]:
    """Loss curves, one per history key (e.g. ``train``, ``validation``), against the
    1-based epoch/iteration; the y axis is logarithmic if every value is positive."""
    positive = True
    drawn = 0
    with _figure() as (fig, ax):
        for k, (key, values) in enumerate(history.items()):
            y = np.asarray(values, dtype=float).reshape(-1)
            if y.size == 0:
                continue
            x = np.arange(1, y.size + 1)
            ax.plot(x, y, lw=2.5, color=COLOURS[k % len(COLOURS)],
                    marker="o" if y.size <= 30 else None, label=str(key))
            finite = y[np.isfinite(y)]
            positive = positive and finite.size > 0 and bool(np.all(finite > 0))
            drawn += 1
        if drawn and positive:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("loss")
        _legend_above(ax, ncols=max(1, min(drawn, 3)), title=name or None)
        return save(fig, stem, formats)


def _input_edges(x: np.ndarray, groups: list[np.ndarray], bins: int) -> np.ndarray:
    """Bin edges spanning the central 99.8% of every class; unit bins for small integers."""
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        return np.linspace(-0.5, 0.5, bins + 1)
    # per class, so that a small class sitting in the tail of a large one is not cut away
    los, his = [], []
    for sel in groups:
        xs = x[sel]
        xs = xs[np.isfinite(xs)]
        if xs.size:
            q = np.quantile(xs, [0.001, 0.999])
            los.append(q[0])
            his.append(q[1])
    lo, hi = float(min(los)), float(max(his))
    if np.all(finite == np.round(finite)) and hi - lo <= max(bins, 50):
        # integer-valued (multiplicities, charges): one bin per value, centred on it
        return np.arange(math.floor(lo) - 0.5, math.ceil(hi) + 1.0, 1.0)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


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
) -> list[Path]:
    """Input-variable distributions, signal versus background, one panel per variable.

    Each class is normalised to unit area within the drawn range (the central 99.8% of each
    class).  ``labels=None`` draws all events as one distribution (regression).
    """
    arr, names = _matrix(X, names)
    n, p = arr.shape
    w = _weights(weights, n)
    if labels is None:
        groups = [(np.ones(n, dtype=bool), "all events", "#000000")]
    else:
        is_sig = _signal_mask(labels, n)
        groups = [(is_sig, "Signal", SIGNAL), (~is_sig, "Background", BACKGROUND)]
        groups = [g for g in groups if g[0].any()]
    nrows, ncols = _grid(p)
    with _figure(nrows, ncols, figsize=(6.0 * ncols, 5.0 * nrows + 0.8), squeeze=False,
                 rc=_RC_GRID) as (fig, axes):
        _grid_margins(fig)
        handles: dict[str, Any] = {}
        for j, ax in enumerate(axes.flat):
            if j >= p:
                ax.set_visible(False)
                continue
            x = arr[:, j]
            edges = _input_edges(x, [g[0] for g in groups], int(bins))
            top = 0.0
            for sel, label, colour in groups:
                ok = sel & np.isfinite(x)
                hist = _unit_area(x[ok], w[ok], edges)
                if hist is None:
                    logger.warning("%s: %s has no positive weight to normalise", names[j], label)
                    continue
                if colour == BACKGROUND:
                    art = ax.stairs(hist[0], edges, fill=True, facecolor="none", edgecolor=colour,
                                    hatch="//", lw=1.5, label=label)
                else:
                    art = ax.stairs(hist[0], edges, fill=True, color=colour, alpha=0.35,
                                    label=label)
                    ax.stairs(hist[0], edges, color=colour, lw=1.5)
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
        return save(fig, stem, formats, tight=False)


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
    total = float(w.sum())
    if not total > 0:
        raise ValueError(f"weights must sum to a positive value, got {total:g}")
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
                ax.text(j + 0.5, i + 0.5, f"{int(round(pct[i, j]))}", ha="center", va="center",
                        fontsize=14, color="white" if abs(pct[i, j]) > 60 else "black")
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
        return save(fig, stem, formats)


def plot_cut_efficiencies(
    name: str,
    curves: Mapping[str, Any],
    best_cut: float | None,
    stem: str | Path,
    formats: Formats = DEFAULT_FORMATS,
) -> list[Path]:
    """TMVA's ``mvaeffs``: efficiencies, purity and efficiency x purity versus the cut
    (left axis) and ``S/sqrt(S+B)`` (right axis), with the optimal cut marked.

    Parameters
    ----------
    curves
        ``cut``, ``eff_sig``, ``eff_bkg``, ``purity``, ``significance`` arrays, as from
        ``classification.cut_efficiency_curves``.
    best_cut
        Cut to mark (``None``: no marker).
    """
    cut = _array(curves["cut"], "cut")
    keys = ("eff_sig", "eff_bkg", "purity", "significance")
    eff_sig, eff_bkg, purity, signif = (_array(curves[k], k) for k in keys)
    for key, arr in zip(keys, (eff_sig, eff_bkg, purity, signif)):
        if arr.size != cut.size:
            raise ValueError(f"{key} has length {arr.size}, expected {cut.size}")
    idx = _thin(cut, eff_sig, eff_bkg, purity, signif)
    cut, eff_sig, eff_bkg, purity, signif = (
        a[idx] for a in (cut, eff_sig, eff_bkg, purity, signif)
    )

    with _figure() as (fig, ax):
        lines = [
            ax.plot(cut, eff_sig, lw=2.5, color=SIGNAL, label="Signal efficiency")[0],
            ax.plot(cut, eff_bkg, lw=2.5, color=BACKGROUND, label="Background efficiency")[0],
            ax.plot(cut, purity, lw=2.5, ls="--", color=COLOURS[6], label="Signal purity")[0],
            ax.plot(cut, eff_sig * purity, lw=2.5, ls=":", color=COLOURS[3],
                    label="Signal efficiency × purity")[0],
        ]
        ax.set_ylim(0.0, 1.1)
        ax.set_xlabel(f"Cut on {_response_label(name)}")
        ax.set_ylabel("Efficiency (purity)")
        ax.tick_params(axis="y", which="both", right=False)
        right = ax.twinx()
        lines.append(right.plot(cut, signif, lw=2.5, color="#000000", label="S/√(S+B)")[0])
        right.set_ylabel("Significance S/√(S+B)")
        right.tick_params(axis="y", which="both", left=False)
        top = float(np.nanmax(signif)) if np.isfinite(signif).any() else 0.0
        if top > 0:
            right.set_ylim(0.0, 1.1 * top)
        if best_cut is not None and np.isfinite(best_cut):
            label = f"optimal cut {best_cut:.4g}"
            if cut.size and np.isfinite(signif).any():
                z = signif[int(np.argmin(np.abs(cut - best_cut)))]
                if np.isfinite(z):
                    label += f" (S/√(S+B) = {z:.3g})"
            lines.append(ax.axvline(best_cut, lw=2, ls="-.", color=REFERENCE, label=label))
        if cut.size:
            ax.set_xlim(float(cut.min()), float(cut.max()))
        _legend_above(ax, lines, ncols=2, fontsize="x-small")
        return save(fig, stem, formats)


def plot_probability(
    name: str,
    grid_y: Any,
    prob: Any,
    pdf_s: Any,
    pdf_b: Any,
    signal_fraction: float,
    stem: str | Path,
    formats: Formats = DEFAULT_FORMATS,
) -> list[Path]:
    """Signal probability ``P(S|y)`` versus the score (top) and the class densities
    ``p(y|S)``, ``p(y|B)`` it is built from (bottom)."""
    y = _array(grid_y, "grid_y")
    arrays = [_array(a, k) for a, k in ((prob, "prob"), (pdf_s, "pdf_s"), (pdf_b, "pdf_b"))]
    for a, k in zip(arrays, ("prob", "pdf_s", "pdf_b")):
        if a.size != y.size:
            raise ValueError(f"{k} has length {a.size}, expected {y.size}")
    prob_, ps, pb = arrays
    with _figure(2, 1, sharex=True, figsize=(10.0, 12.0),
                 gridspec_kw={"height_ratios": [3, 2], "hspace": 0.06}) as (fig, (top, bottom)):
        top.plot(y, prob_, lw=2.5, color="#000000", label="P(S|y)")
        top.axhline(signal_fraction, lw=2, ls="--", color=REFERENCE,
                    label=f"signal fraction {signal_fraction:.3g}")
        _headroom(top, 1.0, 1)
        top.set_ylabel("P(S|y)")
        _legend(top, loc="upper center", ncols=2)
        bottom.plot(y, ps, lw=2.5, color=SIGNAL, label="p(y|S)")
        bottom.plot(y, pb, lw=2.5, color=BACKGROUND, label="p(y|B)")
        finite = np.r_[ps[np.isfinite(ps)], pb[np.isfinite(pb)]]
        _headroom(bottom, float(finite.max()) if finite.size else 1.0, 1)
        bottom.set_ylabel("density")
        bottom.set_xlabel(f"{_response_label(name)} y")
        _legend(bottom, loc="upper center", ncols=2)
        if y.size:
            bottom.set_xlim(float(np.nanmin(y)), float(np.nanmax(y)))
        return save(fig, stem, formats)


def plot_reliability(
    name: str,
    mean_prob: Any,
    observed: Any,
    stem: str | Path,
    formats: Formats = DEFAULT_FORMATS,
) -> list[Path]:
    """Reliability diagram: observed signal fraction versus mean predicted probability per
    bin, with the diagonal of perfect calibration.  NaN bins (empty) are skipped."""
    mp, ob = _array(mean_prob, "mean_prob"), _array(observed, "observed")
    if mp.size != ob.size:
        raise ValueError(f"observed has length {ob.size}, expected {mp.size}")
    ok = np.isfinite(mp) & np.isfinite(ob)
    with _figure() as (fig, ax):
        ax.plot([0, 1], [0, 1], lw=2, ls="--", color=REFERENCE, label="perfect calibration")
        ax.plot(mp[ok], ob[ok], "o-", lw=2.5, ms=8, color=SIGNAL, label=name or "classifier")
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(0.0, 1.0)
        ax.set_aspect("equal")
        ax.set_xlabel("Mean predicted signal probability")
        ax.set_ylabel("Observed signal fraction")
        # a miscalibrated curve can sit on either side of the diagonal
        _legend_above(ax, ncols=2)
        return save(fig, stem, formats)


# --------------------------------------------------------------------------- regression


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
        return save(fig, stem, formats)


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
        return save(fig, stem, formats)


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
        return save(fig, stem, formats)


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
        return save(fig, stem, formats)


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
        return save(fig, stem, formats)
