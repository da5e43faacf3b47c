"""Summary tables (classification, regression), notes, variable ranking and method details."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from mva.evaluation.overtraining import KS_PVALUE
from mva.report._html import (
    _BEST,
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
from mva.report.run_files import RunFiles

EFF_BKG_KEYS = ("0.01", "0.1", "0.3")
_ERR_NOTE = ("± : statistical uncertainty (one standard deviation) from the finite, weighted "
             "test sample.")
# a KS p-value below this flags a train/test difference (the overtraining warning's threshold)
KS_WARN = KS_PVALUE


def classification_summary(run: RunFiles) -> str:
    """Binary: AUC, effS at effB, separation, KS, working point, calibration."""
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
                 _num_cell(test.get("roc_auc"), ".4f", train.get("roc_auc"), show_train=True,
                           err=test.get("roc_auc_err"))]
        for k in EFF_BKG_KEYS:
            cells.append(_num_cell(_get(test, "eff_sig_at_bkg", k), ".3f",
                                   _get(train, "eff_sig_at_bkg", k), show_train=True,
                                   err=_get(test, "eff_sig_at_bkg_err", k)))
        cells.append(_num_cell(test.get("separation"), ".3f", train.get("separation"),
                               show_train=True, err=test.get("separation_err")))
        for cls_name in ("signal", "background"):
            p = ks.get(f"ks_pvalue_{cls_name}")
            pv = _finite(p)
            warn = pv is not None and pv < KS_WARN
            cells.append(_num_cell(
                p, "", fmt=_fmt_p, cls="warn" if warn else "",
                title=f"p < {KS_WARN}: train and test responses differ (overtraining?)"
                if warn else ""))
        cells += [_num_cell(wp.get("cut"), "#.4g"),
                  _num_cell(wp.get("significance"), ".2f", err=wp.get("significance_err")),
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
            f"{_esc(f_text)} {_ERR_NOTE}</p>")
    return _table(head, rows, "summary") + note + method_comparison(run)


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


def regression_summary(run: RunFiles) -> str:
    """Regression: bias, rms, sigma_eff, ... per method (and target)."""
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
                                   show_train=col == "sigma_eff", err=test.get(f"{col}_err")))
        cells.append(_num_cell(_get(run.methods, name, "fit_seconds"), ".1f"))
        target_attr = f' data-target="{_esc(target)}"' if target is not None else ""
        rows.append(f'<tr{_BEST if is_best else ""} data-method="{_esc(name)}"'
                    f"{target_attr}>" + "".join(cells) + "</tr>")
    note = ("<p class=\"note\">Test sample (sigma_eff: training sample in brackets). Best method "
            "(smallest test sigma_eff) highlighted. – : not available for this method. "
            f"{_ERR_NOTE}</p>")
    return _table(head, rows, "summary") + note + method_comparison(run)


def _method_warnings(m: Mapping[str, Any]) -> list[str]:
    return [str(w) for w in (m.get("warnings") or []) if w]


def warnings_box(run: RunFiles) -> str:
    """The methods' warnings (overtraining), in a box under the summary; empty without any."""
    items = [f"<p><strong>{_esc(name)}</strong>: {_esc(w)}</p>"
             for name, m in run.methods.items() for w in _method_warnings(m)]
    return f'<div class="warnings">{"".join(items)}</div>' if items else ""


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
    # the figure whose drop is measured: the AUC (binary) or the accuracy (multiclass)
    figure, key = next(((f, k) for f, k in (("AUC", "permutation_auc_drop"),
                                            ("accuracy", "permutation_accuracy_drop"))
                        if any(_get(m, "importance", k) for m in run.methods.values())),
                       ("AUC", "permutation_auc_drop"))
    drops = {n: _get(m, "importance", key) for n, m in run.methods.items()}
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
    # multiclass runs have no signal/background separation per variable: no column for it
    sep_head = _th("separation", title="<S²> of signal and background, test sample")
    group = ('<tr class="group"><th></th><th></th>' + ("<th></th>" if separation else "")
             + (f'<th colspan="{len(drops)}">permutation {figure} drop</th>' if drops else "")
             + (f'<th colspan="{len(gains)}">BDT gain</th>' if gains else "") + "</tr>")
    head = group + "<tr>" + _th("#") + _th("variable", num=False) + (
        sep_head if separation else "")
    head += "".join(_th(n, title=f"{figure} loss of {n} when the variable is shuffled")
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
        cells = [f'<td class="num">{rank}</td>', f"<td><code>{_esc(var)}</code></td>"]
        cells += [sep_cell] if separation else []
        cells += [_num_cell(d.get(var), ".4f") for d in drops.values()]
        cells += [_num_cell(g.get(var), ".3f") for g in gains.values()]
        rows.append(f'<tr data-variable="{_esc(var)}">' + "".join(cells) + "</tr>")
    sort = "Sorted by separation. " if separation else ""
    note = (f"<p class=\"note\">{sort}Permutation {figure} drop: loss of test "
            f"{figure} when the variable is randomly shuffled (larger = more important). BDT "
            "gain: share of the total split gain.</p>")
    return _table(head, rows, "ranking") + note


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
    tuning = _get(run.methods, name, "tuning")
    if isinstance(tuning, Mapping) and tuning:
        parts.append(_tuning_block(tuning))
    warned = _method_warnings(run.methods.get(name) or {})
    if warned:
        parts.append('<div class="warnings">' + "".join(f"<p>{_esc(w)}</p>" for w in warned)
                     + "</div>")
    notes = _method_notes(run, name, run.methods.get(name) or {})
    if notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{_esc(n)}</li>" for n in notes)
                     + "</ul>")
    return "\n".join(parts)


