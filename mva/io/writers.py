"""Write event tables: ROOT TTrees (never RNTuple), CSV or Parquet, atomically.

Every writer writes to a temporary file beside the target and renames it into place, so a failed or
interrupted job leaves either the previous file or nothing.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from mva.errors import InputError
from mva.io.readers import file_format

__all__ = ["atomic_path", "atomic_directory", "Categorical", "TableWriter", "write_trees"]


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str = "") -> Iterator[Path]:
    """A temporary path in the target's folder, renamed to ``target`` when the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or target.suffix,
                               dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _root_compression(name: str | None) -> Any:
    import uproot

    if name in (None, "", "none"):
        return None
    algo, _, level = name.partition(":")
    cls = {"zlib": uproot.ZLIB, "lz4": uproot.LZ4, "zstd": uproot.ZSTD, "lzma": uproot.LZMA}[algo]
    return cls(int(level) if level else 1)


class TableWriter:
    """Append chunks of columns to one or more trees of an output file (format by extension).

    ROOT: each tree is a TTree created with ``mktree`` and filled with ``extend``. CSV/Parquet hold a
    single table. Use as a context manager; the file appears only when the block succeeds.
    """

    def __init__(self, path: str | Path, compression: str | None = "lz4:1"):
        self.path = Path(path)
        self.fmt = file_format(str(path))
        self.compression = compression
        self._trees: dict[str, Any] = {}
        self._ctx: Any = None

    def __enter__(self) -> TableWriter:
        self._ctx = atomic_path(self.path)
        self.tmp = self._ctx.__enter__()
        if self.fmt == "root":
            import uproot

            self._file = uproot.recreate(self.tmp, compression=_root_compression(self.compression))
        else:
            self._file = None
            self._parquet = None
            self._csv_header = True
        return self

    def write(self, tree: str, columns: Mapping[str, np.ndarray]) -> None:
        if self.fmt == "root":
            if tree not in self._trees:
                types = {k: _root_type(v) for k, v in columns.items()}
                self._trees[tree] = self._file.mktree(tree, types)
            self._trees[tree].extend({k: _root_value(v) for k, v in columns.items()})
        elif self.fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.table({k: _plain(v) for k, v in columns.items()})
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.tmp, table.schema)
            self._parquet.write_table(table)
        else:
            import pandas as pd

            pd.DataFrame({k: _plain(v) for k, v in columns.items()}).to_csv(
                self.tmp, mode="w" if self._csv_header else "a", header=self._csv_header,
                index=False,
            )
            self._csv_header = False

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if self.fmt == "root":
                self._file.close()
            elif self.fmt == "parquet" and self._parquet is not None:
                self._parquet.close()
        finally:
            self._ctx.__exit__(exc_type, exc, tb)


class Categorical(NamedTuple):
    """A string column given as integer codes into a few categories (e.g. className)."""

    codes: np.ndarray
    categories: list[str]

    def __len__(self) -> int:
        return len(self.codes)

    def to_numpy(self) -> np.ndarray:
        return np.asarray(self.categories)[self.codes]


def _root_type(v: Any) -> Any:
    if isinstance(v, Categorical):
        return "string"
    v = np.asarray(v)
    if v.dtype.kind in "US":
        return "string"
    if v.dtype.kind == "O":
        raise InputError("cannot write object column to ROOT")
    return v.dtype


def _root_value(v: Any) -> Any:
    if isinstance(v, Categorical):
        return string_array(v)
    v = np.asarray(v)
    if v.dtype.kind in "US":
        uniq, inv = np.unique(v.astype(str), return_inverse=True)
        return string_array(Categorical(inv, list(uniq)))
    return v


def string_array(column: Categorical) -> Any:
    """Categorical strings as an awkward string array, vectorised (a Python list of a million
    strings takes seconds; this takes milliseconds)."""
    import awkward as ak

    uniq, inv = column.categories, np.asarray(column.codes)
    encoded = [u.encode() for u in uniq]
    lengths = np.array([len(e) for e in encoded], dtype=np.int64)
    padded = np.zeros((len(uniq), max(lengths.max(initial=0), 1)), dtype=np.uint8)
    for i, e in enumerate(encoded):
        padded[i, :len(e)] = np.frombuffer(e, dtype=np.uint8)
    per_event = lengths[inv]
    offsets = np.concatenate([[0], np.cumsum(per_event)])
    rows = padded[inv]
    content = rows[np.arange(rows.shape[1])[None, :] < per_event[:, None]]
    layout = ak.contents.ListOffsetArray(
        ak.index.Index64(offsets),
        ak.contents.NumpyArray(content, parameters={"__array__": "char"}),
        parameters={"__array__": "string"},
    )
    return ak.Array(layout)


def _plain(v: Any) -> np.ndarray:
    return v.to_numpy() if isinstance(v, Categorical) else np.asarray(v)


def write_trees(path: str | Path, trees: Mapping[str, Mapping[str, np.ndarray]],
                compression: str | None = "lz4:1") -> None:
    """Write several trees at once (e.g. TrainTree and TestTree)."""
    with TableWriter(path, compression) as w:
        for name, cols in trees.items():
            w.write(name, cols)


@contextlib.contextmanager
def atomic_directory(target: str | Path, force: bool = False) -> Iterator[Path]:
    """Build a directory under a temporary name and move it to ``target`` only on success.

    An existing ``target`` is refused unless ``force``; with ``force`` it is replaced only once the
    new one is complete.
    """
    import shutil

    target = Path(target)
    if target.exists() and not force:
        raise InputError(f"{target}: already exists (use --force to overwrite)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / "run")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
