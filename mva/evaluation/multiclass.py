"""Multiclass classification performance measures (accuracy, log loss, one-vs-rest ROC, confusion).

All functions take per-event class probabilities ``probs`` of shape ``(n, K)``, integer class
indices ``labels`` in ``0 .. K-1`` and optional per-event ``weights`` (``None`` means unit
weights).  Weights may be negative, as Monte Carlo generators produce them.  One-vs-rest
quantities treat class ``k`` as signal and all other classes as background, with the score
``probs[:, k]``, and reuse the binary measures of :mod:`mva.evaluation.classification` and
:mod:`mva.evaluation.probability`, so that they follow the same conventions (cuts
``score >= cut``, classes with a non-positive total weight raise ``ValueError``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mva.evaluation import classification as cm
from mva.evaluation.probability import expected_calibration_error, reliability_curve

__all__ = [
    "accuracy",
    "log_loss",
    "roc_auc_ovr",
    "roc_auc_macro",
    "eff_at_bkg",
    "confusion",
    "ks_pvalues",
    "reweight_to_priors",
    "class_fractions",
    "multiclass_metrics",
    "reliability_per_class",
]

logger = logging.getLogger(__name__)

#: probabilities are clipped to this before the logarithm, so that one confident mistake
#: gives a large but finite log loss
LOG_LOSS_EPS = float(np.finfo(np.float64).eps)  # as scikit-learn's log_loss


# --------------------------------------------------------------------------- validation


def _labels(labels: Any, n: int | None, n_classes: int) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.ndim == 2 and lab.shape[1] == 1:
        lab = lab[:, 0]
    if lab.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {lab.shape}")
    if n is not None and lab.shape[0] != n:
        raise ValueError(f"labels has length {lab.shape[0]}, expected {n}")
    if lab.dtype == bool or not np.issubdtype(lab.dtype, np.number):
        raise ValueError(f"labels must be integer class indices, got dtype {lab.dtype}")
    # float labels from a table are fine as long as they hold whole numbers
    if not np.all(np.isfinite(lab)) or not np.all(lab == np.round(lab)):
        raise ValueError("labels must be integer class indices")
    if lab.size and (lab.min() < 0 or lab.max() >= n_classes):
        raise ValueError(
            f"labels must lie in 0 .. {n_classes - 1}, got {lab.min():g} .. {lab.max():g}"
        )
    return lab.astype(np.int64)


def _weights(weights: Any, n: int, name: str = "weights") -> np.ndarray:
    if weights is None:
        return np.ones(n)
    w = np.asarray(weights, dtype=float)
    if w.ndim == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {w.shape}")
    if w.shape[0] != n:
        raise ValueError(f"{name} has length {w.shape[0]}, expected {n}")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return w


def _probs(probs: Any, n_classes: int | None = None, name: str = "probs") -> np.ndarray:
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2:
        raise ValueError(f"{name} must have shape (n_events, n_classes), got shape {p.shape}")
    if p.shape[1] < 2:
        raise ValueError(f"{name} needs at least 2 class columns, got {p.shape[1]}")
    if n_classes is not None and p.shape[1] != n_classes:
        raise ValueError(f"{name} has {p.shape[1]} class columns, expected {n_classes}")
    if p.shape[0] == 0:
        raise ValueError(f"{name} has no events")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"{name} must lie in [0, 1]")
    return p


def _n_classes(probs: np.ndarray, classes: Sequence[str] | None, n_classes: int | None) -> int:
    k = probs.shape[1]
    if classes is not None and len(classes) != k:
        raise ValueError(f"{len(classes)} class names for {k} probability columns")
    if n_classes is not None and int(n_classes) != k:
        raise ValueError(f"K = {n_classes} but probs has {k} class columns")
    return k


def _check(
    probs: Any,
    labels: Any,
    weights: Any,
    classes: Sequence[str] | None = None,
    n_classes: int | None = None,
    name: str = "probs",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated ``(probs, labels, weights)`` as float (n, K), int (n,) and float (n,)."""
    p = _probs(probs, name=name)
    k = _n_classes(p, classes, n_classes)
    n = p.shape[0]
    return p, _labels(labels, n, k), _weights(weights, n)


