"""Read events from ROOT (uproot), CSV and Parquet into plain column mappings.

Readers know files; nothing downstream does. ``iter_columns`` yields, per chunk, a mapping from
branch/column name to array (numpy for flat columns, awkward for jagged ones) that
:func:`mva.io.expressions.evaluate` understands.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mva.errors import InputError

__all__ = ["expand_files", "file_format", "count_entries", "iter_columns", "list_trees",
           "non_trees", "describe"]

log = logging.getLogger(__name__)

ROOT_EXT = (".root",)
CSV_EXT = (".csv", ".txt", ".csv.gz")
PARQUET_EXT = (".parquet", ".pq")


def file_format(path: str) -> str:
    """'root', 'csv' or 'parquet' from the file name."""
    low = path.lower()
    if low.endswith(ROOT_EXT):
        return "root"
    if low.endswith(CSV_EXT):
        return "csv"
    if low.endswith(PARQUET_EXT):
        return "parquet"
    raise InputError(f"{path}: unknown file type (expected .root, .csv or .parquet)")


def expand_files(patterns: list[str], key: str = "files") -> list[str]:
    """Expand glob patterns, keeping order; every pattern must match at least one file."""
    out: list[str] = []
    for pattern in patterns:
        if any(c in pattern for c in "*?["):
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise InputError(f"{key}: no file matches {pattern!r}")
            out.extend(matches)
        else:
            if not os.path.exists(pattern):
                raise InputError(f"{pattern}: file not found")
            out.append(pattern)
    return out


def _open_root(path: str) -> Any:
    import uproot

    if not os.path.exists(path):
        raise InputError(f"{path}: file not found")
    try:
        # no array cache: every entry range is read once (a cache only grows with the file)
        return uproot.open(path, array_cache=None, **_local_handler(path))
    except Exception as exc:  # uproot raises many types for corrupt files
        raise InputError(f"{path}: not a readable ROOT file ({type(exc).__name__}: {exc})") from None


def _local_handler(path: str) -> dict[str, Any]:
    """uproot's plain file source for a local file: uproot reads every path through fsspec
    unless told otherwise, an event loop in one thread and a file thread in another, whose
    hand-offs of each chunk cost the reading time (2M events x 21 branches: 1.3 s against
    0.8 s), most of all while another thread holds the interpreter (the methods' libraries
    imported during the reading). Remote URLs keep uproot's choice."""
    import uproot

    if "://" in path:
        return {}
    return {"handler": uproot.MultithreadedFileSource}


#: the classes read as trees
TREE_CLASSES = ("TTree", "TNtuple", "TNtupleD")


def _objects(path: str, f: Any = None) -> dict[str, str]:
    """Every object of a ROOT file (subdirectories included): name without cycle -> class.
    ``f``: the file, already opened by :func:`_open_root`."""
    f = _open_root(path) if f is None else f
    try:
        names = f.classnames(recursive=True)
    except Exception as exc:
        raise InputError(f"{path}: cannot list the objects of the file "
                         f"({type(exc).__name__}: {exc})") from None
    out: dict[str, str] = {}
    for key, cls in names.items():
        name = key.rsplit(";", 1)[0]
        if name not in out or cls in TREE_CLASSES:  # a tree in any cycle is read as a tree
            out[name] = cls
    return out


def _is_rntuple(cls: str) -> bool:
    return "RNTuple" in cls


def list_trees(path: str) -> list[str]:
    """Paths of all TTrees in a ROOT file (subdirectories included), without cycle numbers."""
    return [name for name, cls in _objects(path).items() if cls in TREE_CLASSES]


def non_trees(path: str) -> dict[str, str]:
    """The objects of a ROOT file that are not trees (histograms, RNTuples, ...): name -> class
    (directories left out)."""
    return {name: cls for name, cls in _objects(path).items()
            if cls not in TREE_CLASSES and cls != "TDirectory"}


def _rntuple_error(path: str, name: str) -> InputError:
    return InputError(f"{path}: {name!r} is an RNTuple; mva reads TTrees only (write the data as "
                      "a TTree, e.g. with uproot's mktree, or convert it with ROOT)")


def _no_tree_error(path: str, others: dict[str, str]) -> InputError:
    rntuples = [n for n, c in others.items() if _is_rntuple(c)]
    if rntuples:
        return _rntuple_error(path, rntuples[0])
    listed = ", ".join(f"{n} ({c})" for n, c in others.items()) or "none"
    return InputError(f"{path}: no TTree in the file (objects that are not trees: {listed})")


