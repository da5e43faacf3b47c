"""``mva apply``: score new events with a trained run, in partitions of (file, entry range).

The unit of work is one partition: :func:`score_partition` reads its entries, scores them with
the run's methods and returns the output columns. The local backend runs the partitions one after
the other in this process; the Dask backend (``--scheduler``/``--cluster``) runs them on the
workers, each of which loads the run's models once (checksums verified there). Either way the
output columns are the same, value for value.

The output is one file (all inputs in input order) or, for an output directory, one file per
input with the input's name and tree name, in entry order: a friend tree of its input.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mva.backends import Backend, LocalBackend, chunks
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

__all__ = ["apply", "ApplySpec", "score_partition", "output_paths"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApplySpec:
    """What to apply and how: everything a worker needs to score a partition (hashable: the
    key of the worker's cache of loaded runs)."""

    run_dir: str
    manifest_sha256: str
    methods: tuple[str, ...] | None
    keep: tuple[str, ...]
    cut: str
    signal_fraction: float | None
    average_folds: bool
    tree: str | None
    step_size: int


class _Scorer:
    """A run, ready to score chunks of columns (one per process and spec). Its manifest is
    read and checked at once, its models loaded on first use (:attr:`trained`: the methods'
    libraries take seconds to import, while the first partition can already be read)."""

    def __init__(self, spec: ApplySpec):
        from mva.store import read_manifest, requested_methods, sha256
        from mva.tasks import task_for_manifest

        run_dir = Path(spec.run_dir)
        manifest = read_manifest(run_dir)
        digest = sha256(run_dir / "models" / "manifest.json")
        if digest != spec.manifest_sha256:
            raise InputError(f"{spec.run_dir}: the run changed while it was being applied "
                             "(its manifest's checksum differs)")
        self._manifest = manifest
        self.names = requested_methods(run_dir, manifest,
                                       list(spec.methods) if spec.methods else None)
        self._trained: dict[str, Any] | None = None
        self.spec = spec
        self.task = task_for_manifest(manifest)
        self.options = {"signal_fraction": spec.signal_fraction}
        self.task.check_apply_options(self.options)
        self.features: list[str] = manifest["features"]
        self.default = float(manifest.get("default", -999.0))
        self.fold_expr, self.n_folds = _fold_routing(manifest, spec.average_folds)
        # the role names the way out when the fold expression cannot be evaluated on the inputs
        self.fold_role = "split.fold_expression"
        self._table: tuple[str, Any] | None = None
        #: the partition read ahead ((path, start, stop), its future) and the reading thread
        self._ahead: tuple[tuple[str, int, int], Any] | None = None
        self._reader: Any = None
        self.needed = needed_branches({"feature": self.features, "kept branch": list(spec.keep),
                                       "cut": [spec.cut] if spec.cut else [],
                                       self.fold_role: [self.fold_expr] if self.fold_expr
                                       else []})

    @property
    def trained(self) -> dict[str, Any]:
        """The requested methods, loaded (every file's checksum verified) on first use."""
        if self._trained is None:
            from mva.store import load_models

            _, self._trained = load_models(Path(self.spec.run_dir), self.names, self._manifest)
        return self._trained

    def score(self, path: str, start: int, stop: int,
              ahead: tuple[str, int, int] | None = None) -> tuple[int, dict[str, np.ndarray]]:
        """(entries read, output columns) of entries ``start`` to ``stop`` of ``path``.

        ``ahead``: the partition this process scores next, read in a thread while this one is
        scored (reading is decompression, which runs beside the methods' arithmetic on another
        core; at most two partitions are in memory at a time)."""
        spec = self.spec
        where = f"{path}:{spec.tree}" if spec.tree else path
        chunks = self._read((path, start, stop))
        if ahead is not None:
            self.read_ahead(ahead)
        n_read, parts = 0, []
        for first, cols in chunks:
            n = len(next(iter(cols.values()))) if cols else 0
            n_read += n
            cols, entries = select(cols, spec.cut, first + np.arange(n), self.default, where)
            X = evaluate_matrix(cols, self.features, self.default, where, "feature", first,
                                entries=entries)
            out: dict[str, np.ndarray] = {}
            # kept branches in their own type: event numbers stay exact integers
            out.update({branch_name(k): evaluate_column(cols, k, self.default, where,
                                                        "kept branch") for k in spec.keep})
            fold = (np.mod(evaluate_integer(cols, self.fold_expr, self.default, where,
                                            self.fold_role, entries), self.n_folds)
                    if self.fold_expr else None)
            for name, tm in self.trained.items():
                pred, sigma = tm.predict(X, fold) if self.n_folds else tm.predict(X)
                out.update(self.task.apply_columns(name, tm, pred, sigma, self.options))
            parts.append(out)
        if len(parts) == 1:
            return n_read, parts[0]
        return n_read, {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def table(self, path: str) -> Any:
        """The opened input (the last one is kept: its partitions need not open it again),
        its needed branches checked."""
        from mva.io.readers import _open_table, check_columns

        if self._table is None or self._table[0] != path:
            table = _open_table(path, self.spec.tree)
            try:
                check_columns(table, self.needed)
            except InputError as exc:
                raise self._fold_hint(exc) from None
            self._table = (path, table)
        return self._table[1]

    def _columns(self, path: str, start: int, stop: int) -> list[tuple[int, dict[str, Any]]]:
        return list(iter_columns(path, self.spec.tree, self.needed,
                                 step_size=self.spec.step_size, entry_start=start,
                                 entry_stop=stop, table=self.table(path)))

    def _read(self, part: tuple[str, int, int]) -> list[tuple[int, dict[str, Any]]]:
        """The chunks of ``part``: the ones read ahead if they are of this partition (an error
        of that read is raised here, for this partition), else read now."""
        pending, self._ahead = self._ahead, None
        if pending is not None:
            key, future = pending
            if key == part:
                return future.result()
            future.cancel()
            with contextlib.suppress(Exception):
                future.result()  # a stale read: its file handle is free again before reading
        return self._columns(*part)

    def read_ahead(self, part: tuple[str, int, int]) -> None:
        """Start reading ``part`` in a thread (taken by the :meth:`score` of that part)."""
        if self._reader is None:
            from concurrent.futures import ThreadPoolExecutor

            self._reader = ThreadPoolExecutor(1, thread_name_prefix="mva-read-ahead")
        self._ahead = (part, self._reader.submit(self._columns, *part))

    def _fold_hint(self, exc: InputError) -> InputError:
        """A branch of the fold expression that the input lacks: the error names the way out."""
        fold_branches = names_in(self.fold_expr) if self.fold_expr else set()
        if any(f"{b!r} (needed by" in str(exc) for b in fold_branches):
            return InputError(f"{exc}: the run routes events to the model of their fold by "
                              f"{self.fold_expr!r}; --average-folds averages the fold models "
                              "instead")
        return exc


#: the runs loaded in this process (a Dask worker loads each run once, not once a partition)
_SCORERS: dict[ApplySpec, _Scorer] = {}


def _scorer(spec: ApplySpec) -> _Scorer:
    if spec not in _SCORERS:
        while len(_SCORERS) >= 2:
            _SCORERS.pop(next(iter(_SCORERS)))
        _SCORERS[spec] = _Scorer(spec)
    return _SCORERS[spec]


def score_partition(spec: ApplySpec, path: str, start: int, stop: int,
                    ahead: tuple[str, int, int] | None = None
                    ) -> tuple[int, dict[str, np.ndarray]]:
    """The unit of work: (entries read, output columns) of one partition of one input.
    ``ahead``: the partition that this process scores next (read meanwhile), if known."""
    return _scorer(spec).score(path, start, stop, ahead)


def _with_read_ahead(units: list[tuple]) -> list[tuple]:
    """Units scored one after the other in this process, each naming the next one's
    partition to read ahead."""
    nxt = [u[1:4] for u in units[1:]] + [None]
    return [(*u, a) for u, a in zip(units, nxt, strict=True)]


def count_entries(spec: ApplySpec, path: str) -> int:
    """Entries of an input, its needed branches checked (a unit of work too: the inputs are
    opened where they are scored)."""
    return _scorer(spec).table(path).num_entries


def write_file(target: str, tree: str, compression: str,
               results: Iterable[tuple[int, dict[str, np.ndarray]]]) -> tuple[int, int]:
    """Write the scored partitions of one input to ``target`` (atomically); (read, written)."""
    n_read = n_written = 0
    with TableWriter(target, compression) as writer:
        for n, cols in results:
            n_read += n
            if cols:
                writer.write(tree, cols)
                n_written += len(next(iter(cols.values())))
    return n_read, n_written


def output_paths(inputs: Sequence[str], output: Path) -> list[Path]:
    """Per-input outputs in the directory ``output``: the input's file name; two inputs with
    one name are an error (each output must be the friend of one input)."""
    seen: dict[str, str] = {}
    out = []
    for path in inputs:
        name = os.path.basename(path)
        if name in seen:
            raise InputError(f"--output {output}/: inputs {seen[name]} and {path} have the same "
                             "file name; one output per input needs distinct names")
        seen[name] = path
        out.append(output / name)
    return out


def _is_directory_output(output: str | Path) -> bool:
    return str(output).endswith(os.sep) or str(output).endswith("/") or os.path.isdir(output)


def apply(
    run_dir: str | Path, inputs: Sequence[str], output: str | Path, *, tree: str | None = None,
    methods: Sequence[str] | None = None, keep: Sequence[str] = (), cut: str = "",
    signal_fraction: float | None = None, step_size: int = 200_000, compression: str = "lz4:1",
    average_folds: bool = False, backend: Backend | None = None,
) -> dict[str, Any]:
    """Score every event of ``inputs`` (in order, all of them unless ``cut``) with the trained
    methods and write one branch per method to ``output`` (ROOT, CSV or Parquet by extension).

    ``output`` ending in ``/`` (or an existing directory): one output per input, with the
    input's file name and tree name, in entry order (a friend tree of its input); the outputs
    appear together once all are complete. Otherwise one file of all inputs in input order.

    A k-fold run routes every event to the model that did not train on its fold (the run's
    ``fold_expression`` evaluated on the event): applied to the training files this gives the
    TestTree's out-of-fold scores. With ``average_folds`` (and for runs whose folds were drawn
    at random) the fold models are averaged instead.

    ``backend`` (:func:`mva.backends.open_backend`): where the partitions are scored (default:
    this process).

    Returns a small summary: events read and written, methods applied.
    """
    from mva.store import read_manifest, sha256

    backend = backend or LocalBackend()
    paths = expand_files(list(inputs), key="INPUT")
    directory = _is_directory_output(output)
    targets = output_paths(paths, Path(output)) if directory else [Path(output)]
    _check_not_input(paths, targets)
    run_dir = Path(run_dir).absolute()
    read_manifest(run_dir)  # the run is checked here before any work is sent out
    spec = ApplySpec(str(run_dir), sha256(run_dir / "models" / "manifest.json"),
                     tuple(methods) if methods else None, tuple(keep), cut, signal_fraction,
                     average_folds, tree, step_size)
    scorer = _scorer(spec)  # errors in the options and method names are raised here, once
    out_tree = (tree or "events").rsplit("/", 1)[-1]
    log.info("applying %s to %d input%s (%s)", ", ".join(scorer.names), len(paths),
             "s" if len(paths) > 1 else "", backend.describe())
    # the entries of every input, counted where the work runs (a corrupt or missing file is
    # an error naming it, before any output is written)
    entries = list(backend.imap(count_entries, [(spec, p) for p in paths],
                                what="opening inputs", unit="files"))
    groups = [[(spec, p, a, b) for a, b in chunks(n, step_size)]
              for p, n in zip(paths, entries, strict=True)]
    n_parts = sum(len(g) for g in groups)
    log.info("%d events in %d partitions of up to %d", sum(entries), n_parts, step_size)
    if backend.run_here():
        flat = _with_read_ahead([u for g in groups for u in g])
        sizes = np.cumsum([0] + [len(g) for g in groups])
        groups = [flat[a:b] for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        if flat:
            scorer.read_ahead(flat[0][1:4])  # read while the models load
    scorer.trained  # noqa: B018  (a corrupt model is an error before any output is written)
    if directory:
        n_read, n_written = _apply_per_file(backend, groups, targets, out_tree, compression)
    else:
        n_read = n_written = 0
        with TableWriter(output, compression) as writer:
            units = [u for g in groups for u in g]
            for n, cols in backend.imap(score_partition, units, what="scoring",
                                        unit="partitions"):
                n_read += n
                if cols:
                    writer.write(out_tree, cols)
                    n_written += len(next(iter(cols.values())))
    fold_expr, n_folds = scorer.fold_expr, scorer.n_folds
    return {"read": n_read, "written": n_written, "methods": list(scorer.names),
            "output": str(output), "outputs": [str(t) for t in targets],
            "folds": "routed" if fold_expr else "averaged" if n_folds else None}


def _apply_per_file(backend: Backend, groups: list[list[tuple]], targets: list[Path],
                    tree: str, compression: str) -> tuple[int, int]:
    """One output per input: each written under a temporary name where the work runs, and
    all renamed into place once every one is complete (an error leaves none of them)."""
    import uuid

    token = uuid.uuid4().hex[:12]
    parts = [t.parent / f".{t.name}.part-{token}{t.suffix}" for t in targets]
    targets[0].parent.mkdir(parents=True, exist_ok=True)
    n_read = n_written = 0
    try:
        for r, w in backend.map_reduce(score_partition, groups, write_file,
                                       [(str(p), tree, compression) for p in parts],
                                       what="scoring", unit="partitions"):
            n_read, n_written = n_read + r, n_written + w
        for p, t in zip(parts, targets, strict=True):
            os.replace(p, t)
    finally:
        for p in parts:
            with contextlib.suppress(OSError):
                p.unlink()
    return n_read, n_written


def _check_not_input(paths: list[str], targets: list[Path]) -> None:
    """An output that is one of the inputs would overwrite its input."""
    for target in targets:
        if not os.path.exists(target):
            continue
        for path in paths:
            with contextlib.suppress(OSError):
                if os.path.samefile(path, target):
                    raise InputError(f"{target}: the output is one of the inputs ({path}); "
                                     "write to another file")


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

