"""Tests of the HTML report: self-contained, complete, escaped, atomic; comparison of runs."""

from __future__ import annotations

import base64
import io
import json
import logging
import shlex
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uproot
from PIL import Image
from sklearn.metrics import roc_auc_score

import mva.report
from mva.errors import InputError
from mva.report import REPORT_NAME, roc_from_output, run_labels, write_report

# a feature expression with characters that HTML must escape
EXPR = "var4 * (var1 < 2 && var2 > -2)"

CONFIG_A = f"""\
task: classification
data:
  signal:     {{files: [ex/data/toy.root], tree: TreeS}}
  background: {{files: [ex/data/toy.root], tree: TreeB, weight: weight}}
  features: [var1, var2, var3, "{EXPR}"]
split: {{test_fraction: 0.5, seed: 1}}
methods:
  bdt: {{type: bdt, n_estimators: 30}}
  fisher: {{type: linear}}
evaluation: {{formats: [png]}}
"""

CONFIG_B = """\
task: classification
data:
  signal:     {files: [ex/data/toy.root], tree: TreeS}
  background: {files: [ex/data/toy.root], tree: TreeB, weight: weight}
  features: [var1, var2, var3, var4]
split: {test_fraction: 0.5, seed: 2}
methods:
  fisher: {type: linear}
evaluation: {plots: false}
"""


def _mva_command() -> list[str]:
    exe = Path(sys.executable).with_name("mva")
    return [str(exe)] if exe.exists() else [sys.executable, "-c",
                                            "from mva.cli import main; main()"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two small trained runs: ``baseline`` (bdt + fisher, plots) and ``fisher_only`` (no plots)."""
    base = tmp_path_factory.mktemp("report_runs")
    mva = _mva_command()
    subprocess.run([*mva, "example", "classification", "-n", "800", "--output", "ex"],
                   cwd=base, check=True, capture_output=True)
    (base / "a.yaml").write_text(CONFIG_A)
    (base / "b.yaml").write_text(CONFIG_B)
    # the two trainings are independent: run them side by side
    procs = [subprocess.Popen([*mva, "train", cfg, "--output", out, "--quiet"], cwd=base,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for cfg, out in (("a.yaml", "baseline"), ("b.yaml", "fisher_only"))]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, f"mva train failed:\n{out}\n{err}"
    runs = base / "baseline", base / "fisher_only"
    # `mva train` may write a report itself: start from runs without one
    for run in runs:
        (run / REPORT_NAME).unlink(missing_ok=True)
    return runs


@pytest.fixture(scope="module")
def single(runs: tuple[Path, Path]) -> dict[str, Any]:
    """The report of the first run, with the run directory listed before and after."""
    run = runs[0]
    before = {p.name for p in run.iterdir()}
    path = write_report([run])
    after = {p.name for p in run.iterdir()}
    return {"run": run, "path": path, "html": path.read_text(encoding="utf-8"),
            "before": before, "after": after}


def _metrics(run: Path) -> dict[str, Any]:
    return json.loads((run / "metrics.json").read_text())


# --------------------------------------------------------------------------- HTML parsing


class Page(HTMLParser):
    """Tags with attributes, tables by id (rows of cells), <pre> texts by id, all text."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.tables: dict[str, list[dict[str, Any]]] = {}
        self.pre: dict[str, str] = {}
        self.text: list[str] = []
        self._table: str | None = None
        self._row: dict[str, Any] | None = None
        self._cell: dict[str, Any] | None = None
        self._pre: str | None = None
        self._style = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        if tag == "table":
            self._table = a.get("id", "")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = {"attrs": a, "cells": []}
            self.tables[self._table].append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = {"tag": tag, "attrs": a, "text": ""}
            self._row["cells"].append(self._cell)
        elif tag == "pre":
            self._pre = a.get("id", "")
            self.pre[self._pre] = ""
        elif tag == "style":
            self._style = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag == "tr":
            self._row = None
        elif tag in ("td", "th"):
            self._cell = None
        elif tag == "pre":
            self._pre = None
        elif tag == "style":
            self._style = False

    def handle_data(self, data: str) -> None:
        if self._style:
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell["text"] += data
        if self._pre is not None:
            self.pre[self._pre] += data

    def body_rows(self, table_id: str) -> list[dict[str, Any]]:
        """Rows of data cells (header rows, made of <th>, left out)."""
        return [r for r in self.tables[table_id] if r["cells"] and r["cells"][0]["tag"] == "td"]

    def images(self) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == "img"]


