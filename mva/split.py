"""Train/test split and training-weight normalisation."""

from __future__ import annotations

import numpy as np

from mva.config import Split, TrainSize
from mva.errors import ConfigError

__all__ = ["split_indices", "training_weights", "validation_split"]


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


def split_indices(labels: np.ndarray | None, n: int, split: Split, source: str = "<config>"
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random train/test indices, per class for classification, each sorted."""
    rng = np.random.default_rng(split.seed)
    groups = [("signal", np.flatnonzero(labels == 1)), ("background", np.flatnonzero(labels == 0))
              ] if labels is not None else [("all", np.arange(n))]
    train, test = [], []
    for what, idx in groups:
        ts = split.train_size
        requested = getattr(ts, what) if isinstance(ts, TrainSize) else ts
        key = f"{source}: split.train_size" + (f".{what}" if isinstance(ts, TrainSize) else "")
        if len(idx) < 2:
            raise ConfigError(f"{source}: need at least 2 {what} events to split, got {len(idx)}")
        k = _n_train(len(idx), split, requested, key, what)
        perm = rng.permutation(idx)
        train.append(perm[:k])
        test.append(perm[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def training_weights(labels: np.ndarray | None, weights: np.ndarray, normalization: str,
                     negative: str) -> np.ndarray:
    """Weights used in training.

    ``normalization``: ``equal`` (both classes sum to the same total, mean weight 1 overall),
    ``mean`` (each class has mean weight 1) or ``none``. ``negative``: ``keep`` or ``ignore``
    (negative weights set to 0 for training; evaluation always uses the original weights).
    """
    w = np.array(weights, dtype=np.float64)
    if negative == "ignore":
        w[w < 0] = 0.0
    if labels is None or normalization == "none":
        if normalization != "none" and w.sum() > 0:
            w *= len(w) / w.sum()
        return w
    n = len(w)
    for label in (0, 1):
        m = labels == label
        total = w[m].sum()
        if total <= 0:
            raise ConfigError(f"the {'signal' if label else 'background'} training weights sum "
                              f"to {total:g} (<= 0); check the weights or use "
                              "split.negative_weights: ignore")
        target = n / 2 if normalization == "equal" else m.sum()
        w[m] *= target / total
    return w


def validation_split(labels: np.ndarray | None, n: int, fraction: float, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Hold out a seeded fraction of the training events (per class) for early stopping."""
    rng = np.random.default_rng(seed + 1)
    groups = [np.flatnonzero(labels == c) for c in (1, 0)] if labels is not None else [np.arange(n)]
    fit, val = [], []
    for idx in groups:
        perm = rng.permutation(idx)
        k = max(1, int(round(fraction * len(idx))))
        val.append(perm[:k])
        fit.append(perm[k:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(val))
