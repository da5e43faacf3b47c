"""``mva train``: read, split, preprocess, train every method, evaluate, write the run directory."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mva.backends import Backend, LocalBackend
from mva.config import Config
from mva.errors import InputError
from mva.evaluation.classification import sorted_once
from mva.io.events import Events, load_samples
from mva.io.writers import atomic_directory, write_trees
from mva.methods import import_ahead, method_class
from mva.naming import unique_names
from mva.preprocessing import Pipeline
from mva.provenance import provenance
from mva.split import Fold, make_splitter, training_weights, validation_split
from mva.store import FoldedMethod, TrainedMethod, save_models

__all__ = ["train", "RunResult", "run_training", "write_run"]

log = logging.getLogger(__name__)

@dataclass
class MethodResult:
    trained: TrainedMethod | FoldedMethod
    pred_train: np.ndarray
    pred_test: np.ndarray
    sigma_train: np.ndarray | None
    sigma_test: np.ndarray | None
    metrics: dict[str, Any]
    fit_seconds: float
    #: ``metrics.json``'s ``tuning`` of a tuned method (a list, one per fold, for k-fold)
    tuning: Any = None
    #: curves the task computed while evaluating the method (on the sorts made for its
    #: figures) for the plots that compare the methods
    curves: dict[str, Any] = field(default_factory=dict)


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
    #: k-fold: the folds, and the fold of every event (``train`` and ``test`` are then the same
    #: events: training scores and out-of-fold scores)
    folds: list[Fold] | None = None
    fold_of: np.ndarray | None = None
    #: where the files were read and the methods fitted (:meth:`mva.backends.Backend.describe`)
    backend: str = "this process"


def _fit_method(cfg: Config, task: Any, spec: Any, tr: Events, te: Events, w_train: np.ndarray,
                w_test_norm: np.ndarray | None, score: Events | None = None,
                train_scores: bool = True, quiet: bool = False) -> MethodResult:
    """Fit one method on ``tr`` (its preprocessing and any validation split from ``tr`` only);
    score ``te`` and, as training scores, ``score`` (default: ``tr``; none without
    ``train_scores``). A method with ``tune`` is first tuned by cross-validation on ``tr``
    (:mod:`mva.tuning`) and then fitted with the best parameters."""
    tuning = None
    if getattr(spec, "tune", None):
        spec, tuning = _tune_here(cfg, task, spec, tr, w_train)
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
        monitor = ((Xte, task.y(te), w_test_norm)
                   if cls.supports_validation and w_test_norm is not None else None)
        model.fit(Xtr, ytr, w_train, monitor=monitor)
    fit_seconds = time.perf_counter() - t0
    if getattr(model, "training_events_", None) is None:   # a method that does not say
        model.training_events_ = len(fit_idx) if fraction > 0 else len(Xtr)
    if tuning is not None:
        fit_seconds += tuning["seconds"]
        _note_tuning(model, tuning)
    if not quiet:
        for note in model.notes_:
            if note.startswith(("default", "tuned")):
                log.info("%s: %s", spec.name, note)
    p_tr = s_tr = None
    # the fit's own predictions of its events, where it has them (of no use for other events)
    cached = model.take_fit_predictions()
    if train_scores and score is None and cached is not None:
        p_tr, s_tr = _in_order(cached, [fit_idx, val_idx] if fraction > 0 else [None],
                               len(Xtr))
    elif train_scores:
        p_tr, s_tr = model.predict_with_sigma(Xtr if score is None
                                              else pipeline.transform(score.features))
    p_te, s_te = model.predict_with_sigma(Xte)
    trained = TrainedMethod(spec.name, spec.type, spec.params, pipeline, model)
    return MethodResult(trained, p_tr, p_te, s_tr, s_te, {}, fit_seconds, tuning)


def _gather(parts: list[np.ndarray | None], where: list[np.ndarray], n: int
            ) -> np.ndarray | None:
    """One array of ``n`` events from the parts at the rows ``where`` (None: no parts)."""
    if parts[0] is None:
        return None
    out = np.empty((n, *parts[0].shape[1:]), dtype=parts[0].dtype)
    for p, idx in zip(parts, where, strict=True):
        out[idx] = p
    return out


def _in_order(parts: list[tuple[np.ndarray, np.ndarray | None]],
              rows: list[np.ndarray | None], n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The (prediction, width) of ``n`` events from those of the parts at ``rows`` (the fit
    and validation events; ``[None]``: one part of every event in order)."""
    if rows[0] is None:
        return parts[0]
    return (_gather([p for p, _ in parts], rows, n), _gather([s for _, s in parts], rows, n))


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else json.dumps(v)


