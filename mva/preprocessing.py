"""Input-variable transformations (TMVA "VarTransform"), fitted on training events.

Each transformation is fitted on the training events only, with their event weights, and
stores what it learned as plain JSON-able data (lists of floats), so a model file never needs
pickle. Names, as used in a method's ``preprocess:`` list and chained in order:

``standardize``
    Weighted mean 0 and variance 1 per feature.
``minmax``
    Per-feature range of the training events mapped to [-1, 1] (TMVA "Norm").
``decorrelate``
    Centre, then multiply by the symmetric inverse square root of the weighted covariance
    (TMVA "Deco").
``pca``
    Centre, then project on the eigenvectors of the weighted covariance, by descending
    variance, keeping all components (TMVA "PCA").
``uniform``
    Per-feature weighted empirical CDF, to [0, 1] (TMVA "Uniform").
``gauss``
    ``uniform`` followed by the inverse normal CDF (TMVA "Gauss").

Negative event weights are used as they are where a signed sum is meaningful (means,
covariances, CDFs); where they would make the result unusable (a total weight <= 0, a
covariance that is not positive semi-definite, a negative variance) the fit falls back to
absolute weights and logs a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from mva.errors import NotFittedError

__all__ = [
    "TRANSFORMS",
    "Decorrelate",
    "Gauss",
    "MinMax",
    "NotFittedError",
    "PCA",
    "Pipeline",
    "Standardize",
    "Transform",
    "Uniform",
]

log = logging.getLogger(__name__)

TRANSFORMS: dict[str, type[Transform]] = {}

# Eigenvalues below this fraction of the largest one are treated as zero (constant or
# collinear directions): they keep scale 1 instead of being blown up to inf/NaN.
_EIG_RTOL = 1e-12
# Clip the CDF before the inverse normal so ``gauss`` never returns +-inf.
_GAUSS_EPS = 1e-6


# --------------------------------------------------------------------------- helpers


def _as_matrix(X: Any) -> np.ndarray:
    """Return ``X`` as a 2-d float64 array or raise ``ValueError``."""
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-d array (events x features), got shape {arr.shape}")
    return arr


def _fit_inputs(X: Any, weights: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate training inputs; return ``(X, w)`` with ``w`` of ones when not given."""
    X = _as_matrix(X)
    if X.shape[0] == 0:
        raise ValueError("cannot fit a transformation on zero events")
    if not np.all(np.isfinite(X)):
        raise ValueError("training events contain NaN or infinite values")
    if weights is None:
        return X, np.ones(X.shape[0])
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (X.shape[0],):
        raise ValueError(f"weights must have shape ({X.shape[0]},), got {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("weights contain NaN or infinite values")
    if not np.any(w != 0):
        raise ValueError("all weights are zero")
    return X, w


def _positive_total(w: np.ndarray, what: str) -> np.ndarray:
    """Return ``w``, or ``|w|`` when the signed total is not positive."""
    if w.sum() > 0:
        return w
    log.warning("%s: total event weight <= 0, fitting with absolute weights", what)
    return np.abs(w)


def _weighted_mean(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    return (w @ X) / w.sum()


def _weighted_cov(Xc: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted covariance of already centred data, normalised by the total weight."""
    cov = (Xc * w[:, None]).T @ Xc / w.sum()
    return 0.5 * (cov + cov.T)


def _centred_cov(X: np.ndarray, w: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and covariance; absolute weights if the signed ones give a non-PSD matrix."""
    w = _positive_total(w, what)
    mean = _weighted_mean(X, w)
    cov = _weighted_cov(X - mean, w)
    vals = np.linalg.eigvalsh(cov)
    scale = max(float(np.max(np.abs(vals))), np.finfo(float).tiny)
    if vals.min() < -1e-10 * scale and np.any(w < 0):
        log.warning("%s: covariance with signed weights is not positive semi-definite, "
                    "fitting with absolute weights", what)
        w = np.abs(w)
        mean = _weighted_mean(X, w)
        cov = _weighted_cov(X - mean, w)
    return mean, cov


def _floats(a: np.ndarray) -> list[Any]:
    """Nested lists of Python floats (JSON-able, round-trips float64 exactly)."""
    return np.asarray(a, dtype=np.float64).tolist()


# ------------------------------------------------------------------------ base class


class Transform:
    """Base class of the input-variable transformations.

    Subclasses set ``name``, implement ``_fit``, ``_transform`` and ``_params``/``_set_params``
    and are registered in :data:`TRANSFORMS` under ``name``.
    """

    name: ClassVar[str] = ""

    def __init__(self) -> None:
        self.n_features: int | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            TRANSFORMS[cls.name] = cls

    def __repr__(self) -> str:
        state = "fitted" if self.is_fitted else "not fitted"
        return f"{type(self).__name__}({state})"

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`from_dict`) has set the parameters."""
        return self.n_features is not None

    def fit(self, X: np.ndarray, weights: np.ndarray | None = None) -> Transform:
        """Fit on training events.

        Parameters
        ----------
        X : (n_events, n_features) array
        weights : (n_events,) array, optional
            Event weights (may be negative); ones when omitted.

        Returns
        -------
        self
        """
        X, w = _fit_inputs(X, weights)
        self._fit(X, w)
        self.n_features = X.shape[1]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Apply the fitted transformation row by row; float64 out, any number of rows."""
        if not self.is_fitted:
            raise NotFittedError(f"transformation {self.name!r} used before it was fitted")
        X = _as_matrix(X)
        if X.shape[1] != self.n_features:
            raise ValueError(f"transformation {self.name!r} was fitted on {self.n_features} "
                             f"features, got {X.shape[1]}")
        return np.asarray(self._transform(X), dtype=np.float64)

    def fit_transform(self, X: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """:meth:`fit` then :meth:`transform` the same events."""
        return self.fit(X, weights).transform(X)

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., "params": {...}}`` with only JSON types (no arrays)."""
        if not self.is_fitted:
            raise NotFittedError(f"transformation {self.name!r} cannot be saved before it "
                                 "was fitted")
        return {"name": self.name, "params": {"n_features": self.n_features, **self._params()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Transform:
        """Rebuild a fitted transformation from :meth:`to_dict` output.

        Called on :class:`Transform` it dispatches on ``d["name"]``; called on a subclass the
        name must match that subclass.
        """
        name = d.get("name")
        if name not in TRANSFORMS:
            raise ValueError(f"unknown transformation {name!r} "
                             f"(known: {', '.join(sorted(TRANSFORMS))})")
        target = TRANSFORMS[name]
        if cls is not Transform and target is not cls:
            raise ValueError(f"{cls.__name__}.from_dict got a {name!r} transformation")
        params = dict(d["params"])
        obj = target()
        obj.n_features = int(params.pop("n_features"))
        obj._set_params(params)
        return obj

    # subclass hooks ------------------------------------------------------------------
    def _fit(self, X: np.ndarray, w: np.ndarray) -> None:
        raise NotImplementedError

    def _transform(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _params(self) -> dict[str, Any]:
        raise NotImplementedError

    def _set_params(self, params: dict[str, Any]) -> None:
        raise NotImplementedError


# ------------------------------------------------------------------ affine transforms


class _Affine(Transform):
    """``(X - offset) @ matrix`` or, when ``matrix`` is None, ``(X - offset) / scale``."""

    def __init__(self) -> None:
        super().__init__()
        self.offset: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.matrix: np.ndarray | None = None

    def _transform(self, X: np.ndarray) -> np.ndarray:
        if self.matrix is not None:
            # einsum's own loops, not BLAS: an event's value does not depend on how many
            # events are transformed with it (bit-identical k-fold routing and apply chunks)
            # (C order: einsum's summation order follows the memory layout, which a JSON round
            # trip would otherwise change)
            return np.einsum("nd,dk->nk", np.ascontiguousarray(X - self.offset),
                             np.ascontiguousarray(self.matrix))
        return (X - self.offset) / self.scale

    def _params(self) -> dict[str, Any]:
        if self.matrix is not None:
            return {"offset": _floats(self.offset), "matrix": _floats(self.matrix)}
        return {"offset": _floats(self.offset), "scale": _floats(self.scale)}

    def _set_params(self, params: dict[str, Any]) -> None:
        self.offset = np.asarray(params["offset"], dtype=np.float64)
        if "matrix" in params:
            self.matrix = np.asarray(params["matrix"], dtype=np.float64).reshape(
                self.n_features, self.n_features)
        else:
            self.scale = np.asarray(params["scale"], dtype=np.float64)


class Standardize(_Affine):
    """Weighted mean 0, weighted variance 1 per feature; constant features keep scale 1."""

    name = "standardize"

    def _fit(self, X: np.ndarray, w: np.ndarray) -> None:
        w = _positive_total(w, self.name)
        mean = _weighted_mean(X, w)
        var = w @ (X - mean) ** 2 / w.sum()
        if np.any(var < 0):
            log.warning("%s: negative weighted variance, using absolute weights", self.name)
            wa = np.abs(w)
            mean = _weighted_mean(X, wa)
            var = wa @ (X - mean) ** 2 / wa.sum()
        constant = np.ptp(X, axis=0) == 0
        std = np.sqrt(np.clip(var, 0.0, None))
        self.offset = mean
        self.scale = np.where(constant | ~(std > 0), 1.0, std)


class MinMax(_Affine):
    """Map each feature's training range to [-1, 1] (TMVA "Norm"); weights are not used."""

    name = "minmax"

    def _fit(self, X: np.ndarray, w: np.ndarray) -> None:
        lo, hi = X.min(axis=0), X.max(axis=0)
        half = (hi - lo) / 2.0
        self.offset = lo + half
        # a constant feature maps to 0
        self.scale = np.where(half > 0, half, 1.0)


class Decorrelate(_Affine):
    """Centre and multiply by ``C^(-1/2)``, the symmetric inverse square root of the weighted
    covariance (TMVA "Deco"). Directions of (near) zero variance keep scale 1."""

    name = "decorrelate"

    def _fit(self, X: np.ndarray, w: np.ndarray) -> None:
        mean, cov = _centred_cov(X, w, self.name)
        vals, vecs = np.linalg.eigh(cov)
        keep = vals > _EIG_RTOL * max(float(vals.max()), 0.0)
        inv_sqrt = np.where(keep, 1.0 / np.sqrt(np.where(keep, vals, 1.0)), 1.0)
        self.offset = mean
        self.matrix = (vecs * inv_sqrt) @ vecs.T


class PCA(_Affine):
    """Centre and project on all principal components of the weighted covariance, ordered by
    descending variance (TMVA "PCA"). No whitening, no truncation."""

    name = "pca"

    def _fit(self, X: np.ndarray, w: np.ndarray) -> None:
        mean, cov = _centred_cov(X, w, self.name)
        vals, vecs = np.linalg.eigh(cov)
        order = np.argsort(vals)[::-1]
        vecs = vecs[:, order]
        # eigenvector signs are arbitrary: fix them (largest |component| positive) so the
        # same data always give the same output
        idx = np.argmax(np.abs(vecs), axis=0)
        signs = np.sign(vecs[idx, np.arange(vecs.shape[1])])
        self.offset = mean
        self.matrix = vecs * np.where(signs == 0, 1.0, signs)


# ----------------------------------------------------------------- CDF transforms


def _cdf_knots(x: np.ndarray, w: np.ndarray, n_knots: int) -> tuple[np.ndarray, np.ndarray]:
    """Knots ``(xk, yk)`` of the weighted empirical CDF of one feature.

    ``xk`` are distinct training values (ties merged, so discrete variables work), ``yk`` the
    CDF at their mid-step, ``F(<x) + w(x)/2``, made monotone and clipped to [0, 1]. At most
    ``n_knots`` knots are kept, spaced in CDF, always including both ends.
    """
    xu, inverse = np.unique(x, return_inverse=True)
    wu = np.bincount(inverse, weights=w, minlength=xu.size)
    cum = np.cumsum(wu)
    if cum[-1] <= 0:
        wu = np.abs(wu)
        cum = np.cumsum(wu)
    # negative weights can make the running sum go down: keep the CDF monotone
    yu = np.clip(np.maximum.accumulate((cum - wu / 2.0) / cum[-1]), 0.0, 1.0)
    if xu.size > n_knots:
        levels = np.linspace(yu[0], yu[-1], n_knots)
        idx = np.clip(np.searchsorted(yu, levels), 0, xu.size - 1)
        idx = np.unique(np.concatenate([[0], idx, [xu.size - 1]]))
        xu, yu = xu[idx], yu[idx]
    return xu, yu


class Uniform(Transform):
    """Per-feature weighted empirical CDF, to [0, 1] (TMVA "Uniform").

    Stored as a monotone table of at most ``n_knots`` (value, CDF) points per feature and
    applied with linear interpolation; values outside the training range get the end values.
    """

    name = "uniform"

    def __init__(self, n_knots: int = 1001) -> None:
        super().__init__()
        if n_knots < 2:
            raise ValueError(f"n_knots must be >= 2, got {n_knots}")
        self.n_knots = int(n_knots)
        self.knots_x: list[np.ndarray] | None = None
        self.knots_y: list[np.ndarray] | None = None

    def _fit(self, X: np.ndarray, w: np.ndarray) -> None:
        w = _positive_total(w, self.name)
        tables = [_cdf_knots(X[:, j], w, self.n_knots) for j in range(X.shape[1])]
        self.knots_x = [t[0] for t in tables]
        self.knots_y = [t[1] for t in tables]

    def _cdf(self, X: np.ndarray) -> np.ndarray:
        out = np.empty_like(X)
        for j, (xk, yk) in enumerate(zip(self.knots_x, self.knots_y)):
            out[:, j] = np.interp(X[:, j], xk, yk)
        return out

    def _transform(self, X: np.ndarray) -> np.ndarray:
        return self._cdf(X)

    def _params(self) -> dict[str, Any]:
        return {"n_knots": self.n_knots,
                "knots_x": [_floats(k) for k in self.knots_x],
                "knots_y": [_floats(k) for k in self.knots_y]}

    def _set_params(self, params: dict[str, Any]) -> None:
        self.n_knots = int(params["n_knots"])
        self.knots_x = [np.asarray(k, dtype=np.float64) for k in params["knots_x"]]
        self.knots_y = [np.asarray(k, dtype=np.float64) for k in params["knots_y"]]


class Gauss(Uniform):
    """``uniform`` then the inverse normal CDF (TMVA "Gauss"); the CDF is clipped to
    ``(1e-6, 1 - 1e-6)`` so the output is finite (|value| <= about 4.75)."""

    name = "gauss"

    def _transform(self, X: np.ndarray) -> np.ndarray:
        from scipy.special import ndtri  # here: scipy.special costs half a second to import

        return ndtri(np.clip(self._cdf(X), _GAUSS_EPS, 1.0 - _GAUSS_EPS))


# -------------------------------------------------------------------------- pipeline


class Pipeline:
    """Transformations applied in order; an empty pipeline is the identity.

    Parameters
    ----------
    steps : sequence of str
        Names from :data:`TRANSFORMS`, e.g. ``["standardize", "pca"]``.
    """

    def __init__(self, steps: Sequence[str] = ()) -> None:
        if isinstance(steps, str):
            steps = [steps]
        unknown = [s for s in steps if s not in TRANSFORMS]
        if unknown:
            raise ValueError(f"unknown transformation {unknown[0]!r} "
                             f"(known: {', '.join(sorted(TRANSFORMS))})")
        self.steps: list[Transform] = [TRANSFORMS[s]() for s in steps]

    def __repr__(self) -> str:
        return f"Pipeline({self.names!r})"

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def names(self) -> list[str]:
        """The step names, in order."""
        return [t.name for t in self.steps]

    def fit(self, X: np.ndarray, weights: np.ndarray | None = None) -> Pipeline:
        """Fit each step, with the same weights, on the output of the previous one."""
        if not self.steps:  # nothing to learn (features were checked for NaN when read)
            return self
        X, w = _fit_inputs(X, weights)
        for step in self.steps:
            X = step.fit(X, w).transform(X)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Apply all steps in order; float64 out. An empty pipeline returns float32 or float64
        input as it is (no copy: a million events with 20 features are 160 MB)."""
        if not self.steps and getattr(X, "dtype", None) in (np.float32, np.float64):
            if np.ndim(X) != 2:
                raise ValueError(f"expected a 2-d array (events x features), got {np.shape(X)}")
            return X
        X = _as_matrix(X)
        for step in self.steps:
            X = step.transform(X)
        return X

    def fit_transform(self, X: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """:meth:`fit` then :meth:`transform` the same events."""
        return self.fit(X, weights).transform(X)

    def to_dict(self) -> dict[str, Any]:
        """``{"steps": [Transform.to_dict(), ...]}``, JSON-able."""
        return {"steps": [t.to_dict() for t in self.steps]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Pipeline:
        """Rebuild a fitted pipeline from :meth:`to_dict` output."""
        pipe = cls([])
        pipe.steps = [Transform.from_dict(s) for s in d["steps"]]
        return pipe
