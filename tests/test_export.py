"""``mva export``: ONNX and xgboost JSON models that reproduce the run's TestTree scores.

Every method type, every preprocessing step and every task (binary, multiclass, one- and
two-target regression, k-fold) is trained once per module on a few hundred float32 events; the
exported graphs are then run in onnxruntime (the JSON models in xgboost) here, independently of
``--check``, and compared with the scores ``mva train`` wrote to the TestTree. The pieces that
ONNX lacks (erf, the inverse normal CDF, the crystal ball's width) and every preprocessing step
are also compared with their references on their whole range.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import uproot
import yaml
from test_bad_input import assert_one_line_error

from mva.export import EXPORTERS, INDEX, SIDECAR_SUFFIX, ExportError, export_run
from mva.methods import METHODS
from mva.preprocessing import TRANSFORMS, Pipeline

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

FEATURES = ["a", "b", "c", "abs(d)"]
FEATURE_BRANCHES = ["a", "b", "c", "abs_d"]
N = 200          # events per tree
TOL = 1e-5

FAST_MLP = {"type": "mlp", "epochs": 3, "hidden_layers": [8], "device": "cpu",
            "batch_size": 64, "n_jobs": 1}
BDT = {"type": "bdt", "n_estimators": 15, "n_jobs": 1}
#: per task: methods covering every type, every preprocessing step and the method variants
#: whose graphs differ (activations, kernels, early stopping, logistic, losses with widths)
METHOD_SETS: dict[str, dict[str, dict]] = {
    "classification": {
        "bdt": BDT,
        "bdt_es": {**BDT, "n_estimators": 300, "early_stopping_rounds": 2},
        "bdt_std": {**BDT, "preprocess": ["standardize"]},
        "mlp": FAST_MLP,          # below 20k events with early stopping: five networks
        "mlp_single": {**FAST_MLP, "ensemble": 1},
        "mlp_tanh": {**FAST_MLP, "activation": "tanh", "hidden_layers": [8, 4],
                     "preprocess": ["minmax"]},
        "mlp_elu": {**FAST_MLP, "activation": "elu"},
        "mlp_leaky": {**FAST_MLP, "activation": "leaky_relu"},
        "mlp_sigmoid": {**FAST_MLP, "activation": "sigmoid", "dropout": 0.2},
        "fisher": {"type": "linear"},
        "logistic": {"type": "linear", "method": "logistic", "preprocess": ["decorrelate"]},
        "lin_pca": {"type": "linear", "preprocess": ["standardize", "pca"]},
        "lin_uniform": {"type": "linear", "preprocess": ["uniform"]},
        "svm": {"type": "svm"},
        "svm_poly": {"type": "svm", "kernel": "poly", "degree": 2, "preprocess": ["pca"]},
        "svm_linear": {"type": "svm", "kernel": "linear", "preprocess": ["gauss"]},
        # the Nystroem solver: a kernel expansion over landmarks, exported as support vectors
        "svm_nystroem": {"type": "svm", "solver": "nystroem", "n_components": 40},
        "svm_nystroem_poly": {"type": "svm", "solver": "nystroem", "n_components": 30,
                              "kernel": "poly", "degree": 2, "coef0": 1.0},
        "knn": {"type": "knn", "k": 10},
        "knn_gauss": {"type": "knn", "k": 10, "preprocess": ["gauss"]},
    },
    "multiclass": {
        "bdt": BDT,
        "mlp": {**FAST_MLP, "preprocess": ["uniform"]},
        "fisher": {"type": "linear", "preprocess": ["decorrelate"]},
        "logistic": {"type": "linear", "method": "logistic"},
        "svm": {"type": "svm", "preprocess": ["gauss"]},
        "svm_nystroem": {"type": "svm", "solver": "nystroem", "n_components": 40},
        "knn": {"type": "knn", "k": 10, "preprocess": ["minmax"]},
    },
    "regression": {
        "bdt": BDT,
        "bdt_abs": {**BDT, "loss": "absolute_error", "preprocess": ["pca"]},
        "mlp": FAST_MLP,
        "mlp_gauss": {**FAST_MLP, "loss": "gaussian", "preprocess": ["gauss"]},
        "mlp_dcb": {**FAST_MLP, "loss": "double_crystal_ball"},
        "linear": {"type": "linear", "preprocess": ["uniform"]},
        "svm": {"type": "svm"},
        "svm_nystroem": {"type": "svm", "solver": "nystroem", "n_components": 40},
        "knn": {"type": "knn", "k": 10, "preprocess": ["decorrelate"]},
    },
    "regression2": {
        "bdt": BDT,
        "mlp_dcb": {**FAST_MLP, "loss": "double_crystal_ball"},
        "linear": {"type": "linear"},
        "svm": {"type": "svm"},
        "knn": {"type": "knn", "k": 10},
    },
}
TASK_OF = {"classification": "classification", "multiclass": "multiclass",
           "regression": "regression", "regression2": "regression"}


# --------------------------------------------------------------------------- data and runs


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data.root: trees S, B, C of float32 branches (one of them discrete, so that the CDF
    transformations see ties) and kfold.csv (float64, for the k-fold run)."""
    folder = tmp_path_factory.mktemp("export")
    rng = np.random.default_rng(11)

    def sample(shift: float) -> dict[str, np.ndarray]:
        x = rng.normal(shift, 1.0, (N, 4)).astype(np.float32)
        x[:, 2] = np.round(2 * x[:, 2])
        return {"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "d": x[:, 3],
                "w": rng.uniform(0.5, 1.5, N).astype(np.float32),
                "t": (2 * x[:, 0] + x[:, 1] ** 2 + 5 + rng.normal(0, 0.3, N)).astype(np.float32),
                "evt": np.arange(N, dtype=np.int64) * 7 + int(100 * shift)}

    with uproot.recreate(folder / "data.root") as f:
        for name, shift in (("S", 0.8), ("B", -0.8), ("C", 0.0)):
            cols = sample(shift)
            f.mktree(name, {k: v.dtype for k, v in cols.items()}).extend(cols)
    x = rng.normal(size=(2 * N, 3))
    label = np.r_[np.ones(N), np.zeros(N)].astype(int)
    x += 0.8 * label[:, None]
    csv = "x1,x2,x3,label,evt\n" + "\n".join(
        f"{float(a)!r},{float(b)!r},{float(c)!r},{lab},{i * 7 + 3}" for i, ((a, b, c), lab) in enumerate(zip(x, label)))
    (folder / "kfold.csv").write_text(csv + "\n")
    return folder


