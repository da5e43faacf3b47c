"""Tests of the regression losses: DCB / Gaussian pdfs, bounded maps, weighted losses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from sklearn.metrics import mean_absolute_error, mean_squared_error

from mva.methods.losses import (
    DCB_RANGES,
    LOSSES,
    SIGMA_FLOOR,
    dcb_log_pdf,
    dcb_nll,
    dcb_params,
    dcb_sigma_eff,
    gaussian_log_pdf,
    gaussian_nll,
    gaussian_params,
)

# (mu, sigma, alpha_l, n_l, alpha_r, n_r): symmetric, asymmetric, extreme n close to 1, narrow
DCB_PARAMS = [
    (0.0, 1.0, 1.5, 3.0, 1.5, 3.0),
    (1.0, 0.05, 1.0, 1.5, 2.0, 5.0),
    (-2.0, 2.0, 0.5, 1.01, 5.0, 20.0),
    (0.3, 0.3, 3.0, 10.0, 0.7, 1.2),
]


def _log_pdf(x, params, dtype=torch.float64) -> torch.Tensor:
    """dcb_log_pdf on numpy/float inputs."""
    xt = torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=dtype)
    return dcb_log_pdf(xt, *(torch.tensor(p, dtype=dtype) for p in params))


def _pdf_scalar(x: float, params) -> float:
    return math.exp(float(_log_pdf(x, params)))


# --------------------------------------------------------------------------------------------
# DCB pdf
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("params", DCB_PARAMS)
def test_dcb_integrates_to_one(params):
    mu, sigma, al, _, ar, _ = params
    lo, hi = mu - al * sigma, mu + ar * sigma
    pieces = [(-np.inf, lo), (lo, hi), (hi, np.inf)]
    total = sum(integrate.quad(_pdf_scalar, a, b, args=(params,), limit=500)[0] for a, b in pieces)
    assert total == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("beta, m", [(0.5, 1.2), (1.0, 3.0), (2.5, 15.0)])
def test_dcb_one_sided_equals_scipy_crystalball(beta, m):
    # With one alpha so large that its tail carries no probability, the DCB is scipy's
    # (single, left-tailed) crystal ball; mirroring x tests the right tail the same way.
    mu, sigma = 1.0, 0.05
    x = np.linspace(mu - 40 * sigma, mu + 40 * sigma, 2001)
    left = _log_pdf(x, (mu, sigma, beta, m, 40.0, 2.0)).numpy()
    right = _log_pdf(x, (mu, sigma, 40.0, 2.0, beta, m)).numpy()
    expected_left = stats.crystalball.logpdf(x, beta, m, loc=mu, scale=sigma)
    expected_right = stats.crystalball.logpdf(2 * mu - x, beta, m, loc=mu, scale=sigma)
    np.testing.assert_allclose(left, expected_left, rtol=1e-9)
    np.testing.assert_allclose(right, expected_right, rtol=1e-9)


@pytest.mark.parametrize("params", DCB_PARAMS)
@pytest.mark.parametrize("side", ["left", "right"])
def test_dcb_continuous_in_value_and_derivative_at_joins(params, side):
    mu, sigma, al, _, ar, _ = params
    join = mu - al * sigma if side == "left" else mu + ar * sigma
    h = 1e-6 * sigma
    below, at, above = (_log_pdf([join - h, join, join + h], params).numpy()).tolist()
    # value: both neighbours within O(h) of the value at the join
    assert abs(above - below) < 1e-4
    # first derivative: one-sided finite differences from inside each branch agree
    d_below = (at - below) / h
    d_above = (above - at) / h
    assert d_below == pytest.approx(d_above, rel=1e-4, abs=1e-6)
    # and the exact (autograd) derivatives just inside each branch agree too
    x = torch.tensor(
        [join - 1e-9 * sigma, join + 1e-9 * sigma], dtype=torch.float64, requires_grad=True
    )
    dcb_log_pdf(x, *(torch.tensor(p, dtype=torch.float64) for p in params)).sum().backward()
    g_below, g_above = x.grad.tolist()
    assert g_below == pytest.approx(g_above, rel=1e-6)
    # the Gaussian core's slope at the join is -t / sigma
    t = (join - mu) / sigma
    assert g_below == pytest.approx(-t / sigma, rel=1e-6)


def test_dcb_tails_are_power_laws():
    params = (0.0, 1.0, 1.0, 2.5, 1.5, 4.0)
    # far in a tail log pdf ~ -n log|t|: the local log-log slope tends to -n
    for t, n in ((-1e6, 2.5), (1e6, 4.0)):
        lp = _log_pdf([t, 2 * t], params).numpy()
        assert (lp[1] - lp[0]) / math.log(2.0) == pytest.approx(-n, rel=1e-4)


def test_dcb_reduces_to_gaussian_for_large_alphas():
    mu, sigma = 1.0, 0.05
    x = np.linspace(mu - 6 * sigma, mu + 6 * sigma, 301)
    lp = _log_pdf(x, (mu, sigma, 12.0, 3.0, 12.0, 3.0)).numpy()
    np.testing.assert_allclose(lp, stats.norm.logpdf(x, mu, sigma), rtol=1e-12, atol=1e-12)


def test_dcb_mode_is_mu():
    params = (0.7, 0.2, 0.6, 1.3, 2.5, 8.0)
    x = np.linspace(-1.0, 3.0, 400001)
    lp = _log_pdf(x, params).numpy()
    assert x[np.argmax(lp)] == pytest.approx(0.7, abs=2e-5)


def test_gaussian_log_pdf_matches_scipy():
    x = torch.linspace(-3.0, 5.0, 101, dtype=torch.float64)
    mu = torch.tensor(1.0, dtype=torch.float64)
    sigma = torch.tensor(0.7, dtype=torch.float64)
    np.testing.assert_allclose(
        gaussian_log_pdf(x, mu, sigma).numpy(), stats.norm.logpdf(x.numpy(), 1.0, 0.7), rtol=1e-12
    )


@pytest.mark.parametrize("params", DCB_PARAMS)
def test_dcb_float32_finite_far_in_tails_with_finite_gradients(params):
    x = torch.tensor([-1e30, -1e12, -1e4, 0.0, 1e4, 1e12, 1e30], dtype=torch.float32)
    p = [torch.tensor(v, dtype=torch.float32, requires_grad=True) for v in params]
    lp = dcb_log_pdf(x, *p)
    assert torch.isfinite(lp).all()
    lp.sum().backward()
    for q in p:
        assert torch.isfinite(q.grad).all()
    # float32 agrees with float64 where both are well conditioned
    xs = np.linspace(params[0] - 30 * params[1], params[0] + 30 * params[1], 201)
    lp32 = _log_pdf(xs, params, torch.float32).numpy()
    np.testing.assert_allclose(lp32, _log_pdf(xs, params).numpy(), rtol=1e-4, atol=1e-4)


def test_dcb_nll_gradients_finite_for_extreme_raw_and_targets():
    raw = torch.tensor(
        [[0.0, -1e4, -1e4, -1e4, 1e4, 1e4], [5.0, 1e4, 1e4, 1e4, -1e4, -1e4], [0.0] * 6],
        dtype=torch.float32,
        requires_grad=True,
    )
    target = torch.tensor([1e8, -1e8, 1e3], dtype=torch.float32)
    loss = dcb_nll(raw, target)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(raw.grad).all()


# --------------------------------------------------------------------------------------------
# bounded maps
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bounded_maps_stay_in_range_for_extreme_raw(dtype):
    values = torch.tensor([-1e30, -1e4, -50.0, -1.0, 0.0, 1.0, 50.0, 1e4, 1e30], dtype=dtype)
    raw = values[:, None].expand(-1, 6)
    p = dcb_params(raw)
    assert set(p) == {"mu", "sigma", "alpha_l", "n_l", "alpha_r", "n_r"}
    for name, (low, high) in DCB_RANGES.items():
        assert torch.isfinite(p[name][:-1]).all(), name  # softplus(1e30) = 1e30 is allowed
        assert (p[name] >= low).all() and (p[name] <= high).all(), name
        assert p[name].shape == (values.numel(),)
    # monotone maps: larger raw never gives a smaller parameter
    for name in DCB_RANGES:
        assert (torch.diff(p[name]) >= 0).all(), name
    assert torch.equal(p["mu"], values)
    assert (p["n_l"] > 1.0).all() and (p["n_r"] > 1.0).all()  # finite tail integral
    g = gaussian_params(values[:, None].expand(-1, 2))
    assert (g["sigma"] >= SIGMA_FLOOR).all()
    # the pdf stays finite with the most extreme mapped parameters
    x = torch.tensor([0.5, 1e6], dtype=dtype)[:, None]
    lp = dcb_log_pdf(x, **{k: v[:-1] for k, v in p.items()})
    assert torch.isfinite(lp).all()


def test_bounded_maps_reach_inside_their_ranges():
    # the sigmoid scaling covers the whole range, not a sub-interval
    p = dcb_params(torch.tensor([[0.0, 0.0, -20.0, 20.0, 20.0, -20.0]], dtype=torch.float64))
    assert float(p["alpha_l"]) == pytest.approx(DCB_RANGES["alpha_l"][0], abs=1e-6)
    assert float(p["n_l"]) == pytest.approx(DCB_RANGES["n_l"][1], abs=1e-6)
    assert float(p["alpha_r"]) == pytest.approx(DCB_RANGES["alpha_r"][1], abs=1e-6)
    assert float(p["n_r"]) == pytest.approx(DCB_RANGES["n_r"][0], abs=1e-6)
    assert float(p["sigma"]) == pytest.approx(SIGMA_FLOOR + math.log(2.0))


def test_maps_reject_wrong_number_of_outputs():
    with pytest.raises(ValueError):
        dcb_params(torch.zeros(3, 2))
    with pytest.raises(ValueError):
        gaussian_params(torch.zeros(3, 6))


# --------------------------------------------------------------------------------------------
# fits
# --------------------------------------------------------------------------------------------


def _fit(loss_fn, n_outputs: int, target: torch.Tensor, init: list[float], steps: int = 600):
    """Minimise the loss over one raw vector shared by all events (a constant network)."""
    theta = torch.tensor(init, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=0.05)
    # thousands of tiny steps: thread hand-offs would cost more than the arithmetic on a busy box
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(steps):
            opt.zero_grad()
            loss = loss_fn(theta.expand(target.numel(), n_outputs), target)
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return theta.detach()


def test_gaussian_nll_fit_recovers_mean_and_width():
    rng = np.random.default_rng(1)
    data = rng.normal(1.0, 0.05, size=3000)
    target = torch.from_numpy(data)
    theta = _fit(gaussian_nll, 2, target, [0.0, 0.0], steps=500)
    mu, sigma = (v.item() for v in gaussian_params(theta[None, :]).values())
    assert mu == pytest.approx(1.0, abs=0.005)
    assert sigma == pytest.approx(0.05, rel=0.03)
    # the Gaussian MLE is the sample mean and the (biased) sample std
    assert mu == pytest.approx(data.mean(), abs=1e-4)
    assert sigma == pytest.approx(data.std(), rel=1e-3)


def test_dcb_nll_fit_recovers_crystal_ball_parameters():
    # data from scipy's crystal ball with a low-side tail, as a photon response would have
    beta, m, mu, sigma = 1.0, 3.0, 1.0, 0.05
    data = stats.crystalball.rvs(beta, m, loc=mu, scale=sigma, size=5000, random_state=2)
    target = torch.from_numpy(data)
    theta = _fit(dcb_nll, 6, target, [0.9, -3.0, 0.0, 0.0, 0.0, 0.0], steps=600)
    p = {k: v.item() for k, v in dcb_params(theta[None, :]).items()}
    assert p["mu"] == pytest.approx(mu, abs=0.1 * sigma)
    assert p["sigma"] == pytest.approx(sigma, rel=0.05)
    assert p["alpha_l"] == pytest.approx(beta, rel=0.15)
    assert p["alpha_r"] > 2.5  # no right tail in the data


# --------------------------------------------------------------------------------------------
# weighted losses and the registry
# --------------------------------------------------------------------------------------------


def _gaussian_raw_and_target(n: int = 50, seed: int = 3):
    rng = np.random.default_rng(seed)
    raw = torch.from_numpy(rng.normal(0.0, 1.0, size=(n, 2)))
    target = torch.from_numpy(rng.normal(0.0, 1.0, size=n))
    return raw, target


def test_gaussian_nll_matches_scipy_with_negative_weights():
    raw, target = _gaussian_raw_and_target()
    rng = np.random.default_rng(4)
    w = rng.normal(1.0, 1.0, size=target.numel())  # some negative, sum positive
    assert (w < 0).any() and w.sum() > 0
    mu = raw[:, 0].numpy()
    sigma = SIGMA_FLOOR + np.log1p(np.exp(raw[:, 1].numpy()))
    nll = -stats.norm.logpdf(target.numpy(), mu, sigma)
    expected = np.sum(w * nll) / np.sum(w)
    loss = gaussian_nll(raw, target, torch.from_numpy(w)).item()
    assert loss == pytest.approx(expected, rel=1e-10)
    assert gaussian_nll(raw, target).item() == pytest.approx(nll.mean(), rel=1e-10)
    # normalised by the sum of weights: a global scale does not change the loss
    scaled = gaussian_nll(raw, target, torch.from_numpy(7.5 * w)).item()
    assert scaled == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("name", list(LOSSES))
def test_integer_weights_equal_repeated_events(name):
    spec = LOSSES[name]
    rng = np.random.default_rng(5)
    raw = torch.from_numpy(rng.normal(0.0, 1.0, size=(30, spec.n_outputs)))
    target = torch.from_numpy(rng.normal(0.0, 2.0, size=30))
    counts = rng.integers(1, 4, size=30)
    repeated = torch.from_numpy(np.repeat(np.arange(30), counts))
    weighted = spec.loss(raw, target, torch.from_numpy(counts.astype(np.float64)))
    unweighted = spec.loss(raw[repeated], target[repeated], None)
    assert weighted.item() == pytest.approx(unweighted.item(), rel=1e-10)


@pytest.mark.parametrize("name", list(LOSSES))
def test_losses_reject_non_positive_weight_sum(name):
    spec = LOSSES[name]
    raw = torch.zeros(4, spec.n_outputs, dtype=torch.float64)
    target = torch.ones(4, dtype=torch.float64)
    with pytest.raises(ValueError):
        spec.loss(raw, target, torch.tensor([1.0, -1.0, 0.5, -0.5], dtype=torch.float64))


def test_registry_outputs_and_point_losses_match_sklearn():
    assert {k: v.n_outputs for k, v in LOSSES.items()} == {
        "mse": 1,
        "mae": 1,
        "huber": 1,
        "gaussian": 2,
        "double_crystal_ball": 6,
    }
    rng = np.random.default_rng(6)
    pred = rng.normal(0.0, 2.0, size=200)
    y = rng.normal(0.0, 2.0, size=200)
    w = rng.uniform(0.1, 2.0, size=200)
    raw = torch.from_numpy(pred)[:, None]
    target, weights = torch.from_numpy(y), torch.from_numpy(w)
    mse = LOSSES["mse"].loss(raw, target, weights).item()
    mae = LOSSES["mae"].loss(raw, target, weights).item()
    assert mse == pytest.approx(mean_squared_error(y, pred, sample_weight=w), rel=1e-10)
    assert mae == pytest.approx(mean_absolute_error(y, pred, sample_weight=w), rel=1e-10)
    r = np.abs(pred - y)
    huber = np.where(r < 1.0, 0.5 * r**2, r - 0.5)  # delta = 1
    assert LOSSES["huber"].loss(raw, target, weights).item() == pytest.approx(
        np.sum(w * huber) / np.sum(w), rel=1e-10
    )
    # a target of shape (N, 1) is accepted
    assert LOSSES["mse"].loss(raw, target[:, None], weights).item() == pytest.approx(mse)


def test_registry_predictions():
    raw6 = torch.tensor([[1.02, 0.3, 0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    pred, width = LOSSES["double_crystal_ball"].predict(raw6)
    assert pred.item() == pytest.approx(1.02)
    # the DCB width is the effective resolution: sigma times the tails' sigma_eff factor
    p6 = dcb_params(raw6)
    factor = dcb_sigma_eff(p6["alpha_l"], p6["n_l"], p6["alpha_r"], p6["n_r"])
    assert width.item() == pytest.approx((SIGMA_FLOOR + math.log1p(math.exp(0.3))) * factor.item())
    pred, width = LOSSES["gaussian"].predict(raw6[:, :2])
    assert pred.item() == pytest.approx(1.02)
    assert width.item() == pytest.approx(SIGMA_FLOOR + math.log1p(math.exp(0.3)))
    for name in ("mse", "mae", "huber"):
        pred, width = LOSSES[name].predict(raw6[:, :1])
        assert width is None and pred.shape == (1,)
    # the DCB loss is the mean negative log pdf of the mapped parameters
    p = dcb_params(raw6)
    target = torch.tensor([0.95], dtype=torch.float64)
    expected = -dcb_log_pdf(target, **p).mean()
    loss = LOSSES["double_crystal_ball"].loss(raw6, target, None)
    assert loss.item() == pytest.approx(expected.item())


@pytest.mark.parametrize("pars", [(5.0, 10.0, 5.0, 10.0), (1.0, 2.0, 2.0, 5.0), (0.8, 3.0, 1.5, 1.8)])
def test_dcb_sigma_eff_matches_numerical_smallest_interval(pars):
    a = [torch.tensor([p], dtype=torch.float64) for p in pars]
    got = float(dcb_sigma_eff(*a))
    x = torch.linspace(-60, 60, 600_001, dtype=torch.float64)
    zero, one = torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    p = torch.exp(dcb_log_pdf(x, zero, one, *a)).numpy()
    xx = x.numpy()
    dx = xx[1] - xx[0]
    # smallest region with 68.3 %: highest-density points first (the pdf is unimodal)
    order = np.argsort(-p)
    k = np.searchsorted(np.cumsum(p[order]) * dx, 0.683)
    sel = order[: k + 1]
    assert got == pytest.approx((xx[sel].max() - xx[sel].min()) / 2, abs=2e-3)


def test_dcb_prediction_width_gives_unit_pull_sigma_eff():
    from mva.evaluation.regression import sigma_eff
    from mva.methods.losses import dcb_predict

    rng = np.random.default_rng(3)
    # an asymmetric DCB with a left tail inside one sigma: sample it by inverse CDF on a grid
    raw = torch.tensor([[0.0, math.log(math.e - 1), -3.0, -1.0, 0.5, 0.0]], dtype=torch.float64)
    p = dcb_params(raw)
    x = torch.linspace(-80, 30, 400_001, dtype=torch.float64)
    pdf = torch.exp(dcb_log_pdf(x, p["mu"], p["sigma"], p["alpha_l"], p["n_l"], p["alpha_r"],
                                 p["n_r"])).numpy()
    cdf = np.cumsum(pdf)
    cdf /= cdf[-1]
    sample = np.interp(rng.random(200_000), cdf, x.numpy())
    mu, width = dcb_predict(raw)
    pulls = (sample - float(mu[0])) / float(width[0])
    assert sigma_eff(pulls) == pytest.approx(1.0, abs=0.02)
    assert float(width[0]) > float(p["sigma"][0]) * 1.05  # the tail widens it beyond sigma
