"""Hyper-parameter tuning: ``methods.<m>.tune``.

```yaml
methods:
  bdt:
    type: bdt
    tune:
      trials: 40             # optuna's TPE sampler, seeded with split.seed
      folds: 3               # cross-validated on the training sample only
      metric: roc_auc        # or log_loss, accuracy (classification); rms, sigma_eff, mae
      space:                 # optional: DEFAULT_SPACES[type] otherwise
        max_depth: [2, 8]                    # integers for an integer parameter
        learning_rate: [0.01, 0.3, log]      # log-uniform
        hidden_layers: {choices: [[32], [64, 64]]}
      n_jobs: 1              # trials evaluated at once (threads, or Dask tasks)
```

Each trial fits the method on ``folds - 1`` folds of the training sample (its preprocessing and
any early-stopping validation split from those folds only, exactly as a training fit) and scores
the held-out fold with the metric (weighted with the event weights); its value is the mean over
the folds. After each fold the running mean is reported to optuna's median pruner, which stops a
trial whose running mean is worse than the median of the finished trials at the same fold. The
first trial is the method as configured (where its values lie inside the space), so the best
trial is never worse, in cross-validation, than not tuning. The best parameters are then refit
on the whole training sample, and ``metrics.json`` gets the method's ``tuning``: ``best_params``,
``best_score``, ``trials``, ``metric``, ``direction``, every trial's ``history`` and the
parameter ``importances`` (optuna's default evaluator, on the finished trials).

Parameters the space does not name keep their configured values. With ``n_jobs`` > 1 the trials
are evaluated in batches of ``n_jobs`` threads: each batch is drawn from the trials finished
before it and told back in trial order, so the result depends on the seed and ``n_jobs`` only,
never on thread timing (but it differs from the sequential result, since a batch is drawn
without its own results). ``n_jobs: 1`` (the default) is the reproducible sequential search.
On a Dask backend ``fit_fold`` is a task on the workers (:func:`mva.training.trial_unit`): the
same fits, so the same search.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["DEFAULT_SPACES", "METRICS", "DEFAULT_METRIC", "TuneSpec", "Dimension",
           "validate_tune", "default_space", "tune_method", "parse_space"]

log = logging.getLogger(__name__)

#: The documented default search space of every method type: ``[low, high]`` (integers for an
#: integer parameter), ``[low, high, log]`` (log-uniform) or ``{choices: [...]}``.
DEFAULT_SPACES: dict[str, dict[str, Any]] = {
    "bdt": {
        "max_depth": [2, 6],
        "learning_rate": [0.02, 0.3, "log"],
        "min_child_weight": [0.5, 200.0, "log"],
        "subsample": [0.3, 1.0],
        "colsample": [0.5, 1.0],
        "reg_lambda": [0.01, 30.0, "log"],
    },
    "mlp": {
        "hidden_layers": {"choices": [[32], [64], [32, 32], [64, 64], [128, 128],
                                      [64, 64, 64]]},
        "activation": {"choices": ["relu", "elu", "tanh"]},
        "learning_rate": [3e-4, 1e-2, "log"],
        "batch_size": {"choices": [64, 128, 256, 512]},
        "l2": [1e-7, 1e-2, "log"],
        "input_lasso": [1e-4, 3e-2, "log"],
        "dropout": [0.0, 0.3],
    },
    "knn": {"k": [1, 500, "log"]},
    "svm": {"C": [0.05, 100.0, "log"], "gamma": [0.01, 10.0, "log"],
            "epsilon": [1e-3, 1.0, "log"]},
    "linear": {"method": {"choices": ["fisher", "logistic"]}, "C": [1e-3, 1e3, "log"]},
}

#: parameters of a default space that only some tasks use (left out for the others)
_TASK_ONLY: dict[tuple[str, str], tuple[str, ...]] = {
    ("svm", "epsilon"): ("regression",),
    ("mlp", "input_lasso"): ("classification", "multiclass"),
    ("linear", "method"): ("classification", "multiclass"),
    ("linear", "C"): ("classification", "multiclass"),
}

#: parameters that are no model choice (threads, devices, memory, where to train)
NOT_TUNABLE = frozenset({"n_jobs", "device", "distributed", "block_size", "cache_size",
                         "max_train_events", "search"})

#: what the trials use unless the config gives it: an MLP ensemble would cost every trial its
#: networks' time over; the refit with the best parameters is the configured (default) one
TRIAL_DEFAULTS: dict[str, dict[str, Any]] = {"mlp": {"ensemble": 1}}

#: metric -> (direction, tasks)
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "roc_auc": ("maximize", ("classification", "multiclass")),
    "log_loss": ("minimize", ("classification", "multiclass")),
    "accuracy": ("maximize", ("classification", "multiclass")),
    "rms": ("minimize", ("regression",)),
    "sigma_eff": ("minimize", ("regression",)),
    "mae": ("minimize", ("regression",)),
}
#: the metric of each task when ``tune.metric`` is not given
DEFAULT_METRIC = {"classification": "roc_auc", "multiclass": "log_loss", "regression": "rms"}
#: method types whose binary scores are not probabilities (no log loss)
_NOT_PROBABILITIES = ("svm",)


class TuneSpec(BaseModel):
    """``methods.<m>.tune`` as written (the space is checked by :func:`parse_space`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trials: int = Field(30, ge=1, le=10_000)
    folds: int = Field(3, ge=2, le=20)
    metric: str | None = None
    space: dict[str, Any] | None = None
    n_jobs: int = Field(1, ge=1, le=256)
    #: stop unpromising trials after a fold (optuna's MedianPruner)
    pruning: bool = True


@dataclass(frozen=True)
class Dimension:
    """One parameter of the space: a range (``kind`` int or float, maybe log) or choices."""

    name: str
    kind: str                      # "int", "float" or "choice"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "choice":
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "log": self.log, "type": self.kind}

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> Dimension:
        if "choices" in d:
            return cls(name, "choice", choices=tuple(d["choices"]))
        return cls(name, d["type"], d["low"], d["high"], bool(d["log"]))

    def _codes(self) -> list[Any]:
        # optuna's categorical values must be None, bool, int, float or str: others as JSON
        return [c if c is None or isinstance(c, bool | int | float | str) else json.dumps(c)
                for c in self.choices]

    def suggest(self, trial: Any) -> Any:
        if self.kind == "choice":
            codes = self._codes()
            code = trial.suggest_categorical(self.name, codes)
            return self.choices[codes.index(code)]
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)

    def encode(self, value: Any) -> Any:
        """A parameter value as optuna stores it (for the first, enqueued trial), or None
        when it lies outside the space."""
        if self.kind == "choice":
            return self._codes()[self.choices.index(value)] if value in self.choices else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if not self.low <= value <= self.high:
            return None
        if self.kind == "int":
            return int(value) if float(value).is_integer() else None
        return float(value)


