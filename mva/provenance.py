"""What a run records about itself: versions, platform, command and time."""

from __future__ import annotations

import importlib.metadata
import platform
import sys
import time
from typing import Any

__all__ = ["versions", "provenance"]

PACKAGES = ("mva", "numpy", "scipy", "pandas", "pyarrow", "uproot", "awkward", "scikit-learn",
            "xgboost", "torch", "matplotlib", "mplhep", "pydantic", "click", "dask",
            "distributed", "optuna")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def provenance(backend: str = "this process") -> dict[str, Any]:
    """``backend``: where the work ran (:meth:`mva.backends.Backend.describe`)."""
    return {
        "versions": versions(), "platform": platform.platform(), "command": sys.argv,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "backend": backend,
    }