def _cell(row: dict[str, Any], i: int) -> dict[str, Any]:
    return row["cells"][i]


def _header(page: Page, table_id: str) -> list[str]:
    """Column names: the last header row."""
    heads = [r for r in page.tables[table_id] if r["cells"] and r["cells"][0]["tag"] == "th"]
    return [c["text"].strip() for c in heads[-1]["cells"]]


def _column(page: Page, table_id: str, name: str, occurrence: int = 0) -> int:
    cols = _header(page, table_id)
    return [i for i, c in enumerate(cols) if c == name][occurrence]


def _by_method(page: Page, table_id: str = "summary") -> dict[str, dict[str, Any]]:
    return {r["attrs"]["data-method"]: r for r in page.body_rows(table_id)}


def _png_payloads(page: Page) -> list[bytes]:
    prefix = "data:image/png;base64,"
    out = []
    for img in page.images():
        assert img["src"].startswith(prefix), img["src"][:40]
        out.append(base64.b64decode(img["src"][len(prefix):], validate=True))
    return out


def _copy_run(run: Path, dest: Path) -> Path:
    return Path(shutil.copytree(run, dest))


def _edit_metrics(run: Path, edit: Any) -> None:
    m = _metrics(run)
    edit(m)
    (run / "metrics.json").write_text(json.dumps(m))


# --------------------------------------------------------------------------- one run


def test_report_is_one_self_contained_file(single: dict[str, Any]) -> None:
    run, text = single["run"], single["html"]
    assert single["path"] == run / REPORT_NAME
    # the report is the only file added: no side files, no temporary left behind
    assert single["after"] - single["before"] == {REPORT_NAME}
    assert "http://" not in text and "https://" not in text
    assert 'src="/' not in text
    page = Page(text)
    for tag, attrs in page.tags:
        for key in ("src", "href", "srcset", "data", "poster", "action", "background"):
            if key in attrs:
                assert attrs[key].startswith(("data:", "#")), (tag, key, attrs[key][:60])
        assert tag not in ("script", "iframe", "object", "embed")
        if tag == "link":
            assert attrs.get("rel") != "stylesheet"
    # no file or network reference from the style sheet either
    assert "@import" not in text and "url(" not in text


def test_every_png_plot_is_embedded(single: dict[str, Any]) -> None:
    pngs = sorted((single["run"] / "plots").glob("*.png"))
    assert len(pngs) >= 10  # the run made plots: the test is not vacuous
    page = Page(single["html"])
    payloads = _png_payloads(page)
    for p in pngs:
        assert p.read_bytes() in payloads, f"{p.name} not embedded"
    # one image per plot, no duplicates, nothing else in a single-run report
    assert len(payloads) == len(pngs)
    # declared sizes are the true pixel sizes (no distortion, no layout jump while loading)
    for img, data in zip(page.images(), payloads, strict=True):
        assert Image.open(io.BytesIO(data)).size == (int(img["width"]), int(img["height"]))


def test_plots_are_grouped_overview_first_then_by_method(single: dict[str, Any]) -> None:
    text = single["html"]
    overview, methods = text.index('id="overview"'), text.index('id="methods"')
    for name in ("roc", "rejection", "inputs", "correlations"):
        assert overview < text.index(f"plots/{name}.png") < methods
    bdt, fisher = text.index('id="m-bdt"'), text.index('id="m-fisher"')
    for p in (single["run"] / "plots").glob("bdt_*.png"):
        assert bdt < text.index(f"plots/{p.name}") < fisher
    for p in (single["run"] / "plots").glob("fisher_*.png"):
        assert fisher < text.index(f"plots/{p.name}")


