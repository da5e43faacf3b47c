"""What the report reads from a run directory: metrics, manifest and configuration."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mva.errors import InputError


@dataclass
class RunFiles:
    """What the report reads from one run directory."""

    path: Path
    label: str
    metrics: dict[str, Any]
    manifest: dict[str, Any] = field(default_factory=dict)
    config_text: str | None = None
    #: the directory the page names (a run written in a temporary directory is shown at the
    #: path it is renamed to); default ``path``
    shown_path: Path | None = None

    @property
    def task(self) -> str:
        return str(self.metrics.get("task") or self.manifest.get("task") or "classification")

    @property
    def task_(self) -> Any:
        """The task object of the run (:mod:`mva.tasks`): it makes the task's tables."""
        from mva.tasks import task_for_manifest

        return task_for_manifest({**self.manifest, "task": self.task,
                                  "classes": self.metrics.get("classes")
                                  or self.manifest.get("classes")})

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
