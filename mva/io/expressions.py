"""Feature, weight, cut and target expressions over branches (flat or jagged).

An expression is a small, safe subset of Python (parsed with :mod:`ast`, never ``eval``) with the
ROOT spellings ``&&``, ``||`` and ``!`` accepted too::

    var1 + var2            abs(eta)             sqrt(px**2 + py**2)
    Jet_pt[0]              # first element of a jagged branch; events without one get `default`
    count(Jet_pt)          sum(Jet_pt)   max(Jet_pt)   min(Jet_pt)   mean(Jet_pt)
    max(a, b)              # element-wise with two arguments
    nMuon >= 2 && abs(Muon_eta[0]) < 2.4

Results must be one number per event; a jagged result is an error that suggests a reduction.

Limits: an expression has at most :data:`MAX_LENGTH` (2000) characters and nests at most
:data:`MAX_DEPTH` (300) levels (operators, calls, parentheses); longer or deeper ones are refused
with an :class:`ExpressionError` (Python's parser and the evaluator recurse, and would fail with a
``RecursionError`` or ``MemoryError`` that names nothing).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = ["ExpressionError", "names_in", "evaluate", "is_branch_name", "FUNCTIONS",
           "MAX_LENGTH", "MAX_DEPTH"]

#: the longest expression accepted, in characters
MAX_LENGTH = 2000
#: the deepest nesting accepted (levels of the syntax tree: operators, calls, subscripts)
MAX_DEPTH = 300


class ExpressionError(ValueError):
    """The expression cannot be parsed or evaluated; the message says why."""


_ELEMENTWISE: dict[str, Callable[..., Any]] = {
    "abs": np.abs, "fabs": np.abs, "sqrt": np.sqrt, "exp": np.exp, "log": np.log,
    "log10": np.log10, "log2": np.log2, "log1p": np.log1p, "sin": np.sin, "cos": np.cos,
    "tan": np.tan, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan,
    "arcsin": np.arcsin, "arccos": np.arccos, "arctan": np.arctan, "atan2": np.arctan2,
    "arctan2": np.arctan2, "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh, "hypot": np.hypot,
    "floor": np.floor, "ceil": np.ceil, "pow": np.power, "where": np.where,
    "minimum": np.minimum, "maximum": np.maximum, "sign": np.sign,
}
_REDUCTIONS = ("count", "num", "sum", "max", "min", "mean", "any", "all")
FUNCTIONS = tuple(sorted((*_ELEMENTWISE, *_REDUCTIONS)))

# `!` becomes `~` (handled as logical not), not `not`: like C's `!` it binds tighter than any
# binary operator, so `!a < 1` means `(!a) < 1` as in TTree::Draw, not `not (a < 1)`
_ROOT_OPS = [(re.compile(r"&&"), " and "), (re.compile(r"\|\|"), " or "),
             (re.compile(r"!(?!=)"), " ~")]


def _shown(expr: str) -> str:
    """The expression as error messages quote it (a long one shortened)."""
    return repr(expr) if len(expr) <= 80 else f"{expr[:60]!r}... ({len(expr)} characters)"


def _depth(tree: ast.AST, limit: int) -> int:
    """The depth of the syntax tree, counted without recursion (stops above ``limit``)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            break
        stack.extend((child, d + 1) for child in ast.iter_child_nodes(node)
                     if not isinstance(child, ast.expr_context | ast.operator | ast.unaryop
                                       | ast.boolop | ast.cmpop))
    return deepest


@lru_cache(maxsize=512)
def _parse(expr: str) -> ast.Expression:
    if len(expr) > MAX_LENGTH:
        raise ExpressionError(f"expression {_shown(expr)}: too long (at most {MAX_LENGTH} "
                              "characters); define a shorter expression, e.g. precompute a "
                              "branch")
    text = expr.strip()
    for pattern, repl in _ROOT_OPS:
        text = pattern.sub(repl, text)
    text = text.strip()
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"cannot parse expression {_shown(expr)}: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise ExpressionError(f"expression {_shown(expr)}: nested too deeply (at most "
                              f"{MAX_DEPTH} levels)") from None
    # the Expression node and its body count as one level
    if _depth(tree, MAX_DEPTH + 1) - 1 > MAX_DEPTH:
        raise ExpressionError(f"expression {_shown(expr)}: nested too deeply (at most "
                              f"{MAX_DEPTH} levels of operators, calls and subscripts)")
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise ExpressionError(
                f"expression {expr!r}: {type(node).__name__} is not allowed"
            )
        if isinstance(node, ast.Compare) and any(
            isinstance(x, ast.BinOp) and isinstance(x.op, ast.BitAnd | ast.BitOr)
            for x in (node.left, *node.comparators)
        ):
            # in Python `a > 1 & b < 2` is `a > (1 & b) < 2`; in C/ROOT it is `(a > 1) & (b < 2)`
            raise ExpressionError(
                f"expression {expr!r}: '&' and '|' bind tighter than comparisons; write "
                "'&&' and '||' (or put each comparison in parentheses)"
            )
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                name = getattr(node.func, "id", ast.unparse(node.func))
                raise ExpressionError(
                    f"expression {expr!r}: unknown function {name!r} "
                    f"(known: {', '.join(FUNCTIONS)})"
                )
    return tree


