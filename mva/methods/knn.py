"""k nearest neighbours (TMVA's kNN): the score is the weighted signal fraction of the k
neighbours; for multiclass the weighted fraction of each class among them; for regression the
weighted mean of their targets.

The neighbours come from :mod:`mva.methods._neighbours`: an exact search in blocked matrix
products (torch, on a GPU where there is one) while the training sample has at most
``EXACT_MAX_VALUES`` (5M) events x features or a GPU is used, a faiss IVF index (4-bit PQ fast
scan, re-ranked) with a measured recall beyond (``search: auto``; ``exact``, ``ivf`` or ``hnsw``
to choose). The run log and the model's notes in ``metrics.json`` say which search was used.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from pydantic import Field

from mva.methods import _neighbours
from mva.methods.base import Method, Params, State, as_2d

log = logging.getLogger(__name__)

#: queries from which scoring shows progress
PROGRESS_EVENTS = 50_000

__all__ = ["KNN"]


class KNNParams(Params):
    #: neighbours; None: the k of smallest leave-one-out error on the training sample
    #: (:func:`mva.methods.adaptive.choose_k`), recorded in the notes
    k: int | None = Field(None, ge=1, le=100_000)
    #: neighbours are searched in blocks of this many events (bounds memory at apply time)
    block_size: int = Field(65536, ge=1, le=10_000_000)
    #: neighbour search: exact, approximate (ivf: faiss IVF-PQ fast scan, re-ranked; hnsw: faiss
    #: HNSW graph), or auto (exact where affordable, ivf beyond)
    search: Literal["auto", "exact", "ivf", "hnsw"] = "auto"
    #: where the exact search runs (auto: a CUDA GPU where there is one)
    device: Literal["auto", "cpu", "cuda"] = "auto"


class KNN(Method):
    libraries = ("torch",)
    clips_negative_weights = False  # negative weights enter the fit as they are
    Params = KNNParams
    default_preprocess = ["standardize"]

    def fit(self, X, y, w, validation=None, monitor=None):
        self.X_ = np.ascontiguousarray(X, dtype=np.float64)
        self.y_ = np.asarray(y, dtype=np.int64 if self.is_multiclass else np.float64)
        self.w_ = np.asarray(w, dtype=np.float64)
        k = self.params.k
        if k is None:
            from mva.methods.adaptive import choose_k

            k, how = choose_k(self.X_, self.y_, self.w_, self.task, self.n_classes, self.seed)
            self.notes_.append(f"default k = {k} ({how})")
        self.k_ = min(k, len(X))
        if self.k_ < k:
            self.notes_.append(f"k reduced to {self.k_} (training events)")
        self.training_events_ = len(self.X_)
        kind = _neighbours.choose(self.params.search, *self.X_.shape, self.params.device)
        self.search_ = _neighbours.make_search(kind, self.X_, self.k_, self.params.device,
                                               self.seed)
        msg = f"neighbour search: {self.search_.describe()}"
        log.info("knn: %s", msg)
        self.notes_.append(msg)
        self.fitted_ = True
        return self

    def kneighbors(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Squared distances and training indices of the ``k`` nearest training events, ``(n,
        k)`` each, nearest first (ties: the lower index first)."""
        self._check_fitted()
        return self.search_.kneighbors(np.asarray(X, dtype=np.float64), self.k_)

    def _predict(self, X):
        self._check_fitted()
        from mva.progress import Progress

        out = []
        progress = Progress(len(X), "knn: scoring", "events") if len(X) >= PROGRESS_EVENTS else None
        for start in range(0, len(X), self.params.block_size):
            _, idx = self.search_.kneighbors(
                np.asarray(X[start:start + self.params.block_size], dtype=np.float64), self.k_,
                progress)
            w = self.w_[idx]
            if self.is_classification:
                den = w.sum(axis=1)
                num = (w * self.y_[idx]).sum(axis=1)
                out.append(np.divide(num, den, out=np.full_like(num, 0.5), where=den != 0))
            elif self.is_multiclass:
                out.append(self._class_fractions(w, self.y_[idx]))
            else:
                t = as_2d(self.y_)[idx]                       # (n, k, n_targets)
                den = w.sum(axis=1)[:, None]
                num = (w[..., None] * t).sum(axis=1)
                fallback = t.mean(axis=1)
                out.append(np.where(den != 0, num / np.where(den != 0, den, 1.0), fallback))
        if progress is not None:
            progress.close()
        if not out:
            if self.is_classification:
                return np.empty(0)
            if self.is_multiclass:
                return np.empty((0, self.n_classes))
            return np.empty((0, as_2d(self.y_).shape[1]))
        return np.concatenate(out)

    def _class_fractions(self, w: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Weighted fraction of each class among the neighbours, ``(n, n_classes)``.

        A class whose neighbour weights sum to less than 0 (negative weights) counts as 0, so
        that the rows stay probabilities; with non-negative weights this is the plain fraction.
        Rows whose neighbours carry no weight get the uniform 1/K (the binary 0.5).
        """
        K = self.n_classes
        num = np.zeros((len(w), K))
        for c in range(K):
            num[:, c] = np.where(labels == c, w, 0.0).sum(axis=1)
        num = np.clip(num, 0.0, None)
        den = num.sum(axis=1, keepdims=True)
        return np.divide(num, den, out=np.full_like(num, 1.0 / K), where=den > 0)

    def state(self) -> State:
        search_meta, blobs = _neighbours.state_of(self.search_)
        meta = {"k": self.k_, "search": self.search_.kind, **search_meta}
        if self.is_multiclass:
            meta["n_classes"] = self.n_classes
        return meta, {"X": self.X_, "y": self.y_, "w": self.w_}, blobs

    def set_state(self, meta, arrays, blobs):
        self.k_ = int(meta["k"])
        self.n_classes = int(meta.get("n_classes", self.n_classes))
        self.X_, self.y_, self.w_ = arrays["X"], arrays["y"], arrays["w"]
        self.training_events_ = len(self.X_)
        self.search_ = _neighbours.load_search(meta.get("search", "exact"), self.X_, meta, blobs,
                                               self.params.device)
