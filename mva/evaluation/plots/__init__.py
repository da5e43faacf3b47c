"""Every plot the tool makes: ROC curves, overtraining checks, inputs, correlations, regression.

Functions take numpy arrays, write ``stem.<fmt>`` for each format in ``formats`` (default PNG
and PDF) and return the written paths.  Each one closes its figure, also on errors, so a long
training session does not accumulate open figures.

Conventions: labels are 1 (signal) and 0 (background); weights may be ``None`` (unit weights)
or negative (Monte Carlo).  Histograms "normalised to unit area" divide by the summed weight of
the entries inside the histogram range; a class whose weight there is not positive cannot be
normalised and is left out with a warning.  The style is mplhep's CMS style without any
experiment label.  Legends sit in reserved head-room above the data or outside the axes.

The functions live in modules by concern and are all importable from here (plot jobs name them
as ``getattr(plots, name)``):

- :mod:`._common`: style, :func:`save`, figures, legends, curve thinning, input checks, colours
- :mod:`.classification`: ROC, background rejection, overtraining check, loss curves
- :mod:`.inputs`: input distributions, correlation matrices, :func:`weighted_correlation`
- :mod:`.probability`: cut efficiencies, P(S|y) and the class densities, reliability
- :mod:`.multiclass`: one-vs-rest ROC, confusion matrix, per-class scores and reliability
- :mod:`.regression`: prediction versus target, ratios, profiles, pulls, width calibration
- :mod:`.tuning`: the trials of a hyper-parameter search and the parameter importances

Every plot function saves through ``mva.evaluation.plots.save``, looked up when it is called.
"""

from __future__ import annotations

# _common first: it selects the Agg backend before anything imports pyplot.  Besides the names
# in __all__, the private helpers and constants stay importable from here, as before the split
# (hence the noqa).
from mva.evaluation.plots._common import (  # noqa: F401
    _MAX_POINTS,
    _RC,
    _RC_GRID,
    BACKGROUND,
    COLOURS,
    DEFAULT_FORMATS,
    REFERENCE,
    SIGNAL,
    Formats,
    _array,
    _figure,
    _fmt_p,
    _formats,
    _grid_margins,
    _headroom,
    _legend,
    _legend_above,
    _legend_fraction,
    _matrix,
    _response_label,
    _signal_mask,
    _thin,
    _unit_area,
    _weights,
    logger,
    save,
)
from mva.evaluation.plots.classification import (  # noqa: F401
    _scores_labels_weights,
    _sorted_curves,
    plot_loss,
    plot_overtraining,
    plot_rejection,
    plot_roc,
)
from mva.evaluation.plots.inputs import (  # noqa: F401
    ANNOTATE_MAX,
    _draw_correlation,
    _grid,
    _input_edges,
    plot_correlations,
    plot_inputs,
    weighted_correlation,
)
from mva.evaluation.plots.multiclass import (  # noqa: F401
    plot_all_class_scores,
    plot_class_scores,
    plot_confusion,
    plot_reliability_classes,
    plot_roc_ovr,
)
from mva.evaluation.plots.probability import (  # noqa: F401
    plot_cut_efficiencies,
    plot_probability,
    plot_reliability,
)
from mva.evaluation.plots.regression import (  # noqa: F401
    _deviation_width,
    _finite_pair,
    _safe_stat,
    binned_profile,
    plot_prediction_vs_true,
    plot_profiles,
    plot_pulls,
    plot_ratio,
    plot_width_calibration,
    sigma_eff,
    weighted_median,
)
from mva.evaluation.plots.tuning import plot_tuning  # noqa: F401

__all__ = [
    "save",
    "weighted_correlation",
    "plot_roc",
    "plot_rejection",
    "plot_overtraining",
    "plot_loss",
    "plot_inputs",
    "plot_correlations",
    "plot_cut_efficiencies",
    "plot_probability",
    "plot_reliability",
    "plot_prediction_vs_true",
    "plot_ratio",
    "plot_profiles",
    "plot_pulls",
    "plot_width_calibration",
    "plot_roc_ovr",
    "plot_confusion",
    "plot_class_scores",
    "plot_all_class_scores",
    "plot_reliability_classes",
    "plot_tuning",
]

