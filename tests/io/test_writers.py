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
