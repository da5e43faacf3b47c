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

__all__ = ["atomic_path", "atomic_directory", "rename_noreplace", "Categorical", "TableWriter",
           "write_trees"]


_UMASK: int | None = None


def _umask() -> int:
    """The process umask (read once: reading it means setting it)."""
    global _UMASK
    if _UMASK is None:
        old = os.umask(0)
        os.umask(old)
        _UMASK = old
    return _UMASK


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _remove_stale(target: Path) -> None:
    """Remove temporaries of ``target`` (``.NAME.tmp-<pid>-*``) whose process is gone.

    A process killed with SIGKILL (or a crashed machine) cannot clean up after itself; the next
    writer of the same output does. Temporaries of live processes are left alone. (The pid is
    only checked on this machine: on a folder shared between machines, a temporary of a job on
    another machine whose pid is not alive here counts as stale.)
    """
    import shutil

    prefix = f".{target.name}.tmp-"
    try:
        names = os.listdir(target.parent)
    except OSError:
        return
    for name in names:
        if not name.startswith(prefix):
            continue
        pid, sep, _ = name[len(prefix):].partition("-")
        if not sep or not pid.isdigit() or _pid_alive(int(pid)):
            continue
        path = target.parent / name
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def _tmp_prefix(target: Path) -> str:
    return f".{target.name}.tmp-{os.getpid()}-"


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str = "") -> Iterator[Path]:
    """A temporary path in the target's folder, renamed to ``target`` when the block succeeds.

    The temporary (``.NAME.tmp-<pid>-*``) is removed when the block fails or is interrupted
    (also by SIGTERM, which ``mva`` turns into an exception); stale temporaries of the same
    target left by dead processes are removed first. The file gets the permissions of the umask.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target)
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(target), suffix=suffix or target.suffix,
                                   dir=target.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if tmp and os.path.lexists(tmp):
            os.unlink(tmp)


def _root_compression(name: str | None) -> Any:
    import uproot

    if name in (None, "", "none"):
        return None
    algo, _, level = name.partition(":")
    cls = {"zlib": uproot.ZLIB, "lz4": uproot.LZ4, "zstd": uproot.ZSTD, "lzma": uproot.LZMA}[algo]
    return cls(int(level) if level else 1)


#: entries per ROOT basket written (about 0.4 MB per float32 branch)
BASKET_ENTRIES = 100_000

#: a branch whose first entries compress to more than this fraction of their size is written
#: uncompressed (floats with random low mantissa bits: features, weights): compressing it would
#: cost CPU time for a file less than a tenth smaller
INCOMPRESSIBLE = 0.9
#: entries of a branch that the compression is tried on
COMPRESSION_TRIAL = 16_384


def _compresses(values: np.ndarray, codec: Any) -> bool:
    """Whether ``codec`` shrinks the first entries of ``values`` (as stored: big-endian) below
    :data:`INCOMPRESSIBLE` of their size."""
    head = np.ascontiguousarray(values[:COMPRESSION_TRIAL], dtype=values.dtype.newbyteorder(">"))
    raw = head.tobytes()
    return len(codec.compress(raw)) < INCOMPRESSIBLE * len(raw)


def _skip_incompressible(tree: Any, columns: Mapping[str, Any], codec: Any) -> None:
    """Branches of a new ROOT ``tree`` that ``codec`` does not shrink are written uncompressed
    (ROOT reads a branch's baskets with whatever compression each has)."""
    if codec is None:
        return
    for name, v in columns.items():
        # numeric numpy columns only (strings and anything else keep the file's compression)
        if (isinstance(v, np.ndarray) and v.dtype.kind in "biuf" and v.size
                and not _compresses(v, codec)):
            tree[name].compression = None


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
        self._file = None
        self._parquet = None
        self._csv_header = True
        self._ctx = atomic_path(self.path)
        self.tmp = self._ctx.__enter__()
        try:
            if self.fmt == "root":
                import uproot

                self._file = uproot.recreate(self.tmp,
                                             compression=_root_compression(self.compression))
        except BaseException as exc:
            # __exit__ is not called when __enter__ fails: remove the temporary here
            self._ctx.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def write(self, tree: str, columns: Mapping[str, np.ndarray]) -> None:
        if self.fmt == "root":
            if tree not in self._trees:
                types = {k: _root_type(v) for k, v in columns.items()}
                self._trees[tree] = self._file.mktree(tree, types)
                _skip_incompressible(self._trees[tree], columns, self._file.compression)
            n = len(next(iter(columns.values()))) if columns else 0
            # one basket per BASKET_ENTRIES: a reader of an entry range decompresses only the
            # baskets it needs (a single basket per branch makes every reader read it all)
            for start in range(0, max(n, 1), BASKET_ENTRIES):
                part = {k: _rows(v, start, start + BASKET_ENTRIES) for k, v in columns.items()}
                self._trees[tree].extend({k: _root_value(v) for k, v in part.items()})
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
            if self.fmt == "root" and self._file is not None:
                self._file.close()
            elif self.fmt == "parquet" and self._parquet is not None:
                self._parquet.close()
        except BaseException as close_exc:
            # a failed (or interrupted) close: the temporary is incomplete, never rename it
            self._ctx.__exit__(type(close_exc), close_exc, close_exc.__traceback__)
            raise
        else:
            if exc_type is None:
                self._ctx.__exit__(None, None, None)
            else:
                self._ctx.__exit__(exc_type, exc, tb)


class Categorical(NamedTuple):
    """A string column given as integer codes into a few categories (e.g. className)."""

    codes: np.ndarray
    categories: list[str]

    def __len__(self) -> int:
        return len(self.codes)

    def to_numpy(self) -> np.ndarray:
        return np.asarray(self.categories)[self.codes]


def _rows(v: Any, start: int, stop: int) -> Any:
    if isinstance(v, Categorical):
        return Categorical(v.codes[start:stop], v.categories)
    return v[start:stop]


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


#: what makes a directory an mva run directory (one that ``--force`` may replace)
RUN_MARKERS = ("models/manifest.json", "metrics.json")

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


def _renameat2() -> Any:
    """libc's ``renameat2`` (Linux, glibc 2.28 or newer), or None."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def rename_noreplace(src: str | Path, dst: str | Path) -> None:
    """Rename ``src`` to ``dst``, failing with :class:`FileExistsError` if ``dst`` exists.

    Atomic with ``renameat2(RENAME_NOREPLACE)`` where the kernel, libc and file system have it.
    Otherwise ``dst`` is checked right before an ordinary rename: a ``dst`` created between the
    check and the rename is replaced only if it is an empty directory or a file (a rename onto a
    non-empty directory always fails), a race window of microseconds.
    """
    import ctypes
    import errno

    fn = _renameat2()
    if fn is not None:
        if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # otherwise: not supported
            raise OSError(err, os.strerror(err), str(dst))
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    try:
        os.rename(src, dst)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst)) from None
        raise


def _exists_error(target: Path) -> InputError:
    return InputError(f"{target}: already exists (use --force to overwrite)")


def _check_replaceable(target: Path, markers: tuple[str, ...] = RUN_MARKERS,
                       kind: str = "run") -> None:
    """With ``--force``, only an mva run directory (one of ``markers`` in it) or an empty
    directory is replaced."""
    if target.is_dir():  # a link to a run is replaced by the new run, its target is kept
        if any((target / m).is_file() for m in markers) or not any(target.iterdir()):
            return
        raise InputError(f"{target}: not an mva {kind} directory (no {' or '.join(markers)}); "
                         "refusing to replace it even with --force")
    raise InputError(f"{target}: exists and is not a directory; refusing to replace it "
                     "even with --force")


@contextlib.contextmanager
def atomic_directory(target: str | Path, force: bool = False,
                     markers: tuple[str, ...] = RUN_MARKERS, kind: str = "run"
                     ) -> Iterator[Path]:
    """Build a directory under a temporary name and move it to ``target`` only on success.

    An existing ``target`` is refused unless ``force``, also one that appears while the block
    runs (the final rename never replaces it). With ``force`` only a run directory (or an empty
    one) is replaced, and only once the new one is complete: the old run is renamed aside, the
    new one into place (the old one is put back if that fails), then the old one is deleted.
    The temporary (``.NAME.tmp-<pid>-*``) is removed when the block fails; stale temporaries of
    dead processes are removed first. The directory gets the permissions of the umask.
    ``markers`` (files, one of which is in a directory that ``force`` may replace) and ``kind``
    are for other directories than runs (an export).
    """
    import shutil

    target = Path(target)
    if os.path.lexists(target):
        if not force:
            raise _exists_error(target)
        _check_replaceable(target, markers, kind)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target)
    tmp: Path | None = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(target), dir=target.parent))
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        try:
            rename_noreplace(tmp, target)
            return
        except FileExistsError:
            if not force:
                raise _exists_error(target) from None
        _check_replaceable(target, markers, kind)
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-{os.getpid()}-",
                                    dir=target.parent))
        try:
            os.rename(target, old / "run")
            try:
                rename_noreplace(tmp, target)
            except BaseException:
                os.rename(old / "run", target)  # put the previous run back
                raise
        finally:
            if not (old / "run").exists() or target.exists():
                shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
