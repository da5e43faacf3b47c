"""The methods: one module per family, each a :class:`~mva.methods.base.Method`.

Adding a method means one new module and one line in ``METHODS``. Modules are imported only when
used, so ``mva --help`` does not import torch or xgboost.
"""

from __future__ import annotations

import importlib

from mva.methods.base import Method

__all__ = ["METHODS", "method_class", "Method"]

#: method type (as written in the config) -> "module:Class"
METHODS: dict[str, str] = {
    "knn": "mva.methods.knn:KNN",
    "bdt": "mva.methods.bdt:BDT",
    "svm": "mva.methods.svm:SVM",
    "mlp": "mva.methods.mlp:MLP",
    "linear": "mva.methods.linear:Linear",
}


def method_class(kind: str) -> type[Method]:
    """The class implementing a method type."""
    module, _, cls = METHODS[kind].partition(":")
    return getattr(importlib.import_module(module), cls)