def _note_tuning(model: Any, tuning: dict[str, Any]) -> None:
    best = ", ".join(f"{k} {_short(v)}" for k, v in tuning["best_params"].items())
    model.notes_.insert(0, f"tuned ({tuning['trials']} trials, {tuning['folds']}-fold "
                           f"cross-validation on the training sample): {best}; "
                           f"{tuning['metric']} {tuning['best_score']:.5g}")


def _inner_folds(cfg: Config, task: Any, tune: dict[str, Any], tr: Events) -> list[Fold]:
    """The tuning folds of the training events ``tr`` (per class, seeded)."""
    from mva.config import Split
    from mva.split import KFold

    labels = tr.labels if task.groups else None
    return KFold(Split(folds=tune["folds"], seed=cfg.split.seed)).folds(labels, len(tr),
                                                                          task.groups)


def _trial_score(cfg: Config, task: Any, spec: Any, params: dict[str, Any], tr: Events,
                 w_train: np.ndarray, fold: Fold) -> float:
    """One trial's figure on one tuning fold: ``spec`` with ``params`` fitted on the fold's
    training part of ``tr``, scored on its held-out part."""
    from mva.tuning import score

    fit_tr, held_out = tr.subset(fold.train), tr.subset(fold.test)
    trial = spec.model_copy(update={"params": params, "tune": None})
    res = _fit_method(cfg, task, trial, fit_tr, held_out, w_train[fold.train], None,
                      train_scores=False, quiet=True)
    return score(spec.tune["metric"], cfg.task, res.pred_test, task.y(held_out),
                 held_out.weights)


def trial_unit(cfg: Config, spec: Any, fold: Fold, params: dict[str, Any], k: int,
               events: Events) -> float:
    """:func:`_trial_score` as a unit of a backend: tuning fold ``k`` of the training events of
    the (outer) ``fold`` of ``events``, computed as a local run computes it."""
    task = cfg.task_
    tr = events.subset(fold.train)
    w_train = training_weights(tr.labels, tr.weights, cfg.split.normalization,
                               cfg.split.negative_weights, task.groups)
    inner = _inner_folds(cfg, task, spec.tune, tr)[k]
    with _quiet_methods():
        return _trial_score(cfg, task, spec, params, tr, w_train, inner)


@contextlib.contextmanager
def _quiet_methods() -> Iterator[None]:
    """The trial fits' own progress lines (neighbour search, subsampling) would drown the
    trials' lines: only their warnings."""
    quiet = logging.getLogger("mva.methods")
    level = quiet.level
    quiet.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        quiet.setLevel(level)


def _tune(cfg: Config, spec: Any, n_train: int, fit_score: Any) -> tuple[Any, dict[str, Any]]:
    """``spec`` with the parameters that ``spec.tune`` finds best in cross-validation on its
    ``n_train`` training events, and the ``tuning`` entry of ``metrics.json``.
    ``fit_score(params, k)`` is the figure of tuning fold ``k`` (here or on a worker)."""
    from mva.tuning import tune_method

    t0 = time.perf_counter()
    tune = spec.tune
    log.info("tuning %s: %d trials, %d-fold cross-validation on %d training events",
             spec.name, tune["trials"], tune["folds"], n_train)
    with _quiet_methods():
        tuning = tune_method(spec.type, cfg.task, dict(spec.params), tune, fit_score,
                             seed=cfg.split.seed, name=spec.name)
    tuning["seconds"] = time.perf_counter() - t0
    best = method_class(spec.type).Params(**{**spec.params, **tuning["best_params"]})
    log.info("%s: best %s %.5g (trial %d) with %s", spec.name, tuning["metric"],
             tuning["best_score"], tuning["best_trial"], tuning["best_params"])
    return spec.model_copy(update={"params": best.model_dump()}), tuning


