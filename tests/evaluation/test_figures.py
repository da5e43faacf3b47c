"""The background plotter used for large runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mva.evaluation.figures import Plotter


@pytest.mark.parametrize("parallel", [False, True])
def test_plotter_draws_jobs_and_returns_files(tmp_path: Path, parallel: bool) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3))
    labels = (rng.random(500) < 0.5).astype(int)
    plotter = Plotter(parallel=parallel)
    plotter.submit([("plot_loss", ("m", {"train": [1.0, 0.5, 0.4]}, tmp_path / "m_loss"),
                     {"formats": ("png",)})])
    plotter.submit([("plot_inputs", (X, labels, None, ["a", "b", "c"], tmp_path / "inputs"),
                     {"formats": ("png", "pdf")})])
    written = plotter.wait()
    assert sorted(p.name for p in written) == ["inputs.pdf", "inputs.png", "m_loss.png"]
    assert all(p.stat().st_size > 1000 for p in written)


def test_plotter_error_surfaces_at_wait(tmp_path: Path) -> None:
    plotter = Plotter(parallel=True)
    # labels of the wrong length: the plot function raises in the worker
    plotter.submit([("plot_inputs", (np.ones((5, 2)), np.ones(3), None, ["a", "b"],
                                     tmp_path / "bad"), {"formats": ("png",)})])
    with pytest.raises(ValueError):
        plotter.wait()


def test_parallel_plotter_starts_warm_workers_and_keeps_matplotlib_out_of_the_run(
        tmp_path: Path) -> None:
    """The workers start with the plotter and import matplotlib themselves (while the run
    reads its inputs); the run's own process never imports it."""
    import subprocess
    import sys

    script = f"""
import os, sys
from mva.evaluation.figures import Plotter

def warm():
    from matplotlib import _mathtext, font_manager
    return "matplotlib.pyplot" in sys.modules and font_manager.fontManager is not None

p = Plotter(parallel=True)
assert len(p._pool._processes) == len(os.sched_getaffinity(0)), p._pool._processes
assert all(p._pool.submit(warm).result(timeout=120) for _ in range(4))
p.submit([("plot_loss", ("m", {{"train": [1.0, 0.5]}}, {str(tmp_path / "loss")!r}),
           {{"formats": ("png", "pdf")}})])
written = p.wait()
assert sorted(f.name for f in written) == ["loss.pdf", "loss.png"], written
assert not [m for m in sys.modules if m.startswith("matplotlib")]
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_parallel_plotter_hands_the_costliest_waiting_plot_to_a_worker_first(
        tmp_path: Path) -> None:
    """Plots waiting together go to the workers costliest first (equal costs in the order
    submitted), so that a run does not end with one worker drawing a large plot alone; each
    plot is drawn once and every file is written."""
    from mva.evaluation import figures

    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 2))
    labels = (rng.random(400) < 0.5).astype(int)
    scores = rng.random(400)
    curve = (np.linspace(0, 1, 50), np.linspace(0, 1, 50) ** 0.5, 0.7, None, None)
    jobs = [
        ("plot_loss", ("m", {"train": [1.0, 0.5]}, tmp_path / "loss"), {"formats": ("png",)}),
        ("plot_roc", ({"m": curve}, tmp_path / "roc"), {"formats": ("png",)}),
        ("plot_reliability", ("m", np.linspace(0.1, 0.9, 5), np.linspace(0.1, 0.9, 5),
                              tmp_path / "rel"), {"formats": ("png",)}),
        ("plot_inputs", (X, labels, None, ["a", "b"], tmp_path / "inputs"),
         {"formats": ("png",)}),
        ("plot_overtraining", ("m", (scores, labels, None), (scores, labels, None), (0.5, 0.5),
                               tmp_path / "over"), {"formats": ("png",)}),
    ]
    plotter = Plotter(parallel=True)
    handed: list[str] = []
    submit = plotter._pool.submit
    plotter._pool.submit = lambda fn, job: (handed.append(job[0]), submit(fn, job))[1]
    try:
        plotter.submit(jobs)
        written = plotter.wait()
    finally:
        plotter.close()
    expected = sorted((j[0] for j in jobs), key=lambda f: -figures.PLOT_COST[f])
    assert handed == expected
    assert handed[0] == "plot_inputs" and handed.index("plot_loss") < handed.index(
        "plot_reliability")  # equal costs: submitted order
    assert sorted(p.name for p in written) == ["inputs.png", "loss.png", "over.png",
                                               "rel.png", "roc.png"]
