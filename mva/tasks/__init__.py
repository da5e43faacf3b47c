"""The tasks: binary classification, multiclass classification and regression.

A task owns everything that differs between tasks: which samples are read and how their events
are labelled, the split groups and weight normalisation, the truth and score branches of the
output trees and of ``mva apply``, the metrics, the plots, the summary table and the report's
tables. Training, apply, the plots and the report ask the task; they do not branch on it.

Adding a task means one new module with a :class:`~mva.tasks.base.Task` and one line in
``TASKS``.
"""

from __future__ import annotations

import importlib
from typing import Any

from mva.tasks.base import Task

__all__ = ["TASKS", "Task", "task_class", "task_for_config", "task_for_manifest"]

#: task name (as written in the config) -> "module:Class"
TASKS: dict[str, str] = {
    "classification": "mva.tasks.binary:Binary",
    "multiclass": "mva.tasks.multiclass:Multiclass",
    "regression": "mva.tasks.regression:Regression",
}


def task_class(name: str) -> type[Task]:
    """The class implementing a task."""
    module, _, cls = TASKS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def task_for_config(cfg: Any) -> Task:
    """The task of a validated config."""
    return task_class(cfg.task).from_config(cfg)


def task_for_manifest(manifest: dict[str, Any]) -> Task:
    """The task of a trained run, from its ``models/manifest.json`` (or ``metrics.json``)."""
    name = manifest.get("task", "classification")
    if name not in TASKS:
        from mva.errors import InputError

        raise InputError(f"unknown task {name!r} in the run (known: {', '.join(TASKS)}): "
                         "made by a newer mva?")
    return task_class(name).from_manifest(manifest)
