"""Train/test splits (hold-out and k-fold) and training-weight normalisation.

``groups`` is the task's list of ``(class name, label)`` in class order (``None`` for
regression): the split and the normalisation are done per class.

A splitter yields :class:`Fold` objects (as scikit-learn's ``split()`` yields index pairs): the
hold-out split is the one-fold case of k-fold, and a model is trained per (method, fold).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mva.config import Split, TrainSize
from mva.errors import ConfigError

__all__ = ["split_indices", "training_weights", "validation_split", "random_parts",
           "BINARY_GROUPS", "Fold", "HoldOut", "KFold", "make_splitter"]

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
    # the indices sorted by marking them: two sorts of n indices cost more than the permutations
    member, train = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    for what, idx in _group_indices(labels, n, groups):
        ts = split.train_size
        per_class = isinstance(ts, TrainSize)
        requested = ts.get(what) if per_class else ts
        key = f"{source}: split.train_size" + (f".{what}" if per_class else "")
        if len(idx) < 2:
            raise ConfigError(f"{source}: need at least 2 {what} events to split, got {len(idx)}")
        k = _n_train(len(idx), split, requested, key, what)
        perm = rng.permutation(idx)
        member[idx] = True
        train[perm[:k]] = True
    return np.flatnonzero(train), np.flatnonzero(member & ~train)


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


def random_parts(labels: np.ndarray | None, n: int, k: int, seed: int, groups: Groups = None,
                 rotate: bool = False) -> np.ndarray:
    """The part (int64 in ``0 .. k-1``) of every event at random with the seed, each class
    spread evenly over the parts: its events in a seeded order take the parts in turn, from
    part 0 or, with ``rotate``, from a random part (so that the parts with one event more are
    not always the first ones)."""
    rng = np.random.default_rng(seed)
    part = np.empty(n, dtype=np.int64)
    for _, idx in _group_indices(labels, n, groups):
        start = int(rng.integers(k)) if rotate else 0
        perm = rng.permutation(idx)
        part[perm] = (np.arange(len(perm)) + start) % k
    return part


@dataclass(frozen=True)
class Fold:
    """One model's events (indices into the sample): it trains on ``train``, scores ``test``
    (events it never saw: the TestTree) and ``score_train`` (events it trained on: the
    TrainTree)."""

    index: int
    train: np.ndarray
    test: np.ndarray
    score_train: np.ndarray


class HoldOut:
    """One train/test split by ``train_size`` or ``test_fraction`` (one fold)."""

    def __init__(self, split: Split, source: str = "<config>"):
        self.split, self.source = split, source
        self.n_folds = 1

    def folds(self, labels: np.ndarray | None, n: int, groups: Groups = None,
              fold_values: np.ndarray | None = None) -> list[Fold]:
        train, test = split_indices(labels, n, self.split, self.source, groups)
        return [Fold(0, train, test, train)]


class KFold:
    """k folds by an integer expression of the event (``fold_expression``, taken modulo k, so
    negative and huge values work) or at random with the seed, per class. Model k trains on
    every fold but k and scores fold k; it also scores fold k-1 (which it trained on) for the
    TrainTree, so that every event has one training score."""

    def __init__(self, split: Split, source: str = "<config>"):
        self.split, self.source = split, source
        self.n_folds = int(split.folds)

    def assign(self, labels: np.ndarray | None, n: int, groups: Groups = None,
               fold_values: np.ndarray | None = None) -> np.ndarray:
        """The fold of every event (int64 in ``0 .. k-1``)."""
        k = self.n_folds
        if self.split.fold_expression is not None:
            if fold_values is None or len(fold_values) != n:
                raise ConfigError(f"{self.source}: split.fold_expression: no values were read")
            return np.mod(np.asarray(fold_values, dtype=np.int64), k)
        return random_parts(labels, n, k, self.split.seed, groups)

    def folds(self, labels: np.ndarray | None, n: int, groups: Groups = None,
              fold_values: np.ndarray | None = None) -> list[Fold]:
        fold = self.assign(labels, n, groups, fold_values)
        k = self.n_folds
        for name, idx in _group_indices(labels, n, groups):
            counts = np.bincount(fold[idx], minlength=k)
            if counts.min() == 0:
                what = "" if name == "all" else f" {name}"
                raise ConfigError(
                    f"{self.source}: split.folds: fold {int(np.argmin(counts))} has no{what} "
                    f"events ({', '.join(map(str, counts))} per fold); check "
                    "split.fold_expression or use fewer folds")
        return [Fold(j, np.flatnonzero(fold != j), np.flatnonzero(fold == j),
                     np.flatnonzero(fold == (j - 1) % k)) for j in range(k)]


def make_splitter(split: Split, source: str = "<config>") -> HoldOut | KFold:
    """The splitter of a config's ``split``."""
    return KFold(split, source) if split.kfold else HoldOut(split, source)