def _class_vector(values: Any, n_classes: int, name: str) -> np.ndarray:
    v = np.asarray(values, dtype=float).reshape(-1)
    if v.size != n_classes:
        raise ValueError(f"{name} has {v.size} entries, expected {n_classes}")
    if not np.all(np.isfinite(v)) or np.any(v < 0):
        raise ValueError(f"{name} must be finite and non-negative")
    if not v.sum() > 0:
        raise ValueError(f"{name} must not all be zero")
    return v


def _total(w: np.ndarray) -> float:
    total = float(w.sum())
    if not total > 0:
        raise ValueError(f"weights must sum to a positive value, got {total:g}")
    return total


def _json(x: Any) -> Any:
    """Nested lists/dicts of plain floats, NaN and infinities as ``None``."""
    if isinstance(x, Mapping):
        return {str(k): _json(v) for k, v in x.items()}
    if isinstance(x, np.ndarray | list | tuple):
        return [_json(v) for v in x]
    value = float(x)
    return value if math.isfinite(value) else None


def _for_class(k: int, name: str, fn: Any, *args: Any) -> Any:
    """``fn(*args)`` with the class named in its error: the binary message only says
    "signal"/"background"."""
    try:
        return fn(*args)
    except ValueError as err:
        raise ValueError(f"class {name!r} (index {k}): {err}") from err


def _names(classes: Sequence[str]) -> list[str]:
    names = [str(c) for c in classes]
    if len(set(names)) != len(names):
        raise ValueError(f"class names must be unique, got {names}")
    return names


# --------------------------------------------------------------------------- implementations
# (on validated arrays, so that multiclass_metrics checks its inputs once)


