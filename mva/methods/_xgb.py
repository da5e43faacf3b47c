"""xgboost, imported with the threads of its OpenMP runtime set to sleep, not spin, when idle.

OpenMP threads spin for a while after each parallel region by default. Between xgboost's regions
that spinning holds both cores of a small machine, and the low-priority plot workers that draw
while a BDT trains get nothing: with ``OMP_WAIT_POLICY=PASSIVE`` they draw during the fit and the
fit takes as long as before (measured on 2 cores, 2M events x 20 features). The policy is read
once, when the runtime loads with xgboost (and scikit-learn, which shares that runtime), and
only while ``OMP_WAIT_POLICY`` is unset: a user's setting stays as it is, and torch's own runtime
(whose small regions need the spinning) loads with the environment unchanged.
"""

from __future__ import annotations

import os

_KEY = "OMP_WAIT_POLICY"
_unset = _KEY not in os.environ
if _unset:
    os.environ[_KEY] = "PASSIVE"
try:
    import xgboost as xgb
finally:
    if _unset:
        os.environ.pop(_KEY, None)

__all__ = ["xgb"]
