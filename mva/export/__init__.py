"""``mva export``: trained methods as files that CMSSW, Athena and ROOT run.

Formats (:data:`FORMATS`):

``onnx``
    One ONNX model per method (per method and fold of a k-fold run: ``<method>_fold<k>.onnx``)
    with its preprocessing inside the graph: input ``features`` (float32 ``[N, n_features]``,
    the raw feature values in the run's feature order), outputs ``score`` (binary ``[N]``),
    ``probabilities`` (multiclass ``[N, K]``) or ``prediction`` (regression ``[N, n_targets]``,
    plus ``sigma`` where the method predicts a width); see :mod:`mva.export.onnx_model`.
``xgboost-json``
    A BDT in xgboost's own JSON model format (what ROOT's RBDT and CMSSW's XGBoost interface
    read), trees up to its best iteration; only without preprocessing.

Every model has a sidecar ``<model stem>.inputs.json`` (feature names and expressions, task,
classes, outputs; the way weaver ships its preprocess.json), and the ONNX models carry the same
in their ``metadata_props``. ``export.json`` lists every file with its SHA-256 and the check.

The export directory is built under a temporary name beside the output and renamed into place
when complete (and checked, with ``check``); an existing output is replaced only with ``force``
and only if it is an export directory (or empty).

Method converters are registered by method type in :data:`EXPORTERS`, one module per method
family, like :data:`mva.methods.METHODS`.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mva.errors import InputError, MvaError
from mva.export.knn import KNN_MAX_VALUES
from mva.io.writers import _check_replaceable, _exists_error, atomic_directory

__all__ = ["export_run", "ExportResult", "ExportedModel", "ExportError", "EXPORTERS", "FORMATS",
           "exporter", "TOLERANCE", "KNN_MAX_VALUES", "SIDECAR_SUFFIX", "INDEX"]

log = logging.getLogger(__name__)

#: method type -> "module:function" converting a fitted method to ONNX nodes
EXPORTERS: dict[str, str] = {
    "knn": "mva.export.knn:to_onnx",
    "bdt": "mva.export.bdt:to_onnx",
    "svm": "mva.export.svm:to_onnx",
    "mlp": "mva.export.mlp:to_onnx",
    "linear": "mva.export.linear:to_onnx",
}

#: export format -> file extension of its models
FORMATS: dict[str, str] = {"onnx": ".onnx", "xgboost-json": ".json"}

#: the largest difference from the TestTree scores that the check accepts: absolute for values
#: up to 1 (scores, probabilities), relative beyond (regression; float32 holds 7 digits)
TOLERANCE = 1e-5
SIDECAR_SUFFIX = ".inputs.json"
#: the index of an export directory: its files and checks (it marks a directory that
#: ``force`` may replace)
INDEX = "export.json"
_INSTALL = "pip install 'mva[export]'"


class ExportError(MvaError):
    """A method cannot be exported, a package for it is missing, or an exported model does not
    reproduce the run's scores."""


def exporter(kind: str) -> Any:
    """The ONNX converter of a method type: ``to_onnx(features, model, task) -> outputs``."""
    module, _, func = EXPORTERS[kind].partition(":")
    return getattr(importlib.import_module(module), func)


@dataclass
class ExportedModel:
    """One exported file: which model it holds and, after the check, how close it came."""

    method: str
    type: str
    fold: int | None
    file: str
    sidecar: str
    outputs: list[str]
    n_checked: int | None = None
    max_diff: float | None = None


@dataclass
class ExportResult:
    """What :func:`export_run` wrote."""

    output: Path
    format: str
    models: list[ExportedModel] = field(default_factory=list)
    checked: bool = False

    def table(self) -> str:
        """One line per exported file (with the check: events compared, max |difference|)."""
        width = max([len(m.file) for m in self.models] + [4])
        head = f"{'method':<14}{'fold':>5}  {'file':<{width}}"
        if self.checked:
            head += f"{'events':>9}{'max |diff|':>13}"
        lines = [head]
        for m in self.models:
            fold = "-" if m.fold is None else str(m.fold)
            line = f"{m.method:<14}{fold:>5}  {m.file:<{width}}"
            if self.checked:
                line += f"{m.n_checked:>9}{m.max_diff:>13.2e}"
            lines.append(line)
        return "\n".join(lines)