def _config(base: Path, kind: str) -> dict:
    data = str(base / "data.root")
    task = TASK_OF[kind]
    if task == "classification":
        d = {"signal": {"files": [data], "tree": "S"},
             "background": {"files": [data], "tree": "B", "weight": "w"}}
    elif task == "multiclass":
        d = {"classes": {"sig": {"files": [data], "tree": "S"},
                         "bkg": {"files": [data], "tree": "B", "weight": "w"},
                         "other": {"files": [data], "tree": "C"}}}
    else:
        d = {"files": [data], "tree": "S", "target": "t" if kind == "regression" else ["t", "a*b"]}
    return {"task": task, "data": {**d, "features": FEATURES, "spectators": ["evt"]},
            "split": {"test_fraction": 0.5, "seed": 3}, "methods": METHOD_SETS[kind],
            "evaluation": {"plots": False}}


def _train(base: Path, name: str, cfg: dict) -> Path:
    """``base/run_<name>``, trained from ``cfg`` unless an earlier fixture did."""
    from mva.config import load_config
    from mva.training import train

    if (base / f"run_{name}" / "metrics.json").exists():
        return base / f"run_{name}"
    path = base / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    train(load_config(path), base / f"run_{name}")
    return base / f"run_{name}"


@pytest.fixture(scope="module", params=list(METHOD_SETS))
def run(request, base: Path) -> tuple[str, Path]:
    """(kind, RUN_DIR) trained once per module for each of :data:`METHOD_SETS`."""
    return request.param, _train(base, request.param, _config(base, request.param))


