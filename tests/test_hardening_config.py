"""Hardening of the config and input checks: every bad value is a one-line error that names the
file or the key (duplicate YAML keys, method names that would overwrite a branch, huge or
out-of-range parameters, overlong expressions, non-UTF-8 configs, RNTuples and files without a
tree)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uproot
from test_bad_input import assert_one_line_error, base_config, small, train_fails, write_config

from mva.config import load_config, parse_config
from mva.errors import ConfigError, InputError
from mva.io.expressions import MAX_DEPTH, MAX_LENGTH, ExpressionError, names_in

__all__ = ["small"]  # the module fixture of test_bad_input, used here too


def _raw(**methods: Any) -> dict[str, Any]:
    cfg = base_config(Path("small.root"))
    if methods:
        cfg["methods"] = methods
    return cfg


def _multiclass(**methods: Any) -> dict[str, Any]:
    src = {"files": ["small.root"], "tree": "TreeS"}
    return {"task": "multiclass",
            "data": {"classes": {"signal": src, "ttbar": src, "qcd": src},
                     "features": ["x", "y"]},
            "methods": methods or {"bdt": {"type": "bdt"}}}


def _regression(targets: list[str], **methods: Any) -> dict[str, Any]:
    return {"task": "regression",
            "data": {"files": ["small.root"], "tree": "TreeS", "features": ["x"],
                     "spectators": ["w"], "target": targets},
            "methods": methods or {"bdt": {"type": "bdt"}}}


def _refused(raw: dict[str, Any], *needles: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, "config.yaml")
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("config.yaml: "), msg
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    return msg


# --------------------------------------------------------------------------- 13: duplicate keys


def test_duplicate_yaml_key_names_both_lines(tmp_path: Path) -> None:
    text = ("task: classification\n"           # 1
            "data:\n"                          # 2
            "  features: [x]\n"                # 3
            "methods:\n"                       # 4
            "  bdt: {type: bdt}\n"             # 5
            "  knn: {type: knn}\n"             # 6
            "  bdt: {type: bdt, max_depth: 2}\n")  # 7
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (f"{path}: line 7: invalid YAML (duplicate key 'bdt', "
                               "first on line 5)")


def test_duplicate_yaml_key_on_the_command_line(small: Path, tmp_path: Path, mva) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(write_config(tmp_path, base_config(small)).read_text()
                    + "task: regression\n")
    res = mva("-q", "train", path, "--output", tmp_path / "run")
    line = assert_one_line_error(res, str(path), "duplicate key 'task'",
                                 left_behind=tmp_path / "run")
    first = next(i for i, t in enumerate(path.read_text().splitlines(), 1)
                 if t.startswith("task:"))
    assert f"first on line {first}" in line


# --------------------------------------------------------------------------- 14: method names


@pytest.mark.parametrize("name", ["classID", "className", "weight", "fold", "model_fold",
                                  "x", "y"])
def test_method_named_like_a_written_branch(name: str) -> None:
    _refused(_raw(**{name: {"type": "knn"}}), f"methods.{name}:", repr(name))


def test_method_named_like_a_spectator_or_expression_branch() -> None:
    raw = _raw(abs_x={"type": "knn"})
    raw["data"]["spectators"] = ["abs(x)"]
    _refused(raw, "methods.abs_x:", "data.spectators")


def test_method_named_like_another_methods_derived_branch() -> None:
    msg = _refused(_raw(bdt={"type": "bdt"}, bdt_prob={"type": "knn"}), "'bdt_prob'")
    assert "methods.bdt" in msg
    _refused(_raw(bdt={"type": "bdt"}, bdt_rarity={"type": "knn"}), "'bdt_rarity'")


def test_binary_methods_that_do_not_collide_pass() -> None:
    cfg = parse_config(_raw(bdt={"type": "bdt"}, bdt2={"type": "bdt"},
                            prob={"type": "knn"}), "config.yaml")
    assert set(cfg.methods) == {"bdt", "bdt2", "prob"}


def test_multiclass_method_named_like_a_class_branch() -> None:
    _refused(_multiclass(bdt={"type": "bdt"}, bdt_ttbar={"type": "knn"}),
             "methods.bdt", "'bdt_ttbar'")
    _refused(_multiclass(bdt={"type": "bdt"}, bdt_qcd_prob={"type": "knn"}), "'bdt_qcd_prob'")
    # in multiclass the method's own name is no branch: `bdt_prob` next to `bdt` is fine
    cfg = parse_config(_multiclass(bdt={"type": "bdt"}, bdt_prob={"type": "knn"}), "c.yaml")
    assert set(cfg.methods) == {"bdt", "bdt_prob"}


def test_regression_method_names() -> None:
    _refused(_regression(["y"], bdt={"type": "bdt"}, bdt_sigma={"type": "knn"}), "'bdt_sigma'")
    _refused(_regression(["y"], target={"type": "knn"}), "methods.target:", "'target'")
    _refused(_regression(["y"], w={"type": "knn"}), "methods.w:", "data.spectators")
    _refused(_regression(["y", "x"], bdt={"type": "bdt"}, bdt_1={"type": "knn"}), "'bdt_1'")
    _refused(_regression(["y", "x"], target={"type": "knn"}), "'target_0'")
    cfg = parse_config(_regression(["y", "x"], bdt={"type": "bdt"}, bdt_sigma={"type": "knn"}),
                       "c.yaml")
    assert set(cfg.methods) == {"bdt", "bdt_sigma"}


def test_method_name_clash_on_the_command_line(small: Path, tmp_path: Path, mva) -> None:
    cfg = base_config(small)
    cfg["methods"]["knn_prob"] = {"type": "linear"}
    train_fails(mva, tmp_path, cfg, "config.yaml", "methods.knn_prob", "'knn_prob'")


# --------------------------------------------------------------------------- bounds


@pytest.mark.parametrize("seed", [-1, 2**32, 10**20])
def test_seed_outside_uint32(seed: int) -> None:
    raw = _raw()
    raw["split"]["seed"] = seed
    _refused(raw, "split.seed")


def test_seed_at_the_bounds_passes() -> None:
    for seed in (0, 2**32 - 1):
        raw = _raw()
        raw["split"]["seed"] = seed
        assert parse_config(raw, "c.yaml").split.seed == seed


@pytest.mark.parametrize("mtype, key, value", [
    ("bdt", "n_estimators", 1e12), ("bdt", "n_estimators", 100001),
    ("bdt", "max_bin", 10**9), ("bdt", "early_stopping_rounds", 10**9),
    ("bdt", "n_jobs", 10**9), ("bdt", "learning_rate", float("nan")),
    ("bdt", "reg_lambda", float("inf")),
    ("mlp", "epochs", 1e12), ("mlp", "batch_size", 10**8), ("mlp", "patience", 10**9),
    ("mlp", "hidden_layers", [10**6]), ("mlp", "hidden_layers", [0]),
    ("mlp", "hidden_layers", [8] * 101), ("mlp", "learning_rate", float("inf")),
    ("mlp", "l2", float("nan")), ("mlp", "n_jobs", 10**9),
    ("knn", "k", 1e12), ("knn", "block_size", 10**12),
    ("svm", "max_train_events", 10**9), ("svm", "degree", 10**6), ("svm", "C", float("inf")),
    ("svm", "gamma", float("inf")), ("svm", "gamma", -1.0), ("svm", "block_size", 10**12),
    ("svm", "cache_size", 1e300), ("svm", "tol", float("nan")),
    ("linear", "C", float("inf")),
])
def test_method_parameters_are_bounded(mtype: str, key: str, value: Any) -> None:
    _refused(_raw(m={"type": mtype, key: value}), f"methods.m.{key}")


def test_method_parameters_within_bounds_pass() -> None:
    cfg = parse_config(_raw(
        b={"type": "bdt", "n_estimators": 100000, "max_bin": 1024},
        m={"type": "mlp", "hidden_layers": [100000, 1], "epochs": 100000, "batch_size": 10**7},
        k={"type": "knn", "k": 100000},
        s={"type": "svm", "max_train_events": 10**8, "gamma": 0.5},
        f={"type": "linear", "method": "logistic", "C": 1e6}), "c.yaml")
    assert cfg.methods["m"].params["hidden_layers"] == [100000, 1]


def test_huge_n_estimators_on_the_command_line(small: Path, tmp_path: Path, mva) -> None:
    cfg = base_config(small)
    cfg["methods"] = {"bdt": {"type": "bdt", "n_estimators": 1e12}}
    train_fails(mva, tmp_path, cfg, "config.yaml", "methods.bdt.n_estimators")


# --------------------------------------------------------------------------- expressions


@pytest.mark.parametrize("expr", [
    "x+" * (MAX_LENGTH // 2) + "x",            # too long
    "+".join(["x"] * (MAX_DEPTH + 5)),         # a long chain nests one BinOp per operator
    "abs(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1),
    "-" * 1500 + "x",
])
def test_overlong_or_deep_expressions_are_refused(expr: str) -> None:
    with pytest.raises(ExpressionError) as info:
        names_in(expr)
    msg = str(info.value)
    assert "too long" in msg or "nested" in msg  # ours, or the parser's own limit
    assert len(msg) < 300  # the expression is shortened in the message


def test_expressions_within_the_limits_pass() -> None:
    assert names_in("+".join(["x"] * (MAX_DEPTH - 5))) == {"x"}
    assert names_in("(" * 50 + "x" + ")" * 50) == {"x"}


def test_recursion_bomb_in_a_cut_is_a_one_line_error(small: Path, tmp_path: Path, mva) -> None:
    cfg = base_config(small)
    cfg["data"]["cut"] = "x+" * 5000 + "x"
    train_fails(mva, tmp_path, cfg, "too long")
    cfg["data"]["cut"] = "-" * 1900 + "x > 0"
    train_fails(mva, tmp_path, cfg, "nested too deeply")


# --------------------------------------------------------------------------- encoding


def test_non_utf8_config(tmp_path: Path, mva) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"task: classification\n# caf\xe9 (latin-1)\nmethods: {bdt: {type: bdt}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: line 2: not UTF-8 text")
    res = mva("-q", "train", path, "--output", tmp_path / "run")
    assert_one_line_error(res, str(path), "not UTF-8 text", left_behind=tmp_path / "run")


def test_utf8_config_with_bom_passes(small: Path, tmp_path: Path) -> None:
    path = write_config(tmp_path, base_config(small))
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_config(path).task == "classification"


# --------------------------------------------------------------------------- RNTuple, no tree


@pytest.fixture(scope="module")
def odd_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("odd_root")
    paths = {k: folder / f"{k}.root" for k in ("rntuple", "hist", "mixed")}
    with uproot.recreate(paths["rntuple"]) as f:
        f["ntuple"] = {"x": np.arange(5.0), "y": np.arange(5.0)}
    with uproot.recreate(paths["hist"]) as f:
        f["h"] = np.histogram(np.arange(10.0))
    with uproot.recreate(paths["mixed"]) as f:
        f.mktree("T", {"x": np.float64}).extend({"x": np.arange(3.0)})
        f["h"] = np.histogram(np.arange(10.0))
        f["nt"] = {"x": np.arange(2.0)}
    with uproot.open(paths["rntuple"]) as f:
        if "RNTuple" not in f.classname_of("ntuple"):
            pytest.skip("this uproot writes a TTree for a dict")
    return paths


def test_inspect_rntuple(odd_files: dict[str, Path], mva) -> None:
    res = mva("inspect", odd_files["rntuple"])
    assert_one_line_error(res, str(odd_files["rntuple"]), "'ntuple'", "RNTuple", "TTree")
    assert res.returncode == 2


def test_inspect_file_without_a_tree(odd_files: dict[str, Path], mva) -> None:
    res = mva("inspect", odd_files["hist"], "--json")
    assert_one_line_error(res, str(odd_files["hist"]), "h (TH1D)", "no TTree")
    assert res.returncode == 2


def test_inspect_lists_objects_that_are_not_trees(odd_files: dict[str, Path], mva) -> None:
    res = mva("inspect", odd_files["mixed"])
    assert res.returncode == 0, res.stderr
    assert "T: 3 entries, 1 branches" in res.stdout
    assert "h: TH1D (not a tree)" in res.stdout
    assert "nt: ROOT::RNTuple (an RNTuple" in res.stdout


def test_training_on_an_rntuple(odd_files: dict[str, Path], tmp_path: Path, mva) -> None:
    cfg = base_config(odd_files["rntuple"])
    cfg["data"]["signal"]["tree"] = "ntuple"
    cfg["data"]["background"] = {"files": [str(odd_files["rntuple"])], "tree": "ntuple"}
    train_fails(mva, tmp_path, cfg, str(odd_files["rntuple"]), "'ntuple' is an RNTuple",
                "TTrees")


def test_reader_on_an_rntuple_without_a_tree_name(odd_files: dict[str, Path]) -> None:
    from mva.io.readers import count_entries

    with pytest.raises(InputError, match="'ntuple' is an RNTuple"):
        count_entries(str(odd_files["rntuple"]), None)


def test_base_config_is_not_changed() -> None:
    # the helpers above copy; a guard that base_config still gives a valid config
    raw = copy.deepcopy(_raw())
    assert set(parse_config(raw, "c.yaml").methods) == {"knn", "fisher"}
