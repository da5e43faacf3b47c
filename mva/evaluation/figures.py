"""All plots of a trained run, written to ``RUN_DIR/plots``.

The plots are described as jobs (a function of :mod:`mva.evaluation.plots`, its arguments and a
record of which method and plot kind the file belongs to) so that large runs can draw them in
worker processes while the main process writes the other outputs: matplotlib is single-threaded
and drawing, not the data, dominates the cost. Which plots a method and a run have is the task's
business (:mod:`mva.tasks`); the records go to ``plots/index.json`` for the report.
"""

from __future__ import annotations

import heapq
import json
import logging
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Any

import numpy as np

from mva.naming import PLOT_INDEX, plot_record, plot_stem

__all__ = ["Plotter", "plot_jobs", "input_jobs", "method_jobs", "summary_jobs", "make_plots",
           "write_index"]

log = logging.getLogger(__name__)

#: (plot function, args, kwargs[, record]): see :data:`mva.tasks.base.Job`
Job = tuple

#: events drawn in input-variable plots and correlation matrices (a seeded random subset above
#: this: the histograms look the same and drawing time no longer grows with the sample)
DISPLAY_EVENTS = 200_000
#: runs with more events than this draw their plots in worker processes
PARALLEL_EVENTS = 200_000
#: ... and so do runs with more (methods x classes) than this (one score plot per pair)
PARALLEL_PLOTS = 24


