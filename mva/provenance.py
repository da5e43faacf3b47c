"""What a run records about itself: versions, platform, command and time."""

from __future__ import annotations

import importlib.metadata
import platform
import sys
import time
from typing import Any

__all__ = ["versions", "provenance"]

PACKAGES = ("mva", "numpy", "scipy", "pandas", "pyarrow", "uproot", "awkward", "scikit-learn",
            "xgboost", "torch", "matplotlib", "mplhep", "pydantic", "click")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def provenance() -> dict[str, Any]:
    return {
        "versions": versions(), "platform": platform.platform(), "command": sys.argv,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
