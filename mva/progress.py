"""Progress of long work: a bar on a terminal, a plain log line now and then in batch logs.

On a terminal (stderr is a tty) a tqdm bar with rate and time left; without one (a batch job's
log file) one ``mva:`` line at most every :data:`LOG_EVERY` seconds and one at the end; nothing
when the ``mva`` logger is quieter than INFO (``--quiet``).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

__all__ = ["Progress", "LOG_EVERY", "xgboost_progress"]

log = logging.getLogger("mva.progress")

#: seconds between two progress lines in a log file
LOG_EVERY = 10.0


class Progress:
    """Count ``total`` units of work (``unit``: partitions, files, folds) as they finish."""

    def __init__(self, total: int, what: str, unit: str = "it"):
        self.total, self.what, self.unit = total, what, unit
        self.done = 0
        self._bar: Any = None
        self._t0 = self._last = time.monotonic()
        self.enabled = logging.getLogger("mva").isEnabledFor(logging.INFO)
        if self.enabled and _is_terminal():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=f"mva: {what}", unit=f" {unit}", file=sys.stderr,
                             leave=False, dynamic_ncols=True)

    def update(self, n: int = 1, **info: float) -> None:
        """``n`` more units done; ``info`` (e.g. ``loss=0.31``) is shown beside the count."""
        self.done += n
        if not self.enabled:
            return
        if self._bar is not None:
            if info:
                self._bar.set_postfix({k: f"{v:.4g}" for k, v in info.items()}, refresh=False)
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last >= LOG_EVERY and self.done < self.total:
            self._last = now
            rate = self.done / max(now - self._t0, 1e-9)
            left = (self.total - self.done) / rate if rate > 0 else float("inf")
            extra = "".join(f", {k} {v:.4g}" for k, v in info.items())
            log.info("%s: %d/%d %s (%.1f/s, %.0f s left%s)", self.what, self.done, self.total,
                     self.unit, rate, left, extra)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def xgboost_progress(total: int, what: str) -> Any:
    """An xgboost ``TrainingCallback`` that counts trees (boosting rounds) in a :class:`Progress`,
    with the latest value of each evaluation metric (e.g. the validation log loss) beside it."""
    from mva.methods._xgb import xgb

    class _Callback(xgb.callback.TrainingCallback):
        def before_training(self, model: Any) -> Any:
            self.progress = Progress(total, what, "trees")
            return model

        def after_iteration(self, model: Any, epoch: int, evals_log: dict) -> bool:
            info = {f"{data} {metric}": float(values[-1])
                    for data, metrics in evals_log.items() for metric, values in metrics.items()
                    if len(values)}
            self.progress.update(1, **info)
            return False

        def after_training(self, model: Any) -> Any:
            self.progress.close()
            return model

    return _Callback()


def _is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
