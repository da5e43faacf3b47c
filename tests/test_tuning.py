"""Hyper-parameter tuning (``methods.<m>.tune``): the config is validated with errors naming
the key, every method type has a default space, tuning beats a poor configured value and is
reproducible (also with trials in parallel), and tuned k-fold models are stored with their own
parameters."""

from __future__ import annotations

import copy
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uproot

from mva.config import parse_config
from mva.errors import ConfigError
from mva.methods import METHODS, method_class
from mva.tuning import DEFAULT_SPACES, default_space, parse_space, tune_method, validate_tune

TASKS = ("classification", "multiclass", "regression")


def config(data: Path, methods: dict[str, Any], **split: Any) -> dict[str, Any]:
    return {"task": "classification",
            "data": {"signal": {"files": [str(data)], "tree": "TreeS"},
                     "background": {"files": [str(data)], "tree": "TreeB", "weight": "weight"},
                     "features": ["var1", "var2", "var3", "var4"]},
            "split": {"seed": 5, **(split or {"train_size": {"signal": 400, "background": 400}})},
            "methods": methods, "evaluation": {"plots": False}}


def error_of(tune: Any, kind: str = "bdt", task: str = "classification") -> str:
    raw = config(Path("toy.root"), {"m": {"type": kind, "tune": tune}})
    if task == "regression":
        raw.update(task="regression", data={"files": ["r.root"], "features": ["x"],
                                             "target": "y"})
        raw["split"] = {"seed": 1}
    with pytest.raises(ConfigError) as exc:
        parse_config(raw, source="cfg.yaml")
    return str(exc.value)


# --------------------------------------------------------------------------- the config


@pytest.mark.parametrize(("tune", "needle"), [
    ({"space": {"max_dept": [2, 8]}}, "methods.m.tune.space.max_dept: unknown parameter of bdt"),
    ({"space": {"max_depth": [8, 2]}}, "methods.m.tune.space.max_depth: low must be below high"),
    ({"space": {"max_depth": [0, 4]}},
     "methods.m.tune.space.max_depth: Input should be greater than or equal to 1 (got 0)"),
    ({"space": {"max_depth": [1.5, 4]}}, "methods.m.tune.space.max_depth: Input should be a "
                                         "valid integer"),
    ({"space": {"learning_rate": [0.0, 0.3, "log"]}},
     "methods.m.tune.space.learning_rate: Input should be greater than 0"),
    ({"space": {"reg_lambda": [0.0, 3.0, "log"]}},
     "methods.m.tune.space.reg_lambda: a log range must start above 0"),
    ({"space": {"learning_rate": [0.01, 0.3, "lin"]}}, "the third entry may only be 'log'"),
    ({"space": {"learning_rate": 0.1}}, "methods.m.tune.space.learning_rate: expected [low, "
                                        "high], [low, high, log] or {choices: [...]}"),
    ({"space": {"n_jobs": [1, 4]}}, "methods.m.tune.space.n_jobs: not a parameter to tune"),
    ({"space": {"loss": {"choices": ["squared_error", "cubic"]}}},
     "methods.m.tune.space.loss: Input should be"),
    ({"space": {}}, "methods.m.tune.space: is empty"),
    ({"metric": "auc"}, "methods.m.tune.metric: unknown metric 'auc' (for classification: "
                        "roc_auc, log_loss, accuracy)"),
    ({"metric": "rms"}, "methods.m.tune.metric: rms is not a classification metric"),
    ({"trails": 10}, "methods.m.tune.trails: unknown key"),
    ({"trials": 0}, "methods.m.tune.trials: Input should be greater than or equal to 1"),
    ({"folds": 1}, "methods.m.tune.folds: Input should be greater than or equal to 2"),
    ([10], "methods.m.tune: must be a mapping"),
])
def test_bad_tune_configs_are_one_line_errors_naming_the_key(tune: Any, needle: str) -> None:
    msg = error_of(tune)
    assert msg.startswith("cfg.yaml: ") and needle in msg and "\n" not in msg, msg


