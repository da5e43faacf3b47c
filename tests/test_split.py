"""Train/test split and training-weight normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from mva.config import Split, TrainSize
from mva.errors import ConfigError
from mva.split import split_indices, training_weights, validation_split


@pytest.fixture
def labels() -> np.ndarray:
    return np.r_[np.ones(300, dtype=np.int8), np.zeros(500, dtype=np.int8)]


def test_train_size_per_class_is_exact_disjoint_and_complete(labels: np.ndarray) -> None:
    split = Split(train_size=TrainSize(signal=100, background=250), seed=3)
    train, test = split_indices(labels, len(labels), split)
    assert (labels[train] == 1).sum() == 100 and (labels[train] == 0).sum() == 250
    assert np.intersect1d(train, test).size == 0
    np.testing.assert_array_equal(np.sort(np.r_[train, test]), np.arange(len(labels)))
    # reproducible from the seed, different with another seed
    again = split_indices(labels, len(labels), split)[0]
    other = split_indices(labels, len(labels), Split(train_size=split.train_size, seed=4))[0]
    np.testing.assert_array_equal(train, again)
    assert not np.array_equal(train, other)


def test_test_fraction_and_tmva_zero_meaning_half(labels: np.ndarray) -> None:
    train, test = split_indices(labels, len(labels), Split(test_fraction=0.25))
    assert (labels[test] == 1).sum() == 75 and (labels[test] == 0).sum() == 125
    train, _ = split_indices(labels, len(labels), Split(train_size=TrainSize(signal=0,
                                                                              background=0)))
    assert (labels[train] == 1).sum() == 150 and (labels[train] == 0).sum() == 250


def test_too_many_training_events_names_the_key(labels: np.ndarray) -> None:
    split = Split(train_size=TrainSize(signal=300, background=10))
    with pytest.raises(ConfigError, match=r"split\.train_size\.signal: 300 .* only 300 signal"):
        split_indices(labels, len(labels), split, "cfg.yaml")


def test_regression_split_without_labels() -> None:
    train, test = split_indices(None, 1000, Split(train_size=600, seed=1))
    assert len(train) == 600 and len(test) == 400


def test_weight_normalisations(labels: np.ndarray) -> None:
    w = np.random.default_rng(0).uniform(0.1, 3.0, len(labels))
    sig = labels == 1
    equal = training_weights(labels, w, "equal", "keep")
    assert equal[sig].sum() == pytest.approx(equal[~sig].sum())
    assert equal.sum() == pytest.approx(len(w))
    # within a class the relative weights are kept
    np.testing.assert_allclose(equal[sig] / w[sig], (equal[sig] / w[sig])[0])
    mean = training_weights(labels, w, "mean", "keep")
    assert mean[sig].mean() == pytest.approx(1.0) and mean[~sig].mean() == pytest.approx(1.0)
    np.testing.assert_array_equal(training_weights(labels, w, "none", "keep"), w)


def test_negative_weights_kept_or_ignored_in_training_only(labels: np.ndarray) -> None:
    w = np.ones(len(labels))
    w[::7] = -0.5
    kept = training_weights(labels, w, "none", "keep")
    ignored = training_weights(labels, w, "none", "ignore")
    assert (kept < 0).sum() == (w < 0).sum()
    assert (ignored[w < 0] == 0).all() and (ignored[w > 0] == 1).all()
    assert (w < 0).sum() > 0  # the input itself is untouched
    with pytest.raises(ConfigError, match="negative_weights: ignore"):
        training_weights(labels, -np.ones(len(labels)), "equal", "keep")


def test_validation_split_holds_out_a_fraction_per_class(labels: np.ndarray) -> None:
    fit, val = validation_split(labels, len(labels), 0.2, seed=5)
    assert (labels[val] == 1).sum() == 60 and (labels[val] == 0).sum() == 100
    assert np.intersect1d(fit, val).size == 0 and len(fit) + len(val) == len(labels)


def test_split_is_the_seeded_permutation_of_each_class() -> None:
    """The events of a seed stay the same from version to version: per class (signal first),
    the first ``k`` of numpy's seeded permutation of the class's indices train, sorted."""
    rng = np.random.default_rng(5)
    labels = (rng.random(10_001) < 0.3).astype(np.int8)
    split = Split(test_fraction=0.4, seed=11)
    train, test = split_indices(labels, len(labels), split)
    draw = np.random.default_rng(11)
    want_train, want_test = [], []
    for label in (1, 0):
        idx = np.flatnonzero(labels == label)
        perm = draw.permutation(idx)
        k = len(idx) - int(round(0.4 * len(idx)))
        want_train += list(perm[:k])
        want_test += list(perm[k:])
    np.testing.assert_array_equal(train, sorted(want_train))
    np.testing.assert_array_equal(test, sorted(want_test))
