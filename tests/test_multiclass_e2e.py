"""Multiclass end to end through the real CLI: train -> output.root, metrics.json -> apply ->
report, with the figures checked against scikit-learn on the written trees; and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import uproot
import yaml
from sklearn.metrics import accuracy_score, confusion_matrix, log_loss, roc_auc_score
from test_bad_input import assert_one_line_error

CLASSES = ("sig", "tt", "qcd")
N = 600


def _toy(path: Path) -> None:
    """One CSV with a label column; three overlapping Gaussian classes, weights on ``tt``."""
    rng = np.random.default_rng(11)
    frames = []
    for k, (mu, s) in enumerate([((0.0, 0.0), 1.0), ((1.5, 0.0), 0.7), ((0.0, 1.5), 1.4)]):
        X = rng.normal(mu, s, (N, 2))
        frames.append(pd.DataFrame({
            "x1": X[:, 0], "x2": X[:, 1], "label": k,
            "w": rng.uniform(0.5, 1.5, N) if k == 1 else np.ones(N)}))
    df = pd.concat(frames, ignore_index=True)
    df["evt"] = np.arange(len(df)) * 7 + 3
    df.to_csv(path, index=False)


def _config(data: Path) -> dict:
    return {
        "task": "multiclass",
        "data": {
            "classes": {
                "sig": {"files": [str(data)], "cut": "label == 0"},
                "tt": {"files": [str(data)], "cut": "label == 1", "weight": "w"},
                "qcd": {"files": [str(data)], "cut": "label == 2"},
            },
            "features": ["x1", "x2"],
            "spectators": ["evt"],
        },
        "split": {"train_size": {"sig": 300, "tt": 300, "qcd": 300}, "seed": 1},
        "methods": {"bdt": {"type": "bdt", "n_estimators": 30},
                    "linear": {"type": "linear"}, "knn": {"type": "knn"}},
        "evaluation": {"yields": {"sig": 100, "tt": 5000, "qcd": 20000}, "formats": ["png"]},
    }


@pytest.fixture(scope="module")
def mc_run(tmp_path_factory: pytest.TempPathFactory, mva) -> dict:
    base = tmp_path_factory.mktemp("multiclass")
    data = base / "toy.csv"
    _toy(data)
    cfg = base / "config.yaml"
    cfg.write_text(yaml.safe_dump(_config(data), sort_keys=False))
    res = mva("train", cfg, "--output", base / "run", real=True)
    assert res.returncode == 0, res.stderr
    return {"base": base, "data": data, "run": base / "run", "stdout": res.stdout}


def _tree(run: Path, name: str) -> dict[str, np.ndarray]:
    with uproot.open(run / "output.root") as f:
        return f[name].arrays(library="np")


def test_output_trees_hold_every_event_once_with_per_class_scores(mc_run: dict) -> None:
    train, test = _tree(mc_run["run"], "TrainTree"), _tree(mc_run["run"], "TestTree")
    # every event exactly once, 300 per class in training
    assert sorted(np.r_[train["evt"], test["evt"]]) == sorted(np.arange(3 * N) * 7 + 3)
    assert np.bincount(train["classID"]).tolist() == [300, 300, 300]
    assert set(test["classID"]) == {0, 1, 2}
    # classID follows the order of data.classes; className names the class
    names = np.array([n.decode() if isinstance(n, bytes) else n for n in test["className"]])
    for k, c in enumerate(CLASSES):
        assert set(names[test["classID"] == k]) == {c}
    for m in ("bdt", "linear", "knn"):
        P = np.column_stack([test[f"{m}_{c}"] for c in CLASSES])
        np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-6)


def test_metrics_agree_with_sklearn_on_the_test_tree(mc_run: dict) -> None:
    metrics = json.loads((mc_run["run"] / "metrics.json").read_text())
    assert metrics["task"] == "multiclass" and metrics["classes"] == list(CLASSES)
    test = _tree(mc_run["run"], "TestTree")
    y, w = test["classID"], test["weight"]
    for m in ("bdt", "linear", "knn"):
        P = np.column_stack([test[f"{m}_{c}"] for c in CLASSES]).astype(np.float64)
        got = metrics["methods"][m]["test"]
        assert got["accuracy"] == pytest.approx(
            accuracy_score(y, P.argmax(1), sample_weight=w), abs=1e-9)
        assert got["log_loss"] == pytest.approx(
            log_loss(y, P, sample_weight=w, labels=[0, 1, 2]), rel=1e-5)
        for k, c in enumerate(CLASSES):
            assert got["roc_auc_ovr"][c] == pytest.approx(
                roc_auc_score(y == k, P[:, k], sample_weight=w), abs=1e-6)
        np.testing.assert_allclose(
            got["confusion"], confusion_matrix(y, P.argmax(1), sample_weight=w,
                                               normalize="true"), atol=1e-9)
        assert set(metrics["methods"][m]["overtraining"]["ks_pvalue"]) == set(CLASSES)
        # the toy is learnable: well above chance
        assert got["accuracy"] > 0.6 and got["roc_auc_macro"] > 0.8
        # each headline figure with its uncertainty beside it; the accuracy's is binomial-like
        keys = list(got)
        for key in ("accuracy", "log_loss", "roc_auc_ovr", "roc_auc_macro", "eff_at_bkg"):
            assert keys.index(f"{key}_err") == keys.index(key) + 1, key
        n_eff = w.sum() ** 2 / (w**2).sum()
        binomial = np.sqrt(got["accuracy"] * (1 - got["accuracy"]) / n_eff)
        assert 0.5 * binomial < got["accuracy_err"] < 1.5 * binomial
        assert set(got["roc_auc_ovr_err"]) == set(CLASSES)
    # the methods compared on the same test events, ranked by accuracy
    c = metrics["comparison"]["accuracy"]
    acc = {m: metrics["methods"][m]["test"]["accuracy"] for m in metrics["methods"]}
    assert c["best"] == max(acc, key=acc.get) and len(c["pairs"]) == len(acc) * (len(acc) - 1) // 2


def test_summary_table_and_plots(mc_run: dict) -> None:
    assert "accuracy" in mc_run["stdout"] and "macro AUC" in mc_run["stdout"]
    plots = {p.name for p in (mc_run["run"] / "plots").glob("*.png")}
    for c in CLASSES:
        assert f"roc_{c}.png" in plots
        assert f"bdt_{c}_scores.png" in plots
    assert {"bdt_confusion.png", "bdt_loss.png", "linear_reliability.png"} <= plots
    index = json.loads((mc_run["run"] / "plots" / "index.json").read_text())["plots"]
    assert {r["file"] for r in index} == plots
    assert {r["method"] for r in index if r["file"] == "bdt_confusion.png"} == {"bdt"}


def test_apply_writes_per_class_scores_and_prior_weighted_probabilities(mc_run: dict,
                                                                      mva) -> None:
    out = mc_run["base"] / "scored.csv"
    res = mva("apply", mc_run["run"], mc_run["data"], "--output", out, "--keep", "evt")
    assert res.returncode == 0, res.stderr
    scored = pd.read_csv(out)
    assert len(scored) == 3 * N
    test = pd.DataFrame({k: v for k, v in _tree(mc_run["run"], "TestTree").items()
                         if k != "className"})
    joined = test.merge(scored, on="evt", suffixes=("_tree", ""))
    manifest = json.loads((mc_run["run"] / "models" / "manifest.json").read_text())
    priors = np.array([100, 5000, 20000]) / 25100
    for m in ("bdt", "linear", "knn"):
        for c in CLASSES:  # the same model gives the same score as in training
            np.testing.assert_allclose(joined[f"{m}_{c}"], joined[f"{m}_{c}_tree"], atol=1e-6)
        P = scored[[f"{m}_{c}" for c in CLASSES]].to_numpy()
        Q = scored[[f"{m}_{c}_prob" for c in CLASSES]].to_numpy()
        extras = manifest["methods"][m]
        np.testing.assert_allclose(extras["priors"], priors)
        # Bayes: P(k|x) for the priors = p_k * prior_k / train_prior_k, normalised
        expect = P * priors / np.asarray(extras["train_priors"])
        np.testing.assert_allclose(Q, expect / expect.sum(1, keepdims=True), atol=1e-9)
    # qcd dominates the expected composition: its probability grows
    assert (scored["bdt_qcd_prob"] >= scored["bdt_qcd"] - 1e-12).all()


def test_signal_fraction_is_refused_for_a_multiclass_run(mc_run: dict, tmp_path: Path,
                                                         mva) -> None:
    out = tmp_path / "scored.csv"
    res = mva("-q", "apply", mc_run["run"], mc_run["data"], "--output", out,
              "--signal-fraction", "0.1")
    assert_one_line_error(res, "--signal-fraction", "multiclass", left_behind=out)


def test_report_shows_the_multiclass_summary(mc_run: dict) -> None:
    text = (mc_run["run"] / "report.html").read_text()
    assert 'id="summary"' in text and "accuracy" in text
    for m in ("bdt", "linear", "knn"):
        assert f'data-method="{m}"' in text
    assert "plots/bdt_confusion.png" in text and "plots/roc_qcd.png" in text
    # every plot sits in its method's section (from plots/index.json): the confusion matrix of
    # bdt after bdt's heading and before the next method's
    assert text.index('id="m-bdt"') < text.index("plots/bdt_confusion.png") < text.index(
        'id="m-linear"')
    assert "permutation accuracy drop" in text


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("change", "needles"), [
    (lambda c: c["data"]["classes"]["qcd"].update(cut="label == 7"),
     ["data.classes.qcd", "no events"]),
    (lambda c: c["data"].update(classes={"sig": c["data"]["classes"]["sig"]}),
     ["data.classes", "two classes"]),
    (lambda c: c["evaluation"]["yields"].update(wjets=10), ["evaluation.yields.wjets",
                                                             "unknown class"]),
    (lambda c: c["split"]["train_size"].pop("qcd"), ["split.train_size.qcd"]),
    (lambda c: c["data"].update(signal={"files": ["x.csv"]}), ["data.signal", "multiclass"]),
    (lambda c: c["data"].pop("classes"), ["data.classes", "required"]),
])
def test_bad_multiclass_config_is_one_line_naming_the_key(tmp_path: Path, mva, change,
                                                          needles) -> None:
    data = tmp_path / "toy.csv"
    _toy(data)
    cfg = _config(data)
    change(cfg)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = mva("-q", "train", path, "--output", tmp_path / "run")
    assert_one_line_error(res, *needles, left_behind=tmp_path / "run")


def test_duplicate_class_names_are_an_error(tmp_path: Path, mva) -> None:
    data = tmp_path / "toy.csv"
    _toy(data)
    text = yaml.safe_dump(_config(data), sort_keys=False)
    # a second `tt:` under data.classes: plain YAML would silently keep the last one
    text = text.replace("    qcd:", f"    tt:\n      files: [{data}]\n    qcd:", 1)
    path = tmp_path / "config.yaml"
    path.write_text(text)
    res = mva("-q", "train", path, "--output", tmp_path / "run")
    assert_one_line_error(res, "duplicate key 'tt'", str(path), left_behind=tmp_path / "run")