class SpaceError(ValueError):
    """A bad search space: ``key`` is the path below ``tune`` (``space.max_depth``)."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def default_space(kind: str, task: str) -> dict[str, Any]:
    """The default space of method type ``kind`` for ``task`` (without the parameters that
    the task does not use)."""
    return {k: v for k, v in DEFAULT_SPACES[kind].items()
            if task in _TASK_ONLY.get((kind, k), (task,))}


def _validated(params_cls: type, name: str, value: Any) -> Any:
    """``value`` through the method's own parameter validation (its error on failure)."""
    return getattr(params_cls(**{name: value}), name)


def _pydantic_message(exc: ValidationError) -> str:
    err = exc.errors()[0]
    msg = err["msg"]
    if "input" in err and not isinstance(err["input"], dict | list):
        msg += f" (got {err['input']!r})"
    return msg


def parse_space(kind: str, task: str, space: Mapping[str, Any] | None, params_cls: type
                ) -> list[Dimension]:
    """The dimensions of a space as written in the config (None: the default space).

    Raise :class:`SpaceError` naming the key for an unknown or untunable parameter, a bad
    shape, bounds that the parameter refuses (its own validation), ``low >= high``, a log
    range that does not start above 0, or integer bounds missing for an integer parameter."""
    given = space is not None
    space = default_space(kind, task) if space is None else space
    if not isinstance(space, Mapping):
        raise SpaceError("space", "must be a mapping of parameter: [low, high] (or "
                                  "[low, high, log], or {choices: [...]})")
    if not space:
        raise SpaceError("space", f"nothing to tune for {kind} ({task})" if not given
                         else "is empty")
    fields = params_cls.model_fields
    dims = []
    for name, spec in space.items():
        key = f"space.{name}"
        if name not in fields:
            raise SpaceError(key, f"unknown parameter of {kind} (parameters: "
                                  f"{', '.join(sorted(set(fields) - NOT_TUNABLE))})")
        if name in NOT_TUNABLE:
            raise SpaceError(key, "not a parameter to tune (it does not change the model)")
        try:
            dims.append(_dimension(name, spec, params_cls))
        except ValidationError as exc:
            raise SpaceError(key, _pydantic_message(exc)) from None
        except ValueError as exc:
            raise SpaceError(key, str(exc)) from None
    return dims


