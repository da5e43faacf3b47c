"""Comparison of runs: ROC curves read back from ``output.root``, the overlay figure and
the comparison table."""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mva.report._html import _BADGE, _BEST, _argbest, _esc, _get, _num_cell, _table, _th
from mva.report.figures import _img
from mva.report.run_files import RunFiles
from mva.report.summary import _regression_rows

log = logging.getLogger("mva.report")  # one logger for the whole report, as before the split


def roc_from_output(run_dir: str | Path, methods: Sequence[str]
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """ROC curves ``{method: (eff_bkg, eff_sig)}`` from the TestTree of ``run_dir/output.root``.

    ``classID`` 0 is signal, 1 background (TMVA's convention).  Methods without a branch, or
    whose curve cannot be computed, are left out with a warning.
    """
    import uproot

    from mva.evaluation.classification import roc_curve

    path = Path(run_dir) / "output.root"
    if not path.is_file():
        log.warning("%s: no output.root, its ROC curves are left out of the comparison", run_dir)
        return {}
    with uproot.open(path) as f:
        if "TestTree" not in f:
            log.warning("%s: no TestTree, its ROC curves are left out", path)
            return {}
        tree = f["TestTree"]
        present = [m for m in methods if m in tree.keys()]
        missing = sorted(set(methods) - set(present))
        if missing:
            log.warning("%s: no branch for %s in TestTree", path, ", ".join(missing))
        arrays = tree.arrays(["classID", "weight", *present], library="np")
    labels = (arrays["classID"] == 0).astype(int)
    curves = {}
    for m in present:
        try:
            eb, es, _ = roc_curve(arrays[m], labels, arrays["weight"])
        except ValueError as exc:
            log.warning("%s: %s: no ROC curve (%s)", path, m, exc)
            continue
        curves[m] = (eb, es)
    return curves


def _thin(n: int, max_points: int = 2000) -> np.ndarray:
    # a test set of 10^6 events gives 10^6 points: far more than a 1000-pixel figure shows
    return np.arange(n) if n <= max_points else np.unique(np.linspace(0, n - 1, max_points)
                                                          .round().astype(int))


def _comparison_png(runs: Sequence[RunFiles]) -> bytes | None:
    """All ROC curves of all runs in one figure: colour per method, line style per run."""
    import matplotlib.style
    import mplhep
    from matplotlib.figure import Figure

    curves = []
    for k, run in enumerate(runs):
        for m, (eb, es) in roc_from_output(run.path, list(run.methods)).items():
            auc = float(np.trapezoid(es, eb))
            curves.append((run.label, m, k, eb, es, auc))
    if not curves:
        return None
    method_names = list(dict.fromkeys(c[1] for c in curves))
    colours = ("#5790fc", "#f89c20", "#e42536", "#964a8b", "#9c9ca1", "#7a21dd", "#2ca02c",
               "#000000")
    styles = ("-", "--", ":", "-.")
    one_method = len(method_names) == 1
    curves.sort(key=lambda c: -c[5] if math.isfinite(c[5]) else math.inf)
    with matplotlib.style.context([mplhep.style.CMS, {"figure.dpi": 100, "savefig.dpi": 100}]):
        fig = Figure(figsize=(10, 10))
        ax = fig.subplots()
        for label, m, k, eb, es, auc in curves:
            colour = colours[(k if one_method else method_names.index(m)) % len(colours)]
            style = "-" if one_method else styles[k % len(styles)]
            idx = _thin(len(eb))
            ax.plot(es[idx], 1.0 - eb[idx], lw=2.5, color=colour, ls=style,
                    label=f"{label}: {m} (AUC = {auc:.3f})")
        ax.plot([0, 1], [1, 0], ls="--", lw=1.5, color="#7f7f7f", label="random")
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(0.0, 1.05)
        ax.set_xlabel(r"Signal efficiency $\varepsilon_S$")
        ax.set_ylabel(r"Background rejection $1-\varepsilon_B$")
        ax.legend(loc="lower left", fontsize=20 if len(curves) <= 6 else 14)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def _comparison(runs: Sequence[RunFiles]) -> str:
    """The comparison section: the task of the runs makes it."""
    return runs[0].task_.report_comparison(runs)


def classification_comparison(runs: Sequence[RunFiles]) -> str:
    """Binary: all ROC curves in one figure and the AUC table."""
    parts = []
    png = _comparison_png(runs)
    if png is not None:
        caption = ("ROC curves of all runs (test samples); colour: method, line style: run"
                   if len({m for r in runs for m in r.methods}) > 1
                   else "ROC curves of all runs (test samples)")
        parts.append(f'<figure class="comparison">{_img(png, caption)}'
                     f"<figcaption>{_esc(caption)}</figcaption></figure>")
    else:
        parts.append("<p class=\"note\">No ROC curve could be read from the runs' "
                     "output.root.</p>")
    values = {(r.label, n): _get(m, "test", "roc_auc") for r in runs
              for n, m in r.methods.items()}
    best = _argbest(values, largest=True)
    head = ("<tr>" + _th("run", num=False) + _th("method", num=False)
            + _th("AUC", title="test AUC") + _th("εS at εB=0.1", title="test sample")
            + "</tr>")
    rows = []
    for r in runs:
        for n, m in r.methods.items():
            is_best = best == (r.label, n)
            rows.append(
                f'<tr{_BEST if is_best else ""} data-run="{_esc(r.label)}" '
                f'data-method="{_esc(n)}"><td>{_esc(r.label)}</td><td class="name">{_esc(n)}'
                f'{_BADGE if is_best else ""}</td>'
                f"{_num_cell(_get(m, 'test', 'roc_auc'), '.4f', err=_get(m, 'test', 'roc_auc_err'))}"
                f"{_num_cell(_get(m, 'test', 'eff_sig_at_bkg', '0.1'), '.3f', err=_err(m, '0.1'))}"
                "</tr>")
    parts.append(_table(head, rows, "comparison"))
    return "\n".join(parts)


def _err(m: Any, eff_bkg: str) -> Any:
    return _get(m, "test", "eff_sig_at_bkg_err", eff_bkg)


def regression_comparison(runs: Sequence[RunFiles]) -> str:
    """Regression: sigma_eff, rms and bias of every method of every run."""
    rows_in = [(r.label, *row) for r in runs for row in _regression_rows(r.methods)]
    multi = any(row[2] is not None for row in rows_in)
    head = ("<tr>" + _th("run", num=False) + _th("method", num=False)
            + (_th("target", num=False) if multi else "") + _th("sigma_eff") + _th("rms")
            + _th("bias") + "</tr>")
    best = _argbest({i: row[3].get("sigma_eff") for i, row in enumerate(rows_in)},
                    largest=False)
    rows = []
    for i, (label, n, target, test, _) in enumerate(rows_in):
        is_best = best == i
        rows.append(
            f'<tr{_BEST if is_best else ""} data-run="{_esc(label)}" '
            f'data-method="{_esc(n)}"><td>{_esc(label)}</td><td class="name">{_esc(n)}'
            f'{_BADGE if is_best else ""}</td>'
            f"{f'<td>{_esc(target or str())}</td>' if multi else ''}"
            + "".join(_num_cell(test.get(k), "#.4g", err=test.get(f"{k}_err"))
                      for k in ("sigma_eff", "rms", "bias")) + "</tr>")
    return _table(head, rows, "comparison")


def multiclass_comparison(runs: Sequence[RunFiles]) -> str:
    """Multiclass: accuracy, macro AUC and log loss of every method of every run."""
    values = {(r.label, n): _get(m, "test", "accuracy") for r in runs
              for n, m in r.methods.items()}
    best = _argbest(values, largest=True)
    head = ("<tr>" + _th("run", num=False) + _th("method", num=False)
            + _th("accuracy", title="test accuracy") + _th("macro AUC", title="test sample")
            + _th("log loss", title="test sample") + "</tr>")
    rows = []
    for r in runs:
        for n, m in r.methods.items():
            is_best = best == (r.label, n)
            rows.append(
                f'<tr{_BEST if is_best else ""} data-run="{_esc(r.label)}" '
                f'data-method="{_esc(n)}"><td>{_esc(r.label)}</td><td class="name">{_esc(n)}'
                f'{_BADGE if is_best else ""}</td>'
                + "".join(_num_cell(_get(m, "test", k), ".4f", err=_get(m, "test", f"{k}_err"))
                          for k in ("accuracy", "roc_auc_macro", "log_loss")) + "</tr>")
    return _table(head, rows, "comparison")
