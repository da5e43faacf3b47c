"""The in-memory event table that every method and metric works on."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from mva.errors import InputError
from mva.io.expressions import ExpressionError, evaluate, names_in
from mva.io.readers import as_float, count_entries, expand_files, iter_columns, source_info

__all__ = ["Events", "read_sample", "evaluate_matrix", "evaluate_column", "evaluate_integer",
           "select",
           "needed_branches",
           "load_samples"]

log = logging.getLogger(__name__)


@dataclass
class Events:
    """Features, weights, labels (the task's class labels) or targets, and spectators."""

    features: np.ndarray
    weights: np.ndarray
    feature_names: list[str]
    labels: np.ndarray | None = None
    targets: np.ndarray | None = None
    target_names: list[str] = field(default_factory=list)
    #: one array per spectator: integer expressions (event numbers) stay int64
    spectators: list[np.ndarray] | None = None
    spectator_names: list[str] = field(default_factory=list)
    #: value of the k-fold ``fold_expression`` per event (int64), when the split has one
    fold_values: np.ndarray | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.weights)

    def subset(self, idx: np.ndarray) -> Events:
        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[idx]

        return replace(
            self, features=self.features[idx], weights=self.weights[idx],
            labels=take(self.labels), targets=take(self.targets),
            spectators=None if self.spectators is None else [s[idx] for s in self.spectators],
            fold_values=take(self.fold_values),
        )

    @staticmethod
    def concatenate(parts: Sequence[Events], rows: np.ndarray | None = None) -> Events:
        """The events of ``parts`` one after the other; with ``rows`` (sorted indices into
        that concatenation) only those, gathered straight into the result: one copy of the
        features, not one per part and another to join them."""
        bounds = np.cumsum([0] + [len(p) for p in parts])
        if rows is not None:
            cuts = np.searchsorted(rows, bounds)
            local = [rows[cuts[i]:cuts[i + 1]] - bounds[i] for i in range(len(parts))]

        def join(arrs: list[np.ndarray | None]) -> np.ndarray | None:
            if arrs[0] is None:
                return None
            if rows is None:
                return arrs[0] if len(arrs) == 1 else np.concatenate(arrs)
            out = np.empty((len(rows), *arrs[0].shape[1:]), dtype=np.result_type(*arrs))
            for a, ix, lo, hi in zip(arrs, local, cuts[:-1], cuts[1:], strict=True):
                if a.dtype == out.dtype:
                    np.take(a, ix, axis=0, out=out[lo:hi], mode="clip")  # ix are in range
                else:
                    out[lo:hi] = a[ix]
            return out

        def cat(name: str) -> np.ndarray | None:
            return join([getattr(p, name) for p in parts])

        first = parts[0]
        spectators = None if first.spectators is None else [
            join([p.spectators[j] for p in parts]) for j in range(len(first.spectators))]
        return replace(
            first, features=cat("features"), weights=cat("weights"), labels=cat("labels"),
            targets=cat("targets"), spectators=spectators, fold_values=cat("fold_values"),
            sources=[s for p in parts for s in p.sources],
        )


def evaluate_matrix(
    columns: Mapping[str, Any], exprs: Sequence[str], default: float, where: str, what: str,
    first_entry: int = 0, check_finite: bool = True, entries: np.ndarray | None = None,
) -> np.ndarray:
    """Evaluate expressions into an (n, len(exprs)) matrix; NaN/inf are an error.

    The matrix is float32 when every column is float32 (ROOT ``Float_t`` branches: half the
    memory and time, and no precision to keep that the file does not have), else float64.
    The error names the entry of the first bad value: ``entries[i]`` (the file entry of row
    ``i``, e.g. after a cut) when given, else ``first_entry + i``.
    """
    n = len(next(iter(columns.values()))) if columns else 0
    values = []
    for expr in exprs:
        try:
            values.append(as_float(evaluate(expr, columns, default), f"{where}: {what} {expr!r}"))
        except ExpressionError as exc:
            raise InputError(f"{where}: {what} {expr!r}: {exc}") from None
    single = bool(values) and all(v.dtype == np.float32 for v in values)
    out = np.empty((n, len(exprs)), dtype=np.float32 if single else np.float64)
    _fill_columns(out, values)
    for j, (expr, v) in enumerate(zip(exprs, values, strict=True)):
        # on the contiguous column (its values are those of out[:, j]): a strided pass over
        # the matrix costs several times more
        if check_finite and not np.isfinite(v).all():
            bad = ~np.isfinite(out[:, j])
            if bad.any():
                i = int(np.argmax(bad))
                entry = int(entries[i]) if entries is not None else first_entry + i
                raise InputError(
                    f"{where}: {what} {expr!r} has {int(bad.sum())} NaN/inf value(s) "
                    f"(first at entry {entry})"
                )
    return out


