"""The table writers: bounded ROOT baskets (a reader of an entry range reads only its baskets)."""

from __future__ import annotations

import numpy as np
import uproot

from mva.io.readers import iter_columns
from mva.io.writers import BASKET_ENTRIES, Categorical, TableWriter


def test_root_baskets_are_bounded_and_strings_survive_the_slicing(tmp_path) -> None:
    n = 2 * BASKET_ENTRIES + 123
    x = np.arange(n, dtype=np.float32)
    cls = Categorical((np.arange(n) % 2).astype(np.int8), ["Signal", "Background"])
    path = tmp_path / "t.root"
    with TableWriter(path) as w:
        w.write("T", {"x": x, "className": cls})
    with uproot.open(path) as f:
        t = f["T"]
        assert t["x"].num_baskets == 3
        assert t["x"].basket_entry_start_stop(2) == (2 * BASKET_ENTRIES, n)
        np.testing.assert_array_equal(t["x"].array(library="np"), x)
        assert t["className"].array(library="np").tolist() == cls.to_numpy().tolist()
    # an entry range in the middle reads exactly those entries
    (start, cols), = iter_columns(str(path), "T", {"x": "x"}, step_size=1000,
                                  entry_start=BASKET_ENTRIES - 10, entry_stop=BASKET_ENTRIES + 990)
    assert start == BASKET_ENTRIES - 10
    np.testing.assert_array_equal(cols["x"], x[BASKET_ENTRIES - 10:BASKET_ENTRIES + 990])


def test_incompressible_branches_are_stored_raw_and_the_others_compressed(tmp_path) -> None:
    import zlib

    rng = np.random.default_rng(3)
    n = 3 * BASKET_ENTRIES // 2
    cols = {"noise": rng.normal(size=n).astype(np.float32),       # random mantissas
            "classID": (np.arange(n) % 2).astype(np.int32),         # compresses well
            "score": rng.random(n).astype(np.float32).astype(np.float64)}  # half zero bits
    for compression in ("zlib:1", "lz4:1"):
        path = tmp_path / f"{compression[:4]}.root"
        with TableWriter(path, compression) as w:
            w.write("T", cols)
        with uproot.open(path) as f:
            t = f["T"]
            for name, v in cols.items():
                np.testing.assert_array_equal(t[name].array(library="np"), v)
            # raw exactly where the library's own compression saves less than a tenth
            raw = cols["noise"][:16_384].astype(">f4").tobytes()
            assert len(zlib.compress(raw, 1)) > 0.9 * len(raw)
            assert t["noise"].compressed_bytes == t["noise"].uncompressed_bytes
            assert t["classID"].compressed_bytes < 0.5 * t["classID"].uncompressed_bytes
            assert t["score"].compressed_bytes < 0.9 * t["score"].uncompressed_bytes
    # without compression every branch is raw, as before
    with TableWriter(tmp_path / "none.root", "none") as w:
        w.write("T", cols)
    with uproot.open(tmp_path / "none.root") as f:
        assert f["T"]["classID"].compressed_bytes == f["T"]["classID"].uncompressed_bytes
