"""Signal-probability plots: cut efficiencies and significance, P(S|y), reliability."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
    _headroom,
    _legend,
    _legend_above,
    _response_label,
    _save,
    _thin,
)


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
        return _save(fig, stem, formats)


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
        return _save(fig, stem, formats)


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
        return _save(fig, stem, formats)