def test_task_specific_checks() -> None:
    assert "the scores of svm are not probabilities" in error_of({"metric": "log_loss"}, "svm")
    assert "Fisher discriminant's scores are not probabilities" in error_of(
        {"metric": "log_loss"}, "linear")
    assert "roc_auc is not a regression metric" in error_of({"metric": "roc_auc"}, "knn",
                                                            "regression")
    assert "nothing to tune for linear (regression)" in error_of({}, "linear", "regression")


def test_valid_tune_is_normalised_into_the_spec() -> None:
    raw = config(Path("toy.root"), {"bdt": {"type": "bdt", "tune": {
        "trials": 7, "space": {"max_depth": [2, 8], "learning_rate": [0.01, 0.3, "log"],
                               "subsample": [0.5, 1]}}}})
    before = copy.deepcopy(raw)
    tune = parse_config(raw, source="cfg.yaml").methods["bdt"].tune
    assert raw == before
    assert tune == {"trials": 7, "folds": 3, "metric": "roc_auc", "direction": "maximize",
                    "n_jobs": 1, "pruning": True,
                    "space": {"max_depth": {"low": 2, "high": 8, "log": False, "type": "int"},
                              "learning_rate": {"low": 0.01, "high": 0.3, "log": True,
                                                "type": "float"},
                              "subsample": {"low": 0.5, "high": 1.0, "log": False,
                                            "type": "float"}}}
    # the MLP's hidden layers are choices of lists
    mlp = parse_config(config(Path("t.root"), {"m": {"type": "mlp", "tune": {
        "metric": "log_loss", "space": {"hidden_layers": {"choices": [[8], [16, 16]]}}}}}),
        source="c").methods["m"].tune
    assert mlp["space"] == {"hidden_layers": {"choices": [[8], [16, 16]]}}


@pytest.mark.parametrize("kind", sorted(METHODS))
def test_every_method_type_has_a_valid_default_space(kind: str) -> None:
    """Contract over the registry: a documented default space whose keys are the method's
    parameters and whose ranges its own validation accepts, for every task it can tune."""
    assert kind in DEFAULT_SPACES
    params = method_class(kind).Params
    assert set(DEFAULT_SPACES[kind]) <= set(params.model_fields)
    tunable = [t for t in TASKS if default_space(kind, t)]
    assert "classification" in tunable
    for task in tunable:
        dims = parse_space(kind, task, None, params)
        assert [d.name for d in dims] == list(default_space(kind, task))
        checked = validate_tune({}, kind, task, params(), params)
        assert checked["metric"] in ("roc_auc", "log_loss", "rms")


# --------------------------------------------------------------------------- the search


def test_parallel_trials_are_reproducible_and_pruned() -> None:
    """Batches of trials in threads, finishing in random order: told back in trial order, so
    the same seed and n_jobs give the same search; unpromising trials are pruned."""
    from mva.methods.knn import KNNParams

    space = validate_tune({"trials": 16, "folds": 3, "space": {"k": [1, 400, "log"]}}, "knn",
                          "regression", KNNParams(), KNNParams)

    def fit_fold(params: dict[str, Any], k: int) -> float:
        time.sleep(random.uniform(0, 0.004))           # shuffles the threads' finishing order
        return (np.log(params["k"]) - np.log(40)) ** 2 + 0.01 * k

    def search(n_jobs: int) -> dict[str, Any]:
        out = tune_method("knn", "regression", {"k": 3}, {**space, "n_jobs": n_jobs}, fit_fold,
                          seed=11)
        return {k: v for k, v in out.items() if k != "history"} | {
            "history": [{k: v for k, v in h.items() if k != "seconds"} for h in out["history"]]}

    one, again = search(1), search(1)
    assert one == again
    two, two_again = search(3), search(3)
    assert two == two_again
    assert one["trials"] == 16 and one["pruned"] > 0
    assert one["history"][0]["params"] == {"k": 3}             # the configured value first
    assert abs(np.log(one["best_params"]["k"]) - np.log(40)) < 1.0
    assert one["best_score"] == min(h["value"] for h in one["history"] if "value" in h)


