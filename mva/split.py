"""Train/test split and training-weight normalisation.

``groups`` is the task's list of ``(class name, label)`` in class order (``None`` for
regression): the split and the normalisation are done per class.
"""

from __future__ import annotations

import numpy as np

from mva.config import Split, TrainSize
from mva.errors import ConfigError

__all__ = ["split_indices", "training_weights", "validation_split", "BINARY_GROUPS"]

#: binary classification: signal is label 1, background label 0
BINARY_GROUPS: list[tuple[str, int]] = [("signal", 1), ("background", 0)]

Groups = list[tuple[str, int]] | None


def _n_train(n: int, split: Split, requested: int | None, key: str, what: str) -> int:
    if requested is not None:
        if requested == 0:  # TMVA: 0 means half of the events
            return n // 2
        if requested >= n:
            raise ConfigError(f"{key}: {requested} training events requested but only {n} "
                              f"{what} events pass the selection (the rest is the test sample)")
        return requested
    fraction = split.test_fraction if split.test_fraction is not None else 0.5
    n_test = int(round(fraction * n))
    return min(max(n - n_test, 1), n - 1) if n > 1 else n


def _group_indices(labels: np.ndarray | None, n: int, groups: Groups
                   ) -> list[tuple[str, np.ndarray]]:
    if labels is None:
        return [("all", np.arange(n))]
    return [(name, np.flatnonzero(labels == label)) for name, label in groups or BINARY_GROUPS]


def split_indices(labels: np.ndarray | None, n: int, split: Split, source: str = "<config>",
                  groups: Groups = None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random train/test indices, per class for classification, each sorted."""
    rng = np.random.default_rng(split.seed)
    train, test = [], []
    for what, idx in _group_indices(labels, n, groups):
        ts = split.train_size
        per_class = isinstance(ts, TrainSize)
        requested = ts.get(what) if per_class else ts
        key = f"{source}: split.train_size" + (f".{what}" if per_class else "")
        if len(idx) < 2:
            raise ConfigError(f"{source}: need at least 2 {what} events to split, got {len(idx)}")
        k = _n_train(len(idx), split, requested, key, what)
        perm = rng.permutation(idx)
        train.append(perm[:k])
        test.append(perm[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def training_weights(labels: np.ndarray | None, weights: np.ndarray, normalization: str,
                     negative: str, groups: Groups = None) -> np.ndarray:
    """Weights used in training.

    ``normalization``: ``equal`` (every class sums to the same total, mean weight 1 overall),
    ``mean`` (each class has mean weight 1) or ``none``. ``negative``: ``keep`` or ``ignore``
    (negative weights set to 0 for training; evaluation always uses the original weights).
    """
    w = np.array(weights, dtype=np.float64)
    if negative == "ignore":
        w[w < 0] = 0.0
    if labels is None:
        if normalization != "none" and w.sum() > 0:
            w *= len(w) / w.sum()
        return w
    n = len(w)
    groups = groups or BINARY_GROUPS
    for name, label in groups:
        m = labels == label
        total = w[m].sum()
        # also without normalisation: a class without positive weight cannot be learnt
        if total <= 0:
            raise ConfigError(f"the {name} training weights sum to {total:g} (<= 0); check the "
                              "weights or use split.negative_weights: ignore")
        if normalization != "none":
            target = n / len(groups) if normalization == "equal" else m.sum()
            w[m] *= target / total
    return w


def validation_split(labels: np.ndarray | None, n: int, fraction: float, seed: int,
                     groups: Groups = None) -> tuple[np.ndarray, np.ndarray]:
    """Hold out a seeded fraction of the training events (per class) for early stopping."""
    rng = np.random.default_rng(seed + 1)
    fit, val = [], []
    for _, idx in _group_indices(labels, n, groups):
        perm = rng.permutation(idx)
        k = max(1, int(round(fraction * len(idx))))
        val.append(perm[:k])
        fit.append(perm[k:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(val))