def _dimension(name: str, spec: Any, params_cls: type) -> Dimension:
    if isinstance(spec, Mapping):
        if set(spec) != {"choices"} or not isinstance(spec["choices"], list) \
                or not spec["choices"]:
            raise ValueError("expected {choices: [a, b, ...]} with at least one choice")
        return Dimension(name, "choice",
                         choices=tuple(_validated(params_cls, name, c) for c in spec["choices"]))
    if not isinstance(spec, list) or len(spec) not in (2, 3):
        raise ValueError(f"expected [low, high], [low, high, log] or {{choices: [...]}} "
                         f"(got {spec!r})")
    low, high = spec[0], spec[1]
    log_scale = False
    if len(spec) == 3:
        if spec[2] != "log":
            raise ValueError(f"the third entry may only be 'log' (got {spec[2]!r})")
        log_scale = True
    for v in (low, high):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError(f"bounds must be finite numbers (got {spec!r})")
    vlow, vhigh = _validated(params_cls, name, low), _validated(params_cls, name, high)
    if not low < high:
        raise ValueError(f"low must be below high (got {spec!r})")
    if log_scale and low <= 0:
        raise ValueError(f"a log range must start above 0 (got {spec!r})")
    is_int = isinstance(vlow, int) and isinstance(vhigh, int) and not isinstance(vlow, bool)
    return Dimension(name, "int" if is_int else "float", float(low) if not is_int else low,
                     float(high) if not is_int else high, log_scale)


def validate_tune(raw: Any, kind: str, task: str, params: Any, params_cls: type
                  ) -> dict[str, Any]:
    """``methods.<m>.tune`` checked and normalised to plain JSON (the space as dimensions).

    Raise :class:`SpaceError` (key path below ``tune``) or ``ValidationError``."""
    if not isinstance(raw, Mapping):
        raise SpaceError("", "must be a mapping like {trials: 30, folds: 3}")
    spec = TuneSpec(**raw)
    metric = spec.metric or DEFAULT_METRIC[task]
    if metric not in METRICS:
        raise SpaceError("metric", f"unknown metric {metric!r} (for {task}: "
                                   f"{', '.join(m for m, (_, t) in METRICS.items() if task in t)})")
    if task not in METRICS[metric][1]:
        raise SpaceError("metric", f"{metric} is not a {task} metric (use "
                                   f"{', '.join(m for m, (_, t) in METRICS.items() if task in t)})")
    dims = parse_space(kind, task, spec.space, params_cls)
    if task == "classification" and metric == "log_loss":
        if kind in _NOT_PROBABILITIES:
            raise SpaceError("metric", f"the scores of {kind} are not probabilities: use "
                                       "roc_auc or accuracy")
        methods = next((d.choices for d in dims if d.name == "method"), (params.method,)) \
            if kind == "linear" else ()
        if "fisher" in methods:
            raise SpaceError("metric", "the Fisher discriminant's scores are not "
                                       "probabilities: use roc_auc or accuracy (or method: "
                                       "logistic)")
    return {"trials": spec.trials, "folds": spec.folds, "metric": metric,
            "direction": METRICS[metric][0], "n_jobs": spec.n_jobs, "pruning": spec.pruning,
            "space": {d.name: d.to_dict() for d in dims}}