def test_summary_table_shows_each_method_with_its_metrics(single: dict[str, Any]) -> None:
    metrics = _metrics(single["run"])["methods"]
    page = Page(single["html"])
    rows = _by_method(page)
    assert set(rows) == set(metrics) == {"bdt", "fisher"}
    auc_col = _column(page, "summary", "AUC")
    eff_col = _column(page, "summary", "εB=0.1")
    for name, m in metrics.items():
        cell = _cell(rows[name], auc_col)
        # the exact value with its uncertainty, and the printed test ± err (train)
        assert float(cell["attrs"]["data-v"]) == m["test"]["roc_auc"]
        assert float(cell["attrs"]["data-err"]) == m["test"]["roc_auc_err"]
        assert cell["text"].replace(" ", "") == (
            f"{m['test']['roc_auc']:.4f}±{m['test']['roc_auc_err']:.4f}"
            f"({m['train']['roc_auc']:.4f})")
        eff = _cell(rows[name], eff_col)
        assert float(eff["attrs"]["data-v"]) == m["test"]["eff_sig_at_bkg"]["0.1"]
        wp = _cell(rows[name], _column(page, "summary", "Z"))
        assert float(wp["attrs"]["data-v"]) == m["working_point"]["significance"]
        ece = _cell(rows[name], _column(page, "summary", "ECE"))
        assert float(ece["attrs"]["data-v"]) == m["calibration"]["ece"]
    best = max(metrics, key=lambda n: metrics[n]["test"]["roc_auc"])
    assert [n for n, r in rows.items() if "best" in r["attrs"].get("class", "")] == [best]


def test_best_method_and_overtraining_warnings_follow_metrics(runs: tuple[Path, Path],
                                                             tmp_path: Path) -> None:
    run = _copy_run(runs[0], tmp_path / "edited")

    def edit(m: dict[str, Any]) -> None:
        m["methods"]["bdt"]["test"]["roc_auc"] = 0.70
        m["methods"]["fisher"]["test"]["roc_auc"] = 0.99
        m["methods"]["bdt"]["overtraining"] = {"ks_pvalue_signal": 0.001,
                                               "ks_pvalue_background": 0.0099}
        # the boundary is not a warning: p < 0.01 is (the overtraining warning's threshold)
        m["methods"]["fisher"]["overtraining"] = {"ks_pvalue_signal": 0.01,
                                                  "ks_pvalue_background": 0.9}

    _edit_metrics(run, edit)
    page = Page(write_report([run]).read_text())
    rows = _by_method(page)
    ks_s, ks_b = _column(page, "summary", "signal"), _column(page, "summary", "background")
    warned = {(n, c) for n, r in rows.items() for c in (ks_s, ks_b)
              if "warn" in _cell(r, c)["attrs"].get("class", "")}
    assert warned == {("bdt", ks_s), ("bdt", ks_b)}
    assert "best" in rows["fisher"]["attrs"].get("class", "")
    assert "best" not in rows["bdt"]["attrs"].get("class", "")

    _edit_metrics(run, lambda m: m["methods"]["bdt"]["test"].update(roc_auc=0.995))
    rows = _by_method(Page(write_report([run]).read_text()))
    assert "best" in rows["bdt"]["attrs"].get("class", "")
    assert "best" not in rows["fisher"]["attrs"].get("class", "")


def test_report_says_whether_the_best_method_is_significantly_better(
        runs: tuple[Path, Path], tmp_path: Path) -> None:
    from mva.evaluation import uncertainty as unc

    run = _copy_run(runs[0], tmp_path / "compared")
    metrics = _metrics(run)
    m, c = metrics["methods"], metrics["comparison"]["roc_auc"]
    best, other = sorted(m, key=lambda n: -m[n]["test"]["roc_auc"])
    assert (c["best"], c["next"]) == (best, other)
    assert c["diff"] == pytest.approx(m[best]["test"]["roc_auc"] - m[other]["test"]["roc_auc"],
                                      abs=1e-9)
    # paired on the TestTree's events: DeLong's covariance of the two methods
    with uproot.open(run / "output.root") as f:
        test = f["TestTree"].arrays(["classID", "weight", best, other], library="np")
    sig = (test["classID"] == 0).astype(int)
    a, b = (unc.auc(test[n], sig, test["weight"]) for n in (best, other))
    assert c["diff_err"] == pytest.approx((a - b).err, rel=1e-6)
    assert c["diff_err"] < np.hypot(m[best]["test"]["roc_auc_err"], m[other]["test"]["roc_auc_err"])
    assert c["significant"] == (c["diff"] / c["diff_err"] > c["threshold"] == 2.0)

    page = Page(write_report([run]).read_text())
    (row,) = page.body_rows("method-comparison")
    diff = _cell(row, 3)
    assert float(diff["attrs"]["data-v"]) == c["diff"]
    assert float(diff["attrs"]["data-err"]) == c["diff_err"]
    for significant in (True, False):
        _edit_metrics(run, lambda mm, s=significant: mm["comparison"]["roc_auc"].update(
            significant=s))
        text = " ".join("".join(Page(write_report([run]).read_text()).text).split())
        verdict = "significantly better" if significant else "not significantly better"
        assert f"{best} is {verdict} than {other}" in text
        assert "significant above 2 standard deviations" in text