def _fill_columns(out: np.ndarray, values: Sequence[np.ndarray], block_bytes: int = 1 << 20
                  ) -> None:
    """``out[:, j] = values[j]`` for every column, a block of rows at a time: each block of the
    (row-major) matrix stays in the cache while its columns are written, where whole strided
    columns would go through memory once per column (4x faster at 1M x 20, and so faster than
    ``np.column_stack``)."""
    n, m = out.shape
    rows = max(256, block_bytes // max(1, m * out.itemsize))
    for s in range(0, n, rows):
        block = out[s:s + rows]
        for j, v in enumerate(values):
            block[:, j] = v[s:s + rows]


def select(columns: Mapping[str, Any], cut: str, entries: np.ndarray, default: float,
           where: str) -> tuple[dict[str, Any], np.ndarray]:
    """The rows of ``columns`` (and their file ``entries``) that pass ``cut`` (all if empty)."""
    if not cut:
        return dict(columns), entries
    try:
        mask = np.asarray(evaluate(cut, columns, default), dtype=bool)
    except ExpressionError as exc:
        raise InputError(f"{where}: cut {cut!r}: {exc}") from None
    return {k: v[mask] for k, v in columns.items()}, entries[mask]


def needed_branches(exprs: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Branch -> the expression that reads it, for ``{role: [expression, ...]}``."""
    needed: dict[str, str] = {}
    for what, items in exprs.items():
        for expr in items:
            try:
                names = names_in(expr)
            except ExpressionError as exc:
                raise InputError(f"{what}: {exc}") from None
            for name in sorted(names):
                needed.setdefault(name, expr)
    return needed


def evaluate_column(columns: Mapping[str, Any], expr: str, default: float, where: str,
                    what: str) -> np.ndarray:
    """A spectator or kept branch in its own type: integers (event and run numbers, however
    large) as int64, float32 as float32, anything else as float64; NaN allowed."""
    try:
        v = np.asarray(evaluate(expr, columns, default))
    except ExpressionError as exc:
        raise InputError(f"{where}: {what} {expr!r}: {exc}") from None
    n = len(next(iter(columns.values()))) if columns else 0
    if v.ndim == 0:
        v = np.full(n, v)
    if v.dtype.kind in "biu":
        return v.astype(np.int64)
    return as_float(v, f"{where}: {what} {expr!r}")


def evaluate_integer(columns: Mapping[str, Any], expr: str, default: float, where: str,
                     what: str, entries: np.ndarray) -> np.ndarray:
    """An integer-valued expression (e.g. a fold expression of the event number) as int64,
    without a detour through float (which loses event numbers above 2^53)."""
    try:
        v = np.asarray(evaluate(expr, columns, default))
    except ExpressionError as exc:
        raise InputError(f"{where}: {what} {expr!r}: {exc}") from None
    if v.ndim == 0:
        v = np.full(len(entries), v)
    if v.dtype.kind in "biu":
        return v.astype(np.int64)
    if v.dtype.kind != "f":
        raise InputError(f"{where}: {what} {expr!r}: not numeric (dtype {v.dtype})")
    bad = ~np.isfinite(v) | (v != np.floor(v))
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"{where}: {what} {expr!r} is not integer-valued (entry {entries[i]}: "
                         f"{v[i]!r})")
    return v.astype(np.int64)


def read_file(
    path: str, tree: str | None, *, features: Sequence[str], spectators: Sequence[str] = (),
    targets: Sequence[str] = (), weight: str = "", cut: str = "", default: float = -999.0,
    label: int | None = None, what: str = "data", fold_expression: str | None = None,
) -> Events:
    """The selected events of one file of a sample (its ``sources`` entry included)."""
    exprs = {"feature": features, "spectator": spectators, "target": targets,
             "weight": [weight] if weight else [], "cut": [cut] if cut else [],
             "split.fold_expression": [fold_expression] if fold_expression else []}
    needed = needed_branches(exprs)
    where = f"{path}:{tree}" if tree else path
    chunks, n_entries = [], 0
    # the file is opened once: its entries are counted from the chunks read
    for start, cols in iter_columns(path, tree, needed):
        n = len(next(iter(cols.values()))) if cols else count_entries(path, tree)
        n_entries += n
        if n == 0:
            continue
        # file entry of every row, so that errors after the cut still name the right one
        entries = start + np.arange(n)
        cols, entries = select(cols, cut, entries, default, where)
        X = evaluate_matrix(cols, features, default, where, "feature", start, entries=entries)
        w = (evaluate_matrix(cols, [weight], default, where, "weight", start,
                             entries=entries)[:, 0]
             if weight else np.ones(len(X)))
        T = (evaluate_matrix(cols, targets, default, where, "target", start, entries=entries)
             if targets else None)
        S = [evaluate_column(cols, e, default, where, "spectator") for e in spectators]
        F = (evaluate_integer(cols, fold_expression, default, where, "split.fold_expression",
                              entries) if fold_expression else None)
        chunks.append(Events(
            features=X, weights=w, feature_names=list(features),
            labels=None if label is None else np.full(len(X), label, dtype=np.int8),
            targets=T, target_names=list(targets), spectators=S,
            spectator_names=list(spectators), fold_values=F,
        ))
    if n_entries == 0:
        raise InputError(f"{where}: the tree is empty")
    part = Events.concatenate(chunks)
    info = source_info(path, tree, entries=n_entries)
    info["selected"] = len(part)
    log.info("read %s: %d entries, %d selected", where, n_entries, len(part))
    part.sources = [{**info, "sample": what}]
    return part


def read_sample(
    files: Sequence[str], tree: str | None, *, what: str = "data", cut: str = "",
    backend: Any = None, **options: Any,
) -> Events:
    """Read one sample (a class, or the regression sample) from its files, selection applied;
    ``options`` are those of :func:`read_file`. With a ``backend``
    (:mod:`mva.backends`) the files are read where it runs its work, in parallel."""
    if not files:
        raise InputError(f"{what}.files: no input files given")
    paths = expand_files(list(files), key=f"{what}.files")
    kwargs = {"what": what, "cut": cut, **options}
    if backend is None:
        parts = [read_file(p, tree, **kwargs) for p in paths]
    else:
        parts = list(backend.imap(_read_unit, [(p, tree, kwargs) for p in paths],
                                  what=f"reading {what}", unit="files"))
    events = Events.concatenate(parts)
    if len(events) == 0:
        sel = f" after the cut {cut!r}" if cut else ""
        raise InputError(f"{what}: no events{sel} in {', '.join(paths)}")
    return events


def _read_unit(path: str, tree: str | None, kwargs: dict[str, Any]) -> Events:
    return read_file(path, tree, **kwargs)


def load_samples(cfg: Any, backend: Any = None) -> list[Events]:
    """The samples of a config, unconcatenated, in the task's order (one per class, or the one
    regression sample); with a ``backend``, every file is read where it runs its work."""
    d = cfg.data
    return [read_sample(s.files, s.tree, features=d.features, spectators=d.spectators,
                        targets=d.target, weight=s.weight, cut=s.cut, default=d.default,
                        label=s.label, what=s.key, fold_expression=cfg.split.fold_expression,
                        backend=backend)
            for s in cfg.task_.samples(d)]
