"""End to end with negative Monte Carlo weights: kept or ignored in training, always kept in
the evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import uproot

from mva.config import parse_config
from mva.evaluation.classification import roc_auc
from mva.io.writers import write_trees
from mva.toys import classification_toy
from mva.training import train


@pytest.mark.parametrize("policy", ["keep", "ignore"])
def test_negative_weights(tmp_path: Path, policy: str) -> None:
    sig, bkg = classification_toy(n_signal=1500, n_background=1500, seed=8)
    rng = np.random.default_rng(1)
    bkg["weight"] = np.where(rng.random(1500) < 0.15, -bkg["weight"], bkg["weight"])
    sig["weight"] = np.where(rng.random(1500) < 0.1, -1.0, 1.0)
    data = tmp_path / "nlo.root"
    write_trees(data, {"TreeS": sig, "TreeB": bkg})
    cfg = parse_config({
        "task": "classification",
        "data": {"signal": {"files": [str(data)], "tree": "TreeS"},
                 "background": {"files": [str(data)], "tree": "TreeB"},
                 "weight": "weight", "features": ["var1", "var2", "var3", "var4"]},
        "split": {"test_fraction": 0.5, "seed": 2, "negative_weights": policy},
        "methods": {"bdt": {"type": "bdt", "n_estimators": 40}, "fisher": {"type": "linear"},
                    "mlp": {"type": "mlp", "epochs": 4}, "knn": {"type": "knn"}},
        "evaluation": {"plots": False},
    })
    train(cfg, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    test = uproot.open(tmp_path / "run" / "output.root")["TestTree"].arrays(library="np")
    # evaluation uses the original, signed weights
    assert (test["weight"] < 0).any()
    labels = (test["classID"] == 0).astype(int)
    for name in ("bdt", "fisher", "mlp", "knn"):
        auc = roc_auc(test[name], labels, test["weight"])
        assert metrics["methods"][name]["test"]["roc_auc"] == pytest.approx(auc)
        assert auc > 0.8
    notes = " ".join(metrics["methods"]["bdt"].get("notes", []))
    # xgboost cannot take negative weights: with "keep" the tool says it used them as 0
    assert ("negative weight" in notes) == (policy == "keep")
