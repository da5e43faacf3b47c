"""Defaults that adapt to the training sample, for parameters the user did not give.

Each function takes the (preprocessed) training events of one fit and returns the value to use
and a short description of how it was found, which the method records in its notes (and so in
``metrics.json`` and the report). They look at the training events only, on seeded subsamples,
and cost a small fraction of the fit they serve.

* :func:`choose_k` (kNN): the number of neighbours with the smallest leave-one-out error of the
  kNN estimate itself, for every ``k`` at once from one neighbour search.
* :func:`noise_sigma` (SVM regression): the noise of each target, by the Gamma test (the
  half mean squared difference of the targets of near neighbours, extrapolated to distance 0),
  which sets the width of the SVR's insensitive tube.
* :func:`bdt_max_depth`, :func:`bdt_min_child_weight`, :func:`early_stopping_rounds` (BDT):
  shallower trees for small samples, and a smallest hessian per leaf that grows with the square
  root of the sample, so that small samples are not fitted event by event.
"""

from __future__ import annotations

import numpy as np

__all__ = ["choose_k", "noise_sigma", "bdt_max_depth", "bdt_min_child_weight",
           "early_stopping_rounds",
           "LOO_EVENTS", "K_MAX"]

#: training events whose leave-one-out error is evaluated (a seeded subsample above this)
LOO_EVENTS = 4000
#: the largest k tried (and, where the error still falls there, the largest then)
K_MAX = 400
K_MAX_EXTENDED = 1500


