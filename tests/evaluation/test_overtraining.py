"""The overtraining warning: KS p-values below 0.01, or a train/test AUC gap that is both
significant (3 sigma of the difference) and large (a third of the test's 1 - AUC)."""

from __future__ import annotations

import pytest

from mva.evaluation.overtraining import (
    GAP_FRACTION,
    KS_PVALUE,
    auc_gap,
    binary_warning,
    multiclass_warning,
    overtraining_warning,
)


def test_healthy_method_has_no_warning() -> None:
    # the default BDT of the 1000-event TMVA toy: gap 0.018 below a third of 0.089
    assert overtraining_warning("bdt", {"signal": 0.21, "background": 0.6},
                                0.929, 0.0055, 0.911, 0.0014) is None


def test_low_ks_pvalue_names_the_class_and_what_to_try() -> None:
    text = overtraining_warning("bdt", {"signal": 0.4, "background": 0.003},
                                0.92, 0.005, 0.91, 0.001)
    assert text.startswith("overtraining: KS p-value of train vs test scores 0.003 "
                           "(background) < 0.01")
    assert "signal" not in text and "max_depth" in text
    # the threshold itself is no warning
    assert overtraining_warning("mlp", {"signal": KS_PVALUE}, None, None, None, None) is None
    assert "hidden_layers" in overtraining_warning("mlp", {"signal": 0.0}, None, None, None,
                                                    None)


def test_auc_gap_must_be_significant_and_large() -> None:
    # the former default BDT on the same toy: train 0.992, test 0.899
    gap, err, large = auc_gap(0.992, 0.0015, 0.899, 0.0015)
    assert gap == pytest.approx(0.093) and err == pytest.approx(0.0015 * 2**0.5) and large
    text = overtraining_warning("bdt", {"signal": 0.5}, 0.992, 0.0015, 0.899, 0.0015)
    assert "train AUC 0.992 vs test 0.899 (gap 0.093 ± 0.002" in text
    # as large, but not significant with a tiny training sample
    assert not auc_gap(0.992, 0.04, 0.899, 0.0015)[2]
    # significant, but small beside the room left below 1 (a third of 0.2 is 0.067)
    assert not auc_gap(0.85, 0.001, 0.80, 0.001)[2]
    # near AUC 1 a small gap is large: a third of 0.01
    assert auc_gap(0.998, 0.0002, 0.99, 0.0002)[2]
    assert GAP_FRACTION == pytest.approx(1 / 3)


def test_from_metrics_entries() -> None:
    binary = {"test": {"roc_auc": 0.899, "roc_auc_err": 0.0015},
              "train": {"roc_auc": 0.992, "roc_auc_err": 0.0015},
              "overtraining": {"ks_pvalue_signal": 0.0, "ks_pvalue_background": 0.2}}
    text = binary_warning("knn", binary)
    assert "0 (signal)" in text and "train AUC" in text and "larger k" in text
    multi = {"test": {"roc_auc_macro": 0.9, "roc_auc_macro_err": 0.002},
             "train": {"roc_auc_macro": 0.91, "roc_auc_macro_err": 0.003},
             "overtraining": {"ks_pvalue": {"signal": 0.5, "qcd": 1e-5, "ttbar": None}}}
    text = multiclass_warning("svm", multi)
    assert "1e-05 (qcd)" in text and "macro AUC" not in text and "smaller C" in text
    multi["overtraining"]["ks_pvalue"]["qcd"] = 0.3
    assert multiclass_warning("svm", multi) is None


def test_regression_warning_needs_a_large_and_significant_rms_gap() -> None:
    from mva.evaluation.overtraining import RMS_FRACTION, regression_warning

    def entry(train, train_err, test, test_err):
        return {"train": {"rms": train, "rms_err": train_err},
                "test": {"rms": test, "rms_err": test_err}}

    text = regression_warning("bdt", entry(0.3, 0.01, 0.6, 0.01))
    assert text.startswith("overtraining: train RMS 0.3 vs test 0.6") and "max_depth" in text
    # the fraction itself, and a gap within the uncertainties, are no warning
    assert regression_warning("bdt", entry(RMS_FRACTION * 0.6, 0.01, 0.6, 0.01)) is None
    assert regression_warning("bdt", entry(0.3, 0.2, 0.6, 0.2)) is None
    assert regression_warning("mlp", entry(0.59, 0.01, 0.6, 0.01)) is None
    # several targets: the one that is overtrained is named
    multi = {"train": {"e": {"rms": 1.0, "rms_err": 0.01}, "phi": {"rms": 0.1, "rms_err": 0.001}},
             "test": {"e": {"rms": 1.05, "rms_err": 0.01}, "phi": {"rms": 0.2, "rms_err": 0.001}}}
    text = regression_warning("knn", multi)
    assert "(phi)" in text and "(e)" not in text and "larger k" in text