@pytest.fixture(scope="module")
def binary_run(base: Path) -> Path:
    """The binary run of ``run`` (trained once, whichever fixture asks first)."""
    return _train(base, "classification", _config(base, "classification"))


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path, object]:
    """Every method of ``run`` exported to ONNX with ``check``."""
    kind, run_dir = run
    out = tmp_path_factory.mktemp(f"onnx_{kind}") / "exported"
    return kind, run_dir, out, export_run(run_dir, out, check=True)


def test_tree(run_dir: Path, names: list[str]) -> dict[str, np.ndarray]:
    with uproot.open(run_dir / "output.root") as f:
        return f["TestTree"].arrays(names, library="np")


test_tree.__test__ = False  # a helper, not a test


def _features(tree: dict[str, np.ndarray]) -> np.ndarray:
    return np.column_stack([tree[b] for b in FEATURE_BRANCHES]).astype(np.float32)


def _session(path: Path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _expected_branches(kind: str, run_dir: Path, method: str, output: str, width: int
                       ) -> list[str]:
    """The TestTree branches an output reproduces, by the names README documents."""
    if output == "score":
        return [method]
    if output == "probabilities":
        return [f"{method}_{c}" for c in ("sig", "bkg", "other")]
    suffix = "" if output == "prediction" else "_sigma"
    return ([f"{method}{suffix}"] if width == 1
            else [f"{method}_{j}{suffix}" for j in range(width)])


# --------------------------------------------------------------------------- contract


def test_every_method_type_and_transformation_has_an_exporter() -> None:
    from mva.export import exporter
    from mva.export.preprocessing import TRANSFORM_EXPORTERS

    assert set(EXPORTERS) == set(METHODS)
    for kind in METHODS:
        assert callable(exporter(kind))
    assert set(TRANSFORM_EXPORTERS) == set(TRANSFORMS)


def test_the_runs_cover_every_method_type_and_preprocessing_step() -> None:
    for kind, methods in METHOD_SETS.items():
        assert {m["type"] for m in methods.values()} == set(METHODS), kind
    steps = {s for m in METHOD_SETS["classification"].values() for s in m.get("preprocess", [])}
    defaults = {"standardize"}  # the default of knn, svm, mlp and linear
    assert steps | defaults == set(TRANSFORMS)


# --------------------------------------------------------------------------- ONNX


def test_onnx_reproduces_the_testtree_scores(exported) -> None:
    kind, run_dir, out, result = exported
    methods = METHOD_SETS[kind]
    assert sorted(m.method for m in result.models) == sorted(methods)
    width = 2 if kind == "regression2" else 3 if kind == "multiclass" else 1
    for m in result.models:
        session = _session(out / m.file)
        outputs = [o.name for o in session.get_outputs()]
        branches = {o: _expected_branches(kind, run_dir, m.method, o, width) for o in outputs}
        tree = test_tree(run_dir, FEATURE_BRANCHES + [b for bs in branches.values() for b in bs])
        got = dict(zip(outputs, session.run(outputs, {"features": _features(tree)})))
        worst = 0.0
        for o, names in branches.items():
            values = got[o].reshape(len(tree["a"]), -1)
            assert values.dtype == np.float32
            for j, b in enumerate(names):
                diff = np.abs(values[:, j].astype(np.float64) - tree[b])
                assert diff.max() <= TOL, (m.method, b, diff.max())
                scaled = diff / np.maximum(1.0, np.abs(tree[b]))
                worst = max(worst, float(scaled.max()))
        # --check compared the same numbers (relative to the value where it exceeds 1)
        assert m.n_checked == len(tree["a"]) and m.max_diff <= TOL
        assert m.max_diff == pytest.approx(worst, rel=1e-9, abs=1e-15)


def test_onnx_widths_are_exported_where_the_method_predicts_them(exported) -> None:
    kind, run_dir, out, result = exported
    for m in result.models:
        wants_sigma = TASK_OF[kind] == "regression" and METHOD_SETS[kind][m.method].get(
            "loss") in ("gaussian", "double_crystal_ball")
        assert ("sigma" in m.outputs) == wants_sigma, m.method
        if wants_sigma:
            tree = test_tree(run_dir, [f"{m.method}_sigma" if kind == "regression"
                                       else f"{m.method}_0_sigma"])
            assert np.all(next(iter(tree.values())) > 0)


def test_onnx_names_shapes_and_metadata(exported) -> None:
    kind, run_dir, out, result = exported
    task = TASK_OF[kind]
    checksum = (run_dir / "models" / "manifest.sha256").read_text().split()[0]
    manifest = json.loads((run_dir / "models" / "manifest.json").read_text())
    width = {"classification": None, "multiclass": 3, "regression": 1}[task]
    if kind == "regression2":
        width = 2
    for m in result.models:
        model = onnx.load(out / m.file)
        onnx.checker.check_model(model)
        (inp,) = model.graph.input
        assert inp.name == "features"
        assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        dims = inp.type.tensor_type.shape.dim
        assert dims[0].dim_param and dims[1].dim_value == len(FEATURES)
        names = [o.name for o in model.graph.output]
        expected = {"classification": ["score"], "multiclass": ["probabilities"]}.get(
            task, ["prediction", "sigma"] if "sigma" in m.outputs else ["prediction"])
        assert names == expected == m.outputs
        for o in model.graph.output:
            assert o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
            shape = [d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim]
            assert shape == (["N"] if width is None else ["N", width])
        meta = {p.key: p.value for p in model.metadata_props}
        assert json.loads(meta["features"]) == FEATURES == manifest["features"]
        assert json.loads(meta["feature_names"]) == FEATURE_BRANCHES
        assert meta["task"] == task and meta["method"] == m.method
        assert meta["type"] == METHOD_SETS[kind][m.method]["type"]
        assert meta["run_checksum"] == f"sha256:{checksum}"
        import mva

        assert meta["mva_version"] == mva.__version__
        if task == "multiclass":
            assert json.loads(meta["classes"]) == ["sig", "bkg", "other"]
        if task == "regression":
            assert json.loads(meta["targets"]) == manifest["targets"]
        # the sidecar says the same, the way weaver's preprocess.json lists inputs
        side = json.loads((out / f"{Path(m.file).stem}{SIDECAR_SUFFIX}").read_text())
        assert side["model"] == m.file and side["input_names"] == ["features"]
        assert side["features"]["var_names"] == FEATURE_BRANCHES
        assert side["features"]["expressions"] == FEATURES
        assert side["output_names"] == names and side["preprocessing_in_model"]
        assert side["run"]["manifest_sha256"] == checksum
        # the preprocessing is the stored one
        steps = METHOD_SETS[kind][m.method].get("preprocess")
        assert side["preprocessing"] == json.loads(meta["preprocessing"]) == (
            steps if steps is not None else ([] if m.type == "bdt" else ["standardize"]))
    index = json.loads((out / INDEX).read_text())
    assert [e["file"] for e in index["models"]] == [m.file for m in result.models]
    from mva.store import sha256

    for e in index["models"]:
        assert e["sha256"] == sha256(out / e["file"]) and e["check"]["max_diff"] <= TOL


def test_graph_takes_raw_features_in_batches_of_any_size(binary_run: Path, tmp_path: Path
                                                         ) -> None:
    """Events scored one at a time (as in a reconstruction module) equal the batch scores."""
    out = tmp_path / "x"
    export_run(binary_run, out, methods=["knn_gauss", "mlp", "bdt"])
    tree = test_tree(binary_run, FEATURE_BRANCHES)
    X = _features(tree)[:20]
    for name in ("knn_gauss", "mlp", "bdt"):
        s = _session(out / f"{name}.onnx")
        batch = s.run(["score"], {"features": X})[0]
        single = np.concatenate([s.run(["score"], {"features": X[i:i + 1]})[0]
                                 for i in range(len(X))])
        np.testing.assert_allclose(single, batch, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- graph pieces


def _run_graph(build, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """Build a graph with ``build(g, *input_names) -> output`` and evaluate it."""
    from onnx import TensorProto, helper

    from mva.export.onnx_graph import IR_VERSION, OPSET, Graph

    g = Graph("t")
    names = list(inputs)
    out = build(g, *names)
    graph = g.to_proto(
        [helper.make_tensor_value_info(n, TensorProto.DOUBLE, [None] * np.ndim(inputs[n]))
         for n in names],
        # the output has the rank of the inputs
        [helper.make_tensor_value_info(out, TensorProto.DOUBLE,
                                       [None] * np.ndim(inputs[names[0]]))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {k: np.asarray(v, np.float64) for k, v in inputs.items()})[0]


def test_erf_and_ndtri_match_scipy() -> None:
    from scipy.special import erf as sp_erf
    from scipy.special import ndtri as sp_ndtri

    from mva.export.onnx_graph import erf, ndtri

    z = np.r_[np.linspace(-4, 4, 2001), 1e-9, -1e-12]
    np.testing.assert_allclose(_run_graph(lambda g, x: erf(g, x), {"x": z}), sp_erf(z),
                               rtol=0, atol=2e-15)
    p = np.r_[1e-6, 1 - 1e-6, np.linspace(1e-6, 1 - 1e-6, 3001), 0.5, 0.5 + 1e-12,
              np.geomspace(1e-6, 0.3, 500)]
    # 1e-10 at the clipping edge 1e-6 (where 1 - erf cancels), 1e-15 near the median
    np.testing.assert_allclose(_run_graph(lambda g, x: ndtri(g, x), {"x": p}), sp_ndtri(p),
                               rtol=0, atol=1e-10)


def test_dcb_width_matches_the_loss_module() -> None:
    """The crystal ball's effective width over the whole range of its bounded parameters."""
    import torch

    from mva.export.mlp import _dcb_sigma_eff
    from mva.methods.losses import DCB_RANGES, dcb_sigma_eff

    rng = np.random.default_rng(0)
    n = 400
    a_l, a_r = (rng.uniform(*DCB_RANGES["alpha_l"], n) for _ in range(2))
    n_l, n_r = (rng.uniform(*DCB_RANGES["n_l"], n) for _ in range(2))
    a_l[:4], n_l[:4] = [0.5, 5.0, 0.5, 5.0], [1.01, 20.0, 20.0, 1.01]
    got = _run_graph(lambda g, *x: _dcb_sigma_eff(g, *x),
                     {"al": a_l, "nl": n_l, "ar": a_r, "nr": n_r})
    want = dcb_sigma_eff(*(torch.as_tensor(v) for v in (a_l, n_l, a_r, n_r))).numpy()
    assert np.all(want > 0.5)
    np.testing.assert_allclose(got, want, rtol=1e-10)


@pytest.mark.parametrize("steps", [[s] for s in sorted(TRANSFORMS)]
                         + [["standardize", "pca", "gauss"], ["decorrelate", "uniform"]])
def test_preprocessing_graph_matches_the_pipeline(steps: list[str]) -> None:
    """Each transformation (and chains) in the graph equals Pipeline.transform, also outside
    the training range, at the CDF knots, for discrete and constant features."""
    from mva.export.preprocessing import pipeline_to_onnx

    rng = np.random.default_rng(4)
    X = rng.normal(size=(500, 4)) @ np.array([[1, 0.5, 0, 0], [0, 1, 0.3, 0], [0, 0, 1, 0],
                                              [0, 0, 0, 1.0]])
    X[:, 2] = np.round(X[:, 2] * 2)             # discrete: ties in the CDFs
    X[:, 3] = 1.5 if "uniform" in steps or "gauss" in steps or "minmax" in steps else X[:, 3]
    X = X.astype(np.float32).astype(np.float64)  # the graph's input is float32
    pipe = Pipeline(steps).fit(X, rng.uniform(0.5, 2, len(X)))
    test = np.vstack([X[:50], rng.normal(0, 3, (200, 4)), X.min(0) - 1, X.max(0) + 1])
    test = test.astype(np.float32).astype(np.float64)
    got = _run_graph(lambda g, x: pipeline_to_onnx(g, x, pipe), {"x": test})
    np.testing.assert_allclose(got, pipe.transform(test), rtol=0, atol=1e-9)


# --------------------------------------------------------------------------- xgboost JSON


def test_xgboost_json_reloads_in_xgboost_and_reproduces_the_scores(run, tmp_path: Path
                                                                    ) -> None:
    import xgboost as xgb

    kind, run_dir = run
    out = tmp_path / "json"
    result = export_run(run_dir, out, fmt="xgboost-json", check=True)
    # without --methods: every BDT without preprocessing
    expected = [n for n, m in METHOD_SETS[kind].items()
                if m["type"] == "bdt" and not m.get("preprocess")]
    assert [m.method for m in result.models] == expected
    width = 2 if kind == "regression2" else 3 if kind == "multiclass" else 1
    for m in result.models:
        booster = xgb.Booster(model_file=str(out / m.file))
        json.loads((out / m.file).read_text())  # xgboost's JSON document
        branches = (_expected_branches(kind, run_dir, m.method, "probabilities", 3)
                    if kind == "multiclass" else
                    _expected_branches(kind, run_dir, m.method,
                                       "score" if kind == "classification" else "prediction",
                                       width))
        tree = test_tree(run_dir, FEATURE_BRANCHES + branches)
        pred = np.asarray(booster.inplace_predict(_features(tree))).reshape(len(tree["a"]), -1)
        for j, b in enumerate(branches):
            assert np.abs(pred[:, j] - tree[b]).max() <= TOL, (m.method, b)
        assert m.max_diff <= TOL
        side = json.loads((out / f"{m.method}{SIDECAR_SUFFIX}").read_text())
        assert side["format"] == "xgboost-json" and side["preprocessing"] == []
        assert side["features"]["var_names"] == FEATURE_BRANCHES
    if kind == "classification":
        # early stopping: only the trees up to the best iteration, as mva scores
        meta = json.loads((run_dir / "models" / "bdt_es" / "meta.json").read_text())
        booster = xgb.Booster(model_file=str(out / "bdt_es.json"))
        assert booster.num_boosted_rounds() == meta["best_iteration"] < 300


def test_xgboost_json_refuses_preprocessing_and_other_methods(binary_run: Path, tmp_path: Path,
                                                               mva) -> None:
    out = tmp_path / "json"
    res = mva("-q", "export", binary_run, "--format", "xgboost-json", "--output", out,
              "--methods", "bdt_std")
    assert_one_line_error(res, "bdt_std", "preprocessing", "standardize", "--format onnx",
                          left_behind=out)
    res = mva("-q", "export", binary_run, "--format", "xgboost-json", "--output", out,
              "--methods", "bdt,mlp")
    assert_one_line_error(res, "mlp", "xgboost", left_behind=out)


# --------------------------------------------------------------------------- k-fold


def test_kfold_run_gives_one_file_per_fold(base: Path, tmp_path: Path) -> None:
    cfg = {"task": "classification",
           "data": {"signal": {"files": [str(base / "kfold.csv")], "cut": "label == 1"},
                    "background": {"files": [str(base / "kfold.csv")], "cut": "label == 0"},
                    "features": ["x1", "x2", "abs(x3)"], "spectators": ["evt"]},
           "split": {"folds": 3, "fold_expression": "evt % 3", "seed": 2},
           "methods": {"bdt": BDT, "knn": {"type": "knn", "k": 10, "preprocess": ["pca"]}},
           "evaluation": {"plots": False}}
    run_dir = _train(base, "kfold", cfg)
    out = tmp_path / "kf"
    result = export_run(run_dir, out, check=True)
    files = sorted(p.name for p in out.glob("*.onnx"))
    assert files == [f"{m}_fold{k}.onnx" for m in ("bdt", "knn") for k in range(3)]
    with uproot.open(run_dir / "output.root") as f:
        tree = f["TestTree"].arrays(["x1", "x2", "abs_x3", "fold", "bdt", "knn"], library="np")
    X = np.column_stack([tree["x1"], tree["x2"], tree["abs_x3"]]).astype(np.float32)
    for name in ("bdt", "knn"):
        scores = []
        for k in range(3):
            model = onnx.load(out / f"{name}_fold{k}.onnx")
            meta = {p.key: p.value for p in model.metadata_props}
            assert meta["fold"] == str(k) and meta["folds"] == "3"
            assert meta["fold_expression"] == "evt % 3"
            score = _session(out / f"{name}_fold{k}.onnx").run(["score"], {"features": X})[0]
            rows = tree["fold"] == k
            assert np.abs(score[rows] - tree[name][rows]).max() <= TOL
            scores.append(score)
        # the fold models differ: each event needs the model of its fold
        assert not np.allclose(scores[0], scores[1])
    assert all(m.max_diff <= TOL and m.n_checked < len(X) for m in result.models)
    assert sum(m.n_checked for m in result.models if m.method == "bdt") == len(X)


# --------------------------------------------------------------------------- the command


def test_cli_exports_checks_and_prints_the_table(binary_run: Path, tmp_path: Path, mva) -> None:
    out = tmp_path / "exported"
    res = mva("export", binary_run, "--format", "onnx", "--output", out, "--methods",
              "bdt,mlp", "--check", real=True)
    assert res.returncode == 0, res.stderr
    rows = {ln.split()[0]: ln.split() for ln in res.stdout.splitlines()[1:3]}
    assert set(rows) == {"bdt", "mlp"}
    for name, cols in rows.items():
        assert cols[2] == f"{name}.onnx" and int(cols[3]) == N  # half of 2 x N events
        assert 0 <= float(cols[4]) <= TOL
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["bdt.onnx", "mlp.onnx", f"bdt{SIDECAR_SUFFIX}", f"mlp{SIDECAR_SUFFIX}", INDEX])


def test_cli_refuses_an_existing_output_unless_forced(binary_run: Path, tmp_path: Path,
                                                      mva) -> None:
    out = tmp_path / "exported"
    assert mva("-q", "export", binary_run, "-o", out, "--methods", "fisher").returncode == 0
    before = (out / "fisher.onnx").read_bytes()
    res = mva("-q", "export", binary_run, "-o", out, "--methods", "bdt")
    assert_one_line_error(res, str(out), "--force")
    assert (out / "fisher.onnx").read_bytes() == before and not (out / "bdt.onnx").exists()
    res = mva("-q", "export", binary_run, "-o", out, "--methods", "bdt", "--force")
    assert res.returncode == 0, res.stderr
    assert (out / "bdt.onnx").exists() and not (out / "fisher.onnx").exists()
    # --force replaces an export directory only
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    res = mva("-q", "export", binary_run, "-o", other, "--methods", "bdt", "--force")
    assert_one_line_error(res, str(other), "not an mva export directory")
    assert (other / "keep.txt").read_text() == "mine"
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize("args, needles", [
    (["--format", "pmml"], ["--format", "pmml", "onnx", "xgboost-json"]),
    (["--methods", "bdt,nope"], ["nope", "trained:"]),
])
def test_cli_bad_arguments_are_one_line_errors(binary_run: Path, tmp_path: Path, mva,
                                               args: list[str], needles: list[str]) -> None:
    out = tmp_path / "exported"
    res = mva("-q", "export", binary_run, "--output", out, *args)
    assert_one_line_error(res, *needles, left_behind=out)


def test_tampered_run_is_refused(binary_run: Path, tmp_path: Path, mva) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(binary_run, run_dir)
    meta = run_dir / "models" / "bdt" / "meta.json"
    meta.write_text(meta.read_text().replace("best_iteration", "best_iteration ", 1))
    out = tmp_path / "exported"
    res = mva("-q", "export", run_dir, "--output", out)
    assert_one_line_error(res, "meta.json", "checksum mismatch", left_behind=out)


def test_failed_check_is_an_error_and_writes_nothing(binary_run: Path, tmp_path: Path,
                                                     mva) -> None:
    """A TestTree whose scores the models do not give (edited by 1e-4): --check fails."""
    run_dir = tmp_path / "run"
    shutil.copytree(binary_run, run_dir)
    tree = test_tree(binary_run, FEATURE_BRANCHES + ["bdt", "fisher"])
    tree["bdt"] = tree["bdt"] + 1e-4
    with uproot.recreate(run_dir / "output.root") as f:
        f.mktree("TestTree", {k: v.dtype for k, v in tree.items()}).extend(tree)
    out = tmp_path / "exported"
    res = mva("-q", "export", run_dir, "--output", out, "--methods", "fisher,bdt", "--check")
    line = assert_one_line_error(res, "check failed", "bdt.onnx", "1.00e-04", left_behind=out)
    assert "fisher" not in line
    # without --check the same export succeeds
    assert mva("-q", "export", run_dir, "--output", out, "--methods", "bdt").returncode == 0


def test_knn_beyond_the_size_limit_is_refused(binary_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "exported"
    with pytest.raises(ExportError, match=r"knn: cannot be exported as onnx: its 200 training "
                       r"events x 4 features = 800 values exceed 799") as err:
        export_run(binary_run, out, methods=["knn", "bdt"], knn_max_values=799)
    assert "BDT or MLP" in str(err.value) and not out.exists()
    # without --methods the others are exported, the kNNs skipped
    result = export_run(binary_run, out, knn_max_values=799)
    assert {m.method for m in result.models} == set(METHOD_SETS["classification"]) - {
        "knn", "knn_gauss"}


def test_knn_with_the_approximate_index_is_refused(base: Path, tmp_path: Path) -> None:
    """The graph computes exact neighbours; a kNN that used the HNSW index would not match."""
    cfg = _config(base, "classification")
    cfg["methods"] = {"knn_hnsw": {"type": "knn", "k": 10, "search": "hnsw"}, "fisher": {
        "type": "linear"}}
    run_dir = _train(base, "knn_hnsw", cfg)
    out = tmp_path / "exported"
    with pytest.raises(ExportError, match=r"knn_hnsw: cannot be exported as onnx: it found its "
                       r"neighbours with an approximate index \(search: hnsw\)"):
        export_run(run_dir, out, methods=["knn_hnsw"])
    assert not out.exists()
    assert [m.method for m in export_run(run_dir, out, check=True).models] == ["fisher"]


def test_missing_package_names_the_extra(binary_run: Path, tmp_path: Path, monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(ExportError, match=r"onnxruntime .*pip install 'mva\[export\]'"):
        export_run(binary_run, tmp_path / "x", check=True)
