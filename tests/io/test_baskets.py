"""Large baskets of flat branches are read in pieces (mva.io.baskets), value for value as uproot
reads them, with memory bounded by the chunk and not by the basket."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import uproot

from mva.io import baskets
from mva.io.readers import _open_table, iter_columns

N = 200_000
DTYPES = {"f4": np.float32, "f8": np.float64, "i8": np.int64, "u2": np.uint16, "b": np.bool_}
CODECS = {"zlib": uproot.ZLIB(1), "lzma": uproot.LZMA(1), "lz4": uproot.LZ4(1),
          "zstd": uproot.ZSTD(1), "none": None}


def _write(path, n=N, compression=uproot.ZLIB(1), seed=0):
    rng = np.random.default_rng(seed)
    data = {
        "f4": rng.normal(size=n).astype(np.float32),
        "f8": np.round(rng.normal(size=n), 2),          # compressible and not
        "i8": rng.integers(-5, 5, size=n).astype(np.int64),
        "u2": rng.integers(0, 60000, size=n).astype(np.uint16),
        "b": rng.random(n) < 0.3,
    }
    with uproot.recreate(path, compression=compression) as f:
        f.mktree("t", {k: v.dtype for k, v in data.items()})
        f["t"].extend(data)  # one basket per branch
    return data


@pytest.fixture
def small_baskets(monkeypatch):
    """'large' from 64 KiB on, and pieces of 4 KiB, so that small files cross many pieces."""
    monkeypatch.setattr(baskets, "LARGE_BASKET_BYTES", 64 << 10)
    monkeypatch.setattr(baskets, "_PIECE", 4096)


@pytest.mark.parametrize("codec", CODECS)
def test_chunks_of_one_basket_equal_uproot(tmp_path, small_baskets, codec):
    path = str(tmp_path / "one.root")
    data = _write(path, compression=CODECS[codec])
    table = _open_table(path, "t")
    got = {k: [] for k in data}
    starts = []
    for start, cols in iter_columns(path, "t", {k: k for k in data}, step_size=7_001,
                                    table=table):
        starts.append(start)
        for k in data:
            got[k].append(cols[k])
    # every flat branch except the smallest one went through a stream (bool: 200 kB)
    assert set(table.streams) == set(data)
    for k, v in data.items():
        arr = np.concatenate(got[k])
        assert arr.dtype == v.dtype
        np.testing.assert_array_equal(arr, v)
    assert starts == list(range(0, N, 7_001))


def test_out_of_order_chunks_start_the_basket_again(tmp_path, small_baskets):
    path = str(tmp_path / "one.root")
    data = _write(path)
    table = _open_table(path, "t")
    for a, b in [(150_000, 160_000), (10, 20_000), (20_000, 20_001), (199_000, N), (0, 5)]:
        (_, cols), = iter_columns(path, "t", {"f4": "f4", "i8": "i8"}, entry_start=a,
                                  entry_stop=b, table=table)
        np.testing.assert_array_equal(cols["f4"], data["f4"][a:b])
        np.testing.assert_array_equal(cols["i8"], data["i8"][a:b])
    assert set(table.streams) == {"f4", "i8"}


def test_small_baskets_and_whole_reads_are_left_to_uproot(tmp_path):
    path = str(tmp_path / "one.root")
    _write(path, n=20_000)
    table = _open_table(path, "t")
    list(iter_columns(path, "t", {"f8": "f8"}, step_size=1000, table=table))
    assert table.streams == {}  # 160 kB: below the default threshold of 16 MiB
    with uproot.open(path) as f:
        assert baskets.stream_for(path, f["t"]["f8"], 0, 20_000) is None


def test_several_compression_blocks_and_bounded_memory(tmp_path):
    """5M float32 entries: 20 MB in two ROOT blocks (at most 16 MiB each); a chunk of 100k
    entries allocates about the chunk, not the basket."""
    path = str(tmp_path / "big.root")
    n = 5_000_000
    values = np.arange(n, dtype=np.float32) * np.float32(0.5)
    with uproot.recreate(path) as f:
        f.mktree("t", {"x": np.float32})
        f["t"].extend({"x": values})
    table = _open_table(path, "t")
    chunks = iter_columns(path, "t", {"x": "x"}, step_size=100_000, table=table)
    tracemalloc.start()
    try:
        peak = 0
        for start, cols in chunks:
            np.testing.assert_array_equal(cols["x"], values[start:start + 100_000])
            peak = max(peak, tracemalloc.get_traced_memory()[1])
            tracemalloc.reset_peak()
    finally:
        tracemalloc.stop()
    assert "x" in table.streams
    assert peak < 8 * 400_000 + 4 * baskets._PIECE, peak  # the basket is 20 MB


def test_a_truncated_basket_is_an_error_naming_the_branch(tmp_path, small_baskets):
    path = str(tmp_path / "one.root")
    _write(path, compression=None)
    table = _open_table(path, "t")
    stream = baskets.stream_for(path, table.obj["f8"], 0, 1000)
    assert stream is not None
    stream.entries += 10  # the branch claims more entries than its basket holds
    table.streams["f8"] = stream
    from mva.errors import InputError
    from mva.io.readers import _read_streamed

    with pytest.raises(InputError, match=r"one.root:t: cannot read branch 'f8'.*fewer entries"):
        _read_streamed(table, "f8", N, N + 10, {})