def _tuning_block(tuning: Mapping[str, Any]) -> str:
    """The outcome of a method's hyper-parameter search: best parameters and score, trials,
    parameter importances (one row per fold for k-fold runs)."""
    searches = ([("", tuning)] if "history" in tuning else
                [(f"fold {k}", t) for k, t in enumerate(tuning.get("folds") or [])
                 if isinstance(t, Mapping)])
    if not searches:
        return ""
    first = searches[0][1]
    metric = str(first.get("metric", "score"))
    params = list(dict.fromkeys(k for _, t in searches for k in (t.get("best_params") or {})))
    head = ("<tr>" + ("" if len(searches) == 1 else _th("fold", num=False))
            + _th(f"best {metric}", title=f"mean {metric} over the {first.get('folds')} "
                                           "cross-validation folds of the training sample")
            + _th("trials", title="trials run (complete / pruned / failed)")
            + "".join(_th(p, num=False, title="best value") for p in params) + "</tr>")
    rows = []
    for label, t in searches:
        best = t.get("best_params") or {}
        counts = f"{t.get('trials')} ({t.get('complete')} / {t.get('pruned')} / {t.get('failed')})"
        cells = ([] if len(searches) == 1 else [f"<td>{_esc(label)}</td>"])
        cells += [_num_cell(t.get("best_score"), "#.5g"), f'<td class="num">{_esc(counts)}</td>']
        cells += [f"<td><code>{_esc(_compact(_round(best[p])) if p in best else '–')}</code>"
                  "</td>" for p in params]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    imp = first.get("importances") or {}
    imp_text = (", ".join(f"{k} {_fmt(v, '.2f')}" for k, v in imp.items()) if imp
                else "not available")
    note = (f"<p class=\"note\">Hyper-parameter tuning: optuna TPE (seed {_esc(first.get('seed'))}"
            f", {_esc(first.get('direction'))} {_esc(metric)}), {_esc(first.get('folds'))}-fold "
            "cross-validation on the training sample, median pruning; the best parameters were "
            f"refit on the whole training sample. Parameter importances: {_esc(imp_text)}.</p>")
    return _table(head, rows, "tuning") + note


def _round(v: Any) -> Any:
    return float(f"{v:.4g}") if isinstance(v, float) else v


def _compact(v: Any) -> str:
    return json.dumps(v, separators=(",", ":"), default=str) if not isinstance(v, str) else v


