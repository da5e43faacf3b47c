"""End-to-end tests of the ``mva`` command line: example -> train -> apply -> inspect.

The trained toy comes from the session fixture ``toy_run`` (conftest.py); everything else trains
tiny runs in-process. Numbers are checked against independent implementations (scikit-learn,
scipy, uproot reads of the inputs), never against values copied from a previous run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import uproot
import yaml
from scipy import stats
from sklearn.metrics import roc_auc_score

DATA_DIR = Path(__file__).parent / "data"
FEATURES = ["var1", "var2", "var3", "var4"]
EFF_KEYS = {"0.01", "0.1", "0.3"}
PERFORMANCE_KEYS = {"roc_auc", "eff_sig_at_bkg", "separation"}
#: each with its statistical uncertainty from the finite sample
PERFORMANCE_KEYS |= {f"{k}_err" for k in PERFORMANCE_KEYS}


def _tree(path: Path, name: str) -> dict[str, np.ndarray]:
    with uproot.open(path) as f:
        return f[name].arrays(library="np")


def _scored_events(run_dir: Path) -> pd.DataFrame:
    """TrainTree and TestTree of a run as one table."""
    parts = []
    for name in ("TrainTree", "TestTree"):
        cols = _tree(run_dir / "output.root", name)
        cols["className"] = np.asarray(cols["className"], dtype=str)
        parts.append(pd.DataFrame(cols).assign(tree=name))
    return pd.concat(parts, ignore_index=True)


# --------------------------------------------------------------------------- example + train


def test_example_writes_toy_and_config(toy_example: Path) -> None:
    cfg = yaml.safe_load((toy_example / "config.yaml").read_text())
    assert cfg["task"] == "classification"
    with uproot.open(toy_example / "data" / "toy.root") as f:
        assert {k.split(";")[0] for k in f.keys()} == {"TreeS", "TreeB"}
        for tree in ("TreeS", "TreeB"):
            assert f[tree].num_entries == 800  # -n is per class
            assert set(FEATURES) <= set(f[tree].keys())


def test_example_refuses_existing_directory(toy_example: Path, mva) -> None:
    res = mva("example", "classification", "--output", toy_example, "-n", 20)
    assert res.returncode != 0
    assert res.error_lines and str(toy_example) in res.error_lines[0]


def test_example_force_replaces_an_example_and_nothing_else(tmp_path: Path, mva) -> None:
    """``mva example --force`` rewrites an example it wrote (the hint trains beside it, so a
    second call works), refuses an example with anything else in it (a run trained inside)
    and any directory that is no example, with a one-line error and nothing changed."""
    out = tmp_path / "ex"
    first = mva("example", "classification", "--output", out, "-n", 20, "--force")
    assert first.returncode == 0 and f"--output {out}-run" in first.stdout
    marker = json.loads((out / "mva-example.json").read_text())
    assert marker["example"] == "classification" and marker["events"] == 20
    again = mva("example", "classification", "--output", out, "-n", 30, "--seed", 2, "--force")
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "mva-example.json").read_text())["events"] == 30
    (out / "run").mkdir()
    (out / "run" / "metrics.json").write_text("{}")
    refused = mva("example", "classification", "--output", out, "--force")
    assert refused.returncode != 0 and len(refused.error_lines) == 1
    assert str(out / "run") in refused.error_lines[0]
    assert (out / "run" / "metrics.json").exists()
    assert json.loads((out / "mva-example.json").read_text())["events"] == 30
    mine = tmp_path / "analysis"
    mine.mkdir()
    (mine / "config.yaml").write_text("task: classification\n")
    other = mva("example", "classification", "--output", mine, "--force")
    assert other.returncode != 0 and "not an mva example directory" in other.error_lines[0]
    assert (mine / "config.yaml").read_text() == "task: classification\n"


def test_metrics_json_has_the_required_keys(toy_run) -> None:
    metrics = json.loads((toy_run.run_dir / "metrics.json").read_text())
    assert metrics["task"] == "classification"
    assert list(metrics["methods"]) == list(toy_run.methods)
    for name, m in metrics["methods"].items():
        for part in ("test", "train"):
            assert set(m[part]) == PERFORMANCE_KEYS, (name, part)
            assert set(m[part]["eff_sig_at_bkg"]) == set(m[part]["eff_sig_at_bkg_err"]) == EFF_KEYS
            # an uncertainty beside every figure: positive, and far below the figure's range
            errs = [m[part]["roc_auc_err"], m[part]["separation_err"],
                    *m[part]["eff_sig_at_bkg_err"].values()]
            assert all(e is None or 0 < e < 0.2 for e in errs), errs
            assert m[part]["roc_auc_err"] is not None
            effs = [m[part]["eff_sig_at_bkg"][k] for k in ("0.01", "0.1", "0.3")]
            assert all(0 <= e <= 1 for e in effs) and effs == sorted(effs)
            assert 0.5 < m[part]["roc_auc"] <= 1 and 0 < m[part]["separation"] <= 1
        assert set(m["overtraining"]) == {"ks_pvalue_signal", "ks_pvalue_background"}
        assert all(0 <= p <= 1 for p in m["overtraining"].values())


def test_output_root_has_tmva_style_ttrees(toy_run) -> None:
    with uproot.open(toy_run.run_dir / "output.root") as f:
        classes = {k.split(";")[0]: v for k, v in f.classnames().items()}
        assert classes == {"TrainTree": "TTree", "TestTree": "TTree"}
        for name in classes:
            keys = set(f[name].keys())
            assert {"classID", "className", "weight", *FEATURES, *toy_run.methods} <= keys
    ev = _scored_events(toy_run.run_dir)
    # TMVA convention: classID 0 is signal
    assert set(ev["classID"]) == {0, 1}
    assert (ev["className"] == np.where(ev["classID"] == 0, "Signal", "Background")).all()
    # every input event lands in exactly one of the trees; train_size 0 means half per class
    assert len(ev) == 2 * toy_run.n_per_class
    train = ev[ev.tree == "TrainTree"]
    assert (train["classID"].value_counts() == toy_run.n_per_class // 2).all()
    assert not ev.duplicated(FEATURES).any()
    # weights are the input's: 1 for signal, the `weight` branch for background
    bkg_in = _tree(toy_run.data, "TreeB")
    bkg = ev[ev.classID == 1].sort_values("var1")
    order = np.argsort(bkg_in["var1"])
    np.testing.assert_array_equal(bkg["weight"], bkg_in["weight"][order])
    assert (ev.loc[ev.classID == 0, "weight"] == 1).all()


def test_metrics_agree_with_sklearn_and_scipy_on_the_output_trees(toy_run) -> None:
    metrics = json.loads((toy_run.run_dir / "metrics.json").read_text())["methods"]
    ev = _scored_events(toy_run.run_dir)
    for name in toy_run.methods:
        for part, tree in (("test", "TestTree"), ("train", "TrainTree")):
            t = ev[ev.tree == tree]
            auc = roc_auc_score(t["classID"] == 0, t[name], sample_weight=t["weight"])
            assert metrics[name][part]["roc_auc"] == pytest.approx(auc, abs=1e-9), (name, part)
        # signal has unit weights, so the weighted KS test must be scipy's asymptotic one
        sig = ev[ev.classID == 0]
        p = stats.ks_2samp(sig.loc[sig.tree == "TrainTree", name],
                           sig.loc[sig.tree == "TestTree", name], method="asymp").pvalue
        assert metrics[name]["overtraining"]["ks_pvalue_signal"] == pytest.approx(p, rel=1e-6)


def test_plots_are_written_as_png_and_pdf(toy_run) -> None:
    plots = toy_run.run_dir / "plots"
    names = ["roc"] + [f"{m}_{kind}" for m in toy_run.methods for kind in ("overtraining", "loss")]
    for name in names:
        assert (plots / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert (plots / f"{name}.pdf").read_bytes()[:5] == b"%PDF-", name


def test_manifest_checksums_match_the_model_files(toy_run) -> None:
    models = toy_run.run_dir / "models"
    manifest = json.loads((models / "manifest.json").read_text())
    assert set(manifest["methods"]) == set(toy_run.methods)
    for name, entry in manifest["methods"].items():
        on_disk = {p.name for p in (models / name).iterdir()}
        assert set(entry["files"]) == on_disk
        for fname, digest in entry["files"].items():
            assert hashlib.sha256((models / name / fname).read_bytes()).hexdigest() == digest


# --------------------------------------------------------------------------- apply


@pytest.fixture(scope="module")
def applied(toy_run, tmp_path_factory: pytest.TempPathFactory, mva) -> dict[str, Path]:
    """The toy's signal and background trees scored by the trained run (real entry point once)."""
    out = tmp_path_factory.mktemp("applied")
    files = {}
    for tree, real in (("TreeS", True), ("TreeB", False)):
        files[tree] = out / f"{tree}.root"
        res = mva("apply", toy_run.run_dir, toy_run.data, "--tree", tree, "--output",
                  files[tree], "--keep", ",".join(FEATURES), real=real)
        assert res.returncode == 0, res.stderr
    return files


