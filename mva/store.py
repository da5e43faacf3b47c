"""Trained models on disk, without pickle, with checksums.

``RUN_DIR/models/manifest.json`` lists every method with its type, parameters, preprocessing (as
JSON), score densities and its files with SHA-256 sums; the method's own state lives in
``models/<method>/`` as ``meta.json``, ``arrays.npz`` (read with ``allow_pickle=False``) and any
blobs in the library's own format (xgboost UBJSON). A k-fold run has one model per fold, in
``models/<method>/fold<k>/``, listed under the method's ``folds`` in the manifest.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mva.errors import InputError
from mva.methods import method_class
from mva.methods.base import Method
from mva.preprocessing import Pipeline

__all__ = ["TrainedMethod", "FoldedMethod", "save_models", "load_models", "sha256", "MANIFEST",
           "fold_dir"]

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class TrainedMethod:
    """A method as it is applied: preprocessing, the fitted model, and its evaluation extras."""

    name: str
    type: str
    params: dict[str, Any]
    pipeline: Pipeline
    model: Method
    extras: dict[str, Any] = field(default_factory=dict)

    def predict(self, X: np.ndarray, fold: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray | None]:
        """Prediction and width (or None); ``fold`` is for k-fold methods and unused here."""
        return self.model.predict_with_sigma(self.pipeline.transform(X))

    def densities(self) -> Any:
        """The stored score densities for P(S|y) and the Rarity, or None."""
        d = self.extras.get("densities")
        if d is None:
            return None
        from mva.evaluation.probability import ScoreDensities

        return ScoreDensities.from_dict(d)


@dataclass
class FoldedMethod:
    """A method trained once per fold of a k-fold split: ``folds[k]`` never saw fold k.

    ``predict(X, fold)`` routes every event to the model of its fold (the out-of-fold score);
    without ``fold`` the fold models are averaged (data, or inputs without the fold branch).
    ``model`` and ``pipeline`` are those of fold 0 (its loss curves, notes and BDT gain)."""

    name: str
    type: str
    params: dict[str, Any]
    folds: list[TrainedMethod]
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> Method:
        return self.folds[0].model

    @property
    def pipeline(self) -> Pipeline:
        return self.folds[0].pipeline

    def predict(self, X: np.ndarray, fold: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray | None]:
        if fold is None:
            preds = [tm.predict(X) for tm in self.folds]
            p = np.stack([p for p, _ in preds])
            mean = p.mean(axis=0)
            if preds[0][1] is None:
                return mean, None
            # the width of the average of the fold models: their mean variance and their
            # spread around each other
            var = np.mean([s**2 for _, s in preds], axis=0) + p.var(axis=0)
            return mean, np.sqrt(var)
        pred = sigma = None
        for k, tm in enumerate(self.folds):
            rows = np.flatnonzero(fold == k)
            p, s = tm.predict(X[rows])
            if pred is None:
                pred = np.empty((len(X), *p.shape[1:]), dtype=p.dtype)
                sigma = None if s is None else np.empty((len(X), *s.shape[1:]), dtype=s.dtype)
            pred[rows] = p
            if sigma is not None:
                sigma[rows] = s
        return pred, sigma

    def densities(self) -> Any:
        return TrainedMethod.densities(self)  # type: ignore[arg-type]


def _save_one(mdir: Path, tm: TrainedMethod) -> dict[str, Any]:
    """One fitted model into ``mdir``: its files, checksums, preprocessing and notes."""
    mdir.mkdir(parents=True, exist_ok=True)
    meta, arrays, blobs = tm.model.state()
    (mdir / "meta.json").write_text(json.dumps(meta, indent=1))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    (mdir / "arrays.npz").write_bytes(buf.getvalue())
    for fname, data in blobs.items():
        (mdir / fname).write_bytes(data)
    files = {p.name: sha256(p) for p in sorted(mdir.iterdir()) if p.is_file()}
    return {"preprocess": tm.pipeline.to_dict(), "files": files, "notes": tm.model.notes_}


def fold_dir(name: str, k: int) -> str:
    """``<method>/fold<k>``: where the model of fold k of a method lives in ``models/``."""
    return f"{name}/fold{k}"


def save_models(directory: Path, task: str, methods: dict[str, TrainedMethod | FoldedMethod],
                info: dict[str, Any]) -> Path:
    """Write every method (every fold model of a k-fold run) and the manifest into
    ``directory`` (created)."""
    directory.mkdir(parents=True, exist_ok=True)
    entries = {}
    for name, tm in methods.items():
        head = {"type": tm.type, "params": tm.params}
        if isinstance(tm, FoldedMethod):
            folds = [_save_one(directory / fold_dir(name, k), f) for k, f in enumerate(tm.folds)]
            entries[name] = {**head, "folds": folds, **tm.extras}
        else:
            entries[name] = {**head, **_save_one(directory / name, tm), **tm.extras}
    manifest = {"format_version": FORMAT_VERSION, "task": task, **info, "methods": entries}
    path = directory / MANIFEST
    path.write_text(json.dumps(manifest, indent=1, default=_json_default))
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "models" / MANIFEST
    if not path.exists():
        raise InputError(f"{run_dir}: not a trained run directory (no models/{MANIFEST})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: corrupt manifest ({exc})") from None


def load_models(run_dir: Path, names: list[str] | None = None
                ) -> tuple[dict[str, Any], dict[str, TrainedMethod]]:
    """Load the manifest and the requested methods, verifying every file's checksum."""
    manifest = read_manifest(run_dir)
    available = manifest["methods"]
    names = names or list(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise InputError(f"{run_dir}: no trained method {', '.join(map(repr, unknown))} "
                         f"(trained: {', '.join(available)})")
    from mva.tasks import task_for_manifest

    task = task_for_manifest(manifest)
    out: dict[str, TrainedMethod | FoldedMethod] = {}
    for name in names:
        entry = available[name]
        extras = {k: v for k, v in entry.items()
                  if k not in ("type", "params", "preprocess", "files", "notes", "folds")}
        if "folds" in entry:
            expected = (manifest.get("split") or {}).get("folds")
            if expected is not None and len(entry["folds"]) != int(expected):
                raise InputError(f"{run_dir}/models/{MANIFEST}: method {name!r} has "
                                 f"{len(entry['folds'])} fold models, the split {expected}")
            folds = [_load_one(Path(run_dir) / "models" / fold_dir(name, k), name, entry, f,
                               manifest["task"], task.n_classes)
                     for k, f in enumerate(entry["folds"])]
            out[name] = FoldedMethod(name, entry["type"], entry["params"], folds, extras)
        else:
            tm = _load_one(Path(run_dir) / "models" / name, name, entry, entry,
                           manifest["task"], task.n_classes)
            tm.extras = extras
            out[name] = tm
    return manifest, out


def _load_one(mdir: Path, name: str, entry: dict[str, Any], files: dict[str, Any], task: str,
              n_classes: int) -> TrainedMethod:
    """One model from ``mdir``, every file's checksum verified first."""
    for fname, digest in files["files"].items():
        fpath = mdir / fname
        if not fpath.is_file():
            raise InputError(f"{fpath}: model file missing")
        if sha256(fpath) != digest:
            raise InputError(f"{fpath}: checksum mismatch (file changed since training)")
    meta = json.loads((mdir / "meta.json").read_text())
    with np.load(mdir / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    blobs = {f: (mdir / f).read_bytes() for f in files["files"]
             if f not in ("meta.json", "arrays.npz")}
    cls = method_class(entry["type"])
    model = cls.from_state(entry["params"], task, (meta, arrays, blobs), n_classes=n_classes)
    return TrainedMethod(name, entry["type"], entry["params"],
                         Pipeline.from_dict(files["preprocess"]), model)
