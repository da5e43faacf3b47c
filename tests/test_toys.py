"""Tests of the toy generators: reproducibility and the physics they claim to contain."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.discriminant_analysis import (
    LinearDiscriminantAnalysis,
    QuadraticDiscriminantAnalysis,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import PolynomialFeatures

from mva.toys import (
    CALO_BARREL_ETA,
    CALO_ENDCAP_ETA,
    CALO_RESOLUTION,
    CRACK_RESOLUTION_FACTOR,
    MULTICLASS_CLASSES,
    MULTICLASS_COVARIANCES,
    MULTICLASS_MEANS,
    PILEUP_GEV_PER_RHO,
    R9_TAIL_THRESHOLD,
    REGRESSION_NOISE,
    calorimeter_toy,
    classification_toy,
    multiclass_bayes_accuracy,
    multiclass_log_densities,
    multiclass_toy,
    regression_toy,
)

CALO_KEYS = {
    "E_raw",
    "E_true",
    "eta",
    "phi",
    "r9",
    "sigma_ieie",
    "rho",
    "nVtx",
    "true_response_mean",
    "true_resolution",
}


@pytest.fixture(scope="module")
def calo() -> dict[str, np.ndarray]:
    return calorimeter_toy(n=200000, seed=11)


def _flatten(toy) -> list[np.ndarray]:
    dicts = toy if isinstance(toy, tuple) else (toy,)
    return [d[k] for d in dicts for k in sorted(d)]


# --------------------------------------------------------------------------------------------
# common properties
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make", [classification_toy, regression_toy, calorimeter_toy], ids=["cls", "reg", "calo"]
)
def test_reproducible_with_seed_and_different_otherwise(make):
    a, b, c = make(seed=3), make(seed=3), make(seed=4)
    for x, y in zip(_flatten(a), _flatten(b), strict=True):
        np.testing.assert_array_equal(x, y)
    for x, z in zip(_flatten(a), _flatten(c), strict=True):
        if np.unique(x).size > 1:  # the signal weights are 1 whatever the seed
            assert not np.array_equal(x, z)


def test_shapes_keys_and_dtypes():
    sig, bkg = classification_toy(n_signal=100, n_background=70)
    assert set(sig) == set(bkg) == {"var1", "var2", "var3", "var4", "weight"}
    assert all(v.shape == (100,) and v.dtype == np.float64 for v in sig.values())
    assert all(v.shape == (70,) and v.dtype == np.float64 for v in bkg.values())
    reg = regression_toy(n=123)
    assert set(reg) == {"var1", "var2", "fvalue"}
    assert all(v.shape == (123,) and v.dtype == np.float64 for v in reg.values())
    cal = calorimeter_toy(n=321)
    assert set(cal) == CALO_KEYS
    assert all(v.shape == (321,) and v.dtype == np.float64 for v in cal.values())


# --------------------------------------------------------------------------------------------
# classification
# --------------------------------------------------------------------------------------------


def _xy(sig, bkg):
    cols = ["var1", "var2", "var3", "var4"]
    x = np.vstack([np.column_stack([d[c] for c in cols]) for d in (sig, bkg)])
    y = np.r_[np.ones(len(sig["var1"])), np.zeros(len(bkg["var1"]))]
    w = np.r_[sig["weight"], bkg["weight"]]
    return x, y, w


def test_classification_toy_is_separable_but_overlapping():
    x_train, y_train, _ = _xy(*classification_toy(seed=1))
    x_test, y_test, w_test = _xy(*classification_toy(seed=2))
    clf = LogisticRegression().fit(x_train, y_train)
    score = clf.predict_proba(x_test)[:, 1]
    assert 0.8 < roc_auc_score(y_test, score) < 0.98
    assert 0.8 < roc_auc_score(y_test, score, sample_weight=w_test) < 0.98


def test_classification_toy_weights_and_correlations():
    sig, bkg = classification_toy(seed=5)
    assert np.all(sig["weight"] == 1.0)
    assert bkg["weight"].min() > 0.5 and bkg["weight"].max() < 1.5
    assert bkg["weight"].mean() == pytest.approx(1.0, abs=0.02)
    corr_s = np.corrcoef(np.vstack([sig[f"var{i}"] for i in range(1, 5)]))
    corr_b = np.corrcoef(np.vstack([bkg[f"var{i}"] for i in range(1, 5)]))
    off = ~np.eye(4, dtype=bool)
    assert np.all(corr_s[off] > 0.1) and np.all(corr_b[off] > 0.05)  # correlated
    assert np.all(np.abs(corr_s[off] - corr_b[off]) > 0.1)  # differently in the two classes


# --------------------------------------------------------------------------------------------
# regression
# --------------------------------------------------------------------------------------------


def test_regression_toy_is_parabola_plus_known_noise():
    reg = regression_toy(n=20000, seed=6)
    x = np.column_stack([reg["var1"], reg["var2"]])
    assert x.min() > 0.0 and x.max() < 5.0
    # a full quadratic in (var1, var2) leaves exactly the noise; a plane does not
    quad = PolynomialFeatures(2).fit_transform(x)
    resid_quad = reg["fvalue"] - LinearRegression().fit(quad, reg["fvalue"]).predict(quad)
    resid_lin = reg["fvalue"] - LinearRegression().fit(x, reg["fvalue"]).predict(x)
    assert resid_quad.std() == pytest.approx(REGRESSION_NOISE, rel=0.03)
    assert stats.normaltest(resid_quad).pvalue > 1e-3
    assert resid_lin.std() > 2 * REGRESSION_NOISE
    # no cubic terms: a cubic fit does not improve on the quadratic one
    cubic = PolynomialFeatures(3).fit_transform(x)
    resid_cubic = reg["fvalue"] - LinearRegression().fit(cubic, reg["fvalue"]).predict(cubic)
    assert resid_cubic.std() == pytest.approx(resid_quad.std(), rel=2e-3)


# --------------------------------------------------------------------------------------------
# calorimeter
# --------------------------------------------------------------------------------------------


def _response(c):
    return c["E_raw"] / c["E_true"]


def test_calorimeter_ranges_and_pileup(calo):
    assert calo["E_true"].min() > 20.0 and calo["E_true"].max() < 300.0
    assert np.abs(calo["eta"]).max() < 2.5
    assert np.abs(calo["phi"]).max() <= np.pi
    assert calo["r9"].min() > 0.3 and calo["r9"].max() < 1.0
    assert np.all(calo["E_raw"] > 0) and np.all(calo["rho"] >= 0)
    nvtx = calo["nVtx"]
    assert np.all(nvtx >= 1) and np.all(nvtx == np.round(nvtx))
    # Poisson (shifted by one): variance equals mean - 1
    assert nvtx.var() == pytest.approx(nvtx.mean() - 1.0, rel=0.03)
    assert np.corrcoef(nvtx, calo["rho"])[0, 1] > 0.7


def test_calorimeter_spectrum_falls_as_stated(calo):
    # dN/dE ~ E^-1.5 on (20, 300): compare the empirical CDF to the closed form
    e = calo["E_true"]
    p = -0.5
    cdf = lambda x: (x**p - 20.0**p) / (300.0**p - 20.0**p)  # noqa: E731
    assert stats.kstest(e, cdf).pvalue > 1e-3


def test_calorimeter_sigma_ieie_follows_eta(calo):
    abs_eta = np.abs(calo["eta"])
    barrel = np.median(calo["sigma_ieie"][abs_eta < CALO_BARREL_ETA])
    endcap = np.median(calo["sigma_ieie"][abs_eta > CALO_ENDCAP_ETA])
    assert 0.008 < barrel < 0.012
    assert 0.024 < endcap < 0.035


def test_calorimeter_response_worse_in_crack(calo):
    abs_eta = np.abs(calo["eta"])
    resp = _response(calo)
    regions = {
        "barrel": (abs_eta > 1.0) & (abs_eta < CALO_BARREL_ETA),
        "crack": (abs_eta > CALO_BARREL_ETA) & (abs_eta < CALO_ENDCAP_ETA),
        "endcap": (abs_eta > CALO_ENDCAP_ETA) & (abs_eta < 2.0),
    }
    median = {k: np.median(resp[m]) for k, m in regions.items()}
    iqr = {k: stats.iqr(resp[m]) for k, m in regions.items()}
    assert median["crack"] < median["barrel"] - 0.03
    assert median["crack"] < median["endcap"] - 0.03
    assert iqr["crack"] > 1.3 * iqr["barrel"] and iqr["crack"] > 1.3 * iqr["endcap"]


def test_calorimeter_low_r9_has_low_side_tail(calo):
    # above 50 GeV the pileup offset (~rho / E, skewed by the falling spectrum) is negligible
    central = (np.abs(calo["eta"]) < 1.0) & (calo["E_true"] > 50.0)
    resp = _response(calo)
    low = resp[central & (calo["r9"] < 0.7)]
    high = resp[central & (calo["r9"] > R9_TAIL_THRESHOLD)]
    assert stats.skew(low) < -1.0
    assert abs(stats.skew(high)) < 0.3 < abs(stats.skew(low))
    # the low side reaches much further below the median than the high side does above it
    spread_low = np.median(low) - np.quantile(low, 0.05)
    assert spread_low > 2.0 * (np.quantile(low, 0.95) - np.median(low))
    assert spread_low > 2.0 * (np.median(high) - np.quantile(high, 0.05))


def test_calorimeter_response_grows_with_rho(calo):
    # unconverted central photons: response = eta term + k * rho / E_true + noise
    sel = (np.abs(calo["eta"]) < 1.0) & (calo["r9"] > R9_TAIL_THRESHOLD)
    resp = _response(calo)[sel]
    features = np.column_stack([calo["rho"][sel] / calo["E_true"][sel], calo["eta"][sel] ** 2])
    fit = LinearRegression().fit(features, resp)
    assert fit.coef_[0] == pytest.approx(PILEUP_GEV_PER_RHO, rel=0.1)
    # and visibly so at low energy
    low_e = calo["E_true"][sel] < 30.0
    rho = calo["rho"][sel][low_e]
    r = resp[low_e]
    high = np.median(r[rho > np.quantile(rho, 0.75)])
    low = np.median(r[rho < np.quantile(rho, 0.25)])
    assert high > low + 0.01


def _expected_resolution(e: np.ndarray, region: str) -> np.ndarray:
    a, b, c = CALO_RESOLUTION[region]
    return np.sqrt(a**2 / e + b**2 / e**2 + c**2)


def test_calorimeter_resolution_follows_formula_in_energy_bins(calo):
    sel = (np.abs(calo["eta"]) < 1.0) & (calo["r9"] > R9_TAIL_THRESHOLD)
    e = calo["E_true"][sel]
    z = _response(calo)[sel] / calo["true_response_mean"][sel] - 1.0
    edges = np.array([20.0, 25.0, 30.0, 40.0, 55.0, 80.0, 120.0, 180.0, 300.0])
    measured, expected, counts = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (e >= lo) & (e < hi)
        measured.append(z[m].std())
        expected.append(np.sqrt(np.mean(_expected_resolution(e[m], "barrel") ** 2)))
        counts.append(m.sum())
    measured, expected = np.array(measured), np.array(expected)
    # statistical precision of a std from N Gaussian events is 1/sqrt(2N)
    tolerance = 4.0 / np.sqrt(2.0 * np.array(counts))
    np.testing.assert_array_less(np.abs(measured / expected - 1.0), tolerance)
    # the stochastic term dominates the trend: resolution roughly halves from 25 to 150 GeV
    assert measured[0] > 1.8 * measured[-2]


def test_calorimeter_true_resolution_column(calo):
    e, abs_eta = calo["E_true"], np.abs(calo["eta"])
    barrel = abs_eta < CALO_BARREL_ETA
    crack = (abs_eta >= CALO_BARREL_ETA) & (abs_eta < CALO_ENDCAP_ETA)
    endcap = abs_eta >= CALO_ENDCAP_ETA
    res = calo["true_resolution"]
    np.testing.assert_allclose(res[barrel], _expected_resolution(e[barrel], "barrel"), rtol=1e-12)
    np.testing.assert_allclose(res[endcap], _expected_resolution(e[endcap], "endcap"), rtol=1e-12)
    np.testing.assert_allclose(
        res[crack], CRACK_RESOLUTION_FACTOR * _expected_resolution(e[crack], "endcap"), rtol=1e-12
    )


def test_calorimeter_true_response_mean_is_the_mean(calo):
    # the oracle mean includes the low-side tail: compare with the empirical mean in r9 bins
    resp = _response(calo)
    ratio = resp / calo["true_response_mean"]
    for lo, hi in [(0.3, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 1.0)]:
        m = (calo["r9"] >= lo) & (calo["r9"] < hi)
        err = ratio[m].std() / np.sqrt(m.sum())
        assert abs(ratio[m].mean() - 1.0) < 4 * err
    # and the tail makes it differ from the core mode for low r9
    low = calo["r9"] < 0.5
    assert np.median(resp[low] / calo["true_response_mean"][low]) > 1.01


# --------------------------------------------------------------------------------------------
# multiclass
# --------------------------------------------------------------------------------------------


def _mc_xy(toy: dict[str, dict[str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    x = np.vstack([np.column_stack([d[f"x{i}"] for i in range(1, 5)]) for d in toy.values()])
    y = np.concatenate([np.full(len(d["x1"]), k) for k, d in enumerate(toy.values())])
    return x, y


def _bayes_by_grid_integration(h: float = 0.3, half_width: float = 6.5) -> float:
    """Equal-prior Bayes accuracy ``(1/3) * integral of max_k p_k(x) dx`` by the midpoint rule."""
    g = np.arange(-half_width + h / 2, half_width, h)
    rest = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    total = 0.0
    for a in g:
        x = np.column_stack([np.full(len(rest), a), rest])
        total += np.exp(multiclass_log_densities(x).max(axis=1)).sum()
    return total * h**4 / len(MULTICLASS_CLASSES)


@pytest.fixture(scope="module")
def bayes_grid() -> float:
    return _bayes_by_grid_integration()


def test_multiclass_toy_shapes_keys_and_weights():
    toy = multiclass_toy(n_per_class=321, seed=2)
    assert tuple(toy) == MULTICLASS_CLASSES == ("signal", "ttbar", "qcd")
    for d in toy.values():
        assert set(d) == {"x1", "x2", "x3", "x4", "weight"}
        assert all(v.shape == (321,) and v.dtype == np.float64 for v in d.values())
    assert np.all(toy["signal"]["weight"] == 1.0) and np.all(toy["qcd"]["weight"] == 1.0)
    w = toy["ttbar"]["weight"]
    assert w.min() > 0.5 and w.max() < 1.5 and np.unique(w).size == 321
    assert len(multiclass_toy()["qcd"]["x1"]) == 4000


def test_multiclass_toy_reproducible_with_seed_and_different_otherwise():
    a, b, c = multiclass_toy(500, seed=3), multiclass_toy(500, seed=3), multiclass_toy(500, seed=4)
    for name in MULTICLASS_CLASSES:
        for key in a[name]:
            np.testing.assert_array_equal(a[name][key], b[name][key])
            if np.unique(a[name][key]).size > 1:  # unit weights are 1 whatever the seed
                assert not np.array_equal(a[name][key], c[name][key])


def test_multiclass_toy_follows_its_documented_densities():
    toy = multiclass_toy(n_per_class=50000, seed=8)
    for name in MULTICLASS_CLASSES:
        x = np.column_stack([toy[name][f"x{i}"] for i in range(1, 5)])
        np.testing.assert_allclose(x.mean(axis=0), MULTICLASS_MEANS[name], atol=0.025)
        np.testing.assert_allclose(np.cov(x.T), MULTICLASS_COVARIANCES[name], atol=0.03)
    # the classes really differ in covariance (otherwise the Bayes boundary would be linear)
    covs = [MULTICLASS_COVARIANCES[c] for c in MULTICLASS_CLASSES]
    assert min(np.abs(a - b).max() for a, b in [(covs[0], covs[1]), (covs[1], covs[2]),
                                                (covs[0], covs[2])]) > 0.2


def test_multiclass_bayes_accuracy_agrees_with_numerical_integration(bayes_grid):
    # the midpoint rule is converged: a coarser grid changes it by far less than the MC error
    assert _bayes_by_grid_integration(h=0.4) == pytest.approx(bayes_grid, abs=2e-4)
    acc, err = multiclass_bayes_accuracy(n=100000, seed=21)
    assert err == pytest.approx(np.sqrt(acc * (1 - acc) / 300000))
    assert abs(acc - bayes_grid) < 4 * err + 2e-4
    assert 0.75 < bayes_grid < 0.85
    assert multiclass_bayes_accuracy(n=1000, seed=5) == multiclass_bayes_accuracy(n=1000, seed=5)


def test_multiclass_bayes_accuracy_matches_qda_fitted_on_a_huge_sample(bayes_grid):
    # QDA is the true model family: with 10^5 events per class it reaches the Bayes accuracy
    x_train, y_train = _mc_xy(multiclass_toy(n_per_class=100000, seed=31))
    x_test, y_test = _mc_xy(multiclass_toy(n_per_class=100000, seed=32))
    qda = QuadraticDiscriminantAnalysis().fit(x_train, y_train)
    acc = qda.score(x_test, y_test)
    err = np.sqrt(acc * (1 - acc) / len(y_test))
    assert abs(acc - bayes_grid) < 4 * err
    # and its posterior is the true one (equal priors): same decisions almost everywhere
    true = multiclass_log_densities(x_test).argmax(axis=1)
    assert np.mean(qda.predict(x_test) == true) > 0.995


def test_multiclass_bayes_accuracy_is_clearly_above_lda(bayes_grid):
    x_train, y_train = _mc_xy(multiclass_toy(seed=41))
    x_test, y_test = _mc_xy(multiclass_toy(n_per_class=50000, seed=42))
    lda = LinearDiscriminantAnalysis().fit(x_train, y_train).score(x_test, y_test)
    qda = QuadraticDiscriminantAnalysis().fit(x_train, y_train).score(x_test, y_test)
    # a linear boundary loses 3-6 % of accuracy; the quadratic model fitted on the same small
    # training sample does not
    assert 0.03 < bayes_grid - lda < 0.06
    assert bayes_grid - qda < 0.01