def test_apply_reproduces_the_training_scores(toy_run, applied) -> None:
    ev = _scored_events(toy_run.run_dir)
    for tree, class_id in (("TreeS", 0), ("TreeB", 1)):
        inp = _tree(toy_run.data, tree)
        out = _tree(applied[tree], tree)
        n = len(inp["var1"])
        # input order, every event
        for f in FEATURES:
            np.testing.assert_array_equal(out[f], inp[f])
        for name in toy_run.methods:
            assert out[name].shape == (n,) and out[name].dtype == np.float64
        # the same event has the same score as in TrainTree/TestTree
        known = ev[ev.classID == class_id].set_index(FEATURES)
        scored = pd.DataFrame(out).set_index(FEATURES).loc[known.index]
        for name in toy_run.methods:
            np.testing.assert_allclose(scored[name], known[name], rtol=1e-5, atol=1e-6,
                                       err_msg=name)


def test_apply_selected_methods_and_kept_branches(toy_run, tmp_path: Path, applied, mva) -> None:
    out = tmp_path / "bdt.root"
    res = mva("apply", toy_run.run_dir, toy_run.data, "--tree", "TreeB", "--output", out,
              "--methods", "bdt", "--keep", "var1")
    assert res.returncode == 0, res.stderr
    cols = _tree(out, "TreeB")
    assert "var1" in cols and "bdt" in cols
    # bdt and its derived branches (bdt_prob, bdt_rarity) only: no other method
    assert all(c == "var1" or c == "bdt" or c.startswith("bdt_") for c in cols), sorted(cols)
    full = _tree(applied["TreeB"], "TreeB")
    np.testing.assert_array_equal(cols["var1"], full["var1"])
    np.testing.assert_array_equal(cols["bdt"], full["bdt"])


