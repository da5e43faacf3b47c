"""Trained models on disk, without pickle, with checksums.

``RUN_DIR/models/manifest.json`` lists every method with its type, parameters, preprocessing (as
JSON), score densities and its files with SHA-256 sums; the method's own state lives in
``models/<method>/`` as ``meta.json``, ``arrays.npz`` (read with ``allow_pickle=False``) and any
blobs in the library's own format (xgboost UBJSON). A k-fold run has one model per fold, in
``models/<method>/fold<k>/``, listed under the method's ``folds`` in the manifest.

``models/manifest.sha256`` holds the SHA-256 of ``manifest.json`` (written last), so that the
manifest's own digests can be trusted: loading verifies it first, then reads exactly the files
the manifest lists (plain names inside ``models/``, no symlinks), each verified before use.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
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
MANIFEST_SUM = "manifest.sha256"
FORMAT_VERSION = 1
#: the files every stored model has (besides its blobs)
_REQUIRED = ("meta.json", "arrays.npz")


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
    # the model's own parameters: those of the method, or a fold's tuned ones (tune)
    return {"params": tm.params, "preprocess": tm.pipeline.to_dict(), "files": files,
            "notes": tm.model.notes_}


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
    # last: the digest that vouches for the manifest (and so for every digest in it)
    (directory / MANIFEST_SUM).write_text(f"{sha256(path)}  {MANIFEST}\n")
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _confined(path: Path, root: Path) -> Path:
    """``path`` itself, if it is no symlink and lies inside ``root`` (resolved); else an error."""
    if path.is_symlink():
        raise InputError(f"{path}: symbolic links are not allowed in a run's models")
    if not path.resolve().is_relative_to(root):
        raise InputError(f"{path}: not allowed (outside {root})")
    return path


def _plain_name(name: Any, where: str) -> str:
    """A file name as the manifest lists it: a plain name, no directories, no ``..``."""
    if (not isinstance(name, str) or not name or name in (".", "..") or "/" in name
            or "\\" in name or "\0" in name or Path(name).is_absolute()):
        raise InputError(f"{where}: file name {name!r} not allowed (plain names only)")
    return name


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The manifest of a trained run, its checksum and format version verified."""
    models = Path(run_dir) / "models"
    path = models / MANIFEST
    if not path.exists():
        raise InputError(f"{run_dir}: not a trained run directory (no models/{MANIFEST})")
    root = models.resolve()
    _confined(path, root)
    sum_path = models / MANIFEST_SUM
    if not sum_path.exists() and not sum_path.is_symlink():
        raise InputError(f"{sum_path}: missing: the checksum of {path} (retrain the run)")
    _confined(sum_path, root)
    try:
        expected = sum_path.read_text().split()[0]
    except (OSError, UnicodeDecodeError, IndexError):
        raise InputError(f"{sum_path}: unreadable checksum of {path}") from None
    if sha256(path) != expected:
        raise InputError(f"{path}: checksum mismatch with {MANIFEST_SUM} "
                         "(manifest changed since training)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: corrupt manifest ({exc})") from None
    if not isinstance(manifest, dict):
        raise InputError(f"{path}: corrupt manifest (not a JSON object)")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        if not isinstance(version, int) or isinstance(version, bool):
            what = "no format_version" if version is None else f"format_version {version!r}"
            raise InputError(f"{path}: {what}: not a model manifest of this mva (format "
                             f"{FORMAT_VERSION})")
        age = "newer" if version > FORMAT_VERSION else "older"
        raise InputError(f"{path}: format_version {version}: made by a {age} mva (this one "
                         f"reads format {FORMAT_VERSION}); use that mva or retrain")
    methods = manifest.get("methods")
    if not isinstance(methods, dict):
        raise InputError(f"{path}: corrupt manifest (no 'methods' object)")
    for name, entry in methods.items():
        if not name.isidentifier():
            raise InputError(f"{path}: method name {name!r} not allowed (must be an "
                             "identifier)")
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            raise InputError(f"{path}: corrupt manifest (method {name!r})")
    return manifest