def _neighbours(X: np.ndarray, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Distances and indices of the ``k`` nearest training events (``X``) of each row of ``Q``."""
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k).fit(X)
    return nn.kneighbors(Q, return_distance=True)


def _drop_self(idx: np.ndarray, dist: np.ndarray, rows: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """The neighbours of training events ``rows`` without the event itself (one column less).

    With duplicate events the event need not come first among its neighbours at distance 0:
    it is removed wherever it is (the last column where it is not among them)."""
    is_self = idx == rows[:, None]
    is_self[~is_self.any(axis=1), -1] = True
    order = np.argsort(is_self, axis=1, kind="stable")[:, :-1]
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(dist, order, axis=1)


def _query_rows(n: int, seed: int, limit: int = LOO_EVENTS) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def loo_errors(X: np.ndarray, y: np.ndarray, w: np.ndarray, task: str, n_classes: int = 2,
               k_max: int = K_MAX, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out error of the kNN estimate for ``k = 1 .. k_max``.

    For each of up to :data:`LOO_EVENTS` training events (seeded subsample; fewer for
    ``k_max`` above :data:`K_MAX`, so that the memory stays ~100 MB), its ``k_max``
    nearest other training events give the kNN estimate for every ``k`` at once (cumulative
    weighted sums). The error is the weighted mean squared difference from the truth: the Brier
    score of the signal (class) fractions for classification, the squared error of the
    standardised targets for regression. Returns ``(ks, errors)``.
    """
    n = len(X)
    k_max = int(min(k_max, n - 1))
    # the same memory whatever k_max: fewer events for more neighbours
    rows = _query_rows(n, seed, limit=max(500, LOO_EVENTS * K_MAX // max(k_max, K_MAX)))
    dist, idx = _neighbours(X, X[rows], k_max + 1)
    idx, _ = _drop_self(idx, dist, rows)
    wq = np.clip(w[rows], 0.0, None)
    wn = w[idx]                                            # (m, k_max): neighbour weights
    den = np.cumsum(wn, axis=1)
    safe = np.where(den != 0, den, 1.0)
    if task == "regression":
        T = y.reshape(n, -1)
        scale = T.std(axis=0)
        T = (T - T.mean(axis=0)) / np.where(scale > 0, scale, 1.0)
        err = np.zeros(idx.shape)
        for j in range(T.shape[1]):
            est = np.cumsum(wn * T[idx, j], axis=1) / safe
            err += (est - T[rows, j][:, None]) ** 2
    elif task == "multiclass":
        labels = y.astype(np.int64)
        err = np.zeros(idx.shape)
        for c in range(n_classes):
            frac = np.cumsum(np.where(labels[idx] == c, wn, 0.0), axis=1) / safe
            err += (frac - (labels[rows] == c)[:, None]) ** 2
    else:
        frac = np.cumsum(wn * y[idx], axis=1) / safe
        err = (frac - y[rows][:, None]) ** 2
    if wq.sum() <= 0:
        wq = np.ones(len(rows))
    return np.arange(1, k_max + 1), (wq[:, None] * err).sum(axis=0) / wq.sum()


def choose_k(X: np.ndarray, y: np.ndarray, w: np.ndarray, task: str, n_classes: int = 2,
             seed: int = 0) -> tuple[int, str]:
    """The k with the smallest leave-one-out error (:func:`loo_errors`), and how it was found.

    The leave-one-out error tracks the test error of the kNN estimate at this sample's density,
    so k grows with the sample and with the noise, and falls where the truth varies fast. Ties
    (a flat curve) go to the largest k within 0.2 % of the smallest error: smoother, and less
    apart between training and test scores.
    """
    n = len(X)
    if n < 3:
        return max(1, n), "all training events"
    def best_k(ks: np.ndarray, err: np.ndarray) -> int:
        return int(ks[np.flatnonzero(err <= float(err.min()) * 1.002 + 1e-15)[-1]])

    ks, err = loo_errors(X, y, w, task, n_classes, seed=seed)
    k = best_k(ks, err)
    if k == ks[-1] and ks[-1] < n - 1:
        # as good at the largest k tried (large, noisy samples): look further, once
        ks, err = loo_errors(X, y, w, task, n_classes, k_max=K_MAX_EXTENDED, seed=seed)
        k = best_k(ks, err)
    m = min(n, max(500, LOO_EVENTS * K_MAX // max(int(ks[-1]), K_MAX)))
    return k, f"leave-one-out error of {m} training events smallest for k in 1..{ks[-1]}"


#: neighbours whose target differences extrapolate to distance 0 in the Gamma test
GAMMA_NEIGHBOURS = 10


def noise_sigma(X: np.ndarray, T: np.ndarray, w: np.ndarray, seed: int = 0) -> np.ndarray:
    """The noise standard deviation of each target column of ``T``, by the Gamma test.

    For the ``p``-th nearest neighbour (p = 1 .. 10) of up to :data:`LOO_EVENTS` training
    events, ``gamma_p`` = half the squared target difference and ``delta_p`` = the mean squared
    distance. For a smooth truth ``gamma = sigma^2 + A delta`` at small distances, so the
    intercept of a straight-line fit is the noise variance (Stefansson, Koncar and Jones 1997).
    The intercept is kept between a hundredth of the nearest-neighbour value and that value
    (which is the noise plus the truth's variation over one neighbour distance), and scaled by
    the nearest neighbours' robust over plain second moment of the differences (at most 1;
    about 1 for Gaussian noise), so that a noise with tails gives the width of its core.
    """
    T = T.reshape(len(T), -1)
    keep = w > 0                # events without weight are no part of the fit: nor of this
    if keep.any() and not keep.all():
        X, T, w = X[keep], T[keep], w[keep]
    n = len(X)
    p = int(min(GAMMA_NEIGHBOURS, n - 1))
    if p < 1:
        return np.zeros(T.shape[1])
    rows = _query_rows(n, seed)
    dist, idx = _neighbours(X, X[rows], p + 1)
    idx, dist = _drop_self(idx, dist, rows)
    wq = np.clip(w[rows], 0.0, None)
    if wq.sum() <= 0:
        wq = np.ones(len(rows))
    delta = np.average(dist**2, axis=0, weights=wq)                  # (p,)
    out = np.empty(T.shape[1])
    for j in range(T.shape[1]):
        diff = T[idx, j] - T[rows, j][:, None]                         # (m, p)
        gamma = 0.5 * np.average(diff**2, axis=0, weights=wq)
        # the core of a noise with tails (converted photons): the nearest neighbours' robust
        # second moment, (1.4826 x the weighted median |difference|)^2 (the variance for a
        # Gaussian), over the plain one
        robust = (1.4826 * _weighted_median(np.abs(diff[:, 0]), wq)) ** 2
        core = min(1.0, robust / (2 * gamma[0])) if gamma[0] > 0 else 1.0
        if p >= 2 and np.ptp(delta) > 0:
            slope, intercept = np.polyfit(delta, gamma, 1)
        else:
            intercept = gamma[0]
        out[j] = np.sqrt(np.clip(intercept, 0.01 * gamma[0], gamma[0]) * core)
    return out


def _weighted_median(x: np.ndarray, w: np.ndarray) -> float:
    order = np.argsort(x, kind="stable")
    cum = np.cumsum(w[order])
    return float(x[order][np.searchsorted(cum, 0.5 * cum[-1])])


#: below this many training events the BDT's trees are two levels deep, else three
SHALLOW_EVENTS = 10_000


def bdt_max_depth(n_events: int, task: str = "classification") -> int:
    """``max_depth`` for ``n_events`` training events: for classification 2 below
    :data:`SHALLOW_EVENTS`, else 3; for regression 3.

    Measured on the toys of ``benchmarks/bench_defaults.py``: with a few thousand events
    depth-3 trees fit the sample's fluctuations into the classifier's scores (train/test KS
    p-values near 0.01 at 1000 events per class) for no gain in test AUC over depth 2; from
    ~10 000 on both are equal. A regression needs the third level at every size (RMS over the
    noise floor 1.16 against 1.28 at depth 2 on 2000 events, 1.63 against 2.08 on 10 000)."""
    if task == "regression":
        return 3
    return 2 if n_events < SHALLOW_EVENTS else 3


def bdt_min_child_weight(n_events: int, n_classes: int = 2) -> float:
    """``min_child_weight`` for ``n_events`` training events of mean weight 1: ``sqrt(n) / 4``,
    at least 1 (a leaf of the logistic loss then holds at least about sqrt(n) events near the
    decision boundary, where the hessian p (1 - p) is 1/4, and more where the response is
    steep). With K classes (softmax) an event's hessian in one class's tree is about
    (1/K)(1 - 1/K), not 1/4: the same events per leaf take ``sqrt(n) (K - 1) / K^2``."""
    scale = 4.0 * (n_classes - 1) / n_classes**2 if n_classes > 2 else 1.0
    return float(max(1.0, scale * np.sqrt(max(n_events, 0)) / 4.0))


def early_stopping_rounds(learning_rate: float) -> int:
    """Rounds without improvement of the validation loss before a BDT stops: ``5 /
    learning_rate`` (50 at 0.1), at least 20, so that the patience covers the same change of
    the model whatever the step size."""
    return int(max(20, round(5.0 / learning_rate)))
