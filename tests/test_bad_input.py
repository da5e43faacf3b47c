"""Bad input reaches the user as one line: ``mva: error: <what> <where>``, never a traceback.

Every case checks: non-zero exit, exactly one line on stderr (``-q`` silences progress) that starts
with ``mva: error:`` and names the file, tree, branch or config key at fault, and nothing left
behind (no RUN_DIR, no output file, no temporary directory). Most cases run in-process (cheap);
a few go through the installed ``mva`` script to cover the real entry point.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uproot
import yaml

DATA_DIR = Path(__file__).parent / "data"
N = 60
NAN_ENTRIES = (3, 7)
INF_ENTRIES = (11,)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """small.root: TreeS, TreeB (N events each), Empty (no entries), Bad (NaN and inf in x)."""
    rng = np.random.default_rng(5)
    path = tmp_path_factory.mktemp("bad_input") / "small.root"

    def sample(shift: float) -> dict[str, np.ndarray]:
        return {"x": rng.normal(shift, 1, N), "y": rng.normal(shift, 1, N),
                "w": rng.uniform(0.5, 1.5, N)}

    bad = sample(1.0)
    bad["x"][list(NAN_ENTRIES)] = np.nan
    bad["x"][list(INF_ENTRIES)] = np.inf
    # mktree: assigning a dict would write an RNTuple with uproot >= 5.7
    with uproot.recreate(path) as f:
        for name, cols in (("TreeS", sample(1.0)), ("TreeB", sample(0.0)), ("Bad", bad),
                           ("Empty", {k: np.zeros(0) for k in ("x", "y", "w")})):
            f.mktree(name, {k: np.float64 for k in cols}).extend(cols)
    return path


def base_config(data: Path) -> dict[str, Any]:
    return {
        "task": "classification",
        "data": {
            "signal": {"files": [str(data)], "tree": "TreeS"},
            "background": {"files": [str(data)], "tree": "TreeB", "weight": "w"},
            "features": ["x", "y"],
        },
        "split": {"test_fraction": 0.5, "seed": 1},
        "methods": {"knn": {"type": "knn", "k": 5}, "fisher": {"type": "linear"}},
        "evaluation": {"plots": False},
    }


def write_config(folder: Path, cfg: dict[str, Any], name: str = "config.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def assert_one_line_error(res: Any, *needles: str, left_behind: Path | None = None) -> str:
    """The error contract; returns the message. ``left_behind``: a path that must not exist."""
    assert res.returncode != 0, res.stdout
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    line = lines[0]
    assert line.startswith("mva: error: "), line
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    if left_behind is not None:
        assert not left_behind.exists()
        # nor a temporary sibling (`.run.tmp-*`, `.out.root.*`)
        assert not list(left_behind.parent.glob(f".{left_behind.name}*"))
    return line


def train_fails(mva, tmp_path: Path, cfg: dict[str, Any], *needles: str, real: bool = False
                ) -> str:
    run_dir = tmp_path / "run"
    res = mva("-q", "train", write_config(tmp_path, cfg), "--output", run_dir, real=real)
    return assert_one_line_error(res, *needles, left_behind=run_dir)


# --------------------------------------------------------------------------- files and trees


def test_missing_input_file(small: Path, tmp_path: Path, mva) -> None:
    cfg = base_config(small)
    missing = tmp_path / "nowhere" / "missing.root"
    cfg["data"]["background"]["files"] = [str(missing)]
    train_fails(mva, tmp_path, cfg, str(missing), real=True)


def test_missing_glob_match(small: Path, tmp_path: Path, mva) -> None:
    cfg = base_config(small)
    cfg["data"]["signal"]["files"] = [str(tmp_path / "sig_*.root")]
    train_fails(mva, tmp_path, cfg, "data.signal.files", "sig_*.root")


def test_missing_config_file(tmp_path: Path, mva) -> None:
    res = mva("-q", "train", tmp_path / "nope.yaml", "--output", tmp_path / "run")
    assert_one_line_error(res, "nope.yaml", left_behind=tmp_path / "run")


def test_corrupt_root_file(small: Path, tmp_path: Path, mva) -> None:
    corrupt = tmp_path / "corrupt.root"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    cfg = base_config(small)
    cfg["data"]["signal"]["files"] = [str(corrupt)]
    train_fails(mva, tmp_path, cfg, str(corrupt), real=True)


def test_truncated_root_file(small: Path, tmp_path: Path, mva) -> None:
    truncated = tmp_path / "truncated.root"
    truncated.write_bytes(small.read_bytes()[:600])
    cfg = base_config(small)
    cfg["data"]["signal"]["files"] = [str(truncated)]
    train_fails(mva, tmp_path, cfg, str(truncated))


def test_missing_tree_lists_the_available_ones(small: Path, tmp_path: Path, mva) -> None:
    cfg = base_config(small)
    cfg["data"]["signal"]["tree"] = "TreeX"
    line = train_fails(mva, tmp_path, cfg, str(small), "TreeX")
    for tree in ("TreeS", "TreeB", "Empty", "Bad"):
        assert tree in line


def test_missing_branch(small: Path, tmp_path: Path, mva) -> None:
    cfg = base_config(small)
    cfg["data"]["features"] = ["x", "abs(nope)"]
    train_fails(mva, tmp_path, cfg, str(small), "'nope'", "abs(nope)")


def test_missing_weight_branch(small: Path, tmp_path: Path, mva) -> None:
    cfg = base_config(small)
    cfg["data"]["background"]["weight"] = "weight"
    train_fails(mva, tmp_path, cfg, "TreeB", "'weight'")


def test_empty_tree(small: Path, tmp_path: Path, mva) -> None:
    cfg = base_config(small)
    cfg["data"]["background"]["tree"] = "Empty"
    train_fails(mva, tmp_path, cfg, str(small), "Empty", "empty")


# --------------------------------------------------------------------------- events


def test_cut_that_leaves_no_events(small: Path, tmp_path: Path, mva) -> None:
    cfg = base_config(small)
    cfg["data"]["cut"] = "x > 1000"
    train_fails(mva, tmp_path, cfg, "data.signal", "x > 1000")


def test_one_class_only(small: Path, tmp_path: Path, mva) -> None:
    """Signal events but an empty background selection: nothing to separate."""
    cfg = base_config(small)
    cfg["data"]["background"]["cut"] = "y > 1000"
    train_fails(mva, tmp_path, cfg, "data.background", "y > 1000")


def test_nan_and_inf_in_a_feature(small: Path, tmp_path: Path, mva) -> None:
    cfg = base_config(small)
    cfg["data"]["signal"]["tree"] = "Bad"
    n_bad = len(NAN_ENTRIES) + len(INF_ENTRIES)
    train_fails(mva, tmp_path, cfg, f"{small}:Bad", "'x'", f"{n_bad} NaN/inf",
                f"entry {min(NAN_ENTRIES)}")


def test_nan_entry_after_a_cut_is_the_file_entry(small: Path, tmp_path: Path, mva) -> None:
    """A cut that drops the first bad event: the message counts and names the file's entries."""
    cfg = base_config(small)
    cfg["data"]["signal"]["tree"] = "Bad"
    with uproot.open(small) as f:
        y = f["Bad"]["y"].array(library="np")
    first, *rest = (*NAN_ENTRIES, *INF_ENTRIES)
    # repr of a float64 parses back to the same value: this removes exactly one event
    cfg["data"]["signal"]["cut"] = f"y != {float(y[first])!r}"
    train_fails(mva, tmp_path, cfg, "'x'", f"{len(rest)} NaN/inf", f"entry {min(rest)})")


