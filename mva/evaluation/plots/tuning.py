"""Tuning plots: the score of every trial of a hyper-parameter search and the parameter
importances."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mva.evaluation.plots._common import (
    COLOURS,
    DEFAULT_FORMATS,
    Formats,
    _figure,
    _legend_above,
    _save,
)


def plot_tuning(
    name: str,
    searches: Mapping[str, Mapping[str, Any]],
    stem: str | Path,
    formats: Formats = DEFAULT_FORMATS,
) -> list[Path]:
    """Score versus trial of each search (``metrics.json``'s ``tuning``; several: the folds of
    a k-fold run), with the best score so far as a line and pruned trials at their last
    running mean (crosses); beside it the parameter importances of the first search."""
    first = next(iter(searches.values()))
    importances = dict(first.get("importances") or {})
    ncols = 2 if importances else 1
    with _figure(1, ncols, figsize=(7.5 * ncols, 6.0), squeeze=False) as (fig, axes):
        ax = axes[0, 0]
        maximise = first.get("direction") == "maximize"
        for k, (label, search) in enumerate(searches.items()):
            colour = COLOURS[k % len(COLOURS)]
            done = [(h["number"] + 1, h["value"]) for h in search.get("history", [])
                    if h.get("state") == "complete"]
            pruned = [(h["number"] + 1, float(np.mean(h["fold_scores"])))
                      for h in search.get("history", [])
                      if h.get("state") == "pruned" and h.get("fold_scores")]
            tag = f"{label}: " if len(searches) > 1 else ""
            if done:
                x, y = np.array(done, dtype=float).T
                ax.plot(x, y, "o", color=colour, ms=6, label=f"{tag}trials")
                best = np.maximum.accumulate(y) if maximise else np.minimum.accumulate(y)
                ax.step(x, best, where="post", color=colour, lw=2, label=f"{tag}best so far")
            if pruned:
                x, y = np.array(pruned, dtype=float).T
                ax.plot(x, y, "x", color=colour, ms=7, alpha=0.6, label=f"{tag}pruned")
        ax.set_xlabel("trial")
        ax.set_ylabel(f"{first.get('metric', 'score')} ({first.get('folds', '?')}-fold CV)")
        _legend_above(ax, ncols=3, title=name or None)
        if importances:
            ax2 = axes[0, 1]
            names: Sequence[str] = list(importances)[::-1]
            ax2.barh(range(len(names)), [importances[n] for n in names], color=COLOURS[0])
            ax2.set_yticks(range(len(names)), names)
            ax2.set_xlabel("importance")
            ax2.set_xlim(0, 1.05 * max(max(importances.values()), 1e-12))
        fig.tight_layout()
        return _save(fig, stem, formats)
