"""Plots of multiclass classifiers: one-vs-rest ROC curves, confusion matrices, per-class
overtraining checks and reliability curves.

Same conventions as :mod:`mva.evaluation.plots`, whose helpers and style they use: functions take
numpy arrays, write ``stem.<fmt>`` for each format in ``formats`` (default PNG and PDF), return the
written paths and close their figure, also on errors.  Labels are integer class indices
``0 .. K-1`` into ``classes``; weights may be ``None`` (unit weights) or negative.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mva.evaluation.plots._common import (
    COLOURS,
    DEFAULT_FORMATS,
    REFERENCE,
    _array,
    _figure,
    _fmt_p,
    _headroom,
    _legend,
    _legend_above,
    _response_label,
    _save,
    _thin,
    _unit_area,
)
from mva.evaluation.plots.classification import _draw_band, _sorted_curves

__all__ = [
    "plot_all_class_scores",
    "plot_roc_ovr",
    "plot_confusion",
    "plot_class_scores",
    "plot_reliability_classes",
]

logger = logging.getLogger(__name__)

Formats = Sequence[str]

#: confusion matrices with more classes than this are drawn without the numbers
ANNOTATE_MAX = 15


def _colour(k: int) -> str:
    return COLOURS[k % len(COLOURS)]


def _class_labels(labels: Any, n: int, n_classes: int, what: str) -> np.ndarray:
    lab = np.asarray(labels).reshape(-1)
    if lab.size != n:
        raise ValueError(f"{what} labels has length {lab.size}, expected {n}")
    if not np.issubdtype(lab.dtype, np.number) or lab.dtype == bool:
        raise ValueError(f"{what} labels must be integer class indices, got dtype {lab.dtype}")
    if not (np.all(np.isfinite(lab)) and np.all(lab == np.round(lab))):
        raise ValueError(f"{what} labels must be integer class indices")
    if lab.size and (lab.min() < 0 or lab.max() >= n_classes):
        raise ValueError(f"{what} labels must lie in 0 .. {n_classes - 1} "
                         f"({n_classes} classes), got {lab.min():g} .. {lab.max():g}")
    return lab.astype(np.int64)


def _sample(
    sample: tuple[Any, Any, Any] | tuple[Any, Any], n_classes: int, what: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(probs_k, labels, weights)`` as arrays, events with non-finite values dropped."""
    prob = _array(sample[0], f"{what} probabilities")
    lab = _class_labels(sample[1], prob.size, n_classes, what)
    weights = sample[2] if len(sample) > 2 else None
    w = np.ones(prob.size) if weights is None else _array(weights, f"{what} weights")
    if w.size != prob.size:
        raise ValueError(f"{what} weights has length {w.size}, expected {prob.size}")
    ok = np.isfinite(prob) & np.isfinite(w)
    if not ok.all():
        logger.warning("%s: ignoring %d non-finite probabilities or weights", what,
                       int((~ok).sum()))
    return prob[ok], lab[ok], w[ok]


def _bins(values: Any, what: str) -> np.ndarray:
    """Per-bin values as floats; ``None`` (an empty bin in JSON records) becomes NaN."""
    items = np.asarray(values, dtype=object).reshape(-1)
    return _array([np.nan if v is None else v for v in items], what)


# --------------------------------------------------------------------------- ROC


def plot_roc_ovr(
    cls_name: str,
    curves: Mapping[str, tuple[Any, Any, Any]],
    stem: str | Path,
    formats: Formats = DEFAULT_FORMATS,
) -> list[Path]:
    """One-vs-rest ROC curves of one class for all methods: rejection of the other classes
    ``1 - effB`` versus the efficiency of class ``cls_name``.

    Parameters
    ----------
    curves
        ``{method: (eff_bkg, eff_sig, auc[, auc_err[, band]])}`` with ``cls_name`` as signal,
        e.g. from ``classification.roc_curve(probs[:, k], labels == k, weights)``, as
        :func:`mva.evaluation.plots.plot_roc`.  The legend lists the methods by decreasing AUC.
    """
    sorted_curves = _sorted_curves(curves)
    if not sorted_curves:
        raise ValueError("no ROC curves to plot")
    with _figure() as (fig, ax):
        for k, c in enumerate(sorted_curves):
            ok = np.isfinite(c.eff_bkg) & np.isfinite(c.eff_sig)
            x, y = c.eff_sig[ok], 1.0 - c.eff_bkg[ok]
            idx = _thin(x, y)
            _draw_band(ax, c, _colour(k))
            ax.plot(x[idx], y[idx], lw=2.5, color=_colour(k), label=c.label)
        ax.plot([0, 1], [1, 0], ls="--", lw=1.5, color=REFERENCE, label="random")
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(0.0, 1.05)
        ax.set_xlabel(rf"{cls_name} efficiency $\varepsilon_S$")
        ax.set_ylabel(r"Rejection of other classes $1-\varepsilon_B$")
        # a useful classifier's curve stays above the diagonal: the lower left is free
        _legend(ax, loc="lower left", title=f"{cls_name} vs rest", title_fontsize="small")
        return _save(fig, stem, formats)


