"""``mva train``: read, split, preprocess, train every method, evaluate, write the run directory."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mva.config import Config
from mva.io.events import Events, load_samples
from mva.io.writers import atomic_directory, write_trees
from mva.methods import method_class
from mva.naming import unique_names
from mva.preprocessing import Pipeline
from mva.provenance import provenance
from mva.split import split_indices, training_weights, validation_split
from mva.store import TrainedMethod, save_models

__all__ = ["train", "RunResult", "run_training", "write_run"]

log = logging.getLogger(__name__)

@dataclass
class MethodResult:
    trained: TrainedMethod
    pred_train: np.ndarray
    pred_test: np.ndarray
    sigma_train: np.ndarray | None
    sigma_test: np.ndarray | None
    metrics: dict[str, Any]
    fit_seconds: float


@dataclass
class RunResult:
    config: Config
    train: Events
    test: Events
    methods: dict[str, MethodResult] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    writer: Any = None
    #: the task (:mod:`mva.tasks`) of the config
    task: Any = None
    #: the normalised weights the methods were trained with
    train_weights: np.ndarray | None = None


def _fit_method(cfg: Config, task: Any, spec: Any, tr: Events, te: Events, w_train: np.ndarray,
                w_test_norm: np.ndarray) -> MethodResult:
    cls = method_class(spec.type)
    model = cls(spec.params, cfg.task, seed=cfg.split.seed, n_classes=task.n_classes)
    steps = spec.preprocess if spec.preprocess is not None else cls.default_preprocess
    t0 = time.perf_counter()
    pipeline = Pipeline(steps).fit(tr.features, np.clip(w_train, 0, None))
    Xtr = pipeline.transform(tr.features)
    Xte = pipeline.transform(te.features)
    ytr = task.y(tr)
    validation = monitor = None
    fraction = model.wants_validation()
    if fraction > 0:
        fit_idx, val_idx = validation_split(tr.labels, len(tr), fraction, cfg.split.seed,
                                            task.groups)
        validation = (Xtr[val_idx], ytr[val_idx], w_train[val_idx])
        model.fit(Xtr[fit_idx], ytr[fit_idx], w_train[fit_idx], validation=validation)
    else:
        monitor = (Xte, task.y(te), w_test_norm) if cls.supports_validation else None
        model.fit(Xtr, ytr, w_train, monitor=monitor)
    fit_seconds = time.perf_counter() - t0
    p_tr, s_tr = model.predict_with_sigma(Xtr)
    p_te, s_te = model.predict_with_sigma(Xte)
    trained = TrainedMethod(spec.name, spec.type, spec.params, pipeline, model)
    return MethodResult(trained, p_tr, p_te, s_tr, s_te, {}, fit_seconds)


def _trees(run: RunResult, methods: dict[str, MethodResult] | None = None
           ) -> dict[str, dict[str, np.ndarray]]:
    """TrainTree and TestTree as TMVA writes them."""
    cfg, task = run.config, run.task
    methods = run.methods if methods is None else methods
    feat = unique_names(cfg.data.features)
    spec_names = unique_names(cfg.data.spectators)
    trees = {}
    for tree, part, key in (("TrainTree", run.train, "train"), ("TestTree", run.test, "test")):
        cols: dict[str, Any] = {}
        truth = task.truth_columns(part)
        # TMVA's order: classID, className, weight, variables; targets after the spectators
        for name in ("classID", "className"):
            if name in truth:
                cols[name] = truth.pop(name)
        cols["weight"] = part.weights
        for j, name in enumerate(feat):
            cols[name] = part.features[:, j]
        for j, name in enumerate(spec_names):
            cols[name] = part.spectators[:, j]
        cols.update(truth)
        for mname, res in methods.items():
            pred = res.pred_train if key == "train" else res.pred_test
            sigma = res.sigma_train if key == "train" else res.sigma_test
            cols.update(task.method_columns(mname, pred, sigma))
        trees[tree] = cols
    return trees


def summary_table(run: RunResult) -> str:
    """The table printed at the end of a run (test values, train in brackets)."""
    return run.task.summary_table(run)


def _take(parts: list[Events], idx: np.ndarray) -> list[Events]:
    """Rows ``idx`` of the concatenation of ``parts``, taken part by part (``idx`` sorted)."""
    out, start = [], 0
    for p in parts:
        lo, hi = np.searchsorted(idx, [start, start + len(p)])
        out.append(p.subset(idx[lo:hi] - start))
        start += len(p)
    return out


class _Background:
    """A function run in a thread; its exception is raised again at :meth:`join`."""

    def __init__(self, func: Any, *args: Any, **kwargs: Any):
        import threading

        self.error: BaseException | None = None

        def target() -> None:
            try:
                func(*args, **kwargs)
            except BaseException as exc:  # handed to the caller at join
                self.error = exc

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def join(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error


def run_training(cfg: Config, out: Path | None = None, plotter: Any = None) -> RunResult:
    """Read, split and train every method; evaluate on train and test.

    With ``out`` (the run directory being built), ``output.root`` is written there in a
    background thread while the methods are evaluated (``run.writer``); with a ``plotter``
    (:class:`mva.evaluation.figures.Plotter`) plots are handed to it as soon as their inputs
    exist, to be drawn into ``out/plots``.
    """
    task = cfg.task_
    log.info("reading events")
    parts = load_samples(cfg)
    log.debug("splitting")
    labels = np.concatenate([p.labels for p in parts]) if task.groups else None
    train_idx, test_idx = split_indices(labels, sum(len(p) for p in parts), cfg.split, cfg.source,
                                        task.groups)
    # take train and test from each sample directly: one copy of the features, not two
    tr, te = (Events.concatenate(_take(parts, idx)) for idx in (train_idx, test_idx))
    del parts
    log.info("split: %d training, %d test events", len(tr), len(te))
    w_train = training_weights(tr.labels, tr.weights, cfg.split.normalization,
                               cfg.split.negative_weights, task.groups)
    w_test_norm = training_weights(te.labels, te.weights, cfg.split.normalization, "keep",
                                   task.groups)
    run = RunResult(cfg, tr, te, task=task, train_weights=w_train)
    fitted = {}
    for name, spec in cfg.methods.items():
        log.info("training %s (%s)", name, spec.type)
        fitted[name] = _fit_method(cfg, task, spec, tr, te, w_train, w_test_norm)
        log.info("%s trained in %.1f s", name, fitted[name].fit_seconds)
    if out is not None:
        # numpy and compression release the GIL: the trees are written while evaluation runs
        run.writer = _Background(write_trees, out / "output.root", _trees(run, fitted),
                                 compression=cfg.evaluation.compression)
    try:
        _evaluate_all(run, fitted, out, plotter)
    except BaseException:
        # the run directory is about to be removed: let the writer finish with it first
        if run.writer is not None:
            run.writer.thread.join()
        raise
    return run


def _evaluate_all(run: RunResult, fitted: dict[str, MethodResult], out: Path | None,
                  plotter: Any) -> None:
    """Evaluate every fitted method into ``run`` and hand the plots to the ``plotter``."""
    cfg = run.config
    plot_dir = None if out is None else out / "plots"
    if plotter is not None:
        # only now: plot workers beside multi-threaded training slow it down more than they
        # save; beside the single-threaded evaluation and writing they use an idle core
        from mva.evaluation import figures

        plotter.submit(figures.input_jobs(run, plot_dir))
    for name, res in fitted.items():
        log.debug("%s: evaluating", name)
        res.metrics = run.task.evaluate(res, run)
        res.metrics["fit_seconds"] = res.fit_seconds
        if res.trained.model.notes_:
            res.metrics["notes"] = res.trained.model.notes_
        run.methods[name] = res
        if plotter is not None:
            plotter.submit(figures.method_jobs(run, name, plot_dir))
    head, tail = run.task.run_metrics(run)
    run.metrics = {"task": cfg.task, **head,
                   "methods": {n: r.metrics for n, r in run.methods.items()}, **tail}
    if plotter is not None:
        plotter.submit(figures.summary_jobs(run, plot_dir))


def write_run(run: RunResult, out: Path, plotter: Any = None) -> None:
    """Write every output of a run into the (temporary) directory ``out``; wait for the
    ``plotter``'s plots (or draw them here when there is none and plots are on)."""
    cfg = run.config
    if run.writer is None:
        log.info("writing output.root")
        write_trees(out / "output.root", _trees(run), compression=cfg.evaluation.compression)
    else:
        log.debug("waiting for output.root")
        run.writer.join()
    sources = run.train.sources
    info = {
        "features": cfg.data.features, "feature_branches": unique_names(cfg.data.features),
        "spectators": cfg.data.spectators, "targets": cfg.data.target,
        "default": cfg.data.default, "seed": cfg.split.seed, "inputs": sources,
        "config": cfg.raw, "provenance": provenance(), **run.task.manifest_info(),
        "n_train": len(run.train), "n_test": len(run.test),
    }
    log.debug("saving models")
    save_models(out / "models", cfg.task, {n: r.trained for n, r in run.methods.items()}, info)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.raw, sort_keys=False))
    if plotter is not None:
        from mva.evaluation.figures import write_index

        log.info("waiting for the plots")
        write_index(out / "plots", plotter.records, plotter.wait())
    elif cfg.evaluation.plots:
        from mva.evaluation.figures import make_plots

        log.info("plotting")
        make_plots(run, out / "plots")
    # metrics.json last: its presence marks a complete run
    (out / "metrics.json").write_text(json.dumps(run.metrics, indent=2, default=float))


