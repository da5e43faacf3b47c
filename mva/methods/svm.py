"""Support vector machines (scikit-learn SVC/SVR), stored as support vectors and coefficients.

Kernel SVMs scale quadratically or worse with the training set, so the exact solver (libsvm,
``solver: exact``) trains on at most ``max_train_events`` events (a seeded random subset, logged).
Beyond that, ``solver: auto`` (or ``nystroem``) trains on all events (up to
``nystroem_max_events``) in the Nystroem approximation of the kernel: ``n_components`` landmarks
drawn from the training events span the feature space ``phi(x) = K(x, L) K_LL^{-1/2}``, in which a
linear L2-loss SVM (the squared hinge, LinearSVC's default; for regression the squared
epsilon-insensitive loss) is solved in the primal by L-BFGS. Why this and not an accelerated exact
solver: the cost is linear in the events (one n x m kernel matrix, then passes over n x m
features) and the model is a kernel expansion over the m landmarks, ``f(x) = K(x, L) alpha + b``
with ``alpha = K_LL^{-1/2} w``: stored, scored and exported exactly as support vectors and dual
coefficients are, at a cost per event fixed by m instead of growing with the training sample
(an exact SVC's support vectors are a fixed fraction of it). On overlapping classes a few hundred
thousand events with 1000 landmarks match or beat the exact SVC on 20k events (see
``benchmarks/bench_svm.py``). All events are scored; the decision function is evaluated in numpy
from the stored vectors, so no pickle is needed.

Multiclass uses one-vs-rest: one binary SVC per class k (class k against all others, with the
same weights and training subset as the binary SVM) gives a decision value ``f_k``. The
probabilities are ``softmax(f / T)`` with a single temperature ``T`` fitted by minimising the
weighted log loss on the training events (bounded 1-d search in ``log T``). The support vectors
of all classes' machines are stored once (the distinct events among them, one coefficient column
per class), so one kernel matrix serves every class. A class without training weight gets
``f_k = -inf`` (probability 0).
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from mva.methods.base import (
    Method,
    Params,
    State,
    as_2d,
    fixed_blocks,
    positive_weights,
    softmax,
)

__all__ = ["SVM", "kernel_matrix"]

log = logging.getLogger(__name__)

#: default C of the SVR (targets standardised): Cherkassky and Ma (2004), max(|mean +- 3 std|)
REGRESSION_C = 3.0
#: default epsilon of the SVR in units of the estimated noise of the target
EPSILON_PER_NOISE = 0.5
#: events from which scoring shows progress
PROGRESS_EVENTS = 50_000
#: bounds of ``log T`` in the temperature fit (decision values are of order 1)
LOG_T_BOUNDS = (-7.0, 7.0)


class SVMParams(Params):
    kernel: Literal["rbf", "poly", "linear"] = "rbf"
    #: None: 1 for classification; 3 for regression (Cherkassky and Ma's max(|mean +- 3 std|)
    #: of the target, which the SVR sees standardised)
    C: float | None = Field(None, gt=0, allow_inf_nan=False)
    gamma: Annotated[float, Field(gt=0, allow_inf_nan=False)] | Literal["scale", "auto"] = "scale"
    degree: int = Field(3, ge=1, le=100)
    coef0: float = Field(0.0, allow_inf_nan=False)
    #: SVR tube half-width, in units of the standardised target; None: half the noise of each
    #: target, estimated from the training events (:func:`mva.methods.adaptive.noise_sigma`)
    epsilon: float | None = Field(None, ge=0, allow_inf_nan=False)
    max_train_events: int = Field(20000, ge=10, le=100_000_000)
    tol: float = Field(1e-3, gt=0, allow_inf_nan=False)
    cache_size: float = Field(500.0, gt=0, le=1e6, allow_inf_nan=False)
    block_size: int = Field(2048, ge=1, le=10_000_000)
    #: exact (libsvm on at most max_train_events), nystroem (kernel approximation, linear in
    #: the events), or auto: exact up to max_train_events training events, nystroem beyond
    solver: Literal["auto", "exact", "nystroem"] = "auto"
    #: Nystroem landmarks (kernel centres of the approximate machine)
    n_components: int = Field(1000, ge=1, le=100_000)
    #: Nystroem: training events at most (a seeded random subset beyond; 4 bytes x events x
    #: n_components of memory)
    nystroem_max_events: int = Field(1_000_000, ge=10, le=100_000_000)
    #: Nystroem: L-BFGS iterations at most
    max_iter: int = Field(1000, ge=1, le=100_000)


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
    libraries = ("sklearn.svm",)
    Params = SVMParams

    def _subsample(self, n: int) -> np.ndarray:
        limit = self.params.max_train_events
        if n <= limit:
            return np.arange(n)
        msg = f"trained on {limit} of {n} training events (max_train_events)"
        log.info("svm: %s", msg)
        self.notes_.append(msg)
        return np.sort(np.random.default_rng(self.seed).choice(n, limit, replace=False))

    def solver(self, n: int) -> str:
        """The solver for ``n`` training events: ``exact`` or ``nystroem``."""
        p = self.params
        if p.solver != "auto":
            return p.solver
        return "exact" if n <= p.max_train_events else "nystroem"

    def _C(self) -> float:
        p = self.params
        return p.C if p.C is not None else (1.0 if self.is_classification or self.is_multiclass
                                            else REGRESSION_C)

    def fit(self, X, y, w, validation=None, monitor=None):
        from sklearn.svm import SVC, SVR

        self.solver_ = self.solver(len(X))
        if self.solver_ == "nystroem":
            from mva.methods._nystroem import fit_nystroem

            fit_nystroem(self, X, y, w)
            self.training_events_ = self.n_train_
            self.fitted_ = True
            return self
        idx = self._subsample(len(X))
        X, y, w = X[idx], y[idx], positive_weights(w[idx])
        w = w / w.mean() if w.mean() > 0 else w
        p = self.params
        C = self._C()
        common = dict(kernel=p.kernel, C=C, gamma=p.gamma, degree=p.degree, coef0=p.coef0,
                      tol=p.tol, cache_size=p.cache_size)
        self.n_train_ = self.training_events_ = len(X)
        if self.is_classification:
            svc = SVC(**common, random_state=self.seed).fit(X, y, sample_weight=w)
            self.sv_, self.dual_ = svc.support_vectors_, svc.dual_coef_[:1].T
            self.intercept_ = svc.intercept_[:1]
            self.gamma_ = float(svc._gamma)
            self.y_mean_, self.y_scale_ = np.zeros(1), np.ones(1)
        elif self.is_multiclass:
            self._fit_one_vs_rest(X, np.asarray(y).astype(np.int64), w, common)
        else:
            T = as_2d(y)
            self.y_mean_ = np.average(T, axis=0, weights=w)
            self.y_scale_ = np.sqrt(np.average((T - self.y_mean_) ** 2, axis=0, weights=w))
            self.y_scale_[self.y_scale_ == 0] = 1.0
            Ts = (T - self.y_mean_) / self.y_scale_
            epsilon = self._epsilon(X, Ts, w, C)
            svs, duals, icpts = [], [], []
            for j in range(T.shape[1]):
                svr = SVR(**common, epsilon=epsilon[j]).fit(X, Ts[:, j], sample_weight=w)
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

    def _epsilon(self, X: np.ndarray, Ts: np.ndarray, w: np.ndarray, C: float) -> np.ndarray:
        """The tube half-width of each standardised target: as given, else half its noise.

        The noise, not the target's spread, sets the scale: a tube wider than the noise leaves
        the residuals of a smooth, precise target unfitted (13x the noise floor with the
        former fixed 0.1 at noise 0.3 % of the range); at half the noise the fit is within a
        few per cent of the floor on the toys of ``benchmarks/bench_defaults.py``, as at
        Kwok and Tsang's asymptotically best 0.61 sigma, with fewer support vectors than
        narrower tubes."""
        p = self.params
        if p.epsilon is not None:
            return np.full(Ts.shape[1], p.epsilon)
        from mva.methods.adaptive import noise_sigma

        eps = EPSILON_PER_NOISE * noise_sigma(X, Ts, w, seed=self.seed)
        text = ", ".join(f"{e:.3g}" for e in eps)
        note = f"default epsilon = {text} (half the noise estimated by the Gamma test"
        if self.params.C is None:
            note += f"; C = {C:g}"
        self.notes_.append(note + ")")
        return eps

    def _fit_one_vs_rest(self, X: np.ndarray, y: np.ndarray, w: np.ndarray, common: dict
                         ) -> None:
        """One SVC per class against the rest, stacked; then the softmax temperature."""
        from sklearn.svm import SVC

        K = self.n_classes
        has_weight = np.array([w[y == c].sum() > 0 for c in range(K)])
        svs, duals, cols = [np.zeros((0, X.shape[1]))], [np.zeros(0)], [np.zeros(0, int)]
        self.intercept_ = np.zeros(K)
        self.gamma_ = 0.0
        for c in range(K):
            if not has_weight[c]:
                # nothing to learn the class from: it is never predicted
                self.intercept_[c] = -np.inf
                continue
            if not np.any(has_weight & (np.arange(K) != c)):
                continue  # the only class with weight: f = 0, all others are -inf
            svc = SVC(**common, random_state=self.seed).fit(X, (y == c).astype(np.int8),
                                                            sample_weight=w)
            # support_vectors_, not support_: with zero weights the indices refer to the
            # events libsvm kept, not to X
            svs.append(svc.support_vectors_)
            duals.append(svc.dual_coef_[0])
            cols.append(np.full(len(svc.dual_coef_[0]), c))
            self.intercept_[c] = svc.intercept_[0]
            self.gamma_ = float(svc._gamma)
        # the machines share support vectors: store each distinct one once, with one column of
        # coefficients per class, so that one kernel matrix serves all classes
        self.sv_, inverse = np.unique(np.vstack(svs), axis=0, return_inverse=True)
        self.dual_ = np.zeros((len(self.sv_), K))
        np.add.at(self.dual_, (inverse.ravel(), np.concatenate(cols)), np.concatenate(duals))
        self.temperature_ = 1.0
        self._fit_temperature(self._decision(X), y, w)

    def _fit_temperature(self, f: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
        """The softmax temperature of the one-vs-rest decision values ``f`` ``(n, K)``: the
        minimum of the weighted training log loss."""
        from scipy.optimize import minimize_scalar

        keep = w > 0

        def log_loss(log_t: float) -> float:
            z = f[keep] / np.exp(log_t)
            z = z - z.max(axis=1, keepdims=True)
            logp = z[np.arange(len(z)), y[keep]] - np.log(np.exp(z).sum(axis=1))
            return -float(np.average(logp, weights=w[keep]))

        res = minimize_scalar(log_loss, bounds=LOG_T_BOUNDS, method="bounded")
        self.temperature_ = float(np.exp(res.x))

    def _decision(self, X: np.ndarray) -> np.ndarray:
        from mva.progress import Progress

        p = self.params
        block = p.block_size
        out = np.empty((len(X), self.dual_.shape[1]))
        progress = Progress(len(X), "svm: scoring", "events") if len(X) >= PROGRESS_EVENTS else None
        for s, n, xb in fixed_blocks(X, block):
            K = kernel_matrix(xb, self.sv_, p.kernel, self.gamma_, p.degree, p.coef0)
            out[s:s + n] = (K @ self.dual_)[:n] + self.intercept_
            if progress is not None:
                progress.update(n)
        if progress is not None:
            progress.close()
        return out

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """The machines' decision values: ``(n,)`` for binary, ``(n, K)`` one-vs-rest ``f_k``."""
        self._check_fitted()
        out = self._decision(X)
        return out[:, 0] if self.is_classification else out

    def _predict(self, X):
        self._check_fitted()
        out = self._decision(X)
        if self.is_classification:
            return out[:, 0]
        if self.is_multiclass:
            return softmax(out / self.temperature_)
        return out * self.y_scale_ + self.y_mean_

    def state(self) -> State:
        arrays = {"support_vectors": self.sv_, "dual_coef": self.dual_,
                  "intercept": self.intercept_}
        meta = {"gamma": self.gamma_, "n_train": self.n_train_, "solver": self.solver_}
        if self.is_multiclass:
            meta.update(n_classes=self.n_classes, temperature=self.temperature_)
        else:
            arrays.update(y_mean=self.y_mean_, y_scale=self.y_scale_)
        return meta, arrays, {}

    def set_state(self, meta, arrays, blobs):
        self.gamma_, self.n_train_ = float(meta["gamma"]), int(meta["n_train"])
        self.training_events_ = self.n_train_
        self.solver_ = meta.get("solver", "exact")
        self.sv_, self.dual_ = arrays["support_vectors"], arrays["dual_coef"]
        self.intercept_ = arrays["intercept"]
        if "n_classes" in meta:
            self.n_classes = int(meta["n_classes"])
            self.temperature_ = float(meta["temperature"])
        else:
            self.y_mean_, self.y_scale_ = arrays["y_mean"], arrays["y_scale"]