# --------------------------------------------------------------------------- confusion


def plot_confusion(
    name: str,
    matrix: Any,
    classes: Sequence[str],
    stem: str | Path,
    formats: Formats = DEFAULT_FORMATS,
) -> list[Path]:
    """Row-normalised confusion matrix (rows the true, columns the predicted class) as
    coloured cells with the fractions printed; NaN rows (classes without events) stay blank."""
    m = np.asarray(matrix, dtype=float)
    names = [str(c) for c in classes]
    k = len(names)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"matrix must be square, got shape {m.shape}")
    if m.shape[0] != k:
        raise ValueError(f"{k} class names for a {m.shape[0]} x {m.shape[0]} matrix")
    if np.any(np.isinf(m)):
        raise ValueError("matrix contains infinite values")
    size = max(9.0, 1.1 * k + 5.0)
    with _figure(figsize=(size + 1.5, size), layout="constrained") as (fig, ax):
        # a mesh of K x K cells, not an image: nothing to resample at every draw; negative
        # weights can push a fraction outside [0, 1], so the colours are clipped, not the numbers
        mesh = ax.pcolormesh(np.ma.masked_invalid(m), cmap="Blues", vmin=0.0, vmax=1.0)
        ax.set_xlim(0, k)
        ax.set_ylim(k, 0)
        ax.set_aspect("equal")
        fontsize = 20 if k <= 5 else 14
        for i in range(k if k <= ANNOTATE_MAX else 0):
            for j in range(k):
                if np.isfinite(m[i, j]):
                    ax.text(j + 0.5, i + 0.5, f"{m[i, j]:.2f}", ha="center", va="center",
                            fontsize=fontsize, color="white" if m[i, j] > 0.6 else "black")
        ax.set_xticks(np.arange(k) + 0.5, names, rotation=45, ha="right", rotation_mode="anchor")
        ax.set_yticks(np.arange(k) + 0.5, names)
        ax.minorticks_off()
        ax.tick_params(top=False, right=False, length=0)
        ax.set_xlabel("Predicted class")
        ax.set_ylabel("True class")
        ax.set_title(f"{name}: confusion matrix" if name else "Confusion matrix")
        cbar = fig.colorbar(mesh, ax=ax, shrink=0.8)
        cbar.set_label("fraction of true class")
        cbar.ax.minorticks_off()
        return _save(fig, stem, formats)


# --------------------------------------------------------------------------- overtraining


def plot_class_scores(
    name: str,
    class_name: str,
    train: tuple[Any, Any, Any],
    test: tuple[Any, Any, Any],
    ks_pvalue: float | None,
    classes: Sequence[str],
    stem: str | Path,
    bins: int = 40,
    formats: Formats = DEFAULT_FORMATS,
) -> list[Path]:
    """Overtraining check of one class probability: its distribution for the events of each
    true class, test (histograms) versus training (points), each normalised to unit area.

    Parameters
    ----------
    class_name
        The class whose probability ``probs[:, k]`` is drawn.
    train, test
        ``(probs_k, labels, weights)``; labels index ``classes``, weights may be ``None``.
    ks_pvalue
        Train/test Kolmogorov-Smirnov p-value for the events of ``class_name``, shown in the
        legend title (``None`` or NaN is shown as "n/a").
    """
    names = [str(c) for c in classes]
    k = len(names)
    if k < 2:
        raise ValueError(f"need at least 2 classes, got {k}")
    if class_name not in names:
        raise ValueError(f"class {class_name!r} is not one of {names}")
    own = names.index(class_name)
    tr = _sample(train, k, "training sample")
    te = _sample(test, k, "test sample")
    every = np.concatenate([tr[0], te[0]])
    if every.size == 0:
        raise ValueError("no events to plot")
    lo, hi = float(every.min()), float(every.max())
    if lo >= 0.0 and hi <= 1.0:
        # probabilities: the full range, so that plots of different methods compare directly
        lo, hi = 0.0, 1.0
    elif lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, int(bins) + 1)
    centres = 0.5 * (edges[:-1] + edges[1:])

    ymax = 0.0
    with _figure() as (fig, ax):
        for j, label in enumerate(names):
            colour = _colour(j)
            s, lab, w = te
            sel = lab == j
            hist = _unit_area(s[sel], w[sel], edges) if sel.any() else None
            if hist is None:
                logger.warning("%s: no %s in the test sample to draw", name, label)
            else:
                # the class the probability belongs to is filled, the others are outlines;
                # the fill goes below everything, so that it does not tint the other outlines
                if j == own:
                    ax.stairs(hist[0], edges, fill=True, color=colour, alpha=0.35, lw=0,
                              zorder=0.5, label=f"{label} (test)")
                    ax.stairs(hist[0], edges, color=colour, lw=2)
                else:
                    ax.stairs(hist[0], edges, color=colour, lw=2, label=f"{label} (test)")
                ymax = max(ymax, float(np.max(hist[0])))
            s, lab, w = tr
            sel = lab == j
            hist = _unit_area(s[sel], w[sel], edges) if sel.any() else None
            if hist is None:
                logger.warning("%s: no %s in the training sample to draw", name, label)
            else:
                ax.errorbar(centres, hist[0], yerr=hist[1], fmt="o", ms=6, color=colour,
                            label=f"{label} (training)")
                ymax = max(ymax, float(np.max(hist[0] + hist[1])))
        ax.set_xlim(lo, hi)
        # legend: title line plus one row (test, training) per class
        _headroom(ax, ymax, 1 + k)
        ax.set_xlabel(f"{_response_label(name)}: P({class_name})")
        ax.set_ylabel(r"$(1/N)\,\mathrm{d}N/\mathrm{d}x$")
        _legend(ax, loc="upper center", ncols=2,
                title=f"KS p-value ({class_name}): {_fmt_p(ks_pvalue)}", title_fontsize="small")
        return _save(fig, stem, formats)


