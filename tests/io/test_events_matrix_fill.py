"""The feature matrix is filled a block of rows at a time: every value lands where
``np.column_stack`` puts it, for any number of rows (block edges included) and either dtype."""

import numpy as np
import pytest

from mva.io.events import _fill_columns, evaluate_matrix


@pytest.mark.parametrize("n", [0, 1, 255, 256, 257, 70_001])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fill_matches_column_stack(n, dtype):
    rng = np.random.default_rng(n)
    values = [rng.normal(size=n).astype(dtype) for _ in range(7)]
    out = np.full((n, 7), np.nan, dtype=dtype)
    _fill_columns(out, values, block_bytes=7 * 256 * out.itemsize)  # 256 rows a block
    np.testing.assert_array_equal(out, np.column_stack(values))


def test_evaluate_matrix_is_the_columns_side_by_side():
    rng = np.random.default_rng(3)
    cols = {"a": rng.normal(size=300_001).astype(np.float32),
            "b": rng.normal(size=300_001).astype(np.float32),
            "c": rng.integers(0, 9, 300_001).astype(np.int32)}
    m = evaluate_matrix(cols, ["a", "b"], -999.0, "f.root:T", "feature")
    assert m.dtype == np.float32
    np.testing.assert_array_equal(m, np.column_stack([cols["a"], cols["b"]]))
    m = evaluate_matrix(cols, ["b", "a * 2", "c"], -999.0, "f.root:T", "feature")
    assert m.dtype == np.float64
    np.testing.assert_array_equal(
        m, np.column_stack([cols["b"], cols["a"] * np.float32(2), cols["c"]]).astype(np.float64))
