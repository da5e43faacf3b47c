"""``metrics.json`` says, per method, how many events its fit really used, and which neighbour
search and SVM solver were used."""

from __future__ import annotations

import json
from pathlib import Path

import yaml


def test_training_events_and_search_notes(toy_example: Path, tmp_path: Path, mva) -> None:
    raw = yaml.safe_load((toy_example / "config.yaml").read_text())
    raw["split"] = {"train_size": 0, "seed": 1}          # half of the 800 + 800 events
    raw["methods"] = {
        "knn": {"type": "knn", "k": 10},
        "svm": {"type": "svm", "solver": "exact", "max_train_events": 300},
        "svm_nys": {"type": "svm", "max_train_events": 300, "n_components": 50},
        "mlp": {"type": "mlp", "epochs": 2, "hidden_layers": [8], "device": "cpu"},
        "mlp_one": {"type": "mlp", "epochs": 2, "hidden_layers": [8], "device": "cpu",
                    "ensemble": 1},
        "bdt": {"type": "bdt", "n_estimators": 10, "early_stopping_rounds": 2},
        "fisher": {"type": "linear"},
    }
    raw["evaluation"] = {**raw.get("evaluation", {}), "plots": False}
    config = toy_example / "events.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    res = mva("-q", "train", config, "--output", tmp_path / "run")
    assert res.returncode == 0, res.stderr
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())["methods"]
    # validation_fraction 0.2 of the 800 training events is held out by the BDT and a single
    # MLP; the default MLP ensemble (below 20k events) trains each event in four of its five
    # networks and stops each on the fifth part
    assert {k: v["training_events"] for k, v in m.items()} == {
        "knn": 800, "svm": 300, "svm_nys": 800, "mlp": 800, "mlp_one": 640, "bdt": 640,
        "fisher": 800}
    assert any(n.startswith("neighbour search: exact") for n in m["knn"]["notes"])
    assert any(n.startswith("solver nystroem: 50 landmarks") for n in m["svm_nys"]["notes"])
    assert any("300 of 800" in n for n in m["svm"]["notes"])
