"""Classification plots: ROC curves, background rejection, overtraining check, loss curves."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from mva.evaluation.plots._common import (
    BACKGROUND,
    COLOURS,
    DEFAULT_FORMATS,
    REFERENCE,
    SIGNAL,
    Formats,
    _array,
    _figure,
    _fmt_p,
    _headroom,
    _legend,
    _legend_above,
    _response_label,
    _save,
    _signal_mask,
    _thin,
    _unit_area,
    _weights,
    logger,
)


class _Curve(NamedTuple):
    name: str
    eff_bkg: np.ndarray
    eff_sig: np.ndarray
    auc: float
    auc_err: float | None
    #: (eff_bkg, eff_sig, err): the signal efficiency at fixed background efficiencies with
    #: its uncertainty, drawn as a band; None: no band
    band: tuple[np.ndarray, np.ndarray, np.ndarray] | None

    @property
    def label(self) -> str:
        err = "" if self.auc_err is None else f" ± {self.auc_err:.3f}"
        return f"{self.name} (AUC = {self.auc:.3f}{err})"


def _sorted_curves(curves: Mapping[str, Sequence[Any]]) -> list[_Curve]:
    """The curves by decreasing AUC; a missing AUC is integrated here.

    Each curve is ``(eff_bkg, eff_sig[, auc[, auc_err[, band]]])`` with ``band`` as
    :attr:`_Curve.band`.
    """
    out = []
    for name, curve in curves.items():
        eb, es = _array(curve[0], f"{name} eff_bkg"), _array(curve[1], f"{name} eff_sig")
        if eb.size != es.size:
            raise ValueError(f"{name}: eff_bkg and eff_sig differ in length")
        auc = curve[2] if len(curve) > 2 else None
        if auc is None:
            order = np.argsort(eb, kind="stable")
            auc = float(np.trapezoid(es[order], eb[order]))
        err = curve[3] if len(curve) > 3 and curve[3] is not None else None
        band = None
        if len(curve) > 4 and curve[4] is not None:
            band = tuple(_array(a, f"{name} band") for a in curve[4])
            if len({a.size for a in band}) != 1:
                raise ValueError(f"{name}: the band's arrays differ in length")
        out.append(_Curve(str(name), eb, es, float(auc),
                          None if err is None or not np.isfinite(err) else float(err), band))
    # NaN AUCs go last
    return sorted(out, key=lambda c: -c.auc if np.isfinite(c.auc) else math.inf)


def _draw_band(ax: Any, curve: _Curve, colour: str, rejection: bool = False) -> None:
    """The curve's uncertainty band: effS ± err at each background efficiency of the band,
    against ``1 - effB`` (or ``1/effB`` with ``rejection``)."""
    if curve.band is None:
        return
    eb, es, err = curve.band
    ok = np.isfinite(eb) & np.isfinite(es) & np.isfinite(err) & ((eb > 0) if rejection
                                                                  else True)
    if not ok.any():
        return
    y = 1.0 / eb[ok] if rejection else 1.0 - eb[ok]
    ax.fill_betweenx(y, np.clip(es[ok] - err[ok], 0.0, 1.0), np.clip(es[ok] + err[ok], 0.0, 1.0),
                     color=colour, alpha=0.25, lw=0)


def plot_roc(
    curves: Mapping[str, tuple[Any, Any, Any]],
    stem: str | Path,
    formats: Formats = DEFAULT_FORMATS,
) -> list[Path]:
    """ROC curves of all methods: background rejection ``1 - effB`` versus signal efficiency.

    Parameters
    ----------
    curves
        ``{method: (eff_bkg, eff_sig, auc[, auc_err[, band]])}``, e.g. from
        ``classification.roc_curve`` and ``roc_auc``; ``band`` is ``(eff_bkg, eff_sig, err)``
        (``uncertainty.eff_sig_at_bkg``), drawn as a shaded band of ``eff_sig ± err``.  The
        legend lists the methods by decreasing AUC (``± auc_err`` where given).
    """
    with _figure() as (fig, ax):
        for k, c in enumerate(_sorted_curves(curves)):
            colour = COLOURS[k % len(COLOURS)]
            ok = np.isfinite(c.eff_bkg) & np.isfinite(c.eff_sig)
            x, y = c.eff_sig[ok], 1.0 - c.eff_bkg[ok]
            idx = _thin(x, y)
            _draw_band(ax, c, colour)
            ax.plot(x[idx], y[idx], lw=2.5, color=colour, label=c.label)
        ax.plot([0, 1], [1, 0], ls="--", lw=1.5, color=REFERENCE, label="random")
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(0.0, 1.05)
        ax.set_xlabel(r"Signal efficiency $\varepsilon_S$")
        ax.set_ylabel(r"Background rejection $1-\varepsilon_B$")
        # a useful classifier's curve stays above the diagonal: the lower left is free
        _legend(ax, loc="lower left")
        return _save(fig, stem, formats)


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
        for k, c in enumerate(sorted_curves):
            eb, es = c.eff_bkg, c.eff_sig
            ok = np.isfinite(eb) & np.isfinite(es) & (eb > 0)
            if not ok.any():
                logger.warning("%s: no point with positive background efficiency", c.name)
                continue
            colour = COLOURS[k % len(COLOURS)]
            x, y = es[ok], 1.0 / eb[ok]
            idx = _thin(x, np.log10(y))
            _draw_band(ax, c, colour, rejection=True)
            ax.plot(x[idx], y[idx], lw=2.5, color=colour, label=c.label)
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
        return _save(fig, stem, formats)


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
        return _save(fig, stem, formats)


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
        return _save(fig, stem, formats)
