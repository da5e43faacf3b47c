"""Multiclass classification: per-class probabilities ``(n, K)`` for K >= 2 named classes.

``classID`` is the position of the class in ``data.classes``; the methods see the same index as
label. The per-class scores are re-weighted to the expected composition (``evaluation.yields`` or
``class_fractions``; default equal priors): the multiclass P(S|y).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mva.errors import ConfigError, InputError
from mva.naming import branch_name, class_branch
from mva.tasks.base import ClassificationTask, Job, comparison_lines, pm, warning_lines

__all__ = ["Multiclass", "MAX_CLASSES"]

#: labels are stored as int8
MAX_CLASSES = 127


class Multiclass(ClassificationTask):
    name = "multiclass"
    cv_headline = (("accuracy", "accuracy", ".4f"), ("roc_auc_macro", "macro AUC", ".4f"),
                   ("log_loss", "log loss", ".4f"))
    importance_key = "permutation_accuracy_drop"

    def __init__(self, classes: list[str] | None = None, targets: list[str] | None = None):
        super().__init__(classes, targets)
        self.labels = list(range(len(self.classes)))

    @classmethod
    def check_config(cls, cfg: Any, source: str) -> None:
        d = cfg.data
        for name in ("signal", "background"):
            if getattr(d, name) is not None:
                raise ConfigError(f"{source}: data.{name}: not for task: multiclass; list the "
                                  "classes under data.classes (signal: {...}, ttbar: {...}, ...)")
        if d.classes is None:
            raise ConfigError(f"{source}: data.classes: required for multiclass, e.g. "
                              "{signal: {files: [...]}, ttbar: {files: [...]}, ...}")
        if len(d.classes) < 2:
            raise ConfigError(f"{source}: data.classes: at least two classes are needed "
                              f"(got {len(d.classes)})")
        if len(d.classes) > MAX_CLASSES:
            raise ConfigError(f"{source}: data.classes: at most {MAX_CLASSES} classes")
        seen: dict[str, str] = {}
        for name in d.classes:
            if not str(name) or str(name) != str(name).strip():
                raise ConfigError(f"{source}: data.classes.{name!r}: not a usable class name")
            # classes become branch names (<method>_<class>): two must not give the same one
            branch = branch_name(str(name))
            if branch in seen:
                raise ConfigError(f"{source}: data.classes.{name}: gives the same branch names "
                                  f"as class {seen[branch]!r} ({branch}); rename one")
            seen[branch] = str(name)
        if cfg.evaluation.signal_fraction is not None:
            raise ConfigError(f"{source}: evaluation.signal_fraction: only for binary "
                              "classification (multiclass: yields or class_fractions)")
        super().check_config(cfg, source)

    @classmethod
    def class_names(cls, cfg: Any) -> list[str]:
        return [str(c) for c in cfg.data.classes]

    def sources(self, data: Any) -> list[Any]:
        return [(f"data.classes.{name}", src) for name, src in data.classes.items()]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    # ------------------------------------------------------------------ outputs
    def method_columns(self, name, pred, sigma):
        return {class_branch(name, c): pred[:, k] for k, c in enumerate(self.classes)}

    def check_apply_options(self, options):
        if options.get("signal_fraction") is not None:
            raise InputError("--signal-fraction: only for binary classification runs; the "
                             "probabilities of a multiclass run use the priors from its "
                             "evaluation.yields or class_fractions")

    def apply_columns(self, name, trained, pred, sigma, options):
        from mva.evaluation.multiclass import reweight_to_priors

        out = self.method_columns(name, pred, sigma)
        priors, train_priors = trained.extras.get("priors"), trained.extras.get("train_priors")
        if priors is not None and train_priors is not None:
            prob = reweight_to_priors(pred, np.asarray(train_priors), np.asarray(priors))
            out.update({class_branch(name, c, "prob"): prob[:, k]
                        for k, c in enumerate(self.classes)})
        return out

    # ------------------------------------------------------------------ evaluation
    def priors(self, cfg: Any) -> np.ndarray:
        """The expected class composition: ``yields`` or ``class_fractions``, else equal."""
        ev = cfg.evaluation
        given = ev.yields if ev.yields is not None else ev.class_fractions
        v = (np.array([float(given.get(c)) for c in self.classes]) if given is not None
             else np.ones(self.n_classes))
        return v / v.sum()

    def train_priors(self, run: Any, model: Any) -> np.ndarray:
        """Class fractions of the weights ``model`` was fitted with (negative weights at 0 for
        the methods that set them so): the composition its probabilities are for."""
        w = run.train_weights
        if model.clips_negative_weights:
            w = np.clip(w, 0.0, None)
        v = np.array([float(w[run.train.labels == k].sum()) for k in self.labels])
        return v / v.sum()

    def figures(self, pred, sigma, events):
        from mva.evaluation import uncertainty as unc
        from mva.evaluation.multiclass import multiclass_metrics

        args = (pred, events.labels, events.weights, self.classes)
        return unc.beside(multiclass_metrics(*args), unc.multiclass_errors(*args))

    def evaluate(self, res, run):
        from mva.evaluation import multiclass as mc

        tr, te, cfg = run.train, run.test, run.config
        classes = self.classes
        metrics: dict[str, Any] = {
            "test": self.figures(res.pred_test, None, te),
            "train": self.figures(res.pred_train, None, tr),
            "overtraining": {"ks_pvalue": mc.ks_pvalues(
                res.pred_train, tr.labels, tr.weights, res.pred_test, te.labels, te.weights,
                classes)},
        }
        priors, train_priors = self.priors(cfg), self.train_priors(run, res.trained.model)
        prob = mc.reweight_to_priors(res.pred_test, train_priors, priors)
        metrics["priors"] = dict(zip(classes, map(float, priors), strict=True))
        # measured on the test events re-weighted to the composition the probabilities claim
        metrics["calibration"] = mc.reliability_per_class(prob, te.labels, te.weights, classes,
                                                          priors=priors)
        res.trained.extras.update(priors=[float(p) for p in priors],
                                  train_priors=[float(p) for p in train_priors])
        from mva.evaluation.overtraining import multiclass_warning

        warning = multiclass_warning(res.trained.type, metrics)
        if warning:
            metrics["warnings"] = [warning]
        return metrics

    def run_metrics(self, run):
        from mva.evaluation import uncertainty as unc

        te = run.test
        # accuracy (which ranks the methods) and macro AUC of every two methods on the same
        # test events: paired differences
        acc, macro = {}, {}
        for name, res in run.methods.items() if len(run.methods) > 1 else ():
            acc[name] = unc.accuracy(res.pred_test, te.labels, te.weights)
            macro[name] = unc.auc_macro(unc.auc_ovr(res.pred_test, te.labels, te.weights))
        comparison = {k: c for k, c in (("accuracy", unc.compare(acc)),
                                        ("roc_auc_macro", unc.compare(macro))) if c}
        return {"classes": list(self.classes)}, ({"comparison": comparison} if comparison
                                                 else {})

    #: the printed table has a column per class up to this many classes (the report has all)
    SUMMARY_CLASS_COLUMNS = 6

    def summary_table(self, run):
        shown = self.classes if len(self.classes) <= self.SUMMARY_CLASS_COLUMNS else []
        head = (f"{'method':<12}{'accuracy test ± err (train)':>33}{'macro AUC ± err':>20}"
                + "".join(f"{'AUC ' + c[:10]:>15}" for c in shown)
                + f"{'log loss':>10}{'min KS p':>10}{'fit s':>8}")
        rows = []
        for name, res in run.methods.items():
            m = res.metrics
            te, trn = m["test"], m["train"]
            ks = [v for v in m["overtraining"]["ks_pvalue"].values() if v is not None]
            rows.append(
                f"{name:<12}{pm(te['accuracy'], te.get('accuracy_err'), '.4f'):>24} "
                f"({trn['accuracy']:.4f})"
                f"{pm(te['roc_auc_macro'], te.get('roc_auc_macro_err'), '.4f'):>20}"
                + "".join(f"{te['roc_auc_ovr'][c]:>15.4f}" for c in shown)
                + f"{te['log_loss']:>10.4f}{min(ks) if ks else float('nan'):>10.3f}"
                f"{res.fit_seconds:>8.1f}")
        return "\n".join([head, "-" * len(head), *rows, *comparison_lines(run.metrics),
                          *warning_lines(run)])

    # ------------------------------------------------------------------ plots
    def input_plot_options(self, kind, labels):
        if kind == "inputs":  # one distribution per class
            return labels, {"classes": list(self.classes)}
        # correlation matrices are drawn for signal and background: here for all events
        return None, {}

    def method_plots(self, run: Any, name: str, outdir: Path, kw: dict) -> list[Job]:
        from mva.naming import plot_record, plot_stem

        res, te, tr = run.methods[name], run.test, run.train
        m = res.metrics
        stem = plot_stem(outdir, "confusion", name)
        jobs: list[Job] = [("plot_confusion", (name, np.asarray(m["test"]["confusion"],
                                                                dtype=float),
                                               self.classes, stem), kw,
                            plot_record(stem, "confusion", name))]
        stems = [plot_stem(outdir, "scores", name, c) for c in self.classes]
        jobs.append(("plot_all_class_scores", (
            name, (res.pred_train, tr.labels, tr.weights), (res.pred_test, te.labels, te.weights),
            m["overtraining"]["ks_pvalue"], self.classes, stems), kw,
            [plot_record(st, "scores", name, c, "class")
             for st, c in zip(stems, self.classes, strict=True)]))
        rel = {c: (np.asarray(v["reliability"]["mean_prob"], dtype=float),
                   np.asarray(v["reliability"]["signal_fraction"], dtype=float))
               for c, v in m["calibration"].items()}
        stem = plot_stem(outdir, "reliability", name)
        jobs.append(("plot_reliability_classes", (name, rel, stem), kw,
                     plot_record(stem, "class_reliability", name)))
        return jobs

    def summary_plots(self, run: Any, outdir: Path, kw: dict) -> list[Job]:
        from mva.evaluation import classification as cm
        from mva.evaluation import uncertainty as unc
        from mva.naming import plot_record, plot_stem
        from mva.tasks.binary import BAND_EFF_BKG

        te = run.test
        jobs: list[Job] = []
        for k, c in enumerate(self.classes):
            is_k = (te.labels == k).astype(np.int8)
            curves = {}
            for name, res in run.methods.items():
                eb, es, _ = cm.roc_curve(res.pred_test[:, k], is_k, te.weights)
                band = (BAND_EFF_BKG, *unc.eff_sig_at_bkg(res.pred_test[:, k], is_k, te.weights,
                                                          BAND_EFF_BKG, strata=te.labels))
                test = res.metrics["test"]
                curves[name] = (eb, es, test["roc_auc_ovr"][c],
                                (test.get("roc_auc_ovr_err") or {}).get(c), band)
            stem = plot_stem(outdir, "roc", None, c)
            jobs.append(("plot_roc_ovr", (c, curves, stem), kw,
                         plot_record(stem, "roc_ovr", None, c, "class")))
        return jobs

    # ------------------------------------------------------------------ report
    def report_summary(self, run_files):
        from mva.report import summary

        return summary.multiclass_summary(run_files)

    def report_comparison(self, runs):
        from mva.report import comparison

        return comparison.multiclass_comparison(runs)
