"""Multiclass end to end through the real ``mva`` entry point: the example and its config, and
classification quality against known optima (smaller versions of benchmarks/bench_multiclass.py).

* Gaussian toy (``mva example multiclass``), BDT, MLP and linear at their defaults with 2000
  training events per class: the best method is within 1.5 % of the Bayes accuracy computed from
  the true densities, the linear one clearly below it (the Bayes boundaries are quadratic).
* scikit-learn's handwritten digits as a CSV with a ``label`` column, ten classes by cuts, all
  five methods at their defaults: best test accuracy >= 0.97, linear >= 0.94.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import uproot
import yaml

from mva.config import load_config
from mva.examples import EXAMPLES, write_example
from mva.toys import MULTICLASS_CLASSES, multiclass_bayes_accuracy

DEFAULT_METHODS = ("bdt", "mlp", "knn", "svm", "linear")


def _test_accuracies(run_dir: Path) -> dict[str, float]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["task"] == "multiclass"
    return {name: m["test"]["accuracy"] for name, m in metrics["methods"].items()}


# --------------------------------------------------------------------------------------------
# the example
# --------------------------------------------------------------------------------------------


def test_multiclass_example_is_registered_and_writes_one_tree_per_class(tmp_path, mva):
    assert "multiclass" in EXAMPLES
    res = mva("example", "multiclass", "--output", tmp_path / "ex", "-n", 300, "--seed", 2,
              real=True)
    assert res.returncode == 0, res.stderr
    with uproot.open(tmp_path / "ex" / "data" / "multiclass.root") as f:
        assert {k.split(";")[0] for k in f.keys()} == set(MULTICLASS_CLASSES)
        for name in MULTICLASS_CLASSES:
            tree = f[name]
            assert tree.num_entries == 300
            assert set(tree.keys()) == {"x1", "x2", "x3", "x4", "weight"}
    raw = yaml.safe_load((tmp_path / "ex" / "config.yaml").read_text())
    assert raw["task"] == "multiclass"
    assert list(raw["data"]["classes"]) == list(MULTICLASS_CLASSES)  # classID order
    assert {m["type"] for m in raw["methods"].values()} == set(DEFAULT_METHODS)
    assert set(raw["split"]["train_size"]) == set(raw["evaluation"]["yields"]) == set(
        MULTICLASS_CLASSES)


def test_multiclass_example_config_parses(tmp_path):
    # needs the multiclass config (data.classes, per-class train_size and yields)
    path = write_example("multiclass", tmp_path / "ex", n=300, seed=1)
    cfg = load_config(path)
    assert cfg.task == "multiclass"
    assert list(cfg.data.classes) == list(MULTICLASS_CLASSES)
    assert cfg.data.features == ["x1", "x2", "x3", "x4"]
    assert sorted(spec.type for spec in cfg.methods.values()) == sorted(DEFAULT_METHODS)
    for source in cfg.data.classes.values():
        assert all(Path(f).is_file() for f in source.files)  # resolved against the config
    assert cfg.data.classes["ttbar"].weight == "weight"


# --------------------------------------------------------------------------------------------
# quality
# --------------------------------------------------------------------------------------------


def test_multiclass_toy_reaches_bayes_accuracy(tmp_path, mva):
    ex = tmp_path / "ex"
    res = mva("example", "multiclass", "--output", ex, "-n", 12000, "--seed", 3, real=True)
    assert res.returncode == 0, res.stderr
    raw = yaml.safe_load((ex / "config.yaml").read_text())
    raw["methods"] = {k: raw["methods"][k] for k in ("bdt", "mlp", "linear")}
    (ex / "fast.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    res = mva("train", ex / "fast.yaml", "--output", ex / "run", "-q", real=True, timeout=600)
    assert res.returncode == 0, res.stderr
    acc = _test_accuracies(ex / "run")
    assert set(acc) == {"bdt", "mlp", "linear"}
    bayes, _ = multiclass_bayes_accuracy(n=100000, seed=99)
    # 10000 test events per class: the statistical error of an accuracy is ~0.002
    assert max(acc.values()) >= 0.985 * bayes, (acc, bayes)
    assert acc["linear"] < 0.975 * bayes, (acc, bayes)
    assert acc["linear"] > 0.9 * bayes, (acc, bayes)  # but still a sensible classifier


def test_digits_accuracy(tmp_path, mva):
    res = mva("example", "digits", "--output", tmp_path / "digits", real=True)
    assert res.returncode == 0, res.stderr
    config = tmp_path / "digits" / "config.yaml"
    # ten classes' plots take most of the time and are not what this test checks
    res = mva("train", config, "--output", tmp_path / "run", "-q", "--set",
              "evaluation.plots=false", real=True, timeout=600)
    assert res.returncode == 0, res.stderr
    acc = _test_accuracies(tmp_path / "run")
    assert set(acc) == set(DEFAULT_METHODS)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["classes"] == [f"d{k}" for k in range(10)]
    # 30 % of 1797 images: about 540 test images, so one error is 0.2 %
    assert max(acc.values()) >= 0.97, acc
    assert acc["linear"] >= 0.94, acc
    confusion = np.asarray(metrics["methods"]["linear"]["test"]["confusion"])
    assert confusion.shape == (10, 10)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(pytest.main([__file__, "-q"]))
