"""All plots of a trained run (classification or regression), written to ``RUN_DIR/plots``.

The plots are described as jobs (a function of :mod:`mva.evaluation.plots` and its arguments) so
that large runs can draw them in worker processes while the main process writes the other outputs:
matplotlib is single-threaded and drawing, not the data, dominates the cost.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Any

import numpy as np

from mva.evaluation import classification as cm

__all__ = ["Plotter", "plot_jobs", "input_jobs", "method_jobs", "summary_jobs", "make_plots"]

log = logging.getLogger(__name__)

Job = tuple[str, tuple, dict]

#: events drawn in input-variable plots and correlation matrices (a seeded random subset above
#: this: the histograms look the same and drawing time no longer grows with the sample)
DISPLAY_EVENTS = 200_000
#: runs with more events than this draw their plots in worker processes
PARALLEL_EVENTS = 200_000


def _display(events: Any, seed: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    n = len(events)
    idx = (np.sort(np.random.default_rng(seed).choice(n, DISPLAY_EVENTS, replace=False))
           if n > DISPLAY_EVENTS else slice(None))
    labels = None if events.labels is None else events.labels[idx]
    return events.features[idx], labels, events.weights[idx]


def input_jobs(run: Any, outdir: Path) -> list[Job]:
    """Input-variable distributions and correlations (training events)."""
    cfg = run.config
    kw = {"formats": tuple(cfg.evaluation.formats)}
    X, labels, w = _display(run.train, cfg.split.seed)
    names = cfg.data.features
    return [("plot_inputs", (X, labels, w, names, outdir / "inputs"), kw),
            ("plot_correlations", (X, labels, w, names, outdir / "correlations"), kw)]


def method_jobs(run: Any, name: str, outdir: Path) -> list[Job]:
    """The plots of one trained and evaluated method."""
    cfg, res = run.config, run.methods[name]
    kw = {"formats": tuple(cfg.evaluation.formats)}
    te, tr = run.test, run.train
    jobs: list[Job] = []
    if res.trained.model.history_:
        xlabel = "trees" if res.trained.type == "bdt" else "epoch"
        jobs.append(("plot_loss", (name, res.trained.model.history_, outdir / f"{name}_loss"),
                     {**kw, "xlabel": xlabel}))
    if cfg.is_classification:
        ks = res.metrics["overtraining"]
        jobs.append(("plot_overtraining", (
            name, (res.pred_train, tr.labels, tr.weights), (res.pred_test, te.labels, te.weights),
            (ks["ks_pvalue_signal"], ks["ks_pvalue_background"]),
            outdir / f"{name}_overtraining"), kw))
        return jobs + _probability_jobs(name, res, run, outdir, kw)
    for j in range(len(te.target_names)):
        stem = outdir / f"{name}{'' if len(te.target_names) == 1 else f'_{j}'}"
        pred, target = res.pred_test[:, j], te.targets[:, j]
        d = pred - target
        jobs.append(("plot_prediction_vs_true",
                     (name, pred, target, te.weights, Path(f"{stem}_pred_vs_true")), kw))
        jobs.append(("plot_profiles", (name, te.features, cfg.data.features, d, te.weights,
                                       Path(f"{stem}_profiles")), kw))
        if res.sigma_test is not None:
            width = res.sigma_test[:, j]
            jobs.append(("plot_pulls", (name, d, width, te.weights, Path(f"{stem}_pulls")), kw))
            jobs.append(("plot_width_calibration", (name, d, width, te.weights,
                                                    Path(f"{stem}_width_calibration")), kw))
    return jobs


def summary_jobs(run: Any, outdir: Path) -> list[Job]:
    """Plots that compare all methods: ROC and rejection, or prediction/target ratios."""
    cfg, te = run.config, run.test
    kw = {"formats": tuple(cfg.evaluation.formats)}
    if cfg.is_classification:
        curves = {}
        for name, res in run.methods.items():
            eb, es, _ = cm.roc_curve(res.pred_test, te.labels, te.weights)
            curves[name] = (eb, es, res.metrics["test"]["roc_auc"])
        return [("plot_roc", (curves, outdir / "roc"), kw),
                ("plot_rejection", (curves, outdir / "rejection"), kw)]
    jobs: list[Job] = []
    for j, tname in enumerate(te.target_names):
        target = te.targets[:, j]
        ratios: dict[str, np.ndarray] = {}
        raw = _raw_ratio(tname, te)
        if raw is not None:
            ratios["raw (no correction)"] = raw
        for name, res in run.methods.items():
            with np.errstate(divide="ignore", invalid="ignore"):
                ratios[name] = res.pred_test[:, j] / target
        suffix = "" if len(te.target_names) == 1 else f"_{j}"
        jobs.append(("plot_ratio", (ratios, te.weights, outdir / f"ratio{suffix}"), kw))
    return jobs


def plot_jobs(run: Any, outdir: Path) -> list[Job]:
    """Every plot of a finished run as ``(plot function name, args, kwargs)``."""
    jobs = input_jobs(run, outdir)
    for name in run.methods:
        jobs += method_jobs(run, name, outdir)
    return jobs + summary_jobs(run, outdir)


def _run_job(job: Job) -> list[Path]:
    import time

    from mva.evaluation import plots

    func, args, kwargs = job
    t0 = time.perf_counter()
    out = getattr(plots, func)(*args, **kwargs)
    log.debug("%s: %.2f s", func, time.perf_counter() - t0)
    return out


def _lower_priority() -> None:
    # plot workers take the cores that the run leaves idle (reading, evaluation, writing)
    # and yield them to the training threads
    os.nice(19)


class Plotter:
    """Draws plots as they become possible, in low-priority worker processes.

    ``parallel=False`` draws each plot at once, in this process (small runs: starting workers
    would cost more than it saves). Call :meth:`wait` to get the written files; errors in a
    plot surface there.
    """

    def __init__(self, parallel: bool):
        self.parallel = parallel
        self._pool: ProcessPoolExecutor | None = None
        self._futures: list[Any] = []
        self._written: list[Path] = []

    def submit(self, jobs: list[Job]) -> None:
        if not self.parallel:
            for job in jobs:
                self._written += _run_job(job)
            return
        if self._pool is None:
            from mva.evaluation import plots  # noqa: F401  (imported once, before the fork)

            cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                     else os.cpu_count() or 1)
            # fork: the workers need no imports of their own, and draw with matplotlib and
            # numpy only, never with the OpenMP pools of xgboost or torch
            method = "fork" if "fork" in get_all_start_methods() else "spawn"
            self._pool = ProcessPoolExecutor(max_workers=max(1, cores),
                                             mp_context=get_context(method),
                                             initializer=_lower_priority)
        self._futures += [self._pool.submit(_run_job, job) for job in jobs]

    def wait(self) -> list[Path]:
        try:
            for f in self._futures:
                self._written += f.result()
            return list(self._written)
        finally:
            self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._futures = []


def make_plots(run: Any, outdir: Path, parallel: bool = False) -> list[Path]:
    """Draw every plot of a finished run into ``outdir``; return the written files."""
    outdir.mkdir(parents=True, exist_ok=True)
    plotter = Plotter(parallel)
    plotter.submit(plot_jobs(run, outdir))
    return plotter.wait()


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
