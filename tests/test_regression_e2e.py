"""End to end: regression example -> train -> apply, with per-event widths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import uproot

from mva.application import apply
from mva.config import load_config
from mva.evaluation.regression import regression_metrics
from mva.examples import write_example
from mva.training import train

FAST = {
    "bdt": {"type": "bdt", "n_estimators": 60},
    "knn": {"type": "knn", "k": 15},
    "lin": {"type": "linear"},
    "gauss": {"type": "mlp", "loss": "gaussian", "epochs": 40, "batch_size": 64,
              "hidden_layers": [32, 32]},
}


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("reg")
    config = write_example("regression", base / "toy", n=3000, seed=4)
    overrides = [f"methods={json.dumps(FAST)}", "split={test_fraction: 0.5, seed: 2}"]
    cfg = load_config(config, overrides)
    train(cfg, base / "run")
    return base


def test_regression_outputs_and_metrics(regression_run: Path) -> None:
    run = regression_run / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "regression"
    test = uproot.open(run / "output.root")["TestTree"].arrays(library="np")
    for name in FAST:
        got = metrics["methods"][name]["test"]
        width = test.get(f"{name}_sigma")
        expected = regression_metrics(test[name], test["target"], test["weight"], width=width)
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (name, key)
            assert got[f"{key}_err"] > 0, (name, key)   # every figure with its uncertainty
        # the rms of n residuals is known to about rms / sqrt(2 n) (Gaussian-like residuals)
        n = len(test["target"])
        assert 0.5 < got["rms_err"] / (got["rms"] / np.sqrt(2 * n)) < 2.0
    # only the Gaussian-likelihood MLP predicts a width; it is calibrated on this toy
    assert "gauss_sigma" in test and "bdt_sigma" not in test
    assert 0.75 < metrics["methods"]["gauss"]["test"]["pull_sigma_eff"] < 1.3
    # the nonlinear methods beat the linear baseline on a parabola
    rms = {n: metrics["methods"][n]["test"]["rms"] for n in FAST}
    assert rms["bdt"] < 0.7 * rms["lin"]
    for plot in ("ratio", "bdt_pred_vs_true", "bdt_profiles", "gauss_pulls",
                 "gauss_width_calibration"):
        assert (run / "plots" / f"{plot}.png").stat().st_size > 1000


def test_apply_reproduces_test_tree(regression_run: Path, tmp_path: Path) -> None:
    run = regression_run / "run"
    data = regression_run / "toy" / "data" / "regression.root"
    out = tmp_path / "scored.root"
    apply(run, [str(data)], out, tree="TreeR", keep=["var1", "var2"], step_size=700)
    scored = uproot.open(out)["TreeR"].arrays(library="np")
    n = uproot.open(data)["TreeR"].num_entries
    assert len(scored["bdt"]) == n
    test = uproot.open(run / "output.root")["TestTree"].arrays(library="np")
    # match TestTree rows to input entries by their feature values
    key = {(a, b): i for i, (a, b) in enumerate(zip(scored["var1"], scored["var2"], strict=True))}
    rows = np.array([key[(a, b)] for a, b in zip(test["var1"], test["var2"], strict=True)])
    for branch in (*FAST, "gauss_sigma"):
        np.testing.assert_allclose(scored[branch][rows], test[branch], rtol=1e-6, atol=1e-9)