def test_config_is_escaped(single: dict[str, Any]) -> None:
    text = single["html"]
    assert "var4 * (var1 &lt; 2 &amp;&amp; var2 &gt; -2)" in text
    # nowhere raw: not in the config, the ranking table or the provenance
    assert EXPR not in text
    page = Page(text)
    # the parsed <pre> gives back the run's config.yaml character for character
    assert page.pre["config"] == (single["run"] / "config.yaml").read_text()


def test_text_from_the_run_is_escaped(runs: tuple[Path, Path], tmp_path: Path) -> None:
    run = _copy_run(runs[0], tmp_path / "hostile")
    note = "<script>alert('x')</script> & <b>bold</b>"

    def edit(m: dict[str, Any]) -> None:
        m["methods"]["fi<sh>er&"] = m["methods"].pop("fisher")
        m["methods"]["bdt"]["notes"] = [note]

    _edit_metrics(run, edit)
    text = write_report([run]).read_text()
    page = Page(text)
    assert not [t for t, _ in page.tags if t in ("script", "b", "sh")]
    joined = "".join(page.text)
    assert note in joined and "fi<sh>er&" in joined
    assert "fi&lt;sh&gt;er&amp;" in text


def test_variable_ranking_sorted_by_separation(single: dict[str, Any]) -> None:
    metrics = _metrics(single["run"])
    sep = metrics["variables"]["separation"]
    page = Page(single["html"])
    rows = page.body_rows("ranking")
    order = [r["attrs"]["data-variable"] for r in rows]
    assert order == sorted(sep, key=lambda v: -sep[v])
    sep_col = _column(page, "ranking", "separation")
    # permutation AUC drop comes first, then the BDT gain: the second "bdt" column is the gain
    drop_col = _column(page, "ranking", "bdt", 0)
    gain_col = _column(page, "ranking", "bdt", 1)
    fisher_col = _column(page, "ranking", "fisher")
    imp = {n: metrics["methods"][n]["importance"] for n in ("bdt", "fisher")}
    for r in rows:
        var = r["attrs"]["data-variable"]
        assert float(_cell(r, sep_col)["attrs"]["data-v"]) == sep[var]
        value = {c: float(_cell(r, c)["attrs"]["data-v"]) for c in (drop_col, gain_col, fisher_col)}
        assert value[drop_col] == imp["bdt"]["permutation_auc_drop"][var]
        assert value[gain_col] == imp["bdt"]["gain"][var]
        assert value[fisher_col] == imp["fisher"]["permutation_auc_drop"][var]


def test_provenance_lists_inputs_seed_command_and_versions(single: dict[str, Any]) -> None:
    manifest = json.loads((single["run"] / "models" / "manifest.json").read_text())
    page = Page(single["html"])
    joined = "".join(page.text)
    prov = manifest["provenance"]
    assert shlex.join(prov["command"]) in joined
    assert prov["time_utc"] in joined
    rows = page.body_rows("inputs")
    assert len(rows) == len(manifest["inputs"]) == 2
    for row, inp in zip(rows, manifest["inputs"], strict=True):
        texts = [c["text"] for c in row["cells"]]
        assert inp["file"] in texts and inp["tree"] in texts
        assert str(inp["entries"]) in texts and str(inp["selected"]) in texts
    versions = {r["cells"][0]["text"]: r["cells"][1]["text"] for r in page.body_rows("versions")}
    assert versions == prov["versions"]
    seed_at = joined.index("seed")
    assert str(manifest["seed"]) in joined[seed_at:seed_at + 40]


def test_report_is_reproducible(single: dict[str, Any], tmp_path: Path) -> None:
    again = write_report([single["run"]], output=tmp_path / "again.html")
    assert again.read_text(encoding="utf-8") == single["html"]


# --------------------------------------------------------------------------- several runs