# --------------------------------------------------------------------------- calibration


def plot_reliability_classes(
    name: str,
    per_class: Mapping[str, tuple[Any, Any]],
    stem: str | Path,
    formats: Formats = DEFAULT_FORMATS,
) -> list[Path]:
    """Reliability curves of all classes: observed class fraction versus mean predicted
    probability per bin, with the diagonal of perfect calibration.  NaN bins are skipped.

    Parameters
    ----------
    per_class
        ``{class: (mean_prob, observed_fraction)}``, e.g. the ``mean_prob`` and
        ``signal_fraction`` lists of ``multiclass.reliability_per_class`` (``None`` allowed).
    """
    if not per_class:
        raise ValueError("no reliability curves to plot")
    curves = []
    for cls, pair in per_class.items():
        if len(pair) != 2:
            raise ValueError(f"{cls}: expected (mean_prob, observed_fraction)")
        mp, ob = _bins(pair[0], f"{cls} mean_prob"), _bins(pair[1], f"{cls} observed_fraction")
        if mp.size != ob.size:
            raise ValueError(f"{cls}: observed_fraction has length {ob.size}, expected {mp.size}")
        curves.append((str(cls), mp, ob))
    with _figure() as (fig, ax):
        ax.plot([0, 1], [0, 1], lw=2, ls="--", color=REFERENCE, label="perfect calibration")
        for k, (cls, mp, ob) in enumerate(curves):
            ok = np.isfinite(mp) & np.isfinite(ob)
            ax.plot(mp[ok], ob[ok], "o-", lw=2.5, ms=8, color=_colour(k), label=cls)
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(0.0, 1.0)
        ax.set_aspect("equal")
        ax.set_xlabel("Mean predicted class probability")
        ax.set_ylabel("Observed class fraction")
        # miscalibrated curves can sit on either side of the diagonal
        _legend_above(ax, ncols=min(3, len(curves) + 1), title=name or None,
                      fontsize="small", title_fontsize="small")
        return _save(fig, stem, formats)


def plot_all_class_scores(
    name: str,
    train: tuple[Any, Any, Any],
    test: tuple[Any, Any, Any],
    ks_pvalues: Mapping[str, float | None],
    classes: Sequence[str],
    stems: Sequence[str | Path],
    bins: int = 40,
    formats: Formats = DEFAULT_FORMATS,
) -> list[Path]:
    """:func:`plot_class_scores` for every class: ``train`` and ``test`` are
    ``(probs (n, K), labels, weights)``, ``stems`` one per class. One call, so that a worker
    receives the labels and weights once, not once per class."""
    if len(stems) != len(classes):
        raise ValueError(f"{len(stems)} stems for {len(classes)} classes")
    out: list[Path] = []
    for k, (c, stem) in enumerate(zip(classes, stems, strict=True)):
        out += plot_class_scores(name, c, (np.asarray(train[0])[:, k], *train[1:]),
                                 (np.asarray(test[0])[:, k], *test[1:]), ks_pvalues.get(c),
                                 classes, stem, bins=bins, formats=formats)
    return out
