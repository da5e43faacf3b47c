"""``--scheduler`` and ``--cluster``: apply and train on a real Dask cluster (a ``dask scheduler``
and ``dask worker`` processes on 127.0.0.1), compared value for value with local runs; a worker
killed during an apply; a corrupt input; dask-jobqueue's HTCondor job script."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import uproot
import yaml
from test_bad_input import assert_one_line_error

from mva.io.writers import write_trees

distributed = pytest.importorskip("distributed")

BIN = Path(sys.executable).parent
N_FILES = 4
N_PER_FILE = 600


@dataclass
class Cluster:
    """A scheduler and its worker processes, started by the test module."""

    address: str
    directory: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def start_worker(self, name: str) -> subprocess.Popen:
        with open(self.directory / f"{name}.log", "w") as log:  # the process has its own copy
            proc = subprocess.Popen(
                [str(BIN / "dask"), "worker", self.address, "--name", name, "--nthreads", "1",
                 "--no-nanny", "--host", "127.0.0.1", "--no-dashboard", "--death-timeout", "60",
                 "--local-directory", str(self.directory / name)],
                stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, MPLBACKEND="Agg"))
        self.procs.append(proc)
        return proc

    def wait_for_workers(self, n: int, timeout: float = 60) -> None:
        with distributed.Client(self.address, timeout="20s", set_as_default=False) as c:
            c.wait_for_workers(n, timeout=timeout)


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """``dask scheduler`` and two single-threaded ``dask worker`` processes on 127.0.0.1."""
    d = tmp_path_factory.mktemp("dask")
    sched_file = d / "scheduler.json"
    with open(d / "scheduler.log", "w") as log:
        sched = subprocess.Popen(
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
             "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(sched_file)],
            stdout=log, stderr=subprocess.STDOUT)
    procs = [sched]
    try:
        deadline = time.monotonic() + 60
        while not (sched_file.exists() and sched_file.read_text().strip()):
            assert sched.poll() is None, (d / "scheduler.log").read_text()
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.2)
        time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        c = Cluster(address, d, procs)
        c.start_worker("w1")
        c.start_worker("w2")
        c.wait_for_workers(2)
        yield c
    finally:
        _stop(procs[1:])
        _stop(procs[:1])


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four ROOT files with a tree Events: two classes, a weight and a 64-bit event number."""
    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(5)
    paths = []
    for i in range(N_FILES):
        y = (rng.random(N_PER_FILE) < 0.5).astype(np.int32)
        x = rng.normal(size=(N_PER_FILE, 3)) + 0.9 * y[:, None]
        path = d / f"sample_{i}.root"
        write_trees(path, {"Events": {"x1": x[:, 0].astype(np.float32), "x2": x[:, 1], "x3": x[:, 2],
                           "label": y, "w": rng.uniform(0.5, 1.5, N_PER_FILE),
                           "evt": (np.int64(2) ** 40 + i * N_PER_FILE
                                   + np.arange(N_PER_FILE)).astype(np.int64)}})
        paths.append(path)
    return paths


def _config(inputs: list[Path], split: dict, methods: dict) -> dict:
    files = [str(p) for p in inputs]
    return {"task": "classification",
            "data": {"signal": {"files": files, "tree": "Events", "cut": "label == 1"},
                     "background": {"files": files, "tree": "Events", "cut": "label == 0",
                                    "weight": "w"},
                     "features": ["x1", "x2", "x3"], "spectators": ["evt"]},
            "split": split, "methods": methods, "evaluation": {"plots": False}}


METHODS = {"bdt": {"type": "bdt", "n_estimators": 20},
           "mlp": {"type": "mlp", "epochs": 3, "hidden_layers": [8]},
           "knn": {"type": "knn", "k": 15, "preprocess": ["pca"]},
           "svm": {"type": "svm"},
           "linear": {"type": "linear", "preprocess": ["decorrelate"]}}


def _train(mva, tmp_path: Path, cfg: dict, name: str, *extra: str):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = mva("train", path, "--output", tmp_path / name, *extra, real=True)
    assert res.returncode == 0, res.stderr
    return tmp_path / name, res


@pytest.fixture(scope="module")
def local_run(inputs, tmp_path_factory, mva) -> Path:
    """A hold-out run of all five methods, trained locally."""
    d = tmp_path_factory.mktemp("local")
    return _train(mva, d, _config(inputs, {"test_fraction": 0.5, "seed": 3}, METHODS),
                  "run")[0]


