"""Regression: one or more targets per event, optionally a per-event width (``<m>_sigma``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mva.errors import ConfigError
from mva.evaluation import regression as rm
from mva.evaluation import uncertainty as unc
from mva.tasks.base import Job, Sample, Task, comparison_lines, pm, warning_lines

__all__ = ["Regression"]


class Regression(Task):
    name = "regression"
    cv_headline = (("rms", "rms", "#.4g"), ("sigma_eff", "sigma_eff", "#.4g"),
                   ("bias", "bias", "#.4g"))

    @classmethod
    def check_config(cls, cfg: Any, source: str) -> None:
        d = cfg.data
        if not d.target:
            raise ConfigError(f"{source}: data.target: required for regression")
        if d.classes is not None:
            raise ConfigError(f"{source}: data.classes: only for task: multiclass")
        if not d.files and d.signal is None:
            raise ConfigError(f"{source}: data.files: required for regression")
        for key in ("yields", "class_fractions"):
            if getattr(cfg.evaluation, key) is not None:
                raise ConfigError(f"{source}: evaluation.{key}: only for classification")
        if cfg.split.train_size is not None and not isinstance(cfg.split.train_size, int):
            raise ConfigError(f"{source}: split.train_size: give one number for regression")

    @classmethod
    def from_config(cls, cfg: Any) -> Regression:
        return cls(targets=cfg.data.target)

    def samples(self, data: Any) -> list[Sample]:
        return [Sample("data", None, list(data.files), data.tree, data.weight, data.cut)]

    def y(self, events: Any) -> np.ndarray:
        return events.targets

    # ------------------------------------------------------------------ outputs
    def truth_columns(self, events: Any) -> dict[str, Any]:
        from mva.naming import target_branches

        return {name: events.targets[:, j]
                for j, name in enumerate(target_branches(events.target_names))}

    def method_columns(self, name, pred, sigma):
        """``name`` (and ``name_sigma``) for one target, ``name_<j>`` per target for several."""
        cols = {}
        n = pred.shape[1]
        for j in range(n):
            suffix = "" if n == 1 else f"_{j}"
            cols[f"{name}{suffix}"] = pred[:, j]
            if sigma is not None:
                cols[f"{name}{suffix}_sigma"] = sigma[:, j]
        return cols

    # ------------------------------------------------------------------ evaluation
    def figures(self, pred, sigma, events):
        per_target = {}
        for j, tname in enumerate(events.target_names):
            args = (pred[:, j], events.targets[:, j], events.weights,
                    None if sigma is None else sigma[:, j])
            per_target[tname] = unc.beside(rm.regression_metrics(*args),
                                           unc.regression_errors(*args))
        return next(iter(per_target.values())) if len(per_target) == 1 else per_target

    #: the figures compared between methods (smaller is better), sigma_eff ranking them
    COMPARED = (("sigma_eff", "sigma_eff"), ("rms", "std"))

    def run_metrics(self, run):
        te = run.test
        per_target = {}
        for j, tname in enumerate(te.target_names if len(run.methods) > 1 else ()):
            d = {name: res.pred_test[:, j] - te.targets[:, j]
                 for name, res in run.methods.items()}
            compared = {key: unc.compare({n: getattr(unc, fn)(dn, te.weights)
                                          for n, dn in d.items()}, larger_is_better=False)
                        for key, fn in self.COMPARED}
            compared = {k: c for k, c in compared.items() if c}
            if compared:
                per_target[tname] = compared
        if not per_target:
            return {}, {}
        one = len(te.target_names) == 1
        return {}, {"comparison": next(iter(per_target.values())) if one else per_target}

    def evaluate(self, res, run):
        from mva.evaluation.overtraining import regression_warning

        metrics = {"test": self.figures(res.pred_test, res.sigma_test, run.test),
                   "train": self.figures(res.pred_train, res.sigma_train, run.train)}
        warning = regression_warning(res.trained.type, metrics)
        if warning:
            metrics["warnings"] = [warning]
        return metrics

    def summary_table(self, run):
        head = (f"{'method':<12}{'bias ± err':>20}{'rms ± err':>20}{'rms_trunc':>11}"
                f"{'mae':>11}{'sigma_eff ± err':>20}{'median':>9}{'fit s':>8}")
        rows = []
        for name, res in run.methods.items():
            te = res.metrics["test"]
            if "bias" not in te:
                te = next(iter(te.values()))
            cells = "".join(f"{pm(te[k], te.get(f'{k}_err'), '.4g'):>20}"
                            for k in ("bias", "rms"))
            rows.append(f"{name:<12}{cells}{te['rms_trunc']:>11.4g}{te['mae']:>11.4g}"
                        f"{pm(te['sigma_eff'], te.get('sigma_eff_err'), '.4g'):>20}"
                        f"{te['median']:>9.4f}{res.fit_seconds:>8.1f}")
        return "\n".join([head, "-" * len(head), *rows, *comparison_lines(run.metrics),
                          *warning_lines(run)])

    # ------------------------------------------------------------------ plots
    def _part(self, j: int) -> str | None:
        return None if len(self.targets) == 1 else str(j)

    def method_plots(self, run: Any, name: str, outdir: Path, kw: dict) -> list[Job]:
        from mva.naming import plot_record, plot_stem

        res, te, cfg = run.methods[name], run.test, run.config
        jobs: list[Job] = []
        for j in range(len(te.target_names)):
            part = self._part(j)

            def job(func: str, kind: str, args: tuple, part: str | None = part) -> Job:
                stem = plot_stem(outdir, kind, name, part)
                return (func, (name, *args, stem), kw,
                        plot_record(stem, kind, name, part, "target"))

            pred, target = res.pred_test[:, j], te.targets[:, j]
            d = pred - target
            jobs.append(job("plot_prediction_vs_true", "pred_vs_true", (pred, target, te.weights)))
            jobs.append(job("plot_profiles", "profiles",
                            (te.features, cfg.data.features, d, te.weights)))
            if res.sigma_test is not None:
                width = res.sigma_test[:, j]
                jobs.append(job("plot_pulls", "pulls", (d, width, te.weights)))
                jobs.append(job("plot_width_calibration", "width_calibration",
                                (d, width, te.weights)))
        return jobs

    def summary_plots(self, run: Any, outdir: Path, kw: dict) -> list[Job]:
        from mva.naming import plot_record, plot_stem

        te = run.test
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
            part = self._part(j)
            stem = plot_stem(outdir, "ratio", None, part)
            jobs.append(("plot_ratio", (ratios, te.weights, stem), kw,
                         plot_record(stem, "ratio", None, part, "target")))
        return jobs

    # ------------------------------------------------------------------ report
    def report_summary(self, run_files):
        from mva.report import summary

        return summary.regression_summary(run_files)

    def report_comparison(self, runs):
        from mva.report import comparison

        return comparison.regression_comparison(runs)


def _raw_ratio(target_expr: str, events: Any) -> np.ndarray | None:
    """For a correction target ``a / b`` the uncorrected ratio of prediction 1 to the target is
    ``1 / target``: show it as the "before" distribution."""
    if "/" not in target_expr:
        return None
    j = events.target_names.index(target_expr)
    with np.errstate(divide="ignore"):
        return 1.0 / events.targets[:, j]