def _n_events(cfg: Config) -> int:
    """Entries in the input files (cheap: from the file metadata), to choose how to plot."""
    from mva.io.readers import count_entries, expand_files, file_format

    total = 0
    for src in cfg.task_.samples(cfg.data):
        for path in expand_files(list(src.files)):
            if file_format(path) == "csv":  # counting would read it: estimate from its size
                total += Path(path).stat().st_size // 100
            else:
                total += count_entries(path, src.tree)
    return total


def train(cfg: Config, output: str | Path, force: bool = False) -> RunResult:
    """Train every configured method and write ``output`` atomically; return the run."""
    with atomic_directory(output, force) as tmp:
        plotter = None
        if cfg.evaluation.plots:
            from mva.evaluation.figures import PARALLEL_EVENTS, PARALLEL_PLOTS, Plotter

            (tmp / "plots").mkdir()
            # many events make each plot slow, many classes make many plots: either way the
            # worker processes pay for their start
            many_plots = len(cfg.methods) * len(cfg.task_.classes) > PARALLEL_PLOTS
            plotter = Plotter(parallel=many_plots or _n_events(cfg) > PARALLEL_EVENTS)
        try:
            run = run_training(cfg, tmp, plotter)
            write_run(run, tmp, plotter)
        finally:
            if plotter is not None:
                plotter.close()
    if cfg.evaluation.plots:
        # after the rename, so that the report names the run directory, not its temporary name;
        # the report is itself written atomically and can be remade with `mva report`
        from mva.report import write_report

        log.info("writing report.html")
        write_report([Path(output)])
    return run
