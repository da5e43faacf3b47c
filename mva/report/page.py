"""The report page: sections, contents, provenance, and writing the file atomically."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mva.errors import InputError
from mva.report._html import _CSS, _anchor, _esc, _get, _num_cell, _table, _th
from mva.report.comparison import _comparison
from mva.report.figures import _figures, plot_groups
from mva.report.run_files import RunFiles, read_run, run_labels
from mva.report.summary import (
    _method_details,
    _notes,
    _ranking,
    cv_table,
    warnings_box,
)

log = logging.getLogger("mva.report")  # one logger for the whole report, as before the split

REPORT_NAME = "report.html"


def _provenance(run: RunFiles) -> str:
    man = run.manifest
    if not man:
        return "<p class=\"note\">No models/manifest.json in this run: no provenance recorded.</p>"
    prov = man.get("provenance") or {}
    command = prov.get("command")
    if isinstance(command, list):
        command = shlex.join(str(c) for c in command)
    items = [
        ("run directory", str((run.shown_path or run.path).resolve())),
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
    methods = list(run.methods)
    overview, per_method = plot_groups(run.path / "plots", run.plots, methods)
    ranking = _ranking(run)

    sections: list[tuple[str, str, str]] = []  # (id, title, body)
    summary = run.task_.report_summary(run)
    sections.append(("summary", "Summary", summary + warnings_box(run) + _notes(run)))
    cv = cv_table(run)
    if cv:
        sections.append(("cv", "Cross-validation", cv))
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
                 labels: Sequence[str] | None = None, shown_as: str | Path | None = None
                 ) -> Path:
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
    shown_as
        The directory the page names for the first run (``mva train`` writes the report in
        the temporary directory that is then renamed to this one).

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
    if shown_as is not None:  # the first run is being written under a temporary name
        runs[0].shown_path = Path(shown_as)
    text = build_report(runs)
    target = Path(output) if output is not None else paths[0] / REPORT_NAME
    if target.is_dir():
        target = target / REPORT_NAME
    _write_atomic(target, text)
    log.info("wrote %s", target)
    return target
