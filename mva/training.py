"""``mva train``: read, split, preprocess, train every method, evaluate, write the run directory."""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mva.config import Config
from mva.evaluation import classification as cm
from mva.evaluation import regression as rm
from mva.io.events import Events, load_samples
from mva.io.writers import Categorical, atomic_directory, write_trees
from mva.methods import method_class
from mva.preprocessing import Pipeline
from mva.provenance import provenance
from mva.split import split_indices, training_weights, validation_split
from mva.store import TrainedMethod, save_models

__all__ = ["train", "RunResult", "branch_name"]

log = logging.getLogger(__name__)

EFF_BKG = (0.01, 0.1, 0.3)


def branch_name(expr: str) -> str:
    """A ROOT-friendly branch name for an expression (``abs(eta)`` -> ``abs_eta``)."""
    return expr if expr.isidentifier() else (re.sub(r"\W+", "_", expr).strip("_") or "expr")


def unique_names(exprs: list[str]) -> list[str]:
    out: list[str] = []
    for e in exprs:
        name, i = branch_name(e), 1
        while name in out:
            name, i = f"{branch_name(e)}_{i}", i + 1
        out.append(name)
    return out


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


def _y(events: Events) -> np.ndarray:
    return events.labels if events.labels is not None else events.targets


def _fit_method(cfg: Config, spec: Any, tr: Events, te: Events, w_train: np.ndarray,
                w_test_norm: np.ndarray) -> MethodResult:
    cls = method_class(spec.type)
    model = cls(spec.params, cfg.task, seed=cfg.split.seed)
    steps = spec.preprocess if spec.preprocess is not None else cls.default_preprocess
    t0 = time.perf_counter()
    pipeline = Pipeline(steps).fit(tr.features, np.clip(w_train, 0, None))
    Xtr = pipeline.transform(tr.features)
    Xte = pipeline.transform(te.features)
    ytr = _y(tr)
    validation = monitor = None
    fraction = model.wants_validation()
    if fraction > 0:
        fit_idx, val_idx = validation_split(tr.labels, len(tr), fraction, cfg.split.seed)
        validation = (Xtr[val_idx], ytr[val_idx], w_train[val_idx])
        model.fit(Xtr[fit_idx], ytr[fit_idx], w_train[fit_idx], validation=validation)
    else:
        monitor = (Xte, _y(te), w_test_norm) if cls.supports_validation else None
        model.fit(Xtr, ytr, w_train, monitor=monitor)
    fit_seconds = time.perf_counter() - t0
    p_tr, s_tr = model.predict_with_sigma(Xtr)
    p_te, s_te = model.predict_with_sigma(Xte)
    trained = TrainedMethod(spec.name, spec.type, spec.params, pipeline, model)
    return MethodResult(trained, p_tr, p_te, s_tr, s_te, {}, fit_seconds)


def classification_metrics(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray
                           ) -> dict[str, Any]:
    return {
        "roc_auc": cm.roc_auc(scores, labels, weights),
        "eff_sig_at_bkg": cm.eff_sig_at_bkg(scores, labels, weights, EFF_BKG),
        "separation": cm.separation(scores, labels, weights),
    }


def _evaluate_classification(res: MethodResult, tr: Events, te: Events) -> dict[str, Any]:
    ks = {}
    for label, key in ((1, "ks_pvalue_signal"), (0, "ks_pvalue_background")):
        a, b = tr.labels == label, te.labels == label
        ks[key] = cm.ks_2samp_weighted(res.pred_train[a], res.pred_test[b],
                                       tr.weights[a], te.weights[b])[1]
    return {
        "test": classification_metrics(res.pred_test, te.labels, te.weights),
        "train": classification_metrics(res.pred_train, tr.labels, tr.weights),
        "overtraining": ks,
    }


