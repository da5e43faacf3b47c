"""Boosted decision trees with xgboost's ``hist`` algorithm.

Classification uses the logistic loss, so the score is a probability-like number in [0, 1].
The model is stored in xgboost's own UBJSON format (no pickle).
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from pydantic import Field

from mva.methods.base import Method, Params, State, as_2d, n_threads, positive_weights

__all__ = ["BDT"]

log = logging.getLogger(__name__)


class BDTParams(Params):
    n_estimators: int = Field(500, ge=1)
    max_depth: int = Field(3, ge=1, le=20)
    learning_rate: float = Field(0.1, gt=0, le=1)
    subsample: float = Field(0.8, gt=0, le=1)
    colsample: float = Field(1.0, gt=0, le=1)
    min_child_weight: float = Field(1.0, ge=0)
    reg_lambda: float = Field(1.0, ge=0)
    max_bin: int = Field(256, ge=2)
    #: stop when the validation loss has not improved for this many trees (None: never)
    early_stopping_rounds: int | None = Field(None, ge=1)
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    loss: Literal["squared_error", "absolute_error", "huber"] = "squared_error"
    huber_slope: float = Field(1.0, gt=0)
    n_jobs: int | None = Field(None, ge=1)


_REG_OBJECTIVE = {
    "squared_error": ("reg:squarederror", "rmse"),
    "absolute_error": ("reg:absoluteerror", "mae"),
    "huber": ("reg:pseudohubererror", "mphe"),
}


class BDT(Method):
    Params = BDTParams
    default_preprocess: list[str] = []
    supports_validation = True

    def wants_validation(self) -> float:
        return self.params.validation_fraction if self.params.early_stopping_rounds else 0.0

    def _booster_params(self, n_targets: int, n_events: int) -> dict:
        p = self.params
        if self.is_classification:
            objective, metric = "binary:logistic", "logloss"
        else:
            objective, metric = _REG_OBJECTIVE[p.loss]
        params = {
            "objective": objective, "eval_metric": metric, "tree_method": "hist",
            "max_depth": p.max_depth, "eta": p.learning_rate, "subsample": p.subsample,
            "colsample_bytree": p.colsample, "min_child_weight": p.min_child_weight,
            "lambda": p.reg_lambda, "max_bin": p.max_bin, "seed": self.seed,
            "nthread": n_threads(p.n_jobs, n_events),
        }
        if not self.is_classification and p.loss == "huber":
            params["huber_slope"] = p.huber_slope
        if n_targets > 1:
            params["multi_strategy"] = "multi_output_tree"
        return params

    def fit(self, X, y, w, validation=None, monitor=None):
        import xgboost as xgb

        label = y if self.is_classification else as_2d(y)
        n_targets = 1 if self.is_classification else label.shape[1]
        # xgboost refuses negative weights (NLO MC); they are set to 0 as the other methods do
        n_neg = int(np.sum(w < 0))
        if n_neg:
            self.notes_.append(f"{n_neg} training events with negative weight used with weight 0")
        dtrain = xgb.QuantileDMatrix(X, label=label, weight=positive_weights(w),
                                     max_bin=self.params.max_bin)
        evals = [(dtrain, "train")]
        extra = validation if validation is not None else monitor
        extra_name = "validation" if validation is not None else "test"
        if extra is not None:
            Xv, yv, wv = extra
            yv = yv if self.is_classification else as_2d(yv)
            dextra = xgb.QuantileDMatrix(Xv, label=yv, weight=positive_weights(wv), ref=dtrain)
            evals.append((dextra, extra_name))
        result: dict = {}
        self.booster_ = xgb.train(
            self._booster_params(n_targets, len(X)), dtrain, num_boost_round=self.params.n_estimators,
            evals=evals, evals_result=result, verbose_eval=False,
            early_stopping_rounds=self.params.early_stopping_rounds if validation is not None else None,
        )
        self.history_ = {name: list(next(iter(m.values()))) for name, m in result.items()}
        self.n_trees_ = self.booster_.num_boosted_rounds()
        best = getattr(self.booster_, "best_iteration", None)
        self.best_iteration_ = int(best) + 1 if validation is not None and best is not None else self.n_trees_
        if self.best_iteration_ < self.n_trees_:
            self.notes_.append(f"early stopping: best iteration {self.best_iteration_}")
        self.n_targets_ = n_targets
        self.fitted_ = True
        return self

    def _predict(self, X):
        self._check_fitted()
        pred = self.booster_.inplace_predict(X, iteration_range=(0, self.best_iteration_))
        pred = np.asarray(pred, dtype=np.float64)
        return pred if self.is_classification else pred.reshape(len(X), -1)

    def feature_importance(self, n_features: int) -> np.ndarray:
        """Total gain per feature, normalised to sum 1."""
        gain = self.booster_.get_score(importance_type="total_gain")
        imp = np.array([gain.get(f"f{i}", 0.0) for i in range(n_features)])
        return imp / imp.sum() if imp.sum() > 0 else imp

    def state(self) -> State:
        meta = {"best_iteration": self.best_iteration_, "n_targets": self.n_targets_}
        return meta, {}, {"model.ubj": bytes(self.booster_.save_raw("ubj"))}

    def set_state(self, meta, arrays, blobs):
        import xgboost as xgb

        self.booster_ = xgb.Booster()
        self.booster_.load_model(bytearray(blobs["model.ubj"]))
        self.best_iteration_ = int(meta["best_iteration"])
        self.n_targets_ = int(meta["n_targets"])