def test_apply_writes_csv_and_parquet(toy_run, tmp_path: Path, applied, mva) -> None:
    root = _tree(applied["TreeS"], "TreeS")
    for ext, read in ((".csv", pd.read_csv), (".parquet", pd.read_parquet)):
        out = tmp_path / f"scored{ext}"
        res = mva("apply", toy_run.run_dir, toy_run.data, "--tree", "TreeS", "--output", out,
                  "--keep", "var1")
        assert res.returncode == 0, res.stderr
        table = read(out)
        assert len(table) == len(root["var1"])
        assert list(table.columns)[0] == "var1"
        for name in ("var1", *toy_run.methods):
            np.testing.assert_allclose(table[name].to_numpy(), root[name], rtol=1e-12,
                                       err_msg=f"{ext} {name}")


def test_apply_in_chunks_gives_the_same_output(toy_run, tmp_path: Path, applied, mva) -> None:
    out = tmp_path / "chunked.root"
    res = mva("apply", toy_run.run_dir, toy_run.data, "--tree", "TreeS", "--output", out,
              "--keep", ",".join(FEATURES), "--step-size", 100)
    assert res.returncode == 0, res.stderr
    one, chunked = _tree(applied["TreeS"], "TreeS"), _tree(out, "TreeS")
    assert chunked.keys() == one.keys()
    for name in one:
        np.testing.assert_array_equal(chunked[name], one[name], err_msg=name)


