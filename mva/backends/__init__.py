"""Where the work runs: in this process, or on the workers of a Dask cluster.

A backend maps the same pure functions over units of work (score one partition of an input file,
read one input file, fit one method on one fold) and hands the results back in the order of the
units, so that every result is the same, value for value, whichever backend computed it.

``open_backend(scheduler=..., cluster=...)`` gives the local backend when both are None, else a
:class:`~mva.backends.dask.DaskBackend`: ``scheduler`` is the address of a running Dask scheduler;
``cluster`` is ``local[:N]`` (a LocalCluster of N single-threaded worker processes) or
``condor[:N]`` (dask-jobqueue's HTCondorCluster with N jobs, from the user's jobqueue config).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

__all__ = ["Backend", "LocalBackend", "open_backend"]


class Backend:
    """The interface: ``share`` data once, ``imap`` a function over units, ``map_reduce``."""

    #: "local" or "dask"
    name = "local"

    def share(self, obj: Any) -> Any:
        """A handle to ``obj`` to pass to many units (sent to each worker once)."""
        return obj

    def imap(self, fn: Callable[..., Any], units: Sequence[tuple], *shared: Any,
             what: str = "", unit: str = "it") -> Iterator[Any]:
        """``fn(*u, *shared)`` for every unit ``u``, yielded in the order of ``units``."""
        raise NotImplementedError

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` as one unit, waited for (safe to call from several threads at once: that
        is how many units run side by side)."""
        return fn(*args)

    def map_reduce(self, fn: Callable[..., Any], groups: Sequence[Sequence[tuple]],
                   reduce: Callable[..., Any], reduce_args: Sequence[tuple], what: str = "",
                   unit: str = "it") -> Iterator[Any]:
        """For every group: ``reduce(*args, results)`` over the results of ``fn`` on the group's
        units (an iterable, in order); the reduced values are yielded in group order."""
        raise NotImplementedError

    def run_here(self) -> bool:
        """Whether the units run in this process (no transport of inputs and results)."""
        return True

    def describe(self) -> str:
        return "this process"

    def close(self, abort: bool = False) -> None:
        pass


class LocalBackend(Backend):
    """Everything in this process, one unit after the other, streamed (nothing is held back)."""

    def imap(self, fn: Callable[..., Any], units: Sequence[tuple], *shared: Any,
             what: str = "", unit: str = "it") -> Iterator[Any]:
        from mva.progress import Progress

        with Progress(len(units), what or fn.__name__, unit) as bar:
            for u in units:
                result = fn(*u, *shared)
                bar.update()
                yield result

    def map_reduce(self, fn: Callable[..., Any], groups: Sequence[Sequence[tuple]],
                   reduce: Callable[..., Any], reduce_args: Sequence[tuple], what: str = "",
                   unit: str = "it") -> Iterator[Any]:
        from mva.progress import Progress

        def run(units: Sequence[tuple], bar: Progress) -> Iterator[Any]:
            for u in units:
                result = fn(*u)
                bar.update()
                yield result

        with Progress(sum(len(g) for g in groups), what or fn.__name__, unit) as bar:
            for args, units in zip(reduce_args, groups, strict=True):
                yield reduce(*args, run(units, bar))


@contextlib.contextmanager
def open_backend(scheduler: str | None = None, cluster: str | None = None
                 ) -> Iterator[Backend]:
    """The backend for ``--scheduler`` / ``--cluster`` (local without either), closed on exit
    (a cluster started here is stopped; an external scheduler is only disconnected from)."""
    if scheduler is None and cluster is None:
        yield LocalBackend()
        return
    from mva.backends.dask import connect

    backend = connect(scheduler=scheduler, cluster=cluster)
    try:
        yield backend
    except BaseException:
        backend.close(abort=True)
        raise
    else:
        backend.close()


def chunks(total: int, step: int) -> Iterable[tuple[int, int]]:
    """``(start, stop)`` of consecutive ranges of ``step`` entries covering ``range(total)``
    (one empty range for ``total == 0``)."""
    if total == 0:
        return [(0, 0)]
    return [(s, min(s + step, total)) for s in range(0, total, step)]
