"""Fixtures of the plot tests: no figure left open, and the figures handed to ``plots.save``."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

from mva.evaluation import plots


@pytest.fixture(autouse=True)
def no_leaked_figures():
    plt.close("all")
    yield
    leaked = plt.get_fignums()
    plt.close("all")
    assert leaked == [], "plot function left figures open"


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """Figures passed to ``plots.save``; a closed figure keeps its artists for inspection."""
    figures: list[Figure] = []
    real_save = plots.save

    def spy(fig, stem, formats=plots.DEFAULT_FORMATS, **kwargs):
        figures.append(fig)
        return real_save(fig, stem, formats, **kwargs)

    monkeypatch.setattr(plots, "save", spy)
    return figures