@pytest.fixture(scope="module")
def tuned(toy_example: Path) -> tuple[Any, Any]:
    from mva.training import run_training

    methods = {"knn1": {"type": "knn", "k": 1},
               "knn": {"type": "knn", "k": 1, "tune": {"trials": 8, "folds": 3}}}
    cfg = parse_config(config(toy_example / "data" / "toy.root", methods))
    return run_training(cfg), run_training(cfg)


def test_tuning_beats_a_poor_configured_value(tuned: tuple[Any, Any]) -> None:
    run, _ = tuned
    m = run.metrics["methods"]
    t = m["knn"]["tuning"]
    assert set(t) >= {"best_params", "best_score", "trials", "history", "importances"}
    assert t["trials"] == len(t["history"]) == 8 and t["metric"] == "roc_auc"
    assert t["history"][0]["params"] == {"k": 1}               # the configured k, tried first
    assert t["best_params"]["k"] > 5 and t["best_score"] > t["history"][0]["value"] + 0.03
    assert m["knn"]["test"]["roc_auc"] > m["knn1"]["test"]["roc_auc"] + 0.03
    # the refit model uses the best k on the whole training sample, and says so
    assert run.methods["knn"].trained.model.k_ == t["best_params"]["k"]
    assert run.methods["knn"].trained.params["k"] == t["best_params"]["k"]
    assert m["knn"]["notes"][0].startswith("tuned (8 trials, 3-fold cross-validation")
    assert "tuning" not in m["knn1"]


def test_tuning_is_reproducible(tuned: tuple[Any, Any]) -> None:
    a, b = (r.metrics["methods"]["knn"] for r in tuned)
    strip = {"seconds", "fit_seconds"}
    assert a["tuning"]["best_params"] == b["tuning"]["best_params"]
    assert [{k: v for k, v in h.items() if k not in strip} for h in a["tuning"]["history"]] \
        == [{k: v for k, v in h.items() if k not in strip} for h in b["tuning"]["history"]]
    assert a["test"] == b["test"]


def test_tuned_kfold_models_keep_their_own_parameters(toy_example: Path, tmp_path: Path,
                                                       mva: Any) -> None:
    """Each fold is tuned on its own training folds; its model is stored with the parameters it
    was fitted with, so loading the run rebuilds every fold's network and reproduces the
    TestTree's out-of-fold scores."""
    import yaml

    from mva.store import load_models

    methods = {"mlp": {"type": "mlp", "epochs": 3, "device": "cpu", "tune": {
        "trials": 3, "folds": 2, "space": {"hidden_layers": {"choices": [[3], [5, 5], [9]]}}}}}
    raw = config(toy_example / "data" / "toy.root", methods, folds=2)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(raw))
    res = mva("train", tmp_path / "cfg.yaml", "--output", tmp_path / "run")
    assert res.returncode == 0, res.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    folds = metrics["methods"]["mlp"]["tuning"]["folds"]
    assert len(folds) == 2 and all(f["trials"] == 3 for f in folds)
    manifest = json.loads((tmp_path / "run" / "models" / "manifest.json").read_text())
    stored = [f["params"]["hidden_layers"] for f in manifest["methods"]["mlp"]["folds"]]
    assert stored == [f["best_params"]["hidden_layers"] for f in folds]
    _, models = load_models(tmp_path / "run")
    with uproot.open(tmp_path / "run" / "output.root") as f:
        t = f["TestTree"].arrays(["var1", "var2", "var3", "var4", "fold", "mlp"], library="np")
    X = np.column_stack([t[f"var{i}"] for i in range(1, 5)])
    np.testing.assert_allclose(models["mlp"].predict(X, t["fold"])[0], t["mlp"], rtol=1e-6)


def test_task_only_parameters_are_left_out_of_the_other_tasks_spaces() -> None:
    """The MLP's input_lasso (no default penalty in regression) is tuned for classification
    and multiclass only; the SVM's epsilon for regression only."""
    for task in ("classification", "multiclass"):
        assert "input_lasso" in default_space("mlp", task)
        assert "epsilon" not in default_space("svm", task)
    assert "input_lasso" not in default_space("mlp", "regression")
    assert "epsilon" in default_space("svm", "regression")