def _without_times(d):
    if isinstance(d, dict):
        return {k: _without_times(v) for k, v in d.items() if k != "fit_seconds"}
    if isinstance(d, list):
        return [_without_times(v) for v in d]
    return d


def _trees(path: Path) -> dict[str, dict[str, np.ndarray]]:
    with uproot.open(path) as f:
        return {k.split(";")[0]: f[k].arrays(library="np") for k in f.keys(cycle=False)
                if f[k].classname == "TTree"}


def _assert_same_run(a: Path, b: Path) -> None:
    """Metrics (but the fit times), every model file and every output value identical."""
    ma, mb = (json.loads((r / "metrics.json").read_text()) for r in (a, b))
    assert _without_times(ma) == _without_times(mb)
    fa, fb = (json.loads((r / "models" / "manifest.json").read_text()) for r in (a, b))
    for name, entry in fa["methods"].items():
        for key in ("files", "folds", "preprocess", "densities"):
            assert entry.get(key) == fb["methods"][name].get(key), (name, key)
    ta, tb = _trees(a / "output.root"), _trees(b / "output.root")
    assert ta.keys() == tb.keys() == {"TrainTree", "TestTree"}
    for tree in ta:
        assert ta[tree].keys() == tb[tree].keys()
        for col in ta[tree]:
            np.testing.assert_array_equal(ta[tree][col], tb[tree][col], err_msg=f"{tree}.{col}")


def _assert_same_outputs(a: Path, b: Path) -> None:
    ta, tb = _trees(a), _trees(b)
    assert ta.keys() == tb.keys()
    for tree in ta:
        assert ta[tree].keys() == tb[tree].keys()
        for col in ta[tree]:
            np.testing.assert_array_equal(ta[tree][col], tb[tree][col], err_msg=f"{tree}.{col}")


def test_train_on_the_scheduler_is_the_local_run(inputs, local_run, cluster, tmp_path, mva):
    cfg = _config(inputs, {"test_fraction": 0.5, "seed": 3}, METHODS)
    run, res = _train(mva, tmp_path, cfg, "dask", "--scheduler", cluster.address)
    assert f"dask: {cluster.address}, 2 workers" in res.stderr
    _assert_same_run(local_run, run)
    backends = [json.loads((r / "models" / "manifest.json").read_text())["provenance"]["backend"]
                for r in (local_run, run)]
    assert backends == ["this process", f"--scheduler {cluster.address}"]


def test_kfold_train_on_the_scheduler_is_the_local_run(inputs, cluster, tmp_path, mva):
    methods = {k: METHODS[k] for k in ("bdt", "mlp", "linear")}
    cfg = _config(inputs, {"folds": 3, "fold_expression": "evt % 3", "seed": 1}, methods)
    local, _ = _train(mva, tmp_path, cfg, "local")
    run, res = _train(mva, tmp_path, cfg, "dask", "--scheduler", cluster.address)
    assert "3 methods x 3 folds" in res.stderr
    _assert_same_run(local, run)


def _without_seconds(d):
    if isinstance(d, dict):
        return {k: _without_seconds(v) for k, v in d.items()
                if k not in ("fit_seconds", "seconds")}
    if isinstance(d, list):
        return [_without_seconds(v) for v in d]
    return d


@pytest.mark.parametrize("split", [{"test_fraction": 0.5, "seed": 3},
                                   {"folds": 2, "fold_expression": "evt % 2", "seed": 1}],
                         ids=["holdout", "kfold"])
