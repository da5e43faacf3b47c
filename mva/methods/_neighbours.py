"""Nearest-neighbour search for :mod:`mva.methods.knn`.

Both searches return, for every query, the ``k`` training events nearest in squared Euclidean
distance computed in float64 directly, ``sum_j (q_j - x_j)**2``, ordered by (distance, training
index): ties go to the lower index, so the result is a property of the data alone, whatever the
block sizes, the device or the number of threads.

:class:`ExactSearch` (training events x features up to :data:`EXACT_MAX_VALUES`, or on a GPU):
blocked matrix products in torch (CPU or CUDA). For a tile of queries ``a`` and training events
``b`` the keys ``|b|^2 - 2 a.b`` (the distance less the query's own ``|a|^2``) come from one
float32 ``addmm``; ``topk`` per tile keeps the ``k'`` smallest (``k' > k``), and those candidates
are ranked by their exact float64 distance. A rounding bound on the float32 keys then *certifies*
the row: if every event outside the candidates is, even with the largest rounding error, farther
than the k-th exact distance, the k nearest (ties included) are among the candidates and the
result is exact. Rows that fail (dense low-dimensional data, exact ties at the boundary) are
searched again with float64 keys and more candidates, until certified or all events are
candidates. The output is therefore exactly the brute-force result, not an approximation of it.

:class:`IVFSearch` (beyond, on a CPU): faiss's inverted file over k-means cells with 4-bit
product-quantised codes scanned in SIMD registers ("fast scan"), whose candidates are re-ranked
by their float32 vectors and then ranked like the exact ones. Every step of its build is
deterministic whatever the number of threads, so it is built on every core and every score is
reproducible. ``nprobe`` (the cells visited per query) is raised at fit time until the neighbour
recall, measured against the exact search on :data:`RECALL_EVENTS` training events held out of
the index until then (new queries, as test events are), reaches :data:`RECALL_TARGET` by two
standard errors. The index is stored with the model (faiss's own binary format), so ``mva
apply`` does not rebuild it.

:class:`HNSWSearch` (``search: hnsw``): faiss's hierarchical navigable small-world graph
(``IndexHNSWFlat``), the index of ``search: auto`` before the IVF index. Its graph is built
single-threaded (faiss's threaded build depends on the threads' timing), so it is reproducible
too, at about twice the build time; its ``efSearch`` is tuned as the IVF's ``nprobe``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = ["ExactSearch", "HNSWSearch", "IVFSearch", "EXACT_MAX_VALUES", "make_search", "load_search",
           "recall", "recall_rows"]

log = logging.getLogger(__name__)

#: training events x features up to which ``search: auto`` uses the exact search on a CPU; the
#: same bound as the ONNX export's (:data:`mva.export.knn.KNN_MAX_VALUES`), so that every kNN that
#: can be exported found its neighbours exactly, as the exported graph does
EXACT_MAX_VALUES = 5_000_000
#: queries per tile of the exact search, and training events per tile (CPU; a GPU takes larger)
QUERY_TILE, TRAIN_TILE = 512, 16384
GPU_QUERY_TILE, GPU_TRAIN_TILE = 4096, 262144
#: HNSW graph: links per node and the candidate list while building
HNSW_M, HNSW_EF_CONSTRUCTION = 32, 64
#: training events (queries, held out of the graph until measured) on which the HNSW recall is
#: measured at fit time (at most a tenth of the events), and the recall it must reach by two
#: standard errors
RECALL_EVENTS, RECALL_TARGET = 1000, 0.98
#: efSearch grows by this factor until the recall is reached (from 64, or k's candidates)
EF_STEP = 1.25
#: the largest efSearch tried
MAX_EF_SEARCH = 2048
#: IVF index: float32 re-ranking of this many times the candidates kept (doubled, up to the
#: largest, where visiting every cell does not reach the recall)
IVF_K_FACTOR, IVF_MAX_K_FACTOR = 2, 32


def extra_candidates(k: int) -> int:
    """``k'``: candidates ranked exactly per query (a few more than ``k``)."""
    return k + max(8, k // 4)


def _torch_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@contextmanager
def _set_threads(get: Any, set_: Any, n: int) -> Iterator[None]:
    """A library's thread count (``get``/``set_``) set to ``n`` inside the block."""
    before = get()
    set_(n)
    try:
        yield
    finally:
        set_(before)


def _threads(n: int) -> Any:
    """torch's CPU threads set to ``n`` inside the block. The matrix products and ``topk`` of a
    tile are large enough for several threads; the ranking works on small tensors, where waking
    threads (on busy cores: waiting for them) costs far more than the work."""
    import torch

    return _set_threads(torch.get_num_threads, torch.set_num_threads, n)


def _unit_roundoff(dtype: Any, device: str) -> float:
    """The unit round-off of the keys' matrix product (TF32 on a GPU if torch allows it)."""
    import torch

    if dtype == torch.float64:
        return 2.0 ** -53
    if device.startswith("cuda") and torch.backends.cuda.matmul.allow_tf32:
        return 2.0 ** -11
    return 2.0 ** -24


class _Ranker:
    """Exact float64 distances of candidates, ranked by (distance, index)."""

    def __init__(self, X: np.ndarray, device: str):
        import torch

        self.device = device
        self.n, self.d = X.shape
        # feature-major, so that a feature of every candidate is one gather
        self.xt64 = torch.as_tensor(np.ascontiguousarray(X.T, dtype=np.float64), device=device)

    def rank(self, q64: Any, cand: Any, k: int) -> tuple[Any, Any]:
        """``(d2, idx)`` of the ``k`` nearest among ``cand`` (``(n, k')``, -1 = none)."""
        import torch

        missing = cand < 0
        cand = torch.where(missing, torch.full_like(cand, self.n), cand)
        cand, _ = torch.sort(cand, dim=1)                    # by index: ties go to the lower one
        safe = torch.clamp(cand, max=self.n - 1)
        # the distance summed feature by feature in a fixed order: every row rounds the same
        # way wherever it sits in a block
        d2 = torch.zeros(cand.shape, dtype=torch.float64, device=self.device)
        for j in range(self.d):
            diff = self.xt64[j][safe] - q64[:, j:j + 1]
            d2 += diff * diff
        d2 = torch.where(cand >= self.n, torch.full_like(d2, float("inf")), d2)
        d2, order = torch.sort(d2, dim=1, stable=True)
        return d2[:, :k], cand.gather(1, order[:, :k])


class ExactSearch:
    """Exact k-nearest-neighbour search in blocked matrix products (see the module docstring)."""

    kind = "exact"

    def __init__(self, X: np.ndarray, device: str = "cpu"):
        import torch

        self.device = _torch_device(device)
        self.n, self.d = X.shape
        self.ranker = _Ranker(X, self.device)
        xt = self.ranker.xt64
        self.xt32 = xt.to(torch.float32)
        self.norm64 = (xt * xt).sum(0)
        self.norm32 = (self.xt32 * self.xt32).sum(0)
        self.max_norm = float(torch.sqrt(self.norm64.max())) if self.n else 0.0
        gpu = self.device.startswith("cuda")
        self.query_tile = GPU_QUERY_TILE if gpu else QUERY_TILE
        self.train_tile = GPU_TRAIN_TILE if gpu else TRAIN_TILE
        #: rows certified at each level (float32 keys, then float64 with more candidates)
        self.levels_: list[int] = []

    def describe(self) -> str:
        return f"exact (blocked matrix products, torch on {self.device})"

    def _candidates(self, q: Any, kp: int, dtype: Any) -> tuple[Any, Any]:
        """The ``kp`` smallest keys ``|b|^2 - 2 a.b`` per query: ``(largest key, indices)``."""
        import torch

        xt = self.xt32 if dtype == torch.float32 else self.ranker.xt64
        norm = self.norm32 if dtype == torch.float32 else self.norm64
        q = q.to(dtype)
        vals, idxs = [], []
        for s in range(0, self.n, self.train_tile):
            key = torch.addmm(norm[s:s + self.train_tile], q, xt[:, s:s + self.train_tile],
                              alpha=-2.0)
            kk = min(kp, key.shape[1])
            v, i = torch.topk(key, kk, dim=1, largest=False, sorted=False)
            vals.append(v)
            idxs.append(i + s)
        v, i = torch.cat(vals, 1), torch.cat(idxs, 1)
        if v.shape[1] > kp:
            v, j = torch.topk(v, kp, dim=1, largest=False, sorted=False)
            i = i.gather(1, j)
        return v.max(1).values.to(torch.float64), i

    def _bound(self, qnorm: Any, dtype: Any) -> Any:
        """An upper bound on the rounding error of a key (float32 or float64 product, inputs
        rounded to it) plus that of the float64 distances it is compared with."""
        u = _unit_roundoff(dtype, self.device)
        B, a = self.max_norm, qnorm
        return (2 * (self.d + 4) * u * (B * B + 2 * a * B)
                + 2 * (self.d + 2) * 2.0 ** -53 * (a + B) ** 2)

    def _search_rows(self, q64: Any, k: int) -> tuple[Any, Any]:
        import torch

        n = len(q64)
        d2 = torch.empty((n, k), dtype=torch.float64, device=self.device)
        idx = torch.empty((n, k), dtype=torch.int64, device=self.device)
        qsq = (q64 * q64).sum(1)
        todo = torch.arange(n, device=self.device)
        kp = min(extra_candidates(k), self.n)
        dtype = torch.float32
        level = 0
        while len(todo):
            q = q64[todo]
            top, cand = self._candidates(q, kp, dtype)
            with _threads(1):
                dk, ik = self.ranker.rank(q, cand, k)
                if kp >= self.n:
                    ok = torch.ones(len(todo), dtype=torch.bool, device=self.device)
                else:
                    # every event outside the candidates has a key >= top, so a distance of
                    # at least |a|^2 + top - bound
                    ok = qsq[todo] + top - self._bound(torch.sqrt(qsq[todo]), dtype) > dk[:, -1]
                d2[todo[ok]], idx[todo[ok]] = dk[ok], ik[ok]
                todo = todo[~ok]
            while len(self.levels_) <= level:
                self.levels_.append(0)
            self.levels_[level] += len(q) - len(todo)
            level += 1
            if dtype == torch.float32:
                dtype = torch.float64
            else:
                kp = min(4 * kp, self.n)
        return d2, idx

    def kneighbors(self, Q: np.ndarray, k: int, progress: Any = None
                   ) -> tuple[np.ndarray, np.ndarray]:
        """``(d2, idx)``, both ``(len(Q), k)``: squared distances and training indices."""
        import torch

        from mva.methods.base import n_threads

        k = min(k, self.n)
        d2 = np.empty((len(Q), k))
        idx = np.empty((len(Q), k), dtype=np.int64)
        with torch.no_grad(), _threads(n_threads(None, self.n)):
            for s in range(0, len(Q), self.query_tile):
                q = torch.as_tensor(np.asarray(Q[s:s + self.query_tile], dtype=np.float64),
                                    device=self.device)
                dt, it = self._search_rows(q, k)
                d2[s:s + len(q)], idx[s:s + len(q)] = dt.cpu().numpy(), it.cpu().numpy()
                if progress is not None:
                    progress.update(len(q))
        return d2, idx


class _IndexSearch:
    """Approximate search: a faiss index's candidates, ranked exactly; its search knob is raised
    at fit time until the measured recall reaches its target (see the module docstring)."""

    kind = ""
    #: what the events left out until the recall is measured are left out of
    held_out_of = "the index"

    def __init__(self, X: np.ndarray, index: Any, recall_: float | None = None,
                 order: np.ndarray | None = None, recall_err: float | None = None):
        self.n, self.d = X.shape
        self.index = index
        self.recall_, self.recall_err_ = recall_, recall_err
        self.recall_events_: int | None = None
        #: the training index of each node of the index, in the order they were added
        self.order = np.arange(self.n) if order is None else np.asarray(order, dtype=np.int64)
        self.ranker = _Ranker(X, "cpu")

    # ----------------------------------------------------------------- what each index says
    @classmethod
    def _new_index(cls, X32: np.ndarray, k: int, seed: int) -> tuple[Any, dict[str, Any]]:
        """The index over ``X32`` (the events that are not held out) and its starting knobs."""
        raise NotImplementedError

    def _add(self, X32: np.ndarray) -> None:
        self.index.add(X32)

    def _raise(self) -> bool:
        """Raise the search knob one step; ``False`` at its end."""
        raise NotImplementedError

    def _search(self, q32: np.ndarray, k: int, kp: int) -> np.ndarray:
        """``kp`` candidates (positions in the index, -1 = none) for each query."""
        raise NotImplementedError

    def knobs(self) -> dict[str, Any]:
        """The search knobs, as stored with the model (and accepted by ``__init__``)."""
        raise NotImplementedError

    def _describe(self) -> str:
        raise NotImplementedError

    # ----------------------------------------------------------------- common
    @classmethod
    def build(cls, X: np.ndarray, k: int, seed: int = 0) -> _IndexSearch:
        """Build the index and raise its knob until the measured recall reaches its target.

        The recall is measured on :data:`RECALL_EVENTS` training events left out of the index
        until then, so that they are queries the index has not seen, as test events are (a
        query that is in the index finds its neighbourhood more easily: the recall of training
        events overstates that of new events); they are added last.
        """
        n = len(X)
        rng = np.random.default_rng(seed)
        m = min(RECALL_EVENTS, n // 10)
        held = np.zeros(n, dtype=bool)
        held[rng.choice(n, m, replace=False)] = True
        order = np.r_[np.flatnonzero(~held), np.flatnonzero(held)]
        X32 = np.ascontiguousarray(X[order], dtype=np.float32)
        index, knobs = cls._new_index(X32[:n - m], k, seed)
        search = cls(X, index, order=order, **knobs)
        search._tune(X, order[n - m:], order[:n - m], k)
        search._add(X32[n - m:])
        return search

    def _tune(self, X: np.ndarray, queries: np.ndarray, indexed: np.ndarray, k: int) -> None:
        """Raise the knob until the recall of the ``queries`` (training indices, not in the
        index) among the ``indexed`` events is at least :data:`RECALL_TARGET` by two standard
        errors."""
        if not len(queries):
            return
        k = min(k, len(indexed))
        _, truth = ExactSearch(X[indexed]).kneighbors(X[queries], k)
        truth = indexed[truth]
        while True:
            _, got = self.kneighbors(X[queries], k, n_indexed=len(indexed))
            rows = recall_rows(got, truth, k)
            self.recall_ = float(rows.mean())
            self.recall_err_ = float(rows.std(ddof=1) / np.sqrt(len(rows))) if len(rows) > 1 else 0.0
            log.debug("knn: %s %s: recall %.4f +- %.4f", self.kind, self.knobs(), self.recall_,
                      self.recall_err_)
            if self.recall_ - 2 * self.recall_err_ >= RECALL_TARGET or not self._raise():
                break
        self.recall_events_ = len(queries)

    def describe(self) -> str:
        recall_ = ""
        if self.recall_ is not None:
            err = "" if self.recall_err_ is None else f" +- {self.recall_err_:.4f}"
            on = "" if self.recall_events_ is None else (
                f" on {self.recall_events_} training events held out of {self.held_out_of} "
                "until then")
            recall_ = f", neighbour recall {self.recall_:.4f}{err}{on}"
        return f"approximate ({self._describe()}{recall_})"

    def _candidates(self, k: int) -> int:
        """``k'``: the candidates ranked exactly per query (the search keeps more anyway:
        ranking up to 2k of them costs little and finds neighbours the index's float32 or
        quantised order put just beyond k)."""
        return max(extra_candidates(k), 2 * k)

    def kneighbors(self, Q: np.ndarray, k: int, progress: Any = None,
                   n_indexed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(d2, idx)`` as :meth:`ExactSearch.kneighbors`; ``n_indexed``: the events in the
        index (while it is built: fewer than the training events)."""
        import torch

        n_indexed = self.n if n_indexed is None else n_indexed
        k = min(k, n_indexed)
        kp = min(self._candidates(k), n_indexed)
        d2 = np.empty((len(Q), k))
        idx = np.empty((len(Q), k), dtype=np.int64)
        tile = 8192

        def rank(s: int, q: np.ndarray, cand: np.ndarray) -> int:
            with _threads(1):
                dt, it = self.ranker.rank(torch.as_tensor(q), torch.as_tensor(cand), k)
            d2[s:s + len(q)], idx[s:s + len(q)] = dt.numpy(), it.numpy()
            return len(q)

        # a tile's candidates are ranked (torch, one thread) while faiss searches the next one
        # (both release the GIL): the ranking no longer leaves a core idle
        with ThreadPoolExecutor(1) as pool:
            pending = None
            for s in range(0, len(Q), tile):
                q = np.ascontiguousarray(Q[s:s + tile], dtype=np.float64)
                pos = self._search(q.astype(np.float32), k, kp)
                cand = np.where(pos >= 0, self.order[np.maximum(pos, 0)], -1)
                if pending is not None and progress is not None:
                    progress.update(pending.result())
                elif pending is not None:
                    pending.result()
                pending = pool.submit(rank, s, q, cand)
            if pending is not None:
                done = pending.result()
                if progress is not None:
                    progress.update(done)
        return d2, idx

    def to_bytes(self) -> bytes:
        """The index in faiss's binary format."""
        return bytes(_faiss().serialize_index(self.index))

    @classmethod
    def from_bytes(cls, X: np.ndarray, data: bytes, recall_: float | None = None,
                   order: np.ndarray | None = None, recall_err: float | None = None,
                   **knobs: Any) -> _IndexSearch:
        faiss = _faiss()
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        if index.ntotal != len(X) or index.d != X.shape[1]:
            from mva.errors import InputError

            raise InputError(f"kNN index holds {index.ntotal} x {index.d} events, the model "
                             f"{X.shape[0]} x {X.shape[1]}")
        if order is not None and (len(order) != len(X) or not np.array_equal(
                np.sort(order), np.arange(len(X)))):
            from mva.errors import InputError

            raise InputError("kNN index: its node order is not a permutation of the training "
                             "events")
        return cls(X, index, recall_, order, recall_err, **knobs)


class HNSWSearch(_IndexSearch):
    """faiss's hierarchical navigable small-world graph (``IndexHNSWFlat``), built on one thread
    (reproducible); ``efSearch`` is raised by :data:`EF_STEP`."""

    kind = "hnsw"
    held_out_of = "the graph"

    def __init__(self, X: np.ndarray, index: Any, recall_: float | None = None,
                 order: np.ndarray | None = None, recall_err: float | None = None,
                 ef_search: int = 64):
        super().__init__(X, index, recall_, order, recall_err)
        self.ef_search = int(ef_search)

    @classmethod
    def _new_index(cls, X32, k, seed):
        faiss = _faiss()
        index = faiss.IndexHNSWFlat(X32.shape[1], HNSW_M)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        with _faiss_threads(1):
            index.add(X32)
        return index, {"ef_search": max(64, extra_candidates(k))}

    def _add(self, X32: np.ndarray) -> None:
        # one thread: the graph, and with it every score, is the same in every run
        with _faiss_threads(1):
            self.index.add(X32)

    def _raise(self) -> bool:
        if self.ef_search >= MAX_EF_SEARCH:
            return False
        self.ef_search = min(MAX_EF_SEARCH, int(np.ceil(self.ef_search * EF_STEP)))
        return True

    def _candidates(self, k: int) -> int:
        return max(extra_candidates(k), min(2 * k, self.ef_search))

    def _search(self, q32, k, kp):
        params = _faiss().SearchParametersHNSW()
        params.efSearch = max(self.ef_search, kp)
        return self.index.search(q32, kp, params=params)[1]

    def knobs(self) -> dict[str, Any]:
        return {"ef_search": self.ef_search}

    def _describe(self) -> str:
        return f"faiss HNSW, M={HNSW_M}, efSearch={self.ef_search}"


class IVFSearch(_IndexSearch):
    """faiss's inverted file over k-means cells with 4-bit product-quantised codes scanned in
    SIMD registers (``IVF<nlist>,PQ<d>x4fs``), its candidates re-ranked by the float32 vectors
    (``RFlat``, ``k_factor`` times as many as kept), then exactly by :class:`_Ranker`.

    Every step is deterministic whatever the number of threads (k-means seeded, cells filled in
    event order), so the index is built on every core and is the same in every run; ``nprobe``
    (cells visited per query) is raised by :data:`EF_STEP`, then ``k_factor`` doubled."""

    kind = "ivf"

    def __init__(self, X: np.ndarray, index: Any, recall_: float | None = None,
                 order: np.ndarray | None = None, recall_err: float | None = None,
                 nprobe: int = 1, k_factor: int = IVF_K_FACTOR):
        super().__init__(X, index, recall_, order, recall_err)
        self.nprobe, self.k_factor = int(nprobe), int(k_factor)
        self.nlist = int(_faiss().extract_index_ivf(index).nlist)

    @classmethod
    def _new_index(cls, X32, k, seed):
        faiss = _faiss()
        n, d = X32.shape
        nlist = ivf_cells(n)
        index = faiss.index_factory(d, f"IVF{nlist},PQ{d}x4fs,RFlat")
        faiss.extract_index_ivf(index).cp.seed = int(seed)
        index.train(X32)
        index.add(X32)
        return index, {"nprobe": max(1, nlist // 64), "k_factor": IVF_K_FACTOR}

    def _raise(self) -> bool:
        if self.nprobe < self.nlist:
            self.nprobe = min(self.nlist, int(np.ceil(self.nprobe * EF_STEP)))
        elif self.k_factor < IVF_MAX_K_FACTOR:
            self.k_factor *= 2
        else:
            return False
        return True

    def _search(self, q32, k, kp):
        faiss = _faiss()
        ivf = faiss.SearchParametersIVF()
        ivf.nprobe = self.nprobe
        params = faiss.IndexRefineSearchParameters()
        params.k_factor = self.k_factor
        params.base_index_params = ivf
        return self.index.search(q32, kp, params=params)[1]

    def knobs(self) -> dict[str, Any]:
        return {"nprobe": self.nprobe, "k_factor": self.k_factor}

    def _describe(self) -> str:
        return (f"faiss IVF{self.nlist} with 4-bit PQ fast scan and re-ranking, "
                f"nprobe={self.nprobe}, k_factor={self.k_factor}")


def ivf_cells(n: int) -> int:
    """k-means cells of the IVF index for ``n`` events: the power of two nearest 4 sqrt(n)
    (faiss's advice: 4 to 16 sqrt(n)), with at least 39 events per cell to train on."""
    target = max(1.0, 4.0 * np.sqrt(n))
    nlist = 2 ** int(np.round(np.log2(target)))
    while nlist > 1 and n < 39 * nlist:
        nlist //= 2
    return nlist


def _faiss_threads(n: int) -> Any:
    """faiss's OpenMP threads set to ``n`` inside the block."""
    faiss = _faiss()
    return _set_threads(faiss.omp_get_max_threads, faiss.omp_set_num_threads, n)


SEARCHES: dict[str, type[_IndexSearch]] = {"hnsw": HNSWSearch, "ivf": IVFSearch}


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        from mva.errors import InputError

        raise InputError("the approximate kNN search needs faiss: pip install faiss-cpu") from None
    return faiss


def recall_rows(got: np.ndarray, truth: np.ndarray, k: int | None = None,
                exclude: np.ndarray | None = None) -> np.ndarray:
    """Per query, the fraction of its true ``k`` nearest neighbours (rows of ``truth``, nearest
    first) that ``got`` holds. ``exclude[i]``: an index not counted in row i, the query itself
    when it is a training event (then ask both searches for k + 1 neighbours)."""
    k = truth.shape[1] if k is None else k
    out = np.ones(len(truth))
    if not k:
        return out
    for i in range(len(truth)):
        t, g = truth[i].tolist(), set(got[i].tolist())
        if exclude is not None:
            t = [j for j in t if j != exclude[i]]
            g.discard(int(exclude[i]))
        out[i] = len(set(t[:k]) & g) / k
    return out


def recall(got: np.ndarray, truth: np.ndarray, k: int | None = None,
           exclude: np.ndarray | None = None) -> float:
    """Mean fraction of the true ``k`` nearest neighbours found (:func:`recall_rows`)."""
    rows = recall_rows(got, truth, k, exclude)
    return float(rows.mean()) if len(rows) else 1.0


def choose(search: str, n: int, d: int, device: str) -> str:
    """``exact``, ``ivf`` or ``hnsw`` for ``search: auto|exact|ivf|hnsw`` and a training sample
    of ``n x d``."""
    if search != "auto":
        return search
    if _torch_device(device).startswith("cuda"):
        return "exact"
    return "exact" if n * d <= EXACT_MAX_VALUES else "ivf"


def make_search(kind: str, X: np.ndarray, k: int, device: str = "auto", seed: int = 0) -> Any:
    """A fitted search of ``kind`` (``exact``, ``ivf`` or ``hnsw``) over the training events."""
    if kind in SEARCHES:
        return SEARCHES[kind].build(X, k, seed)
    return ExactSearch(X, device)


#: the knobs of each index as stored in the model's meta (a model before the IVF index stored
#: the HNSW's efSearch as "ef_search")
_KNOBS = {"hnsw": ("ef_search",), "ivf": ("nprobe", "k_factor")}


def load_search(kind: str, X: np.ndarray, meta: dict[str, Any], blobs: dict[str, bytes],
                device: str = "auto") -> Any:
    """The search of a stored model (``meta`` and ``blobs`` as :func:`state_of` wrote them)."""
    if kind in SEARCHES:
        order = blobs.get(f"{kind}_order.i64")
        return SEARCHES[kind].from_bytes(
            X, blobs[f"{kind}.faiss"], meta.get("recall"),
            None if order is None else np.frombuffer(order, dtype="<i8").astype(np.int64),
            meta.get("recall_err"), **{key: int(meta[key]) for key in _KNOBS[kind]})
    return ExactSearch(X, device)


def state_of(search: Any) -> tuple[dict[str, Any], dict[str, bytes]]:
    """What a stored model needs to rebuild ``search``: meta entries and blobs."""
    if search.kind in SEARCHES:
        return ({**search.knobs(), "recall": search.recall_, "recall_err": search.recall_err_},
                {f"{search.kind}.faiss": search.to_bytes(),
                 f"{search.kind}_order.i64": search.order.astype("<i8").tobytes()})
    return {}, {}
