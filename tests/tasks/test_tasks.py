"""The task modules: registry contract, label encoding, split and weights per class, output
branches and the prior re-weighting of the multiclass probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from mva.config import Split, TrainSize, parse_config
from mva.errors import ConfigError
from mva.io.events import Events
from mva.split import split_indices, training_weights, validation_split
from mva.tasks import TASKS, Task, task_class, task_for_config, task_for_manifest
from mva.tasks.binary import Binary
from mva.tasks.multiclass import Multiclass
from mva.tasks.regression import Regression

SRC = {"files": ["x.root"], "tree": "t"}


def _raw(task: str, **data) -> dict:
    return {"task": task, "data": {"features": ["a", "b"], **data},
            "methods": {"lin": {"type": "linear"}}}


def _events(labels: np.ndarray, weights: np.ndarray | None = None) -> Events:
    n = len(labels)
    return Events(features=np.zeros((n, 2)), feature_names=["a", "b"],
                  weights=np.ones(n) if weights is None else weights,
                  labels=np.asarray(labels, dtype=np.int8))


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_registered_task_is_a_task_named_as_registered(name: str) -> None:
    cls = task_class(name)
    assert issubclass(cls, Task) and cls.name == name
    # every abstract hook is implemented
    for hook in ("check_config", "from_config", "samples", "y", "truth_columns", "figures",
                 "method_columns", "evaluate", "summary_table", "method_plots",
                 "summary_plots", "report_summary", "report_comparison"):
        assert getattr(cls, hook) is not getattr(Task, hook), f"{name}: {hook} not implemented"


def test_binary_is_the_two_class_case_with_tmva_class_ids() -> None:
    cfg = parse_config(_raw("classification", signal=SRC, background={**SRC, "weight": "w"}))
    task = task_for_config(cfg)
    assert isinstance(task, Binary) and task.n_classes == 2
    assert task.groups == [("signal", 1), ("background", 0)]
    samples = task.samples(cfg.data)
    assert [(s.key, s.label, s.weight) for s in samples] == [
        ("data.signal", 1, ""), ("data.background", 0, "w")]
    ev = _events(np.array([1, 0, 0, 1]))
    cols = task.truth_columns(ev)
    # TMVA: signal is classID 0
    assert cols["classID"].tolist() == [0, 1, 1, 0]
    assert cols["className"].to_numpy().tolist() == ["Signal", "Background", "Background", "Signal"]
    assert list(task.method_columns("bdt", np.array([0.1, 0.9]), None)) == ["bdt"]
    assert task_for_manifest({"task": "classification"}).classes == ["signal", "background"]


def test_multiclass_labels_are_class_positions_and_branches_per_class() -> None:
    classes = {"sig": SRC, "tt": {**SRC, "cut": "HT > 500"}, "qcd": SRC}
    cfg = parse_config(_raw("multiclass", classes=classes, cut="MET > 20"))
    task = task_for_config(cfg)
    assert isinstance(task, Multiclass) and task.n_classes == 3
    assert task.groups == [("sig", 0), ("tt", 1), ("qcd", 2)]
    samples = task.samples(cfg.data)
    assert [s.key for s in samples] == ["data.classes.sig", "data.classes.tt",
                                        "data.classes.qcd"]
    assert samples[1].cut == "(MET > 20) && (HT > 500)"
    assert task.truth_columns(_events(np.array([2, 0, 1])))["classID"].tolist() == [2, 0, 1]
    P = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    cols = task.method_columns("bdt", P, None)
    assert list(cols) == ["bdt_sig", "bdt_tt", "bdt_qcd"]
    np.testing.assert_array_equal(cols["bdt_qcd"], P[:, 2])
    again = task_for_manifest({"task": "multiclass", **task.manifest_info()})
    assert again.classes == task.classes


def test_multiclass_apply_columns_reweight_to_the_priors() -> None:
    class Trained:
        extras = {"priors": [0.7, 0.2, 0.1], "train_priors": [1 / 3, 1 / 3, 1 / 3]}

    task = Multiclass(classes=["a", "b", "c"])
    P = np.array([[0.2, 0.3, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    cols = task.apply_columns("m", Trained(), P, None, {})
    Q = np.column_stack([cols[f"m_{c}_prob"] for c in "abc"])
    # equal training priors: the probabilities become p_k * prior_k, normalised
    expect = P * [0.7, 0.2, 0.1]
    np.testing.assert_allclose(Q, expect / expect.sum(1, keepdims=True))
    np.testing.assert_allclose(Q[1], [0.7, 0.2, 0.1])


def test_priors_from_yields_or_class_fractions_else_equal() -> None:
    classes = {"a": SRC, "b": SRC, "c": SRC}
    raw = _raw("multiclass", classes=classes)
    raw["evaluation"] = {"yields": {"a": 1, "b": 3, "c": 6}}
    task = task_for_config(parse_config(raw))
    np.testing.assert_allclose(task.priors(parse_config(raw)), [0.1, 0.3, 0.6])
    raw["evaluation"] = {"class_fractions": {"a": 2, "b": 2, "c": 4}}
    np.testing.assert_allclose(task.priors(parse_config(raw)), [0.25, 0.25, 0.5])
    raw["evaluation"] = {}
    np.testing.assert_allclose(task.priors(parse_config(raw)), [1 / 3] * 3)


def test_train_priors_follow_the_weights_the_method_fitted() -> None:
    class Run:
        train = _events(np.array([0, 0, 1, 1]))
        train_weights = np.array([1.0, 1.0, 3.0, -1.0])

    class Clips:
        clips_negative_weights = True

    class Keeps:
        clips_negative_weights = False

    task = Multiclass(classes=["a", "b"])
    # a method that sets negative weights to 0 learns the composition 2 : 3
    np.testing.assert_allclose(task.train_priors(Run(), Clips()), [0.4, 0.6])
    np.testing.assert_allclose(task.train_priors(Run(), Keeps()), [0.5, 0.5])


def test_regression_branches_one_and_several_targets() -> None:
    task = Regression(targets=["E"])
    pred, sigma = np.array([[1.0], [2.0]]), np.array([[0.1], [0.2]])
    assert list(task.method_columns("m", pred, sigma)) == ["m", "m_sigma"]
    task = Regression(targets=["E", "F"])
    assert list(task.method_columns("m", np.ones((2, 2)), None)) == ["m_0", "m_1"]
    assert task.groups is None


def test_split_and_weights_per_class_for_three_classes() -> None:
    labels = np.repeat([0, 1, 2], [100, 200, 300]).astype(np.int8)
    groups = [("a", 0), ("b", 1), ("c", 2)]
    split = Split(train_size=TrainSize(a=10, b=20, c=30), seed=2)
    train, test = split_indices(labels, len(labels), split, groups=groups)
    assert np.bincount(labels[train]).tolist() == [10, 20, 30]
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(labels)
    rng = np.random.default_rng(0)
    w = rng.uniform(0.5, 2.0, len(labels))
    eq = training_weights(labels, w, "equal", "keep", groups)
    sums = [eq[labels == k].sum() for k in range(3)]
    np.testing.assert_allclose(sums, [len(labels) / 3] * 3)
    mean = training_weights(labels, w, "mean", "keep", groups)
    np.testing.assert_allclose([mean[labels == k].mean() for k in range(3)], [1, 1, 1])
    fit, val = validation_split(labels, len(labels), 0.2, 1, groups)
    assert np.bincount(labels[val]).tolist() == [20, 40, 60]
    w[labels == 1] = -1.0
    with pytest.raises(ConfigError, match="the b training weights"):
        training_weights(labels, w, "equal", "keep", groups)


def test_per_class_keys_must_name_the_classes() -> None:
    raw = _raw("multiclass", classes={"a": SRC, "b": SRC})
    raw["split"] = {"train_size": {"a": 1, "c": 2}}
    with pytest.raises(ConfigError, match=r"split\.train_size\.c: unknown class"):
        parse_config(raw)
    raw["split"] = {"train_size": {"a": 1, "b": -2}}
    with pytest.raises(ConfigError, match=r"split\.train_size.*b: must be >= 0"):
        parse_config(raw)
    raw["split"] = {}
    raw["evaluation"] = {"class_fractions": {"a": 0.5, "b": 0.0}}
    with pytest.raises(ConfigError, match=r"b: must be > 0"):
        parse_config(raw)
    raw["evaluation"] = {"signal_fraction": 0.1}
    with pytest.raises(ConfigError, match=r"evaluation\.signal_fraction: only for binary"):
        parse_config(raw)
    with pytest.raises(ConfigError, match=r"data\.classes: only for task: multiclass"):
        parse_config(_raw("classification", classes={"a": SRC, "b": SRC}, signal=SRC,
                          background=SRC))


def test_class_names_that_give_the_same_branch_are_an_error() -> None:
    with pytest.raises(ConfigError, match=r"data\.classes\.W\+jets: gives the same branch"):
        parse_config(_raw("multiclass", classes={"W jets": SRC, "W+jets": SRC}))


def test_yaml_merge_keys_load_and_non_finite_yields_are_refused(tmp_path) -> None:
    from mva.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text("task: multiclass\n"
                    "data:\n  classes:\n    a: &src {files: [x.csv]}\n"
                    "    b: {<<: *src, cut: 'y > 1'}\n  features: [y]\n"
                    "methods: {lin: {type: linear}}\n"
                    "evaluation: {yields: {a: 1, b: .nan}}\n")
    with pytest.raises(ConfigError, match=r"b: must be a finite number"):
        load_config(path)
    path.write_text(path.read_text().replace(".nan", "2"))
    cfg = load_config(path)
    assert cfg.data.classes["b"].cut == "y > 1" and cfg.data.classes["b"].files[0].endswith("x.csv")


def test_a_class_without_positive_weight_is_an_error_also_without_normalisation() -> None:
    # issue 13: normalization none used to reach a ZeroDivisionError in the metrics
    labels = np.repeat([1, 0], [5, 5]).astype(np.int8)
    w = np.r_[np.ones(5), -np.ones(5)]
    with pytest.raises(ConfigError, match="the background training weights sum to -5"):
        training_weights(labels, w, "none", "keep")
    np.testing.assert_array_equal(training_weights(labels, np.abs(w), "none", "keep"),
                                  np.ones(10))