def multiclass_summary(run: RunFiles) -> str:
    """Multiclass: accuracy, macro AUC, per-class AUC, log loss, the smallest KS p-value and
    the calibration (largest per-class ECE) of each method."""
    methods = run.methods
    classes = [str(c) for c in run.metrics.get("classes") or []]
    best = _argbest({n: _get(m, "test", "accuracy") for n, m in methods.items()}, largest=True)
    group = ('<tr class="group"><th></th><th></th><th></th><th></th>'
             f'<th colspan="{len(classes)}">one-vs-rest AUC</th><th></th><th></th><th></th>'
             "<th></th></tr>")
    head = group + "<tr>" + "".join([
        _th("method", num=False), _th("type", num=False),
        _th("accuracy", title="weighted fraction of events whose most probable class is "
                              "their true class, test (train)"),
        _th("macro AUC", title="mean of the one-vs-rest AUCs, test (train)"),
        *(_th(c, title=f"AUC of {c} against the other classes, test sample")
          for c in classes),
        _th("log loss", title="weighted cross-entropy, test (train)"),
        _th("KS p", title="smallest per-class Kolmogorov-Smirnov p-value, train vs test"),
        _th("ECE", title="largest per-class expected calibration error of the probabilities "
                         "for the expected composition"),
        _th("fit s", title="training time in seconds"),
    ]) + "</tr>"
    rows = []
    for name, m in methods.items():
        test, train = m.get("test") or {}, m.get("train") or {}
        ks = [v for v in (_get(m, "overtraining", "ks_pvalue") or {}).values()
              if _finite(v) is not None]
        p_min = min(ks) if ks else None
        warn = p_min is not None and p_min < KS_WARN
        eces = [_finite(_get(v, "ece")) for v in (m.get("calibration") or {}).values()]
        eces = [e for e in eces if e is not None]
        cells = [_method_cell(name, name == best),
                 f"<td>{_esc(_get(run.manifest, 'methods', name, 'type') or '')}</td>",
                 _num_cell(test.get("accuracy"), ".4f", train.get("accuracy"), show_train=True,
                           err=test.get("accuracy_err")),
                 _num_cell(test.get("roc_auc_macro"), ".4f", train.get("roc_auc_macro"),
                           show_train=True, err=test.get("roc_auc_macro_err")),
                 *(_num_cell(_get(test, "roc_auc_ovr", c), ".4f",
                             err=_get(test, "roc_auc_ovr_err", c)) for c in classes),
                 _num_cell(test.get("log_loss"), ".4f", train.get("log_loss"), show_train=True,
                           err=test.get("log_loss_err")),
                 _num_cell(p_min, "", fmt=_fmt_p, cls="warn" if warn else "",
                           title=f"p < {KS_WARN}: train and test responses differ "
                                 "(overtraining?)" if warn else ""),
                 _num_cell(max(eces) if eces else None, ".4f"),
                 _num_cell(m.get("fit_seconds"), ".1f")]
        rows.append(f'<tr{_BEST if name == best else ""} data-method="{_esc(name)}">'
                    + "".join(cells) + "</tr>")
    note = ("<p class=\"note\">Test sample, training sample in brackets. Best method (highest "
            "test accuracy) highlighted. KS p-values below "
            f"{KS_WARN} are marked as an overtraining warning. {_ERR_NOTE}</p>")
    return _table(head, rows, "summary") + note + method_comparison(run)


# --------------------------------------------------------------------------- method comparison

#: figure in metrics.json's ``comparison`` -> (label, number format)
_COMPARED = {"roc_auc": ("AUC", ".4f"), "accuracy": ("accuracy", ".4f"),
             "roc_auc_macro": ("macro AUC", ".4f"), "sigma_eff": ("sigma_eff", "#.4g"),
             "rms": ("rms", "#.4g")}


def _comparisons(comparison: Any, target: str | None = None
                 ) -> list[tuple[str | None, str, Mapping[str, Any]]]:
    """(target or None, figure, entry) of metrics.json's ``comparison`` (keyed by figure, or
    by target and then figure in a multi-target regression)."""
    out: list[tuple[str | None, str, Mapping[str, Any]]] = []
    if not isinstance(comparison, Mapping):
        return out
    for key, entry in comparison.items():
        if isinstance(entry, Mapping) and "pairs" in entry:
            out.append((target, str(key), entry))
        elif isinstance(entry, Mapping) and target is None:
            out += _comparisons(entry, str(key))
    return out


