"""Entries of one large basket of a flat ROOT branch, decompressed as they are asked for.

uproot (like ROOT) decompresses a whole basket to read any entry of it. For files written with
one basket per branch (one ``extend`` of everything) that is the whole branch, so a reader of a
200k-entry chunk of a 10M-entry file would hold 10M entries of every branch it reads, and
decompress them again for every chunk. :class:`BasketStream` reads such a basket from the file
in pieces and decompresses it incrementally: ROOT's compressed blocks (of at most 16 MiB each)
are streamed through zlib or lzma with a bounded output (1 MiB at a time); LZ4 and ZSTD blocks,
which these codecs cannot stream, are decompressed one block at a time. Chunks asked for in order
(as ``mva apply`` reads a file) continue where the last one ended; a chunk before the current
position starts the basket again.

Only flat numeric branches whose basket holds exactly ``entries x itemsize`` bytes (no entry
offsets) in a local file are streamed; anything else is left to uproot (:func:`stream_for`
returns None).
"""

from __future__ import annotations

import lzma
import os
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["BasketStream", "stream_for", "LARGE_BASKET_BYTES"]

#: baskets at least this large (uncompressed) are streamed when a chunk is much smaller
LARGE_BASKET_BYTES = 16 << 20
_PIECE = 1 << 20  # compressed bytes read, and decompressed bytes produced, at a time
_KEY = struct.Struct(">ihiIhh")  # TKey: fNbytes, fVersion, fObjlen, fDatime, fKeylen, fCycle
_BLOCK = 9  # ROOT block header: algorithm (2), method (1), compressed (3), uncompressed (3)


def _u24(b: bytes) -> int:
    return b[0] | (b[1] << 8) | (b[2] << 16)


class BasketStream:
    """Sequential reader of the entries of one basket: ``read(start, stop)`` (entry numbers of
    the tree) returns them as ``dtype`` (big-endian as stored, converted to ``to_dtype``)."""

    def __init__(self, path: str, seek: int, first: int, entries: int, dtype: np.dtype,
                 to_dtype: np.dtype, keylen: int, nbytes: int, objlen: int) -> None:
        self.path, self.seek, self.first, self.entries = path, seek, first, entries
        self.dtype, self.to_dtype = np.dtype(dtype), np.dtype(to_dtype)
        self.keylen, self.nbytes, self.objlen = keylen, nbytes, objlen
        self._restart()

    @property
    def stop(self) -> int:
        return self.first + self.entries

    def _restart(self) -> None:
        self._pieces = self._decompressed()
        self._buf = b""
        self.pos = self.first  # the entry at the start of self._buf

    def _decompressed(self) -> Iterator[bytes]:
        with open(self.path, "rb") as f:
            f.seek(self.seek + self.keylen)
            left = self.nbytes - self.keylen
            if left == self.objlen:  # stored uncompressed
                while left > 0:
                    piece = f.read(min(_PIECE, left))
                    if not piece:
                        raise OSError(f"{self.path}: basket at {self.seek} ends early")
                    left -= len(piece)
                    yield piece
                return
            while left > 0:
                head = f.read(_BLOCK)
                if len(head) < _BLOCK:
                    raise OSError(f"{self.path}: basket at {self.seek} ends early")
                alg, csize, usize = head[:2], _u24(head[3:6]), _u24(head[6:9])
                left -= _BLOCK + csize
                yield from _block(f, alg, csize, usize)

    def read(self, start: int, stop: int) -> np.ndarray:
        if not self.first <= start <= stop <= self.stop:
            raise ValueError(f"entries {start}-{stop} are not in the basket "
                             f"{self.first}-{self.stop}")
        if start < self.pos:
            self._restart()
        size = self.dtype.itemsize
        skip, want = (start - self.pos) * size, (stop - start) * size
        parts, have = [], 0
        buf = self._buf
        while True:
            if skip:
                cut = min(skip, len(buf))
                buf, skip = buf[cut:], skip - cut
            if not skip and buf:
                take = buf[:want - have]
                parts.append(take)
                have += len(take)
                buf = buf[len(take):]
            if have == want:
                break
            buf = next(self._pieces, None)
            if buf is None:
                raise OSError(f"{self.path}: basket at {self.seek} holds fewer entries "
                              "than its branch says")
        self._buf, self.pos = buf, stop
        data = b"".join(parts)
        return np.frombuffer(data, dtype=self.dtype).astype(self.to_dtype)


def _block(f: Any, alg: bytes, csize: int, usize: int) -> Iterator[bytes]:
    """The decompressed bytes of one ROOT compression block, in pieces."""
    if alg in (b"ZL", b"XZ"):
        zl = alg == b"ZL"
        dec: Any = zlib.decompressobj() if zl else lzma.LZMADecompressor()
        left, pending = csize, b""
        while not dec.eof:
            if not pending and (zl or dec.needs_input):
                if left <= 0:
                    if zl:
                        yield dec.flush()
                    return
                pending = f.read(min(_PIECE, left))
                left -= len(pending)
            out = dec.decompress(pending, _PIECE)
            pending = dec.unconsumed_tail if zl else b""
            if out:
                yield out
        if left > 0:
            f.seek(left, 1)  # the end of the block (past the codec's own end)
        return
    import cramjam  # uproot's own codecs for LZ4 and ZSTD

    data = f.read(csize)
    if alg == b"L4":
        out = cramjam.lz4.decompress_block(data[8:], output_len=usize)  # 8 bytes: checksum
    elif alg == b"ZS":
        out = cramjam.zstd.decompress(data, output_len=usize)
    else:
        raise OSError(f"unsupported ROOT compression {alg!r}")
    yield bytes(out)


def stream_for(path: str, branch: Any, start: int, stop: int) -> BasketStream | None:
    """A stream over the basket of ``branch`` that holds entries ``start``-``stop``, where that
    basket is large, the chunk much smaller and the branch flat; else None (read by uproot)."""
    import uproot

    interp = branch.interpretation
    if (not isinstance(interp, uproot.interpretation.numerical.AsDtype) or interp.inner_shape
            or not os.path.isfile(path) or branch.num_baskets == 0):
        return None
    starts = branch.member("fBasketEntry")
    i = int(np.searchsorted(np.asarray(starts[:branch.num_baskets]), start, side="right")) - 1
    if i < 0 or i >= branch.num_baskets:
        return None
    first, last = (int(v) for v in branch.basket_entry_start_stop(i))
    dtype = np.dtype(interp.from_dtype)
    entries = last - first
    if (stop > last or entries * dtype.itemsize < LARGE_BASKET_BYTES
            or entries < 4 * (stop - start)):
        return None
    seek = int(branch.member("fBasketSeek")[i])
    with open(path, "rb") as f:
        f.seek(seek)
        head = f.read(_KEY.size)
    if len(head) < _KEY.size:
        return None
    nbytes, _, objlen, _, keylen, _ = _KEY.unpack(head)
    if objlen != entries * dtype.itemsize:
        return None  # entry offsets, or a basket this reader does not understand
    return BasketStream(path, seek, first, entries, dtype, np.dtype(interp.to_dtype), keylen,
                        nbytes, objlen)