def requested_methods(run_dir: Path, manifest: dict[str, Any], names: list[str] | None
                      ) -> list[str]:
    """The methods of the run to load (default: all); an unknown name is an error."""
    available = manifest["methods"]
    names = names or list(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise InputError(f"{run_dir}: no trained method {', '.join(map(repr, unknown))} "
                         f"(trained: {', '.join(available)})")
    return names


def load_models(run_dir: Path, names: list[str] | None = None,
                manifest: dict[str, Any] | None = None
                ) -> tuple[dict[str, Any], dict[str, TrainedMethod]]:
    """Load the manifest (unless given, as :func:`read_manifest` returned it) and the
    requested methods, verifying every file's checksum."""
    manifest = read_manifest(run_dir) if manifest is None else manifest
    available = manifest["methods"]
    names = requested_methods(run_dir, manifest, names)
    from mva.tasks import task_for_manifest

    task = task_for_manifest(manifest)
    models = Path(run_dir) / "models"
    root = models.resolve()
    where = models / MANIFEST
    task_name = manifest.get("task", "classification")
    out: dict[str, TrainedMethod | FoldedMethod] = {}
    for name in names:
        entry = available[name]
        extras = {k: v for k, v in entry.items()
                  if k not in ("type", "params", "preprocess", "files", "notes", "folds")}
        if "folds" in entry:
            if not isinstance(entry["folds"], list):
                raise InputError(f"{where}: corrupt manifest (method {name!r}: 'folds')")
            expected = (manifest.get("split") or {}).get("folds")
            if expected is not None and len(entry["folds"]) != int(expected):
                raise InputError(f"{where}: method {name!r} has "
                                 f"{len(entry['folds'])} fold models, the split {expected}")
            _confined(models / name, root)
            folds = [_load_one(models / fold_dir(name, k), root, name, entry, f, task_name,
                               task.n_classes)
                     for k, f in enumerate(entry["folds"])]
            out[name] = FoldedMethod(name, entry["type"], entry.get("params") or {}, folds,
                                     extras)
        else:
            tm = _load_one(models / name, root, name, entry, entry, task_name,
                           task.n_classes)
            tm.extras = extras
            out[name] = tm
    return manifest, out


def _load_one(mdir: Path, root: Path, name: str, entry: dict[str, Any], files: dict[str, Any],
              task: str, n_classes: int) -> TrainedMethod:
    """One model from ``mdir`` (inside ``root``, the resolved ``models/``): exactly the files
    the manifest lists, each checksum verified first."""
    _confined(mdir, root)
    listed = files.get("files") if isinstance(files, dict) else None
    if not isinstance(listed, dict):
        raise InputError(f"{mdir}: no files listed in the manifest")
    for fname in _REQUIRED:
        if fname not in listed:
            raise InputError(f"{mdir / fname}: not listed in the manifest")
    for fname, digest in listed.items():
        fpath = mdir / _plain_name(fname, str(mdir))
        if not fpath.exists() and not fpath.is_symlink():
            raise InputError(f"{fpath}: model file missing")
        _confined(fpath, root)
        if not fpath.is_file():
            raise InputError(f"{fpath}: model file missing")
        if sha256(fpath) != digest:
            raise InputError(f"{fpath}: checksum mismatch (file changed since training)")
    meta_path = mdir / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{meta_path}: corrupt model file ({exc})") from None
    if not isinstance(meta, dict):
        raise InputError(f"{meta_path}: corrupt model file (not a JSON object)")
    npz_path = mdir / "arrays.npz"
    try:
        with np.load(npz_path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, AttributeError) as exc:
        raise InputError(f"{npz_path}: corrupt model file ({exc})") from None
    blobs = {f: (mdir / f).read_bytes() for f in listed if f not in _REQUIRED}
    try:
        cls = method_class(entry["type"])
    except KeyError:
        raise InputError(f"{mdir}: unknown method type {entry['type']!r} in the manifest "
                         "(made by a newer mva?)") from None
    params = files.get("params") if isinstance(files.get("params"), dict) else None
    params = params if params is not None else entry.get("params") or {}
    try:
        model = cls.from_state(params, task, (meta, arrays, blobs), n_classes=n_classes)
    except KeyError as exc:
        raise InputError(f"{mdir}: model file or entry {exc} missing (not listed in the "
                         "manifest?)") from None
    except (ValueError, TypeError, IndexError) as exc:
        raise InputError(f"{mdir}: unusable model ({type(exc).__name__}: {exc})") from None
    try:
        pipeline = Pipeline.from_dict(files["preprocess"])
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise InputError(f"{mdir}: unusable preprocessing in the manifest "
                         f"({type(exc).__name__}: {exc})") from None
    return TrainedMethod(name, entry["type"], params, pipeline, model)
