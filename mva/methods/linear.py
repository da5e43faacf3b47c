"""The linear baseline: Fisher discriminant (default) or logistic regression; weighted least
squares for regression.

Multiclass: ``fisher`` is multi-class linear discriminant analysis (Gaussian classes with one
shared covariance; the posterior probabilities are the softmax of the discriminants, see
:func:`lda_coefficients`), ``logistic`` is the multinomial logistic regression. Both are stored
as one coefficient column and one offset per class.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from mva.methods.base import Method, Params, State, as_2d, positive_weights, softmax

__all__ = ["Linear", "fisher_coefficients", "lda_coefficients"]


class LinearParams(Params):
    method: Literal["fisher", "logistic"] = "fisher"
    #: inverse regularisation strength of the logistic regression
    C: float = Field(1.0, gt=0, allow_inf_nan=False)


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


def lda_coefficients(X: np.ndarray, y: np.ndarray, w: np.ndarray, n_classes: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Multi-class LDA: ``(d, K)`` coefficients and ``(K,)`` offsets of the discriminants.

    The discriminant of class k is ``x^T S^-1 mu_k - mu_k^T S^-1 mu_k / 2 + log pi_k``, with
    ``mu_k`` the weighted class mean, ``pi_k`` the class's fraction of the training weight and
    ``S = sum_k pi_k C_k`` the pooled within-class covariance (``C_k`` as in
    :func:`fisher_coefficients`); its softmax is the posterior probability. ``S^-1`` is applied
    by least squares (pseudo-inverse), so constant features (e.g. always-empty pixels) are
    ignored instead of making ``S`` singular. A class without training weight gets the offset
    ``-inf``: probability 0.
    """
    d = X.shape[1]
    totals = np.array([w[y == c].sum() for c in range(n_classes)])
    if not totals.sum() > 0:
        raise ValueError("no training weight in any class")
    priors = totals / totals.sum()
    means = np.zeros((n_classes, d))
    S = np.zeros((d, d))
    for c in np.flatnonzero(totals > 0):
        m = y == c
        means[c] = np.average(X[m], axis=0, weights=w[m])
        S += priors[c] * np.atleast_2d(np.cov(X[m], rowvar=False, aweights=w[m], bias=True))
    coef = np.linalg.lstsq(S, means.T, rcond=None)[0]
    with np.errstate(divide="ignore"):
        offset = -0.5 * np.einsum("kd,dk->k", means, coef) + np.log(priors)
    return coef, offset


def _full_multinomial(coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray,
                      n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's logistic coefficients spread over all ``n_classes`` columns.

    Classes absent from the training labels get probability 0 (offset ``-inf``); with only two
    classes present scikit-learn fits one logit, which is the softmax of ``(0, logit)``.
    """
    full_coef = np.zeros((coef.shape[1], n_classes))
    full_icpt = np.full(n_classes, -np.inf)
    classes = classes.astype(int)
    if len(classes) == 2:
        coef = np.vstack([np.zeros_like(coef[0]), coef[0]])
        intercept = np.array([0.0, intercept[0]])
    full_coef[:, classes] = coef.T
    full_icpt[classes] = intercept
    return full_coef, full_icpt


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
        elif self.is_multiclass:
            y = np.asarray(y).astype(np.int64)
            if self.params.method == "fisher":
                self.coef_, self.intercept_ = lda_coefficients(X, y, wp, self.n_classes)
            else:
                from sklearn.linear_model import LogisticRegression

                # lbfgs fits the multinomial (softmax) model when there are more than two classes
                lr = LogisticRegression(C=self.params.C, max_iter=1000)
                lr.fit(X, y, sample_weight=wp)
                self.coef_, self.intercept_ = _full_multinomial(lr.coef_, lr.intercept_,
                                                                lr.classes_, self.n_classes)
        else:
            A = np.hstack([X, np.ones((len(X), 1))]) * np.sqrt(wp)[:, None]
            b = as_2d(y) * np.sqrt(wp)[:, None]
            sol = np.linalg.lstsq(A, b, rcond=None)[0]
            self.coef_, self.intercept_ = sol[:-1], sol[-1]
        self.fitted_ = True
        return self

    def _predict(self, X):
        self._check_fitted()
        # einsum's own loops, not BLAS: an event's value does not depend on the other events
        # in the call (apply chunks, k-fold routing give bit-identical scores)
        # (both C-ordered: einsum's summation order follows the memory layout)
        out = np.einsum("nd,dk->nk", np.ascontiguousarray(X, dtype=np.float64),
                        np.ascontiguousarray(self.coef_)) + self.intercept_
        if self.is_multiclass:
            return softmax(out)
        if self.is_classification:
            out = out[:, 0]
            if self.params.method == "logistic":
                out = 1.0 / (1.0 + np.exp(-out))
        return out

    def state(self) -> State:
        meta = {"n_classes": self.n_classes} if self.is_multiclass else {}
        return meta, {"coef": self.coef_, "intercept": np.asarray(self.intercept_)}, {}

    def set_state(self, meta, arrays, blobs):
        self.n_classes = int(meta.get("n_classes", self.n_classes))
        self.coef_, self.intercept_ = arrays["coef"], arrays["intercept"]