def _accuracy(p: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    correct = np.argmax(p, axis=1) == y
    return float(np.sum(w[correct]) / _total(w))


def _log_loss(p: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    p_true = np.clip(p[np.arange(y.size), y], LOG_LOSS_EPS, 1.0)
    return float(np.sum(w * -np.log(p_true)) / _total(w))


def _roc_auc_ovr(p: np.ndarray, y: np.ndarray, w: np.ndarray, names: list[str]) -> dict:
    return {c: _for_class(k, c, cm.roc_auc, p[:, k], y == k, w) for k, c in enumerate(names)}


def _eff_at_bkg(p: np.ndarray, y: np.ndarray, w: np.ndarray, names: list[str],
                eff_bkg: float | Sequence[float]) -> dict:
    return {c: _for_class(k, c, cm.eff_sig_at_bkg, p[:, k], y == k, w, eff_bkg)
            for k, c in enumerate(names)}


def _confusion(p: np.ndarray, y: np.ndarray, w: np.ndarray, n_classes: int) -> np.ndarray:
    pred = np.argmax(p, axis=1)
    counts = np.bincount(y * n_classes + pred, weights=w, minlength=n_classes * n_classes)
    counts = counts.reshape(n_classes, n_classes)
    rows = counts.sum(axis=1, keepdims=True)
    # a row without positive weight cannot be normalised (also with negative weights, where
    # dividing would flip signs): NaN says "not measured" rather than a misleading 0
    out = np.full_like(counts, np.nan)
    np.divide(counts, rows, out=out, where=rows > 0)
    return out


def _class_fractions(y: np.ndarray, w: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(y, weights=w, minlength=n_classes) / _total(w)


# --------------------------------------------------------------------------- public API


def accuracy(probs: Any, labels: Any, weights: Any = None) -> float:
    """Weighted fraction of events whose most probable class (argmax) is the true class."""
    return _accuracy(*_check(probs, labels, weights))


def log_loss(probs: Any, labels: Any, weights: Any = None) -> float:
    """Weighted mean of ``-log p_true``, with ``p_true`` clipped at :data:`LOG_LOSS_EPS`.

    The rows are not renormalised: the probabilities are taken as the method gives them.
    """
    return _log_loss(*_check(probs, labels, weights))


def roc_auc_ovr(
    probs: Any, labels: Any, weights: Any, classes: Sequence[str]
) -> dict[str, float]:
    """One-vs-rest weighted ROC AUC of each class: ``{class: auc}``.

    Class ``k`` is signal, the others background, and ``probs[:, k]`` the score
    (:func:`mva.evaluation.classification.roc_auc`).
    """
    p, y, w = _check(probs, labels, weights, classes)
    return _roc_auc_ovr(p, y, w, _names(classes))


def roc_auc_macro(probs: Any, labels: Any, weights: Any, classes: Sequence[str]) -> float:
    """Unweighted mean over classes of the one-vs-rest AUCs (:func:`roc_auc_ovr`)."""
    return float(np.mean(list(roc_auc_ovr(probs, labels, weights, classes).values())))


def eff_at_bkg(
    probs: Any,
    labels: Any,
    weights: Any,
    classes: Sequence[str],
    eff_bkg: float | Sequence[float] = (0.01, 0.1, 0.3),
) -> dict[str, dict[str, float]]:
    """Efficiency of each class at given efficiencies of the other classes, one-vs-rest.

    Returns
    -------
    dict
        ``{class: {f"{eb:g}": eff_sig}}``, as
        :func:`mva.evaluation.classification.eff_sig_at_bkg` with class ``k`` as signal.
    """
    p, y, w = _check(probs, labels, weights, classes)
    return _eff_at_bkg(p, y, w, _names(classes), eff_bkg)


def confusion(probs: Any, labels: Any, weights: Any, n_classes: int) -> np.ndarray:
    """Weighted confusion matrix, rows the true and columns the predicted (argmax) class.

    Each row is normalised to sum 1 (the fraction of true class ``i`` predicted as ``j``).  A
    row whose total weight is not positive (no events of that class) is NaN.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_classes, n_classes)``.
    """
    p, y, w = _check(probs, labels, weights, n_classes=n_classes)
    return _confusion(p, y, w, p.shape[1])


def ks_pvalues(
    train_probs: Any,
    train_labels: Any,
    train_w: Any,
    test_probs: Any,
    test_labels: Any,
    test_w: Any,
    classes: Sequence[str],
) -> dict[str, float]:
    """Overtraining check: for each class ``k``, the p-value of the weighted KS test between
    ``probs[:, k]`` of the training and of the test events of class ``k``.

    Returns
    -------
    dict
        ``{class: p_value}`` (:func:`mva.evaluation.classification.ks_2samp_weighted`).
    """
    names = _names(classes)
    ptr, ytr, wtr = _check(train_probs, train_labels, train_w, classes, name="train_probs")
    pte, yte, wte = _check(test_probs, test_labels, test_w, classes, name="test_probs")
    out = {}
    for k, c in enumerate(names):
        a, b = ytr == k, yte == k
        if not a.any() or not b.any():
            raise ValueError(f"class {c!r} (index {k}) has no events in the "
                             f"{'training' if not a.any() else 'test'} sample")
        out[c] = _for_class(k, c, cm.ks_2samp_weighted, ptr[a, k], pte[b, k], wtr[a], wte[b])[1]
    return out


def reweight_to_priors(probs: Any, train_priors: Any, priors: Any) -> np.ndarray:
    """Posterior class probabilities for another class composition (Bayes' theorem).

    A classifier trained on classes in proportions ``train_priors`` estimates
    ``p_k ∝ train_priors_k f_k(x)``; for the composition ``priors`` the posterior is
    ``p'_k ∝ p_k priors_k / train_priors_k``, renormalised per event.  Neither prior vector
    needs to sum to 1.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, K)``.  An event whose reweighted probabilities are all zero (it is only
        compatible with classes of prior zero) gets a NaN row.
    """
    p = _probs(probs)
    k = p.shape[1]
    tau = _class_vector(train_priors, k, "train_priors")
    if np.any(tau <= 0):
        # dividing by a zero prior: the classifier never saw that class
        raise ValueError("train_priors must be positive")
    pi = _class_vector(priors, k, "priors")
    scaled = p * (pi / tau)
    norm = scaled.sum(axis=1, keepdims=True)
    bad = ~(norm[:, 0] > 0)
    if bad.any():
        logger.warning("%d events have zero probability for every class with a non-zero prior",
                       int(bad.sum()))
    out = np.full_like(scaled, np.nan)
    np.divide(scaled, norm, out=out, where=norm > 0)
    return out


def class_fractions(labels: Any, weights: Any, n_classes: int) -> np.ndarray:
    """Weighted fraction of each class, shape ``(n_classes,)``; the total weight must be
    positive."""
    k = int(n_classes)
    if k < 2:
        raise ValueError(f"need at least 2 classes, got {n_classes}")
    y = _labels(labels, None, k)
    return _class_fractions(y, _weights(weights, y.size), k)


def multiclass_metrics(
    probs: Any,
    labels: Any,
    weights: Any,
    classes: Sequence[str],
    eff_bkg: float | Sequence[float] = (0.01, 0.1, 0.3),
) -> dict[str, Any]:
    """All summary measures of one sample, JSON-safe (plain floats, NaN as ``None``).

    Returns
    -------
    dict
        ``accuracy``, ``log_loss``, ``roc_auc_ovr`` (``{class: auc}``), ``roc_auc_macro``,
        ``eff_at_bkg`` (``{class: {"0.01": effS, ...}}``, at the given ``eff_bkg``) and
        ``confusion`` (nested lists, rows the true class).
    """
    names = _names(classes)
    p, y, w = _check(probs, labels, weights, classes)
    aucs = _roc_auc_ovr(p, y, w, names)
    return _json({
        "accuracy": _accuracy(p, y, w),
        "log_loss": _log_loss(p, y, w),
        "roc_auc_ovr": aucs,
        "roc_auc_macro": float(np.mean(list(aucs.values()))),
        "eff_at_bkg": _eff_at_bkg(p, y, w, names, eff_bkg),
        "confusion": _confusion(p, y, w, len(names)),
    })


def _weights_to_priors(y: np.ndarray, w: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """Scale each class's weights so that class ``k`` holds ``pi_k`` of the total weight
    (the multiclass :func:`mva.evaluation.probability.reweight_to_fraction`)."""
    totals = np.bincount(y, weights=w, minlength=pi.size)
    needed = pi > 0
    if np.any(totals[needed] <= 0):
        missing = np.flatnonzero(needed & (totals <= 0)).tolist()
        raise ValueError(f"classes {missing} have a non-zero prior but no positive weight")
    scale = np.zeros(pi.size)
    scale[needed] = pi[needed] / pi.sum() * _total(w) / totals[needed]
    return w * scale[y]


def reliability_per_class(
    probs: Any,
    labels: Any,
    weights: Any,
    classes: Sequence[str],
    priors: Any = None,
    bins: int = 10,
) -> dict[str, dict[str, Any]]:
    """Calibration of each class probability, one-vs-rest.

    Parameters
    ----------
    probs, labels, weights, classes
        As everywhere in this module.
    priors
        Class composition that ``probs`` are meant for (e.g. after :func:`reweight_to_priors`),
        as a sequence of length K or ``{class: prior}``.  The events are reweighted to it
        before the check, as the binary P(S|y) check does; ``None`` keeps the weights.
    bins
        Equal-width probability bins (:func:`mva.evaluation.probability.reliability_curve`).

    Returns
    -------
    dict
        ``{class: {"ece": float, "reliability": {"bin_edges", "mean_prob", "signal_fraction",
        "sum_weights"}}}`` as lists, where ``signal_fraction`` is the observed fraction of the
        class; JSON-safe (empty bins as ``None``).
    """
    names = _names(classes)
    p, y, w = _check(probs, labels, weights, classes)
    if priors is not None:
        if isinstance(priors, Mapping):
            unknown = set(map(str, priors)) - set(names)
            if unknown:
                raise ValueError(f"priors for unknown classes {sorted(unknown)}")
            priors = [priors.get(c, 0.0) for c in names]
        w = _weights_to_priors(y, w, _class_vector(priors, len(names), "priors"))
    out = {}
    for k, c in enumerate(names):
        is_k = y == k
        curve = _for_class(k, c, reliability_curve, p[:, k], is_k, w, bins)
        ece = _for_class(k, c, expected_calibration_error, p[:, k], is_k, w, bins)
        out[c] = {"ece": ece, "reliability": curve}
    return _json(out)