_ALLOWED_NODES = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Call, ast.Name,
    ast.Load, ast.Constant, ast.Subscript, ast.IfExp, ast.keyword,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.USub, ast.UAdd,
    ast.Not, ast.Invert, ast.And, ast.Or, ast.BitAnd, ast.BitOr, ast.Eq, ast.NotEq, ast.Lt,
    ast.LtE, ast.Gt, ast.GtE,
)


def is_branch_name(expr: str) -> bool:
    """True when the expression is a bare branch name (the fast path: no evaluation needed)."""
    return expr.isidentifier() and expr not in FUNCTIONS


def names_in(expr: str) -> set[str]:
    """Branch names that an expression reads."""
    if not expr.strip():
        return set()
    tree = _parse(expr)
    funcs = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return {
        n.id for n in ast.walk(tree)
        if isinstance(n, ast.Name) and id(n) not in funcs and n.id not in ("True", "False")
    }


def _is_jagged(x: Any) -> bool:
    import awkward as ak

    return isinstance(x, ak.Array) and x.ndim > 1


def evaluate(expr: str, columns: Mapping[str, Any], default: float = -999.0) -> np.ndarray:
    """Evaluate an expression on columns (numpy or awkward arrays) to one value per event.

    Parameters
    ----------
    expr : str
        The expression.
    columns : mapping
        Branch name to array (flat numpy, or awkward for jagged branches).
    default : float
        Value of ``x[i]`` and of ``max``/``min``/``mean`` for events where the jagged branch has
        too few elements.
    """
    if is_branch_name(expr):
        if expr not in columns:
            raise ExpressionError(f"expression {expr!r}: unknown name {expr!r}")
        value = columns[expr]
    else:
        value = _Evaluator(expr, columns, default).visit(_parse(expr).body)
    if _is_jagged(value):
        x = expr if expr.isidentifier() else f"({expr})"
        raise ExpressionError(
            f"expression {expr!r} is jagged (several values per event); reduce it, e.g. "
            f"{x}[0], max({x}), sum({x}) or count({x})"
        )
    import awkward as ak

    if isinstance(value, ak.Array):
        value = ak.to_numpy(ak.fill_none(value, default))
    value = np.asarray(value)
    if value.ndim == 0:
        n = len(next(iter(columns.values()))) if columns else 1
        value = np.full(n, value)
    return value