def _get_tree(path: str, tree: str | None) -> Any:
    f = _open_root(path)
    objects = _objects(path, f)
    trees = [name for name, cls in objects.items() if cls in TREE_CLASSES]
    if tree is not None and tree not in trees and _is_rntuple(
            objects.get(tree.rsplit(";", 1)[0], "")):
        raise _rntuple_error(path, tree)
    if tree is None:
        if not trees:
            raise _no_tree_error(path, non_trees(path))
        if len(trees) != 1:
            raise InputError(
                f"{path}: give the tree to read (trees: {', '.join(trees) or 'none'})"
            )
        tree = trees[0]
    if tree not in trees:
        raise InputError(f"{path}: no tree {tree!r} (trees: {', '.join(trees) or 'none'})")
    try:
        return f[tree]
    except Exception as exc:
        raise InputError(f"{path}: tree {tree!r} cannot be read ({exc})") from None


@dataclass
class _Table:
    """A file-format-neutral view of one tree or table."""

    path: str
    tree: str | None
    obj: Any
    fmt: str
    #: ROOT: branch -> the stream over its large basket being read (``mva.io.baskets``)
    streams: dict[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.tree}" if self.tree else self.path

    @property
    def num_entries(self) -> int:
        if self.fmt == "root":
            return int(self.obj.num_entries)
        if self.fmt == "parquet":
            return int(self.obj.metadata.num_rows)
        return len(self.obj)

    @property
    def columns(self) -> list[str]:
        if self.fmt == "root":
            return list(self.obj.keys(recursive=False))
        if self.fmt == "parquet":
            return list(self.obj.schema_arrow.names)
        return list(self.obj.columns)


def _open_table(path: str, tree: str | None) -> _Table:
    fmt = file_format(path)
    if fmt == "root":
        return _Table(path, tree or None, _get_tree(path, tree), fmt)
    if not os.path.exists(path):
        raise InputError(f"{path}: file not found")
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return _Table(path, None, pq.ParquetFile(path), fmt)
        import pandas as pd

        return _Table(path, None, pd.read_csv(path, comment="#", skipinitialspace=True), fmt)
    except Exception as exc:
        raise InputError(f"{path}: cannot read {fmt} file ({type(exc).__name__}: {exc})") from None


def count_entries(path: str, tree: str | None) -> int:
    return _open_table(path, tree).num_entries


def check_columns(table: _Table, needed: dict[str, str]) -> None:
    """``needed`` maps a column to the expression that reads it (for the error message)."""
    have = set(table.columns)
    missing = [c for c in needed if c not in have]
    if missing:
        detail = ", ".join(f"{c!r} (needed by {needed[c]!r})" for c in missing)
        kind = "branch" if table.fmt == "root" else "column"
        raise InputError(f"{table.where}: no {kind} {detail}")


def _read_root(table: _Table, names: list[str], start: int, stop: int) -> dict[str, Any]:
    import awkward as ak
    import uproot

    flat, jagged = [], []
    for n in names:
        interp = table.obj[n].interpretation
        is_flat = isinstance(interp, uproot.interpretation.numerical.AsDtype) and not interp.inner_shape
        (flat if is_flat else jagged).append(n)
    out: dict[str, Any] = {}
    if flat and table.fmt == "root":
        flat = [n for n in flat if not _read_streamed(table, n, start, stop, out)]
    try:
        if flat:
            out.update(table.obj.arrays(flat, entry_start=start, entry_stop=stop, library="np"))
        if jagged:
            arrs = table.obj.arrays(jagged, entry_start=start, entry_stop=stop, library="ak")
            out.update({n: arrs[n] for n in jagged})
    except Exception as exc:
        raise InputError(
            f"{table.where}: cannot read branches {', '.join(names)} ({type(exc).__name__}: {exc})"
        ) from None
    for n in jagged:
        arr = out[n]
        if isinstance(arr, ak.Array) and arr.fields:
            raise InputError(
                f"{table.where}: branch {n!r} is a structured object ({arr.type}); use its "
                "numeric sub-branches instead"
            )
    return out


