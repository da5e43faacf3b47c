"""``mva apply`` in this process reads the next partition in a thread while it scores the
current one: every partition is read once, in order, and the output is the same value for value
as scoring one partition after the other; an error of a partition read ahead is that
partition's error, and leaves no output."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import uproot

from mva import application
from mva.application import apply
from mva.backends import LocalBackend
from mva.errors import InputError
from mva.io.writers import write_trees


class _InOrder(LocalBackend):
    """The local backend as a remote one looks to ``apply``: no partition is read ahead."""

    def run_here(self) -> bool:
        return False


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int, str]]:
    """(path, start, stop, thread name) of every read of the scorer."""
    calls: list[tuple[str, int, int, str]] = []
    real = application.iter_columns

    def iter_columns(path, tree, needed, **kw):
        calls.append((path, kw["entry_start"], kw["entry_stop"], threading.current_thread().name))
        return real(path, tree, needed, **kw)

    monkeypatch.setattr(application, "iter_columns", iter_columns)
    application._SCORERS.clear()
    yield calls
    application._SCORERS.clear()


def _inputs(toy_run, tmp_path: Path) -> list[str]:
    """Two inputs of different sizes (the read ahead crosses from one file to the next)."""
    cols = uproot.open(toy_run.data)["TreeS"].arrays(library="np")
    paths = []
    for i, n in enumerate((500, 230)):
        path = tmp_path / f"in{i}.root"
        write_trees(path, {"TreeS": {k: v[:n] for k, v in cols.items()}})
        paths.append(str(path))
    return paths


def test_each_partition_is_read_once_ahead_and_scores_match(toy_run, tmp_path, spy):
    inputs = _inputs(toy_run, tmp_path)
    ahead, in_order = tmp_path / "ahead.root", tmp_path / "in_order.root"
    apply(toy_run.run_dir, inputs, ahead, tree="TreeS", step_size=120)
    reads_ahead = list(spy)
    spy.clear()
    application._SCORERS.clear()
    apply(toy_run.run_dir, inputs, in_order, tree="TreeS", step_size=120,
          backend=_InOrder())

    partitions = [(p, a, min(a + 120, n)) for p, n in zip(inputs, (500, 230), strict=True)
                  for a in range(0, n, 120)]
    assert [c[:3] for c in reads_ahead] == partitions
    assert all(c[3].startswith("mva-read-ahead") for c in reads_ahead)
    assert [c[:3] for c in spy] == partitions
    assert all(c[3] == threading.main_thread().name for c in spy)
    a = uproot.open(ahead)["TreeS"].arrays(library="np")
    b = uproot.open(in_order)["TreeS"].arrays(library="np")
    assert sorted(a) == sorted(b) and len(a["bdt"]) == 730
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_a_failed_read_ahead_is_the_error_of_its_partition(toy_run, tmp_path, spy,
                                                         monkeypatch):
    inputs = _inputs(toy_run, tmp_path)
    real = application.iter_columns  # the spy

    def failing(path, tree, needed, **kw):
        if path == inputs[1] and kw["entry_start"] == 120:
            raise InputError(f"{path}:TreeS: cannot read branches (test)")
        return real(path, tree, needed, **kw)

    monkeypatch.setattr(application, "iter_columns", failing)
    out = tmp_path / "scored.root"
    with pytest.raises(InputError, match=r"in1\.root:TreeS: cannot read"):
        apply(toy_run.run_dir, inputs, out, tree="TreeS", step_size=120)
    assert not out.exists()
    assert list(tmp_path.glob("*scored*")) == []
    # every partition before the failing one was read, once, in order
    assert [c[:3] for c in spy] == [(inputs[0], a, min(a + 120, 500)) for a in range(0, 500, 120)
                                    ] + [(inputs[1], 0, 120)]