def signal_probability_extras(res: MethodResult, te: Events, cfg: Config) -> dict[str, Any]:
    """P(S|y) densities (fitted on half of the test events), their calibration on the other
    half, and the working point that maximises S/sqrt(S+B) for the expected yields."""
    from mva.evaluation.probability import (
        ScoreDensities,
        expected_calibration_error,
        reliability_curve,
        reweight_to_fraction,
    )

    ev = cfg.evaluation
    n_sig, n_bkg = expected_yields(cfg, te)
    f_s = ev.resolved_signal_fraction(n_sig / (n_sig + n_bkg) if ev.yields else 0.5)
    half = np.arange(len(te)) % 2 == 0
    dens = ScoreDensities().fit(res.pred_test[half], te.labels[half], te.weights[half])
    other = ~half
    prob = dens.probability(res.pred_test[other], f_s)
    w_check = reweight_to_fraction(te.labels[other], te.weights[other], f_s)
    rel = reliability_curve(prob, te.labels[other], w_check)
    wp = cm.significance_scan(res.pred_test, te.labels, te.weights, n_sig, n_bkg)
    res.trained.extras.update(densities=dens.to_dict(), signal_fraction=f_s)
    return {
        "working_point": wp,
        "cuts": _cuts_at_efficiencies(res.pred_test, te.labels, te.weights, ev),
        "signal_fraction": f_s,
        "calibration": {"ece": expected_calibration_error(prob, te.labels[other], w_check),
                        "reliability": {k: _json_list(v) for k, v in rel.items()}},
    }


def _cuts_at_efficiencies(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                          ev: Any) -> dict[str, dict[str, dict[str, float]]]:
    """The cut for each requested signal (background) efficiency, with both efficiencies
    that it gives on the test events."""
    out: dict[str, dict[str, dict[str, float]]] = {"eff_sig": {}, "eff_bkg": {}}
    sig = labels == 1
    w_s, w_b = weights[sig].sum(), weights[~sig].sum()
    for key, targets in (("eff_sig", ev.cuts_at_eff_sig), ("eff_bkg", ev.cuts_at_eff_bkg)):
        for target in targets:
            cut = cm.cut_for_efficiency(scores, labels, weights, **{key: target})
            passed = scores >= cut
            out[key][f"{target:g}"] = {
                "cut": cut, "eff_sig": float(weights[sig & passed].sum() / w_s),
                "eff_bkg": float(weights[~sig & passed].sum() / w_b)}
    return out


def _json_list(values: Any) -> list[float | None]:
    """Array to a JSON list with null for NaN (metrics.json stays strict JSON)."""
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, dtype=float)]


def expected_yields(cfg: Config, te: Events) -> tuple[float, float]:
    """Expected signal and background after the selection: from the config, else the weighted
    test sample scaled up to the full sample."""
    if cfg.evaluation.yields is not None:
        return cfg.evaluation.yields.signal, cfg.evaluation.yields.background
    sig = float(te.weights[te.labels == 1].sum())
    bkg = float(te.weights[te.labels == 0].sum())
    return sig, bkg


def _importance(res: MethodResult, te: Events, cfg: Config) -> dict[str, Any]:
    from mva.evaluation.ranking import permutation_importance

    tm = res.trained
    out = {"permutation_auc_drop": permutation_importance(
        lambda X: tm.predict(X)[0], te.features, te.labels, te.weights, cfg.data.features,
        seed=cfg.split.seed)}
    if hasattr(tm.model, "feature_importance"):
        gain = tm.model.feature_importance(len(cfg.data.features))
        out["gain"] = dict(zip(cfg.data.features, map(float, gain), strict=True))
    return out


def _evaluate_regression(res: MethodResult, tr: Events, te: Events) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part, ev, pred, sigma in (("test", te, res.pred_test, res.sigma_test),
                                  ("train", tr, res.pred_train, res.sigma_train)):
        per_target = {}
        for j, tname in enumerate(ev.target_names):
            per_target[tname] = rm.regression_metrics(
                pred[:, j], ev.targets[:, j], ev.weights,
                width=None if sigma is None else sigma[:, j])
        out[part] = next(iter(per_target.values())) if len(per_target) == 1 else per_target
    return out


