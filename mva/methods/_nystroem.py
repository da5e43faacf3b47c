"""The Nystroem solver of :mod:`mva.methods.svm`: a kernel machine linear in the training events.

``m`` landmarks ``L`` (a seeded random subset of the training events) give the features
``phi(x) = K(x, L) P`` with ``P = U S^{-1/2}`` from the eigendecomposition ``K_LL = U S U^T``
(directions with ``S`` below :data:`EIGEN_CUTOFF` of the largest dropped), so that
``phi(a).phi(b)`` approximates ``K(a, b)``. In that space a linear L2-loss SVM,

    min_{W, b}  1/2 |W|^2 + C sum_i w_i loss(y_i, phi(x_i) W + b),

with the squared hinge ``max(0, 1 - y f)^2`` (binary, one column per class one-vs-rest for
multiclass, labels +-1) or the squared epsilon-insensitive loss ``max(0, |f - t| - eps)^2``
(regression on the standardised targets), is solved in the primal by L-BFGS (scipy), with the
features in float32 and the parameters in float64. The squared losses are differentiable, so a
quasi-Newton method converges to the optimum; LinearSVC and LinearSVR minimise the same
objectives. The intercept is not regularised.

The machine is stored as a kernel expansion over the landmarks, ``f(x) = K(x, L) alpha + b`` with
``alpha = P W``: the support vectors and dual coefficients of :class:`mva.methods.svm.SVM`, so
scoring and the ONNX export are those of the exact solver.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from mva.methods.base import as_2d, positive_weights

__all__ = ["fit_nystroem", "kernel_gamma"]

log = logging.getLogger(__name__)

#: eigenvalues of K_LL below this fraction of the largest are dropped (numerically null
#: directions: duplicated or nearly coincident landmarks)
EIGEN_CUTOFF = 1e-8
#: events per block of the feature computation
FEATURE_BLOCK = 8192
#: events per block of the solver's passes over the features
SOLVE_BLOCK = 2048
#: L-BFGS stops when the objective falls by less than this (relative) in an iteration: on the
#: 20-feature toy of ``benchmarks/bench_svm.py`` (150k training events) 1e-7 takes 45
#: iterations and 1e-9 109, for the same test AUC to 4 digits
FTOL = 1e-7


def kernel_gamma(gamma: float | str, X: np.ndarray) -> float:
    """The kernel coefficient as scikit-learn's SVC sets it (``scale``: 1 / (d var(X)))."""
    if gamma == "scale":
        var = float(X.var())
        return 1.0 / (X.shape[1] * var) if var > 0 else 1.0
    if gamma == "auto":
        return 1.0 / X.shape[1]
    return float(gamma)


def _features(X: np.ndarray, L: np.ndarray, P: np.ndarray, kernel_args: tuple) -> np.ndarray:
    """``K(X, L) P`` in float32, ``(n, m')``, in blocks.

    Computed in float32 throughout (twice as fast as float64 and as the features are stored):
    the solver only needs the features to that precision (the test AUC agrees to 5 digits with
    float64 features); the fitted machine is evaluated in float64 from the landmarks."""
    from mva.methods.svm import kernel_matrix

    L32, P32 = L.astype(np.float32), P.astype(np.float32)
    out = np.empty((len(X), P.shape[1]), dtype=np.float32)
    for s in range(0, len(X), FEATURE_BLOCK):
        K = kernel_matrix(np.asarray(X[s:s + FEATURE_BLOCK], dtype=np.float32), L32,
                          *kernel_args)
        out[s:s + FEATURE_BLOCK] = K.astype(np.float32, copy=False) @ P32
    return out


def _squared_hinge(F: np.ndarray, Y: np.ndarray, eps: Any) -> tuple[np.ndarray, np.ndarray]:
    slack = np.maximum(0.0, 1.0 - Y * F)
    return slack * slack, -2.0 * Y * slack


def _squared_eps_insensitive(F: np.ndarray, T: np.ndarray, eps: np.ndarray
                             ) -> tuple[np.ndarray, np.ndarray]:
    r = F - T
    slack = np.maximum(0.0, np.abs(r) - eps)
    return slack * slack, 2.0 * np.sign(r) * slack


def solve(Phi: np.ndarray, Y: np.ndarray, w: np.ndarray, C: float, loss: str,
          eps: np.ndarray | None = None, max_iter: int = 1000, progress: Any = None,
          ftol: float = FTOL) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """``W (m', K)`` and ``b (K,)`` of the L2-loss linear SVM on the features ``Phi``.

    The objective is divided by ``C sum(w)`` (the same minimum, of order 1 whatever the
    sample size, which suits L-BFGS's relative tolerance)."""
    from scipy.optimize import minimize

    m, K = Phi.shape[1], Y.shape[1]
    lossfn = _squared_hinge if loss == "squared_hinge" else _squared_eps_insensitive
    wsum = float(w.sum()) or 1.0
    wc = (w / wsum)[:, None]
    reg = 1.0 / (C * wsum)
    last = [np.nan]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        W = theta[:m * K].reshape(m, K)
        b = theta[m * K:]
        W32 = W.astype(np.float32)
        f = 0.5 * reg * float((W * W).sum())
        gW, gb = reg * W, np.zeros(K)
        # one pass over the features, in blocks that stay in cache for both products (the
        # pass is bound by memory, not arithmetic)
        for s in range(0, len(Phi), SOLVE_BLOCK):
            P = Phi[s:s + SOLVE_BLOCK]
            F = (P @ W32).astype(np.float64) + b
            values, dF = lossfn(F, Y[s:s + SOLVE_BLOCK], eps)
            G = wc[s:s + SOLVE_BLOCK] * dF                           # (block, K)
            f += float((wc[s:s + SOLVE_BLOCK] * values).sum())
            gW = gW + (P.T @ G.astype(np.float32)).astype(np.float64)
            gb += G.sum(axis=0)
        last[0] = f
        return f, np.concatenate([gW.ravel(), gb])

    def step(theta: np.ndarray) -> None:
        # the objective at the accepted point: the line search's last evaluation
        if progress is not None:
            progress.update(1, loss=last[0])

    res = minimize(objective, np.zeros(m * K + K), jac=True, method="L-BFGS-B", callback=step,
                   options={"maxiter": max_iter, "ftol": ftol, "gtol": 1e-8, "maxcor": 20})
    theta = res.x
    # status 2 (no decrease along the search direction) is where the float32 features limit
    # the objective's precision: converged as far as the features allow; 1 is max_iter
    info = {"iterations": int(res.nit), "converged": res.status != 1,
            "message": str(res.message), "objective": float(res.fun)}
    return theta[:m * K].reshape(m, K), theta[m * K:], info


