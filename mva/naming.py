"""Names of output branches and plot files, in one place.

Training, ``mva apply``, the plots and the report all take their names from here, so that a name
is produced once and never parsed back from a file name: the plotter records which method and
plot kind every file belongs to (:func:`plot_record`), and the report reads that record.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = ["branch_name", "unique_names", "target_branches", "class_branch", "plot_stem",
           "plot_record", "PLOT_INDEX"]

#: the file in ``RUN_DIR/plots`` that lists every plot with its method and kind
PLOT_INDEX = "index.json"


def branch_name(expr: str) -> str:
    """A ROOT-friendly branch name for an expression (``abs(eta)`` -> ``abs_eta``)."""
    return expr if expr.isidentifier() else (re.sub(r"\W+", "_", expr).strip("_") or "expr")


def unique_names(exprs: list[str]) -> list[str]:
    """Branch names for expressions, made unique by a counter where two would clash."""
    out: list[str] = []
    for e in exprs:
        name, i = branch_name(e), 1
        while name in out:
            name, i = f"{branch_name(e)}_{i}", i + 1
        out.append(name)
    return out


def target_branches(target_names: list[str]) -> list[str]:
    """``target`` for one regression target, ``target_<j>`` for several."""
    return ["target"] if len(target_names) == 1 else [f"target_{j}" for j in range(len(target_names))]


def class_branch(method: str, class_name: str, suffix: str = "") -> str:
    """``<method>_<class>`` (and ``_<suffix>``): a method's score for one class."""
    return "_".join(p for p in (method, branch_name(class_name), suffix) if p)


def plot_stem(outdir: Path, kind: str, method: str | None = None, part: str | None = None
              ) -> Path:
    """The file stem of one plot (no extension): ``<method>[_<part>]_<kind>`` for a method's
    plot, ``<kind>[_<part>]`` for one of the whole run (``part``: a target number or a class)."""
    parts = (method, part, kind) if method else (kind, part)
    name = "_".join(branch_name(p) for p in parts if p)
    return outdir / name


def plot_record(stem: Path, kind: str, method: str | None = None, part: str | None = None,
                part_of: str | None = None) -> dict[str, Any]:
    """What the report needs to know of a plot file: its method (or None), kind, and the
    part of the run it shows (``part_of`` ``"target"`` or ``"class"``, ``part`` which one)."""
    return {"file": f"{stem.name}.png", "method": method, "kind": kind, "part": part,
            "part_of": part_of if part is not None else None}
