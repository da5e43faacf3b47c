"""Boosted decision trees with xgboost's ``hist`` algorithm.

Classification uses the logistic loss, so the score is a probability-like number in [0, 1];
multiclass uses the softmax loss (one tree per class and round), so the scores are per-class
probabilities. The model is stored in xgboost's own UBJSON format (no pickle).
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from pydantic import Field

from mva.errors import InputError
from mva.methods.base import (
    Method,
    Params,
    State,
    as_2d,
    check_class_labels,
    n_threads,
    positive_weights,
    softmax,
)

__all__ = ["BDT"]

log = logging.getLogger(__name__)


#: events per sample on which the per-tree loss curves are evaluated (monitoring only)
MONITOR_EVENTS = 10_000


def _sample(rng: np.random.Generator, X: np.ndarray, y: np.ndarray, w: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if len(X) <= MONITOR_EVENTS:
        return X, y, w
    idx = np.sort(rng.choice(len(X), MONITOR_EVENTS, replace=False))
    return X[idx], y[idx], w[idx]


class BDTParams(Params):
    """BDT parameters. ``None`` means: chosen for the training sample at fit time (recorded in
    the model's notes); a value given in the config is used as it is."""

    #: the most trees: with early stopping (the default) training ends when the validation loss
    #: has not improved for ``early_stopping_rounds`` trees, and the best iteration is kept
    n_estimators: int = Field(1000, ge=1, le=100_000)
    #: None: 2 below 10 000 training events, else 3; 3 for regression
    #: (:func:`mva.methods.adaptive.bdt_max_depth`)
    max_depth: int | None = Field(None, ge=1, le=20)
    learning_rate: float = Field(0.1, gt=0, le=1, allow_inf_nan=False)
    subsample: float = Field(0.5, gt=0, le=1, allow_inf_nan=False)
    colsample: float = Field(1.0, gt=0, le=1, allow_inf_nan=False)
    #: smallest sum of hessians in a leaf, with the training weights scaled to mean 1 (so in
    #: units of events); None: max(1, sqrt(n) / 4) for n training events
    min_child_weight: float | None = Field(None, ge=0, allow_inf_nan=False)
    reg_lambda: float = Field(1.0, ge=0, allow_inf_nan=False)
    max_bin: int = Field(256, ge=2, le=65_536)
    #: hold out ``validation_fraction`` of the training events (per class) and stop adding
    #: trees when their loss stops improving
    early_stopping: bool = True
    #: trees without improvement before stopping; None: max(20, 5 / learning_rate)
    early_stopping_rounds: int | None = Field(None, ge=1, le=100_000)
    validation_fraction: float = Field(0.2, gt=0, lt=1, allow_inf_nan=False)
    loss: Literal["squared_error", "absolute_error", "huber"] = "squared_error"
    huber_slope: float = Field(1.0, gt=0, allow_inf_nan=False)
    n_jobs: int | None = Field(None, ge=1, le=4096)
    #: train across the workers of the Dask cluster of the run (``--scheduler``/``--cluster``)
    #: with xgboost's Dask interface, for samples larger than one machine's memory
    distributed: bool = False


_REG_OBJECTIVE = {
    "squared_error": ("reg:squarederror", "rmse"),
    "absolute_error": ("reg:absoluteerror", "mae"),
    "huber": ("reg:pseudohubererror", "mphe"),
}


def _weighted_medians(label: np.ndarray, w: np.ndarray) -> float | list[float]:
    """The weighted median of each target: the intercept of the Huber loss. xgboost's own
    estimate for ``reg:pseudohubererror`` is far off (xgboost 3.2 starts from ~1e4 on a target
    of ~20), and with gradients bounded by the slope the trees never recover from it."""
    from mva.evaluation.regression import weighted_median

    T = as_2d(label)
    ww = w if w.sum() > 0 else np.ones(len(w))
    medians = [float(weighted_median(T[:, j], ww)) for j in range(T.shape[1])]
    return medians[0] if len(medians) == 1 else medians


class BDT(Method):
    libraries = ("mva.methods._xgb",)
    Params = BDTParams
    default_preprocess: list[str] = []
    supports_validation = True

    def wants_validation(self) -> float:
        return self.params.validation_fraction if self.params.early_stopping else 0.0

    def _resolve(self, n_events: int) -> dict:
        """The parameters left to the sample (``None``), chosen for ``n_events`` training
        events and recorded in the notes; the given ones as they are."""
        from mva.methods import adaptive

        p = self.params
        chosen = {}
        if p.max_depth is None:
            chosen["max_depth"] = adaptive.bdt_max_depth(n_events, self.task)
        if p.min_child_weight is None:
            chosen["min_child_weight"] = adaptive.bdt_min_child_weight(
                n_events, self.n_classes if self.is_multiclass else 2)
        if p.early_stopping and p.early_stopping_rounds is None:
            chosen["early_stopping_rounds"] = adaptive.early_stopping_rounds(p.learning_rate)
        if chosen:
            self.notes_.append(f"defaults for {n_events} training events: " + ", ".join(
                f"{k} {v:.3g}" for k, v in chosen.items()))
        self.resolved_ = {"max_depth": p.max_depth, "min_child_weight": p.min_child_weight,
                          "early_stopping_rounds": p.early_stopping_rounds, **chosen}
        return self.resolved_

    def _booster_params(self, n_targets: int, n_events: int) -> dict:
        p = self.params
        r = self.resolved_
        if self.is_classification:
            objective, metric = "binary:logistic", "logloss"
        elif self.is_multiclass:
            objective, metric = "multi:softprob", "mlogloss"
        else:
            objective, metric = _REG_OBJECTIVE[p.loss]
        params = {
            "objective": objective, "eval_metric": metric, "tree_method": "hist",
            "max_depth": r["max_depth"], "eta": p.learning_rate, "subsample": p.subsample,
            "colsample_bytree": p.colsample, "min_child_weight": r["min_child_weight"],
            "lambda": p.reg_lambda, "max_bin": p.max_bin, "seed": self.seed,
            "nthread": n_threads(p.n_jobs, n_events),
        }
        if self.is_multiclass:
            params["num_class"] = self.n_classes
        elif not self.is_classification and p.loss == "huber":
            params["huber_slope"] = p.huber_slope
            params["base_score"] = r["base_score"]
        if n_targets > 1:
            params["multi_strategy"] = "multi_output_tree"
        return params

    def _label(self, y: np.ndarray) -> np.ndarray:
        """The label xgboost gets: as given (binary), class indices, or ``(n, n_targets)``."""
        if self.is_classification:
            return y
        if self.is_multiclass:
            return check_class_labels(y, self.n_classes)
        return as_2d(y)

    def fit(self, X, y, w, validation=None, monitor=None):
        label = self._label(y)
        # multiclass grows one single-output tree per class: one target, not multi_output_tree
        n_targets = label.shape[1] if label.ndim == 2 else 1
        # xgboost refuses negative weights (NLO MC); they are set to 0 as the other methods do
        n_neg = int(np.sum(w < 0))
        if n_neg:
            self.notes_.append(f"{n_neg} training events with negative weight used with weight 0")
        # weights of mean 1 over the events that count: min_child_weight and reg_lambda then
        # mean the same whatever the normalisation of the weights (split.normalization: none)
        w = positive_weights(w)
        n_pos = int(np.count_nonzero(w))
        if n_pos and w.sum() > 0:
            w = w * (n_pos / w.sum())
        if validation is not None and not self.params.early_stopping:
            validation = None
        self._resolve(n_pos)
        if not self.is_classification and not self.is_multiclass and self.params.loss == "huber":
            self.resolved_["base_score"] = _weighted_medians(label, w)
        params = self._booster_params(n_targets, len(X))
        if validation is not None:
            Xv, yv, wv = validation
            validation = (Xv, self._label(yv), wv)
        self.n_targets_ = n_targets
        if self.params.distributed:
            self._fit_predictions = None
            self.booster_, result = self._train_dask(params, X, label, w, validation)
        else:
            self.booster_, result = self._train(params, X, label, w, validation)
        # loss curves after training, on seeded subsamples: per-tree evaluation inside xgboost
        # costs about 10 % of the training time at a million events; this costs next to nothing
        rng = np.random.default_rng(self.seed)
        self.history_ = {"train": self._staged_loss(*_sample(rng, X, label, w))}
        if validation is not None:
            self.history_["validation"] = list(next(iter(result["validation"].values())))
        elif monitor is not None:
            Xm, ym, wm = monitor
            self.history_["test"] = self._staged_loss(
                *_sample(rng, Xm, self._label(ym), wm))
        self.n_trees_ = self.booster_.num_boosted_rounds()
        best = getattr(self.booster_, "best_iteration", None)
        self.best_iteration_ = int(best) + 1 if validation is not None and best is not None else self.n_trees_
        if self._fit_predictions is not None and self.best_iteration_ < self.n_trees_:
            self._fit_predictions = None  # of every tree; the model predicts with fewer
        if self.best_iteration_ < self.n_trees_:
            self.notes_.append(f"early stopping: best iteration {self.best_iteration_} of "
                               f"{self.n_trees_} trees")
        elif validation is not None and self.n_trees_ == self.params.n_estimators:
            msg = (f"the validation loss was still falling at n_estimators = {self.n_trees_} "
                   "trees: more trees (or a larger learning_rate) may do better")
            log.info("bdt: %s", msg)
            self.notes_.append(msg)
        self.fitted_ = True
        return self

    def _train(self, params: dict, X: np.ndarray, label: np.ndarray, w: np.ndarray,
               validation: tuple | None) -> tuple[object, dict]:
        from mva.methods._xgb import xgb

        dtrain = xgb.QuantileDMatrix(X, label=label, weight=positive_weights(w),
                                     max_bin=self.params.max_bin)
        evals, result = [], {}
        if validation is not None:
            # early stopping needs xgboost's own per-tree evaluation of the validation sample
            Xv, yv, wv = validation
            evals = [(xgb.QuantileDMatrix(Xv, label=yv, weight=positive_weights(wv),
                                          ref=dtrain, max_bin=self.params.max_bin),
                      "validation")]
        from mva.progress import xgboost_progress

        booster = xgb.train(
            params, dtrain, num_boost_round=self.params.n_estimators,
            evals=evals, evals_result=result, verbose_eval=False,
            callbacks=[xgboost_progress(self.params.n_estimators, "bdt: training"),
                       self._cached_predictions([dtrain] + [d for d, _ in evals])],
            early_stopping_rounds=self.resolved_["early_stopping_rounds"] if evals else None,
        )
        return booster, result

    def _cached_predictions(self, matrices: list) -> object:
        """A callback that keeps the predictions of the training (and validation) matrices
        before ``xgb.train`` drops its caches: xgboost updates them with every tree it adds,
        so reading them is free where predicting a million training events again costs a
        second of CPU. Only where the model predicts with every tree (no early stop before
        the last one): the cache holds the sum over all of them."""
        from mva.methods._xgb import xgb

        method = self

        class _Keep(xgb.callback.TrainingCallback):
            def after_training(self, model: object) -> object:
                best = model.attr("best_iteration")
                if best is None or int(best) + 1 == model.num_boosted_rounds():
                    method._fit_predictions = [
                        (method._scores(model.predict(m, output_margin=method.is_multiclass),
                                        m.num_row()), None) for m in matrices]
                return model

        self._fit_predictions = None
        return _Keep()

    def _train_dask(self, params: dict, X: np.ndarray, label: np.ndarray, w: np.ndarray,
                    validation: tuple | None) -> tuple[object, dict]:
        """xgboost's Dask interface on the run's cluster: the training matrix is split across
        the workers, each builds the histograms of its part, and xgboost's collective merges
        them (the quantile sketches too, so the bins differ slightly from a local fit)."""
        try:
            import dask.array as da
            import xgboost.dask as dxgb
            from distributed import default_client
        except ImportError:
            raise InputError("bdt distributed: true needs Dask: pip install 'mva[dask]'") from None
        try:
            client = default_client()
        except ValueError:
            raise InputError("bdt distributed: true needs a Dask cluster (--scheduler or "
                             "--cluster)") from None
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))

        def matrix(X: np.ndarray, y: np.ndarray, w: np.ndarray, ref: object = None) -> object:
            rows = max(1, -(-len(X) // n_workers))
            return dxgb.DaskQuantileDMatrix(
                client, da.from_array(X, chunks=(rows, X.shape[1])),
                da.from_array(y, chunks=(rows, *y.shape[1:])),
                weight=da.from_array(positive_weights(w), chunks=rows),
                max_bin=self.params.max_bin, ref=ref)

        dtrain = matrix(X, label, w)
        evals = [] if validation is None else [(matrix(*validation, ref=dtrain), "validation")]
        params = {k: v for k, v in params.items() if k != "nthread"}  # the workers' threads
        out = dxgb.train(client, params, dtrain, num_boost_round=self.params.n_estimators,
                         evals=evals, verbose_eval=False,
                         early_stopping_rounds=self.resolved_["early_stopping_rounds"] if evals
                         else None)
        self.notes_.append(f"trained with xgboost.dask on {n_workers} workers")
        return out["booster"], out["history"]

    def _staged_margins(self, X: np.ndarray) -> np.ndarray:
        """Raw margins after each round, ``(n_rounds, n, n_outputs)``, from one pass: the leaf
        each event reaches in every tree and the trees' leaf values."""
        import json

        from mva.methods._xgb import xgb

        dm = xgb.DMatrix(X)
        n_trees = self.booster_.num_boosted_rounds()
        full = np.asarray(self.booster_.predict(dm, output_margin=True), dtype=np.float64)
        full = full.reshape(len(X), -1)
        if full.shape[1] > 1 and not self.is_multiclass:
            # multi-output trees: leaf values are vectors; no staging
            return full[None]
        leaves = np.asarray(self.booster_.predict(dm, pred_leaf=True)).reshape(len(X), -1)
        leaves = leaves.astype(np.int64)
        dumps = self.booster_.get_dump(dump_format="json")
        values = np.zeros((len(dumps), int(leaves.max()) + 1))
        for t, text in enumerate(dumps):
            stack = [json.loads(text)]
            while stack:
                node = stack.pop()
                if "leaf" in node:
                    values[t, node["nodeid"]] = node["leaf"]
                stack.extend(node.get("children", ()))
        contrib = values[np.arange(len(dumps))[None, :], leaves]       # (n, n_trees)
        if self.is_multiclass:
            # multi:softprob grows one tree per class each round: tree t belongs to class t % K;
            # the base margin is per class (xgboost fits one intercept per class)
            contrib = contrib.reshape(len(X), n_trees, self.n_classes)
            base = full - contrib.sum(axis=1)                         # (n, K)
            return base[None] + np.cumsum(contrib.transpose(1, 0, 2), axis=0)
        base = full[:, 0] - contrib.sum(axis=1)
        staged = base[None, :] + np.cumsum(contrib.T, axis=0)         # (n_trees, n)
        return staged[:n_trees, :, None]

    def _staged_loss(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> list[float]:
        """The training objective's metric after each tree (weighted)."""
        m = self._staged_margins(X)
        w = positive_weights(w)
        if self.is_multiclass:
            # cross-entropy from margins, one round at a time: log-softmax temporaries for all
            # rounds at once would each be as large as the staged margins
            rows, cls = np.arange(len(y)), y.astype(np.int64)
            out = []
            for mr in m:
                top = mr.max(axis=1)
                lse = top + np.log(np.exp(mr - top[:, None]).sum(axis=1))
                out.append(float((w * (lse - mr[rows, cls])).sum() / w.sum()))
            return out
        if self.is_classification:
            m = m[..., 0]
            # logloss from margins: log(1 + e^-m) for signal, log(1 + e^m) for background
            loss = np.logaddexp(0.0, np.where(y[None, :] == 1, -m, m))
        else:
            d = m - as_2d(y)[None]
            if self.params.loss == "squared_error":
                return list(np.sqrt((w[None, :, None] * d**2).sum(1).mean(-1) / w.sum()))
            if self.params.loss == "absolute_error":
                loss = np.abs(d).mean(-1)
            else:
                slope = self.params.huber_slope
                loss = (slope**2 * (np.sqrt(1 + (d / slope) ** 2) - 1)).mean(-1)
        return list((w[None, :] * loss).sum(1) / w.sum())

    def _predict(self, X):
        self._check_fitted()
        out = self.booster_.inplace_predict(X, iteration_range=(0, self.best_iteration_),
                                            predict_type="margin" if self.is_multiclass
                                            else "value")
        return self._scores(out, len(X))

    def _scores(self, out: np.ndarray, n: int) -> np.ndarray:
        """The scores of ``n`` events from xgboost's output: margins (multiclass) or values."""
        if self.is_multiclass:
            # softmax of the margins in float64: xgboost's float32 probabilities sum to 1 only
            # to about 1e-7
            return softmax(np.asarray(out).reshape(n, self.n_classes))
        pred = np.asarray(out, dtype=np.float64)
        return pred if self.is_classification else pred.reshape(n, self.n_targets_)

    def feature_importance(self, n_features: int) -> np.ndarray:
        """Total gain per feature, normalised to sum 1."""
        gain = self.booster_.get_score(importance_type="total_gain")
        imp = np.array([gain.get(f"f{i}", 0.0) for i in range(n_features)])
        return imp / imp.sum() if imp.sum() > 0 else imp

    def state(self) -> State:
        meta = {"best_iteration": self.best_iteration_, "n_targets": self.n_targets_}
        if self.is_multiclass:
            meta["n_classes"] = self.n_classes
        return meta, {}, {"model.ubj": bytes(self.booster_.save_raw("ubj"))}

    def set_state(self, meta, arrays, blobs):
        from mva.methods._xgb import xgb

        if self.is_multiclass and meta.get("n_classes") != self.n_classes:
            raise InputError(f"BDT model stored for {meta.get('n_classes')} classes, "
                             f"loaded for {self.n_classes}")
        self.booster_ = xgb.Booster()
        self.booster_.load_model(bytearray(blobs["model.ubj"]))
        self.best_iteration_ = int(meta["best_iteration"])
        self.n_targets_ = int(meta["n_targets"])