def fit_nystroem(model: Any, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
    """Fit ``model`` (an :class:`mva.methods.svm.SVM`) with the Nystroem solver."""
    from threadpoolctl import threadpool_limits

    from mva.methods.base import n_threads

    # BLAS threads as for the other methods: one for small samples, where spinning threads on
    # busy cores cost more than they bring, all cores for large ones
    with threadpool_limits(limits=n_threads(None, len(X)), user_api="blas"):
        _fit(model, X, y, w)


def _fit(model: Any, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
    from mva.progress import Progress

    p = model.params
    rng = np.random.default_rng(model.seed)
    n_all = len(X)
    if n_all > p.nystroem_max_events:
        idx = np.sort(rng.choice(n_all, p.nystroem_max_events, replace=False))
        X, y, w = X[idx], y[idx], w[idx]
        model.notes_.append(f"trained on {len(X)} of {n_all} training events "
                            "(nystroem_max_events)")
    X = np.asarray(X, dtype=np.float64)
    w = positive_weights(np.asarray(w, dtype=np.float64))
    w = w / w.mean() if w.mean() > 0 else w
    n = len(X)
    C = model._C()
    gamma = kernel_gamma(p.gamma, X)
    kernel_args = (p.kernel, gamma, p.degree, p.coef0)
    m = min(p.n_components, n)
    L = X[np.sort(rng.choice(n, m, replace=False))]
    from mva.methods.svm import kernel_matrix

    S, U = np.linalg.eigh(kernel_matrix(L, L, *kernel_args))
    keep = S > max(S.max(), 0.0) * EIGEN_CUTOFF
    P = U[:, keep] / np.sqrt(S[keep])
    Phi = _features(X, L, P, kernel_args)

    K_out = 1
    eps = None
    if model.is_classification:
        Y = np.where(np.asarray(y) == 1, 1.0, -1.0)[:, None]
        columns = [0]
        loss = "squared_hinge"
    elif model.is_multiclass:
        labels = np.asarray(y).astype(np.int64)
        K_out = model.n_classes
        has_weight = np.array([w[labels == c].sum() > 0 for c in range(K_out)])
        # a class without weight is never predicted; the only class with weight gets f = 0
        columns = list(np.flatnonzero(has_weight)) if has_weight.sum() >= 2 else []
        Y = np.where(labels[:, None] == np.array(columns)[None, :], 1.0, -1.0)
        loss = "squared_hinge"
    else:
        T = as_2d(np.asarray(y, dtype=np.float64))
        model.y_mean_ = np.average(T, axis=0, weights=w)
        model.y_scale_ = np.sqrt(np.average((T - model.y_mean_) ** 2, axis=0, weights=w))
        model.y_scale_[model.y_scale_ == 0] = 1.0
        Y = (T - model.y_mean_) / model.y_scale_
        eps = np.asarray(model._epsilon(X, Y, w, C), dtype=np.float64)
        K_out = Y.shape[1]
        columns = list(range(K_out))
        loss = "squared_epsilon_insensitive"

    dual = np.zeros((m, K_out))
    intercept = np.zeros(K_out)
    info: dict[str, Any] = {"iterations": 0, "converged": True}
    if columns:
        with Progress(p.max_iter, "svm: nystroem fit", "iterations") as progress:
            W, b, info = solve(Phi, Y, w, C, loss, eps, p.max_iter, progress)
        dual[:, columns] = P @ W
        intercept[columns] = b
    if model.is_multiclass:
        intercept[~has_weight] = -np.inf
    if model.is_classification:
        model.y_mean_, model.y_scale_ = np.zeros(1), np.ones(1)
    model.sv_, model.dual_, model.intercept_ = L, dual, intercept
    model.gamma_ = gamma
    model.n_train_ = n
    if model.is_multiclass:
        model.temperature_ = 1.0
        F = np.where(has_weight, 0.0, -np.inf)[None, :].repeat(n, axis=0)
        if columns:
            F[:, columns] = (Phi @ W.astype(np.float32)).astype(np.float64) + b
        model._fit_temperature(F, labels, w)
    msg = (f"solver nystroem: {m} landmarks ({P.shape[1]} kernel directions), linear L2-loss "
           f"SVM on {n} training events, L-BFGS {info['iterations']} iterations"
           + ("" if info["converged"] else f" (not converged: {info.get('message')})"))
    log.info("svm: %s", msg)
    model.notes_.append(msg)