# ----------------------------------------------------------------------------- scoring


def _regression_figure(metric: str, pred: np.ndarray, target: np.ndarray, w: np.ndarray
                       ) -> float:
    from mva.evaluation.regression import sigma_eff

    d = pred - target
    if metric == "sigma_eff":
        return float(sigma_eff(d, w))
    if metric == "mae":
        return float(np.average(np.abs(d), weights=w))
    mean = np.average(d, weights=w)
    return float(np.sqrt(np.average((d - mean) ** 2, weights=w)))


def score(metric: str, task: str, pred: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """The figure ``metric`` of predictions ``pred`` for truth ``y`` with weights ``w``.

    Binary ``accuracy`` is that of the best cut on the score (the score's scale is the
    method's); regression figures of several targets are the mean of each target's figure
    over that target's spread (dimensionless)."""
    from mva.evaluation import classification as cm
    from mva.evaluation import multiclass as mc

    w = np.clip(w, 0.0, None)
    if task == "classification":
        if metric == "roc_auc":
            return float(cm.roc_auc(pred, y, w))
        if metric == "log_loss":
            p = np.clip(pred, 1e-15, 1 - 1e-15)
            return float(-np.average(np.where(y == 1, np.log(p), np.log1p(-p)), weights=w))
        # accuracy of the best cut: from the ROC curve, with the classes' weights
        eff_b, eff_s, _ = cm.roc_curve(pred, y, w)
        ws, wb = w[y == 1].sum(), w[y != 1].sum()
        return float(np.max(ws * np.asarray(eff_s) + wb * (1 - np.asarray(eff_b))) / (ws + wb))
    if task == "multiclass":
        labels = np.asarray(y).astype(np.int64)
        if metric == "roc_auc":
            names = [str(k) for k in range(pred.shape[1])]
            return float(mc.roc_auc_macro(pred, labels, w, names))
        if metric == "log_loss":
            return float(mc.log_loss(pred, labels, w))
        return float(mc.accuracy(pred, labels, w))
    T = y.reshape(len(y), -1)
    figures = [_regression_figure(metric, pred[:, j], T[:, j], w) for j in range(T.shape[1])]
    if len(figures) == 1:
        return figures[0]
    spread = [float(np.sqrt(np.cov(T[:, j], aweights=w))) or 1.0 for j in range(T.shape[1])]
    return float(np.mean([f / s for f, s in zip(figures, spread, strict=True)]))


# ----------------------------------------------------------------------------- the search


#: a fit on folds: (parameters, fold index) -> figure of the held-out fold
FoldFit = Callable[[dict[str, Any], int], float]


def tune_method(kind: str, task: str, params: dict[str, Any], tune: Mapping[str, Any],
                fit_fold: FoldFit, seed: int, name: str = "") -> dict[str, Any]:
    """Search the space of ``tune`` (as :func:`validate_tune` returns it) and return the
    ``tuning`` entry of ``metrics.json`` (``best_params`` among it).

    ``params`` are the method's configured parameters (the first trial, where inside the
    space); ``fit_fold(params, k)`` fits on all folds but k and scores fold k."""
    import optuna
    from optuna.trial import TrialState

    from mva.methods import method_class

    params_cls = method_class(kind).Params
    dims = [Dimension.from_dict(n, d) for n, d in tune["space"].items()]
    folds, n_trials, n_jobs = int(tune["folds"]), int(tune["trials"]), int(tune["n_jobs"])
    direction = tune["direction"]
    sign = 1.0 if direction == "maximize" else -1.0
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            # constant_liar is experimental in optuna; it only matters for batches (n_jobs > 1)
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=n_jobs > 1)
        pruner = (optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
                  if tune.get("pruning", True) else optuna.pruners.NopPruner())
        study = optuna.create_study(direction=direction, sampler=sampler, pruner=pruner)
        first = {d.name: d.encode(params.get(d.name)) for d in dims}
        first = {k: v for k, v in first.items() if v is not None}
        if first:
            study.enqueue_trial(first)
        records: dict[int, dict[str, Any]] = {}

        def run_trial(trial: Any) -> tuple[Any, float | None, str]:
            """Suggest, fit the folds, report after each: (trial, value, state)."""
            t0 = time.perf_counter()
            suggested = {d.name: d.suggest(trial) for d in dims}
            record: dict[str, Any] = {"number": trial.number, "params": suggested,
                                      "fold_scores": []}
            records[trial.number] = record
            try:
                trial_params = params_cls(**{**TRIAL_DEFAULTS.get(kind, {}), **params,
                                             **suggested}).model_dump()
                method_class(kind).check_task(task, params_cls(**trial_params))
            except (ValidationError, ValueError) as exc:
                record.update(state="fail", error=str(exc).splitlines()[0])
                return trial, None, "fail"
            scores: list[float] = []
            for k in range(folds):
                try:
                    s = float(fit_fold(trial_params, k))
                except Exception as exc:  # a trial that cannot be fitted is a failed trial
                    log.debug("%s: trial %d failed: %s", name, trial.number, exc)
                    record.update(state="fail", error=f"{type(exc).__name__}: {exc}")
                    return trial, None, "fail"
                if not math.isfinite(s):
                    record.update(state="fail", error=f"{tune['metric']} is {s}")
                    return trial, None, "fail"
                scores.append(s)
                record["fold_scores"] = list(scores)
                trial.report(float(np.mean(scores)), k)
                if k < folds - 1 and trial.should_prune():
                    record.update(state="pruned", seconds=time.perf_counter() - t0)
                    return trial, None, "pruned"
            record.update(state="complete", value=float(np.mean(scores)),
                          seconds=time.perf_counter() - t0)
            return trial, float(np.mean(scores)), "complete"

        states = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED,
                  "fail": TrialState.FAIL}
        done = 0
        pool = None
        if n_jobs > 1:
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(max_workers=n_jobs)
        try:
            while done < n_trials:
                batch = [study.ask() for _ in range(min(n_jobs, n_trials - done))]
                results = (list(pool.map(run_trial, batch)) if pool is not None
                           else [run_trial(t) for t in batch])
                # told in trial order once the batch is done: the pruner and the sampler of
                # the next batch see the same finished trials whatever the thread timing
                for trial, value, state in results:
                    study.tell(trial, value if state == "complete" else None,
                               state=states[state])
                    log.info("%s: tuning trial %d/%d: %s", name, trial.number + 1, n_trials,
                             f"{tune['metric']} {value:.5g}" if value is not None else state)
                done += len(batch)
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
        if not complete:
            errors = {r.get("error") for r in records.values() if r.get("error")}
            raise ValueError(f"tuning {name}: no trial could be completed"
                             + (f" ({'; '.join(sorted(errors))})" if errors else ""))
        best = max(complete, key=lambda t: sign * t.value)
        best_params = records[best.number]["params"]
        importances: dict[str, float] = {}
        if len(complete) >= 2:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    raw = optuna.importance.get_param_importances(study)
                importances = {k: float(v) for k, v in raw.items()}
            except (RuntimeError, ValueError, ZeroDivisionError) as exc:
                log.debug("%s: no parameter importances (%s)", name, exc)
    finally:
        optuna.logging.set_verbosity(verbosity)
    history = [records[t.number] for t in study.trials]
    return {
        "best_params": best_params, "best_score": float(best.value), "best_trial": best.number,
        "metric": tune["metric"], "direction": direction, "folds": folds,
        "trials": len(study.trials),
        "complete": len(complete),
        "pruned": sum(t.state == TrialState.PRUNED for t in study.trials),
        "failed": sum(t.state == TrialState.FAIL for t in study.trials),
        "n_jobs": n_jobs, "seed": seed, "history": history, "importances": importances,
        "space": dict(tune["space"]),
    }
