"""``mva report``: one self-contained HTML page that describes a trained run, or compares several.

The page is built only from what a run directory holds (``metrics.json``, ``plots/*.png``,
``models/manifest.json``, ``config.yaml`` and, to compare runs, ``output.root``), so it can be
re-created at any time without retraining.  It has no external reference of any kind: images are
base64 ``data:`` URIs, the style sheet is inline and there is no script, so it reads the same
offline, attached to a mail or archived next to the run.  The same directory always gives the same
bytes (no "generated at" stamp).
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import json
import logging
import math
import os
import re
import shlex
import struct
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mva.errors import InputError

__all__ = ["write_report", "build_report", "read_run", "run_labels", "roc_from_output", "RunFiles",
           "REPORT_NAME"]

log = logging.getLogger(__name__)

REPORT_NAME = "report.html"
EFF_BKG_KEYS = ("0.01", "0.1", "0.3")
# a KS p-value below this flags a train/test difference (TMVA's overtraining check)
KS_WARN = 0.05
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_BEST = ' class="best"'
_WIDE = ' class="wide"'
_BADGE = '<span class="badge">best</span>'

# plots that describe the whole run, in reading order; anything else not owned by a method follows
_OVERVIEW_ORDER = ("roc", "rejection", "inputs", "correlations", "ratio")
_OVERVIEW_RE = re.compile(r"^(roc|rejection|inputs|correlations|ratio)(_\d+)?$")
# per-method plots, in reading order, with their captions
_CAPTIONS = {
    "roc": "ROC curves: background rejection versus signal efficiency (test sample)",
    "rejection": "Background rejection 1/εB versus signal efficiency (test sample)",
    "inputs": "Input variables (training sample)",
    "correlations": "Linear correlation coefficients of the inputs (training sample)",
    "ratio": "Prediction / target (test sample)",
    "overtraining": "Overtraining check: response on the training and test samples",
    "cut_efficiencies": "Cut efficiencies and significance versus cut; optimal cut marked",
    "probability": "Signal probability P(S|y) and the class densities",
    "reliability": "Reliability of P(S|y): observed signal fraction versus predicted",
    "loss": "Training and validation loss",
    "pred_vs_true": "Prediction versus true target (test sample)",
    "profiles": "Residual profiles versus the inputs (test sample)",
    "pulls": "Pulls: residual / predicted width (test sample)",
    "width_calibration": "Calibration of the predicted width (test sample)",
}
_METHOD_ORDER = ("overtraining", "cut_efficiencies", "probability", "reliability", "loss",
                 "pred_vs_true", "profiles", "pulls", "width_calibration")

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


# --------------------------------------------------------------------------- reading a run


@dataclass
class RunFiles:
    """What the report reads from one run directory."""

    path: Path
    label: str
    metrics: dict[str, Any]
    manifest: dict[str, Any] = field(default_factory=dict)
    config_text: str | None = None

    @property
    def task(self) -> str:
        return str(self.metrics.get("task") or self.manifest.get("task") or "classification")

    @property
    def methods(self) -> dict[str, dict[str, Any]]:
        return self.metrics.get("methods") or {}

    @property
    def plots(self) -> list[Path]:
        folder = self.path / "plots"
        return sorted(p for p in folder.glob("*.png") if p.is_file()) if folder.is_dir() else []


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data


def read_run(run_dir: str | Path, label: str | None = None) -> RunFiles:
    """Read ``metrics.json`` (required), the manifest and the config of a run directory."""
    path = Path(run_dir)
    metrics_path = path / "metrics.json"
    if not metrics_path.is_file():
        raise InputError(f"{path}: not a complete run directory (no metrics.json)")
    metrics = _read_json(metrics_path)
    manifest_path = path / "models" / "manifest.json"
    manifest = _read_json(manifest_path) if manifest_path.is_file() else {}
    config_path = path / "config.yaml"
    config_text = config_path.read_text(encoding="utf-8") if config_path.is_file() else None
    if config_text is None and manifest.get("config") is not None:
        config_text = yaml.safe_dump(manifest["config"], sort_keys=False)
    return RunFiles(path, label or path.resolve().name, metrics, manifest, config_text)


def run_labels(paths: Sequence[Path]) -> list[str]:
    """Directory names; where two runs share a name, enough parent folders to tell them apart."""
    parts = [Path(os.path.abspath(p)).parts for p in paths]
    depth = [1] * len(parts)
    while True:
        labels = ["/".join(p[-d:]) for p, d in zip(parts, depth, strict=True)]
        clash = [i for i, lab in enumerate(labels) if labels.count(lab) > 1]
        grow = [i for i in clash if depth[i] < len(parts[i])]
        if not grow:
            return labels
        for i in grow:
            depth[i] += 1


# --------------------------------------------------------------------------- formatting


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
              cls: str = "", title: str = "", style: str = "", fmt: Any = None) -> str:
    """A right-aligned monospace cell; ``data-v`` keeps the exact value for tools and tests."""
    fmt = fmt or (lambda v: _fmt(v, spec))
    v = _finite(value)
    attrs = f' data-v="{_esc(repr(v))}"' if v is not None else ""
    if title:
        attrs += f' title="{_esc(title)}"'
    if style:
        attrs += f' style="{_esc(style)}"'
    text = _esc(fmt(value))
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


# --------------------------------------------------------------------------- summary tables


def _classification_summary(run: RunFiles) -> str:
    methods = run.methods
    best = _argbest({n: _get(m, "test", "roc_auc") for n, m in methods.items()}, largest=True)
    group = ('<tr class="group"><th></th><th></th><th></th>'
             '<th colspan="3">εS at εB = 0.01 / 0.1 / 0.3</th><th></th>'
             '<th colspan="2">KS p-value</th><th colspan="4">working point</th>'
             "<th></th><th></th></tr>")
    head = group + "<tr>" + "".join([
        _th("method", num=False), _th("type", num=False),
        _th("AUC", title="area under the ROC curve, test (train)"),
        *(_th(f"εB={k}", title=f"signal efficiency at background efficiency {k}, test (train)")
          for k in EFF_BKG_KEYS),
        _th("separation", title="<S²> of the response, test (train)"),
        _th("signal", title="Kolmogorov-Smirnov p-value train vs test, signal"),
        _th("background", title="Kolmogorov-Smirnov p-value train vs test, background"),
        _th("cut", title="response cut (select y ≥ cut) that maximises the significance"),
        _th("Z", title="significance S/√(S+B) at the cut, expected yields"),
        _th("εS"), _th("εB"),
        _th("ECE", title="expected calibration error of P(S|y) on the test sample"),
        _th("fit s", title="training time in seconds"),
    ]) + "</tr>"
    rows = []
    for name, m in methods.items():
        test, train = m.get("test") or {}, m.get("train") or {}
        ks = m.get("overtraining") or {}
        wp = m.get("working_point") or {}
        cells = [_method_cell(name, name == best),
                 f"<td>{_esc(_get(run.manifest, 'methods', name, 'type') or '')}</td>",
                 _num_cell(test.get("roc_auc"), ".4f", train.get("roc_auc"), show_train=True)]
        for k in EFF_BKG_KEYS:
            cells.append(_num_cell(_get(test, "eff_sig_at_bkg", k), ".3f",
                                   _get(train, "eff_sig_at_bkg", k), show_train=True))
        cells.append(_num_cell(test.get("separation"), ".3f", train.get("separation"),
                               show_train=True))
        for cls_name in ("signal", "background"):
            p = ks.get(f"ks_pvalue_{cls_name}")
            pv = _finite(p)
            warn = pv is not None and pv < KS_WARN
            cells.append(_num_cell(
                p, "", fmt=_fmt_p, cls="warn" if warn else "",
                title=f"p < {KS_WARN}: train and test responses differ (overtraining?)"
                if warn else ""))
        cells += [_num_cell(wp.get("cut"), "#.4g"), _num_cell(wp.get("significance"), ".2f"),
                  _num_cell(wp.get("eff_sig"), ".3f"), _num_cell(wp.get("eff_bkg"), ".3f"),
                  _num_cell(_get(m, "calibration", "ece"), ".4f"),
                  _num_cell(m.get("fit_seconds"), ".1f")]
        rows.append(f'<tr{_BEST if name == best else ""} data-method="{_esc(name)}">'
                    + "".join(cells) + "</tr>")
    fractions = {_finite(m.get("signal_fraction")) for m in methods.values()} - {None}
    f_text = (f" P(S|y) uses the signal fraction {_fmt(next(iter(fractions)), '.4g')}."
              if len(fractions) == 1 else "")
    note = ("<p class=\"note\">Test sample, training sample in brackets. Best method (highest test "
            f"AUC) highlighted. KS p-values below {KS_WARN} are marked as an overtraining warning. "
            "The working point is the cut that maximises S/√(S+B) for the expected yields."
            f"{_esc(f_text)}</p>")
    return _table(head, rows, "summary") + note


def _regression_rows(metrics: Mapping[str, Any]) -> list[tuple[str, str | None, dict, dict]]:
    """(method, target or None, test, train); a multi-target run has one dict per target."""
    out = []
    for name, m in metrics.items():
        test, train = m.get("test") or {}, m.get("train") or {}
        if test and all(isinstance(v, Mapping) for v in test.values()):
            for target, t in test.items():
                out.append((name, str(target), dict(t), dict(train.get(target) or {})))
        else:
            out.append((name, None, dict(test), dict(train)))
    return out


_REG_COLUMNS = (
    ("bias", "#.4g", "weighted mean of prediction − target"),
    ("rms", "#.4g", "standard deviation of prediction − target"),
    ("rms_trunc", "#.4g", "standard deviation of the residuals within 2 rms of the bias"),
    ("mae", "#.4g", "mean absolute error"),
    ("sigma_eff", "#.4g", "half-width of the narrowest interval with 68.3 % of the residuals, "
                         "test (train)"),
    ("median", ".4f", "median of the prediction / target ratio"),
    ("pull_sigma_eff", ".3f", "sigma_eff of the pulls (1 for a calibrated width)"),
    ("coverage_68", ".3f", "fraction of targets inside prediction ± width (0.683 if calibrated)"),
)


def _regression_summary(run: RunFiles) -> str:
    rows_in = _regression_rows(run.methods)
    multi = any(t is not None for _, t, _, _ in rows_in)
    best: dict[str | None, str | None] = {}
    for target in {t for _, t, _, _ in rows_in}:
        best[target] = _argbest({n: te.get("sigma_eff") for n, t, te, _ in rows_in
                                 if t == target}, largest=False)
    head = "<tr>" + _th("method", num=False) + _th("type", num=False)
    if multi:
        head += _th("target", num=False)
    head += "".join(_th(c, title=t) for c, _, t in _REG_COLUMNS) + _th("fit s") + "</tr>"
    rows = []
    for name, target, test, train in rows_in:
        is_best = best.get(target) == name
        cells = [_method_cell(name, is_best),
                 f"<td>{_esc(_get(run.manifest, 'methods', name, 'type') or '')}</td>"]
        if multi:
            cells.append(f"<td>{_esc(target or '')}</td>")
        for col, spec, _ in _REG_COLUMNS:
            cells.append(_num_cell(test.get(col), spec, train.get(col),
                                   show_train=col == "sigma_eff"))
        cells.append(_num_cell(_get(run.methods, name, "fit_seconds"), ".1f"))
        target_attr = f' data-target="{_esc(target)}"' if target is not None else ""
        rows.append(f'<tr{_BEST if is_best else ""} data-method="{_esc(name)}"'
                    f"{target_attr}>" + "".join(cells) + "</tr>")
    note = ("<p class=\"note\">Test sample (sigma_eff: training sample in brackets). Best method "
            "(smallest test sigma_eff) highlighted. – : not available for this method.</p>")
    return _table(head, rows, "summary") + note


def _notes(run: RunFiles) -> str:
    items = []
    for name, m in run.methods.items():
        for note in _method_notes(run, name, m):
            items.append(f"<li><strong>{_esc(name)}</strong>: {_esc(note)}</li>")
    return f'<ul class="notes">{"".join(items)}</ul>' if items else ""


def _method_notes(run: RunFiles, name: str, m: Mapping[str, Any]) -> list[str]:
    notes: list[str] = []
    for source in (m.get("notes"), _get(run.manifest, "methods", name, "notes")):
        for note in source or []:
            if str(note) not in notes:
                notes.append(str(note))
    return notes


# --------------------------------------------------------------------------- variable ranking


def _ranking(run: RunFiles) -> str | None:
    separation = _get(run.metrics, "variables", "separation") or {}
    drops = {n: _get(m, "importance", "permutation_auc_drop") for n, m in run.methods.items()}
    drops = {n: d for n, d in drops.items() if isinstance(d, Mapping) and d}
    gains = {n: _get(m, "importance", "gain") for n, m in run.methods.items()}
    gains = {n: g for n, g in gains.items() if isinstance(g, Mapping) and g}
    if not (separation or drops or gains):
        return None
    names: list[str] = []
    for source in (run.manifest.get("features") or [], separation, *drops.values(),
                   *gains.values()):
        for v in source:
            if str(v) not in names:
                names.append(str(v))

    # by decreasing separation; variables without one keep their order after the others
    def key(i: int) -> tuple[float, int]:
        v = _finite(separation.get(names[i]))
        return (-v if v is not None else math.inf), i

    order = sorted(range(len(names)), key=key)
    top = max((_finite(v) or 0.0 for v in separation.values()), default=0.0)
    group = ('<tr class="group"><th></th><th></th><th></th>'
             + (f'<th colspan="{len(drops)}">permutation AUC drop</th>' if drops else "")
             + (f'<th colspan="{len(gains)}">BDT gain</th>' if gains else "") + "</tr>")
    head = group + "<tr>" + _th("#") + _th("variable", num=False) + _th(
        "separation", title="<S²> of signal and background, test sample")
    head += "".join(_th(n, title=f"AUC loss of {n} when the variable is shuffled")
                    for n in drops)
    head += "".join(_th(n, title=f"share of the split gain of {n}") for n in gains) + "</tr>"
    rows = []
    for rank, i in enumerate(order, 1):
        var = names[i]
        sep = _finite(separation.get(var))
        # a bar under the number shows the separation relative to the best variable
        style = ""
        if sep is not None and top > 0:
            pct = max(0.0, min(100.0, 100.0 * sep / top))
            style = (f"background-image:linear-gradient(90deg,#dce8f5 {pct:.1f}%,"
                     f"transparent {pct:.1f}%)")
        sep_cell = _num_cell(sep, ".4f", style=style)
        cells = [f'<td class="num">{rank}</td>', f"<td><code>{_esc(var)}</code></td>", sep_cell]
        cells += [_num_cell(d.get(var), ".4f") for d in drops.values()]
        cells += [_num_cell(g.get(var), ".3f") for g in gains.values()]
        rows.append(f'<tr data-variable="{_esc(var)}">' + "".join(cells) + "</tr>")
    note = ("<p class=\"note\">Sorted by separation. Permutation AUC drop: loss of test AUC when "
            "the variable is randomly shuffled (larger = more important). BDT gain: share of the "
            "total split gain.</p>")
    return _table(head, rows, "ranking") + note


# --------------------------------------------------------------------------- plots


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or not data.startswith(_PNG_MAGIC) or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def _img(data: bytes, alt: str) -> str:
    size = _png_size(data)
    dims = f' width="{size[0]}" height="{size[1]}"' if size else ""
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img src="data:image/png;base64,{b64}"{dims} alt="{_esc(alt)}">'


def _figure(path: Path, caption: str, rel: str) -> str | None:
    data = path.read_bytes()
    size = _png_size(data)
    if size is None:
        log.warning("%s: not a PNG file, left out of the report", path)
        return None
    w, h = size
    # multi-panel plots (correlations, many inputs) need the full width to be legible
    wide = w > 1.5 * h or w > 1400
    return (f'<figure{_WIDE if wide else ""}>{_img(data, caption)}'
            f"<figcaption>{_esc(caption)} <code>{_esc(rel)}</code></figcaption></figure>")


def _group_plots(plots: Sequence[Path], methods: Sequence[str]
                 ) -> tuple[list[tuple[str, Path]], dict[str, list[tuple[str, Path]]]]:
    """Split plot files into overview plots and plots of each method, with the plot kind."""
    overview: list[tuple[str, Path]] = []
    per_method: dict[str, list[tuple[str, Path]]] = {m: [] for m in methods}
    # longest name first: plots of a method "bdt_deep" must not go to a method "bdt"
    by_length = sorted(methods, key=len, reverse=True)
    for path in plots:
        stem = path.stem
        owner = None if _OVERVIEW_RE.match(stem) else next(
            (m for m in by_length if stem.startswith(f"{m}_")), None)
        if owner is None:
            overview.append((stem, path))
        else:
            per_method[owner].append((stem[len(owner) + 1:], path))

    def overview_key(item: tuple[str, Path]) -> tuple[int, str]:
        base = re.sub(r"_\d+$", "", item[0])
        rank = _OVERVIEW_ORDER.index(base) if base in _OVERVIEW_ORDER else len(_OVERVIEW_ORDER)
        return rank, item[0]

    def method_key(item: tuple[str, Path]) -> tuple[int, str]:
        kind = re.sub(r"^\d+_", "", item[0])
        rank = _METHOD_ORDER.index(kind) if kind in _METHOD_ORDER else len(_METHOD_ORDER)
        return rank, item[0]

    overview.sort(key=overview_key)
    for items in per_method.values():
        items.sort(key=method_key)
    return overview, per_method


def _caption(kind: str) -> str:
    """Caption of a plot kind (the file stem less the method name)."""
    if kind in _CAPTIONS:
        return _CAPTIONS[kind]
    # a multi-target regression numbers its plots: "<j>_profiles" of a method, "ratio_<j>"
    m = re.fullmatch(r"(\d+)_(.+)", kind)
    if m and m.group(2) in _CAPTIONS:
        return f"{_CAPTIONS[m.group(2)]}, target {m.group(1)}"
    m = re.fullmatch(r"(.+)_(\d+)", kind)
    if m and m.group(1) in _CAPTIONS:
        return f"{_CAPTIONS[m.group(1)]}, target {m.group(2)}"
    return kind.replace("_", " ")


def _figures(items: Sequence[tuple[str, Path]]) -> str:
    figs = [_figure(p, _caption(kind), f"plots/{p.name}") for kind, p in items]
    return "\n".join(f for f in figs if f)


# --------------------------------------------------------------------------- method details


def _method_details(run: RunFiles, name: str) -> str:
    info = _get(run.manifest, "methods", name) or {}
    parts = []
    params = info.get("params")
    if isinstance(params, Mapping) and params:
        text = ", ".join(f"{k}={_compact(v)}" for k, v in params.items())
        parts.append(f"<p class=\"note\">parameters: <code>{_esc(text)}</code></p>")
    steps = _get(info, "preprocess", "steps")
    if isinstance(steps, list):
        names = [str(s.get("name", "?")) if isinstance(s, Mapping) else str(s) for s in steps]
        parts.append(f"<p class=\"note\">preprocessing: {_esc(', '.join(names) or 'none')}</p>")
    notes = _method_notes(run, name, run.methods.get(name) or {})
    if notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{_esc(n)}</li>" for n in notes)
                     + "</ul>")
    return "\n".join(parts)


def _compact(v: Any) -> str:
    return json.dumps(v, separators=(",", ":"), default=str) if not isinstance(v, str) else v


# --------------------------------------------------------------------------- provenance


def _provenance(run: RunFiles) -> str:
    man = run.manifest
    if not man:
        return "<p class=\"note\">No models/manifest.json in this run: no provenance recorded.</p>"
    prov = man.get("provenance") or {}
    command = prov.get("command")
    if isinstance(command, list):
        command = shlex.join(str(c) for c in command)
    items = [
        ("run directory", str(run.path.resolve())),
        ("task", run.task),
        ("trained (UTC)", prov.get("time_utc")),
        ("command", command),
        ("platform", prov.get("platform")),
        ("seed", man.get("seed")),
        ("training / test events", f"{man.get('n_train', '–')} / {man.get('n_test', '–')}"),
        ("features", ", ".join(map(str, man.get("features") or [])) or None),
        ("spectators", ", ".join(map(str, man.get("spectators") or [])) or None),
        ("targets", ", ".join(map(str, _as_list(man.get("targets")))) or None),
    ]
    dl = "".join(f"<dt>{_esc(k)}</dt><dd><code>{_esc(v)}</code></dd>"
                 for k, v in items if v not in (None, ""))
    out = [f'<dl class="kv">{dl}</dl>']
    inputs = man.get("inputs") or []
    if inputs:
        head = ("<tr>" + _th("sample", num=False) + _th("file", num=False)
                + _th("tree", num=False) + _th("entries") + _th("selected") + "</tr>")
        rows = [f"<tr><td>{_esc(i.get('sample', ''))}</td><td><code>{_esc(i.get('file', ''))}"
                f"</code></td><td>{_esc(i.get('tree') or '')}</td>"
                f"{_num_cell(i.get('entries'), '.0f')}{_num_cell(i.get('selected'), '.0f')}</tr>"
                for i in inputs if isinstance(i, Mapping)]
        out.append("<h3>Inputs</h3>" + _table(head, rows, "inputs"))
    versions = prov.get("versions") or {}
    if versions:
        head = "<tr>" + _th("package", num=False) + _th("version", num=False) + "</tr>"
        rows = [f"<tr><td>{_esc(k)}</td><td><code>{_esc(v)}</code></td></tr>"
                for k, v in versions.items()]
        out.append("<h3>Versions</h3>" + _table(head, rows, "versions"))
    return "\n".join(out)


def _as_list(v: Any) -> list[Any]:
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple)) else [v]


# --------------------------------------------------------------------------- comparison


def roc_from_output(run_dir: str | Path, methods: Sequence[str]
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """ROC curves ``{method: (eff_bkg, eff_sig)}`` from the TestTree of ``run_dir/output.root``.

    ``classID`` 0 is signal, 1 background (TMVA's convention).  Methods without a branch, or
    whose curve cannot be computed, are left out with a warning.
    """
    import uproot

    from mva.evaluation.classification import roc_curve

    path = Path(run_dir) / "output.root"
    if not path.is_file():
        log.warning("%s: no output.root, its ROC curves are left out of the comparison", run_dir)
        return {}
    with uproot.open(path) as f:
        if "TestTree" not in f:
            log.warning("%s: no TestTree, its ROC curves are left out", path)
            return {}
        tree = f["TestTree"]
        present = [m for m in methods if m in tree.keys()]
        missing = sorted(set(methods) - set(present))
        if missing:
            log.warning("%s: no branch for %s in TestTree", path, ", ".join(missing))
        arrays = tree.arrays(["classID", "weight", *present], library="np")
    labels = (arrays["classID"] == 0).astype(int)
    curves = {}
    for m in present:
        try:
            eb, es, _ = roc_curve(arrays[m], labels, arrays["weight"])
        except ValueError as exc:
            log.warning("%s: %s: no ROC curve (%s)", path, m, exc)
            continue
        curves[m] = (eb, es)
    return curves


def _thin(n: int, max_points: int = 2000) -> np.ndarray:
    # a test set of 10^6 events gives 10^6 points: far more than a 1000-pixel figure shows
    return np.arange(n) if n <= max_points else np.unique(np.linspace(0, n - 1, max_points)
                                                          .round().astype(int))


def _comparison_png(runs: Sequence[RunFiles]) -> bytes | None:
    """All ROC curves of all runs in one figure: colour per method, line style per run."""
    import matplotlib.style
    import mplhep
    from matplotlib.figure import Figure

    curves = []
    for k, run in enumerate(runs):
        for m, (eb, es) in roc_from_output(run.path, list(run.methods)).items():
            auc = float(np.trapezoid(es, eb))
            curves.append((run.label, m, k, eb, es, auc))
    if not curves:
        return None
    method_names = list(dict.fromkeys(c[1] for c in curves))
    colours = ("#5790fc", "#f89c20", "#e42536", "#964a8b", "#9c9ca1", "#7a21dd", "#2ca02c",
               "#000000")
    styles = ("-", "--", ":", "-.")
    one_method = len(method_names) == 1
    curves.sort(key=lambda c: -c[5] if math.isfinite(c[5]) else math.inf)
    with matplotlib.style.context([mplhep.style.CMS, {"figure.dpi": 100, "savefig.dpi": 100}]):
        fig = Figure(figsize=(10, 10))
        ax = fig.subplots()
        for label, m, k, eb, es, auc in curves:
            colour = colours[(k if one_method else method_names.index(m)) % len(colours)]
            style = "-" if one_method else styles[k % len(styles)]
            idx = _thin(len(eb))
            ax.plot(es[idx], 1.0 - eb[idx], lw=2.5, color=colour, ls=style,
                    label=f"{label}: {m} (AUC = {auc:.3f})")
        ax.plot([0, 1], [1, 0], ls="--", lw=1.5, color="#7f7f7f", label="random")
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(0.0, 1.05)
        ax.set_xlabel(r"Signal efficiency $\varepsilon_S$")
        ax.set_ylabel(r"Background rejection $1-\varepsilon_B$")
        ax.legend(loc="lower left", fontsize=20 if len(curves) <= 6 else 14)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def _comparison(runs: Sequence[RunFiles]) -> str:
    classification = runs[0].task == "classification"
    parts = []
    if classification:
        png = _comparison_png(runs)
        if png is not None:
            caption = ("ROC curves of all runs (test samples); colour: method, line style: run"
                       if len({m for r in runs for m in r.methods}) > 1
                       else "ROC curves of all runs (test samples)")
            parts.append(f'<figure class="comparison">{_img(png, caption)}'
                         f"<figcaption>{_esc(caption)}</figcaption></figure>")
        else:
            parts.append("<p class=\"note\">No ROC curve could be read from the runs' "
                         "output.root.</p>")
        values = {(r.label, n): _get(m, "test", "roc_auc") for r in runs
                  for n, m in r.methods.items()}
        best = _argbest(values, largest=True)
        head = ("<tr>" + _th("run", num=False) + _th("method", num=False)
                + _th("AUC", title="test AUC") + _th("εS at εB=0.1", title="test sample")
                + "</tr>")
        rows = []
        for r in runs:
            for n, m in r.methods.items():
                is_best = best == (r.label, n)
                rows.append(
                    f'<tr{_BEST if is_best else ""} data-run="{_esc(r.label)}" '
                    f'data-method="{_esc(n)}"><td>{_esc(r.label)}</td><td class="name">{_esc(n)}'
                    f'{_BADGE if is_best else ""}</td>'
                    f"{_num_cell(_get(m, 'test', 'roc_auc'), '.4f')}"
                    f"{_num_cell(_get(m, 'test', 'eff_sig_at_bkg', '0.1'), '.3f')}</tr>")
    else:
        rows_in = [(r.label, *row) for r in runs for row in _regression_rows(r.methods)]
        multi = any(row[2] is not None for row in rows_in)
        head = ("<tr>" + _th("run", num=False) + _th("method", num=False)
                + (_th("target", num=False) if multi else "") + _th("sigma_eff") + _th("rms")
                + _th("bias") + "</tr>")
        best = _argbest({i: row[3].get("sigma_eff") for i, row in enumerate(rows_in)},
                        largest=False)
        rows = []
        for i, (label, n, target, test, _) in enumerate(rows_in):
            is_best = best == i
            rows.append(
                f'<tr{_BEST if is_best else ""} data-run="{_esc(label)}" '
                f'data-method="{_esc(n)}"><td>{_esc(label)}</td><td class="name">{_esc(n)}'
                f'{_BADGE if is_best else ""}</td>'
                f"{f'<td>{_esc(target or str())}</td>' if multi else ''}"
                f"{_num_cell(test.get('sigma_eff'), '#.4g')}"
                f"{_num_cell(test.get('rms'), '#.4g')}{_num_cell(test.get('bias'), '#.4g')}</tr>")
    parts.append(_table(head, rows, "comparison"))
    return "\n".join(parts)


# --------------------------------------------------------------------------- the page


def build_report(runs: Sequence[RunFiles]) -> str:
    """The HTML text of the report: the first run in full, the others in the comparison."""
    if not runs:
        raise InputError("no run directory given")
    tasks = {r.task for r in runs}
    if len(tasks) > 1:
        raise InputError("cannot compare runs of different tasks: "
                         + ", ".join(f"{r.label} ({r.task})" for r in runs))
    run = runs[0]
    classification = run.task == "classification"
    methods = list(run.methods)
    overview, per_method = _group_plots(run.plots, methods)
    ranking = _ranking(run)

    sections: list[tuple[str, str, str]] = []  # (id, title, body)
    summary = _classification_summary(run) if classification else _regression_summary(run)
    sections.append(("summary", "Summary", summary + _notes(run)))
    if len(runs) > 1:
        sections.append(("comparison", "Comparison of runs", _comparison(runs)))
    if overview:
        sections.append(("overview", "Overview plots", _figures(overview)))
    method_blocks = []
    for name in methods:
        kind = _get(run.manifest, "methods", name, "type")
        title = f"{name} ({kind})" if kind and kind != name else name
        figs = _figures(per_method.get(name, []))
        method_blocks.append(f'<h3 id="{_esc(_anchor("m", name))}">{_esc(title)}</h3>\n'
                             f"{_method_details(run, name)}\n{figs}")
    if not run.plots:
        method_blocks.insert(0, "<p class=\"note\">This run has no plots (evaluation.plots: "
                                "false?).</p>")
    sections.append(("methods", "Methods", "\n".join(method_blocks)))
    if ranking:
        sections.append(("ranking", "Variable ranking", ranking))
    config = (f'<pre id="config">{_esc(run.config_text)}</pre>' if run.config_text is not None
              else "<p class=\"note\">No config.yaml in this run.</p>")
    sections.append(("config", "Configuration", config))
    sections.append(("provenance", "Provenance", _provenance(run)))

    toc_items = []
    for sid, title, _ in sections:
        sub = ""
        if sid == "methods" and methods:
            sub = "<ol>" + "".join(f'<li><a href="#{_esc(_anchor("m", n))}">{_esc(n)}</a></li>'
                                   for n in methods) + "</ol>"
        toc_items.append(f'<li><a href="#{sid}">{_esc(title)}</a>{sub}</li>')
    toc = f'<nav class="toc"><h2>Contents</h2><ol>{"".join(toc_items)}</ol></nav>'

    man = run.manifest
    facts = [run.task, f"{len(methods)} method{'s' if len(methods) != 1 else ''}"]
    if man.get("features"):
        facts.append(f"{len(man['features'])} input variables")
    if man.get("n_train") is not None:
        facts.append(f"{man['n_train']} training / {man.get('n_test', '–')} test events")
    time_utc = _get(man, "provenance", "time_utc")
    if time_utc:
        facts.append(f"trained {time_utc}")
    title = f"mva report: {run.label}"
    if len(runs) > 1:
        title += " (compared with " + ", ".join(r.label for r in runs[1:]) + ")"
    body = "\n".join(f'<section id="{sid}">\n<h2>{_esc(t)}</h2>\n{b}\n</section>'
                     for sid, t, b in sections)
    version = _get(man, "provenance", "versions", "mva") or ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<meta name=\"generator\" content=\"mva {_esc(version)}\">\n"
        # an empty data: icon: browsers would otherwise look for favicon.ico beside the file
        "<link rel=\"icon\" href=\"data:,\">\n"
        f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<header><h1>{_esc(title)}</h1>\n<p class=\"meta\">{_esc(' · '.join(facts))}</p>"
        f"</header>\n{toc}\n{body}\n</body>\n</html>\n"
    )


def _write_atomic(target: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``target`` and rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        # mkstemp makes the file private; a report is meant to be shared like the plots
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_report(run_dirs: Sequence[str | Path], output: str | Path | None = None, *,
                 labels: Sequence[str] | None = None) -> Path:
    """Write the HTML report of ``run_dirs[0]`` (comparing it with the other runs, if any).

    Parameters
    ----------
    run_dirs
        Trained run directories; the first is described in full.
    output
        The HTML file (an existing directory gets ``report.html`` inside); default
        ``run_dirs[0]/report.html``.
    labels
        Names of the runs in titles and the comparison; default their directory names.

    Returns
    -------
    pathlib.Path
        The written file.  It appears complete or not at all.
    """
    paths = [Path(p) for p in run_dirs]
    if not paths:
        raise InputError("mva report: no run directory given")
    if labels is not None and len(labels) != len(paths):
        raise ValueError(f"{len(labels)} labels for {len(paths)} run directories")
    names = list(labels) if labels is not None else run_labels(paths)
    runs = [read_run(p, name) for p, name in zip(paths, names, strict=True)]
    text = build_report(runs)
    target = Path(output) if output is not None else paths[0] / REPORT_NAME
    if target.is_dir():
        target = target / REPORT_NAME
    _write_atomic(target, text)
    log.info("wrote %s", target)
    return target
