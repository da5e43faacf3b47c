"""``mva apply``: score new events with a trained run, streaming in chunks."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mva.errors import InputError
from mva.io.events import (
    evaluate_column,
    evaluate_integer,
    evaluate_matrix,
    needed_branches,
    select,
)
from mva.io.expressions import names_in
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
    average_folds: bool = False,
) -> dict[str, Any]:
    """Score every event of ``inputs`` (in order, all of them unless ``cut``) with the trained
    methods and write one branch per method to ``output`` (ROOT, CSV or Parquet by extension).

    A k-fold run routes every event to the model that did not train on its fold (the run's
    ``fold_expression`` evaluated on the event): applied to the training files this gives the
    TestTree's out-of-fold scores. With ``average_folds`` (and for runs whose folds were drawn
    at random) the fold models are averaged instead.

    Returns a small summary: events read and written, methods applied.
    """
    import contextlib
    import glob
    import os

    # an output that is one of the inputs (after glob expansion) would overwrite its input
    if os.path.exists(output):
        for pattern in inputs:
            for path in (glob.glob(pattern) if any(c in pattern for c in "*?[") else [pattern]):
                with contextlib.suppress(OSError):
                    if os.path.samefile(path, output):
                        raise InputError(f"{output}: the output is one of the inputs ({path}); "
                                         "write to another file")
    manifest, trained = load_models(Path(run_dir), list(methods) if methods else None)
    task = task_for_manifest(manifest)
    options = {"signal_fraction": signal_fraction}
    task.check_apply_options(options)
    features: list[str] = manifest["features"]
    default = float(manifest.get("default", -999.0))
    fold_expr, n_folds = _fold_routing(manifest, average_folds)
    # the role names the way out when the fold expression cannot be evaluated on the inputs
    fold_role = "split.fold_expression"
    needed = needed_branches({"feature": features, "kept branch": list(keep),
                              "cut": [cut] if cut else [],
                              fold_role: [fold_expr] if fold_expr else []})
    paths = expand_files(list(inputs), key="INPUT")
    out_tree = (tree or "events").rsplit("/", 1)[-1]
    n_read = n_written = 0
    with TableWriter(output, compression) as writer:
        for path in paths:
            where = f"{path}:{tree}" if tree else path
            log.info("applying to %s", where)
            for start, cols in _columns(path, tree, needed, step_size, fold_expr):
                n = len(next(iter(cols.values()))) if cols else 0
                n_read += n
                cols, entries = select(cols, cut, start + np.arange(n), default, where)
                X = evaluate_matrix(cols, features, default, where, "feature", start,
                                    entries=entries)
                out: dict[str, np.ndarray] = {}
                # kept branches in their own type: event numbers stay exact integers
                out.update({branch_name(k): evaluate_column(cols, k, default, where,
                                                            "kept branch") for k in keep})
                fold = (np.mod(evaluate_integer(cols, fold_expr, default, where, fold_role,
                                                entries), n_folds) if fold_expr else None)
                for name, tm in trained.items():
                    pred, sigma = tm.predict(X, fold) if n_folds else tm.predict(X)
                    out.update(task.apply_columns(name, tm, pred, sigma, options))
                writer.write(out_tree, out)
                n_written += len(X)
                log.info("  %d events", n_written)
    return {"read": n_read, "written": n_written, "methods": list(trained), "output": str(output),
            "folds": "routed" if fold_expr else "averaged" if n_folds else None}


def _columns(path: str, tree: str | None, needed: dict[str, str], step_size: int,
             fold_expr: str | None) -> Any:
    """The input's column chunks; a branch of the fold expression that the input lacks is an
    error that names the way out."""
    try:
        yield from iter_columns(path, tree, needed, step_size=step_size)
    except InputError as exc:
        fold_branches = names_in(fold_expr) if fold_expr else set()
        if any(f"{b!r} (needed by" in str(exc) for b in fold_branches):
            raise InputError(f"{exc}: the run routes events to the model of their fold by "
                             f"{fold_expr!r}; --average-folds averages the fold models "
                             "instead") from None
        raise


def _fold_routing(manifest: dict[str, Any], average: bool) -> tuple[str | None, int]:
    """(fold expression to route by or None, number of folds or 0 for a hold-out run)."""
    split = manifest.get("split") or {}
    n_folds = int(split.get("folds") or 0)
    if not n_folds:
        return None, 0
    expr = split.get("fold_expression")
    if average or not expr:
        log.info("averaging the %d fold models%s", n_folds,
                 "" if expr else " (the run's folds were drawn at random: no event knows its "
                 "fold)")
        return None, n_folds
    log.info("routing every event to the model of its fold (%s %% %d)", expr, n_folds)
    return expr, n_folds
