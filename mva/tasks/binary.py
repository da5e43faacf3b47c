"""Binary classification (TMVA's signal and background): one score per event.

Internally the methods see label 1 for signal and 0 for background; in the output trees signal
has ``classID`` 0 and background 1, as in TMVA.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mva.errors import ConfigError
from mva.evaluation import classification as cm
from mva.evaluation import uncertainty as unc
from mva.tasks._folds import fold_roc_jobs
from mva.tasks.base import ClassificationTask, Job, comparison_lines, pm, warning_lines

__all__ = ["Binary", "EFF_BKG", "classification_metrics", "expected_yields"]

EFF_BKG = (0.01, 0.1, 0.3)


#: background efficiencies of the ROC band (log-spaced towards tight cuts, where the plots
#: of the rejection look)
BAND_EFF_BKG = np.unique(np.r_[np.geomspace(1e-4, 1.0, 60), np.linspace(0.0, 1.0, 101)])


def classification_metrics(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray
                           ) -> dict[str, Any]:
    """AUC, effS at effB and separation, each with its uncertainty (``<key>_err``) from the
    finite sample (:mod:`mva.evaluation.uncertainty`)."""
    return unc.beside({
        "roc_auc": cm.roc_auc(scores, labels, weights),
        "eff_sig_at_bkg": cm.eff_sig_at_bkg(scores, labels, weights, EFF_BKG),
        "separation": cm.separation(scores, labels, weights),
    }, unc.binary_errors(scores, labels, weights, EFF_BKG))


def expected_yields(cfg: Any, te: Any) -> tuple[float, float]:
    """Expected signal and background after the selection: from the config, else the weighted
    test sample."""
    if cfg.evaluation.yields is not None:
        return cfg.evaluation.yields.get("signal"), cfg.evaluation.yields.get("background")
    sig = float(te.weights[te.labels == 1].sum())
    bkg = float(te.weights[te.labels == 0].sum())
    return sig, bkg


def json_list(values: Any) -> list[float | None]:
    """Array to a JSON list with null for NaN (metrics.json stays strict JSON)."""
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, dtype=float)]


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


def signal_probability_extras(res: Any, te: Any, cfg: Any) -> dict[str, Any]:
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
    z = unc.significance(res.pred_test, te.labels, te.weights, wp["cut"], n_sig, n_bkg)
    wp = unc.beside(wp, {"significance_err": z.json_err})
    res.trained.extras.update(densities=dens.to_dict(), signal_fraction=f_s)
    return {
        "working_point": wp,
        "cuts": _cuts_at_efficiencies(res.pred_test, te.labels, te.weights, ev),
        "signal_fraction": f_s,
        "calibration": {"ece": expected_calibration_error(prob, te.labels[other], w_check),
                        "reliability": {k: json_list(v) for k, v in rel.items()}},
    }


class Binary(ClassificationTask):
    name = "classification"
    cv_headline = (("roc_auc", "AUC", ".4f"), ("eff_sig_at_bkg.0.1", "εS at εB=0.1", ".3f"),
                   ("separation", "separation", ".3f"))
    labels = [1, 0]

    def importance_metric(self, scores, labels, weights):
        return cm.roc_auc(scores, labels, weights)

    @classmethod
    def check_config(cls, cfg: Any, source: str) -> None:
        d = cfg.data
        if d.classes is not None:
            raise ConfigError(f"{source}: data.classes: only for task: multiclass (binary "
                              "classification takes data.signal and data.background)")
        for name in ("signal", "background"):
            if getattr(d, name) is None:
                raise ConfigError(f"{source}: data.{name}: required for classification")
        if cfg.evaluation.class_fractions is not None:
            raise ConfigError(f"{source}: evaluation.class_fractions: only for task: "
                              "multiclass (binary: signal_fraction)")
        super().check_config(cfg, source)

    @classmethod
    def class_names(cls, cfg: Any) -> list[str]:
        return ["signal", "background"]

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> Binary:
        return cls(classes=["signal", "background"])

    def manifest_info(self) -> dict[str, Any]:
        return {}

    def sources(self, data: Any) -> list[Any]:
        return [("data.signal", data.signal), ("data.background", data.background)]

    def display_names(self) -> list[str]:
        return ["Signal", "Background"]

    # ------------------------------------------------------------------ outputs
    def method_columns(self, name, pred, sigma):
        return {name: pred}

    def check_apply_options(self, options):
        """``--signal-fraction`` is the binary option: every option fits."""

    def apply_columns(self, name, trained, pred, sigma, options):
        out = {name: pred}
        dens = trained.densities()
        if dens is not None:
            fs = options.get("signal_fraction")
            fs = fs if fs is not None else trained.extras.get("signal_fraction", 0.5)
            out[f"{name}_prob"] = dens.probability(pred, fs)
            out[f"{name}_rarity"] = dens.rarity(pred)
        return out

    # ------------------------------------------------------------------ evaluation
    def figures(self, pred, sigma, events):
        return classification_metrics(pred, events.labels, events.weights)

    def evaluate(self, res, run):
        from concurrent.futures import ThreadPoolExecutor

        tr, te, cfg = run.train, run.test, run.config

        def train_figures() -> tuple[dict[str, Any], dict[str, float]]:
            ks = {}
            for label, key in ((1, "ks_pvalue_signal"), (0, "ks_pvalue_background")):
                a, b = tr.labels == label, te.labels == label
                ks[key] = cm.ks_2samp_weighted(res.pred_train[a], res.pred_test[b],
                                               tr.weights[a], te.weights[b])[1]
            with cm.sorted_once():  # the cache is per thread
                return self.figures(res.pred_train, None, tr), ks

        # the training sample's figures and the overtraining check in a second thread
        # (numpy's sorts and sums release the interpreter): the plots wait for this
        # evaluation, the second core would not
        with ThreadPoolExecutor(1, thread_name_prefix="mva-train-figures") as pool:
            background = pool.submit(train_figures)
            test = self.figures(res.pred_test, None, te)
            extras = signal_probability_extras(res, te, cfg)
            train, ks = background.result()
            metrics = {"test": test, "train": train, "overtraining": ks, **extras}
        # the ROC curve and its band for the comparison plots, and the AUC with its
        # influences for the paired comparison, on this evaluation's sorts
        res.curves["roc"] = self._roc_curve(res, te)
        res.curves["auc"] = unc.auc(res.pred_test, te.labels, te.weights)
        from mva.evaluation.overtraining import binary_warning

        warning = binary_warning(res.trained.type, metrics)
        if warning:
            metrics["warnings"] = [warning]
        return metrics

    def run_metrics(self, run):
        from mva.evaluation.ranking import variable_separation

        te = run.test
        # on at most ~200k test events: a histogram-based figure needs no more
        sub = slice(None, None, max(1, len(te) // 200_000))
        tail: dict[str, Any] = {"variables": {"separation": variable_separation(
            te.features[sub], te.labels[sub], te.weights[sub], run.config.data.features)}}
        # the AUC of every two methods on the same test events: a paired difference
        comparison = unc.compare({name: res.curves.get("auc") or unc.auc(
            res.pred_test, te.labels, te.weights) for name, res in run.methods.items()}
                                 if len(run.methods) > 1 else {})
        if comparison is not None:
            tail["comparison"] = {"roc_auc": comparison}
        return {}, tail

    def summary_table(self, run):
        head = (f"{'method':<12}{'AUC test ± err (train)':>29}{'effS@B=0.01':>24}"
                f"{'effS@B=0.1':>24}{'effS@B=0.3':>24}{'sep. ± err':>16}{'KS p S':>9}"
                f"{'KS p B':>9}{'fit s':>8}")
        rows = []
        for name, res in run.methods.items():
            m = res.metrics
            te, trn = m["test"], m["train"]
            errs = te.get("eff_sig_at_bkg_err") or {}
            effs = "".join(
                f"{pm(te['eff_sig_at_bkg'][k], errs.get(k), '.3f'):>16} "
                f"({trn['eff_sig_at_bkg'][k]:.3f})" for k in ("0.01", "0.1", "0.3"))
            rows.append(
                f"{name:<12}{pm(te['roc_auc'], te.get('roc_auc_err'), '.4f'):>20} "
                f"({trn['roc_auc']:.4f}){effs}"
                f"{pm(te['separation'], te.get('separation_err'), '.3f'):>16}"
                f"{m['overtraining']['ks_pvalue_signal']:>9.3f}"
                f"{m['overtraining']['ks_pvalue_background']:>9.3f}{res.fit_seconds:>8.1f}")
        return "\n".join([head, "-" * len(head), *rows, *comparison_lines(run.metrics),
                          *warning_lines(run)])

    # ------------------------------------------------------------------ plots
    def method_plots(self, run: Any, name: str, outdir: Path, kw: dict) -> list[Job]:
        from mva.naming import plot_record, plot_stem

        res, te, tr = run.methods[name], run.test, run.train
        ks = res.metrics["overtraining"]
        stem = plot_stem(outdir, "overtraining", name)
        jobs: list[Job] = [("plot_overtraining", (
            name, (res.pred_train, tr.labels, tr.weights), (res.pred_test, te.labels, te.weights),
            (ks["ks_pvalue_signal"], ks["ks_pvalue_background"]), stem), kw,
            plot_record(stem, "overtraining", name))]
        return (jobs + fold_roc_jobs(run, name, outdir, kw)
                + self._probability_jobs(name, res, run, outdir, kw))

    def _probability_jobs(self, name: str, res: Any, run: Any, outdir: Path, kw: dict
                          ) -> list[Job]:
        """Cut efficiencies with the optimal cut, P(S|y) with the class densities, reliability."""
        from mva.evaluation.probability import ScoreDensities
        from mva.naming import plot_record, plot_stem

        m, te = res.metrics, run.test
        curves = cm.cut_efficiency_curves(res.pred_test, te.labels, te.weights,
                                          *expected_yields(run.config, te))
        dens = ScoreDensities.from_dict(res.trained.extras["densities"])
        grid = np.linspace(res.pred_test.min(), res.pred_test.max(), 300)
        f_s = m["signal_fraction"]
        rel = m["calibration"]["reliability"]
        stems = {k: plot_stem(outdir, k, name)
                 for k in ("cut_efficiencies", "probability", "reliability")}
        return [
            ("plot_cut_efficiencies", (name, curves, m["working_point"]["cut"],
                                       stems["cut_efficiencies"]), kw,
             plot_record(stems["cut_efficiencies"], "cut_efficiencies", name)),
            ("plot_probability", (name, grid, dens.probability(grid, f_s),
                                  dens.pdf_signal(grid), dens.pdf_background(grid), f_s,
                                  stems["probability"]), kw,
             plot_record(stems["probability"], "probability", name)),
            ("plot_reliability", (name, np.asarray(rel["mean_prob"], dtype=float),
                                  np.asarray(rel["signal_fraction"], dtype=float),
                                  stems["reliability"]), kw,
             plot_record(stems["reliability"], "reliability", name)),
        ]

    @staticmethod
    def _roc_curve(res: Any, te: Any) -> tuple[np.ndarray, np.ndarray, tuple]:
        """The test ROC curve and its band: effS at fixed effB +- its uncertainty."""
        eb, es, _ = cm.roc_curve(res.pred_test, te.labels, te.weights)
        band = (BAND_EFF_BKG, *unc.eff_sig_at_bkg(res.pred_test, te.labels, te.weights,
                                                  BAND_EFF_BKG))
        return eb, es, band

    def summary_plots(self, run: Any, outdir: Path, kw: dict) -> list[Job]:
        from mva.naming import plot_record, plot_stem

        te = run.test
        curves = {}
        for name, res in run.methods.items():
            eb, es, band = res.curves.get("roc") or self._roc_curve(res, te)
            test = res.metrics["test"]
            curves[name] = (eb, es, test["roc_auc"], test.get("roc_auc_err"), band)
        roc, rej = plot_stem(outdir, "roc"), plot_stem(outdir, "rejection")
        return [("plot_roc", (curves, roc), kw, plot_record(roc, "roc")),
                ("plot_rejection", (curves, rej), kw, plot_record(rej, "rejection"))]

    # ------------------------------------------------------------------ report
    def report_summary(self, run_files):
        from mva.report import summary

        return summary.classification_summary(run_files)

    def report_comparison(self, runs):
        from mva.report import comparison

        return comparison.classification_comparison(runs)