def _tune_here(cfg: Config, task: Any, spec: Any, tr: Events, w_train: np.ndarray
               ) -> tuple[Any, dict[str, Any]]:
    """:func:`_tune` with every trial fitted in this process."""
    folds = _inner_folds(cfg, task, spec.tune, tr)
    return _tune(cfg, spec, len(tr), lambda params, k: _trial_score(
        cfg, task, spec, params, tr, w_train, folds[k]))


def fit_fold(cfg: Config, task: Any, spec: Any, events: Events, fold: Fold) -> MethodResult:
    """Train one method on one fold of ``events`` and score the fold's test and training events.

    A pure function of its arguments: the unit of work a backend maps over (every fold of
    every method is independent)."""
    tr, te = events.subset(fold.train), events.subset(fold.test)
    groups = task.groups
    w_train = training_weights(tr.labels, tr.weights, cfg.split.normalization,
                               cfg.split.negative_weights, groups)
    w_test_norm = training_weights(te.labels, te.weights, cfg.split.normalization, "keep", groups)
    return _fit_method(cfg, task, spec, tr, te, w_train, w_test_norm,
                       score=events.subset(fold.score_train))


def _combine_folds(spec: Any, folds: list[Fold], results: list[MethodResult], n: int
                   ) -> MethodResult:
    """One result from the fold results: out-of-fold test scores and training scores of every
    event, in event order."""
    tests, trains = [f.test for f in folds], [f.score_train for f in folds]
    trained = FoldedMethod(spec.name, spec.type, spec.params, [r.trained for r in results])
    tuning = ([r.tuning for r in results] if any(r.tuning is not None for r in results)
              else None)
    return MethodResult(
        trained, _gather([r.pred_train for r in results], trains, n),
        _gather([r.pred_test for r in results], tests, n),
        _gather([r.sigma_train for r in results], trains, n),
        _gather([r.sigma_test for r in results], tests, n), {},
        sum(r.fit_seconds for r in results), tuning)


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
            cols[name] = part.spectators[j]
        cols.update(truth)
        if run.fold_of is not None:
            cols["fold"] = run.fold_of.astype(np.int32)
            if key == "train":  # the model that scored the event (it trained on the fold)
                cols["model_fold"] = ((run.fold_of + 1) % len(run.folds)).astype(np.int32)
        for mname, res in methods.items():
            pred = res.pred_train if key == "train" else res.pred_test
            sigma = res.sigma_train if key == "train" else res.sigma_test
            cols.update(task.method_columns(mname, pred, sigma))
        trees[tree] = cols
    return trees


def summary_table(run: RunResult) -> str:
    """The table printed at the end of a run (test values, train in brackets)."""
    return run.task.summary_table(run)


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