def method_comparison(run: RunFiles) -> str:
    """Is the best method significantly better than the next? The paired differences of the
    headline figures of every two methods on the same test events (metrics.json's
    ``comparison``); empty for a run with one method."""
    entries = _comparisons(run.metrics.get("comparison"))
    if not entries:
        return ""
    multi = any(t is not None for t, _, _ in entries)
    verdicts, rows = [], []
    threshold = None
    for target, figure, c in entries:
        label, spec = _COMPARED.get(figure, (figure, "#.4g"))
        threshold = _finite(c.get("threshold"))
        z, err = _finite(c.get("z")), _finite(c.get("diff_err"))
        where = f" ({target})" if target is not None else ""
        if c.get("best") is not None and c.get("next") is not None:
            verdict = "significantly better" if c.get("significant") else (
                "not significantly better")
            detail = (f"Δ = {_fmt(c.get('diff'), '+' + spec)} ± {_fmt(err, spec)}, "
                      f"{_fmt(z, '.1f')}σ" if err is not None and z is not None
                      else f"Δ = {_fmt(c.get('diff'), '+' + spec)}")
            attrs = f' data-figure="{_esc(figure)}"'
            if target is not None:
                attrs += f' data-target="{_esc(target)}"'
            attrs += f' data-significant="{str(bool(c.get("significant"))).lower()}"'
            verdicts.append(
                f'<p class="verdict"{attrs}>'
                f"{_esc(label)}{_esc(where)}: <strong>{_esc(c['best'])}</strong> is "
                f"{verdict} than <strong>{_esc(c['next'])}</strong> ({_esc(detail)}).</p>")
        for pair in c.get("pairs") or []:
            if not isinstance(pair, Mapping):
                continue
            pz = _finite(pair.get("z"))
            sig = pz is not None and threshold is not None and pz > threshold
            cells = [f"<td>{_esc(label)}</td>"]
            if multi:
                cells.append(f"<td>{_esc(target or '')}</td>")
            cells += [f'<td class="name">{_esc(pair.get("a"))}</td>',
                      f'<td class="name">{_esc(pair.get("b"))}</td>',
                      _num_cell(pair.get("diff"), "+" + spec, err=pair.get("diff_err")),
                      _num_cell(pz, ".1f"), f"<td>{'yes' if sig else 'no'}</td>"]
            rows.append(f'<tr data-figure="{_esc(figure)}" data-a="{_esc(pair.get("a"))}" '
                        f'data-b="{_esc(pair.get("b"))}">' + "".join(cells) + "</tr>")
    thr = _fmt(threshold, "g") if threshold is not None else "2"
    head = ("<tr>" + _th("figure", num=False) + (_th("target", num=False) if multi else "")
            + _th("better", num=False) + _th("other", num=False)
            + _th("difference", title="better − other, with its paired uncertainty")
            + _th("σ", title="difference / its uncertainty, in the better method's favour")
            + _th("significant", num=False, title=f"more than {thr} standard deviations")
            + "</tr>")
    note = ("<p class=\"note\">Differences between two methods on the same test events "
            "(paired: the events are shared, so the uncertainty of the difference comes from the "
            "per-event influences of both methods, DeLong's covariance for the AUC, and is "
            f"smaller than the two uncertainties combined as if independent). A difference "
            f"counts as significant above {thr} standard deviations. The best method is picked "
            "by the same numbers, so with many methods a margin near the threshold is weak "
            "evidence.</p>")
    return ('<h3 id="comparison-of-methods">Comparison of the methods</h3>' + "".join(verdicts)
            + _table(head, rows, "method-comparison") + note)


# --------------------------------------------------------------------------- cross-validation


def _dotted(d: Any, path: str) -> Any:
    """The value at a dotted key path (``eff_sig_at_bkg.0.1``); a key may itself hold dots
    (``0.1``): at each level the longest run of parts that is a key is taken."""
    parts = path.split(".")
    while parts:
        if not isinstance(d, Mapping):
            return None
        for n in range(len(parts), 0, -1):
            key = ".".join(parts[:n])
            if key in d:
                d, parts = d[key], parts[n:]
                break
        else:
            return None
    return d


