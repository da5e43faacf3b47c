"""HTML building blocks of the report: escaping, number formatting, table cells, the style sheet."""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

_BEST = ' class="best"'
_WIDE = ' class="wide"'
_BADGE = '<span class="badge">best</span>'

_CSS = """
body{margin:0 auto;max-width:1180px;padding:20px 28px 60px;color:#1d2126;background:#fff;
font:15px/1.5 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
h1{font-size:26px;margin:8px 0 2px;font-weight:600}
h2{font-size:20px;margin:36px 0 10px;padding-bottom:4px;border-bottom:1px solid #d5d9de;
font-weight:600}
h3{font-size:16px;margin:24px 0 6px;font-weight:600}
p{margin:6px 0}
a{color:#1f4e8c;text-decoration:none}
a:hover{text-decoration:underline}
code,pre,.num{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace}
code{font-size:13px}
.meta{color:#5b636b;margin:0 0 12px}
nav.toc{background:#f5f7f9;border:1px solid #e1e5e9;border-radius:4px;padding:8px 18px;
display:inline-block;font-size:14px}
nav.toc h2{font-size:14px;margin:4px 0;border:0;padding:0}
nav.toc ol{margin:2px 0 4px;padding-left:20px}
nav.toc ol ol{padding-left:18px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:13px;margin:8px 0 10px}
th,td{padding:4px 10px;border-bottom:1px solid #e6e9ec;vertical-align:top}
th{text-align:left;font-weight:600;background:#f5f7f9;border-bottom:2px solid #c9ced4;
white-space:nowrap}
th.num,td.num{text-align:right;white-space:nowrap}
thead tr.group th{background:#fff;border-bottom:1px solid #c9ced4;text-align:center;
color:#5b636b;font-weight:500}
tbody tr:nth-child(even) td{background:#fafbfc}
td .tr{display:block;color:#7a828a;font-size:11px;line-height:1.25}
td.name{white-space:nowrap}
tr.best td{background:#e9f5ec}
tr.best td:first-child{box-shadow:inset 3px 0 0 #2e7d32}
.badge{display:inline-block;margin-left:6px;padding:0 5px;border-radius:3px;font-size:11px;
background:#2e7d32;color:#fff;font-family:-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
td.warn{background:#fdecea;color:#a8231b;font-weight:600}
.note{color:#5b636b;font-size:13px}
ul.notes{margin:4px 0;padding-left:20px;font-size:14px}
div.warnings{background:#fdecea;border:1px solid #f3b8b1;border-radius:4px;padding:6px 12px;
margin:8px 0;font-size:14px;color:#7d1a13}
div.warnings p{margin:3px 0}
pre{background:#f5f7f9;border:1px solid #e1e5e9;border-radius:4px;padding:10px 12px;
font-size:13px;overflow-x:auto;white-space:pre}
figure{display:inline-block;vertical-align:top;width:48%;margin:8px 1% 14px 0}
figure.wide{width:98%}
figure img{max-width:100%;height:auto;border:1px solid #eef0f2}
figcaption{font-size:13px;color:#3c434a;margin-top:2px}
figcaption code{color:#7a828a;font-size:12px}
dl.kv{display:grid;grid-template-columns:max-content auto;gap:2px 14px;font-size:14px;margin:6px 0}
dl.kv dt{color:#5b636b}
section#methods h3{border-top:1px solid #e6e9ec;padding-top:14px;margin-top:28px}
dl.kv dd{margin:0}
@media print{figure{break-inside:avoid}h2,h3{break-after:avoid}}
"""


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _finite(x: Any) -> float | None:
    """``x`` as a float, or None when it is missing, not a number or not finite."""
    if isinstance(x, bool) or not isinstance(x, (int, float, np.floating, np.integer)):
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def _fmt(x: Any, spec: str) -> str:
    v = _finite(x)
    return "–" if v is None else format(v, spec)


def _fmt_p(x: Any) -> str:
    v = _finite(x)
    if v is None:
        return "–"
    return f"{v:.3f}" if v >= 1e-3 else f"{v:.1e}"


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    return d


def _num_cell(value: Any, spec: str, train: Any = None, *, show_train: bool = False,
              cls: str = "", title: str = "", style: str = "", fmt: Any = None,
              err: Any = None) -> str:
    """A right-aligned monospace cell; ``data-v`` keeps the exact value for tools and tests,
    ``data-err`` its statistical uncertainty (``err``, shown as ``value ± err``)."""
    fmt = fmt or (lambda v: _fmt(v, spec))
    v = _finite(value)
    e = _finite(err) if v is not None else None
    attrs = f' data-v="{_esc(repr(v))}"' if v is not None else ""
    if e is not None:
        attrs += f' data-err="{_esc(repr(e))}"'
    if title:
        attrs += f' title="{_esc(title)}"'
    if style:
        attrs += f' style="{_esc(style)}"'
    if e is not None and spec:
        from mva.evaluation.uncertainty import format_pm

        text = _esc(format_pm(v, e, spec))
    else:
        text = _esc(fmt(value)) + (f" ± {_esc(fmt(e))}" if e is not None else "")
    if show_train:
        text += f'<span class="tr">({_esc(fmt(train))})</span>'
    return f'<td class="num{" " + cls if cls else ""}"{attrs}>{text}</td>'


def _table(head: str, rows: Sequence[str], table_id: str = "") -> str:
    ident = f' id="{_esc(table_id)}"' if table_id else ""
    body = "\n".join(rows)
    return (f'<div class="scroll"><table{ident}>\n<thead>{head}</thead>\n<tbody>\n{body}\n'
            "</tbody></table></div>")


def _th(text: str, num: bool = True, title: str = "", span: int = 1) -> str:
    attrs = ' class="num"' if num else ""
    if title:
        attrs += f' title="{_esc(title)}"'
    if span > 1:
        attrs += f' colspan="{span}"'
    return f"<th{attrs}>{_esc(text)}</th>"


def _method_cell(name: str, best: bool) -> str:
    badge = _BADGE if best else ""
    return f'<td class="name"><a href="#{_esc(_anchor("m", name))}">{_esc(name)}</a>{badge}</td>'


def _anchor(prefix: str, name: str) -> str:
    return f"{prefix}-{re.sub(r'[^A-Za-z0-9_-]+', '-', name)}"


def _argbest(values: Mapping[Any, Any], largest: bool) -> Any:
    """Key of the largest (smallest) finite value; None when there is none."""
    finite = {k: v for k, v in ((k, _finite(v)) for k, v in values.items()) if v is not None}
    if not finite:
        return None
    pick = max if largest else min
    return pick(finite, key=lambda k: finite[k])