def test_tuning_trials_run_on_the_workers(inputs, cluster, tmp_path, mva, split):
    """Every trial's fold fit is a task on the workers (two trials at once); the search, the
    best parameters and the refit are those of the local run with the same n_jobs."""
    tune = {"trials": 4, "folds": 2, "n_jobs": 2}
    methods = {"bdt": {"type": "bdt", "n_estimators": 20,
                       "tune": {**tune, "space": {"max_depth": [1, 4]}}},
               "knn": {"type": "knn", "tune": {**tune, "space": {"k": [3, 60, "log"]}}}}
    cfg = _config(inputs, split, methods)
    local, _ = _train(mva, tmp_path, cfg, "local")
    with distributed.Client(cluster.address, timeout="20s", set_as_default=False) as client:
        with distributed.get_task_stream(client) as stream:
            run, res = _train(mva, tmp_path, cfg, "dask", "--scheduler", cluster.address)
    trial_tasks = sum("trial_unit" in str(t["key"]) for t in stream.data)
    ma, mb = (json.loads((r / "metrics.json").read_text()) for r in (local, run))
    n_outer = split.get("folds", 1)
    tunings = [mb["methods"][m]["tuning"] for m in methods]
    tunings = [t for e in tunings for t in (e["folds"] if isinstance(e["folds"], list) else [e])]
    assert len(tunings) == 2 * n_outer and all(t["trials"] == 4 for t in tunings)
    # every completed trial fitted both tuning folds, a pruned one at least one
    assert trial_tasks == sum(len(h["fold_scores"]) for t in tunings for h in t["history"])
    assert trial_tasks >= 2 * n_outer * 4
    assert _without_seconds(ma) == _without_seconds(mb)
    _assert_same_outputs(local / "output.root", run / "output.root")


def _apply(mva, run: Path, inputs: list[Path], out: Path | str, *extra: str, real=True,
           quiet=False):
    return mva(*(["-q"] if quiet else []), "apply", run, *inputs, "--tree", "Events", "--output", out, "--keep", "evt",
               "--step-size", 250, *extra, real=real)


def test_apply_on_the_scheduler_is_the_local_apply(inputs, local_run, cluster, tmp_path, mva):
    res = _apply(mva, local_run, inputs, tmp_path / "local.root")
    assert res.returncode == 0, res.stderr
    res = _apply(mva, local_run, inputs, tmp_path / "dask.root", "--scheduler", cluster.address)
    assert res.returncode == 0, res.stderr
    assert "dashboard http://127.0.0.1:" in res.stderr
    _assert_same_outputs(tmp_path / "local.root", tmp_path / "dask.root")
    merged = _trees(tmp_path / "local.root")["Events"]
    assert len(merged["evt"]) == N_FILES * N_PER_FILE
    # one output per input: the input's name and tree, its entries in order (a friend tree),
    # locally and on the cluster alike
    for where, extra in (("files_local", ()), ("files_dask", ("--scheduler", cluster.address))):
        res = _apply(mva, local_run, inputs, f"{tmp_path / where}/", *extra)
        assert res.returncode == 0, res.stderr
        assert sorted(p.name for p in (tmp_path / where).iterdir()) == [p.name for p in inputs]
    for i, path in enumerate(inputs):
        out = _trees(tmp_path / "files_dask" / path.name)["Events"]
        with uproot.open(path) as f:
            np.testing.assert_array_equal(out["evt"], f["Events"]["evt"].array(library="np"))
        for col, values in merged.items():
            np.testing.assert_array_equal(
                out[col], values[i * N_PER_FILE:(i + 1) * N_PER_FILE], err_msg=col)
        _assert_same_outputs(tmp_path / "files_local" / path.name,
                             tmp_path / "files_dask" / path.name)


def test_quiet_silences_the_dask_messages(inputs, local_run, cluster, tmp_path, mva):
    res = mva("-q", "apply", local_run, inputs[0], "--tree", "Events", "--output",
              tmp_path / "q.root", "--scheduler", cluster.address, real=True)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""


