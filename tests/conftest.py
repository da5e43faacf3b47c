"""Shared fixtures: the ``mva`` command (real entry point or in-process) and a small trained toy.

The toy run (``mva example classification -n 800`` trained with a BDT and an MLP) is made once per
test session and must be treated as read-only: copy it before changing anything in it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

DATA_DIR = Path(__file__).parent / "data"
MVA = Path(sys.executable).with_name("mva")

#: ``--set`` options that keep the toy methods fast
FAST_SETTINGS = ("methods.bdt.n_estimators=20", "methods.mlp.epochs=3", "split.train_size=0")


@dataclass(frozen=True)
class CliResult:
    """Exit status and the two output streams of one ``mva`` invocation."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.startswith("mva: error:")]


def _run_subprocess(args: list[str], timeout: float) -> CliResult:
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run([str(MVA), *args], capture_output=True, text=True, timeout=timeout,
                          env=env)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def _run_in_process(args: list[str]) -> CliResult:
    from click.testing import CliRunner

    from mva.cli import main

    result = CliRunner().invoke(main, args, catch_exceptions=True)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        # what the interpreter would print for an exception that leaves main()
        stderr += "".join(traceback.format_exception(result.exception))
    return CliResult(result.exit_code, result.stdout, stderr)


MvaRunner = Callable[..., CliResult]


@pytest.fixture(scope="session")
def mva() -> MvaRunner:
    """``mva(*args, real=False)``: run the command line and return a :class:`CliResult`.

    ``real=True`` runs the installed ``mva`` script in a subprocess (the true entry point, with
    its own interpreter); otherwise click's ``CliRunner`` runs ``mva.cli.main`` in this process,
    which is much cheaper once the libraries are imported. Arguments are converted with ``str``.
    """

    def run(*args: object, real: bool = False, timeout: float = 300) -> CliResult:
        argv = [str(a) for a in args]
        return _run_subprocess(argv, timeout) if real else _run_in_process(argv)

    return run


@dataclass(frozen=True)
class ToyRun:
    """Paths of the session's trained classification toy."""

    toy_dir: Path  # output of `mva example classification`
    data: Path  # toy_dir/data/toy.root with TreeS (signal) and TreeB (weighted background)
    config: Path  # the config that was trained (bdt and mlp of the example config)
    run_dir: Path  # the trained RUN_DIR
    methods: tuple[str, ...]
    n_per_class: int


@pytest.fixture(scope="session")
def toy_example(tmp_path_factory: pytest.TempPathFactory, mva: MvaRunner) -> Path:
    """``mva example classification -n 800`` (through the real entry point)."""
    out = tmp_path_factory.mktemp("toy") / "example"
    res = mva("example", "classification", "--output", out, "-n", 800, "--seed", 1, real=True)
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture(scope="session")
def toy_run(toy_example: Path, mva: MvaRunner) -> ToyRun:
    """The example config with only its BDT and MLP, trained through the real entry point."""
    raw = yaml.safe_load((toy_example / "config.yaml").read_text())
    raw["methods"] = {k: raw["methods"][k] for k in ("bdt", "mlp")}
    # beside the example's config, so that its relative data paths still resolve
    config = toy_example / "fast.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    run_dir = toy_example / "run"
    sets = [a for s in FAST_SETTINGS for a in ("--set", s)]
    res = mva("train", config, "--output", run_dir, *sets, real=True)
    assert res.returncode == 0, res.stderr
    return ToyRun(toy_example, toy_example / "data" / "toy.root", config, run_dir,
                  ("bdt", "mlp"), 800)