def _require(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(f"mva export needs {', '.join(missing)} (not installed): {_INSTALL}")


@dataclass
class _Unit:
    """One model to export: a method, or one fold model of a k-fold method."""

    name: str
    type: str
    fold: int | None
    trained: Any  # mva.store.TrainedMethod

    @property
    def stem(self) -> str:
        return self.name if self.fold is None else f"{self.name}_fold{self.fold}"


def _units(name: str, tm: Any) -> list[_Unit]:
    from mva.store import FoldedMethod

    if isinstance(tm, FoldedMethod):
        return [_Unit(name, tm.type, k, f) for k, f in enumerate(tm.folds)]
    return [_Unit(name, tm.type, None, tm)]


def _why_not(fmt: str, unit: _Unit, knn_max_values: int) -> str | None:
    """Why ``unit`` cannot be exported in ``fmt`` (None: it can)."""
    steps = unit.trained.pipeline.names
    if fmt == "xgboost-json":
        if unit.type != "bdt":
            return (f"its type is {unit.type}, and xgboost-json holds xgboost boosters (type "
                    "bdt) only; use --format onnx")
        if steps:
            return (f"it has preprocessing {steps}, which xgboost's JSON cannot hold (the "
                    "booster was trained on the transformed features); use --format onnx, which "
                    "puts the preprocessing in the graph, or train the BDT with preprocess: []")
        return None
    if unit.type not in EXPORTERS:
        return f"method type {unit.type!r} has no ONNX exporter (made by a newer mva?)"
    if unit.type == "knn":
        from mva.export.knn import knn_values

        n = knn_values(unit.trained.model)
        if n > knn_max_values:
            X = unit.trained.model.X_
            return (f"its {X.shape[0]} training events x {X.shape[1]} features = {n} values "
                    f"exceed {knn_max_values}, up to which a kNN graph is sensible (every "
                    "training event is a constant in the file and each evaluation computes the "
                    "distance to all of them); use a BDT or MLP, or train the kNN on fewer events")
        search = getattr(unit.trained.model, "search_", None)
        if search is not None and search.kind != "exact":
            return (f"it found its neighbours with an approximate index (search: {search.kind}) "
                    "and the graph computes the exact ones, so their scores would differ; train "
                    "it with search: exact")
    return None


def _select(fmt: str, trained: dict[str, Any], explicit: bool, knn_max_values: int
            ) -> list[_Unit]:
    """The models to export: every one of the methods named (each must be exportable), or,
    without names, every one that the format can hold (the others are skipped with a
    warning; none at all is an error)."""
    units, skipped = [], {}
    for name, tm in trained.items():
        if not explicit and fmt == "xgboost-json" and tm.type != "bdt":
            continue  # not asked for, and not a booster: nothing to say
        for u in _units(name, tm):
            why = _why_not(fmt, u, knn_max_values)
            if why is None:
                units.append(u)
            elif explicit:
                raise ExportError(f"{u.name}: cannot be exported as {fmt}: {why}")
            else:
                skipped[name] = why
    for name, why in skipped.items():
        log.warning("%s not exported: %s", name, why)
    if not units and not skipped:
        raise ExportError(f"the run has no bdt (methods: {', '.join(trained)}): {fmt} holds "
                          "xgboost boosters only; use --format onnx")
    if not units:
        reasons = "; ".join(f"{n}: {w}" for n, w in skipped.items())
        raise ExportError(f"no method of the run can be exported as {fmt} ({reasons})")
    return units


@dataclass
class _Run:
    """What every exported model records of its run."""

    path: Path
    manifest: dict[str, Any]
    checksum: str
    task: Any

    @property
    def features(self) -> list[str]:
        return list(self.manifest["features"])

    @property
    def feature_branches(self) -> list[str]:
        from mva.naming import unique_names

        return list(self.manifest.get("feature_branches") or unique_names(self.features))

    @property
    def width(self) -> int:
        """Classes (multiclass) or targets (regression) per event; 1 for binary."""
        if self.task.name == "multiclass":
            return len(self.task.classes)
        if self.task.name == "regression":
            return len(self.task.targets)
        return 1


def _describe(run: _Run, unit: _Unit, fmt: str, file: str, outputs: list[str]) -> dict[str, Any]:
    """The sidecar of one exported model (the ONNX metadata holds the same, flattened)."""
    import mva

    split = run.manifest.get("split") or {}
    task = run.task.name
    # one score per event; xgboost also predicts one value per event for one target
    flat = task == "classification" or (fmt == "xgboost-json" and run.width == 1)
    out_info = {o: {"dtype": "float32", "shape": [-1] if flat else [-1, run.width]}
                for o in outputs}
    info: dict[str, Any] = {
        "format": fmt, "model": file, "mva_version": mva.__version__,
        "method": unit.name, "type": unit.type, "fold": unit.fold,
        "folds": split.get("folds") if unit.fold is not None else None,
        "fold_expression": split.get("fold_expression") if unit.fold is not None else None,
        "task": task,
        "classes": run.task.classes if task != "regression" else None,
        "targets": run.task.targets if task == "regression" else None,
        "run": {"path": str(run.path.resolve()), "manifest_sha256": run.checksum},
        "input_names": ["features"] if fmt == "onnx" else [],
        "features": {"var_names": run.feature_branches, "expressions": run.features,
                     "dtype": "float32", "shape": [-1, len(run.features)],
                     "default": run.manifest.get("default", -999.0)},
        "preprocessing": unit.trained.pipeline.names,
        "output_names": outputs, "outputs": out_info,
    }
    if fmt == "xgboost-json":
        info["preprocessing_in_model"] = False
        info["objective"] = json.loads(unit.trained.model.booster_.save_config())[
            "learner"]["objective"]["name"]
    else:
        info["preprocessing_in_model"] = True
    return info


def _onnx_metadata(sidecar: dict[str, Any]) -> dict[str, Any]:
    keys = ("mva_version", "method", "type", "fold", "folds", "fold_expression", "task",
            "classes", "targets", "preprocessing", "output_names")
    meta = {k: sidecar[k] for k in keys if sidecar[k] is not None}
    meta["features"] = sidecar["features"]["expressions"]
    meta["feature_names"] = sidecar["features"]["var_names"]
    meta["default"] = sidecar["features"]["default"]
    meta["run_checksum"] = f"sha256:{sidecar['run']['manifest_sha256']}"
    return meta


def _predicts_width(run: _Run, unit: _Unit) -> bool:
    """Whether the method predicts a per-event width (asked of the method itself, on one
    event)."""
    if run.task.name != "regression":
        return False
    import numpy as np

    return unit.trained.model.predict_with_sigma(np.zeros((1, len(run.features))))[1] is not None


def _write_onnx(run: _Run, unit: _Unit, directory: Path) -> ExportedModel:
    from mva.export.bdt import UnsupportedBooster
    from mva.export.mlp import UnsupportedLoss
    from mva.export.onnx_model import build_model, output_names

    file = f"{unit.stem}.onnx"
    outputs = output_names(run.task.name, _predicts_width(run, unit))
    sidecar = _describe(run, unit, "onnx", file, outputs)
    what = f"{unit.name}" + ("" if unit.fold is None else f" (fold {unit.fold})")
    doc = (f"mva {unit.type} '{what}' for {run.task.name}; input 'features' = "
           f"{run.features}; outputs {outputs}")
    try:
        model = build_model(unit.trained, run.task.name, len(run.features), run.width,
                            exporter(unit.type), _onnx_metadata(sidecar), doc)
    except (UnsupportedBooster, UnsupportedLoss) as exc:
        raise ExportError(f"{unit.name}: cannot be exported as onnx: {exc}") from None
    produced = [o.name for o in model.graph.output]
    if produced != outputs:  # a converter that breaks the documented contract
        raise ExportError(f"{unit.name}: the {unit.type} converter gave outputs {produced}, "
                          f"expected {outputs}")
    (directory / file).write_bytes(model.SerializeToString())
    return _finish(directory, unit, file, sidecar, outputs)


def _write_xgboost_json(run: _Run, unit: _Unit, directory: Path) -> ExportedModel:
    model = unit.trained.model
    booster = model.booster_
    if model.best_iteration_ < booster.num_boosted_rounds():
        # early stopping: mva scores with the trees up to the best iteration only
        booster = booster[:model.best_iteration_]
    file = f"{unit.stem}.json"
    booster.save_model(str(directory / file))
    outputs = ["predict"]
    sidecar = _describe(run, unit, "xgboost-json", file, outputs)
    return _finish(directory, unit, file, sidecar, outputs)


def _finish(directory: Path, unit: _Unit, file: str, sidecar: dict[str, Any],
            outputs: list[str]) -> ExportedModel:
    side = f"{unit.stem}{SIDECAR_SUFFIX}"
    (directory / side).write_text(json.dumps(sidecar, indent=1) + "\n")
    log.info("exported %s -> %s", unit.stem, file)
    return ExportedModel(unit.name, unit.type, unit.fold, file, side, outputs)


_WRITERS = {"onnx": _write_onnx, "xgboost-json": _write_xgboost_json}


def export_run(
    run_dir: str | Path, output: str | Path, *, fmt: str = "onnx",
    methods: Sequence[str] | None = None, check: bool = False, force: bool = False,
    check_events: int | None = None, knn_max_values: int = KNN_MAX_VALUES,
) -> ExportResult:
    """Export the trained methods of ``run_dir`` into the directory ``output``.

    Parameters
    ----------
    fmt : ``"onnx"`` or ``"xgboost-json"``
    methods : names of trained methods (default: all that the format holds)
    check : run every exported model (onnxruntime; xgboost for the JSON) on the run's TestTree
        events and compare with the scores there: a difference above :data:`TOLERANCE` is an
        :class:`ExportError` and nothing is written
    force : replace an existing export directory
    check_events : compare on the first this many TestTree events (default: all)
    knn_max_values : training events x features up to which a kNN is exported

    Returns
    -------
    ExportResult
        the files written and, with ``check``, the events compared and the largest difference
        per model.
    """
    from mva.store import MANIFEST_SUM, load_models
    from mva.tasks import task_for_manifest

    if fmt not in FORMATS:
        raise InputError(f"--format: unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    _require(*(["onnx"] if fmt == "onnx" else []),
             *(["onnxruntime"] if check and fmt == "onnx" else []))
    run_dir, output = Path(run_dir), Path(output)
    if os.path.lexists(output):  # before any work (checked again when it is replaced)
        if not force:
            raise _exists_error(output)
        _check_replaceable(output, (INDEX,), "export")
    manifest, trained = load_models(run_dir, list(methods) if methods else None)
    checksum = (run_dir / "models" / MANIFEST_SUM).read_text().split()[0]
    run = _Run(run_dir, manifest, checksum, task_for_manifest(manifest))
    units = _select(fmt, trained, bool(methods), knn_max_values)
    result = ExportResult(output, fmt, checked=check)
    with atomic_directory(output, force, markers=(INDEX,), kind="export") as tmp:
        result.models = [_WRITERS[fmt](run, u, tmp) for u in units]
        if check:
            from mva.export.check import check_models

            check_models(run, units, result.models, tmp, fmt, check_events)
            bad = [m for m in result.models if not m.max_diff <= TOLERANCE]
            if bad:
                what = ", ".join(f"{m.file} {m.max_diff:.2e}" for m in bad)
                raise ExportError(f"{output}: check failed: the exported models differ from the "
                                  f"TestTree scores by more than {TOLERANCE:g}: {what}; nothing "
                                  "written")
        _write_index(tmp, run, result)
    return result


def _write_index(directory: Path, run: _Run, result: ExportResult) -> None:
    import mva
    from mva.store import sha256

    models = []
    for m in result.models:
        entry = {"method": m.method, "type": m.type, "fold": m.fold, "file": m.file,
                 "sidecar": m.sidecar, "outputs": m.outputs,
                 "sha256": sha256(directory / m.file)}
        if result.checked:
            entry["check"] = {"events": m.n_checked, "max_diff": m.max_diff,
                              "tolerance": TOLERANCE}
        models.append(entry)
    index = {"format": result.format, "mva_version": mva.__version__,
             "run": {"path": str(run.path.resolve()), "manifest_sha256": run.checksum},
             "task": run.task.name, "models": models}
    (directory / INDEX).write_text(json.dumps(index, indent=1) + "\n")
