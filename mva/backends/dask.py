"""The Dask backend: units of work as tasks on the workers of a ``dask.distributed`` cluster.

The functions a unit runs are plain module functions of ``mva`` (workers import them from their
own installation); their arguments and results travel by Dask's serialisation, trained models in
their storage form (JSON, arrays, the library's own format), never as pickled model objects.
Results come back in the order of the units; a lost worker's tasks are recomputed by Dask from
their inputs, so that a run that loses workers gives the same results.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from mva.backends import Backend
from mva.errors import InputError
from mva.progress import Progress

__all__ = ["DaskBackend", "connect", "make_cluster", "parse_cluster"]

log = logging.getLogger("mva")

#: tasks in flight per worker thread for in-order streaming (results not yet taken are held by
#: the workers: this bounds their memory)
WINDOW_PER_THREAD = 4


def _import() -> Any:
    try:
        import distributed
    except ImportError:
        raise InputError("--scheduler/--cluster need Dask: pip install 'mva[dask]'") from None
    return distributed


def parse_cluster(spec: str) -> tuple[str, int | None]:
    """``local``, ``local:N``, ``condor`` or ``condor:N`` as (kind, N or None)."""
    kind, _, n = spec.partition(":")
    if kind not in ("local", "condor") or (n and not n.isdigit()) or n == "0":
        raise InputError(f"--cluster {spec!r}: expected local, local:N, condor or condor:N "
                         "(N >= 1 workers or jobs)")
    return kind, int(n) if n else None


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def make_cluster(spec: str, scale: bool = True) -> Any:
    """The cluster of ``--cluster SPEC``, started (workers requested, not waited for).

    ``local[:N]``: a LocalCluster of N single-threaded worker processes (default: the cores),
    listening on 127.0.0.1 only. ``condor[:N]``: dask-jobqueue's HTCondorCluster configured by
    the user's ``jobqueue.htcondor`` settings (``~/.config/dask/jobqueue.yaml``, see
    ``examples/condor/dask-jobqueue.yaml``), scaled to N jobs (default 10) unless not
    ``scale`` (``make_cluster("condor", scale=False).job_script()`` shows what is submitted).
    """
    kind, n = parse_cluster(spec)
    _import()
    if kind == "local":
        from distributed import LocalCluster

        return LocalCluster(n_workers=n or _cores(), threads_per_worker=1, processes=True,
                            host="127.0.0.1", dashboard_address="127.0.0.1:0",
                            silence_logs=logging.ERROR)
    try:
        from dask_jobqueue import HTCondorCluster
    except ImportError:
        raise InputError("--cluster condor needs dask-jobqueue: pip install 'mva[dask]'") from None
    try:
        cluster = HTCondorCluster()
    except ValueError as exc:  # a required setting (cores, memory, disk) is not configured
        raise InputError(f"--cluster condor: {exc} (configure jobqueue.htcondor in "
                         "~/.config/dask/jobqueue.yaml; see examples/condor/dask-jobqueue.yaml)"
                         ) from None
    if scale:
        cluster.scale(jobs=n or 10)
    return cluster


def connect(scheduler: str | None = None, cluster: str | None = None) -> DaskBackend:
    """Connect to the scheduler at ``scheduler``, or start ``cluster`` and connect to it."""
    distributed = _import()
    if scheduler is not None and cluster is not None:
        raise InputError("--scheduler and --cluster: give one of them")
    started = None
    if cluster is not None:
        started = make_cluster(cluster)
        address: Any = started
        where = f"--cluster {cluster}"
    else:
        address, where = scheduler, f"--scheduler {scheduler}"
    try:
        client = distributed.Client(address, timeout="30s")
    except (OSError, TimeoutError, ValueError) as exc:
        if started is not None:
            started.close()
        raise InputError(f"{where}: cannot connect to the Dask scheduler "
                         f"({type(exc).__name__}: {exc})") from None
    return DaskBackend(client, started, where)


class DaskBackend(Backend):
    """Units as tasks of a ``distributed.Client``; see :class:`mva.backends.Backend`."""

    name = "dask"

    def __init__(self, client: Any, cluster: Any = None, where: str = "dask"):
        self.client, self.cluster, self.where = client, cluster, where
        self._futures: list[Any] = []
        info = client.scheduler_info()
        workers = info.get("workers", {})
        threads = sum(w.get("nthreads", 1) for w in workers.values())
        dashboard = (client.dashboard_link if "dashboard" in info.get("services", {})
                     else "off")
        log.info("dask: %s, %d workers (%d threads), dashboard %s", info.get("address", where),
                 len(workers), threads, dashboard)
        if not workers:
            log.info("dask: no worker yet: the work starts when workers connect")

    def threads(self) -> int:
        workers = self.client.scheduler_info().get("workers", {})
        return max(1, sum(w.get("nthreads", 1) for w in workers.values()))

    def run_here(self) -> bool:
        return False

    def describe(self) -> str:
        return self.where

    def share(self, obj: Any) -> Any:
        # to every worker at once: each unit then finds it there instead of fetching it
        # from the worker that happened to receive it
        fut = self.client.scatter(obj, broadcast=True, hash=False)
        self._futures.append(fut)
        return fut

    def imap(self, fn: Callable[..., Any], units: Sequence[tuple], *shared: Any,
             what: str = "", unit: str = "it") -> Iterator[Any]:
        window = WINDOW_PER_THREAD * self.threads()
        pending: deque[Any] = deque()
        it = iter(units)
        with Progress(len(units), what or fn.__name__, unit) as bar:
            try:
                for u in it:
                    pending.append(self.client.submit(fn, *u, *shared, pure=False))
                    if len(pending) >= window:
                        break
                while pending:
                    fut = pending.popleft()
                    result = fut.result()
                    fut.release()
                    bar.update()
                    for u in it:
                        pending.append(self.client.submit(fn, *u, *shared, pure=False))
                        break
                    yield result
            finally:
                if pending:
                    self.client.cancel(list(pending))

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        fut = self.client.submit(fn, *args, pure=False)
        try:
            return fut.result()
        finally:
            fut.release()

    def map_reduce(self, fn: Callable[..., Any], groups: Sequence[Sequence[tuple]],
                   reduce: Callable[..., Any], reduce_args: Sequence[tuple], what: str = "",
                   unit: str = "it") -> Iterator[Any]:
        from distributed import as_completed

        submit = self.client.submit
        reduced, parts = [], []
        for args, units in zip(reduce_args, groups, strict=True):
            futs = [submit(fn, *u, pure=False) for u in units]
            parts.extend(futs)
            reduced.append(submit(_reduce, reduce, args, *futs, pure=False))
        try:
            with Progress(len(parts), what or fn.__name__, unit) as bar:
                for _ in as_completed(parts):
                    bar.update()
            for fut in reduced:
                yield fut.result()
        finally:
            self.client.cancel(parts + reduced)

    def close(self, abort: bool = False) -> None:
        if self._futures:
            try:
                self.client.cancel(self._futures)
            except Exception:  # the scheduler may be gone already
                pass
            self._futures = []
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _reduce(reduce: Callable[..., Any], args: tuple, *results: Any) -> Any:
    return reduce(*args, iter(results))
