"""The report of a k-fold run: the cross-validation table; the per-fold ROC plot jobs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from test_report import Page as ReportPage

from mva.evaluation.crossval import cv_summary
from mva.report import RunFiles, build_report, read_run
from mva.report.figures import _CAPTIONS, _METHOD_ORDER, plot_groups
from mva.tasks._folds import fold_roc_jobs

FOLDS = 3

DATA = """\
data:
  signal:     {files: [ex/data/toy.root], tree: TreeS}
  background: {files: [ex/data/toy.root], tree: TreeB, weight: weight}
  features: [var1, var2, var3, var4]
"""

CONFIG_KFOLD = f"""\
task: classification
{DATA}split: {{folds: {FOLDS}, seed: 1}}
methods:
  bdt: {{type: bdt, n_estimators: 20}}
  fisher: {{type: linear}}
evaluation: {{formats: [png]}}
"""

CONFIG_HOLDOUT = f"""\
task: classification
{DATA}split: {{test_fraction: 0.5, seed: 1}}
methods:
  fisher: {{type: linear}}
evaluation: {{plots: false}}
"""


class Page(ReportPage):
    """The report test's page, plus section ids, table-of-contents targets and note texts."""

    def __init__(self, text: str):
        self.sections: list[str] = []
        self.toc: list[str] = []
        self.notes: list[str] = []
        self._nav = False
        self._note: list[str] | None = None
        super().__init__(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        super().handle_starttag(tag, attrs)
        a = {k: v or "" for k, v in attrs}
        if tag == "section":
            self.sections.append(a.get("id", ""))
        elif tag == "nav":
            self._nav = True
        elif tag == "a" and self._nav and a.get("href", "").startswith("#"):
            self.toc.append(a["href"][1:])
        elif tag == "p" and a.get("class") == "note":
            self._note = []

    def handle_endtag(self, tag: str) -> None:
        super().handle_endtag(tag)
        if tag == "nav":
            self._nav = False
        elif tag == "p" and self._note is not None:
            self.notes.append("".join(self._note))
            self._note = None

    def handle_data(self, data: str) -> None:
        super().handle_data(data)
        if self._note is not None:
            self._note.append(data)

    def header(self, table: str) -> list[str]:
        """Texts of the last header row (the column names)."""
        heads = [r for r in self.tables[table] if r["cells"] and r["cells"][0]["tag"] == "th"]
        return [c["text"] for c in heads[-1]["cells"]]


# --------------------------------------------------------------------------- real runs


@pytest.fixture(scope="module")
def kfold_runs(tmp_path_factory: pytest.TempPathFactory, mva: Any) -> dict[str, Path]:
    """A 3-fold run (bdt + fisher, png plots) and a hold-out run (fisher, no plots) of the
    classification toy, trained through the real entry point."""
    base = tmp_path_factory.mktemp("report_kfold")
    res = mva("example", "classification", "-n", 800, "--output", base / "ex", "--seed", 1,
              real=True)
    assert res.returncode == 0, res.stderr
    out = {}
    for name, text in (("kfold", CONFIG_KFOLD), ("holdout", CONFIG_HOLDOUT)):
        config = base / f"{name}.yaml"
        config.write_text(text)
        out[name] = base / name
        res = mva("train", config, "--output", out[name], "--quiet", real=True)
        assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"
    return out


@pytest.fixture(scope="module")
def kfold(kfold_runs: dict[str, Path]) -> dict[str, Any]:
    run = kfold_runs["kfold"]
    metrics = json.loads((run / "metrics.json").read_text())
    return {"run": run, "metrics": metrics, "page": Page(build_report([read_run(run)]))}


def test_kfold_run_has_fold_metrics(kfold: dict[str, Any]) -> None:
    m = kfold["metrics"]
    assert m["split"]["folds"] == FOLDS
    for method in ("bdt", "fisher"):
        assert [f["fold"] for f in m["methods"][method]["folds"]] == list(range(FOLDS))


def test_cv_section_after_summary_before_overview(kfold: dict[str, Any]) -> None:
    page = kfold["page"]
    sections = page.sections
    assert "cv" in sections and "cv" in page.toc
    assert sections.index("summary") < sections.index("cv")
    if "overview" in sections:
        assert sections.index("cv") < sections.index("overview")
    assert sections.index("cv") < sections.index("methods")


def test_cv_table_one_row_per_method(kfold: dict[str, Any]) -> None:
    page, m = kfold["page"], kfold["metrics"]
    rows = page.body_rows("cv")
    assert [r["attrs"]["data-method"] for r in rows] == list(m["methods"])
    head = page.header("cv")
    assert head[:5] == ["method", "type", "AUC", "εS at εB=0.1", "separation"]
    assert head[5:] == [f"fold {k}" for k in range(FOLDS)]


def test_cv_mean_and_std_of_the_folds(kfold: dict[str, Any]) -> None:
    page, m = kfold["page"], kfold["metrics"]
    for row in page.body_rows("cv"):
        name = row["attrs"]["data-method"]
        aucs = np.array([f["test"]["roc_auc"] for f in m["methods"][name]["folds"]])
        assert len(aucs) == FOLDS
        cell = row["cells"][2]
        mean, std = float(cell["attrs"]["data-v"]), float(cell["attrs"]["data-std"])
        assert mean == pytest.approx(aucs.mean(), rel=1e-12)
        assert std == pytest.approx(np.std(aucs, ddof=1), rel=1e-12)
        # both are visible: "0.9312 ± 0.0041"
        assert cell["text"] == f"{aucs.mean():.4f} ± {np.std(aucs, ddof=1):.4f}"
        eff = np.array([f["test"]["eff_sig_at_bkg"]["0.1"] for f in m["methods"][name]["folds"]])
        assert float(row["cells"][3]["attrs"]["data-v"]) == pytest.approx(eff.mean())
        # one column per fold with the fold's test AUC
        per_fold = [float(c["attrs"]["data-v"]) for c in row["cells"][5:]]
        assert per_fold == pytest.approx(list(aucs), rel=1e-12)


def test_cv_note(kfold: dict[str, Any]) -> None:
    note = next(n for n in kfold["page"].notes if "ddof 1" in n)
    assert f"over the {FOLDS} folds" in note
    assert "random folds (seed 1)" in note


def test_holdout_report_has_no_cv(kfold_runs: dict[str, Path]) -> None:
    run = read_run(kfold_runs["holdout"])
    assert "split" not in run.metrics
    page = Page(build_report([run]))
    assert "cv" not in page.sections and "cv" not in page.toc and "cv" not in page.tables
    assert "summary" in page.tables


def test_cv_note_names_the_fold_expression(kfold: dict[str, Any]) -> None:
    metrics = copy.deepcopy(kfold["metrics"])
    metrics["split"]["fold_expression"] = "evt % 3 < 1 && x"
    html = build_report([RunFiles(kfold["run"], "expr", metrics)])
    assert "fold expression <code>evt % 3 &lt; 1 &amp;&amp; x</code>" in html
    assert "random folds" not in html


# --------------------------------------------------------------------------- other tasks


def _fake_method(per_fold: list[dict[str, Any]]) -> dict[str, Any]:
    return {"test": per_fold[0], "folds": [{"fold": k, "n_test": 10, "test": t, "train": t}
                                          for k, t in enumerate(per_fold)],
            "cv": cv_summary(per_fold)}


def test_cv_table_multiclass(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    per_fold = [{"accuracy": float(a), "roc_auc_macro": float(a + 0.1), "log_loss": float(1 - a),
                 "roc_auc_ovr": {"a": 0.9, "b": 0.8}} for a in rng.uniform(0.6, 0.8, 4)]
    metrics = {"task": "multiclass", "classes": ["a", "b", "c"],
               "split": {"folds": 4, "fold_expression": "evt % 4", "seed": 0},
               "methods": {"bdt": _fake_method(per_fold)}}
    page = Page(build_report([RunFiles(tmp_path, "mc", metrics)]))
    assert page.header("cv") == ["method", "type", "accuracy", "macro AUC", "log loss",
                                 "fold 0", "fold 1", "fold 2", "fold 3"]
    (row,) = page.body_rows("cv")
    acc = np.array([f["accuracy"] for f in per_fold])
    assert float(row["cells"][2]["attrs"]["data-v"]) == pytest.approx(acc.mean())
    assert float(row["cells"][2]["attrs"]["data-std"]) == pytest.approx(acc.std(ddof=1))
    assert [float(c["attrs"]["data-v"]) for c in row["cells"][5:]] == pytest.approx(list(acc))


def test_cv_table_multi_target_regression(tmp_path: Path) -> None:
    def figs(r: float) -> dict[str, float]:
        return {"rms": r, "sigma_eff": 0.8 * r, "bias": r - 1.0}

    per_fold = [{"t1": figs(1.0 + k), "t2": figs(10.0 + k)} for k in range(3)]
    metrics = {"task": "regression", "split": {"folds": 3, "fold_expression": None, "seed": 5},
               "methods": {"bdt": _fake_method(per_fold), "linear": _fake_method(per_fold)}}
    page = Page(build_report([RunFiles(tmp_path, "reg", metrics)]))
    head = page.header("cv")
    assert head[:6] == ["method", "type", "target", "rms", "sigma_eff", "bias"]
    rows = page.body_rows("cv")
    assert [(r["attrs"]["data-method"], r["attrs"]["data-target"]) for r in rows] == [
        ("bdt", "t1"), ("bdt", "t2"), ("linear", "t1"), ("linear", "t2")]
    t2 = rows[1]["cells"]
    assert float(t2[3]["attrs"]["data-v"]) == pytest.approx(11.0)
    assert float(t2[3]["attrs"]["data-std"]) == pytest.approx(1.0)
    assert [float(c["attrs"]["data-v"]) for c in t2[6:]] == [10.0, 11.0, 12.0]
    assert any("random folds (seed 5)" in n for n in page.notes)


def test_cv_table_single_target_regression(tmp_path: Path) -> None:
    per_fold = [{"rms": 1.0 + k, "sigma_eff": 0.5, "bias": 0.0} for k in range(3)]
    metrics = {"task": "regression", "split": {"folds": 3, "seed": 5},
               "methods": {"bdt": _fake_method(per_fold)}}
    page = Page(build_report([RunFiles(tmp_path, "reg", metrics)]))
    assert page.header("cv")[:3] == ["method", "type", "rms"]
    (row,) = page.body_rows("cv")
    assert "data-target" not in row["attrs"]
    assert float(row["cells"][2]["attrs"]["data-v"]) == pytest.approx(2.0)


# --------------------------------------------------------------------------- per-fold ROC


def _fake_run(folds: bool = True) -> SimpleNamespace:
    rng = np.random.default_rng(11)
    n = 600
    labels = (rng.random(n) < 0.4).astype(np.int64)  # 1: signal
    scores = rng.normal(labels * 1.2, 1.0)
    weights = rng.uniform(0.5, 2.0, n)
    fold_of = rng.integers(0, 3, n)
    fold_list = [SimpleNamespace(index=k, test=np.flatnonzero(fold_of == k)) for k in range(3)]
    return SimpleNamespace(
        methods={"bdt": SimpleNamespace(pred_test=scores)},
        test=SimpleNamespace(labels=labels, weights=weights),
        folds=fold_list if folds else None)


def test_fold_roc_jobs(tmp_path: Path) -> None:
    run = _fake_run()
    kw = {"formats": ("png",)}
    (job,) = fold_roc_jobs(run, "bdt", tmp_path, kw)
    func, (curves, stem), kwargs, record = job
    assert func == "plot_roc" and kwargs == kw
    assert stem == tmp_path / "bdt_fold_roc"
    assert record == {"file": "bdt_fold_roc.png", "method": "bdt", "kind": "fold_roc",
                      "part": None, "part_of": None}
    assert list(curves) == ["fold 0", "fold 1", "fold 2"]
    for f in run.folds:
        eff_bkg, eff_sig, auc = curves[f"fold {f.index}"]
        expected = roc_auc_score(run.test.labels[f.test], run.methods["bdt"].pred_test[f.test],
                                 sample_weight=run.test.weights[f.test])
        assert auc == pytest.approx(expected, abs=1e-10)
        assert float(np.trapezoid(eff_sig, eff_bkg)) == pytest.approx(expected, abs=1e-10)


def test_fold_roc_jobs_hold_out(tmp_path: Path) -> None:
    assert fold_roc_jobs(_fake_run(folds=False), "bdt", tmp_path, {}) == []


def test_fold_roc_plot_in_report_order(tmp_path: Path) -> None:
    from mva.evaluation import plots

    (job,) = fold_roc_jobs(_fake_run(), "bdt", tmp_path, {"formats": ("png",)})
    func, args, kwargs, record = job
    written = getattr(plots, func)(*args, **kwargs)
    assert [p.name for p in written] == ["bdt_fold_roc.png"]
    # the report puts it after the method's overtraining plot, with its caption
    (tmp_path / "bdt_overtraining.png").write_bytes(written[0].read_bytes())
    (tmp_path / "bdt_cut_efficiencies.png").write_bytes(written[0].read_bytes())
    records = [{"file": "bdt_cut_efficiencies.png", "method": "bdt", "kind": "cut_efficiencies"},
               record, {"file": "bdt_overtraining.png", "method": "bdt", "kind": "overtraining"}]
    (tmp_path / "index.json").write_text(json.dumps({"plots": records}))
    pngs = sorted(tmp_path.glob("*.png"))
    _, per_method = plot_groups(tmp_path, pngs, ["bdt"])
    assert [p.name for _, p in per_method["bdt"]] == [
        "bdt_overtraining.png", "bdt_fold_roc.png", "bdt_cut_efficiencies.png"]
    assert per_method["bdt"][1][0] == _CAPTIONS["fold_roc"]
    assert _METHOD_ORDER.index("fold_roc") == _METHOD_ORDER.index("overtraining") + 1
