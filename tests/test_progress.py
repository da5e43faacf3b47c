"""Progress of long work: plain log lines in batch logs, nothing with --quiet."""

from __future__ import annotations

import logging

import pytest

from mva import progress
from mva.backends import LocalBackend


@pytest.fixture
def mva_logger():
    logger = logging.getLogger("mva")
    old = logger.level, logger.propagate
    logger.propagate = True  # to caplog
    yield logger
    logger.setLevel(old[0])
    logger.propagate = old[1]


def test_batch_log_lines_then_silence_with_quiet(monkeypatch, caplog, mva_logger) -> None:
    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)
    mva_logger.setLevel(logging.INFO)
    with caplog.at_level(logging.INFO, logger="mva"):
        out = list(LocalBackend().imap(lambda a, b: a * b, [(i, 2) for i in range(5)],
                                       what="scoring", unit="partitions"))
    assert out == [0, 2, 4, 6, 8]
    lines = [r.getMessage() for r in caplog.records if r.name == "mva.progress"]
    # one line per finished unit but the last (the caller reports the end)
    assert len(lines) == 4 and lines[0].startswith("scoring: 1/5 partitions")
    caplog.clear()
    mva_logger.setLevel(logging.WARNING)  # --quiet
    with caplog.at_level(logging.DEBUG, logger="mva.progress"):
        list(LocalBackend().imap(lambda a: a, [(i,) for i in range(3)], what="x"))
    assert not [r for r in caplog.records if r.name == "mva.progress"]


def test_map_reduce_groups_in_order() -> None:
    groups = [[(1,), (2,)], [(3,)], []]
    out = list(LocalBackend().map_reduce(lambda x: x * 10, groups,
                                         lambda tag, rs: (tag, list(rs)),
                                         [("a",), ("b",), ("c",)]))
    assert out == [("a", [10, 20]), ("b", [30]), ("c", [])]
