"""k-fold cross-validation: fold assignment, out-of-fold training outputs, per-fold metrics,
routing in ``mva apply``, and the held-out fold kept out of preprocessing and early stopping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import uproot
import yaml
from sklearn.metrics import roc_auc_score
from test_bad_input import assert_one_line_error

from mva.config import Split, parse_config
from mva.errors import ConfigError
from mva.split import KFold

N = 500  # events per class
FOLDS = 3


def _csv(path: Path, seed: int = 3) -> None:
    """Two classes (and a regression target) in one CSV, with a 64-bit event number above
    2^53 (a float would lose it) and a negative run number."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(N), np.zeros(N)].astype(int)
    x = rng.normal(size=(2 * N, 3)) + 0.8 * y[:, None]
    df = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "label": y,
                       "t": x[:, 0] * 2 + x[:, 1] + rng.normal(0, 0.1, 2 * N),
                       "w": rng.uniform(0.5, 1.5, 2 * N)})
    df["evt"] = (np.int64(2) ** 60 + np.arange(2 * N) * 7919).astype(np.int64)
    df["run"] = -np.arange(2 * N) // 10
    df.to_csv(path, index=False)


def _config(data: Path, task: str, expression: str | None = "evt % 3") -> dict:
    split = {"folds": FOLDS, "seed": 2}
    if expression:
        split["fold_expression"] = expression
    methods = {"bdt": {"type": "bdt", "n_estimators": 20},
               "mlp": {"type": "mlp", "epochs": 4, "hidden_layers": [8]},
               # the matrix preprocessing steps too: their products must not depend on chunking
               "knn": {"type": "knn", "preprocess": ["pca"]}, "svm": {"type": "svm"},
               "linear": {"type": "linear", "preprocess": ["decorrelate"]}}
    if task == "regression":
        data_cfg = {"files": [str(data)], "target": "t", "features": ["x1", "x2", "x3"],
                    "spectators": ["evt", "run"]}
    else:
        sources = {"signal": {"files": [str(data)], "cut": "label == 1"},
                   "background": {"files": [str(data)], "cut": "label == 0", "weight": "w"}}
        data_cfg = ({"classes": {
            "s": sources["signal"],
            "b": {**sources["background"], "cut": "label == 0 && x3 <= 0.5"},
            "c": {"files": [str(data)], "cut": "label == 0 && x3 > 0.5"}}}
                    if task == "multiclass" else sources)
        data_cfg = {**data_cfg, "features": ["x1", "x2", "x3"], "spectators": ["evt", "run"]}
    return {"task": task, "data": data_cfg, "split": split, "methods": methods,
            "evaluation": {"plots": False}}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kfold")
    _csv(path / "data.csv")
    return path


@pytest.fixture(scope="module", params=["classification", "multiclass", "regression"])
def run(request, base: Path, mva) -> dict:
    task = request.param
    cfg = base / f"{task}.yaml"
    cfg.write_text(yaml.safe_dump(_config(base / "data.csv", task), sort_keys=False))
    res = mva("train", cfg, "--output", base / f"run_{task}", real=True)
    assert res.returncode == 0, res.stderr
    return {"task": task, "dir": base / f"run_{task}", "data": base / "data.csv"}


