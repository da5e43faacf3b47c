"""The interface every method implements, and its storage without pickle.

A fitted method is stored as ``meta`` (JSON), ``arrays`` (``.npz``, read with
``allow_pickle=False``) and optional ``blobs`` (bytes in a documented format, e.g. xgboost UBJSON).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from mva.errors import NotFittedError

__all__ = ["Method", "Params", "State"]


class Params(BaseModel):
    """Base of every method's parameter model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


State = tuple[dict[str, Any], dict[str, np.ndarray], dict[str, bytes]]


class Method:
    """A classifier/regressor on preprocessed float64 features.

    ``task`` is ``"classification"`` (binary), ``"multiclass"`` or ``"regression"``:

    - binary: ``y`` holds labels (1 signal, 0 background), ``predict`` returns one score per
      event, larger = more signal-like;
    - multiclass: ``y`` holds class indices ``0 .. n_classes - 1``, ``predict`` returns
      ``(n, n_classes)`` per-class scores that are probabilities (each row sums to 1);
    - regression: ``y`` is ``(n, n_targets)``, ``predict`` returns ``(n, n_targets)``.

    Event weights are used in training by every method.
    """

    Params: ClassVar[type[Params]] = Params
    #: preprocessing used when the config does not say
    default_preprocess: ClassVar[list[str]] = ["standardize"]
    #: the libraries that fitting imports (seconds each: imported ahead, in a thread, while the
    #: inputs are read; see :func:`mva.methods.import_ahead`)
    libraries: ClassVar[tuple[str, ...]] = ()
    #: the method can hold out a validation split for early stopping
    supports_validation: ClassVar[bool] = False
    #: the fit sets negative event weights to 0 (so the class composition it learns is that of
    #: the clipped weights)
    clips_negative_weights: ClassVar[bool] = True
    #: events the last fit really used (a subset, or without the validation events); set by
    #: ``fit``, recorded as ``training_events`` in ``metrics.json``
    training_events_: int | None = None

    def __init__(self, params: dict[str, Any], task: str, seed: int = 0, n_classes: int = 2):
        self.params = self.Params(**params)
        self.task = task
        self.seed = seed
        #: number of classes (multiclass); 2 for binary classification and unused in regression
        self.n_classes = n_classes
        self.history_: dict[str, list[float]] = {}
        self.notes_: list[str] = []

    @classmethod
    def check_task(cls, task: str, params: Params) -> None:
        """Raise ValueError when the parameters do not fit the task."""

    @property
    def is_classification(self) -> bool:
        """Binary classification (one score per event)."""
        return self.task == "classification"

    @property
    def is_multiclass(self) -> bool:
        """Multiclass classification (``(n, n_classes)`` probabilities per event)."""
        return self.task == "multiclass"

    def wants_validation(self) -> float:
        """Fraction of training events to hold out for validation (0: none)."""
        return 0.0

    def fit(
        self, X: np.ndarray, y: np.ndarray, w: np.ndarray,
        validation: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
        monitor: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> Method:
        """Train. ``validation`` steers early stopping; ``monitor`` is only recorded in history."""
        raise NotImplementedError

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_with_sigma(X)[0]

    def take_fit_predictions(self) -> list[tuple[np.ndarray, np.ndarray | None]] | None:
        """What :meth:`predict_with_sigma` returns for the events of the last :meth:`fit` and,
        second, for its ``validation`` events, where the fit had them at no cost (xgboost
        keeps the predictions of its training and evaluation matrices up to date as it adds
        trees); else None. Handed out once (they are not kept with the model)."""
        out = getattr(self, "_fit_predictions", None)
        self._fit_predictions = None
        return out

    def predict_with_sigma(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Prediction and, for methods that estimate it, the per-event width (else None)."""
        return self._predict(X), None

    def _predict(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not getattr(self, "fitted_", False):
            raise NotFittedError(f"{type(self).__name__} is not trained yet; call fit first")

    # storage
    def state(self) -> State:
        raise NotImplementedError

    def set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray],
                  blobs: dict[str, bytes]) -> None:
        raise NotImplementedError

    @classmethod
    def from_state(cls, params: dict[str, Any], task: str, state: State, n_classes: int = 2
                   ) -> Method:
        m = cls(params, task, n_classes=n_classes)
        m.set_state(*state)
        m.fitted_ = True
        return m


def positive_weights(w: np.ndarray) -> np.ndarray:
    """Training weights for methods that cannot use negative ones: negatives set to 0."""
    return np.clip(w, 0.0, None)


#: below this many events, threads cost more than they bring (OpenMP start-up and spin-waits)
SMALL_PROBLEM = 100_000


def n_threads(requested: int | None, n_events: int) -> int:
    """Threads for a fit: as requested, else 1 for small problems and all usable cores otherwise."""
    import os

    if requested:
        return requested
    if n_events < SMALL_PROBLEM:
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def as_2d(y: np.ndarray) -> np.ndarray:
    return y.reshape(len(y), -1)


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(n, K)`` scores, stable for large values."""
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def check_class_labels(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Multiclass labels as int64, or ValueError when they are not class indices."""
    labels = np.asarray(y)
    as_int = labels.astype(np.int64)
    if len(labels) and (np.any(as_int != labels) or as_int.min() < 0 or as_int.max() >= n_classes):
        raise ValueError(f"multiclass labels must be class indices 0 .. {n_classes - 1}")
    return as_int


def fixed_blocks(X: np.ndarray, block: int, dtype: Any = np.float64):
    """``(start, n, rows)`` over ``X`` in blocks of exactly ``block`` rows, the last one padded
    with zeros (use the first ``n`` results). Matrix kernels round an event's result the same
    way whatever else is in a full block, so predictions in fixed blocks do not depend on how
    the events were chunked (``mva apply`` steps, k-fold routing): bit for bit."""
    for start in range(0, len(X), block):
        rows = np.asarray(X[start:start + block], dtype=dtype)
        n = len(rows)
        if n < block:
            rows = np.concatenate([rows, np.zeros((block - n, *rows.shape[1:]), dtype=dtype)])
        yield start, n, rows