def test_train_size_larger_than_available(small: Path, tmp_path: Path, mva) -> None:
    cfg = base_config(small)
    cfg["split"] = {"train_size": {"signal": 10, "background": N + 5}}
    train_fails(mva, tmp_path, cfg, "split.train_size.background", str(N + 5), str(N))


# --------------------------------------------------------------------------- config


def test_unknown_method_type(small: Path, tmp_path: Path, mva) -> None:
    cfg = base_config(small)
    cfg["methods"]["forest"] = {"type": "random_forest"}
    train_fails(mva, tmp_path, cfg, "methods.forest.type", "random_forest", "bdt")


def test_unknown_method_parameter(small: Path, tmp_path: Path, mva) -> None:
    cfg = base_config(small)
    cfg["methods"]["bdt"] = {"type": "bdt", "max_deep": 3}
    train_fails(mva, tmp_path, cfg, "methods.bdt.max_deep", "unknown")


@pytest.mark.parametrize("value", ["three", 0, -1])
def test_wrong_parameter_value(small: Path, tmp_path: Path, value: Any, mva) -> None:
    cfg = base_config(small)
    cfg["methods"]["bdt"] = {"type": "bdt", "max_depth": value}
    train_fails(mva, tmp_path, cfg, "config.yaml", "methods.bdt.max_depth", repr(value))


def test_missing_features(small: Path, tmp_path: Path, mva) -> None:
    cfg = base_config(small)
    del cfg["data"]["features"]
    train_fails(mva, tmp_path, cfg, "config.yaml", "data.features")


def test_unknown_top_level_key(small: Path, tmp_path: Path, mva) -> None:
    cfg = base_config(small)
    cfg["spilt"] = {"seed": 3}
    train_fails(mva, tmp_path, cfg, "spilt", "unknown key")


def test_invalid_yaml(tmp_path: Path, mva) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("task: classification\ndata:\n  features: [x, y\nmethods: {}\n")
    res = mva("-q", "train", path, "--output", tmp_path / "run", real=True)
    assert_one_line_error(res, str(path), "line", "YAML", left_behind=tmp_path / "run")


def test_bad_expression(small: Path, tmp_path: Path, mva) -> None:
    cfg = base_config(small)
    cfg["data"]["features"] = ["x", "y +* 2"]
    train_fails(mva, tmp_path, cfg, "y +* 2")


# --------------------------------------------------------------------------- apply


