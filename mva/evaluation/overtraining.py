"""The overtraining warning: a classifier whose training scores differ from its test scores.

Two signs, either of which raises the warning (``metrics.json``: the method's ``warnings``, the
run log, the summary table of ``mva train`` and the report):

* a Kolmogorov-Smirnov p-value of train vs test scores (per class) below :data:`KS_PVALUE`;
* a large train/test AUC gap: larger than :data:`GAP_SIGMAS` standard deviations of the
  difference (the two AUCs' uncertainties ``roc_auc_err`` in quadrature, the samples being
  independent) *and* larger than :data:`GAP_FRACTION` of the test sample's ``1 - AUC``, i.e.
  the training sample misorders fewer than two thirds as many signal-background pairs as the
  test sample. The second condition scales the gap with the room left below AUC 1: 0.03 at a
  test AUC of 0.91, 0.003 at 0.99, where an absolute threshold would be too strict at low and
  too lax at high AUC; the first keeps small samples' fluctuations from raising it.

A regression (:func:`regression_warning`) has no score distribution to compare; its sign is a
training RMS of ``prediction - target`` smaller than :data:`RMS_FRACTION` of the test RMS (the
method reproduces its training targets better than it predicts new events: it has fitted their
noise) by more than :data:`GAP_SIGMAS` standard deviations of the difference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["KS_PVALUE", "GAP_SIGMAS", "GAP_FRACTION", "RMS_FRACTION", "auc_gap",
           "overtraining_warning", "binary_warning", "multiclass_warning", "regression_warning",
           "HINTS"]

#: a KS p-value below this is a warning
KS_PVALUE = 0.01
#: the train/test AUC gap must exceed this many standard deviations of the difference ...
GAP_SIGMAS = 3.0
#: ... and this fraction of the test sample's 1 - AUC
GAP_FRACTION = 1.0 / 3.0
#: a regression's training RMS below this fraction of its test RMS is a warning
RMS_FRACTION = 0.8

#: what to try, per method type
HINTS: dict[str, str] = {
    "bdt": "try early_stopping: true (the default), smaller max_depth, larger "
           "min_child_weight, subsample < 1, or more training events",
    "mlp": "try early_stopping: true (the default), fewer or narrower hidden_layers, dropout "
           "or l2, or more training events",
    "knn": "try a larger k (or leave k out to have it chosen by leave-one-out); the training "
           "scores of a kNN include the event itself among its neighbours",
    "svm": "try a smaller C or gamma (regression: a larger epsilon)",
    "linear": "try fewer input variables or more training events",
}
_DEFAULT_HINT = "try stronger regularisation or more training events"


def _in_quadrature(*errs: float | None) -> float | None:
    """The finite uncertainties among ``errs`` in quadrature (independent samples); None
    without any."""
    finite = [float(e) for e in errs if isinstance(e, (int, float)) and math.isfinite(e)]
    return math.sqrt(sum(e * e for e in finite)) if finite else None


def auc_gap(train: float, train_err: float | None, test: float, test_err: float | None
            ) -> tuple[float, float | None, bool]:
    """``(gap, its uncertainty, large)`` of the train/test AUC difference (module docstring)."""
    gap = float(train) - float(test)
    err = _in_quadrature(train_err, test_err)
    large = (gap > GAP_FRACTION * (1.0 - float(test))
             and (err is None or gap > GAP_SIGMAS * err))
    return gap, err, large


def overtraining_warning(method_type: str, ks_pvalues: Mapping[str, float | None],
                         train_auc: float | None, train_err: float | None,
                         test_auc: float | None, test_err: float | None,
                         auc_name: str = "AUC") -> str | None:
    """The warning text for one method, or None when neither sign is there.

    ``ks_pvalues``: class name -> p-value (None where there is none); ``auc_name``: what the AUC
    is (``AUC``, ``macro AUC``)."""
    reasons: list[str] = []
    low = {c: p for c, p in ks_pvalues.items()
           if p is not None and math.isfinite(p) and p < KS_PVALUE}
    if low:
        listed = ", ".join(f"{p:.2g} ({c})" for c, p in low.items())
        reasons.append(f"KS p-value of train vs test scores {listed} < {KS_PVALUE:g}")
    if None not in (train_auc, test_auc):
        gap, err, large = auc_gap(train_auc, train_err, test_auc, test_err)
        if large:
            unc = f" ± {err:.3f}" if err is not None else ""
            reasons.append(f"train {auc_name} {train_auc:.3f} vs test {test_auc:.3f} (gap "
                           f"{gap:.3f}{unc}, more than {GAP_SIGMAS:g} sigma and a third of the "
                           f"test 1 - {auc_name})")
    if not reasons:
        return None
    return (f"overtraining: {'; '.join(reasons)}: "
            f"{HINTS.get(method_type, _DEFAULT_HINT)}")


def binary_warning(method_type: str, metrics: Mapping[str, Any]) -> str | None:
    """:func:`overtraining_warning` from a binary classifier's ``metrics.json`` entry."""
    ks = metrics.get("overtraining") or {}
    test, train = metrics.get("test") or {}, metrics.get("train") or {}
    return overtraining_warning(
        method_type, {"signal": ks.get("ks_pvalue_signal"),
                      "background": ks.get("ks_pvalue_background")},
        train.get("roc_auc"), train.get("roc_auc_err"), test.get("roc_auc"),
        test.get("roc_auc_err"))


def multiclass_warning(method_type: str, metrics: Mapping[str, Any]) -> str | None:
    """:func:`overtraining_warning` from a multiclass classifier's ``metrics.json`` entry (the
    KS p-value of every class, the macro AUC)."""
    ks = (metrics.get("overtraining") or {}).get("ks_pvalue") or {}
    test, train = metrics.get("test") or {}, metrics.get("train") or {}
    return overtraining_warning(
        method_type, dict(ks), train.get("roc_auc_macro"), train.get("roc_auc_macro_err"),
        test.get("roc_auc_macro"), test.get("roc_auc_macro_err"), auc_name="macro AUC")


def regression_warning(method_type: str, metrics: Mapping[str, Any]) -> str | None:
    """The warning for a regression's ``metrics.json`` entry (one target, or one entry per
    target): training RMS below :data:`RMS_FRACTION` of the test RMS by more than
    :data:`GAP_SIGMAS` standard deviations; None otherwise."""
    test, train = metrics.get("test") or {}, metrics.get("train") or {}
    per_target = ({"": (train, test)} if "rms" in test
                  else {name: (train.get(name) or {}, t) for name, t in test.items()})
    reasons = []
    for name, (tr, te) in per_target.items():
        if not (isinstance(tr.get("rms"), float) and isinstance(te.get("rms"), float)):
            continue
        gap = te["rms"] - tr["rms"]
        err = _in_quadrature(tr.get("rms_err"), te.get("rms_err"))
        if tr["rms"] < RMS_FRACTION * te["rms"] and (err is None or gap > GAP_SIGMAS * err):
            unc = f" ± {err:.3g}" if err is not None else ""
            reasons.append(f"train RMS {tr['rms']:.4g} vs test {te['rms']:.4g}"
                           f"{f' ({name})' if name else ''} (gap {gap:.3g}{unc}, the training "
                           f"RMS below {RMS_FRACTION:g} of the test RMS)")
    if not reasons:
        return None
    return f"overtraining: {'; '.join(reasons)}: {HINTS.get(method_type, _DEFAULT_HINT)}"
