"""``mva apply``: score new events with a trained run, streaming in chunks."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mva.io.events import evaluate_matrix, needed_branches, select
from mva.io.readers import expand_files, iter_columns
from mva.io.writers import TableWriter
from mva.naming import branch_name
from mva.store import load_models
from mva.tasks import task_for_manifest

__all__ = ["apply"]

log = logging.getLogger(__name__)


def apply(
    run_dir: str | Path, inputs: Sequence[str], output: str | Path, *, tree: str | None = None,
    methods: Sequence[str] | None = None, keep: Sequence[str] = (), cut: str = "",
    signal_fraction: float | None = None, step_size: int = 200_000, compression: str = "lz4:1",
) -> dict[str, Any]:
    """Score every event of ``inputs`` (in order, all of them unless ``cut``) with the trained
    methods and write one branch per method to ``output`` (ROOT, CSV or Parquet by extension).

    Returns a small summary: events read and written, methods applied.
    """
    manifest, trained = load_models(Path(run_dir), list(methods) if methods else None)
    task = task_for_manifest(manifest)
    options = {"signal_fraction": signal_fraction}
    task.check_apply_options(options)
    features: list[str] = manifest["features"]
    default = float(manifest.get("default", -999.0))
    needed = needed_branches({"feature": features, "kept branch": list(keep),
                              "cut": [cut] if cut else []})
    paths = expand_files(list(inputs), key="INPUT")
    out_tree = (tree or "events").rsplit("/", 1)[-1]
    n_read = n_written = 0
    with TableWriter(output, compression) as writer:
        for path in paths:
            where = f"{path}:{tree}" if tree else path
            log.info("applying to %s", where)
            for start, cols in iter_columns(path, tree, needed, step_size=step_size):
                n = len(next(iter(cols.values()))) if cols else 0
                n_read += n
                cols, entries = select(cols, cut, start + np.arange(n), default, where)
                X = evaluate_matrix(cols, features, default, where, "feature", start,
                                    entries=entries)
                out: dict[str, np.ndarray] = {}
                if keep:
                    K = evaluate_matrix(cols, list(keep), default, where, "kept branch", start,
                                        check_finite=False)
                    out.update({branch_name(k): K[:, j] for j, k in enumerate(keep)})
                for name, tm in trained.items():
                    pred, sigma = tm.predict(X)
                    out.update(task.apply_columns(name, tm, pred, sigma, options))
                writer.write(out_tree, out)
                n_written += len(X)
                log.info("  %d events", n_written)
    return {"read": n_read, "written": n_written, "methods": list(trained), "output": str(output)}
