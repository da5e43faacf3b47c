"""Expressions: arithmetic and ROOT operators against numpy, jagged indexing and reductions
against plain python loops, errors, and the safety of the parser (no eval, no attributes)."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from mva.io.expressions import FUNCTIONS, ExpressionError, evaluate, is_branch_name, names_in

N = 200


@pytest.fixture(scope="module")
def cols() -> dict:
    rng = np.random.default_rng(7)
    lengths = rng.integers(0, 5, N)  # events with 0..4 jets: many too short for J[2]
    lists = [list(rng.exponential(30.0, k)) for k in lengths]
    return {
        "a": rng.normal(size=N),
        "b": rng.uniform(0.1, 3.0, N),
        "i": rng.integers(-5, 6, N).astype(np.int32),
        "n": rng.integers(0, 4, N).astype(np.uint32),   # like NanoAOD's nMuon
        "f": rng.random(N) > 0.5,
        "g": rng.random(N) > 0.3,
        "J": ak.Array(lists),
        "K": ak.values_astype(ak.Array([list(rng.integers(0, 4, k)) for k in lengths]), np.uint8),
        "_lists": lists,
    }


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("a + b * 2 - 1", lambda c: c["a"] + c["b"] * 2 - 1),
        ("a / b", lambda c: c["a"] / c["b"]),
        ("a ** 2 + b ** 0.5", lambda c: c["a"] ** 2 + np.sqrt(c["b"])),
        ("-a", lambda c: -c["a"]),
        ("abs(a)", lambda c: np.abs(c["a"])),
        ("sqrt(a**2 + b**2)", lambda c: np.hypot(c["a"], c["b"])),
        ("log(b) + exp(a) - cos(a) * sin(b)",
         lambda c: np.log(c["b"]) + np.exp(c["a"]) - np.cos(c["a"]) * np.sin(c["b"])),
        ("atan2(a, b)", lambda c: np.arctan2(c["a"], c["b"])),
        ("i % 3", lambda c: np.mod(c["i"], 3)),
        ("i // 2", lambda c: np.floor_divide(c["i"], 2)),
        ("a > 0 && b < 1", lambda c: (c["a"] > 0) & (c["b"] < 1)),
        ("a > 0 || b < 1", lambda c: (c["a"] > 0) | (c["b"] < 1)),
        ("!(a > 0)", lambda c: ~(c["a"] > 0)),
        ("!f && g", lambda c: ~c["f"] & c["g"]),
        ("a != b", lambda c: c["a"] != c["b"]),
        ("a > 0 and not f", lambda c: (c["a"] > 0) & ~c["f"]),
        ("0 < b < 1", lambda c: (c["b"] > 0) & (c["b"] < 1)),
        ("a if a > 0 else -a", lambda c: np.abs(c["a"])),
        ("where(f, a, b)", lambda c: np.where(c["f"], c["a"], c["b"])),
        ("max(a, b)", lambda c: np.maximum(c["a"], c["b"])),
        ("min(a, b) + max(a, 0)", lambda c: np.minimum(c["a"], c["b"]) + np.maximum(c["a"], 0)),
    ],
)
def test_flat_expressions_match_numpy(cols: dict, expr: str, expected) -> None:
    got = evaluate(expr, cols)
    assert got.shape == (N,)
    np.testing.assert_allclose(got.astype(float), expected(cols).astype(float), rtol=1e-12)


def test_integer_division_is_true_division(cols: dict) -> None:
    np.testing.assert_allclose(evaluate("i / 4", cols), cols["i"] / 4.0)
    np.testing.assert_allclose(evaluate("1 / 2", cols), np.full(N, 0.5))


def test_not_binds_like_root(cols: dict) -> None:
    # TTree::Draw (C): `!x < 1` is `(!x) < 1`, i.e. x != 0; Python's `not x < 1` would be x >= 1
    x = np.array([-1.0, 0.0, 0.5, 2.0])
    got = evaluate("!x < 1", {"x": x})
    np.testing.assert_array_equal(got, x != 0)


def test_single_ampersand_between_comparisons_is_refused(cols: dict) -> None:
    # Python would read `a > 0 & b < 1` as `a > (0 & b) < 1`, silently unlike ROOT
    for expr in ("a > 0 & b < 1", "a > 0 | b < 1"):
        with pytest.raises(ExpressionError, match="&&"):
            evaluate(expr, cols)
    # parenthesised, `&` and `|` are the logical and/or of numpy
    np.testing.assert_array_equal(evaluate("(a > 0) & (b < 1)", cols),
                                  (cols["a"] > 0) & (cols["b"] < 1))
    np.testing.assert_array_equal(evaluate("(a > 0) | f", cols), (cols["a"] > 0) | cols["f"])


def test_unsigned_and_bool_arithmetic_as_in_root(cols: dict) -> None:
    # uint32 counters must not wrap around: nMuon - 2 < 0 for events with fewer than 2 muons
    n = cols["n"]
    np.testing.assert_array_equal(evaluate("n - 2 < 0", cols), n.astype(int) - 2 < 0)
    np.testing.assert_array_equal(evaluate("-n", cols), -n.astype(np.int64))
    # adding flags counts them (ROOT computes in numbers), it does not or them
    np.testing.assert_array_equal(evaluate("f + g", cols), cols["f"].astype(int) + cols["g"])
    # integers to negative powers are fine, as in ROOT
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(evaluate("n ** -1", cols), 1.0 / n.astype(float))
    np.testing.assert_allclose(evaluate("2 ** -1", cols), np.full(N, 0.5))


def _nth(lists: list[list[float]], i: int, default: float) -> np.ndarray:
    return np.array([x[i] if len(x) > i else default for x in lists])


@pytest.mark.parametrize("i", [0, 2])
@pytest.mark.parametrize("default", [-999.0, 0.0])
def test_index_jagged_with_default(cols: dict, i: int, default: float) -> None:
    got = evaluate(f"J[{i}]", cols, default=default)
    expected = _nth(cols["_lists"], i, default)
    assert (expected == default).any() and (expected != default).any()
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_index_unsigned_jagged(cols: dict) -> None:
    # a uint8 jagged branch with a negative default, and arithmetic on it, must not wrap
    K = ak.to_list(cols["K"])
    got = evaluate("K[1] - 2", cols, default=-1.0)
    np.testing.assert_array_equal(got, [(k[1] if len(k) > 1 else -1.0) - 2 for k in K])
    got = evaluate("sum(K - 2)", cols)
    np.testing.assert_array_equal(got, [sum(int(v) - 2 for v in k) for k in K])


@pytest.mark.parametrize(
    ("expr", "loop"),
    [
        ("count(J)", len),
        ("num(J)", len),
        ("sum(J)", sum),
        ("max(J)", lambda x: max(x) if x else -999.0),
        ("min(J)", lambda x: min(x) if x else -999.0),
        ("mean(J)", lambda x: sum(x) / len(x) if x else -999.0),
        ("count(J) - sum(J > 20)", lambda x: sum(1 for v in x if v <= 20)),
        ("any(J > 40)", lambda x: any(v > 40 for v in x)),
        ("all(J > 5)", lambda x: all(v > 5 for v in x)),
        ("max(J * 2 + 1)", lambda x: max(2 * v + 1 for v in x) if x else -999.0),
    ],
)
def test_reductions_match_python_loop(cols: dict, expr: str, loop) -> None:
    got = evaluate(expr, cols)
    expected = np.array([loop(x) for x in cols["_lists"]], dtype=float)
    np.testing.assert_allclose(got.astype(float), expected, rtol=1e-12)


def test_reduction_mixed_with_flat(cols: dict) -> None:
    got = evaluate("max(J) > 30 && a < 0", cols)
    mx = np.array([max(x) if x else -999.0 for x in cols["_lists"]])
    np.testing.assert_array_equal(got, (mx > 30) & (cols["a"] < 0))


def test_constant_expression_has_one_value_per_event(cols: dict) -> None:
    got = evaluate("2.5", cols)
    np.testing.assert_array_equal(got, np.full(N, 2.5))


@pytest.mark.parametrize("expr", ["J", "J * 2", "J > 10", "max(J, 10)", "sqrt(J)"])
def test_jagged_result_suggests_reduction(cols: dict, expr: str) -> None:
    with pytest.raises(ExpressionError, match="jagged") as info:
        evaluate(expr, cols)
    msg = str(info.value)
    assert "[0]" in msg and "max(" in msg and "sum(" in msg and "count(" in msg


@pytest.mark.parametrize(
    ("expr", "match"),
    [
        ("J[a]", "constant non-negative"),
        ("J[-1]", "constant non-negative"),
        ("J[0:2]", "not allowed"),
        ("a[0]", "not jagged"),
        ("sum(a)", "jagged"),
        ("max(a)", "jagged"),
        ("sum(J, J)", "one jagged argument"),
        ("nope + 1", "unknown name 'nope'"),
        ("nope", "unknown name 'nope'"),
        ("frobnicate(a)", "unknown function 'frobnicate'"),
        ("a +", "cannot parse"),
        ("'text'", "not a number"),
        ("abs(x=a)", "keyword"),
    ],
)
def test_bad_expressions_raise_expression_error(cols: dict, expr: str, match: str) -> None:
    with pytest.raises(ExpressionError, match=match):
        evaluate(expr, cols)


@pytest.mark.parametrize(
    "expr",
    [
        "__import__('os')",
        "__import__('os').system('true')",
        "a.b",
        "a.__class__",
        "(lambda: 1)()",
        "lambda x: x",
        "[x for x in a]",
        "open('/etc/passwd')",
        "eval('1')",
        "getattr(a, 'b')",
        "(a := 1)",
        "{'k': 1}",
        "(a, b)",
    ],
)
def test_unsafe_input_is_rejected_before_evaluation(cols: dict, expr: str) -> None:
    # rejected at parse time: names_in (which evaluates nothing) already refuses it
    with pytest.raises(ExpressionError):
        names_in(expr)
    with pytest.raises(ExpressionError):
        evaluate(expr, cols)


def test_names_in() -> None:
    assert names_in("sqrt(px**2 + py**2) > max(Jet_pt) && nMuon >= 2 && !isData") == {
        "px", "py", "Jet_pt", "nMuon", "isData"}
    assert names_in("Muon_pt[0] * weight") == {"Muon_pt", "weight"}
    assert names_in("max(a, b)") == {"a", "b"}
    assert names_in("1.5") == set()
    assert names_in("   ") == set()
    # a function name is not a branch, but the same spelling as an argument is
    assert names_in("abs(x)") == {"x"}


def test_is_branch_name() -> None:
    assert is_branch_name("Jet_pt")
    assert not is_branch_name("Jet_pt[0]")
    assert not is_branch_name("a + b")
    assert not is_branch_name("sqrt")
    assert set(FUNCTIONS) >= {"count", "sum", "max", "min", "mean", "abs", "sqrt"}


def test_bare_branch_name_returns_the_column(cols: dict) -> None:
    np.testing.assert_array_equal(evaluate("a", cols), cols["a"])