def _cv_rows(methods: Mapping[str, Any], first: str
             ) -> list[tuple[str, str | None, Mapping[str, Any], list[tuple[int, Any]]]]:
    """(method, target or None, cv figures, [(fold, its test figures)]) per row of the table:
    a run whose figures are keyed by target first (multi-target regression) has one row per
    method and target."""
    rows = []
    for name, m in methods.items():
        cv = m.get("cv")
        if not isinstance(cv, Mapping):
            continue
        folds = [(f.get("fold"), f.get("test") or {}) for f in m.get("folds") or []
                 if isinstance(f, Mapping)]
        if isinstance(_dotted(cv, first), Mapping) and "mean" in _dotted(cv, first):
            rows.append((name, None, cv, folds))
            continue
        for target, sub in cv.items():
            leaf = _dotted(sub, first)
            if isinstance(leaf, Mapping) and "mean" in leaf:
                rows.append((name, str(target), sub,
                             [(k, _get(t, str(target)) or {}) for k, t in folds]))
    return rows


def _mean_std_cell(leaf: Any, spec: str) -> str:
    """``mean ± std`` of a figure across the folds; ``data-v`` the mean, ``data-std`` the std."""
    mean, std = _get(leaf, "mean"), _get(leaf, "std")
    text = f"{_fmt(mean, spec)} ± {_fmt(std, spec)}"
    n = _get(leaf, "n")
    cell = _num_cell(mean, spec, fmt=lambda _: text,
                     title=f"mean ± standard deviation over {n} folds" if n is not None else "")
    s = _finite(std)
    if s is not None:
        cell = cell.replace(' class="num"', f' class="num" data-std="{_esc(repr(s))}"', 1)
    return cell


def cv_table(run: RunFiles) -> str | None:
    """k-fold runs: the task's headline figures (``Task.cv_headline``) of each method as mean
    ± standard deviation over the folds, and the first of them on every fold; None for a
    hold-out run (or a task without headline figures)."""
    split = run.metrics.get("split")
    k = _finite(_get(split, "folds"))
    headline = tuple(getattr(run.task_, "cv_headline", ()) or ())
    if not k or not headline:
        return None
    first, first_label, first_spec = headline[0]
    rows_in = _cv_rows(run.methods, first)
    if not rows_in:
        return None
    multi = any(t is not None for _, t, _, _ in rows_in)
    fold_ids: list[Any] = []
    for *_, folds in rows_in:
        for f, _ in folds:
            if f not in fold_ids:
                fold_ids.append(f)
    lead = 2 + int(multi)
    group = ('<tr class="group">' + "<th></th>" * lead
             + f'<th colspan="{len(headline)}">mean ± std over the folds</th>'
             + (f'<th colspan="{len(fold_ids)}">{_esc(first_label)} per fold (test)</th>'
                if fold_ids else "") + "</tr>")
    head = group + "<tr>" + _th("method", num=False) + _th("type", num=False)
    if multi:
        head += _th("target", num=False)
    head += "".join(_th(label, title=f"{path}: mean ± standard deviation over the folds")
                    for path, label, _ in headline)
    head += "".join(_th(f"fold {f}", title=f"{first_label} of the fold model on fold {f}")
                    for f in fold_ids) + "</tr>"
    rows = []
    for name, target, cv, folds in rows_in:
        cells = [_method_cell(name, False),
                 f"<td>{_esc(_get(run.manifest, 'methods', name, 'type') or '')}</td>"]
        if multi:
            cells.append(f"<td>{_esc(target or '')}</td>")
        cells += [_mean_std_cell(_dotted(cv, path), spec) for path, _, spec in headline]
        by_fold = dict(folds)
        cells += [_num_cell(_dotted(by_fold.get(f), first), first_spec) for f in fold_ids]
        target_attr = f' data-target="{_esc(target)}"' if target is not None else ""
        rows.append(f'<tr data-method="{_esc(name)}"{target_attr}>' + "".join(cells) + "</tr>")
    expr = _get(split, "fold_expression")
    seed = _get(split, "seed")
    how = (f"folds by the fold expression <code>{_esc(expr)}</code>" if expr
           else f"random folds (seed {_esc(seed)})" if seed is not None else "random folds")
    note = (f"<p class=\"note\">Mean and sample standard deviation (ddof 1) over the {int(k)} "
            f"folds of each fold model's figures on its own held-out fold; {how}. The "
            "summary above gives the figures of the out-of-fold scores of all events "
            "together.</p>")
    return _table(head, rows, "cv") + note
