"""``mva report``: one self-contained HTML page that describes a trained run, or compares several.

The page is built only from what a run directory holds (``metrics.json``, ``plots/*.png``,
``models/manifest.json``, ``config.yaml`` and, to compare runs, ``output.root``), so it can be
re-created at any time without retraining.  It has no external reference of any kind: images are
base64 ``data:`` URIs, the style sheet is inline and there is no script, so it reads the same
offline, attached to a mail or archived next to the run.  The same directory always gives the same
bytes (no "generated at" stamp).

Modules by concern, all re-exported here:

- :mod:`._html`: escaping, number formatting, table and cell helpers, the style sheet, badges
- :mod:`.run_files`: :class:`RunFiles`, :func:`read_run`, :func:`run_labels`
- :mod:`.summary`: summary tables (classification, regression), notes, ranking, method details
- :mod:`.figures`: plot grouping, captions, embedded images
- :mod:`.comparison`: :func:`roc_from_output`, the comparison figure and table
- :mod:`.page`: :func:`build_report`, :func:`write_report`, provenance, atomic writing

Everything logs to the ``mva.report`` logger.
"""

from __future__ import annotations

# Besides the names in __all__, the private helpers and constants stay importable from here, as
# before the split (hence the noqa); the tests reach ``os`` as ``mva.report.os``.
import os  # noqa: F401

from mva.report._html import (  # noqa: F401
    _BADGE,
    _BEST,
    _CSS,
    _WIDE,
    _anchor,
    _argbest,
    _esc,
    _finite,
    _fmt,
    _fmt_p,
    _get,
    _method_cell,
    _num_cell,
    _table,
    _th,
)
from mva.report.comparison import (  # noqa: F401
    _comparison,
    _comparison_png,
    _thin,
    classification_comparison,
    multiclass_comparison,
    regression_comparison,
    roc_from_output,
)
from mva.report.figures import (  # noqa: F401
    _CAPTIONS,
    _METHOD_ORDER,
    _OVERVIEW_ORDER,
    _OVERVIEW_RE,
    _PNG_MAGIC,
    _caption,
    _figure,
    _figures,
    _group_plots,
    _img,
    _png_size,
    log,
)
from mva.report.page import (  # noqa: F401
    REPORT_NAME,
    _as_list,
    _provenance,
    _write_atomic,
    build_report,
    write_report,
)
from mva.report.run_files import RunFiles, _read_json, read_run, run_labels  # noqa: F401
from mva.report.summary import (  # noqa: F401
    _REG_COLUMNS,
    EFF_BKG_KEYS,
    KS_WARN,
    _compact,
    _method_details,
    _method_notes,
    _notes,
    _ranking,
    _regression_rows,
    classification_summary,
    multiclass_summary,
    regression_summary,
)

__all__ = ["write_report", "build_report", "read_run", "run_labels", "roc_from_output", "RunFiles",
           "REPORT_NAME"]
