"""The linear baseline: Fisher discriminant (default) or logistic regression; weighted least
squares for regression."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from mva.methods.base import Method, Params, State, as_2d, positive_weights

__all__ = ["Linear", "fisher_coefficients"]


class LinearParams(Params):
    method: Literal["fisher", "logistic"] = "fisher"
    #: inverse regularisation strength of the logistic regression
    C: float = Field(1.0, gt=0)


def fisher_coefficients(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    """Fisher's discriminant: coefficients ``W^-1 (mu_S - mu_B)`` with W the summed weighted
    within-class covariance, and the offset that puts the class-mean midpoint at 0.

    The class covariances are ``sum w (x - mu)(x - mu)^T / sum w`` (as TMVA's): an integer weight
    then equals that many copies of the event, which the bias-corrected ``aweights`` estimator
    does not give (and it diverges when one event carries most of a class's weight).
    """
    means, covs = [], []
    for label in (1, 0):
        m = y == label
        means.append(np.average(X[m], axis=0, weights=w[m]))
        covs.append(np.atleast_2d(np.cov(X[m], rowvar=False, aweights=w[m], bias=True)))
    W = covs[0] + covs[1]
    coef = np.linalg.lstsq(W, means[0] - means[1], rcond=None)[0]
    offset = -float(coef @ (means[0] + means[1]) / 2)
    return coef, offset


class Linear(Method):
    Params = LinearParams

    def fit(self, X, y, w, validation=None, monitor=None):
        X = np.asarray(X, dtype=np.float64)
        wp = positive_weights(w)
        if self.is_classification:
            if self.params.method == "fisher":
                self.coef_, self.intercept_ = fisher_coefficients(X, y, wp)
                self.coef_ = self.coef_[:, None]
                self.intercept_ = np.array([self.intercept_])
            else:
                from sklearn.linear_model import LogisticRegression

                lr = LogisticRegression(C=self.params.C, max_iter=1000)
                lr.fit(X, y, sample_weight=wp)
                self.coef_, self.intercept_ = lr.coef_.T, lr.intercept_
        else:
            A = np.hstack([X, np.ones((len(X), 1))]) * np.sqrt(wp)[:, None]
            b = as_2d(y) * np.sqrt(wp)[:, None]
            sol = np.linalg.lstsq(A, b, rcond=None)[0]
            self.coef_, self.intercept_ = sol[:-1], sol[-1]
        self.fitted_ = True
        return self

    def _predict(self, X):
        self._check_fitted()
        out = np.asarray(X, dtype=np.float64) @ self.coef_ + self.intercept_
        if self.is_classification:
            out = out[:, 0]
            if self.params.method == "logistic":
                out = 1.0 / (1.0 + np.exp(-out))
        return out

    def state(self) -> State:
        return {}, {"coef": self.coef_, "intercept": np.asarray(self.intercept_)}, {}

    def set_state(self, meta, arrays, blobs):
        self.coef_, self.intercept_ = arrays["coef"], arrays["intercept"]
