"""Cross-validation summaries: the spread of every figure of merit across folds."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["cv_summary"]


def cv_summary(per_fold: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation across folds of every number in the per-fold figures.

    ``per_fold`` holds one nested mapping of figures per fold (as metrics.json's ``test``);
    the result has the same nesting with ``{"mean", "std", "n"}`` at every numeric leaf.
    ``std`` is the sample standard deviation (ddof 1) of the folds' values: the spread of the
    figure between models trained on different folds. Non-finite values (a figure a fold
    could not give) are left out and counted in ``n``; lists (confusion matrices, curves) are
    not summarised.
    """
    if not per_fold:
        return {}
    out: dict[str, Any] = {}
    for key, first in per_fold[0].items():
        values = [f.get(key) for f in per_fold]
        if isinstance(first, Mapping):
            out[key] = cv_summary([v for v in values if isinstance(v, Mapping)])
        elif isinstance(first, int | float) and not isinstance(first, bool):
            x = np.array([float(v) for v in values if isinstance(v, int | float)
                          and not isinstance(v, bool) and math.isfinite(v)])
            out[key] = {"mean": float(x.mean()) if x.size else None,
                        "std": float(x.std(ddof=1)) if x.size > 1 else None,
                        "n": int(x.size)}
    return out