def test_a_worker_killed_during_apply(inputs, local_run, cluster, tmp_path, mva):
    """Dask recomputes the lost worker's partitions: the outputs are complete and identical."""
    victim = cluster.start_worker("victim")
    cluster.wait_for_workers(3)
    res = _apply(mva, local_run, inputs, tmp_path / "local.root", "--step-size", 40)
    assert res.returncode == 0, res.stderr
    argv = ["apply", local_run, *inputs, "--tree", "Events", "--output", f"{tmp_path}/out/",
            "--keep", "evt", "--step-size", 40, "--scheduler", cluster.address]
    proc = subprocess.Popen([str(BIN / "mva"), *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    held = 0
    with distributed.Client(cluster.address, timeout="20s", set_as_default=False) as client:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            by_name = {w["name"]: a for a, w in client.scheduler_info()["workers"].items()}
            held = len(client.has_what().get(by_name.get("victim"), ()))
            if held:
                break
            time.sleep(0.02)
        victim.kill()
    out, err = proc.communicate(timeout=300)
    assert held, "the victim never held a partition before the apply ended"
    assert proc.returncode == 0, err
    local = _trees(tmp_path / "local.root")["Events"]
    for i, path in enumerate(inputs):
        got = _trees(tmp_path / "out" / path.name)["Events"]
        for col, values in local.items():
            np.testing.assert_array_equal(
                got[col], values[i * N_PER_FILE:(i + 1) * N_PER_FILE], err_msg=col)


def test_a_corrupt_input_leaves_no_output(inputs, local_run, cluster, tmp_path, mva):
    bad = tmp_path / "sample_bad.root"
    bad.write_bytes(b"root" + os.urandom(2000))
    for out in (f"{tmp_path}/scored/", tmp_path / "scored.root"):
        res = _apply(mva, local_run, [*inputs[:2], bad, *inputs[2:]], out,
                     "--scheduler", cluster.address, quiet=True)
        assert_one_line_error(res, str(bad))
    assert not (tmp_path / "scored.root").exists()
    leftovers = list((tmp_path / "scored").iterdir()) if (tmp_path / "scored").exists() else []
    assert leftovers == []


def test_cluster_local_is_the_local_apply(inputs, local_run, tmp_path, mva):
    res = _apply(mva, local_run, inputs, tmp_path / "local.root")
    assert res.returncode == 0, res.stderr
    res = _apply(mva, local_run, inputs, tmp_path / "lc.root", "--cluster", "local:2")
    assert res.returncode == 0, res.stderr
    assert "2 workers" in res.stderr
    _assert_same_outputs(tmp_path / "local.root", tmp_path / "lc.root")


def test_distributed_bdt_needs_a_cluster_and_trains_on_it(inputs, local_run, cluster, tmp_path,
                                                          mva):
    methods = {"bdt": {"type": "bdt", "n_estimators": 40, "distributed": True}}
    cfg = _config(inputs, {"test_fraction": 0.5, "seed": 3}, methods)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = mva("-q", "train", path, "--output", tmp_path / "none", real=True)
    assert_one_line_error(res, "methods.bdt.distributed")
    assert not (tmp_path / "none").exists()
    run, _ = _train(mva, tmp_path, cfg, "dist", "--scheduler", cluster.address)
    methods["bdt"]["distributed"] = False
    local, _ = _train(mva, tmp_path, cfg, "ref")
    got, ref = (json.loads((r / "metrics.json").read_text())["methods"]["bdt"]
                for r in (run, local))
    assert "trained with xgboost.dask on 2 workers" in got["notes"]
    # xgboost.dask builds its histograms from quantile sketches merged across the workers:
    # close to, not identical with, the local model
    assert abs(got["test"]["roc_auc"] - ref["test"]["roc_auc"]) < 0.01
    # and the model applies like any other
    res = _apply(mva, run, inputs[:1], tmp_path / "s.root")
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("bad", ["--scheduler=tcp://127.0.0.1:1", "--cluster=gpu:3",
                                 "--cluster=local:0"])
def test_bad_dask_options(inputs, local_run, tmp_path, mva, bad):
    res = mva("-q", "apply", local_run, inputs[0], "--tree", "Events", "--output",
              tmp_path / "o.root", bad)
    assert_one_line_error(res, bad.split("=")[0])
    assert not (tmp_path / "o.root").exists()


def test_condor_job_script(tmp_path, monkeypatch):
    """``--cluster condor`` from the example jobqueue config: the job script, not submitted."""
    import dask

    from mva.backends.dask import make_cluster

    example = Path(__file__).parents[1] / "examples" / "condor" / "dask-jobqueue.yaml"
    cfg = yaml.safe_load(example.read_text())
    # in the tests the scheduler listens on 127.0.0.1 only
    cfg["jobqueue"]["htcondor"]["scheduler-options"] = {"host": "127.0.0.1",
                                                         "dashboard_address": "127.0.0.1:0"}
    cfg["jobqueue"]["htcondor"]["log-directory"] = str(tmp_path / "logs")
    with dask.config.set(cfg):
        cluster = make_cluster("condor", scale=False)
        try:
            script = cluster.job_script()
            assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        finally:
            cluster.close()
    assert "distributed.cli.dask_worker" in script and cluster.scheduler_address in script
    assert "MY.DaskWorkerCores = 1" in script
    assert "export OMP_NUM_THREADS=1" in script and "export MPLBACKEND=Agg" in script
    assert "--nthreads 1" in script