def _trees(run: RunResult, methods: dict[str, MethodResult] | None = None
           ) -> dict[str, dict[str, np.ndarray]]:
    """TrainTree and TestTree as TMVA writes them."""
    cfg = run.config
    methods = run.methods if methods is None else methods
    feat = unique_names(cfg.data.features)
    spec_names = unique_names(cfg.data.spectators)
    trees = {}
    for tree, part, key in (("TrainTree", run.train, "train"), ("TestTree", run.test, "test")):
        cols: dict[str, np.ndarray] = {}
        if part.labels is not None:
            cols["classID"] = np.where(part.labels == 1, 0, 1).astype(np.int32)
            cols["className"] = Categorical((part.labels == 0).astype(np.int64),
                                            ["Signal", "Background"])
        cols["weight"] = part.weights
        for j, name in enumerate(feat):
            cols[name] = part.features[:, j]
        for j, name in enumerate(spec_names):
            cols[name] = part.spectators[:, j]
        if part.targets is not None:
            tnames = target_branches(part.target_names)
            for j, name in enumerate(tnames):
                cols[name] = part.targets[:, j]
        for mname, res in methods.items():
            pred = res.pred_train if key == "train" else res.pred_test
            sigma = res.sigma_train if key == "train" else res.sigma_test
            cols.update(method_columns(mname, pred, sigma))
        trees[tree] = cols
    return trees


def target_branches(target_names: list[str]) -> list[str]:
    return ["target"] if len(target_names) == 1 else [f"target_{j}" for j in range(len(target_names))]


def method_columns(name: str, pred: np.ndarray, sigma: np.ndarray | None) -> dict[str, np.ndarray]:
    """Output branches of one method: ``name`` (and ``name_sigma``), ``name_<j>`` per target."""
    if pred.ndim == 1:
        return {name: pred}
    cols = {}
    n = pred.shape[1]
    for j in range(n):
        suffix = "" if n == 1 else f"_{j}"
        cols[f"{name}{suffix}"] = pred[:, j]
        if sigma is not None:
            cols[f"{name}{suffix}_sigma"] = sigma[:, j]
    return cols


