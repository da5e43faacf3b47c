"""The scripts in ``examples/`` keep working: the Python API walk-through and the HTCondor job
wrapper, run here the way a user and a batch system run them."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import uproot

from mva.io.writers import write_trees

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CONDOR = EXAMPLES / "condor"
WRAPPER = CONDOR / "run_mva_apply.sh"
PYTHON = Path(sys.executable)
MVA_EXE = PYTHON.with_name("mva")
N_FILES = 3


def _env(**extra: str) -> dict[str, str]:
    return dict(os.environ, MPLBACKEND="Agg", **extra)


def test_python_api_example(tmp_path: Path) -> None:
    out = tmp_path / "example"
    proc = subprocess.run([str(PYTHON), str(EXAMPLES / "python_api.py"), str(out), "--fast"],
                          capture_output=True, text=True, timeout=240, env=_env())
    assert proc.returncode == 0, proc.stderr
    # one line per method: name, test AUC, effS at effB = 0.1
    rows = dict(re.findall(r"^(\w+)\s+(0\.\d+)\s+0\.\d+$", proc.stdout, flags=re.M))
    assert set(rows) == {"bdt", "fisher"}, proc.stdout
    assert all(float(auc) > 0.8 for auc in rows.values()), rows
    assert re.search(r"mean bdt score on TreeB: -?\d", proc.stdout), proc.stdout

    run = out / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["methods"]) == {"bdt", "fisher"}
    for name, auc in rows.items():
        assert float(auc) == pytest.approx(metrics["methods"][name]["test"]["roc_auc"], abs=1e-4)
    with uproot.open(out / "scored.root") as f:
        assert f["TreeB"].num_entries == 2000
        assert {"bdt", "fisher"} <= set(f["TreeB"].keys())
    report = run / "report.html"
    assert report.read_text().lstrip().lower().startswith("<!doctype html")
    assert str(report) in proc.stdout


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory, mva) -> dict:
    """A fast trained run and three small input files (the toy's TreeS split in three)."""
    base = tmp_path_factory.mktemp("condor")
    toy = base / "toy"
    res = mva("example", "classification", "--output", toy, "-n", 300, "--seed", 2)
    assert res.returncode == 0, res.stderr
    run_dir = base / "run"
    res = mva("-q", "train", toy / "config.yaml", "--output", run_dir,
              "--set", "methods={bdt: {type: bdt, n_estimators: 10}}",
              "--set", "split.train_size=0", "--set", "evaluation.plots=false")
    assert res.returncode == 0, res.stderr
    with uproot.open(toy / "data" / "toy.root") as f:
        signal = f["TreeS"].arrays(library="np")
    n = len(next(iter(signal.values())))
    inputs, sizes = [], []
    for k, idx in enumerate(np.array_split(np.arange(n), N_FILES)):
        path = base / "inputs" / f"part_{k}.root"
        path.parent.mkdir(exist_ok=True)
        write_trees(path, {"TreeS": {b: v[idx] for b, v in signal.items()}})
        inputs.append(path)
        sizes.append(len(idx))
    files_txt = base / "files.txt"
    files_txt.write_text("".join(f"{p}\n" for p in inputs))
    return {"base": base, "run": run_dir, "files": files_txt, "sizes": sizes}


def _job(batch: dict, input_: str | Path, out_dir: Path, **env: str) -> subprocess.CompletedProcess:
    """One job, as condor runs it: the wrapper with RUN_DIR, the input and the output folder."""
    cmd = ["bash", str(WRAPPER), str(batch["run"]), str(input_), str(out_dir), "--tree", "TreeS"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env=_env(MVA=str(MVA_EXE), **env))


def test_condor_wrapper_over_a_file_list(batch: dict) -> None:
    out_dir = batch["base"] / "scored"
    inputs = batch["files"].read_text().split()
    for line in inputs:  # `queue input from files.txt`: one job per line
        proc = _job(batch, line, out_dir)
        assert proc.returncode == 0, proc.stderr
    outputs = [out_dir / f"{Path(p).stem}.scored.root" for p in inputs]
    assert sorted(out_dir.iterdir()) == sorted(outputs)  # nothing else left behind
    for path, size in zip(outputs, batch["sizes"]):
        with uproot.open(path) as f:
            scores = f["TreeS"]["bdt"].array(library="np")
        assert len(scores) == size
        assert np.all(np.isfinite(scores))

    # resubmitted or released jobs: existing outputs are skipped, untouched
    mtimes = [p.stat().st_mtime_ns for p in outputs]
    for line in inputs:
        proc = _job(batch, line, out_dir)
        assert proc.returncode == 0, proc.stderr
        assert "skipping" in proc.stdout
    assert [p.stat().st_mtime_ns for p in outputs] == mtimes

    # FORCE=1 redoes the job
    proc = _job(batch, inputs[0], out_dir, FORCE="1")
    assert proc.returncode == 0, proc.stderr
    assert outputs[0].stat().st_mtime_ns != mtimes[0]


def test_condor_wrapper_missing_input(batch: dict) -> None:
    out_dir = batch["base"] / "scored-missing"
    proc = _job(batch, batch["base"] / "inputs" / "nope.root", out_dir)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "mva: error:" in proc.stderr and "nope.root" in proc.stderr
    assert not out_dir.exists() or not any(out_dir.iterdir())

    proc = subprocess.run(["bash", str(WRAPPER), str(batch["run"])], capture_output=True,
                          text=True, timeout=30, env=_env(MVA=str(MVA_EXE)))
    assert proc.returncode == 2 and "usage:" in proc.stderr


def _submit_description(path: Path) -> tuple[dict[str, str], list[str]]:
    """``key = value`` commands (comments and blank lines dropped) and the queue statements."""
    commands: dict[str, str] = {}
    queue: list[str] = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if re.match(r"queue\b", line, flags=re.I):
            queue.append(line)
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a submit command: {raw!r}"
        commands[key.strip().lower()] = value.strip()
    return commands, queue


def test_condor_submit_description() -> None:
    commands, queue = _submit_description(CONDOR / "mva-apply.sub")
    assert queue == ["queue input from files.txt"]
    assert (CONDOR / commands["executable"]) == WRAPPER
    args = shlex.split(commands["arguments"].strip('"'))
    assert args[1] == "$(input)" and len(args) >= 3  # RUN_DIR INPUT OUTPUT_DIR [options]
    assert args[0] in commands["transfer_input_files"].replace(" ", "").split(",")
    # the file brought back is the one the wrapper writes
    assert commands["transfer_output_files"] == "$Fn(input).scored.root"
    for key in ("output", "error", "log"):
        assert "$(Process)" in commands[key]
    assert re.fullmatch(r"\d+\s*(MB|GB)", commands["request_memory"])
    assert "ExitCode =!= 0" in commands["on_exit_hold"]
    assert os.access(WRAPPER, os.X_OK)
