"""Statistical uncertainties of the figures of merit (:mod:`mva.evaluation.uncertainty`).

Two kinds of checks:

- values: the weighted DeLong AUC against scikit-learn, its variance and the paired covariance
  against DeLong's definition by all pairs (an O(n^2) implementation written here), every other
  figure's value against the function that computes it for metrics.json;
- coverage: over many independent test samples (toys drawn from known distributions, fixed
  seeds) the spread (standard deviation) of a figure must match the mean uncertainty that is
  reported for one sample, within 30 % (with 200 toys the spread itself is known to about 5 %).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mva.evaluation import classification as cm
from mva.evaluation import multiclass as mc
from mva.evaluation import regression as rm
from mva.evaluation import uncertainty as unc

TOYS = 200
EFF_BKG = (0.01, 0.1, 0.3)


def spread_over_error(values: list[float], errors: list[float]) -> float:
    """Observed standard deviation across toys / mean reported uncertainty."""
    return float(np.std(values, ddof=1) / np.mean(errors))


def assert_covers(values: list[float], errors: list[float], what: str) -> None:
    ratio = spread_over_error(values, errors)
    assert 0.7 < ratio < 1.3, f"{what}: spread / reported uncertainty = {ratio:.3f}"


def binormal(rng: np.random.Generator, n: int, shift: float = 1.2, weighted: bool = False,
             negative: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``n`` signal events ~ N(shift, 1) and ``n`` background ~ N(0, 1); weights that depend on
    the score (as reweighting does) and optionally a fraction of negative ones."""
    x = np.r_[rng.normal(shift, 1.0, n), rng.normal(0.0, 1.0, n)]
    y = np.r_[np.ones(n, dtype=np.int8), np.zeros(n, dtype=np.int8)]
    if not weighted:
        return x, y, None
    w = rng.uniform(0.3, 1.7, 2 * n) * np.exp(0.3 * x)
    if negative:
        w[rng.uniform(size=2 * n) < negative] *= -0.5
    return x, y, w


# --------------------------------------------------------------------------- values