def summary_table(run: RunResult) -> str:
    """The table printed at the end of a run (test values, train in brackets)."""
    rows = []
    if run.config.is_classification:
        head = (f"{'method':<12}{'AUC test (train)':>20}{'effS@B=0.01':>18}{'effS@B=0.1':>18}"
                f"{'effS@B=0.3':>18}{'sep.':>7}{'KS p S':>9}{'KS p B':>9}{'fit s':>8}")
        for name, res in run.methods.items():
            m = res.metrics
            te, trn = m["test"], m["train"]
            effs = "".join(
                f"{te['eff_sig_at_bkg'][k]:>9.3f} ({trn['eff_sig_at_bkg'][k]:.3f})"
                for k in ("0.01", "0.1", "0.3"))
            rows.append(
                f"{name:<12}{te['roc_auc']:>11.4f} ({trn['roc_auc']:.4f}){effs}"
                f"{te['separation']:>7.3f}{m['overtraining']['ks_pvalue_signal']:>9.3f}"
                f"{m['overtraining']['ks_pvalue_background']:>9.3f}{res.fit_seconds:>8.1f}")
    else:
        head = (f"{'method':<12}{'bias':>11}{'rms':>11}{'rms_trunc':>11}{'mae':>11}"
                f"{'sigma_eff':>11}{'median':>9}{'fit s':>8}")
        for name, res in run.methods.items():
            te = res.metrics["test"]
            if "bias" not in te:
                te = next(iter(te.values()))
            rows.append(f"{name:<12}{te['bias']:>11.4g}{te['rms']:>11.4g}{te['rms_trunc']:>11.4g}"
                        f"{te['mae']:>11.4g}{te['sigma_eff']:>11.4g}{te['median']:>9.4f}"
                        f"{res.fit_seconds:>8.1f}")
    return "\n".join([head, "-" * len(head), *rows])


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
    log.info("reading events")
    parts = load_samples(cfg)
    log.debug("splitting")
    labels = None if parts[0].labels is None else np.concatenate([p.labels for p in parts])
    train_idx, test_idx = split_indices(labels, sum(len(p) for p in parts), cfg.split, cfg.source)
    # take train and test from each sample directly: one copy of the features, not two
    tr, te = (Events.concatenate(_take(parts, idx)) for idx in (train_idx, test_idx))
    del parts
    log.info("split: %d training, %d test events", len(tr), len(te))
    w_train = training_weights(tr.labels, tr.weights, cfg.split.normalization,
                               cfg.split.negative_weights)
    w_test_norm = training_weights(te.labels, te.weights, cfg.split.normalization, "keep")
    run = RunResult(cfg, tr, te)
    fitted = {}
    for name, spec in cfg.methods.items():
        log.info("training %s (%s)", name, spec.type)
        fitted[name] = _fit_method(cfg, spec, tr, te, w_train, w_test_norm)
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
    cfg, tr, te = run.config, run.train, run.test
    plot_dir = None if out is None else out / "plots"
    if plotter is not None:
        # only now: plot workers beside multi-threaded training slow it down more than they
        # save; beside the single-threaded evaluation and writing they use an idle core
        from mva.evaluation import figures

        plotter.submit(figures.input_jobs(run, plot_dir))
    for name, res in fitted.items():
        evaluate = _evaluate_classification if cfg.is_classification else _evaluate_regression
        log.debug("%s: evaluating", name)
        res.metrics = evaluate(res, tr, te)
        if cfg.is_classification:
            log.debug("%s: P(S|y) and working point", name)
            res.metrics.update(signal_probability_extras(res, te, cfg))
            log.debug("%s: input importance", name)
            res.metrics["importance"] = _importance(res, te, cfg)
        res.metrics["fit_seconds"] = res.fit_seconds
        if res.trained.model.notes_:
            res.metrics["notes"] = res.trained.model.notes_
        run.methods[name] = res
        if plotter is not None:
            plotter.submit(figures.method_jobs(run, name, plot_dir))
    run.metrics = {"task": cfg.task, "methods": {n: r.metrics for n, r in run.methods.items()}}
    if cfg.is_classification:
        from mva.evaluation.ranking import variable_separation

        # on at most ~200k test events: a histogram-based figure needs no more
        sub = slice(None, None, max(1, len(te) // 200_000))
        run.metrics["variables"] = {"separation": variable_separation(
            te.features[sub], te.labels[sub], te.weights[sub], cfg.data.features)}
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
        "config": cfg.raw, "provenance": provenance(),
        "n_train": len(run.train), "n_test": len(run.test),
    }
    log.debug("saving models")
    save_models(out / "models", cfg.task, {n: r.trained for n, r in run.methods.items()}, info)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.raw, sort_keys=False))
    if plotter is not None:
        log.info("waiting for the plots")
        plotter.wait()
    elif cfg.evaluation.plots:
        from mva.evaluation.figures import make_plots

        log.info("plotting")
        make_plots(run, out / "plots")
    # metrics.json last: its presence marks a complete run
    (out / "metrics.json").write_text(json.dumps(run.metrics, indent=2, default=float))


def _n_events(cfg: Config) -> int:
    """Entries in the input files (cheap: from the file metadata), to choose how to plot."""
    from mva.io.readers import count_entries, expand_files, file_format

    d = cfg.data
    sources = [d.signal, d.background] if cfg.is_classification else [d]
    total = 0
    for src in sources:
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
            from mva.evaluation.figures import PARALLEL_EVENTS, Plotter

            (tmp / "plots").mkdir()
            plotter = Plotter(parallel=_n_events(cfg) > PARALLEL_EVENTS)
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