def test_apply_with_a_cut_scores_only_the_selected_events(toy_run, tmp_path: Path, applied,
                                                         mva) -> None:
    out = tmp_path / "cut.root"
    res = mva("apply", toy_run.run_dir, toy_run.data, "--tree", "TreeS", "--output", out,
              "--keep", "var1", "--methods", "bdt", "--cut", "var1 > 0")
    assert res.returncode == 0, res.stderr
    full = _tree(applied["TreeS"], "TreeS")
    sel = full["var1"] > 0
    cut = _tree(out, "TreeS")
    np.testing.assert_array_equal(cut["var1"], full["var1"][sel])
    np.testing.assert_array_equal(cut["bdt"], full["bdt"][sel])


# --------------------------------------------------------------------------- inspect


def test_inspect_describes_trees_branches_and_entries(toy_run, mva) -> None:
    res = mva("inspect", toy_run.run_dir / "output.root", "--json")
    assert res.returncode == 0, res.stderr
    info = {t["tree"]: t for t in json.loads(res.stdout)}
    assert set(info) == {"TrainTree", "TestTree"}
    assert info["TrainTree"]["entries"] + info["TestTree"]["entries"] == 2 * toy_run.n_per_class
    kinds = {b["name"]: (b["kind"], b["type"]) for b in info["TestTree"]["branches"]}
    assert kinds["var1"] == ("flat", "double")
    assert kinds["classID"] == ("flat", "int32_t")
    text = mva("inspect", toy_run.data)
    assert text.returncode == 0, text.stderr
    assert "TreeS: 800 entries" in text.stdout and "TreeB: 800 entries" in text.stdout


@pytest.mark.parametrize("fname, tree", [("nano_dimuon.root", "Events"),
                                         ("treemaker.root", "PreSelection"),
                                         ("pduneana.root", "pduneana/beamana")])
def test_inspect_real_root_files(fname: str, tree: str, mva) -> None:
    path = DATA_DIR / fname
    res = mva("inspect", path, "--json")
    assert res.returncode == 0, res.stderr
    info = {t["tree"]: t for t in json.loads(res.stdout)}
    with uproot.open(path) as f:
        trees = {k.split(";")[0] for k, c in f.classnames(recursive=True).items() if c == "TTree"}
        assert set(info) == trees and tree in trees
        t = f[tree]
        assert info[tree]["entries"] == t.num_entries
        branches = {b["name"]: b for b in info[tree]["branches"]}
        assert set(branches) == set(t.keys(recursive=True))
        for name, b in branches.items():
            assert b["type"] == t[name].typename
            interp = t[name].interpretation
            if isinstance(interp, uproot.interpretation.jagged.AsJagged):
                assert b["kind"] == "jagged", name
            elif isinstance(interp, uproot.interpretation.numerical.AsDtype) and \
                    not interp.inner_shape:
                assert b["kind"] == "flat", name
    text = mva("inspect", path, real=fname == "pduneana.root")
    assert text.returncode == 0, text.stderr
    assert f"{tree}: {info[tree]['entries']} entries, {len(branches)} branches" in text.stdout


def test_inspect_flat_and_jagged_nanoaod_branches(mva) -> None:
    res = mva("inspect", DATA_DIR / "nano_dimuon.root", "--json")
    events = [t for t in json.loads(res.stdout) if t["tree"] == "Events"][0]
    kinds = {b["name"]: b["kind"] for b in events["branches"]}
    assert kinds["Muon_pt"] == "jagged" and kinds["Jet_pt"] == "jagged"
    assert kinds["nMuon"] == "flat" and kinds["PuppiMET_pt"] == "flat"