class _Evaluator(ast.NodeVisitor):
    def __init__(self, expr: str, columns: Mapping[str, Any], default: float):
        self.expr, self.columns, self.default = expr, columns, default

    def fail(self, msg: str) -> ExpressionError:
        return ExpressionError(f"expression {self.expr!r}: {msg}")

    def visit_Constant(self, node: ast.Constant) -> Any:
        if not isinstance(node.value, int | float | bool):
            raise self.fail(f"constant {node.value!r} is not a number")
        return node.value

    def visit_Name(self, node: ast.Name) -> Any:
        if node.id in ("True", "False"):
            return node.id == "True"
        if node.id not in self.columns:
            raise self.fail(f"unknown name {node.id!r}")
        return _signed(self.columns[node.id])

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        a, b = self.visit(node.left), self.visit(node.right)
        op = type(node.op)
        if op is ast.BitAnd:
            return np.logical_and(a, b)
        if op is ast.BitOr:
            return np.logical_or(a, b)
        ops = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply,
               ast.Div: np.true_divide, ast.FloorDiv: np.floor_divide, ast.Mod: np.mod,
               ast.Pow: np.power}
        with np.errstate(divide="ignore", invalid="ignore"):
            return ops[op](_float(a) if op in (ast.Div, ast.Pow) else a, b)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        v = self.visit(node.operand)
        if isinstance(node.op, ast.USub):
            return np.negative(v)
        if isinstance(node.op, ast.UAdd):
            return v
        return np.logical_not(v)

    def visit_BoolOp(self, node: ast.BoolOp) -> Any:
        fn = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        out = self.visit(node.values[0])
        for v in node.values[1:]:
            out = fn(out, self.visit(v))
        return out

    def visit_Compare(self, node: ast.Compare) -> Any:
        ops = {ast.Eq: np.equal, ast.NotEq: np.not_equal, ast.Lt: np.less, ast.LtE: np.less_equal,
               ast.Gt: np.greater, ast.GtE: np.greater_equal}
        left, out = self.visit(node.left), None
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = self.visit(comp)
            r = ops[type(op)](left, right)
            out = r if out is None else np.logical_and(out, r)
            left = right
        return out

    def visit_IfExp(self, node: ast.IfExp) -> Any:
        return np.where(self.visit(node.test), self.visit(node.body), self.visit(node.orelse))

    def visit_Subscript(self, node: ast.Subscript) -> Any:
        import awkward as ak

        arr = self.visit(node.value)
        idx = node.slice
        if (not (isinstance(idx, ast.Constant) and isinstance(idx.value, int))
                or isinstance(idx.value, bool) or idx.value < 0):
            raise self.fail("only constant non-negative indices are supported, e.g. Jet_pt[0]")
        if not _is_jagged(arr):
            raise self.fail(f"{ast.unparse(node.value)} is not jagged and cannot be indexed")
        i = idx.value
        return ak.fill_none(ak.pad_none(arr, i + 1, axis=1)[:, i], self.default)

    def visit_Call(self, node: ast.Call) -> Any:
        import awkward as ak

        name = node.func.id  # type: ignore[attr-defined]
        args = [self.visit(a) for a in node.args]
        if node.keywords:
            raise self.fail("keyword arguments are not supported")
        if name in ("max", "min") and len(args) == 2:
            return (np.maximum if name == "max" else np.minimum)(*args)
        if name in _REDUCTIONS:
            if len(args) != 1:
                raise self.fail(f"{name}() takes one jagged argument")
            (x,) = args
            if not _is_jagged(x):
                raise self.fail(f"{name}() needs a jagged branch, got a flat one")
            if name in ("count", "num"):
                return ak.num(x, axis=1)
            if name in ("sum", "any", "all"):
                return getattr(ak, name)(x, axis=1)
            if name == "mean":
                # ak.mean gives NaN, not None, for an empty list
                n = ak.to_numpy(ak.count(x, axis=1))
                total = ak.to_numpy(ak.sum(ak.values_astype(x, np.float64), axis=1))
                return np.where(n > 0, total / np.maximum(n, 1), self.default)
            red = {"max": ak.max, "min": ak.min}[name]
            return ak.fill_none(red(x, axis=1), self.default)
        with np.errstate(divide="ignore", invalid="ignore"):
            return _ELEMENTWISE[name](*args)


def _leaf_kind(x: Any) -> str:
    """numpy dtype kind of the numbers in an array (awkward leaves included), '' if unknown."""
    import awkward as ak

    if isinstance(x, ak.Array):
        dtype = getattr(ak.flatten(x, axis=None).layout, "dtype", None)
        return dtype.kind if dtype is not None else ""
    if isinstance(x, np.ndarray | np.generic):
        return x.dtype.kind
    if isinstance(x, bool):
        return "b"
    return "i" if isinstance(x, int) else ""


def _astype(x: Any, dtype: type) -> Any:
    import awkward as ak

    if isinstance(x, ak.Array):
        return ak.values_astype(x, dtype)
    if isinstance(x, np.ndarray | np.generic):
        return x.astype(dtype)
    return dtype(x)


def _signed(x: Any) -> Any:
    """Unsigned and bool columns as int64, so that `nMuon - 2` can go negative (as in ROOT,
    where TTreeFormula computes in double) and `a + b` of two flags counts instead of or-ing."""
    return _astype(x, np.int64) if _leaf_kind(x) in ("u", "b") else x


def _float(a: Any) -> Any:
    """Integers to float64 before `/` and `**` (numpy refuses integers to negative powers)."""
    return _astype(a, np.float64) if _leaf_kind(a) in ("i", "u", "b") else a