def _read_streamed(table: _Table, name: str, start: int, stop: int, out: dict[str, Any]) -> bool:
    """Read entries ``start``-``stop`` of a flat branch from its large basket without
    decompressing all of it (:mod:`mva.io.baskets`); False where uproot reads it."""
    from mva.io.baskets import stream_for

    stream = table.streams.get(name)
    if stream is None or not stream.first <= start <= stop <= stream.stop:
        try:
            stream = stream_for(table.path, table.obj[name], start, stop)
        except Exception:  # anything this reader does not understand is left to uproot
            stream = None
        if stream is None:
            table.streams.pop(name, None)
            return False
        table.streams[name] = stream
    try:
        out[name] = stream.read(start, stop)
    except Exception as exc:
        raise InputError(f"{table.where}: cannot read branch {name!r} "
                         f"({type(exc).__name__}: {exc})") from None
    return True


def _read_parquet(table: _Table, names: list[str], start: int, stop: int) -> dict[str, Any]:
    import awkward as ak
    import pyarrow as pa

    tbl = table.obj.read(columns=names).slice(start, stop - start)
    out: dict[str, Any] = {}
    for n in names:
        col = tbl.column(n)
        if pa.types.is_list(col.type):
            # awkward cannot pad lists with arrow's int32 offsets (needed for `x[i]`)
            col = col.cast(pa.large_list(col.type.value_field))
        if pa.types.is_large_list(col.type):
            out[n] = ak.from_arrow(col)
        else:
            out[n] = col.to_numpy()
    return out


def iter_columns(
    path: str, tree: str | None, needed: dict[str, str], step_size: int | None = None,
    entry_start: int = 0, entry_stop: int | None = None, table: _Table | None = None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(first_entry, columns)`` chunks of the needed columns of one file, of entries
    ``entry_start`` to ``entry_stop`` (default: all), in chunks of ``step_size`` entries.
    ``table``: the file already opened (and checked) by :func:`_open_table`."""
    if table is None:
        table = _open_table(path, tree)
        check_columns(table, needed)
    n = table.num_entries if entry_stop is None else min(entry_stop, table.num_entries)
    first = min(entry_start, n)
    step = step_size or max(n - first, 1)
    names = list(needed)
    for start in range(first, max(n, first + 1), step):
        stop = min(start + step, n)
        if table.fmt == "root":
            cols = _read_root(table, names, start, stop)
        elif table.fmt == "parquet":
            cols = _read_parquet(table, names, start, stop)
        else:
            cols = {c: table.obj[c].to_numpy()[start:stop] for c in names}
        yield start, cols
        if n == 0:
            return


def source_info(path: str, tree: str | None, entries: int | None = None) -> dict[str, Any]:
    """Provenance of an input file: path, tree, size, modification time and entries.

    Pass ``entries`` when already known: counting opens the file (for a ROOT tree with many
    branches that costs as much as reading it).
    """
    st = Path(path).stat()
    return {
        "file": os.path.abspath(path), "tree": tree, "bytes": st.st_size,
        "mtime": st.st_mtime,
        "entries": count_entries(path, tree) if entries is None else int(entries),
    }


def describe(path: str) -> list[dict[str, Any]]:
    """Trees (or the table) in a file: name, entries and every branch with its type and kind."""
    fmt = file_format(path)
    if fmt != "root":
        table = _open_table(path, None)
        if fmt == "parquet":
            schema = table.obj.schema_arrow
            branches = [
                {"name": f.name, "type": str(f.type),
                 "kind": "jagged" if "list" in str(f.type) else "flat"} for f in schema
            ]
        else:
            branches = [{"name": c, "type": str(t), "kind": "flat"}
                        for c, t in table.obj.dtypes.items()]
        return [{"tree": None, "entries": table.num_entries, "branches": branches}]
    import uproot

    trees = list_trees(path)
    if not trees:
        raise _no_tree_error(path, non_trees(path))
    out = []
    for name in trees:
        t = _get_tree(path, name)
        branches = []
        for b in t.keys(recursive=True):
            br = t[b]
            try:
                interp = br.interpretation
            except Exception:
                interp = None
            flat = isinstance(interp, uproot.interpretation.numerical.AsDtype) and not interp.inner_shape
            kind = "flat" if flat else ("jagged" if isinstance(
                interp, uproot.interpretation.jagged.AsJagged) else "object")
            branches.append({"name": b, "type": br.typename, "kind": kind})
        out.append({"tree": name, "entries": int(t.num_entries), "branches": branches})
    return out


def as_float(values: Any, what: str) -> np.ndarray:
    """Numeric column as floats: float32 stays float32, anything else (bool, any integer
    type, float16, float64) becomes float64."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{what}: not numeric (dtype {arr.dtype})")
    return arr if arr.dtype == np.float32 else arr.astype(np.float64, copy=False)
