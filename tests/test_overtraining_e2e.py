"""The overtraining warning end to end: an overtrained BDT is named in metrics.json, the run log,
the summary table of ``mva train`` and the report; a healthy method is not."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml


def test_overtrained_method_is_flagged_everywhere_and_healthy_one_nowhere(
        toy_example: Path, tmp_path: Path, mva: Any) -> None:
    raw = yaml.safe_load((toy_example / "config.yaml").read_text())
    raw["methods"] = {
        # deep trees, a large step, no early stopping and no leaf minimum: memorises 800 events
        "deep": {"type": "bdt", "max_depth": 8, "learning_rate": 0.5, "n_estimators": 150,
                 "early_stopping": False, "min_child_weight": 0, "subsample": 1.0},
        "fisher": {"type": "linear"}}
    raw["split"] = {"train_size": {"signal": 400, "background": 400}, "seed": 3}
    raw["evaluation"] = {"formats": ["png"]}
    config = toy_example / "overtrained.yaml"
    config.write_text(yaml.safe_dump(raw))
    res = mva("train", config, "--output", tmp_path / "run")
    assert res.returncode == 0, res.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["methods"]
    (warning,) = metrics["deep"]["warnings"]
    assert warning.startswith("overtraining: KS p-value of train vs test scores")
    assert "train AUC" in warning and "max_depth" in warning
    assert "warnings" not in metrics["fisher"]
    # the log line and the line under the printed table
    assert f"mva: deep: {warning}" in res.stderr
    assert f"warning: deep: {warning}" in res.stdout
    assert "warning: fisher" not in res.stdout + res.stderr
    # the report: a box under the summary and in the method's section
    html = (tmp_path / "run" / "report.html").read_text()
    boxes = re.findall(r'<div class="warnings">(.*?)</div>', html)
    assert len(boxes) == 2
    assert boxes[0].startswith("<p><strong>deep</strong>: overtraining: KS p-value")
    assert boxes[1].startswith("<p>overtraining: KS p-value")
    assert "fisher" not in "".join(boxes)
    # the method's section holds the second box
    assert html.index('id="m-deep"') < html.index(boxes[1]) < html.index('id="m-fisher"')


def test_overtrained_regression_is_flagged_and_healthy_defaults_are_not(
        tmp_path: Path, mva: Any) -> None:
    """A BDT that memorises 1500 events of the noisy parabola (training RMS a tenth of the test
    RMS) is flagged; the defaults of the BDT, kNN, SVM and linear baseline are not."""
    res = mva("example", "regression", "--output", tmp_path / "ex", "-n", 3000, "--seed", 2)
    assert res.returncode == 0, res.stderr
    raw = yaml.safe_load((tmp_path / "ex" / "config.yaml").read_text())
    raw["methods"] = {
        "deep": {"type": "bdt", "max_depth": 8, "learning_rate": 0.5, "n_estimators": 150,
                 "early_stopping": False, "min_child_weight": 0, "subsample": 1.0},
        **{k: {"type": k} for k in ("bdt", "knn", "svm", "linear")}}
    raw["split"] = {"train_size": 1500, "seed": 3}
    raw["evaluation"] = {"formats": ["png"]}
    config = tmp_path / "ex" / "overtrained.yaml"
    config.write_text(yaml.safe_dump(raw))
    res = mva("train", config, "--output", tmp_path / "run")
    assert res.returncode == 0, res.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["methods"]
    (warning,) = metrics["deep"]["warnings"]
    train, test = metrics["deep"]["train"]["rms"], metrics["deep"]["test"]["rms"]
    assert train < 0.8 * test
    assert warning.startswith(f"overtraining: train RMS {train:.4g} vs test {test:.4g}")
    assert "max_depth" in warning
    for healthy in ("bdt", "knn", "svm", "linear"):
        assert "warnings" not in metrics[healthy], healthy
    assert f"warning: deep: {warning}" in res.stdout
    html = (tmp_path / "run" / "report.html").read_text()
    boxes = re.findall(r'<div class="warnings">(.*?)</div>', html)
    assert len(boxes) == 2 and boxes[0].startswith("<p><strong>deep</strong>: overtraining")
