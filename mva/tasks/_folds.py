"""Plots of a k-fold run that show the folds one by one (binary classification)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mva.tasks.base import Job

__all__ = ["fold_roc_jobs"]


def fold_roc_jobs(run: Any, name: str, outdir: Path, kw: dict) -> list[Job]:
    """The ROC curve of every fold model of method ``name`` on its own held-out fold.

    ``run.folds`` (None for a hold-out run: no job) lists the folds, each with its ``index``
    and its ``test`` events (indices into ``run.test``, whose scores of method ``name`` are the
    out-of-fold scores). One ``plot_roc`` job, kind ``fold_roc``; the legend gives each fold's
    AUC (``plot_roc`` appends it to the curve's name).
    """
    if getattr(run, "folds", None) is None:
        return []
    from mva.evaluation import classification as cm
    from mva.naming import plot_record, plot_stem

    res, te = run.methods[name], run.test
    curves = {}
    for f in run.folds:
        scores, labels, weights = res.pred_test[f.test], te.labels[f.test], te.weights[f.test]
        eff_bkg, eff_sig, _ = cm.roc_curve(scores, labels, weights)
        curves[f"fold {f.index}"] = (eff_bkg, eff_sig, cm.roc_auc(scores, labels, weights))
    stem = plot_stem(outdir, "fold_roc", name)
    return [("plot_roc", (curves, stem), kw, plot_record(stem, "fold_roc", name))]