def test_comparison_of_two_runs(runs: tuple[Path, Path], single: dict[str, Any],
                                tmp_path: Path) -> None:
    out = tmp_path / "compare.html"
    listing = sorted(p.name for p in runs[0].iterdir())
    assert write_report(list(runs), output=out) == out
    # with an explicit output nothing is written into the run directory
    assert sorted(p.name for p in runs[0].iterdir()) == listing
    page = Page(out.read_text())
    rows = page.body_rows("comparison")
    got = [(r["attrs"]["data-run"], r["attrs"]["data-method"]) for r in rows]
    assert got == [("baseline", "bdt"), ("baseline", "fisher"), ("fisher_only", "fisher")]
    auc_col = _column(page, "comparison", "AUC")
    eff_col = _column(page, "comparison", "εS at εB=0.1")
    for r, (run, method) in zip(rows, got, strict=True):
        m = _metrics(runs[0] if run == "baseline" else runs[1])["methods"][method]
        assert float(_cell(r, auc_col)["attrs"]["data-v"]) == m["test"]["roc_auc"]
        assert float(_cell(r, eff_col)["attrs"]["data-v"]) == m["test"]["eff_sig_at_bkg"]["0.1"]
        assert _cell(r, 0)["text"] == run
    # one comparison figure on top of the first run's plots
    payloads = _png_payloads(page)
    single_payloads = _png_payloads(Page(single["html"]))
    extra = [p for p in payloads if p not in single_payloads]
    assert len(payloads) == len(single_payloads) + 1 and len(extra) == 1
    width, height = Image.open(io.BytesIO(extra[0])).size
    assert width > 200 and height > 200


def test_comparison_roc_curves_agree_with_sklearn(runs: tuple[Path, Path]) -> None:
    run = runs[0]
    curves = roc_from_output(run, ["bdt", "fisher"])
    assert set(curves) == {"bdt", "fisher"}
    with uproot.open(run / "output.root") as f:
        t = f["TestTree"].arrays(["classID", "weight", "bdt", "fisher"], library="np")
    is_signal = t["classID"] == 0
    assert 0 < is_signal.sum() < len(is_signal)
    metrics = _metrics(run)["methods"]
    for name, (eb, es) in curves.items():
        auc = float(np.trapezoid(es, eb))
        assert auc == pytest.approx(roc_auc_score(is_signal, t[name], sample_weight=t["weight"]),
                                    abs=1e-12)
        assert auc == pytest.approx(metrics[name]["test"]["roc_auc"], abs=1e-12)
        assert eb[0] == es[0] == 0.0 and eb[-1] == pytest.approx(1.0)


def test_comparison_leaves_out_methods_without_a_branch(runs: tuple[Path, Path],
                                                        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="mva.report"):
        curves = roc_from_output(runs[0], ["fisher", "nosuchmethod"])
    assert set(curves) == {"fisher"}
    assert "nosuchmethod" in caplog.text


def test_run_labels_tell_equal_directory_names_apart() -> None:
    assert run_labels([Path("/x/a/run"), Path("/x/b/run"), Path("/x/other")]) == [
        "a/run", "b/run", "other"]
    assert run_labels([Path("/p/one"), Path("/p/two")]) == ["one", "two"]


