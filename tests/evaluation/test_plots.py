"""Plots: every function writes real PNG and PDF files and closes its figure, and what it
draws is checked against independent computations (numpy histograms, np.corrcoef,
scikit-learn AUCs, closed-form Gaussians)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import assert_written
from matplotlib.collections import QuadMesh
from matplotlib.figure import Figure
from matplotlib.patches import StepPatch
from sklearn.metrics import roc_auc_score

from mva.evaluation import plots
from mva.evaluation.classification import cut_efficiency_curves, roc_auc, roc_curve

# --------------------------------------------------------------------------- fixtures


def classification_sample(n: int, seed: int, separation: float = 1.5, negative: float = 0.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    scores = rng.normal(size=n) + separation * labels
    weights = rng.uniform(0.5, 1.5, n)
    weights[rng.random(n) < negative] *= -1.0
    return scores, labels, weights


def step_patches(ax) -> list[StepPatch]:
    return [p for p in ax.patches if isinstance(p, StepPatch)]


def labelled_steps(ax) -> dict[str, StepPatch]:
    """Histograms that appear in the legend (outlines drawn on top of fills have no label)."""
    return {p.get_label(): p for p in step_patches(ax) if p.get_label() and p.get_label()[0] != "_"}


# --------------------------------------------------------------------------- save


def test_save_creates_directories_and_keeps_dots_in_stem(tmp_path: Path) -> None:
    fig = Figure(figsize=(4, 4))  # not registered with pyplot: nothing to close
    fig.add_subplot().plot([0, 1], [1, 0])
    stem = tmp_path / "deep" / "er" / "roc_v1.2"
    paths = plots.save(fig, stem)
    assert paths == [tmp_path / "deep/er/roc_v1.2.png", tmp_path / "deep/er/roc_v1.2.pdf"]
    assert all(p.stat().st_size > 0 for p in paths)
    assert plots.save(fig, tmp_path / "single", formats="svg") == [tmp_path / "single.svg"]


def test_save_rejects_unknown_format_before_writing(tmp_path: Path) -> None:
    fig = Figure()
    with pytest.raises(ValueError, match="unsupported"):
        plots.save(fig, tmp_path / "x", formats=("png", "docx"))
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- ROC


@pytest.fixture(scope="module")
def roc_inputs():
    """Two methods, the better one listed second, weights with 10% negative entries."""
    scores, labels, weights = classification_sample(1500, seed=3, negative=0.1)
    rng = np.random.default_rng(4)
    methods = {"weak": scores + 2.0 * rng.normal(size=scores.size), "strong": scores}
    curves = {}
    for name, s in methods.items():
        eff_bkg, eff_sig, _ = roc_curve(s, labels, weights)
        curves[name] = (eff_bkg, eff_sig, roc_auc(s, labels, weights))
    return methods, labels, curves


def test_roc_draws_rejection_against_efficiency_sorted_by_auc(
    tmp_path: Path, captured: list[Figure], roc_inputs
) -> None:
    methods, labels, curves = roc_inputs
    stem = tmp_path / "roc"
    assert_written(plots.plot_roc(curves, stem), stem)
    ax = captured[0].axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    # independent ranking: unweighted AUC from scikit-learn
    by_sklearn = sorted(methods, key=lambda m: -roc_auc_score(labels, methods[m]))
    assert [entry.split(" ")[0] for entry in legend[:2]] == by_sklearn
    assert f"{curves['strong'][2]:.3f}" in legend[0]
    for line in ax.get_lines():
        name = line.get_label().split(" ")[0]
        if name not in curves:
            continue
        eff_bkg, eff_sig, _ = curves[name]
        # fewer points than the thinning limit: the full curve is drawn
        np.testing.assert_array_equal(line.get_xdata(), eff_sig)
        np.testing.assert_allclose(line.get_ydata(), 1.0 - eff_bkg)


def test_rejection_is_inverse_background_efficiency_on_log_axis(
    tmp_path: Path, captured: list[Figure], roc_inputs
) -> None:
    _, _, curves = roc_inputs
    stem = tmp_path / "sub" / "rejection"
    assert_written(plots.plot_rejection(curves, stem), stem)
    ax = captured[0].axes[0]
    assert ax.get_yscale() == "log"
    eff_bkg, eff_sig, _ = curves["strong"]
    line = next(ln for ln in ax.get_lines() if ln.get_label().startswith("strong"))
    keep = eff_bkg > 0
    np.testing.assert_array_equal(line.get_xdata(), eff_sig[keep])
    np.testing.assert_allclose(line.get_ydata(), 1.0 / eff_bkg[keep])


def test_long_curves_are_thinned_to_points_on_the_curve(
    tmp_path: Path, captured: list[Figure]
) -> None:
    scores, labels, weights = classification_sample(30000, seed=5)
    eff_bkg, eff_sig, _ = roc_curve(scores, labels, weights)
    plots.plot_roc({"big": (eff_bkg, eff_sig, None)}, tmp_path / "big", formats=("png",))
    line = captured[0].axes[0].get_lines()[0]
    x, y = line.get_xdata(), line.get_ydata()
    assert 100 < x.size <= 2002
    assert (x[0], y[0]) == (eff_sig[0], 1.0 - eff_bkg[0])
    assert (x[-1], y[-1]) == (eff_sig[-1], 1.0 - eff_bkg[-1])
    # every drawn point is a point of the exact curve
    idx = np.searchsorted(eff_sig, x)  # eff_sig is non-decreasing for positive weights
    assert np.all(np.isin(np.round(y, 12), np.round(1.0 - eff_bkg, 12)))
    assert np.all(eff_sig[np.minimum(idx, eff_sig.size - 1)] == x)
    # the AUC was missing and is integrated for the legend
    expected = roc_auc_score(labels, scores, sample_weight=weights)
    assert f"{expected:.3f}" in line.get_label()


def test_roc_band_is_eff_sig_plus_minus_its_uncertainty(
    tmp_path: Path, captured: list[Figure]
) -> None:
    from matplotlib.collections import PolyCollection

    from mva.evaluation import uncertainty as unc

    scores, labels, weights = classification_sample(3000, seed=6)
    eff_bkg, eff_sig, _ = roc_curve(scores, labels, weights)
    grid = np.linspace(0.05, 0.95, 19)
    es, err = unc.eff_sig_at_bkg(scores, labels, weights, grid)
    auc = unc.auc(scores, labels, weights)
    curves = {"m": (eff_bkg, eff_sig, auc.value, auc.err, (grid, es, err))}
    plots.plot_roc(curves, tmp_path / "roc", formats=("png",))
    ax = captured[0].axes[0]
    assert f"AUC = {auc.value:.3f} ± {auc.err:.3f}" in ax.get_legend().get_texts()[0].get_text()
    (band,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
    xy = band.get_paths()[0].vertices
    # at every background efficiency of the grid the band spans effS -+ err horizontally
    # (clipped to efficiencies in [0, 1])
    for b, s, e in zip(grid, es, err, strict=True):
        at = np.isclose(xy[:, 1], 1.0 - b)
        assert xy[at, 0].min() == pytest.approx(max(s - e, 0.0))
        assert xy[at, 0].max() == pytest.approx(min(s + e, 1.0))
    plots.plot_rejection(curves, tmp_path / "rej", formats=("png",))
    assert [c for c in captured[1].axes[0].collections if isinstance(c, PolyCollection)]


# --------------------------------------------------------------------------- overtraining


def test_overtraining_histograms_have_unit_area_and_match_numpy(
    tmp_path: Path, captured: list[Figure]
) -> None:
    scores, labels, _ = classification_sample(3000, seed=7)
    train = (scores[:1500], labels[:1500], None)
    test = (scores[1500:], labels[1500:], None)
    stem = tmp_path / "overtraining"
    paths = plots.plot_overtraining("BDT", train, test, (0.4213, float("nan")), stem, bins=25)
    assert_written(paths, stem)
    ax = captured[0].axes[0]
    steps = labelled_steps(ax)
    assert set(steps) == {"Signal (test)", "Background (test)"}
    edges = steps["Signal (test)"].get_data().edges
    assert edges.size == 26
    assert edges[0] == scores.min() and edges[-1] == scores.max()
    for label, cls in (("Signal (test)", 1), ("Background (test)", 0)):
        values = steps[label].get_data().values
        expected, _ = np.histogram(scores[1500:][labels[1500:] == cls], bins=edges, density=True)
        np.testing.assert_allclose(values, expected)
    # training points: density histograms of the training sample
    points = {ln.get_label(): ln for ln in ax.containers}
    for label, cls in (("Signal (training)", 1), ("Background (training)", 0)):
        y = points[label].lines[0].get_ydata()
        expected, _ = np.histogram(scores[:1500][labels[:1500] == cls], bins=edges, density=True)
        np.testing.assert_allclose(y, expected)
    title = ax.get_legend().get_title().get_text()
    assert "0.421" in title and "n/a" in title


def test_overtraining_with_negative_weights_and_a_single_class(
    tmp_path: Path, captured: list[Figure]
) -> None:
    scores, labels, weights = classification_sample(2000, seed=8, negative=0.15)
    train = (scores[:1000], labels[:1000], weights[:1000])
    test = (scores[1000:], labels[1000:], weights[1000:])
    plots.plot_overtraining("MLP", train, test, (0.5, 0.5), tmp_path / "neg", formats=("png",))
    for patch in labelled_steps(captured[0].axes[0]).values():
        values, edges, _ = patch.get_data()
        assert np.sum(values * np.diff(edges)) == pytest.approx(1.0)
    sig = labels == 1
    only_signal = (scores[sig], labels[sig], weights[sig])
    paths = plots.plot_overtraining("MLP", only_signal, only_signal, None, tmp_path / "one",
                                    formats=("png",))
    assert_written(paths, tmp_path / "one", formats=("png",))
    assert set(labelled_steps(captured[1].axes[0])) == {"Signal (test)"}


# --------------------------------------------------------------------------- loss, inputs


def test_loss_uses_log_axis_only_for_positive_losses(
    tmp_path: Path, captured: list[Figure]
) -> None:
    history = {"train": [1.0, 0.5, 0.3, 0.25], "validation": [1.1, 0.6, 0.4, 0.38]}
    stem = tmp_path / "loss"
    assert_written(plots.plot_loss("MLP", history, stem), stem)
    ax = captured[0].axes[0]
    assert ax.get_yscale() == "log"
    train = next(ln for ln in ax.get_lines() if ln.get_label() == "train")
    np.testing.assert_array_equal(train.get_xdata(), [1, 2, 3, 4])
    np.testing.assert_array_equal(train.get_ydata(), history["train"])
    plots.plot_loss("BDT", {"train": [0.2, -0.1, -0.3], "test": []}, tmp_path / "lin",
                    xlabel="iteration", formats=("png",))
    assert captured[1].axes[0].get_yscale() == "linear"


def test_inputs_one_unit_area_panel_per_variable(tmp_path: Path, captured: list[Figure]) -> None:
    rng = np.random.default_rng(9)
    n = 3000
    labels = rng.integers(0, 2, n)
    X = np.c_[rng.normal(size=n) + labels, rng.exponential(size=n), rng.poisson(2 + labels, n)]
    weights = rng.uniform(0.5, 1.5, n)
    weights[:100] *= -1.0
    stem = tmp_path / "inputs"
    paths = plots.plot_inputs(X, labels, weights, ["a", "b", "njet"], stem, bins=20)
    assert_written(paths, stem)
    visible = [ax for ax in captured[0].axes if ax.get_visible()]
    assert [ax.get_xlabel() for ax in visible] == ["a", "b", "njet"]
    for ax in visible:
        steps = labelled_steps(ax)
        assert set(steps) == {"Signal", "Background"}
        for patch in steps.values():
            values, edges, _ = patch.get_data()
            assert np.sum(values * np.diff(edges)) == pytest.approx(1.0)
    # an integer variable gets one bin per value, centred on the integers
    edges = labelled_steps(visible[2])["Signal"].get_data().edges
    np.testing.assert_allclose(np.diff(edges), 1.0)
    np.testing.assert_allclose(edges % 1.0, 0.5)


@pytest.mark.parametrize("style", [
    {"fill": True, "color": "#5790fc", "alpha": 0.35},
    {"color": "#5790fc", "lw": 1.5},
    {"fill": True, "facecolor": "none", "edgecolor": "#e42536", "hatch": "//", "lw": 1.5},
])
def test_input_panels_draw_the_stairs_that_axes_stairs_draws(style) -> None:
    # the input panels add their steps without matplotlib's data-limit scan; with the limits
    # set as the panels set them the pixels are those of Axes.stairs
    import matplotlib.pyplot as plt

    from mva.evaluation.plots.inputs import _stairs

    values, edges = np.array([0.2, 1.0, 0.6, 0.1]), np.linspace(-1.0, 3.0, 5)
    images = []
    for draw in (lambda ax: ax.stairs(values, edges, **style),
                 lambda ax: _stairs(ax, values, edges, **style)):
        fig, ax = plt.subplots(figsize=(3, 2), dpi=50)
        patch = draw(ax)
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylim(0.0, 1.1)
        fig.canvas.draw()
        images.append(np.asarray(fig.canvas.buffer_rgba()).copy())
        assert isinstance(patch, StepPatch) and patch in ax.patches
        plt.close(fig)
    np.testing.assert_array_equal(images[0], images[1])


def test_inputs_one_unit_area_histogram_per_class_for_multiclass(
        tmp_path: Path, captured: list[Figure]) -> None:
    rng = np.random.default_rng(12)
    labels = rng.integers(0, 3, 3000)
    X = np.c_[rng.normal(size=3000) + labels]
    paths = plots.plot_inputs(X, labels, None, ["a"], tmp_path / "mc", formats=("png",),
                              classes=["sig", "tt", "qcd"])
    assert_written(paths, tmp_path / "mc", formats=("png",))
    steps = labelled_steps(captured[0].axes[0])
    assert set(steps) == {"sig", "tt", "qcd"}
    for k, name in enumerate(("sig", "tt", "qcd")):
        values, edges, _ = steps[name].get_data()
        assert np.sum(values * np.diff(edges)) == pytest.approx(1.0)
        # each class is its own distribution: its mean follows the shift of that class
        centres = 0.5 * (edges[1:] + edges[:-1])
        assert np.sum(values * np.diff(edges) * centres) == pytest.approx(k, abs=0.1)


def test_inputs_without_labels_for_regression(tmp_path: Path, captured: list[Figure]) -> None:
    X = np.random.default_rng(10).normal(size=(500, 2))
    paths = plots.plot_inputs(X, None, None, None, tmp_path / "reg", formats=("png",))
    assert_written(paths, tmp_path / "reg", formats=("png",))
    assert [ax.get_xlabel() for ax in captured[0].axes if ax.get_visible()] == ["x0", "x1"]
    steps = labelled_steps(captured[0].axes[0])
    assert set(steps) == {"all events"}
    # unit weights: the drawn histogram is numpy's density histogram in the drawn range
    values, edges, _ = steps["all events"].get_data()
    x = X[:, 0]
    inside = x[(x >= edges[0]) & (x <= edges[-1])]
    assert inside.size >= 0.99 * x.size
    np.testing.assert_allclose(values, np.histogram(inside, bins=edges, density=True)[0])


# --------------------------------------------------------------------------- correlations


def correlated(n: int, seed: int) -> np.ndarray:
    cov = np.array([[2.0, 0.8, -0.5], [0.8, 1.0, 0.2], [-0.5, 0.2, 0.7]])
    return np.random.default_rng(seed).multivariate_normal(np.zeros(3), cov, size=n)


def test_weighted_correlation_matches_numpy() -> None:
    X = correlated(400, seed=11)
    np.testing.assert_allclose(plots.weighted_correlation(X), np.corrcoef(X, rowvar=False))
    np.testing.assert_allclose(
        plots.weighted_correlation(X, np.ones(len(X))), np.corrcoef(X, rowvar=False)
    )
    # integer weights are repeated events
    counts = np.random.default_rng(12).integers(1, 5, len(X))
    np.testing.assert_allclose(
        plots.weighted_correlation(X, counts),
        np.corrcoef(np.repeat(X, counts, axis=0), rowvar=False),
    )
    # real weights: numpy's analytic weights give the same normalised covariance
    w = np.random.default_rng(13).uniform(0.1, 3.0, len(X))
    cov = np.cov(X, rowvar=False, aweights=w)
    sd = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(plots.weighted_correlation(X, w), cov / np.outer(sd, sd))


def test_weighted_correlation_undefined_for_constant_variable() -> None:
    X = np.c_[correlated(200, seed=14)[:, :2], np.full(200, 3.7)]
    corr = plots.weighted_correlation(X)
    assert np.all(np.isnan(corr[2])) and np.all(np.isnan(corr[:, 2]))
    np.testing.assert_allclose(corr[:2, :2], np.corrcoef(X[:, :2], rowvar=False))
    with pytest.raises(ValueError, match="positive"):
        plots.weighted_correlation(X, -np.ones(200))


def test_correlation_plot_shows_percent_matrices_per_class(
    tmp_path: Path, captured: list[Figure]
) -> None:
    X = correlated(1000, seed=15)
    labels = np.random.default_rng(16).integers(0, 2, 1000)
    X[labels == 1, 1] *= -1.0  # opposite sign of a correlation in signal
    stem = tmp_path / "correlations"
    paths = plots.plot_correlations(X, labels, None, ["x", "y", "z"], stem)
    assert_written(paths, stem)
    def meshes(fig: Figure) -> list:
        # matrix panels (the colour bar's axes hold a mesh too, but no title)
        return [ax for ax in fig.axes if ax.get_title()
                and any(isinstance(c, QuadMesh) for c in ax.collections)]

    matrices = meshes(captured[0])
    assert [ax.get_title() for ax in matrices] == [
        "Correlation matrix (signal)", "Correlation matrix (background)"
    ]
    for ax, cls in zip(matrices, (1, 0)):
        expected = 100.0 * np.corrcoef(X[labels == cls], rowvar=False)
        mesh = next(c for c in ax.collections if isinstance(c, QuadMesh))
        np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(3, 3), expected)
        texts = {t.get_text() for t in ax.texts}
        assert str(int(round(expected[0, 1]))) in texts and "100" in texts
    # regression (no labels) and a single-class sample: one matrix
    for labels_, stem_ in ((None, "reg"), (np.ones(1000, dtype=int), "sig_only")):
        plots.plot_correlations(X, labels_, None, None, tmp_path / stem_, formats=("png",))
        assert len(meshes(captured[-1])) == 1


# --------------------------------------------------------------------------- cut scan, probability


def test_cut_efficiencies_mark_the_optimal_cut(tmp_path: Path, captured: list[Figure]) -> None:
    scores, labels, weights = classification_sample(800, seed=17, negative=0.05)
    curves = cut_efficiency_curves(scores, labels, weights, n_sig=50, n_bkg=500)
    best = float(curves["cut"][np.nanargmax(curves["significance"])])
    stem = tmp_path / "mvaeffs"
    assert_written(plots.plot_cut_efficiencies("BDT", curves, best, stem), stem)
    left, right = captured[0].axes
    lines = {ln.get_label(): ln for ln in left.get_lines()}
    np.testing.assert_array_equal(lines["Signal efficiency"].get_ydata(), curves["eff_sig"])
    np.testing.assert_array_equal(lines["Background efficiency"].get_ydata(), curves["eff_bkg"])
    marker = next(ln for label, ln in lines.items() if label.startswith("optimal cut"))
    np.testing.assert_array_equal(marker.get_xdata(), [best, best])
    significance = right.get_lines()[0]
    np.testing.assert_array_equal(significance.get_ydata(), curves["significance"])


def test_probability_and_reliability(tmp_path: Path, captured: list[Figure]) -> None:
    y = np.linspace(-4.0, 4.0, 161)
    pdf_s = np.exp(-0.5 * (y - 1.0) ** 2) / np.sqrt(2 * np.pi)
    pdf_b = np.exp(-0.5 * (y + 1.0) ** 2) / np.sqrt(2 * np.pi)
    f = 0.2
    prob = f * pdf_s / (f * pdf_s + (1 - f) * pdf_b)
    stem = tmp_path / "probability"
    assert_written(plots.plot_probability("BDT", y, prob, pdf_s, pdf_b, f, stem), stem)
    top, bottom = captured[0].axes
    np.testing.assert_array_equal(top.get_lines()[0].get_ydata(), prob)
    assert len(bottom.get_lines()) == 2

    mean_prob = np.array([0.05, 0.15, np.nan, 0.55, 0.9])
    observed = np.array([0.04, 0.2, np.nan, 0.5, 0.95])
    stem = tmp_path / "reliability"
    assert_written(plots.plot_reliability("BDT", mean_prob, observed, stem), stem)
    diagonal, curve = captured[1].axes[0].get_lines()
    np.testing.assert_array_equal(diagonal.get_xdata(), diagonal.get_ydata())
    np.testing.assert_array_equal(curve.get_xdata(), mean_prob[[0, 1, 3, 4]])


# --------------------------------------------------------------------------- regression


@pytest.fixture(scope="module")
def regression_sample():
    """Gaussian smearing with a known, event-dependent width."""
    rng = np.random.default_rng(21)
    n = 4000
    target = rng.uniform(10.0, 100.0, n)
    width = 0.1 * target
    prediction = target + width * rng.normal(size=n)
    weights = rng.uniform(0.5, 1.5, n)
    return prediction, target, width, weights


def test_prediction_vs_true_histogram(
    tmp_path: Path, captured: list[Figure], regression_sample
) -> None:
    prediction, target, _, weights = regression_sample
    w = weights.copy()
    w[:200] *= -1.0
    stem = tmp_path / "pred_vs_true"
    assert_written(plots.plot_prediction_vs_true("BDT", prediction, target, w, stem), stem)
    ax = captured[0].axes[0]
    mesh = next(c for c in ax.collections if isinstance(c, QuadMesh))
    counts = mesh.get_array()
    assert np.ma.is_masked(counts) or counts.min() > 0  # no non-positive bin is coloured
    # unit weights: the coloured content is the number of events inside the drawn square
    plots.plot_prediction_vs_true("BDT", prediction, target, None, tmp_path / "u", formats=("png",))
    ax = captured[1].axes[0]
    lo, hi = ax.get_xlim()
    inside = (target >= lo) & (target <= hi) & (prediction >= lo) & (prediction <= hi)
    mesh = next(c for c in ax.collections if isinstance(c, QuadMesh))
    assert mesh.get_array().sum() == inside.sum()


def test_ratio_legend_reports_median(
    tmp_path: Path, captured: list[Figure], regression_sample
) -> None:
    prediction, target, _, _ = regression_sample
    ratios = {"raw": 0.9 * prediction / target, "BDT": prediction / target}
    stem = tmp_path / "ratio"
    assert_written(plots.plot_ratio(ratios, None, stem), stem)
    ax = captured[0].axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    for text, values in zip(legend, ratios.values()):
        assert f"median {np.median(values):.3f}" in text
    for patch in labelled_steps(ax).values():
        values, edges, _ = patch.get_data()
        assert np.sum(values * np.diff(edges)) == pytest.approx(1.0)
    # targets at zero give infinite ratios: ignored, not a crash
    bad = np.r_[ratios["BDT"][:-1], np.inf]
    paths = plots.plot_ratio({"BDT": bad}, -np.ones(bad.size), tmp_path / "neg", formats=("png",))
    assert_written(paths, tmp_path / "neg", formats=("png",))


def test_profiles_follow_an_injected_bias(tmp_path: Path, captured: list[Figure]) -> None:
    rng = np.random.default_rng(22)
    n = 4000
    X = np.c_[rng.uniform(0.0, 10.0, n), rng.normal(size=n)]
    d = 0.5 * X[:, 0] + rng.normal(scale=0.2, size=n)
    stem = tmp_path / "profiles"
    paths = plots.plot_profiles("BDT", X, ["E", "eta"], d, rng.uniform(0.5, 1.5, n), stem)
    assert_written(paths, stem)
    axes = np.array(captured[0].axes).reshape(2, 2)
    bias = axes[0, 0].lines[0]
    # the bias in a bin of E is 0.5 * E averaged over the bin: about 0.5 * bin centre
    np.testing.assert_allclose(bias.get_ydata(), 0.5 * bias.get_xdata(), atol=0.05)
    resolution = axes[1, 1].lines[0].get_ydata()
    # in bins of the unrelated feature, d spreads like 0.5 * U(0, 10) with the noise
    assert np.all(resolution > 1.0) and np.all(resolution < 2.5)
    assert [axes[1, j].get_xlabel() for j in range(2)] == ["E", "eta"]


def test_pulls_of_calibrated_widths_follow_unit_gaussian(
    tmp_path: Path, captured: list[Figure], regression_sample
) -> None:
    prediction, target, width, weights = regression_sample
    d = prediction - target
    stem = tmp_path / "pulls"
    assert_written(plots.plot_pulls("BDT", d, width, weights, stem), stem)
    ax = captured[0].axes[0]
    points = ax.containers[0].lines[0]
    x, y = points.get_xdata(), points.get_ydata()
    edges = np.linspace(-5.0, 5.0, 51)
    np.testing.assert_allclose(x, 0.5 * (edges[:-1] + edges[1:]))
    h, _ = np.histogram(d / width, bins=edges, weights=weights)
    np.testing.assert_allclose(y, h / weights.sum() / np.diff(edges))
    gauss = next(ln for ln in ax.get_lines() if ln.get_label() == "unit Gaussian")
    assert gauss.get_ydata().max() == pytest.approx(1.0 / np.sqrt(2.0 * np.pi))
    # overestimated widths give narrow pulls; a zero width is skipped
    broken = 2.0 * width
    broken[0] = 0.0
    plots.plot_pulls("BDT", d, broken, None, tmp_path / "wide", formats=("png",))
    label = captured[1].axes[0].containers[0].get_label()
    sigma = float(label.split("$ ")[-1])
    assert sigma == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_width_calibration_points_sit_at_true_over_predicted(
    tmp_path: Path, captured: list[Figure], regression_sample, scale: float
) -> None:
    prediction, target, width, weights = regression_sample
    stem = tmp_path / f"calibration_{scale:g}"
    formats = ("png", "pdf") if scale == 1.0 else ("png",)
    paths = plots.plot_width_calibration(
        "BDT", prediction - target, scale * width, weights, stem, formats=formats
    )
    assert_written(paths, stem, formats)
    ax = captured[0].axes[0]
    points = ax.containers[0].lines[0]
    x, y = points.get_xdata(), points.get_ydata()
    assert x.size == 10
    # predicted widths scaled by `scale` are `scale` times the observed spread
    np.testing.assert_allclose(y / x, 1.0 / scale, rtol=0.12)
    diagonal = ax.get_lines()[0]
    np.testing.assert_array_equal(diagonal.get_xdata(), diagonal.get_ydata())


# --------------------------------------------------------------------------- input checks


def test_inconsistent_inputs_raise_and_close_nothing_open(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="labels"):
        plots.plot_inputs(np.zeros((5, 1)), [0, 1, 2, 0, 1], None, None, tmp_path / "x")
    with pytest.raises(ValueError, match="length"):
        plots.plot_pulls("m", np.zeros(5), np.ones(4), None, tmp_path / "y")
    with pytest.raises(ValueError, match="unsupported"):
        plots.plot_loss("m", {"train": [1.0]}, tmp_path / "z", formats=("bmpx",))
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("seed", range(6))
def test_histogram_matches_numpy(seed: int) -> None:
    """The arithmetic binning of equally spaced edges equals numpy.histogram, also for values
    on the edges (the last bin includes its upper edge) and outside the range."""
    from mva.evaluation.plots._common import _histogram

    rng = np.random.default_rng(seed)
    x = rng.normal(size=5000) * rng.uniform(0.1, 10)
    if seed % 2:
        x = np.round(x, 1)
    lo, hi = np.quantile(x, [0.01, 0.99])
    edges = np.linspace(lo, hi, int(rng.integers(1, 60)))
    x = np.r_[x, edges, edges[-1] + 1.0, edges[0] - 1.0]
    w = rng.uniform(-1.0, 2.0, x.size)
    h, h2 = _histogram(x, w, edges)
    np.testing.assert_allclose(h, np.histogram(x, edges, weights=w)[0], atol=1e-9)
    np.testing.assert_allclose(h2, np.histogram(x, edges, weights=w * w)[0], atol=1e-9)
    # unequal edges take numpy's path, with the same answer
    uneven = np.r_[edges[0], np.sort(rng.uniform(edges[0], edges[-1], 7)), edges[-1]]
    np.testing.assert_allclose(_histogram(x, w, uneven)[0],
                               np.histogram(x, uneven, weights=w)[0], atol=1e-9)


@pytest.mark.parametrize("outside", [None, "near", "far"])
@pytest.mark.parametrize("layout", [None, "constrained"])
def test_save_lays_out_once_as_a_tight_savefig_would(tmp_path: Path, layout, outside) -> None:
    """One layout and one tight box for all formats, and the PNG written from the layout's
    own draw: the PNG has the pixels of ``savefig(bbox_inches="tight")``, the layout engine
    runs once and the figure is drawn twice for a PNG and a PDF (``savefig`` alone: four
    times).  A text beyond the figure's edge is in the draw of a figure without a layout
    engine (drawn with a margin on every side) as long as it is within the margin; beyond
    it, or beyond the edge of a figure with a layout engine, the PNG is saved by ``savefig``
    itself (one draw more) and the text still appears."""
    import matplotlib.pyplot as plt
    from PIL import Image

    def figure():
        fig, axes = plt.subplots(1, 2, figsize=(8, 4), layout=layout)
        for ax in axes:
            ax.semilogy([1, 2, 3], [1e-3, 1e-1, 1.0], label=r"$\varepsilon_S$")
            ax.set_xlabel("a long label for the bounding box")
            ax.legend()
        if outside:  # 0.16 in (near) or 4.8 in (far) beyond the 8 in figure's right edge
            fig.text(1.02 if outside == "near" else 1.6, 0.5, "beyond the right edge")
        return fig

    ref = figure()
    ref.savefig(tmp_path / "ref.png", bbox_inches="tight")
    with Image.open(tmp_path / "ref.png") as im:
        expected = np.asarray(im.convert("RGB"), dtype=float)
    fig = figure()
    calls, draws = [], []
    engine = fig.get_layout_engine()
    if engine is not None:
        run = engine.execute
        engine.execute = lambda f: (calls.append(1), run(f))[1]
    draw = fig.draw
    fig.draw = lambda renderer: (draws.append(1), draw(renderer))[1]
    try:
        paths = plots.save(fig, tmp_path / "fig", formats=("png", "pdf"))
    finally:
        plt.close(fig)
        plt.close(ref)
    assert [p.name for p in paths] == ["fig.png", "fig.pdf"]
    with Image.open(paths[0]) as im:
        got = np.asarray(im.convert("RGB"), dtype=float)
    assert abs(got.shape[1] - expected.shape[1]) <= 2
    assert abs(got.shape[0] - expected.shape[0]) <= 2
    if outside:  # savefig's own tight box: wider than the 8 in figure, the same pixels
        assert got.shape[1] > 8 * fig.dpi + 50
    # the same picture, on the common part: savefig renders at the tight box's sub-pixel
    # offset, the crop at whole pixels, so compare 4 x 4 pixel means, offsets up to a pixel
    def blocks(a, k=4):
        h, w = a.shape[0] // k * k, a.shape[1] // k * k
        return a[:h, :w].reshape(h // k, k, w // k, k, 3).mean(axis=(1, 3))

    h, w = min(got.shape[0], expected.shape[0]) - 2, min(got.shape[1], expected.shape[1]) - 2
    ref_blocks = blocks(expected[1:1 + h, 1:1 + w])
    best = min(np.abs(blocks(got[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]) - ref_blocks).mean()
               for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    blank = np.abs(255.0 - ref_blocks).mean()  # what a white image would differ by
    assert best < min(1.0, blank / 4)  # of 255, mean over the blocks and channels
    assert calls == ([1] if layout else [])
    in_draw = outside is None or (outside == "near" and layout is None)
    assert len(draws) == (2 if in_draw else 3)
