"""The methods: one module per family, each a :class:`~mva.methods.base.Method`.

Adding a method means one new module and one line in ``METHODS``. Modules are imported only when
used, so ``mva --help`` does not import torch or xgboost.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Iterable

from mva.methods.base import Method

__all__ = ["METHODS", "method_class", "Method", "import_ahead"]

log = logging.getLogger(__name__)

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


def import_ahead(kinds: Iterable[str]) -> threading.Thread | None:
    """Import the libraries of the method types (:attr:`Method.libraries`) in a daemon thread.

    Reading the inputs leaves a core idle and releases the interpreter in decompression and
    numpy: the seconds that importing xgboost, scikit-learn or torch takes overlap with it.
    Join the thread before anything else imports them. An import that fails is left to the
    method, which reports it when it needs the library.
    """
    names = sorted({lib for kind in kinds for lib in method_class(kind).libraries})
    if not names:
        return None

    def run() -> None:
        for name in names:
            try:
                importlib.import_module(name)
            except Exception:  # the method raises it again where it is needed
                log.debug("importing %s ahead failed", name, exc_info=True)

    thread = threading.Thread(target=run, name="mva-import-ahead", daemon=True)
    thread.start()
    return thread
