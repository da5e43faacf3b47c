"""Multiclass plots: every function writes real PNG and PDF files and closes its figure, what it
draws matches independent computations (numpy histograms, scikit-learn confusion matrices and
AUCs), and bad input raises before anything is written."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_written
from matplotlib.collections import QuadMesh
from matplotlib.patches import StepPatch
from sklearn import metrics

from mva.evaluation import multiclass as mc
from mva.evaluation import plots as mp
from mva.evaluation.classification import roc_auc, roc_curve

CLASSES = ["signal", "ttbar", "wjets"]
K = len(CLASSES)


def sample(seed: int, n: int = 3000, k: int = K, negative: float = 0.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[labels]
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    weights = rng.uniform(0.5, 1.5, n)
    weights[rng.random(n) < negative] *= -1.0
    return probs, labels, weights


# --------------------------------------------------------------------------- ROC


def test_plot_roc_ovr(tmp_path, captured):
    probs, labels, w = sample(1)
    curves = {}
    for method, noise in (("BDT", 0.0), ("MLP", 0.5)):
        score = probs[:, 1] + noise * np.random.default_rng(2).random(labels.size)
        eb, es, _ = roc_curve(score, labels == 1, w)
        curves[method] = (eb, es, roc_auc(score, labels == 1, w))
    stem = tmp_path / "roc" / "roc_ttbar"
    assert_written(mp.plot_roc_ovr("ttbar", curves, stem), stem)
    ax = captured[0].axes[0]
    labels_drawn = [line.get_label() for line in ax.get_lines()]
    # sorted by decreasing AUC, the AUC the one scikit-learn gives
    auc_bdt = metrics.roc_auc_score(labels == 1, probs[:, 1], sample_weight=w)
    assert labels_drawn[0] == f"BDT (AUC = {auc_bdt:.3f})"
    assert labels_drawn[1].startswith("MLP")
    assert "ttbar" in ax.get_xlabel()


def test_plot_roc_ovr_bad_input(tmp_path):
    with pytest.raises(ValueError, match="differ in length"):
        mp.plot_roc_ovr("a", {"BDT": ([0, 1], [0, 0.5, 1], 0.5)}, tmp_path / "x")
    with pytest.raises(ValueError, match="no ROC curves"):
        mp.plot_roc_ovr("a", {}, tmp_path / "x")
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- confusion


def test_plot_confusion(tmp_path, captured):
    probs, labels, w = sample(3, k=4)
    names = ["a", "b", "c", "d"]
    matrix = mc.confusion(probs, labels, w, 4)
    stem = tmp_path / "confusion"
    assert_written(mp.plot_confusion("BDT", matrix, names, stem), stem)
    ax = captured[0].axes[0]
    mesh = next(c for c in ax.collections if isinstance(c, QuadMesh))
    expected = metrics.confusion_matrix(labels, probs.argmax(1), sample_weight=w,
                                        normalize="true")
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(4, 4), expected)
    texts = sorted((t.get_position(), t.get_text()) for t in ax.texts)
    assert len(texts) == 16
    # cell (row i, column j) sits at (j + 0.5, i + 0.5)
    cell = {(round(x - 0.5), round(y - 0.5)): s for (x, y), s in texts}
    assert cell[(2, 1)] == f"{expected[1, 2]:.2f}"
    assert [t.get_text() for t in ax.get_xticklabels()] == names


def test_plot_confusion_with_nan_row(tmp_path, captured):
    probs, labels, w = sample(4)
    labels = np.where(labels == 1, 0, labels)
    matrix = mc.confusion(probs, labels, w, K)
    stem = tmp_path / "confusion_nan"
    assert_written(mp.plot_confusion("", matrix, CLASSES, stem, formats=["png"]), stem, ["png"])
    # the empty row gets no numbers
    assert len(captured[0].axes[0].texts) == 6


def test_plot_confusion_bad_input(tmp_path):
    with pytest.raises(ValueError, match="square"):
        mp.plot_confusion("x", np.ones((2, 3)), ["a", "b"], tmp_path / "x")
    with pytest.raises(ValueError, match="3 class names for a 2 x 2 matrix"):
        mp.plot_confusion("x", np.eye(2), CLASSES, tmp_path / "x")
    with pytest.raises(ValueError, match="unsupported plot format"):
        mp.plot_confusion("x", np.eye(2), ["a", "b"], tmp_path / "x", formats=["nope"])


# --------------------------------------------------------------------------- overtraining


def test_plot_class_scores(tmp_path, captured):
    probs, labels, w = sample(5, negative=0.05)
    half = np.arange(labels.size) % 2 == 0
    k = 2
    train = (probs[half, k], labels[half], w[half])
    test = (probs[~half, k], labels[~half], w[~half])
    p = mc.ks_pvalues(probs[half], labels[half], w[half], probs[~half], labels[~half], w[~half],
                      CLASSES)["wjets"]
    stem = tmp_path / "BDT_scores_wjets"
    paths = mp.plot_class_scores("BDT", "wjets", train, test, p, CLASSES, stem, bins=20)
    assert_written(paths, stem)
    ax = captured[0].axes[0]
    steps = {s.get_label(): s for s in ax.patches
             if isinstance(s, StepPatch) and s.get_label() and s.get_label()[0] != "_"}
    assert set(steps) == {f"{c} (test)" for c in CLASSES}
    edges = np.linspace(0.0, 1.0, 21)
    for j, c in enumerate(CLASSES):
        sel = test[1] == j
        h, _ = np.histogram(test[0][sel], bins=edges, weights=test[2][sel])
        np.testing.assert_allclose(steps[f"{c} (test)"].get_data().values,
                                   h / (h.sum() * np.diff(edges)), rtol=1e-12)
    assert f"{p:.3f}" in ax.get_legend().get_title().get_text()


def test_plot_class_scores_missing_class_and_no_pvalue(tmp_path):
    probs, labels, w = sample(6, n=500)
    labels = np.where(labels == 0, 1, labels)  # no signal events at all
    sample_ = (probs[:, 0], labels, None)
    stem = tmp_path / "scores"
    assert_written(mp.plot_class_scores("", "signal", sample_, sample_, None, CLASSES, stem),
                   stem)


def test_plot_class_scores_bad_input(tmp_path):
    probs, labels, w = sample(7, n=100)
    good = (probs[:, 0], labels, w)
    with pytest.raises(ValueError, match="not one of"):
        mp.plot_class_scores("x", "qcd", good, good, 0.5, CLASSES, tmp_path / "x")
    with pytest.raises(ValueError, match=r"labels must lie in 0 \.\. 1"):
        mp.plot_class_scores("x", "signal", good, good, 0.5, CLASSES[:2], tmp_path / "x")
    with pytest.raises(ValueError, match="labels has length 99, expected 100"):
        mp.plot_class_scores("x", "signal", good, (probs[:, 0], labels[:-1], None), 0.5,
                             CLASSES, tmp_path / "x")
    with pytest.raises(ValueError, match="weights has length"):
        mp.plot_class_scores("x", "signal", (probs[:, 0], labels, w[:-1]), good, 0.5, CLASSES,
                             tmp_path / "x")
    with pytest.raises(ValueError, match="integer class indices"):
        mp.plot_class_scores("x", "signal", (probs[:, 0], labels + 0.5, w), good, 0.5, CLASSES,
                             tmp_path / "x")
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- calibration


def test_plot_reliability_classes(tmp_path, captured):
    probs, labels, w = sample(8)
    rel = mc.reliability_per_class(probs, labels, w, CLASSES)
    per_class = {c: (r["reliability"]["mean_prob"], r["reliability"]["signal_fraction"])
                 for c, r in rel.items()}
    stem = tmp_path / "reliability"
    assert_written(mp.plot_reliability_classes("BDT", per_class, stem), stem)
    lines = {line.get_label(): line for line in captured[0].axes[0].get_lines()}
    assert set(lines) == {"perfect calibration", *CLASSES}
    # JSON records mark empty bins with None: those points are not drawn
    n_filled = sum(v is not None for v in per_class["signal"][0])
    assert len(lines["signal"].get_xdata()) == n_filled


def test_plot_reliability_classes_arrays_with_nan(tmp_path):
    per_class = {"a": (np.array([0.1, np.nan, 0.8]), np.array([0.2, np.nan, 0.7])),
                 "b": (np.array([0.3, 0.6]), np.array([0.25, 0.65]))}
    stem = tmp_path / "rel"
    assert_written(mp.plot_reliability_classes("", per_class, stem), stem)


def test_plot_reliability_classes_bad_input(tmp_path):
    with pytest.raises(ValueError, match="no reliability curves"):
        mp.plot_reliability_classes("x", {}, tmp_path / "x")
    with pytest.raises(ValueError, match="observed_fraction has length 1, expected 2"):
        mp.plot_reliability_classes("x", {"a": ([0.1, 0.2], [0.1])}, tmp_path / "x")
    with pytest.raises(ValueError, match="expected \\(mean_prob, observed_fraction\\)"):
        mp.plot_reliability_classes("x", {"a": ([0.1], [0.1], [0.1])}, tmp_path / "x")
