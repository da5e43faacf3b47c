"""Input-variable transformations: each one's defining property, checked against numpy,
scipy and scikit-learn, plus weights, serialisation, chaining and error handling."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg
from scipy import stats
from sklearn.decomposition import PCA as SkPCA
from sklearn.preprocessing import MinMaxScaler

from mva.errors import NotFittedError
from mva.preprocessing import TRANSFORMS, Pipeline, Transform

NAMES = ["standardize", "minmax", "decorrelate", "pca", "uniform", "gauss"]
COV = np.array([[4.0, 1.8, -0.6], [1.8, 2.0, 0.3], [-0.6, 0.3, 0.5]])
MEAN = np.array([1.0, -2.0, 5.0])


def correlated(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).multivariate_normal(MEAN, COV, size=n)


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    return correlated(5000, seed=1)


@pytest.fixture(scope="module")
def w(X: np.ndarray) -> np.ndarray:
    # smooth, strongly varying positive weights: the weighted moments differ clearly
    return np.exp(0.5 * (X[:, 0] - MEAN[0]))


@pytest.fixture(scope="module")
def X_big() -> np.ndarray:
    # CDF-based transforms: the training ECDF error (~1/sqrt(n)) must be small next to the
    # KS test's resolution on the fresh sample, or the one-sample test is not valid
    return correlated(100_000, seed=11)


def wcov(Y: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    return np.cov(Y.T, aweights=w, ddof=0)


def test_registry_has_all_names() -> None:
    assert sorted(TRANSFORMS) == sorted(NAMES)
    assert all(TRANSFORMS[n].name == n for n in NAMES)


# ----------------------------------------------------------- defining properties


def test_standardize_weighted_mean_zero_var_one(X: np.ndarray, w: np.ndarray) -> None:
    Y = Pipeline(["standardize"]).fit_transform(X, w)
    np.testing.assert_allclose(np.average(Y, axis=0, weights=w), 0.0, atol=1e-10)
    np.testing.assert_allclose(np.average(Y**2, axis=0, weights=w), 1.0, rtol=1e-10)
    # closed form with numpy's weighted average
    mu = np.average(X, axis=0, weights=w)
    sd = np.sqrt(np.average((X - mu) ** 2, axis=0, weights=w))
    np.testing.assert_allclose(Y, (X - mu) / sd, rtol=1e-10, atol=1e-12)


def test_weights_matter(X: np.ndarray, w: np.ndarray) -> None:
    Yw = Pipeline(["standardize"]).fit_transform(X, w)
    Yu = Pipeline(["standardize"]).fit_transform(X)
    # unit-weight fit: plain mean 0; weighted fit: its plain mean is shifted (w grows with x0)
    np.testing.assert_allclose(Yu.mean(axis=0), 0.0, atol=1e-10)
    assert Yw.mean(axis=0)[0] < -0.2
    # weights of ones are the same as no weights
    np.testing.assert_allclose(Pipeline(["pca"]).fit_transform(X, np.ones(len(X))),
                               Pipeline(["pca"]).fit_transform(X), atol=1e-12)


def test_minmax_matches_sklearn(X: np.ndarray) -> None:
    Y = Pipeline(["minmax"]).fit_transform(X)
    np.testing.assert_allclose(Y.min(axis=0), -1.0, atol=1e-12)
    np.testing.assert_allclose(Y.max(axis=0), 1.0, atol=1e-12)
    ref = MinMaxScaler(feature_range=(-1, 1)).fit_transform(X)
    np.testing.assert_allclose(Y, ref, atol=1e-12)


def test_decorrelate_identity_covariance(X: np.ndarray, w: np.ndarray) -> None:
    Y = Pipeline(["decorrelate"]).fit_transform(X, w)
    np.testing.assert_allclose(np.average(Y, axis=0, weights=w), 0.0, atol=1e-10)
    np.testing.assert_allclose(wcov(Y, w), np.eye(3), atol=1e-10)
    # and it is the symmetric square root (not e.g. Cholesky): compare with scipy.linalg
    mu = np.average(X, axis=0, weights=w)
    ref = (X - mu) @ scipy.linalg.sqrtm(np.linalg.inv(wcov(X, w))).real
    np.testing.assert_allclose(Y, ref, atol=1e-8)


def test_pca_matches_sklearn_up_to_sign(X: np.ndarray) -> None:
    Y = Pipeline(["pca"]).fit_transform(X)
    ref = SkPCA().fit_transform(X)
    signs = np.sign(np.sum(Y * ref, axis=0))
    assert np.all(signs != 0)
    np.testing.assert_allclose(Y, ref * signs, atol=1e-9)


def test_pca_weighted_diagonal_descending(X: np.ndarray, w: np.ndarray) -> None:
    Y = Pipeline(["pca"]).fit_transform(X, w)
    C = wcov(Y, w)
    var = np.diag(C)
    np.testing.assert_allclose(C - np.diag(var), 0.0, atol=1e-9)
    assert np.all(np.diff(var) < 0)
    # variances are the eigenvalues of the weighted covariance; projection keeps distances
    np.testing.assert_allclose(var, np.sort(np.linalg.eigvalsh(wcov(X, w)))[::-1], rtol=1e-9)
    mu = np.average(X, axis=0, weights=w)
    np.testing.assert_allclose(np.linalg.norm(Y, axis=1), np.linalg.norm(X - mu, axis=1),
                               rtol=1e-9)


def test_uniform_is_uniform_on_fresh_sample(X_big: np.ndarray) -> None:
    t = Transform.from_dict(Pipeline(["uniform"]).fit(X_big).to_dict()["steps"][0])
    fresh = correlated(3000, seed=2)
    U = t.transform(fresh)
    assert U.min() >= 0.0 and U.max() <= 1.0
    for j in range(3):
        assert stats.kstest(U[:, j], "uniform").pvalue > 0.01
        # the check has power: the raw (standardised) variable is not uniform on [0, 1]
        raw = (fresh[:, j] - fresh[:, j].min()) / np.ptp(fresh[:, j])
        assert stats.kstest(raw, "uniform").pvalue < 1e-6


def test_uniform_weighted_reweights_distribution() -> None:
    # x ~ N(0,1) weighted by N(1,1)/N(0,1) = exp(x - 1/2) describes N(1,1)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200_000, 1))
    wt = np.exp(x[:, 0] - 0.5)
    t = TRANSFORMS["uniform"]().fit(x, wt)
    fresh = rng.normal(1.0, 1.0, size=(3000, 1))
    assert stats.kstest(t.transform(fresh)[:, 0], "uniform").pvalue > 0.01
    unweighted = TRANSFORMS["uniform"]().fit(x)
    assert stats.kstest(unweighted.transform(fresh)[:, 0], "uniform").pvalue < 1e-6


def test_uniform_discrete_variable_midstep_cdf() -> None:
    rng = np.random.default_rng(4)
    probs = np.array([0.2, 0.5, 0.3])
    x = rng.choice([0.0, 1.0, 2.0], p=probs, size=(20000, 1))
    x = np.hstack([x, rng.normal(size=(20000, 1))])
    t = TRANSFORMS["uniform"]().fit(x)
    out = t.transform(np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [0.5, 0.0]]))[:, 0]
    frac = np.array([np.mean(x[:, 0] == v) for v in (0.0, 1.0, 2.0)])
    expected = np.cumsum(frac) - frac / 2  # CDF at the middle of each step
    np.testing.assert_allclose(out[:3], expected, atol=1e-12)
    assert expected[0] < out[3] < expected[1]
    assert np.all(np.isfinite(TRANSFORMS["gauss"]().fit(x).transform(x)))


def test_uniform_knot_table_bounded_and_monotone(X: np.ndarray) -> None:
    d = TRANSFORMS["uniform"]().fit(X).to_dict()["params"]
    for xk, yk in zip(d["knots_x"], d["knots_y"]):
        assert 2 <= len(xk) == len(yk) <= 1001
        assert np.all(np.diff(xk) > 0) and np.all(np.diff(yk) >= 0)
    grid = np.linspace(-20, 20, 2001)[:, None] * np.ones((1, 3))
    U = TRANSFORMS["uniform"]().fit(X).transform(grid)
    assert np.all(np.diff(U, axis=0) >= 0)


def test_gauss_is_normal_and_finite(X_big: np.ndarray) -> None:
    t = TRANSFORMS["gauss"]().fit(X_big)
    G = t.transform(correlated(3000, seed=5))
    for j in range(3):
        assert stats.kstest(G[:, j], "norm").pvalue > 0.01
    # outside the training range: the value at the training extremes, finite
    far = t.transform(np.array([[-1e9, -1e9, -1e9], [1e9, 1e9, 1e9]]))
    ends = t.transform(np.array([X_big.min(axis=0), X_big.max(axis=0)]))
    np.testing.assert_array_equal(far, ends)
    assert np.all(np.isfinite(far)) and np.all(far[0] < -4) and np.all(far[1] > 4)
    # extreme events with tiny weight: CDF below 1e-6 is clipped, never +-inf
    x = np.arange(10.0)[:, None]
    tiny = np.array([1e-12] + [1.0] * 8 + [1e-12])
    g = TRANSFORMS["gauss"]().fit(x, tiny).transform(np.array([[-5.0], [0.0], [9.0], [20.0]]))
    np.testing.assert_allclose(g[:, 0], stats.norm.ppf([1e-6, 1e-6, 1 - 1e-6, 1 - 1e-6]),
                               rtol=1e-12)


# ------------------------------------------------------------ weights edge cases


def test_negative_weights(X: np.ndarray) -> None:
    rng = np.random.default_rng(6)
    wneg = np.where(rng.random(len(X)) < 0.1, -0.5, 1.0)
    Y = Pipeline(["standardize"]).fit_transform(X, wneg)
    # signed weights are used as given when their total is positive
    np.testing.assert_allclose(np.average(Y, axis=0, weights=wneg), 0.0, atol=1e-10)
    for name in NAMES:
        assert np.all(np.isfinite(Pipeline([name]).fit_transform(X, wneg))), name
        # negative total: falls back to absolute weights, still finite
        assert np.all(np.isfinite(Pipeline([name]).fit_transform(X, -wneg))), name
        # zero total (would divide by zero): absolute weights too
        wzero = np.where(np.arange(len(X)) % 2 == 0, 1.0, -1.0)
        assert wzero.sum() == 0
        assert np.all(np.isfinite(Pipeline([name]).fit_transform(X, wzero))), name
    np.testing.assert_allclose(Pipeline(["standardize"]).fit_transform(X, -np.abs(wneg)),
                               Pipeline(["standardize"]).fit_transform(X, np.abs(wneg)))


def test_bad_weights_rejected(X: np.ndarray) -> None:
    with pytest.raises(ValueError, match="shape"):
        Pipeline(["standardize"]).fit(X, np.ones(3))
    with pytest.raises(ValueError, match="zero"):
        Pipeline(["standardize"]).fit(X, np.zeros(len(X)))


# ----------------------------------------------------- serialisation, chaining, API


@pytest.mark.parametrize("steps", [[n] for n in NAMES] + [["gauss", "decorrelate", "pca"]])
def test_json_round_trip(steps: list[str], X: np.ndarray, w: np.ndarray) -> None:
    pipe = Pipeline(steps).fit(X, w)
    text = json.dumps(pipe.to_dict())
    assert "NaN" not in text and "Infinity" not in text
    back = Pipeline.from_dict(json.loads(text))
    assert back.names == steps
    fresh = correlated(500, seed=7)
    np.testing.assert_array_equal(back.transform(fresh), pipe.transform(fresh))
    single = Transform.from_dict(json.loads(json.dumps(pipe.steps[0].to_dict())))
    assert type(single) is type(pipe.steps[0])


def test_from_dict_rejects_wrong_name(X: np.ndarray) -> None:
    d = TRANSFORMS["pca"]().fit(X).to_dict()
    with pytest.raises(ValueError, match="pca"):
        TRANSFORMS["standardize"].from_dict(d)
    with pytest.raises(ValueError, match="bogus"):
        Transform.from_dict({"name": "bogus", "params": {}})


def test_chain_order_matters(X: np.ndarray, w: np.ndarray) -> None:
    a = Pipeline(["standardize", "pca"]).fit_transform(X, w)
    b = Pipeline(["pca", "standardize"]).fit_transform(X, w)
    assert not np.allclose(a, b, atol=1e-3)
    # each is the composition of its steps, fitted on the previous step's output
    s = TRANSFORMS["standardize"]().fit(X, w)
    p = TRANSFORMS["pca"]().fit(s.transform(X), w)
    np.testing.assert_allclose(a, p.transform(s.transform(X)), atol=1e-12)
    # pca then standardize whitens: identity covariance; the other order does not
    np.testing.assert_allclose(wcov(b, w), np.eye(3), atol=1e-9)
    assert not np.allclose(wcov(a, w), np.eye(3), atol=1e-2)


def test_empty_pipeline_is_identity(X: np.ndarray) -> None:
    pipe = Pipeline([])
    Y = pipe.fit_transform(X)
    np.testing.assert_array_equal(Y, X)
    # float input passes through without a copy (memory at a million events); others convert
    assert np.shares_memory(Y, X)
    X32 = X.astype(np.float32)
    assert pipe.transform(X32) is X32
    assert pipe.transform(X.astype(np.int64)).dtype == np.float64
    # a non-empty pipeline always gives float64
    assert Pipeline(["standardize"]).fit(X32).transform(X32).dtype == np.float64
    np.testing.assert_array_equal(Pipeline.from_dict(json.loads(json.dumps(pipe.to_dict())))
                                  .transform(X), X)


@pytest.mark.parametrize("name", NAMES)
def test_not_fitted_raises(name: str, X: np.ndarray) -> None:
    with pytest.raises(NotFittedError):
        TRANSFORMS[name]().transform(X)
    with pytest.raises(NotFittedError):
        Pipeline([name]).transform(X)
    with pytest.raises(NotFittedError):
        TRANSFORMS[name]().to_dict()


def test_unknown_name_raises() -> None:
    with pytest.raises(ValueError) as err:
        Pipeline(["standardize", "whiten"])
    msg = str(err.value)
    assert "whiten" in msg
    assert all(n in msg for n in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_constant_column_no_nan(name: str, X: np.ndarray, w: np.ndarray) -> None:
    Xc = np.hstack([X[:, :2], np.full((len(X), 1), 3.7)])
    pipe = Pipeline([name]).fit(Xc, w)
    Y = pipe.transform(Xc)
    assert np.all(np.isfinite(Y))
    # new values of the constant feature are still finite
    other = Xc[:10].copy()
    other[:, 2] = [-1e3, 0, 1, 3.69, 3.7, 3.71, 5, 10, 1e3, 1e6]
    assert np.all(np.isfinite(pipe.transform(other)))
    if name in ("standardize", "decorrelate"):
        # the varying columns are unaffected by the constant one
        ref = Pipeline([name]).fit_transform(Xc[:, :2], w)
        np.testing.assert_allclose(Y[:, :2], ref, atol=1e-10)
        np.testing.assert_allclose(Y[:, 2], 0.0, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_rows_independent_and_dtype(name: str, X: np.ndarray) -> None:
    pipe = Pipeline([name]).fit(X)
    full = pipe.transform(X)
    chunks = np.vstack([pipe.transform(c) for c in np.array_split(X, 7)])
    np.testing.assert_array_equal(chunks, full)
    empty = pipe.transform(np.empty((0, 3)))
    assert empty.shape == (0, 3) and empty.dtype == np.float64
    assert pipe.transform(X[:5].astype(np.float32)).dtype == np.float64
    with pytest.raises(ValueError, match="features"):
        pipe.transform(X[:, :2])
