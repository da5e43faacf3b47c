"""Likelihood and point losses for per-event regression with torch.

The likelihood losses turn a regression network into a *semi-parametric* regression (as in the CMS
photon energy regression): per event the network outputs the parameters of a pdf of the target,
and the loss is the negative log of that pdf evaluated at the true target.  The width parameter
then is a per-event resolution estimate.

Raw network outputs are unbounded; :func:`dcb_params` and :func:`gaussian_params` map them onto
physical ranges with smooth bounded maps (ranges in :data:`DCB_RANGES`):

========  ======================  ==========================================
output    parameter               map
========  ======================  ==========================================
0         ``mu``                  identity
1         ``sigma``               ``1e-4 + softplus(raw)`` (> 1e-4)
2         ``alpha_l``             ``0.5 + 4.5 * sigmoid(raw)`` (in [0.5, 5])
3         ``n_l``                 ``1.01 + 18.99 * sigmoid(raw)`` (in [1.01, 20])
4         ``alpha_r``             as ``alpha_l``
5         ``n_r``                 as ``n_l``
========  ======================  ==========================================

Event weights may be negative (NLO MC weights): every loss is the weighted mean
``sum(w_i * l_i) / sum(w_i)``, i.e. normalised by the sum of weights, not by the number of events,
so the loss does not depend on the overall normalisation of the weights.  The sum of weights must
be positive.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "DCB_RANGES",
    "LOSSES",
    "SIGMA_FLOOR",
    "LossSpec",
    "dcb_log_pdf",
    "dcb_nll",
    "dcb_params",
    "dcb_predict",
    "gaussian_log_pdf",
    "gaussian_nll",
    "gaussian_params",
    "gaussian_predict",
    "huber_loss",
    "mae_loss",
    "mse_loss",
    "point_predict",
]

#: Lower bound of the predicted width: keeps the NLL bounded below for a single event.
SIGMA_FLOOR = 1e-4

#: Closed ranges (low, high) of the bounded DCB parameters produced by :func:`dcb_params`.
#: ``n > 1`` is required for a finite integral of the power-law tails.
DCB_RANGES: dict[str, tuple[float, float]] = {
    "sigma": (SIGMA_FLOOR, math.inf),
    "alpha_l": (0.5, 5.0),
    "n_l": (1.01, 20.0),
    "alpha_r": (0.5, 5.0),
    "n_r": (1.01, 20.0),
}

_SQRT_HALF = math.sqrt(0.5)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_SQRT_HALF_PI = math.sqrt(0.5 * math.pi)


def _bounded(raw: Tensor, low: float, high: float) -> Tensor:
    return low + (high - low) * torch.sigmoid(raw)


def _positive(raw: Tensor) -> Tensor:
    # softplus is linear for large raw, so the width stays finite and its gradient never vanishes
    return SIGMA_FLOOR + F.softplus(raw)


# --------------------------------------------------------------------------------------------
# pdfs
# --------------------------------------------------------------------------------------------


def gaussian_log_pdf(x: Tensor, mu: Tensor, sigma: Tensor) -> Tensor:
    """Log density of the normal distribution N(mu, sigma^2) at ``x`` (broadcasting)."""
    t = (x - mu) / sigma
    return -0.5 * t * t - torch.log(sigma) - _LOG_SQRT_2PI


def _tail_log_shape(u: Tensor, alpha: Tensor, n: Tensor) -> Tensor:
    """Log of the unnormalised power-law tail at distance ``u >= 0`` beyond the join.

    The tail ``A (B + u + alpha)^-n`` with the usual ``A = (n/alpha)^n exp(-alpha^2/2)`` and
    ``B = n/alpha - alpha`` equals ``exp(-alpha^2/2) (1 + alpha u / n)^-n``; the second form never
    raises a large number to the power ``n``, so it neither overflows in float32 nor loses digits.
    """
    return -0.5 * alpha * alpha - n * torch.log1p(alpha * u / n)


def _dcb_log_norm(alpha_l: Tensor, n_l: Tensor, alpha_r: Tensor, n_r: Tensor) -> Tensor:
    """Log of the integral over ``t`` of the unnormalised DCB shape (core via erf, tails closed)."""
    core = _SQRT_HALF_PI * (torch.erf(alpha_l * _SQRT_HALF) + torch.erf(alpha_r * _SQRT_HALF))
    # int_0^inf exp(-a^2/2) (1 + a u / n)^-n du = exp(-a^2/2) n / (a (n - 1))
    tail_l = torch.exp(-0.5 * alpha_l * alpha_l) * n_l / (alpha_l * (n_l - 1.0))
    tail_r = torch.exp(-0.5 * alpha_r * alpha_r) * n_r / (alpha_r * (n_r - 1.0))
    return torch.log(core + tail_l + tail_r)


def dcb_log_pdf(
    x: Tensor,
    mu: Tensor,
    sigma: Tensor,
    alpha_l: Tensor,
    n_l: Tensor,
    alpha_r: Tensor,
    n_r: Tensor,
) -> Tensor:
    """Log density of the double-sided crystal ball, normalised analytically.

    With ``t = (x - mu) / sigma`` the shape is a Gaussian core ``exp(-t^2/2)`` for
    ``-alpha_l < t < alpha_r`` and power-law tails ``~ |t|^-n`` beyond, continuous in value and
    first derivative at both joins.  The normalisation is the closed-form integral (erf for the
    core, ``exp(-alpha^2/2) n / (alpha (n - 1))`` for each tail), so ``n_l, n_r > 1`` and
    ``alpha_l, alpha_r, sigma > 0`` are required.

    Parameters
    ----------
    x, mu, sigma, alpha_l, n_l, alpha_r, n_r
        Tensors of one floating dtype that broadcast against each other.

    Returns
    -------
    Tensor
        ``log pdf(x)``: finite for any finite ``x`` (tails are evaluated in log space) and
        differentiable with respect to every argument, with finite gradients.
    """
    t = (x - mu) / sigma
    # Each branch is evaluated on a clamped argument so that the branch torch.where discards
    # produces neither inf nor NaN, which would otherwise poison the gradient (0 * inf = NaN).
    t_core = torch.minimum(torch.maximum(t, -alpha_l), alpha_r)
    core = -0.5 * t_core * t_core
    left = _tail_log_shape(torch.clamp(-t - alpha_l, min=0.0), alpha_l, n_l)
    right = _tail_log_shape(torch.clamp(t - alpha_r, min=0.0), alpha_r, n_r)
    shape = torch.where(t < -alpha_l, left, torch.where(t > alpha_r, right, core))
    return shape - torch.log(sigma) - _dcb_log_norm(alpha_l, n_l, alpha_r, n_r)


# --------------------------------------------------------------------------------------------
# bounded maps
# --------------------------------------------------------------------------------------------


def _check_last_dim(raw: Tensor, n: int, name: str) -> None:
    if raw.shape[-1] != n:
        raise ValueError(
            f"{name} expects raw outputs with last dimension {n}, got {tuple(raw.shape)}"
        )


def dcb_params(raw: Tensor) -> dict[str, Tensor]:
    """Map raw network outputs ``raw[..., 6]`` to DCB parameters in :data:`DCB_RANGES`.

    Returns
    -------
    dict
        Keys ``mu, sigma, alpha_l, n_l, alpha_r, n_r``, each of shape ``raw.shape[:-1]``.
    """
    _check_last_dim(raw, 6, "dcb_params")
    return {
        "mu": raw[..., 0],
        "sigma": _positive(raw[..., 1]),
        "alpha_l": _bounded(raw[..., 2], *DCB_RANGES["alpha_l"]),
        "n_l": _bounded(raw[..., 3], *DCB_RANGES["n_l"]),
        "alpha_r": _bounded(raw[..., 4], *DCB_RANGES["alpha_r"]),
        "n_r": _bounded(raw[..., 5], *DCB_RANGES["n_r"]),
    }


def gaussian_params(raw: Tensor) -> dict[str, Tensor]:
    """Map raw network outputs ``raw[..., 2]`` to ``{"mu": identity, "sigma": 1e-4 + softplus}``."""
    _check_last_dim(raw, 2, "gaussian_params")
    return {"mu": raw[..., 0], "sigma": _positive(raw[..., 1])}


# --------------------------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------------------------


def _weighted_mean(values: Tensor, weights: Tensor | None) -> Tensor:
    """``sum(w * v) / sum(w)``; the plain mean without weights."""
    if weights is None:
        return values.mean()
    weights = weights.to(values.dtype).reshape(values.shape)
    total = weights.sum()
    if not bool(total > 0):
        raise ValueError(f"the sum of event weights must be positive, got {float(total):g}")
    return (weights * values).sum() / total


def _as_target(raw: Tensor, target: Tensor) -> Tensor:
    """Target shaped like one output column (accepts ``(N,)`` or ``(N, 1)``)."""
    return target.to(raw.dtype).reshape(raw.shape[:-1])


def dcb_nll(raw: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
    """Weighted mean negative log-likelihood of ``target`` under the DCB given by ``raw[..., 6]``.

    Normalised by the sum of weights (which may contain negative entries but must sum to > 0).
    """
    p = dcb_params(raw)
    nll = -dcb_log_pdf(_as_target(raw, target), **p)
    return _weighted_mean(nll, weights)


def gaussian_nll(raw: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
    """Weighted mean negative log-likelihood of ``target`` under N(mu, sigma) from ``raw[..., 2]``.

    Normalised by the sum of weights (which may contain negative entries but must sum to > 0).
    """
    p = gaussian_params(raw)
    nll = -gaussian_log_pdf(_as_target(raw, target), p["mu"], p["sigma"])
    return _weighted_mean(nll, weights)


def mse_loss(raw: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
    """Weighted mean squared error of ``raw[..., 0]``."""
    diff = raw[..., 0] - _as_target(raw, target)
    return _weighted_mean(diff * diff, weights)


def mae_loss(raw: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
    """Weighted mean absolute error of ``raw[..., 0]``."""
    return _weighted_mean((raw[..., 0] - _as_target(raw, target)).abs(), weights)


def huber_loss(
    raw: Tensor, target: Tensor, weights: Tensor | None = None, delta: float = 1.0
) -> Tensor:
    """Weighted mean Huber loss of ``raw[..., 0]``: quadratic within ``delta``, linear beyond.

    ``delta`` is in target units; 1.0 suits standardised targets.
    """
    values = F.huber_loss(raw[..., 0], _as_target(raw, target), reduction="none", delta=delta)
    return _weighted_mean(values, weights)


# --------------------------------------------------------------------------------------------
# predictions and registry
# --------------------------------------------------------------------------------------------


def point_predict(raw: Tensor) -> tuple[Tensor, None]:
    """Prediction of a point loss: output 0, no width."""
    return raw[..., 0], None


def gaussian_predict(raw: Tensor) -> tuple[Tensor, Tensor]:
    """``(mu, sigma)`` of the Gaussian: mu is mean, median and mode."""
    p = gaussian_params(raw)
    return p["mu"], p["sigma"]


def dcb_predict(raw: Tensor) -> tuple[Tensor, Tensor]:
    """``(mu, width)`` of the DCB: mu is its mode (the mean is shifted by asymmetric tails) and
    the width its effective resolution ``sigma * dcb_sigma_eff(...)``: half the smallest interval
    holding 68.3 % of the predicted pdf. With tails that start inside one sigma the core sigma
    alone would understate the spread, and pulls d/width would not have sigma_eff 1."""
    p = dcb_params(raw)
    scale = dcb_sigma_eff(p["alpha_l"], p["n_l"], p["alpha_r"], p["n_r"])
    return p["mu"], p["sigma"] * scale


def _tail_mass_beyond(u: Tensor, alpha: Tensor, n: Tensor) -> Tensor:
    """Unnormalised tail mass beyond distance ``u >= 0`` past the join."""
    return torch.exp(-0.5 * alpha * alpha) * n / (alpha * (n - 1.0)) * torch.exp(
        (1.0 - n) * torch.log1p(alpha * u / n))


def _side(log_h: Tensor, alpha: Tensor, n: Tensor) -> tuple[Tensor, Tensor]:
    """Distance from the mode where the standardised shape drops to ``exp(log_h)`` on one side,
    and the unnormalised mass beyond that point."""
    in_core = log_h >= -0.5 * alpha * alpha
    t_core = torch.sqrt(torch.clamp(-2.0 * log_h, min=0.0))
    core_mass = (_SQRT_HALF_PI * (torch.erf(alpha * _SQRT_HALF) - torch.erf(t_core * _SQRT_HALF))
                 + _tail_mass_beyond(torch.zeros_like(alpha), alpha, n))
    # tail: exp(-a^2/2) (1 + a u / n)^-n = h
    u = (n / alpha) * torch.expm1(torch.clamp(-(log_h + 0.5 * alpha * alpha) / n, min=0.0))
    t_tail = alpha + u
    return (torch.where(in_core, t_core, t_tail),
            torch.where(in_core, core_mass, _tail_mass_beyond(u, alpha, n)))


def dcb_sigma_eff(alpha_l: Tensor, n_l: Tensor, alpha_r: Tensor, n_r: Tensor,
                  fraction: float = 0.683, iterations: int = 60) -> Tensor:
    """Half-width, in units of sigma, of the smallest interval holding ``fraction`` of a DCB.

    The smallest interval of a unimodal pdf has equal density at both ends, so it is found by
    bisection on the density level, with the enclosed mass in closed form. Equals 1 for a
    Gaussian (large alphas) at ``fraction = 0.683``.
    """
    dtype = torch.float64
    a_l, m_l, a_r, m_r = (x.detach().to(dtype) for x in (alpha_l, n_l, alpha_r, n_r))
    total = torch.exp(_dcb_log_norm(a_l, m_l, a_r, m_r))
    lo = torch.full_like(a_l, -200.0)   # log density level: low level = wide interval
    hi = torch.zeros_like(a_l)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        _, out_l = _side(mid, a_l, m_l)
        _, out_r = _side(mid, a_r, m_r)
        inside = (total - out_l - out_r) / total
        wide_enough = inside >= fraction
        lo = torch.where(wide_enough, mid, lo)
        hi = torch.where(wide_enough, hi, mid)
    t_l, _ = _side(lo, a_l, m_l)
    t_r, _ = _side(lo, a_r, m_r)
    return (0.5 * (t_l + t_r)).to(alpha_l.dtype)


class LossSpec(NamedTuple):
    """A regression loss: number of network outputs, loss, and raw -> (prediction, width)."""

    n_outputs: int
    loss: Callable[[Tensor, Tensor, Tensor | None], Tensor]
    predict: Callable[[Tensor], tuple[Tensor, Tensor | None]]


#: Regression losses by config name.
LOSSES: dict[str, LossSpec] = {
    "mse": LossSpec(1, mse_loss, point_predict),
    "mae": LossSpec(1, mae_loss, point_predict),
    "huber": LossSpec(1, huber_loss, point_predict),
    "gaussian": LossSpec(2, gaussian_nll, gaussian_predict),
    "double_crystal_ball": LossSpec(6, dcb_nll, dcb_predict),
}