def _display(events: Any, seed: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    n = len(events)
    if n > DISPLAY_EVENTS:
        events = events.subset(np.sort(np.random.default_rng(seed).choice(n, DISPLAY_EVENTS,
                                                                          replace=False)))
    return events.features, events.labels, events.weights


def _kw(run: Any) -> dict[str, Any]:
    return {"formats": tuple(run.config.evaluation.formats)}


def input_jobs(run: Any, outdir: Path) -> list[Job]:
    """Input-variable distributions and correlations (training events)."""
    cfg = run.config
    X, labels, w = _display(run.train, cfg.split.seed)
    names = cfg.data.features
    jobs = []
    for kind, func in (("inputs", "plot_inputs"), ("correlations", "plot_correlations")):
        stem = plot_stem(outdir, kind)
        lab, extra = run.task.input_plot_options(kind, labels)
        jobs.append((func, (X, lab, w, names, stem), {**_kw(run), **extra},
                     plot_record(stem, kind)))
    return jobs


def method_jobs(run: Any, name: str, outdir: Path) -> list[Job]:
    """The plots of one trained and evaluated method: its loss curves, then the task's."""
    res = run.methods[name]
    kw = _kw(run)
    jobs: list[Job] = []
    if res.trained.model.history_:
        xlabel = "trees" if res.trained.type == "bdt" else "epoch"
        stem = plot_stem(outdir, "loss", name)
        jobs.append(("plot_loss", (name, res.trained.model.history_, stem),
                     {**kw, "xlabel": xlabel}, plot_record(stem, "loss", name)))
    tuning = res.metrics.get("tuning")
    if tuning:
        # one search, or one per fold (k-fold runs)
        searches = ({"": tuning} if "history" in tuning else
                    {f"fold {k}": t for k, t in enumerate(tuning.get("folds", [])) if t})
        if searches:
            stem = plot_stem(outdir, "tuning", name)
            jobs.append(("plot_tuning", (name, searches, stem), kw,
                         plot_record(stem, "tuning", name)))
    return jobs + run.task.method_plots(run, name, outdir, kw)


def summary_jobs(run: Any, outdir: Path) -> list[Job]:
    """Plots that compare all methods (the task's: ROC curves, prediction/target ratios)."""
    return run.task.summary_plots(run, outdir, _kw(run))


def plot_jobs(run: Any, outdir: Path) -> list[Job]:
    """Every plot of a finished run as ``(plot function name, args, kwargs)``."""
    jobs = input_jobs(run, outdir)
    for name in run.methods:
        jobs += method_jobs(run, name, outdir)
    return jobs + summary_jobs(run, outdir)


def _run_job(job: Job) -> list[Path]:
    import time

    from mva.evaluation import plots

    func, args, kwargs = job[:3]
    t0, c0 = time.perf_counter(), time.process_time()
    out = getattr(plots, func)(*args, **kwargs)
    log.debug("%s: %.2f s (CPU %.2f s)", func, time.perf_counter() - t0, time.process_time() - c0)
    return out


PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2


def _die_with_parent(parent_pid: int) -> None:
    """End this worker when its parent dies, even by SIGKILL (which runs no clean-up).

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``. The signal comes when the parent *thread*
    that forked the worker ends: the pool forks its workers from the thread that submits, the
    main thread here. Elsewhere, a daemon thread checks the parent every second.
    """
    import signal
    import sys

    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    else:
        import threading
        import time

        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    # the parent died before the death signal was set: the worker was re-parented already
    if os.getppid() != parent_pid:
        os._exit(1)


def _warm_up() -> None:
    """Import the plots and draw a small figure as they do (style, fonts, log-axis labels in
    mathtext) into memory, as PNG and PDF: the first plot of a process pays for these. A
    failure here is left to the real plots to report.

    The figure is small (1.5 in): the same code paths for a fifth of the drawing (0.18 s of
    CPU against 0.30 s at the plots' size, the first plots after it as fast)."""
    import io

    try:
        from mva.evaluation import plots

        with plots._figure(figsize=(1.5, 1.5)) as (fig, ax):
            # the decades' tick labels of the log axes (mathtext, parsed once per process)
            ax.loglog([1e-6, 1.0, 1e6], [1e-6, 1.0, 1e6], label=r"$\varepsilon_S$")
            ax.set_xlabel(r"signal efficiency $\varepsilon_S$")
            ax.legend()
            for fmt in ("png", "pdf"):
                fig.savefig(io.BytesIO(), format=fmt)
    except Exception:  # pragma: no cover - the plots themselves report it
        log.debug("plot warm-up failed", exc_info=True)


def _lower_priority(parent_pid: int | None = None) -> None:
    """Worker start-up: die with the parent; a low priority; matplotlib imported and warm."""
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    # plot workers take the cores that the run leaves idle (reading, evaluation, writing)
    # and yield them to the training threads
    os.nice(19)
    _warm_up()


#: what each plot roughly costs to draw (CPU seconds, PNG and PDF, 1M test events, 20 inputs:
#: the benchmark run). The workers take the costliest waiting plot first, so that a run does
#: not end with one worker drawing a large plot while the others have nothing left to draw;
#: a plot not listed counts as :data:`DEFAULT_COST`
PLOT_COST = {
    "plot_inputs": 2.2, "plot_correlations": 1.7, "plot_all_class_scores": 1.5,
    "plot_profiles": 1.0, "plot_rejection": 0.7, "plot_overtraining": 0.7,
    "plot_cut_efficiencies": 0.6, "plot_probability": 0.5, "plot_roc": 0.35, "plot_loss": 0.3,
    "plot_reliability": 0.3,
}
DEFAULT_COST = 0.5


class Plotter:
    """Draws plots as they become possible, in low-priority worker processes.

    ``parallel=False`` draws each plot at once, in this process (small runs: starting workers
    would cost more than it saves). Call :meth:`wait` to get the written files; errors in a
    plot surface there.

    In parallel, the submitted plots wait here and a feeder thread hands each worker the
    costliest waiting one (:data:`PLOT_COST`) when it is free.
    """

    def __init__(self, parallel: bool):
        self.parallel = parallel
        self._pool: ProcessPoolExecutor | None = None
        self._futures: list[Future] = []
        self._written: list[Path] = []
        #: the records of the submitted jobs (which method and kind each plot is)
        self.records: list[dict[str, Any]] = []
        # the waiting jobs as a heap of (-cost, order, job, future), the free workers
        self._cond = threading.Condition()
        self._waiting: list[tuple[float, int, Job, Future]] = []
        self._free = 0
        self._closed = False
        self._feeder: threading.Thread | None = None
        if parallel:
            # the workers start now: they import matplotlib and warm it up (seconds) on the
            # core that reading the inputs leaves idle, and this process never imports it
            self._start()

    def submit(self, jobs: list[Job]) -> None:
        for job in jobs:  # a record, or a list of them for a job that writes several plots
            rec = job[3] if len(job) > 3 else None
            self.records += rec if isinstance(rec, list) else [rec] if rec else []
        if not self.parallel:
            for job in jobs:
                self._written += _run_job(job)
            return
        if self._pool is None:
            self._start()
        with self._cond:
            for job in jobs:
                future: Future = Future()
                self._futures.append(future)
                cost = PLOT_COST.get(job[0], DEFAULT_COST)
                heapq.heappush(self._waiting, (-cost, len(self._futures), job, future))
            self._cond.notify()

    def _start(self) -> None:
        cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                 else os.cpu_count() or 1)
        # fork, before the run has read or trained anything: the workers hold no copy of the
        # events, and draw with matplotlib and numpy only, never with the OpenMP pools of
        # xgboost or torch
        method = "fork" if "fork" in get_all_start_methods() else "spawn"
        self._pool = ProcessPoolExecutor(max_workers=max(1, cores),
                                         mp_context=get_context(method),
                                         initializer=_lower_priority, initargs=(os.getpid(),))
        # a forking pool starts all its workers at the first submission
        self._pool.submit(int)
        self._free, self._closed = max(1, cores), False
        self._feeder = threading.Thread(target=self._feed, args=(self._pool,), daemon=True,
                                        name="mva-plot-feeder")
        self._feeder.start()

    def _feed(self, pool: ProcessPoolExecutor) -> None:
        while True:
            with self._cond:
                while not self._closed and not (self._waiting and self._free > 0):
                    self._cond.wait()
                if self._closed:
                    return
                *_, job, future = heapq.heappop(self._waiting)
                self._free -= 1
            try:
                done = pool.submit(_run_job, job)
            except Exception as exc:  # the pool was shut down or broke meanwhile
                self._finished(future, None, exc)
                continue
            done.add_done_callback(lambda f, future=future: self._finished(future, f))

    def _finished(self, future: Future, done: Future | None,
                  exc: BaseException | None = None) -> None:
        with self._cond:
            self._free += 1
            self._cond.notify()
        if done is not None and done.cancelled():
            future.cancel()
        elif done is not None and done.exception() is None:
            future.set_result(done.result())
        else:
            future.set_exception(exc if done is None else done.exception())

    def wait(self) -> list[Path]:
        try:
            for f in self._futures:
                self._written += f.result()
            return list(self._written)
        finally:
            self.close()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            waiting, self._waiting = self._waiting, []
            self._cond.notify_all()
        for *_, future in waiting:
            future.cancel()
        if self._feeder is not None:
            self._feeder.join()
            self._feeder = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._futures = []


def write_index(outdir: Path, records: list[dict[str, Any]], written: list[Path]) -> Path:
    """``plots/index.json``: every written plot with its method (or null), kind and part, in
    the order the plots were made, for the report."""
    names = {p.name for p in written}
    rows = [r for r in records if r["file"] in names]
    path = outdir / PLOT_INDEX
    path.write_text(json.dumps({"plots": rows}, indent=1))
    return path


def make_plots(run: Any, outdir: Path, parallel: bool = False) -> list[Path]:
    """Draw every plot of a finished run into ``outdir`` with its index; return the files."""
    outdir.mkdir(parents=True, exist_ok=True)
    plotter = Plotter(parallel)
    plotter.submit(plot_jobs(run, outdir))
    written = plotter.wait()
    write_index(outdir, plotter.records, written)
    return written
