"""Config validation: the documented configs parse as written, errors name the file and the key
path, ``--set`` overrides, and data paths resolve against the config's folder."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from mva.config import Config, TrainSize, apply_overrides, load_config, parse_config
from mva.errors import ConfigError
from mva.examples import CALORIMETER_CONFIG, CLASSIFICATION_CONFIG, REGRESSION_CONFIG

SOURCE = "cfg.yaml"


def minimal() -> dict[str, Any]:
    return {
        "task": "classification",
        "data": {
            "signal": {"files": ["sig.root"], "tree": "TreeS"},
            "background": {"files": "bkg.root", "tree": "TreeB", "weight": "w"},
            "features": ["var1", "abs(var2)"],
        },
        "methods": {"bdt": {"type": "bdt", "max_depth": 3}, "fisher": {"type": "linear"}},
    }


def error_of(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_config(raw, source=SOURCE)
    return str(exc.value)


# --------------------------------------------------------------------------- documented configs


def test_classification_config_parses_as_written() -> None:
    cfg = parse_config(yaml.safe_load(CLASSIFICATION_CONFIG))
    assert cfg.is_classification
    assert cfg.data.features == ["var1", "var2", "var3", "var4"]
    assert cfg.data.signal.tree == "TreeS" and cfg.data.background.weight == "weight"
    assert cfg.split.train_size == TrainSize(signal=1000, background=1000)
    assert cfg.split.seed == 7
    assert {n: m.type for n, m in cfg.methods.items()} == {
        "bdt": "bdt", "mlp": "mlp", "knn": "knn", "svm": "svm", "fisher": "linear"}
    assert cfg.methods["bdt"].params["n_estimators"] == 800
    assert cfg.methods["mlp"].params["hidden_layers"] == [64, 64]
    # the expected yields fix the signal fraction used for P(S|y)
    assert cfg.evaluation.resolved_signal_fraction(0.5) == pytest.approx(1000 / 11000)


@pytest.mark.parametrize("text, target", [(REGRESSION_CONFIG, ["fvalue"]),
                                          (CALORIMETER_CONFIG, ["E_true / E_raw"])])
def test_regression_configs_parse_as_written(text: str, target: list[str]) -> None:
    cfg = parse_config(yaml.safe_load(text))
    assert cfg.task == "regression" and not cfg.is_classification
    assert cfg.data.target == target
    assert cfg.data.signal is None and cfg.data.files


def test_defaults_are_filled_in() -> None:
    cfg = parse_config(minimal())
    assert cfg.split.seed == 0 and cfg.split.normalization == "equal"
    assert cfg.evaluation.plots is True and cfg.evaluation.formats == ["png", "pdf"]
    assert cfg.data.default == -999.0
    # a single file may be written as a string
    assert cfg.data.background.files == ["bkg.root"]
    # method parameters are validated and completed with their defaults
    assert cfg.methods["bdt"].params["max_depth"] == 3
    assert cfg.methods["bdt"].params["n_estimators"] >= 1
    assert cfg.methods["fisher"].type == "linear"


def test_config_is_frozen() -> None:
    cfg = parse_config(minimal())
    with pytest.raises(pydantic.ValidationError):
        cfg.task = "regression"
    assert isinstance(cfg, Config)


# --------------------------------------------------------------------------- errors name the key


def _set(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    node = raw
    *parents, last = path.split(".")
    for p in parents:
        node = node[p]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return raw


_DELETE = object()


@pytest.mark.parametrize("path, value, needles", [
    ("methods.bdt.max_depth", 0, ["methods.bdt.max_depth", "(got 0)"]),
    ("methods.bdt.max_depth", "three", ["methods.bdt.max_depth", "'three'"]),
    ("methods.bdt.max_deep", 3, ["methods.bdt.max_deep", "unknown key"]),
    ("methods.bdt.type", "forest", ["methods.bdt.type", "'forest'", "knn"]),
    ("methods.bdt.preprocess", ["whiten"], ["methods.bdt.preprocess", "'whiten'", "pca"]),
    ("methods.bdt", "bdt", ["methods.bdt", "mapping"]),
    ("methods", {}, ["methods", "at least one"]),
    ("methods", {"my-bdt": {"type": "bdt"}}, ["methods.my-bdt", "identifier"]),
    ("task", "clustering", ["task", "'clustering'"]),
    ("data.features", _DELETE, ["data.features", "Field required"]),
    ("data.features", [], ["data.features"]),
    ("data.features", ["var1", "var1"], ["data.features", "duplicate", "var1"]),
    ("data.signal", _DELETE, ["data.signal", "required"]),
    ("data.signal.files", [], ["data.signal.files"]),
    ("data.signal.tre", "TreeS", ["data.signal.tre", "unknown key"]),
    ("data.target", "y", ["data.target", "regression"]),
    ("split", {"test_fraction": 1.5}, ["split.test_fraction", "(got 1.5)"]),
    ("split", {"test_fraction": 0.5, "train_size": 10}, ["split", "either"]),
    ("split", {"train_size": {"signal": -1, "background": 5}},
     ["split.train_size", "signal"]),
    ("split", {"normalization": "sum"}, ["split.normalization", "'sum'"]),
    ("evaluation", {"yields": {"signal": 1, "background": 10}, "signal_fraction": 0.1},
     ["evaluation", "either"]),
    ("evaluation", {"formats": ["svg"]}, ["evaluation.formats", "'svg'"]),
    ("spilt", {"seed": 1}, ["spilt", "unknown key"]),
])
def test_errors_name_the_source_and_key_path(path: str, value: Any, needles: list[str]) -> None:
    msg = error_of(_set(minimal(), path, value))
    assert msg.startswith(f"{SOURCE}: "), msg
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    assert "\n" not in msg


def test_method_and_task_mismatch_is_an_error() -> None:
    raw = minimal()
    raw["methods"]["mlp"] = {"type": "mlp", "loss": "gaussian"}
    msg = error_of(raw)
    assert "methods.mlp" in msg and "gaussian" in msg


def test_regression_needs_a_target_and_one_train_size() -> None:
    raw = yaml.safe_load(REGRESSION_CONFIG)
    del raw["data"]["target"]
    assert "data.target" in error_of(raw)
    raw = yaml.safe_load(REGRESSION_CONFIG)
    raw["split"] = {"train_size": {"signal": 1, "background": 1}}
    assert "split.train_size" in error_of(raw)


def test_non_mapping_config() -> None:
    assert "mapping" in error_of(["task", "classification"])  # type: ignore[arg-type]


def test_validation_does_not_change_the_input() -> None:
    raw = minimal()
    before = copy.deepcopy(raw)
    cfg = parse_config(raw)
    assert raw == before
    # the raw mapping is kept for the run directory's config.yaml
    assert cfg.raw == before


# --------------------------------------------------------------------------- overrides


def test_overrides_parse_values_as_yaml_and_create_keys() -> None:
    raw = minimal()
    out = apply_overrides(raw, [
        "methods.bdt.max_depth=5", "methods.bdt.learning_rate=0.05", "split.seed=11",
        "evaluation.plots=false", "data.features=[a, b, c]", "data.cut=pt > 20 && eta < 2",
        "methods.knn={type: knn, k: 7}",
    ])
    assert out["methods"]["bdt"]["max_depth"] == 5
    assert out["methods"]["bdt"]["learning_rate"] == 0.05
    assert out["split"] == {"seed": 11}
    assert out["evaluation"] == {"plots": False}
    assert out["data"]["features"] == ["a", "b", "c"]
    assert out["data"]["cut"] == "pt > 20 && eta < 2"  # only the first `=` separates
    assert out["methods"]["knn"] == {"type": "knn", "k": 7}
    assert raw == minimal()  # the input is not modified
    cfg = parse_config(out)
    assert cfg.methods["knn"].params["k"] == 7 and cfg.split.seed == 11


def test_override_with_an_equals_sign_in_the_value() -> None:
    out = apply_overrides(minimal(), ["data.cut=nMuon == 2"])
    assert out["data"]["cut"] == "nMuon == 2"


@pytest.mark.parametrize("item, needle", [
    ("methods.bdt.max_depth", "KEY=VALUE"),
    ("=3", "KEY=VALUE"),
    ("data.features.x=1", "features"),
])
def test_malformed_overrides(item: str, needle: str) -> None:
    with pytest.raises(ConfigError, match="--set") as exc:
        apply_overrides(minimal(), [item])
    assert needle in str(exc.value)


def test_overrides_are_validated(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(minimal()))
    assert load_config(path, ["methods.bdt.max_depth=4"]).methods["bdt"].params["max_depth"] == 4
    with pytest.raises(ConfigError) as exc:
        load_config(path, ["methods.bdt.max_depth=0"])
    assert str(exc.value).startswith(f"{path}: methods.bdt.max_depth:")


# --------------------------------------------------------------------------- files


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "analysis"
    folder.mkdir()
    raw = minimal()
    raw["data"]["signal"]["files"] = ["data/sig_*.root", "/abs/sig.root",
                                      "root://eos.cern.ch//store/sig.root"]
    (folder / "config.yaml").write_text(yaml.safe_dump(raw))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(Path("..") / "analysis" / "config.yaml")
    sig = cfg.data.signal.files
    assert Path(sig[0]).resolve() == (folder / "data" / "sig_*.root").resolve()
    assert sig[1:] == ["/abs/sig.root", "root://eos.cern.ch//store/sig.root"]
    assert Path(cfg.data.background.files[0]).resolve() == (folder / "bkg.root").resolve()


def test_regression_files_resolve_too(tmp_path: Path) -> None:
    (tmp_path / "reg.yaml").write_text(REGRESSION_CONFIG)
    cfg = load_config(tmp_path / "reg.yaml")
    assert cfg.data.files == [str(tmp_path / "data" / "regression.root")]


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: classification\nmethods: {bdt: {type: bdt}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(bad)
    assert str(exc.value).startswith(f"{bad}: line ") and "invalid YAML" in str(exc.value)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match=f"{empty}: methods"):
        load_config(empty)
