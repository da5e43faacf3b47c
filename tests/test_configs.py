"""The ready-to-run configs in ``configs/``: each one is read unchanged by the schema and trains
through the command line on small inputs.

Every config needs a data recipe below (keyed by file name): the input it runs on and the
``--set`` overrides that point its files at that input and make it fast. Only files, weights,
class cuts and speed settings are overridden; features, expressions, selections and the split
are the config's own, so a config that drifts from the schema or from what mva can read fails.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
import yaml
from conftest import DATA_DIR

from mva.config import load_config

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))

#: copies of the 40 NanoAOD events in the small NanoAOD input
NANO_COPIES = 10
NANO_BRANCHES = ["run", "event", "PuppiMET_pt", "Jet_pt", "Jet_btagDeepFlavB", "Muon_pt"]

FAST = ["evaluation.plots=false", "methods.bdt.n_estimators=10", "methods.mlp.epochs=2",
        "methods.mlp.hidden_layers=[8]"]


@dataclass(frozen=True)
class Recipe:
    """``data``: the fixture giving the input file; ``sets``: ``--set`` overrides, where
    ``{data}`` stands for that file."""

    data: str
    sets: tuple[str, ...]


def _binary_nano(signal_cut: str, background_cut: str) -> tuple[str, ...]:
    # no genWeight in the test file; the two classes are told apart by the number of jets
    return ('data.signal.files=["{data}"]', 'data.background.files=["{data}"]', "data.weight=",
            f"data.signal.cut={signal_cut}", f"data.background.cut={background_cut}")


RECIPES: dict[str, Recipe] = {
    "tmva-toy.yaml": Recipe("toy", (
        'data.signal.files=["{data}"]', 'data.background.files=["{data}"]',
        "split.train_size=0", "methods.svm.max_train_events=200", *FAST)),
    "calorimeter.yaml": Recipe("calorimeter", (
        'data.files=["{data}"]', "methods.bdt.n_estimators=10", "methods.dcb.epochs=2",
        "methods.dcb.hidden_layers=[8]", "evaluation.plots=false")),
    "nanoaod-ttbar-vs-dy.yaml": Recipe("nano", (*_binary_nano("nJet >= 6", "nJet < 6"), *FAST)),
    "kfold.yaml": Recipe("nano", (*_binary_nano("nJet >= 8", "nJet < 8"), *FAST)),
    "multiclass.yaml": Recipe("nano", (
        *(f'data.classes.{c}.files=["{{data}}"]' for c in ("signal", "ttbar", "wjets", "qcd")),
        "data.weight=", "data.classes.signal.cut=nJet <= 4",
        "data.classes.ttbar.cut=nJet >= 5 && nJet <= 7", "data.classes.wjets.cut=nJet == 8",
        "data.classes.qcd.cut=nJet >= 9", "split.train_size=0", *FAST)),
}

#: the config trained through the installed ``mva`` script in a subprocess
REAL_ENTRY_POINT = "tmva-toy.yaml"

#: figures every method's test and train metrics must have, per task
TASK_KEYS = {
    "classification": {"roc_auc", "eff_sig_at_bkg", "separation"},
    "multiclass": {"accuracy", "log_loss", "roc_auc_ovr", "roc_auc_macro", "confusion"},
    "regression": {"bias", "rms", "mae", "sigma_eff"},
}


# ------------------------------------------------------------------------------ inputs


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory, mva) -> Path:
    out = tmp_path_factory.mktemp("configs") / "toy"
    res = mva("example", "classification", "--output", out, "-n", 300, "--seed", 1)
    assert res.returncode == 0, res.stderr
    return out / "data" / "toy.root"


@pytest.fixture(scope="module")
def calorimeter(tmp_path_factory: pytest.TempPathFactory, mva) -> Path:
    out = tmp_path_factory.mktemp("configs") / "calo"
    res = mva("example", "calorimeter", "--output", out, "--events", 2000, "--seed", 1)
    assert res.returncode == 0, res.stderr
    return out / "data" / "photons.root"


@pytest.fixture(scope="module")
def nano(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real NanoAOD events, NANO_COPIES times, with the event number of copy k shifted
    by k (so every event lands in every fold of ``event % 5``) and NanoAOD's layout: jagged
    branches Jet_* and Muon_* with their counters nJet and nMuon."""
    with uproot.open(DATA_DIR / "nano_dimuon.root") as f:
        ev = f["Events"].arrays(NANO_BRANCHES)
    n = len(ev)
    ev = ak.concatenate([ev] * NANO_COPIES)
    shift = np.repeat(np.arange(NANO_COPIES, dtype=np.uint64), n)
    path = tmp_path_factory.mktemp("configs") / "nano_x10.root"
    columns = {
        "run": ev["run"].to_numpy(), "event": ev["event"].to_numpy() + shift,
        "PuppiMET_pt": ev["PuppiMET_pt"].to_numpy(),
        # a record of jagged fields becomes nJet, Jet_pt, Jet_btagDeepFlavB
        "Jet": ak.zip({"pt": ev["Jet_pt"], "btagDeepFlavB": ev["Jet_btagDeepFlavB"]}),
        "Muon": ak.zip({"pt": ev["Muon_pt"]}),
    }
    with uproot.recreate(path) as out:
        out.mktree("Events", {k: v.type.content if isinstance(v, ak.Array) else v.dtype
                              for k, v in columns.items()})
        out["Events"].extend(columns)
    with uproot.open(path) as f:
        assert {"nJet", "Jet_pt", "nMuon", "Muon_pt"} <= set(f["Events"].keys())
        assert f["Events"].num_entries == NANO_COPIES * n
    return path