@pytest.fixture(scope="module")
def small_run(small: Path, tmp_path_factory: pytest.TempPathFactory, mva) -> Path:
    tmp = tmp_path_factory.mktemp("small_run")
    res = mva("train", write_config(tmp, base_config(small)), "--output", tmp / "run")
    assert res.returncode == 0, res.stderr
    return tmp / "run"


def test_apply_input_without_a_feature_branch(small_run: Path, tmp_path: Path, mva) -> None:
    pdune = DATA_DIR / "pduneana.root"
    out = tmp_path / "scored.root"
    res = mva("-q", "apply", small_run, pdune, "--tree", "pduneana/beamana", "--output", out)
    assert_one_line_error(res, str(pdune), "pduneana/beamana", "'x'", left_behind=out)


def test_apply_missing_input_and_tree(small_run: Path, small: Path, tmp_path: Path,
                                      mva) -> None:
    out = tmp_path / "scored.root"
    res = mva("-q", "apply", small_run, tmp_path / "missing.root", "--tree", "TreeS",
              "--output", out)
    assert_one_line_error(res, "missing.root", left_behind=out)
    res = mva("-q", "apply", small_run, small, "--tree", "Nope", "--output", out)
    assert_one_line_error(res, str(small), "Nope", "TreeS", left_behind=out)


def test_apply_nan_in_a_feature(small_run: Path, small: Path, tmp_path: Path, mva) -> None:
    out = tmp_path / "scored.csv"
    res = mva("-q", "apply", small_run, small, "--tree", "Bad", "--output", out,
              "--step-size", 5)
    # the second chunk holds the first bad entry: entries are the file's, not the chunk's
    assert_one_line_error(res, "'x'", f"entry {min(NAN_ENTRIES)}", left_behind=out)


def test_apply_with_a_modified_model_file(small_run: Path, small: Path, tmp_path: Path,
                                          mva) -> None:
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    target = run / "models" / "knn" / "arrays.npz"
    target.write_bytes(target.read_bytes() + b"\0")
    out = tmp_path / "scored.root"
    res = mva("-q", "apply", run, small, "--tree", "TreeS", "--output", out, real=True)
    assert_one_line_error(res, str(target), "checksum", left_behind=out)
    # the untouched method still applies
    res = mva("-q", "apply", run, small, "--tree", "TreeS", "--output", out, "--methods",
              "fisher")
    assert res.returncode == 0, res.stderr


def test_apply_not_a_run_directory(small: Path, tmp_path: Path, mva) -> None:
    out = tmp_path / "scored.root"
    res = mva("-q", "apply", tmp_path, small, "--tree", "TreeS", "--output", out)
    assert_one_line_error(res, str(tmp_path), "manifest.json", left_behind=out)


def test_apply_unknown_method(small_run: Path, small: Path, tmp_path: Path, mva) -> None:
    out = tmp_path / "scored.root"
    res = mva("-q", "apply", small_run, small, "--tree", "TreeS", "--output", out,
              "--methods", "bdt")
    assert_one_line_error(res, "'bdt'", "knn", "fisher", left_behind=out)


def test_apply_keeps_an_existing_output_on_failure(small_run: Path, small: Path,
                                                   tmp_path: Path, mva) -> None:
    out = tmp_path / "scored.csv"
    out.write_text("previous\n")
    res = mva("-q", "apply", small_run, small, "--tree", "Bad", "--output", out)
    assert res.returncode != 0
    assert out.read_text() == "previous\n"
    assert not list(tmp_path.glob(".scored.csv*"))


# --------------------------------------------------------------------------- verbosity


def test_progress_messages_then_one_error_line(small: Path, tmp_path: Path, mva) -> None:
    """Without -q, progress lines may come first; the error is still a single, last line."""
    cfg = base_config(small)
    cfg["data"]["features"] = ["x", "nope"]
    res = mva("train", write_config(tmp_path, cfg), "--output", tmp_path / "run", real=True)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    lines = res.stderr.splitlines()
    assert [ln for ln in lines if ln.startswith("mva: error:")] == lines[-1:]
    assert all(ln.startswith("mva: ") for ln in lines)


def test_debug_shows_the_traceback(small: Path, tmp_path: Path, mva) -> None:
    cfg = base_config(small)
    cfg["data"]["features"] = ["x", "nope"]
    res = mva("--debug", "train", write_config(tmp_path, cfg), "--output", tmp_path / "run",
              real=True)
    assert res.returncode != 0
    assert "Traceback (most recent call last)" in res.stderr
    assert "InputError" in res.stderr and "'nope'" in res.stderr
    assert not (tmp_path / "run").exists()


def test_debug_does_not_leak_into_the_next_command(small: Path, tmp_path: Path, mva) -> None:
    """In one process (notebooks, CliRunner) --debug of one command does not stick."""
    cfg = copy.deepcopy(base_config(small))
    cfg["data"]["features"] = ["x", "nope"]
    path = write_config(tmp_path, cfg)
    assert "Traceback" in mva("--debug", "train", path, "--output", tmp_path / "r").stderr
    assert_one_line_error(mva("-q", "train", path, "--output", tmp_path / "r"), "'nope'")