def run_training(cfg: Config, out: Path | None = None, plotter: Any = None,
                 backend: Backend | None = None) -> RunResult:
    """Read, split and train every method; evaluate on train and test.

    With ``out`` (the run directory being built), ``output.root`` is written there in a
    background thread while the methods are evaluated (``run.writer``); with a ``plotter``
    (:class:`mva.evaluation.figures.Plotter`) plots are handed to it as soon as their inputs
    exist, to be drawn into ``out/plots``. With a Dask ``backend`` (:mod:`mva.backends`) the
    files are read and the methods (every fold of every method) fitted on its workers; the
    results are those of a local run.
    """
    task = cfg.task_
    remote = backend is not None and not backend.run_here()
    _check_distributed(cfg, remote)
    log.info("reading events")
    # the methods' libraries are imported while the files are read (not for a remote fit)
    ahead = None if remote else import_ahead(spec.type for spec in cfg.methods.values())
    try:
        parts = load_samples(cfg, backend if remote else LocalBackend())
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM is raised wherever the main thread was, possibly inside an import
        # that the thread waits for: joining it could hang, the daemon thread is left
        raise
    except BaseException:
        if ahead is not None:
            ahead.join()
        raise
    if ahead is not None:
        ahead.join()
    log.debug("splitting")
    n = sum(len(p) for p in parts)
    splitter = make_splitter(cfg.split, cfg.source)
    if splitter.n_folds == 1:
        labels = np.concatenate([p.labels for p in parts]) if task.groups else None
        (fold,) = splitter.folds(labels, n, task.groups)
        # take train and test from each sample directly: one copy of the features, not two
        tr, te = (Events.concatenate(parts, rows=idx) for idx in (fold.train, fold.test))
        del parts
        log.info("split: %d training, %d test events", len(tr), len(te))
        w_train = training_weights(tr.labels, tr.weights, cfg.split.normalization,
                                   cfg.split.negative_weights, task.groups)
        w_test_norm = training_weights(te.labels, te.weights, cfg.split.normalization, "keep",
                                       task.groups)
        run = RunResult(cfg, tr, te, task=task, train_weights=w_train)
        _plot_inputs(run, out, plotter)
        if remote:
            run.backend = backend.describe()
        fitted = {}
        if remote:
            # every method a task on the workers, on the events of both samples sent once
            both = Events.concatenate([tr, te])
            n_tr = len(tr)
            fold = Fold(0, np.arange(n_tr), np.arange(n_tr, len(both)), np.arange(n_tr))
            units = [(spec, fold) for spec in cfg.methods.values()]
            log.info("training %s on %s", ", ".join(cfg.methods), backend.describe())
            for (spec, _), res in zip(units, _fit_remote(backend, cfg, both, units),
                                      strict=True):
                fitted[spec.name] = res
                log.info("%s trained in %.1f s", spec.name, res.fit_seconds)
            del both
        for name, spec in cfg.methods.items():
            if name in fitted:
                continue
            log.info("training %s (%s)", name, spec.type)
            fitted[name] = _fit_method(cfg, task, spec, tr, te, w_train, w_test_norm)
            log.info("%s trained in %.1f s", name, fitted[name].fit_seconds)
        fitted = {name: fitted[name] for name in cfg.methods}
    else:
        events = Events.concatenate(parts)
        del parts
        folds = splitter.folds(events.labels, n, task.groups, events.fold_values)
        fold_of = np.empty(n, dtype=np.int64)
        for f in folds:
            fold_of[f.test] = f.index
        how = (f"by {cfg.split.fold_expression!r}" if cfg.split.fold_expression
               else f"at random (seed {cfg.split.seed})")
        log.info("%d folds %s: %s test events", len(folds), how,
                 ", ".join(str(len(f.test)) for f in folds))
        w_all = training_weights(events.labels, events.weights, cfg.split.normalization,
                                 cfg.split.negative_weights, task.groups)
        run = RunResult(cfg, events, events, task=task, train_weights=w_all, folds=folds,
                        fold_of=fold_of)
        _plot_inputs(run, out, plotter)
        if remote:
            run.backend = backend.describe()
        fitted = {}
        if remote:
            units = [(spec, f) for spec in cfg.methods.values() for f in folds]
            log.info("training %d methods x %d folds on %s", len(cfg.methods), len(folds),
                     backend.describe())
            results = list(_fit_remote(backend, cfg, events, units))
            for i, (name, spec) in enumerate(cfg.methods.items()):
                fitted[name] = _combine_folds(spec, folds, results[i * len(folds):
                                                                   (i + 1) * len(folds)], n)
                log.info("%s trained in %.1f s", name, fitted[name].fit_seconds)
        n_jobs = 1 if remote else _fold_jobs(cfg, n)
        pool = FoldPool(cfg, events, n_jobs) if n_jobs > 1 else None
        if pool is not None:
            log.info("training %d folds at a time", n_jobs)
        try:
            for name, spec in cfg.methods.items():
                if name in fitted:
                    continue
                log.info("training %s (%s) on %d folds", name, spec.type, len(folds))
                results = _map_folds(cfg, task, spec, events, folds, pool)
                fitted[name] = _combine_folds(spec, folds, results, n)
                log.info("%s trained in %.1f s", name, fitted[name].fit_seconds)
        except BaseException:
            if pool is not None:
                pool.close(abort=True)
            raise
        if pool is not None:
            pool.close()
        fitted = {name: fitted[name] for name in cfg.methods}
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


