"""Which inputs matter: per-variable separation and per-method permutation importance."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mva.evaluation.classification import roc_auc, separation

__all__ = ["variable_separation", "permutation_importance"]


def variable_separation(X: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                        names: list[str]) -> dict[str, float]:
    """TMVA's <S^2> of each input's signal and background distributions."""
    return {n: float(separation(X[:, j], labels, weights)) for j, n in enumerate(names)}


def permutation_importance(
    predict: Callable[[np.ndarray], np.ndarray], X: np.ndarray, labels: np.ndarray,
    weights: np.ndarray, names: list[str], seed: int = 0, max_events: int = 20000,
    metric: Callable[[np.ndarray, np.ndarray, np.ndarray], float] = roc_auc,
    folds: np.ndarray | None = None,
) -> dict[str, float]:
    """Drop in a weighted figure of merit (default the AUC; multiclass: the accuracy) when one
    input is randomly permuted (on at most ``max_events``).

    ``folds`` (k-fold runs): the fold of every event, passed on as ``predict(X, folds)`` so
    that each event is scored by the model that did not train on it.
    """
    rng = np.random.default_rng(seed)
    if len(X) > max_events:
        idx = np.sort(rng.choice(len(X), max_events, replace=False))
        X, labels, weights = X[idx], labels[idx], weights[idx]
        folds = None if folds is None else folds[idx]

    def score(Xs: np.ndarray) -> float:
        pred = predict(Xs) if folds is None else predict(Xs, folds)
        return metric(pred, labels, weights)

    base = score(X)
    out = {}
    for j, name in enumerate(names):
        Xp = X.copy()
        Xp[:, j] = rng.permutation(Xp[:, j])
        out[name] = float(base - score(Xp))
    return out
