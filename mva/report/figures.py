"""The run's plots in the report: grouping by method, captions, embedded images."""

from __future__ import annotations

import base64
import json
import logging
import re
import struct
from collections.abc import Sequence
from pathlib import Path

from mva.report._html import _WIDE, _esc

log = logging.getLogger("mva.report")  # one logger for the whole report, as before the split

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# plots that describe the whole run, in reading order; anything else not owned by a method follows
_OVERVIEW_ORDER = ("roc", "roc_ovr", "rejection", "inputs", "correlations", "ratio")
_OVERVIEW_RE = re.compile(r"^(roc|rejection|inputs|correlations|ratio)(_\d+)?$")
# per-method plots, in reading order, with their captions
_CAPTIONS = {
    "roc": "ROC curves: background rejection versus signal efficiency (test sample)",
    "rejection": "Background rejection 1/εB versus signal efficiency (test sample)",
    "inputs": "Input variables (training sample)",
    "correlations": "Linear correlation coefficients of the inputs (training sample)",
    "ratio": "Prediction / target (test sample)",
    "overtraining": "Overtraining check: response on the training and test samples",
    "fold_roc": "ROC curves of the fold models, each on its own held-out fold",
    "cut_efficiencies": "Cut efficiencies and significance versus cut; optimal cut marked",
    "probability": "Signal probability P(S|y) and the class densities",
    "reliability": "Reliability of P(S|y): observed signal fraction versus predicted",
    "loss": "Training and validation loss",
    "tuning": "Hyper-parameter tuning: cross-validated score of every trial (best so far as a "
              "line, pruned trials as crosses) and the parameter importances",
    "pred_vs_true": "Prediction versus true target (test sample)",
    "profiles": "Residual profiles versus the inputs (test sample)",
    "pulls": "Pulls: residual / predicted width (test sample)",
    "width_calibration": "Calibration of the predicted width (test sample)",
    "roc_ovr": "One-vs-rest ROC curves: rejection of the other classes versus efficiency of "
               "the class (test sample)",
    "confusion": "Confusion matrix: fraction of each true class (rows) given to each class "
                 "(columns), weighted (test sample)",
    "scores": "Overtraining check: the class probability on the training and test samples, "
              "per true class",
    "class_reliability": "Reliability of the class probabilities for the expected composition: "
                         "observed class fraction versus predicted",
}
_METHOD_ORDER = ("overtraining", "fold_roc", "confusion", "scores", "cut_efficiencies",
                 "probability", "reliability", "class_reliability", "loss", "pred_vs_true",
                 "profiles", "pulls", "width_calibration", "tuning")


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
    """Figures of ``(caption, path)`` items."""
    figs = [_figure(p, caption, f"plots/{p.name}") for caption, p in items]
    return "\n".join(f for f in figs if f)


def _rank(order: Sequence[str], kind: str) -> int:
    return order.index(kind) if kind in order else len(order)


def _by_file_name(plots: Sequence[Path], methods: Sequence[str]
                  ) -> tuple[list[tuple[str, Path]], dict[str, list[tuple[str, Path]]]]:
    overview, per_method = _group_plots(plots, methods)
    return ([(_caption(k), p) for k, p in overview],
            {m: [(_caption(k), p) for k, p in items] for m, items in per_method.items()})


def plot_groups(folder: Path, plots: Sequence[Path], methods: Sequence[str]
                ) -> tuple[list[tuple[str, Path]], dict[str, list[tuple[str, Path]]]]:
    """Overview plots and the plots of each method as ``(caption, path)``, in reading order.

    Ownership comes from ``plots/index.json``, which the plotter writes beside the plots
    (:mod:`mva.naming`); run directories from before the index are grouped by file name.
    """
    from mva.naming import PLOT_INDEX

    index = folder / PLOT_INDEX
    if not index.is_file():
        return _by_file_name(plots, methods)
    try:
        records = json.loads(index.read_text(encoding="utf-8"))["plots"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        log.warning("%s: unreadable (%s): plots grouped by file name", index, exc)
        return _by_file_name(plots, methods)
    present = {p.name: p for p in plots}
    ranked: list[tuple[int, int, str | None, str, Path]] = []
    for i, r in enumerate(records):
        path = present.get(str(r.get("file")))
        if path is None:
            continue
        kind, method, part = str(r.get("kind")), r.get("method"), r.get("part")
        caption = _CAPTIONS.get(kind, kind.replace("_", " "))
        if part is not None:
            caption += f", {r.get('part_of') or 'part'} {part}"
        order = _METHOD_ORDER if method else _OVERVIEW_ORDER
        ranked.append((_rank(order, kind), i, method if method in methods else None, caption,
                       path))
    listed = {p for *_, p in ranked}
    # plots the index does not list (made by hand, or by an older mva) follow the overview
    extra = [(len(_OVERVIEW_ORDER) + 1, len(ranked) + j, None, _caption(p.stem), p)
             for j, p in enumerate(plots) if p not in listed]
    overview = [(c, p) for _, _, m, c, p in sorted(ranked + extra, key=lambda t: t[:2])
                if m is None]
    per_method = {m: [(c, p) for _, _, o, c, p in sorted(ranked, key=lambda t: t[:2]) if o == m]
                  for m in methods}
    return overview, per_method