# ------------------------------------------------------------------------------ tests


def test_there_are_configs() -> None:
    assert {p.name for p in CONFIGS} >= set(RECIPES), "a config with a recipe is missing"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_has_a_recipe(path: Path) -> None:
    assert path.name in RECIPES, (f"configs/{path.name} has no data recipe in "
                                  "tests/test_configs.py: add one to RECIPES")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_is_valid_as_written(path: Path) -> None:
    text = path.read_text()
    first = text.splitlines()[0] if text else ""
    assert first.startswith("# ") and len(first) > 20, \
        f"{path.name}: the first line must be a comment saying what the config is for"
    cfg = load_config(path)   # the schema, unchanged: fails when a config drifts from it
    assert cfg.methods
    # data paths are written relative to the config file, as a physicist would
    raw = yaml.safe_load(text)["data"]
    sources = [raw, raw.get("signal"), raw.get("background"), *(raw.get("classes") or {}).values()]
    files = [f for s in sources if s for f in s.get("files") or []]
    assert files and not [f for f in files if Path(f).is_absolute()]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_trains(path: Path, request: pytest.FixtureRequest, tmp_path: Path, mva) -> None:
    if path.name not in RECIPES:
        pytest.fail(f"configs/{path.name}: no data recipe in RECIPES")
    recipe = RECIPES[path.name]
    data = request.getfixturevalue(recipe.data)
    sets = [a for s in recipe.sets for a in ("--set", s.replace("{data}", str(data)))]
    run_dir = tmp_path / "run"
    # one config through the installed entry point, the others in-process (cheaper)
    res = mva("train", path, "--output", run_dir, "--quiet", *sets,
              real=path.name == REAL_ENTRY_POINT)
    assert res.returncode == 0, res.stderr

    cfg = load_config(path)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["task"] == cfg.task
    assert set(metrics["methods"]) == set(cfg.methods)
    for name, m in metrics["methods"].items():
        for part in ("test", "train"):
            missing = TASK_KEYS[cfg.task] - set(m[part])
            assert not missing, f"{name}.{part}: no {sorted(missing)}"
        headline = {"classification": "roc_auc", "multiclass": "accuracy",
                    "regression": "sigma_eff"}[cfg.task]
        assert math.isfinite(m["test"][headline]), name
        if cfg.methods[name].params.get("loss") in ("gaussian", "double_crystal_ball"):
            assert {"pull_sigma_eff", "coverage_68"} <= set(m["test"]), name   # a width
        if cfg.split.kfold:
            assert [f["fold"] for f in m["folds"]] == list(range(cfg.split.folds))
            assert m["cv"][headline]["n"] == cfg.split.folds