def _trees(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    with uproot.open(run_dir / "output.root") as f:
        return tuple(pd.DataFrame({k: v for k, v in f[t].arrays(library="np").items()
                                   if k != "className"}) for t in ("TrainTree", "TestTree"))


def _score_branches(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.split("_")[0] in ("bdt", "mlp", "knn", "svm", "linear")]


# --------------------------------------------------------------------------- fold assignment


def test_every_event_is_in_exactly_one_test_fold_per_class() -> None:
    labels = np.repeat([1, 0], [90, 61]).astype(np.int8)
    folds = KFold(Split(folds=4, seed=3)).folds(labels, len(labels), None)
    tests = np.concatenate([f.test for f in folds])
    assert sorted(tests) == list(range(len(labels)))
    for f in folds:  # training = every other fold; the TrainTree score comes from fold k-1
        assert len(np.intersect1d(f.train, f.test)) == 0
        assert len(f.train) + len(f.test) == len(labels)
        assert np.isin(f.score_train, f.train).all()
        # random folds are drawn per class: every fold has its share of each class
        assert abs(np.sum(labels[f.test] == 1) - 90 / 4) <= 1
    assert sorted(np.concatenate([f.score_train for f in folds])) == list(range(len(labels)))


def test_fold_expression_is_taken_modulo_the_folds_for_negative_and_huge_values() -> None:
    values = np.array([-7, -1, 0, 5, 2**62 + 1, 2**62 + 2], dtype=np.int64)
    labels = np.zeros(len(values), dtype=np.int8)
    fold = KFold(Split(folds=3, fold_expression="evt")).assign(labels, len(values), [("a", 0)],
                                                                 values)
    np.testing.assert_array_equal(fold, [2, 2, 0, 2, (2**62 + 1) % 3, (2**62 + 2) % 3])


@pytest.mark.parametrize(("split", "needle"), [
    ({"folds": 1}, "split.folds"),
    ({"folds": 3, "features": ["fold"]}, "data.features: 'fold' would be written as the branch"),
    ({"folds": 5, "test_fraction": 0.5}, "test_fraction does not go with folds"),
    ({"folds": 5, "train_size": 10}, "train_size does not go with folds"),
    ({"fold_expression": "evt % 2"}, "fold_expression needs folds"),
])
def test_bad_fold_configs_name_the_key(split: dict, needle: str) -> None:
    split = dict(split)
    features = split.pop("features", ["a"])
    raw = {"task": "classification", "data": {
        "signal": {"files": ["x.csv"]}, "background": {"files": ["x.csv"]}, "features": features},
        "split": split, "methods": {"lin": {"type": "linear"}}}
    with pytest.raises(ConfigError, match=needle):
        parse_config(raw)


def test_non_integer_fold_expression_is_a_one_line_error(base: Path, tmp_path: Path,
                                                         mva) -> None:
    cfg = _config(base / "data.csv", "classification", expression="x1 * 3")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = mva("-q", "train", path, "--output", tmp_path / "run")
    assert_one_line_error(res, "split.fold_expression", "not integer-valued",
                          left_behind=tmp_path / "run")


# --------------------------------------------------------------------------- training outputs


def test_trees_hold_every_event_once_with_its_fold(run: dict) -> None:
    train, test = _trees(run["dir"])
    evt = pd.read_csv(run["data"])["evt"]
    for tree in (train, test):
        assert len(tree) == len(set(tree["evt"])) == len(tree)
        # event numbers above 2^53 survive: integer spectators stay integers
        assert tree["evt"].dtype == np.int64 and set(tree["evt"]) <= set(evt)
        np.testing.assert_array_equal(tree["fold"], tree["evt"] % FOLDS)
    assert set(test["evt"]) == set(train["evt"])
    np.testing.assert_array_equal(train["model_fold"], (train["fold"] + 1) % FOLDS)
    # training scores (by a model that saw the event) differ from the out-of-fold scores
    joined = train.merge(test, on="evt", suffixes=("_tr", "_te"))
    for b in _score_branches(test):
        assert not np.allclose(joined[f"{b}_tr"], joined[f"{b}_te"]), b


def _oof_error(task: str, test: pd.DataFrame, m: str) -> float:
    """The headline figure's statistical uncertainty from the TestTree's out-of-fold scores."""
    from mva.evaluation import uncertainty as unc

    w = test["weight"].to_numpy()
    if task == "classification":
        return unc.auc(test[m].to_numpy(), (test["classID"] == 0).astype(int), w).err
    if task == "multiclass":
        probs = test[[f"{m}_{c}" for c in ("s", "b", "c")]].to_numpy(dtype=float)
        return unc.accuracy(probs, test["classID"].to_numpy(), w).err
    return unc.std(test[m].to_numpy() - test["target"].to_numpy(), w).err


def test_per_fold_metrics_and_their_spread(run: dict) -> None:
    metrics = json.loads((run["dir"] / "metrics.json").read_text())
    assert metrics["split"] == {"folds": FOLDS, "fold_expression": "evt % 3", "seed": 2}
    _, test = _trees(run["dir"])
    key = {"classification": "roc_auc", "multiclass": "accuracy", "regression": "rms"}[
        run["task"]]
    for m in ("bdt", "mlp", "knn", "svm", "linear"):
        entry = metrics["methods"][m]
        assert [f["fold"] for f in entry["folds"]] == list(range(FOLDS))
        values = np.array([f["test"][key] for f in entry["folds"]])
        assert entry["cv"][key]["mean"] == pytest.approx(values.mean(), rel=1e-12)
        assert entry["cv"][key]["std"] == pytest.approx(values.std(ddof=1), rel=1e-12)
        assert entry["cv"][key]["n"] == FOLDS
        for f in entry["folds"]:
            assert f["n_test"] == int(np.sum(test["fold"] == f["fold"]))
        # the headline figure's uncertainty is that of the out-of-fold scores of all events
        assert entry["test"][f"{key}_err"] == pytest.approx(
            _oof_error(run["task"], test, m), rel=1e-6)
        assert all(f["test"][f"{key}_err"] > 0 for f in entry["folds"])  # and per fold
        if run["task"] == "classification":  # each fold's AUC on its own held-out events
            for f in entry["folds"]:
                sel = test["fold"] == f["fold"]
                assert f["test"]["roc_auc"] == pytest.approx(roc_auc_score(
                    test["classID"][sel] == 0, test[m][sel], sample_weight=test["weight"][sel]),
                    abs=1e-9)


def test_fold_models_differ_and_are_stored_with_checksums(run: dict) -> None:
    from mva.store import load_models

    manifest, trained = load_models(run["dir"])
    assert manifest["split"]["folds"] == FOLDS
    X = np.random.default_rng(0).normal(size=(50, 3))
    for m, tm in trained.items():
        assert len(tm.folds) == FOLDS
        assert len(manifest["methods"][m]["folds"]) == FOLDS
        preds = [f.predict(X)[0] for f in tm.folds]
        assert not np.allclose(preds[0], preds[1]), m


# --------------------------------------------------------------------------- apply


@pytest.mark.parametrize("step", [200_000, 97])
def test_apply_routes_each_event_to_its_fold_model_bit_for_bit(run: dict, tmp_path: Path,
                                                               mva, step: int) -> None:
    out = tmp_path / "scored.parquet"
    res = mva("apply", run["dir"], run["data"], "--output", out, "--keep", "evt",
              "--step-size", step)
    assert res.returncode == 0, res.stderr
    scored = pd.read_parquet(out)
    _, test = _trees(run["dir"])
    joined = test.merge(scored, on="evt", suffixes=("_tree", ""))
    assert len(joined) == len(test)
    for b in _score_branches(test):  # the same float values as the TestTree
        np.testing.assert_array_equal(joined[b].to_numpy(), joined[f"{b}_tree"].to_numpy(),
                                      err_msg=b)


def test_average_folds_is_the_mean_of_the_fold_models(run: dict, tmp_path: Path,
                                                      mva) -> None:
    from mva.store import load_models

    out = tmp_path / "avg.csv"
    res = mva("apply", run["dir"], run["data"], "--output", out, "--average-folds",
              "--methods", "linear,bdt")
    assert res.returncode == 0, res.stderr
    scored = pd.read_csv(out)
    X = pd.read_csv(run["data"])[["x1", "x2", "x3"]].to_numpy()
    manifest, trained = load_models(run["dir"], ["linear", "bdt"])
    for m, tm in trained.items():
        mean = np.mean([f.predict(X)[0] for f in tm.folds], axis=0)
        if run["task"] == "multiclass":  # one branch per class, in class order
            got = scored[[f"{m}_{c}" for c in manifest["classes"]]].to_numpy()
        else:
            got = scored[m].to_numpy().reshape(mean.shape)
        np.testing.assert_allclose(got, mean, rtol=1e-9, atol=1e-12)


def test_inputs_without_the_fold_branch_are_an_error_suggesting_average(
        run: dict, tmp_path: Path, mva) -> None:
    data = tmp_path / "nofold.csv"
    pd.read_csv(run["data"]).drop(columns=["evt"]).to_csv(data, index=False)
    out = tmp_path / "x.csv"
    res = mva("-q", "apply", run["dir"], data, "--output", out)
    assert_one_line_error(res, "'evt'", "--average-folds", left_behind=out)
    res = mva("-q", "apply", run["dir"], data, "--output", out, "--average-folds")
    assert res.returncode == 0, res.stderr


# --------------------------------------------------------------------------- no leak


def test_held_out_fold_never_enters_preprocessing_or_early_stopping(base: Path,
                                                                     monkeypatch) -> None:
    """The held-out fold gets a feature value no other event has: the preprocessing fit, the
    early-stopping validation events and the training events must never contain it."""
    from mva import training
    from mva.config import load_config
    from mva.io.events import load_samples
    from mva.methods.bdt import BDT
    from mva.preprocessing import Pipeline
    from mva.split import make_splitter

    cfg_raw = _config(base / "data.csv", "classification")
    cfg_raw["methods"] = {"bdt": {"type": "bdt", "n_estimators": 5,
                                  "early_stopping_rounds": 2, "preprocess": ["standardize"]}}
    path = base / "leak.yaml"
    path.write_text(yaml.safe_dump(cfg_raw))
    cfg = load_config(path)
    task = cfg.task_
    from mva.io.events import Events

    events = Events.concatenate(load_samples(cfg))
    folds = make_splitter(cfg.split).folds(events.labels, len(events), task.groups,
                                           events.fold_values)
    MARK = 1.0e6
    seen: dict[str, list[np.ndarray]] = {"pipeline": [], "fit": [], "validation": []}
    real_fit, real_bdt_fit = Pipeline.fit, BDT.fit

    def pipeline_fit(self, X, w=None):
        seen["pipeline"].append(np.asarray(X))
        return real_fit(self, X, w)

    def bdt_fit(self, X, y, w, validation=None, monitor=None):
        seen["fit"].append(np.asarray(X))
        seen["validation"].append(np.asarray(validation[0]))
        return real_bdt_fit(self, X, y, w, validation=validation, monitor=monitor)

    monkeypatch.setattr(Pipeline, "fit", pipeline_fit)
    monkeypatch.setattr(BDT, "fit", bdt_fit)
    for f in folds:
        marked = Events.concatenate([events])
        marked.features = events.features.copy()
        marked.features[f.test, 0] = MARK
        for v in seen.values():
            v.clear()
        training.fit_fold(cfg, task, cfg.methods["bdt"], marked, f)
        assert seen["pipeline"] and seen["fit"] and seen["validation"]
        for X in seen["pipeline"]:  # raw features: the marked value itself
            assert not np.any(X[:, 0] == MARK), f"fold {f.index}: held-out events in the fit"
        # standardised with the training folds' mean and width, a marked event would be ~1e6
        for key in ("fit", "validation"):
            for X in seen[key]:
                assert np.abs(X[:, 0]).max() < 100, f"fold {f.index}: held-out events in {key}"


def test_folds_trained_side_by_side_give_the_same_run(base: Path, tmp_path: Path, mva) -> None:
    """Worker processes (split.n_jobs: 2) and one fold after the other (1): identical trees."""
    cfg = _config(base / "data.csv", "classification")
    cfg["methods"] = {k: cfg["methods"][k] for k in ("bdt", "mlp", "svm")}
    trees = []
    for jobs in (1, 2):
        cfg["split"]["n_jobs"] = jobs
        path = tmp_path / f"c{jobs}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        res = mva("-q", "train", path, "--output", tmp_path / f"run{jobs}", real=True)
        assert res.returncode == 0, res.stderr
        trees.append(_trees(tmp_path / f"run{jobs}"))
    for one, two in zip(*trees, strict=True):
        pd.testing.assert_frame_equal(one, two, check_exact=True)


def test_permutation_importance_scores_each_event_with_its_fold_model() -> None:
    from mva.evaluation.ranking import permutation_importance

    rng = np.random.default_rng(4)
    X = rng.normal(size=(3000, 2))
    labels = (X[:, 0] > 0).astype(int)
    fold = rng.integers(0, 3, len(X))
    calls = []

    def predict(Xs, f=None):
        calls.append(f)
        # a "model" that only works when it is told the right fold of every event
        return Xs[:, 0] * (1.0 if f is not None and np.array_equal(f, fold[keep]) else 0.0)

    keep = np.sort(np.random.default_rng(0).choice(len(X), 1000, replace=False))
    drops = permutation_importance(predict, X, labels, np.ones(len(X)), ["a", "b"], seed=0,
                                   max_events=1000, folds=fold)
    assert all(f is not None for f in calls)
    assert drops["a"] > 0.3 and abs(drops["b"]) < 1e-12


# the moments a batch system may end the job: while the inputs are read (and the methods'
# libraries imported in a thread), while the fold workers start, while they fit
@pytest.mark.parametrize(("line", "delay"), [("mva: reading events", 0.0),
                                             ("mva: training 2 folds at a time", 0.0),
                                             ("mva: training mlp", 3.0)])
def test_sigterm_during_training_leaves_nothing_behind(base: Path, tmp_path: Path, line: str,
                                                       delay: float) -> None:
    import signal
    import subprocess
    import sys
    import time

    cfg = _config(base / "data.csv", "classification")
    cfg["methods"] = {"mlp": {"type": "mlp", "epochs": 2000, "early_stopping": False}}
    cfg["split"]["n_jobs"] = 2
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    proc = subprocess.Popen([str(Path(sys.executable).with_name("mva")), "train", path,
                             "--output", out], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    seen = []
    for text in proc.stderr:
        seen.append(text)
        if text.startswith(line):
            break
    assert seen and seen[-1].startswith(line), "".join(seen)
    time.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    # no hang (an import the main thread was in when the signal came), nothing printed after
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "mva: terminated (SIGTERM)", err
    assert "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".run.tmp-*"))