def _map_folds(cfg: Config, task: Any, spec: Any, events: Events, folds: list[Fold],
               pool: Any = None) -> list[MethodResult]:
    """:func:`fit_fold` over the folds: one after the other, or in the worker processes of
    ``pool`` (:class:`FoldPool`); the results are the same either way."""
    if pool is not None:
        return pool.map(spec, folds)
    out = []
    for f in folds:
        log.debug("%s: fold %d", spec.name, f.index)
        out.append(fit_fold(cfg, task, spec, events, f))
    return out


_WORKER: dict[str, Any] = {}


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM that arrive in the block act when it is done. (Not by blocking them
    in the kernel: the other threads would take them, and the processes started in the block
    would inherit the mask.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    old = {s: signal.signal(s, lambda signum, frame: received.append(signum))
           for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if received:
            signal.raise_signal(received[0])


def _init_worker(cfg: Config, events: Events) -> None:
    _WORKER.update(cfg=cfg, events=events)


def _portable(res: MethodResult) -> tuple:
    """A fitted fold as it travels between processes: the model in its storage form (JSON
    meta, arrays, library blobs), the same form as on disk, never a pickled model."""
    tm = res.trained
    model = tm.model
    return (res.pred_train, res.pred_test, res.sigma_train, res.sigma_test, res.fit_seconds,
            model.state(), tm.pipeline.to_dict(), model.history_, model.notes_, tm.params,
            res.tuning, model.training_events_)


def _restore(cfg: Config, spec: Any, portable: tuple) -> MethodResult:
    """The :class:`MethodResult` of :func:`_portable`."""
    p_tr, p_te, s_tr, s_te, seconds, state, pipe, history, notes, params, tuning, n_fit = portable
    cls = method_class(spec.type)
    model = cls.from_state(params, cfg.task, state, n_classes=cfg.task_.n_classes)
    model.history_, model.notes_, model.training_events_ = history, notes, n_fit
    trained = TrainedMethod(spec.name, spec.type, params, Pipeline.from_dict(pipe), model)
    return MethodResult(trained, p_tr, p_te, s_tr, s_te, {}, seconds, tuning)


def _fit_fold_portable(spec: Any, fold: Fold) -> tuple:
    """:func:`fit_fold` in a worker process of a :class:`FoldPool`."""
    cfg, events = _WORKER["cfg"], _WORKER["events"]
    return _portable(fit_fold(cfg, cfg.task_, spec, events, fold))


def fit_unit(cfg: Config, spec: Any, fold: Fold, events: Events) -> tuple:
    """:func:`fit_fold` as a unit of a backend (:mod:`mva.backends`), in portable form."""
    return _portable(fit_fold(cfg, cfg.task_, spec, events, fold))


def _fit_remote(backend: Backend, cfg: Config, events: Events, units: list[tuple[Any, Fold]]
                ) -> Any:
    """:func:`fit_unit` over ``(spec, fold)`` units on the backend's workers, the events sent
    to every worker once; a method with ``distributed: true`` is fitted here instead, across
    the workers by the library's own Dask interface. Yields the results in unit order."""
    shared = backend.share(events)
    # a tuned method is tuned here, every trial's fit on one tuning fold a task on the workers
    # (``tune.n_jobs`` trials at once), then fitted with the best parameters as the others are
    tunings: list[dict[str, Any] | None] = []
    remote = []
    for spec, f in units:
        tuning = None
        if not _distributed(spec):
            if getattr(spec, "tune", None):
                tuned, tuning = _tune(cfg, spec, len(f.train), lambda params, k, s=spec, f=f:
                                      backend.run(trial_unit, cfg, s, f, params, k, shared))
                spec = tuned.model_copy(update={"tune": None})
            remote.append((cfg, spec, f))
        tunings.append(tuning)
    results = iter(backend.imap(fit_unit, remote, shared, what="training", unit="fits"))
    for (spec, f), tuning in zip(units, tunings, strict=True):
        if _distributed(spec):
            log.info("training %s across the Dask workers (xgboost.dask)", spec.name)
            yield fit_fold(cfg, cfg.task_, spec, events, f)
            continue
        res = _restore(cfg, spec, next(results))
        if tuning is not None:
            res.tuning = tuning
            res.fit_seconds += tuning["seconds"]
            _note_tuning(res.trained.model, tuning)
        yield res


def _distributed(spec: Any) -> bool:
    return bool(spec.params.get("distributed", False))


def _check_distributed(cfg: Config, remote: bool) -> None:
    for name, spec in cfg.methods.items():
        if _distributed(spec) and not remote:
            raise InputError(f"methods.{name}.distributed: true trains across the workers of a "
                             "Dask cluster: run with --scheduler ADDRESS or --cluster local[:N]")


class FoldPool:
    """Worker processes that train folds side by side. They start from a fresh interpreter
    (forkserver/spawn: the OpenMP pools of xgboost and torch do not survive a fork) and get
    the events once, when they start."""

    def __init__(self, cfg: Config, events: Events, n_jobs: int):
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_all_start_methods, get_context

        method = "forkserver" if "forkserver" in get_all_start_methods() else "spawn"
        self.cfg = cfg
        self.executor = ProcessPoolExecutor(max_workers=n_jobs, mp_context=get_context(method),
                                            initializer=_init_worker, initargs=(cfg, events))

    def map(self, spec: Any, folds: list[Fold]) -> list[MethodResult]:
        out = []
        with _signals_deferred():
            # a submit can start a worker: interrupted there, the worker would run on
            # untracked (and print a traceback once its queues are gone)
            futures = [self.executor.submit(_fit_fold_portable, spec, f) for f in folds]
        for f, fut in zip(folds, futures, strict=True):
            out.append(_restore(self.cfg, spec, fut.result()))
            log.debug("%s: fold %d done", spec.name, f.index)
        return out

    def close(self, abort: bool = False) -> None:
        """Stop the workers; ``abort`` (an error, Ctrl-C, SIGTERM): at once, without waiting
        for the folds that are being fitted."""
        if abort:
            # a fit can take minutes: do not leave it running orphaned. The workers go first,
            # then the queues: a worker still starting would fail on them (and print so)
            processes = list(getattr(self.executor, "_processes", {}).values())
            for p in processes:
                p.terminate()
            for p in processes:  # gone before the caller reports the interruption
                p.join(timeout=10)
                if p.exitcode is None:
                    p.kill()
        self.executor.shutdown(wait=not abort, cancel_futures=True)


#: below this many events the worker processes cost more to start than they save (measured:
#: 4.5k events 17 s one by one, 20 s in two workers; 30k events 81 s and 66 s)
PARALLEL_FOLDS_EVENTS = 10_000


def _fold_jobs(cfg: Config, n_events: int) -> int:
    """Folds trained at once: ``split.n_jobs``, else as many as cores and folds allow for
    samples large enough to pay for the workers and small enough that each method fits on one
    core (larger ones use all cores inside the method)."""
    import os

    from mva.methods.base import SMALL_PROBLEM

    if cfg.split.n_jobs:
        return min(cfg.split.n_jobs, cfg.split.folds)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if PARALLEL_FOLDS_EVENTS <= n_events < SMALL_PROBLEM:
        return min(cores or 1, cfg.split.folds)
    return 1


def _fold_metrics(run: RunResult, res: MethodResult) -> tuple[list[dict[str, Any]],
                                                              dict[str, Any]]:
    """Per fold the task's figures of the out-of-fold (``test``) and the training scores of the
    fold's model (``train``); and their mean and standard deviation across the folds."""
    from mva.evaluation.crossval import cv_summary

    task, ev = run.task, run.test
    entries = []
    for f in run.folds:
        def fig(idx: np.ndarray, pred: np.ndarray, sigma: np.ndarray | None) -> dict[str, Any]:
            return task.figures(pred[idx], None if sigma is None else sigma[idx],
                                ev.subset(idx))
        entries.append({"fold": f.index, "n_test": int(len(f.test)),
                        "test": fig(f.test, res.pred_test, res.sigma_test),
                        "train": fig(f.score_train, res.pred_train, res.sigma_train)})
    return entries, cv_summary([e["test"] for e in entries])


def _plot_inputs(run: RunResult, out: Path | None, plotter: Any) -> None:
    """Hand the input plots (training events) to the ``plotter`` before training: its
    low-priority workers draw them on the cycles the training leaves idle."""
    if plotter is not None and out is not None:
        from mva.evaluation import figures

        plotter.submit(figures.input_jobs(run, out / "plots"))


def _evaluate_all(run: RunResult, fitted: dict[str, MethodResult], out: Path | None,
                  plotter: Any) -> None:
    """Evaluate every fitted method into ``run`` and hand the plots to the ``plotter``."""
    cfg = run.config
    plot_dir = None if out is None else out / "plots"
    if plotter is not None:
        from mva.evaluation import figures
    for name, res in fitted.items():
        # one sort of each score array for all its figures, cuts and plots
        with sorted_once():
            _evaluate_one(run, name, res, plotter, plot_dir)
    if plotter is not None:
        # they need the methods' figures only, not the run's
        plotter.submit(figures.summary_jobs(run, plot_dir))
    # the slowest figure, and no plot needs it: computed while the plots are drawn
    for res in fitted.values():
        importance = run.task.importance(res, run)
        if importance is not None:
            res.metrics["importance"] = importance
    head, tail = run.task.run_metrics(run)
    if run.folds is not None:
        head = {**head, "split": _fold_info(cfg)}
    run.metrics = {"task": cfg.task, **head,
                   "methods": {n: r.metrics for n, r in run.methods.items()}, **tail}


def _evaluate_one(run: RunResult, name: str, res: MethodResult, plotter: Any,
                  plot_dir: Path | None) -> None:
    """Evaluate one fitted method into ``run`` and hand its plots to the ``plotter``."""
    log.debug("%s: evaluating", name)
    res.metrics = run.task.evaluate(res, run)
    if run.folds is not None:
        res.metrics["folds"], res.metrics["cv"] = _fold_metrics(run, res)
    res.metrics["fit_seconds"] = res.fit_seconds
    # the events the fit really used (the SVM's subset, without validation events); k-fold:
    # the mean over the fold models
    res.metrics["training_events"] = int(round(np.mean(
        [tm.model.training_events_ for tm in getattr(res.trained, "folds", [res.trained])])))
    if res.tuning is not None:
        res.metrics["tuning"] = (res.tuning if isinstance(res.tuning, dict)
                                 else {"folds": res.tuning})
    if res.trained.model.notes_:
        res.metrics["notes"] = res.trained.model.notes_
    for text in res.metrics.get("warnings", []):
        log.warning("%s: %s", name, text)
    run.methods[name] = res
    if plotter is not None:
        from mva.evaluation import figures

        plotter.submit(figures.method_jobs(run, name, plot_dir))


def _fold_info(cfg: Config) -> dict[str, Any]:
    return {"folds": cfg.split.folds, "fold_expression": cfg.split.fold_expression,
            "seed": cfg.split.seed}


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
        "config": cfg.raw, "provenance": provenance(run.backend), **run.task.manifest_info(),
        "n_train": len(run.train), "n_test": len(run.test),
    }
    if run.folds is not None:
        info["split"] = _fold_info(cfg)
        # every event is tested once; each fold model trains on the other folds
        info["n_train"] = int(np.mean([len(f.train) for f in run.folds]))
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


def train(cfg: Config, output: str | Path, force: bool = False,
          backend: Backend | None = None) -> RunResult:
    """Train every configured method and write ``output`` atomically; return the run.

    Everything, the report included, is written in the temporary directory: ``output`` (and,
    with ``force``, the previous run there) changes only once the new run is complete.
    ``backend`` (:func:`mva.backends.open_backend`): where files are read and methods fitted.
    """
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
            run = run_training(cfg, tmp, plotter, backend)
            write_run(run, tmp, plotter)
        finally:
            if plotter is not None:
                plotter.close()
        if cfg.evaluation.plots:
            # inside the temporary directory, so that an old run is replaced only by a complete
            # one; the page names the final directory
            from mva.report import write_report

            log.info("writing report.html")
            final = Path(output).absolute()
            write_report([tmp], labels=[final.name], shown_as=final)
    return run
