"""All plots of a trained run (classification or regression), written to ``RUN_DIR/plots``.

The plots are described as jobs (a function of :mod:`mva.evaluation.plots` and its arguments) so
that large runs can draw them in worker processes while the main process writes the other outputs:
matplotlib is single-threaded and drawing, not the data, dominates the cost.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Any

import numpy as np

from mva.evaluation import classification as cm

__all__ = ["plot_jobs", "start_plots", "make_plots"]

log = logging.getLogger(__name__)

Job = tuple[str, tuple, dict]

#: events drawn in input-variable plots and correlation matrices (a seeded random subset above
#: this: the histograms look the same and drawing time no longer grows with the sample)
DISPLAY_EVENTS = 500_000
#: runs with more events than this draw their plots in worker processes
PARALLEL_EVENTS = 200_000


def _display(events: Any, seed: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    n = len(events)
    idx = (np.sort(np.random.default_rng(seed).choice(n, DISPLAY_EVENTS, replace=False))
           if n > DISPLAY_EVENTS else slice(None))
    labels = None if events.labels is None else events.labels[idx]
    return events.features[idx], labels, events.weights[idx]


def plot_jobs(run: Any, outdir: Path) -> list[Job]:
    """Every plot of the run as ``(plot function name, args, kwargs)``."""
    cfg = run.config
    kw = {"formats": tuple(cfg.evaluation.formats)}
    te, tr = run.test, run.train
    names = cfg.data.features
    X, labels, w = _display(tr, cfg.split.seed)
    jobs: list[Job] = [
        ("plot_inputs", (X, labels, w, names, outdir / "inputs"), kw),
        ("plot_correlations", (X, labels, w, names, outdir / "correlations"), kw),
    ]
    for name, res in run.methods.items():
        if res.trained.model.history_:
            xlabel = "trees" if res.trained.type == "bdt" else "epoch"
            jobs.append(("plot_loss", (name, res.trained.model.history_, outdir / f"{name}_loss"),
                         {**kw, "xlabel": xlabel}))
    if cfg.is_classification:
        curves = {}
        for name, res in run.methods.items():
            eb, es, _ = cm.roc_curve(res.pred_test, te.labels, te.weights)
            curves[name] = (eb, es, res.metrics["test"]["roc_auc"])
            ks = res.metrics["overtraining"]
            jobs.append(("plot_overtraining", (
                name, (res.pred_train, tr.labels, tr.weights),
                (res.pred_test, te.labels, te.weights),
                (ks["ks_pvalue_signal"], ks["ks_pvalue_background"]),
                outdir / f"{name}_overtraining"), kw))
            jobs += _probability_jobs(name, res, run, outdir, kw)
        jobs.append(("plot_roc", (curves, outdir / "roc"), kw))
        jobs.append(("plot_rejection", (curves, outdir / "rejection"), kw))
        return jobs
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
            stem = outdir / f"{name}{suffix}"
            jobs.append(("plot_prediction_vs_true",
                         (name, pred, target, te.weights, Path(f"{stem}_pred_vs_true")), kw))
            jobs.append(("plot_profiles", (name, te.features, names, d, te.weights,
                                           Path(f"{stem}_profiles")), kw))
            if res.sigma_test is not None:
                width = res.sigma_test[:, j]
                jobs.append(("plot_pulls", (name, d, width, te.weights, Path(f"{stem}_pulls")), kw))
                jobs.append(("plot_width_calibration", (name, d, width, te.weights,
                                                        Path(f"{stem}_width_calibration")), kw))
        jobs.append(("plot_ratio", (ratios, te.weights, outdir / f"ratio{suffix}"), kw))
    return jobs


#: jobs handed to forked workers by index (see start_plots)
_PENDING: list[Job] = []


def _run_pending(index: int) -> list[Path]:
    return _run_job(_PENDING[index])


def _run_job(job: Job) -> list[Path]:
    from mva.evaluation import plots

    func, args, kwargs = job
    return getattr(plots, func)(*args, **kwargs)


def start_plots(run: Any, outdir: Path, parallel: bool | None = None
                ) -> Callable[[], list[Path]]:
    """Start drawing every plot; return a function that waits for them and lists the files.

    With ``parallel`` (default: for runs above ``PARALLEL_EVENTS`` events) the plots are drawn in
    worker processes, one per usable core, while the caller goes on.
    """
    outdir.mkdir(parents=True, exist_ok=True)
    jobs = plot_jobs(run, outdir)
    if parallel is None:
        parallel = len(run.train) + len(run.test) > PARALLEL_EVENTS
    if not parallel:
        return lambda: [p for job in jobs for p in _run_job(job)]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    # one core stays with the caller, who writes output.root meanwhile. Workers are forked from
    # a parent that has imported matplotlib already (no second import per worker); they draw
    # with matplotlib and numpy only, never with the OpenMP pools of xgboost or torch.
    from mva.evaluation import plots  # noqa: F401

    method = "fork" if "fork" in get_all_start_methods() else "spawn"
    # the costliest plots first, so that no worker is left with a long one at the end
    order = sorted(jobs, key=lambda j: j[0] not in ("plot_inputs", "plot_profiles",
                                                    "plot_correlations"))
    workers = max(1, min((cores or 1) - 1, len(jobs)))
    if method == "fork":
        # forked workers (all started at the first submit) inherit the jobs: only an index
        # crosses the pipe, not the arrays
        _PENDING[:] = order
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context(method))
        futures = [pool.submit(_run_pending, i) for i in range(len(order))]
    else:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context(method))
        futures = [pool.submit(_run_job, job) for job in order]

    def wait() -> list[Path]:
        try:
            return [p for f in futures for p in f.result()]
        finally:
            pool.shutdown(cancel_futures=True)
            _PENDING.clear()

    return wait


def make_plots(run: Any, outdir: Path, parallel: bool | None = None) -> list[Path]:
    """Draw every plot of the run into ``outdir``; return the written files."""
    return start_plots(run, outdir, parallel)()


def _probability_jobs(name: str, res: Any, run: Any, outdir: Path, kw: dict) -> list[Job]:
    """Cut efficiencies with the optimal cut, P(S|y) with the class densities, reliability."""
    from mva.evaluation.probability import ScoreDensities
    from mva.training import expected_yields

    m, te = res.metrics, run.test
    if "working_point" not in m:
        return []
    curves = cm.cut_efficiency_curves(res.pred_test, te.labels, te.weights,
                                      *expected_yields(run.config, te))
    dens = ScoreDensities.from_dict(res.trained.extras["densities"])
    grid = np.linspace(res.pred_test.min(), res.pred_test.max(), 300)
    f_s = m["signal_fraction"]
    rel = m["calibration"]["reliability"]
    return [
        ("plot_cut_efficiencies", (name, curves, m["working_point"]["cut"],
                                   outdir / f"{name}_cut_efficiencies"), kw),
        ("plot_probability", (name, grid, dens.probability(grid, f_s), dens.pdf_signal(grid),
                              dens.pdf_background(grid), f_s, outdir / f"{name}_probability"), kw),
        ("plot_reliability", (name, np.asarray(rel["mean_prob"], dtype=float),
                              np.asarray(rel["signal_fraction"], dtype=float),
                              outdir / f"{name}_reliability"), kw),
    ]


def _raw_ratio(target_expr: str, events: Any) -> np.ndarray | None:
    """For a correction target ``a / b`` the uncorrected ratio of prediction 1 to the target is
    ``1 / target``: show it as the "before" distribution."""
    if "/" not in target_expr:
        return None
    j = events.target_names.index(target_expr)
    with np.errstate(divide="ignore"):
        return 1.0 / events.targets[:, j]
