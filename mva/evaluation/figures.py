"""All plots of a trained run (classification or regression), written to ``RUN_DIR/plots``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mva.evaluation import classification as cm
from mva.evaluation import plots

__all__ = ["make_plots"]


def make_plots(run: Any, outdir: Path) -> list[Path]:
    cfg = run.config
    fmts = tuple(cfg.evaluation.formats)
    outdir.mkdir(parents=True, exist_ok=True)
    te, tr = run.test, run.train
    written: list[Path] = []
    written += plots.plot_inputs(tr.features, tr.labels, tr.weights, cfg.data.features,
                                 outdir / "inputs", formats=fmts)
    written += plots.plot_correlations(tr.features, tr.labels, tr.weights, cfg.data.features,
                                       outdir / "correlations", formats=fmts)
    for name, res in run.methods.items():
        if res.trained.model.history_:
            xlabel = "trees" if res.trained.type == "bdt" else "epoch"
            written += plots.plot_loss(name, res.trained.model.history_, outdir / f"{name}_loss",
                                       xlabel=xlabel, formats=fmts)
    if cfg.is_classification:
        curves = {}
        for name, res in run.methods.items():
            eb, es, _ = cm.roc_curve(res.pred_test, te.labels, te.weights)
            curves[name] = (eb, es, res.metrics["test"]["roc_auc"])
            ks = res.metrics["overtraining"]
            written += plots.plot_overtraining(
                name, (res.pred_train, tr.labels, tr.weights), (res.pred_test, te.labels, te.weights),
                (ks["ks_pvalue_signal"], ks["ks_pvalue_background"]),
                outdir / f"{name}_overtraining", formats=fmts)
            written += _probability_plots(name, res, run, outdir, fmts)
        written += plots.plot_roc(curves, outdir / "roc", formats=fmts)
        written += plots.plot_rejection(curves, outdir / "rejection", formats=fmts)
        return written
    for j, tname in enumerate(te.target_names):
        suffix = "" if len(te.target_names) == 1 else f"_{j}"
        target = te.targets[:, j]
        ratios: dict[str, np.ndarray] = {}
        raw = _raw_ratio(tname, te)
        if raw is not None:
            ratios["raw (no correction)"] = raw
        for name, res in run.methods.items():
            pred = res.pred_test[:, j]
            d = pred - target
            with np.errstate(divide="ignore", invalid="ignore"):
                ratios[name] = pred / target
            written += plots.plot_prediction_vs_true(
                name, pred, target, te.weights, outdir / f"{name}{suffix}_pred_vs_true", formats=fmts)
            written += plots.plot_profiles(name, te.features, cfg.data.features, d, te.weights,
                                           outdir / f"{name}{suffix}_profiles", formats=fmts)
            if res.sigma_test is not None:
                width = res.sigma_test[:, j]
                written += plots.plot_pulls(name, d, width, te.weights,
                                            outdir / f"{name}{suffix}_pulls", formats=fmts)
                written += plots.plot_width_calibration(
                    name, d, width, te.weights, outdir / f"{name}{suffix}_width_calibration",
                    formats=fmts)
        written += plots.plot_ratio(ratios, te.weights, outdir / f"ratio{suffix}", formats=fmts)
    return written


def _probability_plots(name: str, res: Any, run: Any, outdir: Path, fmts: tuple) -> list[Path]:
    """Cut efficiencies with the optimal cut, P(S|y) with the class densities, reliability."""
    from mva.evaluation.probability import ScoreDensities
    from mva.training import expected_yields

    m, te = res.metrics, run.test
    if "working_point" not in m:
        return []
    curves = cm.cut_efficiency_curves(res.pred_test, te.labels, te.weights,
                                      *expected_yields(run.config, te))
    written = plots.plot_cut_efficiencies(name, curves, m["working_point"]["cut"],
                                          outdir / f"{name}_cut_efficiencies", formats=fmts)
    dens = ScoreDensities.from_dict(res.trained.extras["densities"])
    grid = np.linspace(res.pred_test.min(), res.pred_test.max(), 300)
    f_s = m["signal_fraction"]
    written += plots.plot_probability(name, grid, dens.probability(grid, f_s),
                                      dens.pdf_signal(grid), dens.pdf_background(grid), f_s,
                                      outdir / f"{name}_probability", formats=fmts)
    rel = m["calibration"]["reliability"]
    written += plots.plot_reliability(name, np.asarray(rel["mean_prob"], dtype=float),
                                      np.asarray(rel["signal_fraction"], dtype=float), outdir / f"{name}_reliability",
                                      formats=fmts)
    return written


def _raw_ratio(target_expr: str, events: Any) -> np.ndarray | None:
    """For a correction target ``a / b`` the uncorrected ratio of prediction 1 to the target is
    ``1 / target``: show it as the "before" distribution."""
    if "/" not in target_expr:
        return None
    j = events.target_names.index(target_expr)
    with np.errstate(divide="ignore"):
        return 1.0 / events.targets[:, j]
