"""Support vector machines (scikit-learn SVC/SVR), stored as support vectors and coefficients.

Kernel SVMs scale quadratically or worse with the training set, so at most ``max_train_events``
events (a seeded random subset, logged) are used for training; all events are scored. The decision
function is evaluated in numpy from the stored support vectors, so no pickle is needed.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from pydantic import Field

from mva.methods.base import Method, Params, State, as_2d, positive_weights

__all__ = ["SVM", "kernel_matrix"]

log = logging.getLogger(__name__)


class SVMParams(Params):
    kernel: Literal["rbf", "poly", "linear"] = "rbf"
    C: float = Field(1.0, gt=0)
    gamma: float | Literal["scale", "auto"] = "scale"
    degree: int = Field(3, ge=1)
    coef0: float = 0.0
    #: SVR tube half-width, in units of the standardised target
    epsilon: float = Field(0.1, ge=0)
    max_train_events: int = Field(20000, ge=10)
    tol: float = Field(1e-3, gt=0)
    cache_size: float = Field(500.0, gt=0)
    block_size: int = Field(8192, ge=1)


def kernel_matrix(A: np.ndarray, B: np.ndarray, kernel: str, gamma: float, degree: int,
                  coef0: float) -> np.ndarray:
    """K(a, b) as scikit-learn's SVC defines it."""
    dot = A @ B.T
    if kernel == "linear":
        return dot
    if kernel == "poly":
        return (gamma * dot + coef0) ** degree
    sq = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2 * dot
    return np.exp(-gamma * np.maximum(sq, 0.0))


class SVM(Method):
    Params = SVMParams

    def _subsample(self, n: int) -> np.ndarray:
        limit = self.params.max_train_events
        if n <= limit:
            return np.arange(n)
        msg = f"trained on {limit} of {n} training events (max_train_events)"
        log.info("svm: %s", msg)
        self.notes_.append(msg)
        return np.sort(np.random.default_rng(self.seed).choice(n, limit, replace=False))

    def fit(self, X, y, w, validation=None, monitor=None):
        from sklearn.svm import SVC, SVR

        idx = self._subsample(len(X))
        X, y, w = X[idx], y[idx], positive_weights(w[idx])
        w = w / w.mean() if w.mean() > 0 else w
        p = self.params
        common = dict(kernel=p.kernel, C=p.C, gamma=p.gamma, degree=p.degree, coef0=p.coef0,
                      tol=p.tol, cache_size=p.cache_size)
        self.n_train_ = len(X)
        if self.is_classification:
            svc = SVC(**common, random_state=self.seed).fit(X, y, sample_weight=w)
            self.sv_, self.dual_ = svc.support_vectors_, svc.dual_coef_[:1].T
            self.intercept_ = svc.intercept_[:1]
            self.gamma_ = float(svc._gamma)
            self.y_mean_, self.y_scale_ = np.zeros(1), np.ones(1)
        else:
            T = as_2d(y)
            self.y_mean_ = np.average(T, axis=0, weights=w)
            self.y_scale_ = np.sqrt(np.average((T - self.y_mean_) ** 2, axis=0, weights=w))
            self.y_scale_[self.y_scale_ == 0] = 1.0
            Ts = (T - self.y_mean_) / self.y_scale_
            svs, duals, icpts = [], [], []
            for j in range(T.shape[1]):
                svr = SVR(**common, epsilon=p.epsilon).fit(X, Ts[:, j], sample_weight=w)
                svs.append(svr.support_vectors_)
                duals.append(svr.dual_coef_[0])
                icpts.append(svr.intercept_[0])
                self.gamma_ = float(svr._gamma)
            # all targets' support vectors stacked, each column using only its own rows
            self.sv_ = np.vstack(svs)
            self.dual_ = np.zeros((len(self.sv_), T.shape[1]))
            offsets = np.cumsum([0] + [len(sv) for sv in svs])
            for j, d in enumerate(duals):
                self.dual_[offsets[j]:offsets[j + 1], j] = d
            self.intercept_ = np.array(icpts)
        self.fitted_ = True
        return self

    def _predict(self, X):
        self._check_fitted()
        p = self.params
        out = np.empty((len(X), self.dual_.shape[1]))
        for s in range(0, len(X), p.block_size):
            K = kernel_matrix(X[s:s + p.block_size], self.sv_, p.kernel, self.gamma_, p.degree,
                              p.coef0)
            out[s:s + p.block_size] = K @ self.dual_ + self.intercept_
        if self.is_classification:
            return out[:, 0]
        return out * self.y_scale_ + self.y_mean_

    def state(self) -> State:
        arrays = {"support_vectors": self.sv_, "dual_coef": self.dual_,
                  "intercept": self.intercept_, "y_mean": self.y_mean_, "y_scale": self.y_scale_}
        return {"gamma": self.gamma_, "n_train": self.n_train_}, arrays, {}

    def set_state(self, meta, arrays, blobs):
        self.gamma_, self.n_train_ = float(meta["gamma"]), int(meta["n_train"])
        self.sv_, self.dual_ = arrays["support_vectors"], arrays["dual_coef"]
        self.intercept_ = arrays["intercept"]
        self.y_mean_, self.y_scale_ = arrays["y_mean"], arrays["y_scale"]