def delong_by_pairs(scores: list[np.ndarray], labels: np.ndarray, weights: np.ndarray | None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and their covariance matrix from DeLong's placement values, built from all
    signal-background pairs (unit weights: DeLong et al. 1988, eqs. for V10, V01, S10, S01;
    with weights each pair counts w_i v_j and each event's placement enters with its weight)."""
    pos = labels == 1
    w = np.ones(labels.size) if weights is None else weights
    ws, wb = w[pos], w[~pos]
    m, n = int(pos.sum()), int((~pos).sum())
    aucs, v10s, v01s = [], [], []
    for s in scores:
        X, Y = s[pos][:, None], s[~pos][None, :]
        psi = (X > Y) + 0.5 * (X == Y)
        v10 = psi @ wb / wb.sum()           # per signal event
        v01 = ws @ psi / ws.sum()           # per background event
        a = float(ws @ v10 / ws.sum())
        aucs.append(a)
        v10s.append(ws * (v10 - a) / ws.sum())
        v01s.append(wb * (v01 - a) / wb.sum())
    v10s, v01s = np.array(v10s), np.array(v01s)
    cov = (m / (m - 1)) * (v10s @ v10s.T) + (n / (n - 1)) * (v01s @ v01s.T)
    return np.array(aucs), cov


def test_unweighted_delong_is_delongs_variance_from_all_pairs() -> None:
    rng = np.random.default_rng(11)
    x, y, _ = binormal(rng, 150)
    x = np.round(x, 1)            # many ties: they count one half
    other = np.round(x + rng.normal(0, 0.8, x.size), 1)
    aucs, cov = delong_by_pairs([x, other], y, None)
    # the textbook form for unit weights: S10/m + S01/n with sample covariances (ddof 1)
    pos = y == 1
    psi = (x[pos][:, None] > x[~pos][None, :]) + 0.5 * (x[pos][:, None] == x[~pos][None, :])
    textbook = np.var(psi.mean(1), ddof=1) / pos.sum() + np.var(psi.mean(0), ddof=1) / (~pos).sum()
    assert cov[0, 0] == pytest.approx(textbook, rel=1e-12)
    a, b = unc.auc(x, y), unc.auc(other, y)
    assert a.value == pytest.approx(aucs[0], abs=1e-12)
    assert a.err**2 == pytest.approx(cov[0, 0], rel=1e-9)
    assert b.err**2 == pytest.approx(cov[1, 1], rel=1e-9)
    # the paired difference: var_a + var_b - 2 cov_ab
    assert (a - b).err**2 == pytest.approx(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1], rel=1e-9)
    assert (a - b).err < np.hypot(a.err, b.err)   # correlated methods: pairing helps


def test_weighted_delong_matches_sklearn_and_all_pairs() -> None:
    rng = np.random.default_rng(12)
    for negative in (0.0, 0.1):
        x, y, w = binormal(rng, 200, weighted=True, negative=negative)
        x = np.round(x, 1)
        fig = unc.auc(x, y, w)
        if not negative:  # scikit-learn refuses negative weights (the ROC goes back)
            assert fig.value == pytest.approx(roc_auc_score(y, x, sample_weight=w), abs=1e-12)
        assert fig.value == pytest.approx(cm.roc_auc(x, y, w), abs=1e-12)
        aucs, cov = delong_by_pairs([x], y, w)
        assert fig.err == pytest.approx(np.sqrt(cov[0, 0]), rel=1e-9)


def test_every_figure_value_is_the_metrics_json_value() -> None:
    rng = np.random.default_rng(13)
    x, y, w = binormal(rng, 400, weighted=True)
    eff, err = unc.eff_sig_at_bkg(x, y, w, EFF_BKG)
    assert eff == pytest.approx(list(cm.eff_sig_at_bkg(x, y, w, EFF_BKG).values()), abs=1e-12)
    assert np.all(err > 0)
    assert unc.separation(x, y, w).value == pytest.approx(cm.separation(x, y, w), abs=1e-12)
    wp = cm.significance_scan(x, y, w, 1000, 10000)
    z = unc.significance(x, y, w, wp["cut"], 1000, 10000)
    assert z.value == pytest.approx(wp["significance"], rel=1e-12)

    probs, labels, cw = gaussian_classes(rng, 300, weighted=True)
    assert unc.accuracy(probs, labels, cw).value == pytest.approx(
        mc.accuracy(probs, labels, cw), abs=1e-12)
    assert unc.log_loss(probs, labels, cw).value == pytest.approx(
        mc.log_loss(probs, labels, cw), abs=1e-12)
    ovr = unc.auc_ovr(probs, labels, cw)
    values = mc.roc_auc_ovr(probs, labels, cw, ["a", "b", "c"])
    assert [a.value for a in ovr] == pytest.approx(list(values.values()), abs=1e-12)
    assert unc.auc_macro(ovr).value == pytest.approx(
        mc.roc_auc_macro(probs, labels, cw, ["a", "b", "c"]), abs=1e-12)

    pred, target, rw = residual_toy(rng, 1000, "tail", weighted=True)
    width = np.full(pred.size, 0.4)
    expected = rm.regression_metrics(pred, target, rw, width)
    figures = unc.regression_figures(pred, target, rw, width)
    assert set(figures) == set(expected)
    for key, fig in figures.items():
        assert fig.value == pytest.approx(expected[key], rel=1e-9, abs=1e-12), key
        assert fig.err > 0, key


def test_paired_difference_needs_the_same_events() -> None:
    rng = np.random.default_rng(14)
    x, y, _ = binormal(rng, 50)
    with pytest.raises(ValueError, match="same events"):
        unc.auc(x, y) - unc.auc(x[:-2], y[:-2])


def test_error_shrinks_as_one_over_root_n() -> None:
    rng = np.random.default_rng(15)
    small = np.mean([unc.auc(*binormal(rng, 500)).err for _ in range(20)])
    large = np.mean([unc.auc(*binormal(rng, 8000)).err for _ in range(20)])
    assert small / large == pytest.approx(4.0, rel=0.1)


# --------------------------------------------------------------------------- coverage: binary


@pytest.mark.parametrize("weighted", [False, True])
def test_auc_and_eff_sig_at_bkg_coverage(weighted: bool) -> None:
    rng = np.random.default_rng(21 + weighted)
    rec: dict[str, tuple[list[float], list[float]]] = {}

    def add(key: str, value: float, err: float) -> None:
        rec.setdefault(key, ([], []))
        rec[key][0].append(value)
        rec[key][1].append(err)

    for _ in range(TOYS):
        x, y, w = binormal(rng, 2000, weighted=weighted)
        errors = unc.binary_errors(x, y, w, EFF_BKG)
        add("roc_auc", cm.roc_auc(x, y, w), errors["roc_auc_err"])
        for k, v in cm.eff_sig_at_bkg(x, y, w, EFF_BKG).items():
            add(f"eff_sig_at_bkg {k}", v, errors["eff_sig_at_bkg_err"][k])
        add("separation", cm.separation(x, y, w), errors["separation_err"])
    for key, (values, errors) in rec.items():
        assert_covers(values, errors, f"{key} (weighted={weighted})")
    if not weighted:  # the binormal AUC is Phi(shift / sqrt 2): no bias beyond the error
        from scipy.stats import norm

        values, errors = rec["roc_auc"]
        assert abs(np.mean(values) - norm.cdf(1.2 / np.sqrt(2))) < 3 * np.mean(errors) / np.sqrt(
            TOYS)


def test_auc_coverage_with_negative_weights() -> None:
    rng = np.random.default_rng(23)
    values, errors = [], []
    for _ in range(TOYS):
        fig = unc.auc(*binormal(rng, 1500, weighted=True, negative=0.1))
        values.append(fig.value)
        errors.append(fig.err)
    assert_covers(values, errors, "AUC with 10 % negative weights")


@pytest.mark.parametrize("weighted", [False, True])
def test_paired_auc_difference_coverage(weighted: bool) -> None:
    """Two methods on the same events (scores sharing most of their information): the
    spread of their AUC difference is far below the unpaired combination and matches the
    paired uncertainty."""
    rng = np.random.default_rng(31 + weighted)
    values, errors, unpaired = [], [], []
    for _ in range(TOYS):
        x, y, w = binormal(rng, 1500, weighted=weighted)
        a = unc.auc(x + rng.normal(0, 0.3, x.size), y, w)
        b = unc.auc(x + rng.normal(0, 0.6, x.size), y, w)
        d = a - b
        values.append(d.value)
        errors.append(d.err)
        unpaired.append(np.hypot(a.err, b.err))
    assert_covers(values, errors, f"paired AUC difference (weighted={weighted})")
    assert np.mean(errors) < 0.6 * np.mean(unpaired)
    assert np.mean(values) > 5 * np.mean(errors) / np.sqrt(TOYS)  # the better one is better


def test_significance_coverage() -> None:
    rng = np.random.default_rng(41)
    values, errors = [], []
    for _ in range(TOYS):
        x, y, w = binormal(rng, 3000, shift=1.5, weighted=True)
        wp = cm.significance_scan(x, y, w, 1000, 10000)
        z = unc.significance(x, y, w, wp["cut"], 1000, 10000)
        values.append(wp["significance"])
        errors.append(z.err)
    assert_covers(values, errors, "significance at the optimal cut")


# --------------------------------------------------------------------------- multiclass

MEANS = np.array([[0.0, 0.0], [1.5, 0.0], [0.0, 1.5]])


def gaussian_classes(rng: np.random.Generator, n: int, weighted: bool = False
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Three Gaussian classes, ``n`` events each, scored with their true posteriors."""
    y = np.repeat(np.arange(3), n)
    X = MEANS[y] + rng.normal(size=(3 * n, 2))
    logits = -0.5 * ((X[:, None, :] - MEANS[None]) ** 2).sum(-1)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    w = rng.uniform(0.2, 1.8, 3 * n) * (1 + y) if weighted else None
    return p, y, w


@pytest.mark.parametrize("weighted", [False, True])
def test_multiclass_coverage(weighted: bool) -> None:
    rng = np.random.default_rng(51 + weighted)
    classes = ["a", "b", "c"]
    rec: dict[str, tuple[list[float], list[float]]] = {}
    for _ in range(TOYS):
        p, y, w = gaussian_classes(rng, 500, weighted)
        m = mc.multiclass_metrics(p, y, w, classes)
        e = unc.multiclass_errors(p, y, w, classes)
        for key, value, err in (
                ("accuracy", m["accuracy"], e["accuracy_err"]),
                ("log_loss", m["log_loss"], e["log_loss_err"]),
                ("roc_auc_macro", m["roc_auc_macro"], e["roc_auc_macro_err"]),
                ("roc_auc_ovr b", m["roc_auc_ovr"]["b"], e["roc_auc_ovr_err"]["b"]),
                ("eff_at_bkg c 0.1", m["eff_at_bkg"]["c"]["0.1"],
                 e["eff_at_bkg_err"]["c"]["0.1"])):
            rec.setdefault(key, ([], []))
            rec[key][0].append(value)
            rec[key][1].append(err)
    for key, (values, errors) in rec.items():
        assert_covers(values, errors, f"{key} (weighted={weighted})")


def test_multiclass_accuracy_difference_is_paired() -> None:
    rng = np.random.default_rng(55)
    values, errors = [], []
    for _ in range(TOYS):
        p, y, w = gaussian_classes(rng, 600, weighted=True)
        noisy = p * np.exp(rng.normal(0, 0.4, p.shape))
        noisy /= noisy.sum(1, keepdims=True)
        d = unc.accuracy(p, y, w) - unc.accuracy(noisy, y, w)
        values.append(d.value)
        errors.append(d.err)
    assert_covers(values, errors, "paired accuracy difference")


# --------------------------------------------------------------------------- regression


def residual_toy(rng: np.random.Generator, n: int, shape: str, weighted: bool
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Predictions = target + residuals: Gaussian, or a Gaussian core with a wide low tail
    (as the energy response of converted photons)."""
    target = rng.uniform(1.0, 2.0, n)
    if shape == "gauss":
        d = rng.normal(0.1, 0.5, n)
    else:
        core = rng.uniform(size=n) < 0.8
        d = np.where(core, rng.normal(0.0, 0.3, n), rng.normal(-0.5, 1.0, n))
    w = rng.exponential(1.0, n) if weighted else None
    return target + d, target, w


@pytest.mark.parametrize("shape", ["gauss", "tail"])
@pytest.mark.parametrize("weighted", [False, True])
def test_regression_coverage(shape: str, weighted: bool) -> None:
    rng = np.random.default_rng(61 + 2 * weighted + (shape == "tail"))
    rec: dict[str, tuple[list[float], list[float]]] = {}
    for _ in range(TOYS):
        pred, target, w = residual_toy(rng, 2000, shape, weighted)
        values = rm.regression_metrics(pred, target, w)
        for key, err in unc.regression_errors(pred, target, w).items():
            key = key.removesuffix("_err")
            rec.setdefault(key, ([], []))
            rec[key][0].append(values[key])
            rec[key][1].append(err)
    assert {"bias", "rms", "sigma_eff", "rms_trunc", "mae", "median"} <= set(rec)
    for key, (vals, errs) in rec.items():
        assert_covers(vals, errs, f"{key} ({shape}, weighted={weighted})")


def test_paired_sigma_eff_difference_coverage() -> None:
    rng = np.random.default_rng(71)
    values, errors = [], []
    for _ in range(TOYS):
        pred, target, w = residual_toy(rng, 2000, "gauss", weighted=True)
        worse = pred + rng.normal(0.0, 0.3, pred.size)
        d = unc.sigma_eff(pred - target, w) - unc.sigma_eff(worse - target, w)
        values.append(d.value)
        errors.append(d.err)
    assert_covers(values, errors, "paired sigma_eff difference")


# --------------------------------------------------------------------------- comparison


def test_compare_ranks_methods_and_applies_the_threshold() -> None:
    rng = np.random.default_rng(81)
    x, y, w = binormal(rng, 3000, weighted=True)
    figures = {"weak": unc.auc(x + rng.normal(0, 1.5, x.size), y, w),
               "good": unc.auc(x + rng.normal(0, 0.2, x.size), y, w),
               "same": unc.auc(x + rng.normal(0, 0.2, x.size), y, w)}
    c = unc.compare(figures)
    assert c["threshold"] == unc.SIGNIFICANT == 2.0
    ranked = sorted(figures, key=lambda n: -figures[n].value)
    assert [c["best"], c["next"]] == ranked[:2]
    assert len(c["pairs"]) == 3
    for pair in c["pairs"]:
        d = figures[pair["a"]] - figures[pair["b"]]
        assert pair["diff"] == pytest.approx(d.value) and pair["diff_err"] == pytest.approx(d.err)
        assert pair["z"] == pytest.approx(d.value / d.err) and pair["z"] >= 0
    weak = next(p for p in c["pairs"] if p["b"] == "weak")
    assert weak["z"] > 5                                     # clearly worse
    assert c["significant"] == (c["z"] > 2.0)
    # with smaller-is-better figures the sign turns: z counts in the better one's favour
    c = unc.compare({"a": unc.std(rng.normal(0, 1.0, 500)),
                     "b": unc.std(rng.normal(0, 2.0, 500))}, larger_is_better=False)
    assert c["best"] == "a" and c["diff"] < 0 and c["z"] > 5 and c["significant"]
    assert unc.compare({"only": figures["good"]}) is None


def test_the_ranking_is_made_once_per_sorted_once_block(monkeypatch) -> None:
    """The uncertainties of one method's figures (AUC, effS at effB, the ROC band) rank its
    events once inside a ``sorted_once`` block, with the same values as without one."""
    rng = np.random.default_rng(8)
    s, y, w = rng.normal(size=4000), rng.integers(0, 2, 4000), rng.uniform(0.5, 1.5, 4000)
    plain = (unc.binary_errors(s, y, w), unc.auc(s, y, w).err,
             unc.eff_sig_at_bkg(s, y, w, [0.05, 0.2])[1].tolist())
    made, influences = [], []
    real, real_auc = unc._Ranked, unc._Ranked.auc
    monkeypatch.setattr(unc, "_Ranked", lambda *a: made.append(a) or real(*a))
    monkeypatch.setattr(real, "auc", lambda self, st: influences.append(1) or real_auc(self, st))
    with cm.sorted_once():
        cached = (unc.binary_errors(s, y, w), unc.auc(s, y, w).err,
                  unc.eff_sig_at_bkg(s, y, w, [0.05, 0.2])[1].tolist())
        assert len(made) == 1
        # the AUC's influences too: binary_errors' are the ones auc() returns
        assert len(influences) == 1 and unc.auc(s, y, w) is unc.auc(s, y, w)
        assert unc.auc(s, y, w, strata=np.zeros(s.size, int)).err != cached[1]  # not cached
        unc.auc(s[::-1].copy(), y[::-1].copy(), w)  # other arrays: ranked on their own
        assert len(made) == 2
    assert cached == plain
    unc.auc(s, y, w)  # outside the block: every call ranks
    assert len(made) == 3


def test_roc_sums_and_ranking_share_one_sort_per_block(monkeypatch) -> None:
    """Inside a ``sorted_once`` block the ROC sums (AUC, effS at effB, cuts) and the ranked
    events of the uncertainties sort a score array once, with the values of two sorts."""
    rng = np.random.default_rng(9)
    s, y, w = rng.normal(size=5000), rng.integers(0, 2, 5000), rng.uniform(0.5, 1.5, 5000)

    def figures() -> tuple:
        return (cm.roc_auc(s, y, w), cm.eff_sig_at_bkg(s, y, w, [0.1]),
                unc.binary_errors(s, y, w), unc.auc(s, y, w).err)

    plain = figures()
    sorts = []
    real = np.argsort

    def counting(a, *args, **kwargs):
        if np.size(a) == s.size:
            sorts.append(1)
        return real(a, *args, **kwargs)

    monkeypatch.setattr(np, "argsort", counting)
    figures()
    assert len(sorts) >= 2  # without the block: the sums and the ranking sort on their own
    sorts.clear()
    with cm.sorted_once():
        assert figures() == plain
    assert len(sorts) == 1
