"""k nearest neighbours (TMVA's kNN): the score is the weighted signal fraction of the k
neighbours; for multiclass the weighted fraction of each class among them; for regression the
weighted mean of their targets."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from mva.methods.base import Method, Params, State, as_2d

__all__ = ["KNN"]


class KNNParams(Params):
    k: int = Field(20, ge=1, le=100_000)
    #: neighbours are searched in blocks of this many events (bounds memory at apply time)
    block_size: int = Field(65536, ge=1, le=10_000_000)


class KNN(Method):
    clips_negative_weights = False  # negative weights enter the fit as they are
    Params = KNNParams
    default_preprocess = ["standardize"]

    def fit(self, X, y, w, validation=None, monitor=None):
        from sklearn.neighbors import KDTree

        self.X_ = np.ascontiguousarray(X, dtype=np.float64)
        self.y_ = np.asarray(y, dtype=np.int64 if self.is_multiclass else np.float64)
        self.w_ = np.asarray(w, dtype=np.float64)
        self.k_ = min(self.params.k, len(X))
        if self.k_ < self.params.k:
            self.notes_.append(f"k reduced to {self.k_} (training events)")
        self.tree_ = KDTree(self.X_)
        self.fitted_ = True
        return self

    def _predict(self, X):
        self._check_fitted()
        out = []
        for start in range(0, len(X), self.params.block_size):
            _, idx = self.tree_.query(X[start:start + self.params.block_size], k=self.k_)
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
        meta = {"k": self.k_}
        if self.is_multiclass:
            meta["n_classes"] = self.n_classes
        return meta, {"X": self.X_, "y": self.y_, "w": self.w_}, {}

    def set_state(self, meta, arrays, blobs):
        from sklearn.neighbors import KDTree

        self.k_ = int(meta["k"])
        self.n_classes = int(meta.get("n_classes", self.n_classes))
        self.X_, self.y_, self.w_ = arrays["X"], arrays["y"], arrays["w"]
        self.tree_ = KDTree(self.X_)
