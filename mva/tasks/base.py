"""The interface of a task, and the machinery that the two classification tasks share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mva.errors import ConfigError, InputError

__all__ = ["Task", "Sample", "ClassificationTask", "Job", "pm", "comparison_lines",
           "warning_lines"]

#: a plot: (function of :mod:`mva.evaluation.plots`, args, kwargs, record for the report)
Job = tuple[str, tuple, dict, dict]


def pm(value: float, err: float | None, spec: str) -> str:
    """``value ± err`` for the printed tables (the value alone where there is no error)."""
    from mva.evaluation.uncertainty import format_pm

    return format_pm(value, err, spec)


def comparison_lines(metrics: dict[str, Any], prefix: str = "") -> list[str]:
    """The printed verdict of each figure of ``metrics["comparison"]`` (as
    :func:`mva.evaluation.uncertainty.compare` makes them, possibly keyed by target first): is
    the best method significantly better than the next, paired on the same test events?"""
    out = []
    for key, c in (metrics.get("comparison") or {}).items():
        if not isinstance(c, dict):
            continue
        if "best" not in c:  # one level per target
            out += [ln for ln in comparison_lines({"comparison": c}, f"{prefix}{key}: ") if ln]
            continue
        err, z = c.get("diff_err"), c.get("z")
        verdict = "significantly" if c.get("significant") else "not significantly"
        if err and z is not None:
            detail = f"{pm(c['diff'], err, '+.4g')}, {z:.1f} sigma"
        else:
            detail = f"{c['diff']:+.4g}"
        out.append(f"{prefix}{key}: {c['best']} is {verdict} better than {c['next']} "
                   f"({detail}; threshold {c['threshold']:g} sigma, paired on the test events)")
    return [""] + out if out and not prefix else out


def warning_lines(run: Any) -> list[str]:
    """The methods' warnings (``metrics.json``: ``warnings``, e.g. overtraining), one printed
    line each, after a blank line; none without warnings."""
    out = [f"warning: {name}: {text}" for name, res in run.methods.items()
           for text in res.metrics.get("warnings", [])]
    return [""] + out if out else []


@dataclass(frozen=True)
class Sample:
    """One sample to read: a class (with its label) or the regression sample."""

    key: str             # config key path, for messages: ``data.signal``, ``data.classes.qcd``
    label: int | None
    files: list[str]
    tree: str | None
    weight: str
    cut: str


class Task:
    """What differs between tasks. Subclasses implement every method below."""

    name: ClassVar[str]
    #: the figures the report's cross-validation table shows (mean ± std over the folds):
    #: (dotted key path into the figures of :meth:`figures`, column label, number format);
    #: the first is also shown per fold
    cv_headline: ClassVar[tuple[tuple[str, str, str], ...]] = ()

    def __init__(self, classes: list[str] | None = None, targets: list[str] | None = None):
        self.classes = list(classes or [])
        self.targets = list(targets or [])

    # ------------------------------------------------------------------ config and manifest
    @classmethod
    def check_config(cls, cfg: Any, source: str) -> None:
        """Raise :class:`ConfigError` (naming the key) for keys this task needs or refuses."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, cfg: Any) -> Task:
        raise NotImplementedError

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> Task:
        return cls(classes=manifest.get("classes"), targets=manifest.get("targets"))

    def manifest_info(self) -> dict[str, Any]:
        """What the run's manifest records of the task (beside its name)."""
        return {}

    # ------------------------------------------------------------------ data
    def samples(self, data: Any) -> list[Sample]:
        """The samples to read from the config's ``data``."""
        raise NotImplementedError

    #: (class name, label) per class in classID order; None: no classes (regression)
    @property
    def groups(self) -> list[tuple[str, int]] | None:
        return None

    @property
    def n_classes(self) -> int:
        """Number of classes the methods see (2 for binary, also unused in regression)."""
        return 2

    def y(self, events: Any) -> np.ndarray:
        """What the methods are trained on: labels or targets."""
        raise NotImplementedError

    # ------------------------------------------------------------------ outputs
    def truth_columns(self, events: Any) -> dict[str, Any]:
        """TrainTree/TestTree branches that say what an event is (classID, targets)."""
        raise NotImplementedError

    def method_columns(self, name: str, pred: np.ndarray, sigma: np.ndarray | None
                       ) -> dict[str, np.ndarray]:
        """The score branches of one method in the output trees."""
        raise NotImplementedError

    def check_apply_options(self, options: dict[str, Any]) -> None:
        """Raise :class:`InputError` for ``mva apply`` options that do not fit the task."""
        if options.get("signal_fraction") is not None:
            raise InputError("--signal-fraction: only for binary classification runs")

    def apply_columns(self, name: str, trained: Any, pred: np.ndarray, sigma: np.ndarray | None,
                      options: dict[str, Any]) -> dict[str, np.ndarray]:
        """The branches ``mva apply`` writes for one method (scores and probabilities)."""
        return self.method_columns(name, pred, sigma)

    # ------------------------------------------------------------------ evaluation
    def figures(self, pred: np.ndarray, sigma: np.ndarray | None, events: Any
                ) -> dict[str, Any]:
        """The figures of merit of predictions on ``events`` (metrics.json's ``test``)."""
        raise NotImplementedError

    def evaluate(self, res: Any, run: Any) -> dict[str, Any]:
        """metrics.json entry of one method (``test``, ``train``, ...), all that its plots
        need; :meth:`importance` comes after, while they are drawn."""
        raise NotImplementedError

    def importance(self, res: Any, run: Any) -> dict[str, Any] | None:
        """metrics.json's ``importance`` of one method (None: the task has none)."""
        return None

    def run_metrics(self, run: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Run-level metrics.json keys: (before ``methods``, after ``methods``)."""
        return {}, {}

    def summary_table(self, run: Any) -> str:
        """The table printed at the end of ``mva train``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ plots and report
    def input_plot_options(self, kind: str, labels: np.ndarray | None
                           ) -> tuple[np.ndarray | None, dict[str, Any]]:
        """Labels and extra options for an input plot (``inputs``, ``correlations``): by
        default the labels split signal from background (None: all events together)."""
        return labels, {}

    def method_plots(self, run: Any, name: str, outdir: Path, kw: dict) -> list[Job]:
        """Plots of one evaluated method."""
        raise NotImplementedError

    def summary_plots(self, run: Any, outdir: Path, kw: dict) -> list[Job]:
        """Plots comparing the methods."""
        raise NotImplementedError

    def report_summary(self, run_files: Any) -> str:
        """The report's summary table (HTML)."""
        raise NotImplementedError

    def report_comparison(self, runs: Any) -> str:
        """The report's comparison of several runs (HTML)."""
        raise NotImplementedError


def _per_class_keys(given: Any, classes: list[str], key: str, source: str) -> None:
    """``given`` (a per-class mapping from the config) names exactly ``classes``."""
    if given is None or not hasattr(given, "items") or not callable(given.items):
        return
    names = list(given.items())
    unknown = [n for n in names if n not in classes]
    if unknown:
        raise ConfigError(f"{source}: {key}.{unknown[0]}: unknown class (classes: "
                          f"{', '.join(classes)})")
    missing = [c for c in classes if c not in names]
    if missing:
        raise ConfigError(f"{source}: {key}.{missing[0]}: missing (give a value for every "
                          f"class: {', '.join(classes)})")


class ClassificationTask(Task):
    """Binary and multiclass classification: one sample per class, labels, split per class."""

    #: label the methods see, per class in classID order
    labels: list[int]

    def __init__(self, classes: list[str] | None = None, targets: list[str] | None = None):
        super().__init__(classes, targets)

    @classmethod
    def check_config(cls, cfg: Any, source: str) -> None:
        d = cfg.data
        if d.target:
            raise ConfigError(f"{source}: data.target: only for task: regression")
        classes = cls.class_names(cfg)
        ts = cfg.split.train_size
        if ts is not None and not isinstance(ts, int):
            _per_class_keys(ts, classes, "split.train_size", source)
        for key in ("yields", "class_fractions"):
            _per_class_keys(getattr(cfg.evaluation, key), classes, f"evaluation.{key}", source)

    @classmethod
    def class_names(cls, cfg: Any) -> list[str]:
        raise NotImplementedError

    @classmethod
    def from_config(cls, cfg: Any) -> Task:
        return cls(classes=cls.class_names(cfg))

    def manifest_info(self) -> dict[str, Any]:
        return {"classes": self.classes}

    def sources(self, data: Any) -> list[Any]:
        raise NotImplementedError

    def samples(self, data: Any) -> list[Sample]:
        out = []
        for (_, label), (key, src) in zip(self.groups, self.sources(data), strict=True):
            cut = " && ".join(f"({c})" for c in (data.cut, src.cut) if c)
            out.append(Sample(key, label, list(src.files), src.tree, src.weight or data.weight,
                              cut))
        return out

    @property
    def groups(self) -> list[tuple[str, int]]:
        return list(zip(self.classes, self.labels, strict=True))

    def y(self, events: Any) -> np.ndarray:
        return events.labels

    def class_ids(self, labels: np.ndarray) -> np.ndarray:
        """TMVA's ``classID``: the position of each event's class in the config (0, 1, ...)."""
        lut = np.zeros(max(self.labels) + 1, dtype=np.int32)
        lut[self.labels] = np.arange(len(self.labels), dtype=np.int32)
        return lut[np.asarray(labels, dtype=np.int64)]

    #: ``className`` as written to the trees
    def display_names(self) -> list[str]:
        return list(self.classes)

    def truth_columns(self, events: Any) -> dict[str, Any]:
        from mva.io.writers import Categorical

        ids = self.class_ids(events.labels)
        return {"classID": ids,
                "className": Categorical(ids.astype(np.int64), self.display_names())}

    #: metrics.json key of the permutation importance
    importance_key = "permutation_auc_drop"

    def importance_metric(self, scores: np.ndarray, labels: np.ndarray, weights: np.ndarray
                          ) -> float:
        """The figure whose drop the permutation importance measures (here: the accuracy)."""
        from mva.evaluation.multiclass import accuracy

        return accuracy(scores, labels, weights)

    def importance(self, res: Any, run: Any) -> dict[str, Any]:
        """Drop of the task's figure when one input is permuted; the BDT's gain."""
        from mva.evaluation.ranking import permutation_importance

        tm, te, cfg = res.trained, run.test, run.config
        # k-fold: every event scored by the model of its fold, never by one that trained on it
        out = {self.importance_key: permutation_importance(
            lambda X, fold=None: tm.predict(X, fold)[0], te.features, te.labels, te.weights,
            cfg.data.features, seed=cfg.split.seed, metric=self.importance_metric,
            folds=run.fold_of)}
        if hasattr(tm.model, "feature_importance"):
            gain = tm.model.feature_importance(len(cfg.data.features))
            out["gain"] = dict(zip(cfg.data.features, map(float, gain), strict=True))
        return out