def test_runs_of_different_tasks_cannot_be_compared(runs: tuple[Path, Path],
                                                    tmp_path: Path) -> None:
    reg = _regression_run(tmp_path / "reg", {"bdt": {"sigma_eff": 0.5}})
    with pytest.raises(InputError, match="different tasks"):
        write_report([runs[0], reg], output=tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()


# --------------------------------------------------------------------------- atomic writing


def test_failed_rename_leaves_no_report_and_no_temporary(runs: tuple[Path, Path],
                                                          tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    def fail(src: Any, dst: Any) -> None:
        # the temporary file is complete at this point: it must still be cleaned up
        assert Path(src).parent == out_dir and Path(src).stat().st_size > 0
        raise OSError("disk full")

    monkeypatch.setattr(mva.report.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_report([runs[0]], output=out_dir / REPORT_NAME)
    assert list(out_dir.iterdir()) == []


def test_failure_while_reading_keeps_the_previous_report(runs: tuple[Path, Path],
                                                         tmp_path: Path) -> None:
    run = _copy_run(runs[1], tmp_path / "broken")
    previous = "<!DOCTYPE html><p>previous report</p>"
    (run / REPORT_NAME).write_text(previous)
    (run / "metrics.json").write_text('{"task": "classification", "methods": {')
    listing = sorted(p.name for p in run.iterdir())
    with pytest.raises(InputError, match="metrics.json"):
        write_report([run])
    assert (run / REPORT_NAME).read_text() == previous
    assert sorted(p.name for p in run.iterdir()) == listing


def test_a_directory_without_metrics_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no metrics.json"):
        write_report([tmp_path])
    assert not (tmp_path / REPORT_NAME).exists()


# --------------------------------------------------------------------------- regression


def _regression_run(path: Path, methods: dict[str, dict[str, float]]) -> Path:
    """A run directory with only metrics.json, in the layout ``mva train`` writes."""
    path.mkdir(parents=True)
    metrics = {"task": "regression", "methods": {
        n: {"test": t, "train": {k: 2 * v for k, v in t.items()}, "fit_seconds": 0.1}
        for n, t in methods.items()}}
    (path / "metrics.json").write_text(json.dumps(metrics))
    return path


def test_regression_summary_highlights_the_smallest_sigma_eff(tmp_path: Path) -> None:
    keys = ("bias", "rms", "rms_trunc", "mae", "sigma_eff", "median")
    rng = np.random.default_rng(3)
    methods = {n: dict(zip(keys, map(float, rng.uniform(0.1, 2.0, len(keys))), strict=True))
               for n in ("bdt", "mlp", "knn")}
    methods["mlp"].update(pull_sigma_eff=1.05, coverage_68=0.66)
    run = _regression_run(tmp_path / "reg", methods)
    page = Page(write_report([run]).read_text())
    rows = _by_method(page)
    assert set(rows) == set(methods)
    for name, m in methods.items():
        for key in (*keys, "pull_sigma_eff", "coverage_68"):
            cell = _cell(rows[name], _column(page, "summary", key))
            if key in m:
                assert float(cell["attrs"]["data-v"]) == m[key]
            else:
                assert "data-v" not in cell["attrs"] and cell["text"].strip() == "–"
    best = min(methods, key=lambda n: methods[n]["sigma_eff"])
    assert [n for n, r in rows.items() if "best" in r["attrs"].get("class", "")] == [best]
    # no manifest, no config: said so, not a crash
    joined = "".join(page.text)
    assert "No config.yaml" in joined and "no provenance" in joined


def test_regression_with_several_targets_has_one_row_per_target(tmp_path: Path) -> None:
    path = tmp_path / "multi"
    path.mkdir()
    per_target = {"bdt": {"E": 0.3, "eta": 0.02}, "mlp": {"E": 0.2, "eta": 0.05}}
    metrics = {"task": "regression", "methods": {
        n: {"test": {t: {"sigma_eff": s, "bias": 0.0} for t, s in v.items()}, "train": {}}
        for n, v in per_target.items()}}
    (path / "metrics.json").write_text(json.dumps(metrics))
    page = Page(write_report([path]).read_text())
    rows = page.body_rows("summary")
    assert [(r["attrs"]["data-method"], r["attrs"]["data-target"]) for r in rows] == [
        ("bdt", "E"), ("bdt", "eta"), ("mlp", "E"), ("mlp", "eta")]
    best = {(r["attrs"]["data-method"], r["attrs"]["data-target"]) for r in rows
            if "best" in r["attrs"].get("class", "")}
    assert best == {("mlp", "E"), ("bdt", "eta")}


def test_ranking_puts_variables_without_separation_last(tmp_path: Path) -> None:
    path = tmp_path / "rank"
    path.mkdir()
    metrics = {"task": "classification",
               "variables": {"separation": {"a": 0.0, "b": 0.2, "c": 0.1}},
               "methods": {"m": {"test": {"roc_auc": 0.8}, "importance": {
                   "permutation_auc_drop": {"d": 0.3, "a": 0.0, "b": 0.1, "c": 0.2}}}}}
    (path / "metrics.json").write_text(json.dumps(metrics))
    page = Page(write_report([path]).read_text())
    assert [r["attrs"]["data-variable"] for r in page.body_rows("ranking")] == ["b", "c", "a", "d"]


def test_comparison_of_regression_runs_is_a_table(tmp_path: Path) -> None:
    a = _regression_run(tmp_path / "a", {"bdt": {"sigma_eff": 0.5, "rms": 0.6, "bias": 0.01},
                                         "mlp": {"sigma_eff": 0.4, "rms": 0.7, "bias": 0.0}})
    b = _regression_run(tmp_path / "b", {"bdt": {"sigma_eff": 0.3, "rms": 0.9, "bias": -0.1}})
    page = Page(write_report([a, b]).read_text())
    rows = page.body_rows("comparison")
    assert [(r["attrs"]["data-run"], r["attrs"]["data-method"]) for r in rows] == [
        ("a", "bdt"), ("a", "mlp"), ("b", "bdt")]
    col = _column(page, "comparison", "sigma_eff")
    assert [float(_cell(r, col)["attrs"]["data-v"]) for r in rows] == [0.5, 0.4, 0.3]
    assert [r["attrs"].get("class", "") for r in rows] == ["", "", "best"]
    assert page.images() == []  # no ROC curves for regression


def _tiny_png(path: Path, colour: tuple[int, int, int]) -> None:
    Image.new("RGB", (8, 6), colour).save(path)


def test_plots_go_to_the_method_with_the_longest_matching_name(tmp_path: Path) -> None:
    path = tmp_path / "names"
    (path / "plots").mkdir(parents=True)
    metrics = {"task": "classification", "methods": {
        "bdt": {"test": {"roc_auc": 0.8}}, "bdt_deep": {"test": {"roc_auc": 0.9}}}}
    (path / "metrics.json").write_text(json.dumps(metrics))
    stems = ["bdt_overtraining", "bdt_deep_overtraining", "bdt_deep_loss", "roc", "extra"]
    for k, stem in enumerate(stems):
        _tiny_png(path / "plots" / f"{stem}.png", (40 * k, 0, 0))
    (path / "plots" / "broken.png").write_bytes(b"not a png")
    text = write_report([path]).read_text()
    at = {stem: text.index(f"plots/{stem}.png") for stem in stems}
    overview, bdt, deep = (text.index(f'id="{s}"') for s in ("overview", "m-bdt", "m-bdt_deep"))
    assert overview < at["roc"] < at["extra"] < bdt < at["bdt_overtraining"] < deep
    # within a method: overtraining before loss, whatever the file order
    assert deep < at["bdt_deep_overtraining"] < at["bdt_deep_loss"]
    assert "plots/broken.png" not in text
    assert len(Page(text).images()) == len(stems)


def test_comparison_of_several_targets_has_a_verdict_per_target(tmp_path: Path) -> None:
    from mva.evaluation import uncertainty as unc
    from mva.tasks.base import comparison_lines

    rng = np.random.default_rng(5)
    d = {"bdt": rng.normal(0, 1.0, 4000), "mlp": rng.normal(0, 1.3, 4000)}
    comparison = {t: {"sigma_eff": unc.compare({n: unc.sigma_eff(x * s) for n, x in d.items()},
                                               larger_is_better=False)}
                  for t, s in (("E", 1.0), ("eta", 0.01))}
    path = tmp_path / "multi"
    path.mkdir()
    metrics = {"task": "regression", "comparison": comparison, "methods": {
        n: {"test": {"E": {"sigma_eff": 1.0}, "eta": {"sigma_eff": 0.01}}, "train": {}}
        for n in d}}
    (path / "metrics.json").write_text(json.dumps(metrics))
    page = Page(write_report([path]).read_text())
    rows = page.body_rows("method-comparison")
    assert [(_cell(r, 1)["text"], _cell(r, 2)["text"], _cell(r, 3)["text"]) for r in rows] == [
        ("E", "bdt", "mlp"), ("eta", "bdt", "mlp")]
    for r, target in zip(rows, ("E", "eta"), strict=True):
        c = comparison[target]["sigma_eff"]
        assert float(_cell(r, 4)["attrs"]["data-v"]) == c["diff"] < 0   # smaller is better
        assert c["significant"] and c["z"] > 2
    text = " ".join("".join(page.text).split())
    assert text.count("bdt is significantly better than mlp") == 2
    lines = comparison_lines(metrics)
    assert [ln.split(":")[:2] for ln in lines if ln] == [["E", " sigma_eff"], ["eta", " sigma_eff"]]