def test_inspect_into_a_closed_pipe_is_quiet() -> None:
    """`mva inspect nano.root | head -1`: no error message when the reader stops early."""
    mva_script = Path(sys.executable).with_name("mva")
    proc = subprocess.Popen([mva_script, "inspect", DATA_DIR / "nano_dimuon.root"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b"Events: 40 entries")
    proc.stdout.close()  # more than a pipe buffer is still to come
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert err == b"", err.decode()


# --------------------------------------------------------------------------- real ROOT files


NANO = DATA_DIR / "nano_dimuon.root"
NANO_FEATURES = ["Muon_pt[0]", "count(Jet_pt)", "PuppiMET_pt"]
NANO_BRANCHES = ["Muon_pt_0", "count_Jet_pt", "PuppiMET_pt"]


@pytest.fixture(scope="module")
def nano_run(tmp_path_factory: pytest.TempPathFactory, mva) -> Path:
    tmp = tmp_path_factory.mktemp("nano")
    cfg = {
        "task": "classification",
        "data": {
            "signal": {"files": [str(NANO)], "tree": "Events", "cut": "nMuon >= 2"},
            "background": {"files": [str(NANO)], "tree": "Events", "cut": "!(nMuon >= 2)"},
            "features": NANO_FEATURES,
            "spectators": ["event"],
        },
        "split": {"test_fraction": 0.5, "seed": 3},
        "methods": {"knn": {"type": "knn", "k": 3}, "linear": {"type": "linear"}},
        "evaluation": {"plots": False},
    }
    (tmp / "nano.yaml").write_text(yaml.safe_dump(cfg))
    res = mva("train", tmp / "nano.yaml", "--output", tmp / "run")
    assert res.returncode == 0, res.stderr
    return tmp / "run"


def test_train_on_nanoaod_with_jagged_expressions(nano_run: Path) -> None:
    ev = _scored_events(nano_run)
    with uproot.open(NANO) as f:
        raw = f["Events"].arrays(["event", "nMuon", "Muon_pt", "Jet_pt", "PuppiMET_pt"],
                                 library="ak")
    n_muon = np.asarray(raw["nMuon"])
    assert len(ev) == len(n_muon)
    by_event = ev.set_index("event").loc[np.asarray(raw["event"])]
    np.testing.assert_array_equal(by_event["classID"], np.where(n_muon >= 2, 0, 1))
    # jagged expressions against a plain reading of the branches; no muon -> default -999
    first_pt = np.array([float(p[0]) if len(p) else -999.0 for p in raw["Muon_pt"].tolist()])
    np.testing.assert_allclose(by_event["Muon_pt_0"], first_pt, rtol=1e-6)
    np.testing.assert_array_equal(by_event["count_Jet_pt"], [len(j) for j in raw["Jet_pt"]])
    np.testing.assert_allclose(by_event["PuppiMET_pt"], np.asarray(raw["PuppiMET_pt"]),
                               rtol=1e-6)
    metrics = json.loads((nano_run / "metrics.json").read_text())
    assert set(metrics["methods"]) == {"knn", "linear"}


def test_apply_to_nanoaod_reproduces_training_scores(nano_run: Path, tmp_path: Path,
                                                     mva) -> None:
    out = tmp_path / "nano_scored.root"
    res = mva("apply", nano_run, NANO, "--tree", "Events", "--output", out, "--keep", "event")
    assert res.returncode == 0, res.stderr
    scored = _tree(out, "Events")
    with uproot.open(NANO) as f:
        np.testing.assert_array_equal(scored["event"], f["Events"]["event"].array(library="np"))
    known = _scored_events(nano_run).set_index("event").loc[scored["event"]]
    for name in ("knn", "linear"):
        np.testing.assert_allclose(scored[name], known[name], rtol=1e-9, atol=1e-12)


def test_train_and_apply_on_a_tree_in_a_subdirectory(tmp_path: Path, mva) -> None:
    pdune = DATA_DIR / "pduneana.root"
    tree = "pduneana/beamana"
    cfg = {
        "task": "classification",
        "data": {
            "signal": {"files": [str(pdune)], "tree": tree, "cut": "event % 2 == 0"},
            "background": {"files": [str(pdune)], "tree": tree, "cut": "event % 2 == 1"},
            "features": ["reco_beam_startX", "count(reco_beam_calo_wire)", "reco_beam_type"],
            "spectators": ["event"],
        },
        "split": {"test_fraction": 0.5},
        "methods": {"knn": {"type": "knn", "k": 1}},
        "evaluation": {"plots": False},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    res = mva("train", tmp_path / "c.yaml", "--output", tmp_path / "run")
    assert res.returncode == 0, res.stderr
    out = tmp_path / "scored.root"
    res = mva("apply", tmp_path / "run", pdune, "--tree", tree, "--output", out, "--keep",
              "event")
    assert res.returncode == 0, res.stderr
    # the output tree takes the input tree's name, without the directory
    scored = _tree(out, "beamana")
    with uproot.open(pdune) as f:
        events = f[tree]["event"].array(library="np")
    np.testing.assert_array_equal(scored["event"], events)
    known = _scored_events(tmp_path / "run").set_index("event").loc[events]
    np.testing.assert_array_equal(known["classID"], np.where(events % 2 == 0, 0, 1))
    np.testing.assert_allclose(scored["knn"], known["knn"], rtol=1e-12)


# --------------------------------------------------------------------------- reproducibility


@pytest.fixture(scope="module")
def fast_config(toy_example: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy with a small BDT and a Fisher discriminant, no plots (seconds to train)."""
    cfg = yaml.safe_load((toy_example / "config.yaml").read_text())
    data = toy_example / "data" / "toy.root"
    for cls in ("signal", "background"):
        cfg["data"][cls]["files"] = [str(data)]
    cfg["methods"] = {"bdt": {"type": "bdt", "n_estimators": 20, "max_depth": 2},
                      "fisher": {"type": "linear"}}
    cfg["split"] = {"train_size": {"signal": 300, "background": 300}, "seed": 7}
    cfg["evaluation"] = {"plots": False}
    path = tmp_path_factory.mktemp("fast") / "fast.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _metrics_without_timings(run_dir: Path) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for m in metrics["methods"].values():
        m.pop("fit_seconds")
    return metrics


def test_training_is_reproducible_and_seeded(fast_config: Path, tmp_path: Path, mva) -> None:
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        res = mva("train", fast_config, "--output", tmp_path / name, "--set", f"split.seed={seed}")
        assert res.returncode == 0, res.stderr
    assert _metrics_without_timings(tmp_path / "a") == _metrics_without_timings(tmp_path / "b")
    a, b, c = (_scored_events(tmp_path / n) for n in "abc")
    pd.testing.assert_frame_equal(a, b)
    # another seed draws other training events (same sizes)
    train_a = set(a.loc[a.tree == "TrainTree", "var1"])
    train_c = set(c.loc[c.tree == "TrainTree", "var1"])
    assert len(train_a) == len(train_c) == 600
    assert train_a != train_c
    assert _metrics_without_timings(tmp_path / "a") != _metrics_without_timings(tmp_path / "c")


# --------------------------------------------------------------------------- --force and --set


def test_existing_run_dir_needs_force(fast_config: Path, tmp_path: Path, mva) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    # an earlier run (--force replaces only run directories: issue 13, item 10)
    (run_dir / "metrics.json").write_text("{}")
    (run_dir / "keep.txt").write_text("mine")
    res = mva("-q", "train", fast_config, "--output", run_dir)
    assert res.returncode != 0
    assert len(res.error_lines) == 1 and str(run_dir) in res.error_lines[0]
    assert "--force" in res.error_lines[0]
    assert (run_dir / "keep.txt").read_text() == "mine"
    assert (run_dir / "metrics.json").read_text() == "{}"

    res = mva("train", fast_config, "--output", run_dir, "--force")
    assert res.returncode == 0, res.stderr
    assert not (run_dir / "keep.txt").exists()
    assert (run_dir / "metrics.json").read_text() != "{}"
    # no temporary directories left beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_set_overrides_reach_the_trained_model(fast_config: Path, tmp_path: Path, mva) -> None:
    res = mva("train", fast_config, "--output", tmp_path / "run", "--set",
              "methods.bdt.max_depth=1", "--set", "methods.fisher={type: linear}",
              "--set", "split.train_size.signal=200")
    assert res.returncode == 0, res.stderr
    manifest = json.loads((tmp_path / "run" / "models" / "manifest.json").read_text())
    assert manifest["methods"]["bdt"]["params"]["max_depth"] == 1
    assert manifest["n_train"] == 200 + 300
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["methods"]["bdt"]["max_depth"] == 1
    ev = _scored_events(tmp_path / "run")
    assert ((ev.tree == "TrainTree") & (ev.classID == 0)).sum() == 200


@pytest.mark.parametrize("override, needle", [
    ("methods.bdt.max_deep=2", "methods.bdt.max_deep"),
    ("data.features.extra=x", "data.features"),
    ("split.seed", "split.seed"),
    ("nonsense.key=1", "nonsense"),
])
def test_bad_override_is_an_error(fast_config: Path, tmp_path: Path, override: str,
                                  needle: str, mva) -> None:
    res = mva("-q", "train", fast_config, "--output", tmp_path / "run", "--set", override)
    assert res.returncode != 0
    assert res.stderr.count("\n") == 1 and len(res.error_lines) == 1, res.stderr
    assert needle in res.error_lines[0]
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "run").exists()


def test_help_and_version(mva) -> None:
    res = mva("--help")
    assert res.returncode == 0
    for cmd in ("train", "apply", "inspect", "example"):
        assert cmd in res.stdout
    res = mva("--version")
    assert res.returncode == 0 and "0.1.0" in res.stdout


def test_copy_of_a_run_still_applies(toy_run, tmp_path: Path, mva) -> None:
    """A run directory is self-contained: moved elsewhere it still loads and checks out."""
    moved = tmp_path / "moved"
    shutil.copytree(toy_run.run_dir, moved)
    res = mva("apply", moved, toy_run.data, "--tree", "TreeS", "--output", tmp_path / "o.csv",
              "--methods", "bdt")
    assert res.returncode == 0, res.stderr
    assert len(pd.read_csv(tmp_path / "o.csv")) == toy_run.n_per_class


def test_help_imports_no_heavy_library() -> None:
    """``mva --help`` and every command's ``--help`` stay light: the libraries load where used."""
    code = ("import sys\nfrom click.testing import CliRunner\nfrom mva.cli import main\n"
            "for args in [['--help']] + [[c, '--help'] for c in main.commands]:\n"
            "    assert CliRunner().invoke(main, args).exit_code == 0, args\n"
            "heavy = ('torch', 'xgboost', 'sklearn', 'uproot', 'matplotlib', 'dask', "
            "'distributed', 'dask_jobqueue', 'onnx', 'onnxruntime', 'optuna')\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy\n"
            "             or m in ('mva.export', 'mva.backends.dask', 'mva.training')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


class _Exited(Exception):
    def __init__(self, code: int):
        self.code = code


def test_console_script_exits_at_once_with_the_commands_status(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    """``mva`` (``mva.cli.run``) ends with ``os._exit`` and the command's status once the
    streams are flushed; while a non-daemon thread runs it exits as usual."""
    import threading

    from mva import cli

    def fake_exit(code: int) -> None:
        raise _Exited(code)

    monkeypatch.setattr(cli, "_exit_now", fake_exit)
    monkeypatch.setattr(cli, "_still_running", lambda: False)
    monkeypatch.setattr(sys, "argv", ["mva", "--version"])
    with pytest.raises(_Exited) as done:
        cli.run()
    assert done.value.code == 0
    assert "version" in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["mva", "train", str(tmp_path / "missing.yaml"),
                                      "--output", str(tmp_path / "run")])
    with pytest.raises(_Exited) as done:
        cli.run()
    assert done.value.code == 2
    assert "missing.yaml" in capsys.readouterr().err
    monkeypatch.undo()
    monkeypatch.setattr(cli, "_exit_now", fake_exit)
    monkeypatch.setattr(sys, "argv", ["mva", "train", str(tmp_path / "missing.yaml"),
                                      "--output", str(tmp_path / "run")])
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    try:
        assert cli._still_running()
        with pytest.raises(SystemExit) as normal:
            cli.run()
        assert normal.value.code == 2
    finally:
        stop.set()
        worker.join()
