"""The boosted decision trees (:mod:`mva.methods.bdt`) as an ONNX ``TreeEnsembleRegressor``,
built from the booster's own JSON model (trees up to the best iteration, as ``BDT._predict``).

xgboost evaluates its trees in float32 (thresholds, leaf values and the sum of the margin), and
so does the tree ensemble; the link is the objective's: the logistic function (binary, in
float32 as xgboost's), the softmax of the margins in float64 (multiclass, as ``BDT._predict``),
the identity (regression, one output per target; multi-target trees hold a leaf vector).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from mva.export.onnx_model import Features

__all__ = ["to_onnx", "booster_json", "forest", "UnsupportedBooster"]

_LINKS = {"binary:logistic": "logistic", "multi:softprob": "softmax",
          "reg:squarederror": "identity", "reg:absoluteerror": "identity",
          "reg:pseudohubererror": "identity"}


class UnsupportedBooster(ValueError):
    """A booster the tree ensemble cannot represent (objective, categorical splits, ...)."""


def booster_json(model: Any) -> dict[str, Any]:
    """The trained booster (``model.booster_``) as xgboost's JSON model document."""
    return json.loads(bytes(model.booster_.save_raw("json")))


def _floats(text: Any) -> list[float]:
    """``base_score`` as xgboost writes it: ``"5E-1"`` or ``"[5E-1]"`` or ``"[a,b,c]"``."""
    text = str(text).strip().strip("[]")
    return [float(v) for v in text.split(",") if v.strip()]


def forest(doc: dict[str, Any], n_iterations: int) -> dict[str, Any]:
    """The TreeEnsembleRegressor attributes of the first ``n_iterations`` boosting rounds of an
    xgboost JSON model, its link and its number of outputs."""
    learner = doc["learner"]
    objective = learner["objective"]["name"]
    if objective not in _LINKS:
        raise UnsupportedBooster(f"objective {objective!r} (known: {', '.join(_LINKS)})")
    gbm = learner["gradient_booster"]
    if gbm.get("name", "gbtree") != "gbtree":
        raise UnsupportedBooster(f"booster {gbm.get('name')!r} (only gbtree)")
    model = gbm["model"]
    params = learner["learner_model_param"]
    n_class = int(params.get("num_class", 0) or 0)
    n_out = n_class if n_class > 1 else int(params.get("num_target", 1) or 1)
    base = np.asarray(_floats(params["base_score"]), dtype=np.float32)
    if len(base) == 1 and n_out > 1:
        base = np.repeat(base, n_out)
    if _LINKS[objective] == "logistic":
        # the intercept is stored as a probability: xgboost's ProbToMargin, in float32
        one = np.float32(1.0)
        base = -np.log(one / base - one, dtype=np.float32)
    indptr = model.get("iteration_indptr")
    n_trees = (int(indptr[n_iterations]) if indptr
               else n_iterations * max(n_class, 1) * int(
                   model["gbtree_model_param"].get("num_parallel_tree", 1)))
    attrs: dict[str, list[Any]] = {k: [] for k in (
        "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes",
        "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true",
        "nodes_hitrates", "target_treeids", "target_nodeids", "target_ids", "target_weights")}
    groups = model.get("tree_info") or [0] * n_trees
    for t, tree in enumerate(model["trees"][:n_trees]):
        if any(int(s) != 0 for s in tree.get("split_type", [])):
            raise UnsupportedBooster("categorical splits")
        left, right = tree["left_children"], tree["right_children"]
        size_leaf = int(tree["tree_param"].get("size_leaf_vector", 1) or 1)
        leaf_weights = tree.get("leaf_weights")
        for node, (lc, rc) in enumerate(zip(left, right)):
            attrs["nodes_treeids"].append(t)
            attrs["nodes_nodeids"].append(node)
            attrs["nodes_hitrates"].append(1.0)
            if lc == -1:  # a leaf
                for name, v in (("nodes_featureids", 0), ("nodes_values", 0.0),
                                ("nodes_modes", "LEAF"), ("nodes_truenodeids", 0),
                                ("nodes_falsenodeids", 0),
                                ("nodes_missing_value_tracks_true", 0)):
                    attrs[name].append(v)
                if size_leaf > 1:
                    # a multi-target tree: the leaf's vector in leaf_weights, indexed by its
                    # right_children entry
                    values = leaf_weights[rc * size_leaf:(rc + 1) * size_leaf]
                    targets = range(size_leaf)
                else:
                    values, targets = [tree["split_conditions"][node]], [int(groups[t])]
                for k, v in zip(targets, values):
                    attrs["target_treeids"].append(t)
                    attrs["target_nodeids"].append(node)
                    attrs["target_ids"].append(int(k))
                    attrs["target_weights"].append(float(np.float32(v)))
                continue
            # xgboost goes left ("yes") when x < threshold, and left for missing values when
            # default_left
            attrs["nodes_featureids"].append(int(tree["split_indices"][node]))
            attrs["nodes_values"].append(float(np.float32(tree["split_conditions"][node])))
            attrs["nodes_modes"].append("BRANCH_LT")
            attrs["nodes_truenodeids"].append(int(lc))
            attrs["nodes_falsenodeids"].append(int(rc))
            attrs["nodes_missing_value_tracks_true"].append(int(tree["default_left"][node]))
    return {"attrs": attrs, "base": [float(b) for b in base], "n_out": n_out,
            "link": _LINKS[objective], "n_trees": n_trees}


def to_onnx(f: Features, model: Any, task: str) -> dict[str, str]:
    g = f.g
    trees = forest(booster_json(model), model.best_iteration_)
    margin = g.op("TreeEnsembleRegressor", f.float32(), domain="ai.onnx.ml",
                  n_targets=trees["n_out"], base_values=trees["base"], post_transform="NONE",
                  aggregate_function="SUM", **trees["attrs"])                  # float32 (N, n)
    if task == "classification":
        return {"score": g.sigmoid(g.column(margin, 0))}
    if task == "multiclass":
        return {"probabilities": g.softmax(g.cast(margin, "double"))}
    return {"prediction": margin}
