"""Neighbour search of the kNN: the blocked exact search equals brute force (ties to the lower
index) and scikit-learn, whatever the tile and block sizes; the approximate indexes (IVF, the
default beyond the exact search's size limit, and HNSW) find the neighbours with the recall
they measured, are reproducible and are stored with the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import roundtrip, two_gaussians
from sklearn.metrics import roc_auc_score

from mva.methods import _neighbours
from mva.methods._neighbours import ExactSearch, HNSWSearch, IVFSearch, recall
from mva.methods.knn import KNN


def brute(X: np.ndarray, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest by float64 distance, ties to the lower index: all distances sorted."""
    d = ((Q[:, None, :] - X[None]) ** 2).sum(-1)
    order = np.lexsort((np.broadcast_to(np.arange(len(X)), d.shape), d), axis=1)[:, :k]
    return np.take_along_axis(d, order, 1), order


def samples() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    return {
        "gauss20": (rng.normal(size=(1500, 20)), rng.normal(size=(200, 20))),
        # dense and low-dimensional: float32 keys cannot always certify the rows
        "dense2": (rng.normal(size=(6000, 2)) * 1e-3 + 5.0, rng.normal(size=(100, 2)) * 1e-3 + 5),
        # integer features: many events at exactly the same distance
        "integers": (rng.integers(0, 3, (800, 3)).astype(float),
                     rng.integers(0, 3, (100, 3)).astype(float)),
        "duplicates": (np.repeat(rng.normal(size=(40, 4)), 25, axis=0), rng.normal(size=(60, 4))),
    }


@pytest.mark.parametrize("name", list(samples()))
@pytest.mark.parametrize("k", [1, 9, 30])
def test_exact_search_equals_brute_force_with_ties_to_the_lower_index(name: str, k: int) -> None:
    X, Q = samples()[name]
    d2, idx = ExactSearch(X).kneighbors(Q, k)
    ref_d2, ref_idx = brute(X, Q, k)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(d2, ref_d2, rtol=1e-12, atol=1e-15)


def test_ties_go_to_the_lower_index_and_need_the_float64_levels() -> None:
    # 200 events at distance 1 from the query, in shuffled order: the 5 lowest indices win
    rng = np.random.default_rng(1)
    X = np.repeat([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], 50, axis=0)[
        rng.permutation(200)]
    X = np.vstack([X, [[3.0, 3.0]]])
    s = ExactSearch(X)
    d2, idx = s.kneighbors(np.zeros((1, 2)), 5)
    np.testing.assert_array_equal(idx[0], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(d2[0], 1.0)
    # the float32 pass cannot tell a tie from a near-tie: the row was certified later
    assert s.levels_[0] == 0 and sum(s.levels_) == 1


def test_exact_search_agrees_with_sklearn() -> None:
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(2)
    X, Q = rng.normal(size=(3000, 6)), rng.normal(size=(400, 6))
    d2, idx = ExactSearch(X).kneighbors(Q, 15)
    dist, ref = NearestNeighbors(n_neighbors=15, algorithm="brute").fit(X).kneighbors(Q)
    np.testing.assert_array_equal(idx, ref)
    np.testing.assert_allclose(np.sqrt(d2), dist, rtol=1e-9)


def test_results_do_not_depend_on_tiles_or_blocks(monkeypatch) -> None:
    X, Q = samples()["gauss20"]
    Q = Q[:50]
    ref = ExactSearch(X).kneighbors(Q, 12)
    monkeypatch.setattr(_neighbours, "QUERY_TILE", 7)
    monkeypatch.setattr(_neighbours, "TRAIN_TILE", 101)
    small = ExactSearch(X).kneighbors(Q, 12)
    one_by_one = [ExactSearch(X).kneighbors(Q[i:i + 1], 12) for i in range(0, 50, 9)]
    for a, b in zip(ref, small):
        np.testing.assert_array_equal(a, b)
    for j, (d2, idx) in zip(range(0, 50, 9), one_by_one):
        np.testing.assert_array_equal(d2[0], ref[0][j])
        np.testing.assert_array_equal(idx[0], ref[1][j])


def test_knn_scores_do_not_depend_on_the_block_size() -> None:
    X, y = two_gaussians(500, seed=3, d=5)
    Xq = np.random.default_rng(4).normal(size=(300, 5))
    w = np.random.default_rng(5).uniform(0.5, 2.0, len(X))
    a = KNN({"k": 11, "block_size": 7}, "classification").fit(X, y, w).predict(Xq)
    b = KNN({"k": 11}, "classification").fit(X, y, w).predict(Xq)
    np.testing.assert_array_equal(a, b)
    # and a scored event's score does not depend on what else is scored with it
    m = KNN({"k": 11}, "classification").fit(X, y, w)
    np.testing.assert_array_equal(m.predict(Xq[100:101]), b[100:101])


def test_recall_counts_the_true_neighbours_found() -> None:
    truth = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
    got = np.array([[3, 2, 9, 0], [4, 5, 6, 7]])
    assert recall(got, truth) == pytest.approx(7 / 8)
    # the query itself (a training event) does not count; k of the k + 1 are compared
    assert recall(np.array([[5, 0, 1, 8]]), np.array([[5, 0, 1, 2]]), k=3,
                  exclude=np.array([5])) == pytest.approx(2 / 3)


INDEXES = {"ivf": IVFSearch, "hnsw": HNSWSearch}


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_index_recall_and_auc_close_to_exact(kind) -> None:
    X, y = two_gaussians(2000, seed=6, d=8, shift=0.8)
    Xt, yt = two_gaussians(1000, seed=7, d=8, shift=0.8)
    w = np.ones(len(X))
    exact = KNN({"k": 20, "search": "exact"}, "classification").fit(X, y, w)
    approx = KNN({"k": 20, "search": kind}, "classification", seed=1).fit(X, y, w)
    assert approx.search_.kind == kind and exact.search_.kind == "exact"
    name = {"ivf": "faiss IVF", "hnsw": "faiss HNSW"}[kind]
    assert any(name in n and "recall" in n for n in approx.notes_)
    assert any(n.startswith("neighbour search: exact") for n in exact.notes_)
    # the recall measured at fit time reached its target, and holds for other events
    assert approx.search_.recall_ >= _neighbours.RECALL_TARGET
    r = recall(approx.kneighbors(Xt)[1], exact.kneighbors(Xt)[1])
    assert r >= 0.98
    auc_exact = roc_auc_score(yt, exact.predict(Xt))
    auc_approx = roc_auc_score(yt, approx.predict(Xt))
    assert abs(auc_approx - auc_exact) <= 0.002
    # the same index in every run
    again = KNN({"k": 20, "search": kind}, "classification", seed=1).fit(X, y, w)
    np.testing.assert_array_equal(again.predict(Xt), approx.predict(Xt))


def test_ivf_index_is_the_same_on_any_number_of_threads() -> None:
    """Built on every core, and still reproducible: k-means is seeded and the cells are filled
    in event order, so one thread and two give the same index, byte for byte."""
    import faiss

    X = np.random.default_rng(21).normal(size=(20000, 6))
    before = faiss.omp_get_max_threads()
    built = []
    try:
        for threads in (1, 2):
            faiss.omp_set_num_threads(threads)
            built.append(IVFSearch.build(X, 10, seed=4))
    finally:
        faiss.omp_set_num_threads(before)
    one, two = built
    assert one.to_bytes() == two.to_bytes()
    assert one.knobs() == two.knobs() and one.recall_ == two.recall_
    # the seed reaches k-means: another seed, other cells
    assert IVFSearch.build(X, 10, seed=5).to_bytes() != one.to_bytes()


def test_ivf_raises_nprobe_then_k_factor_until_the_recall_is_reached(monkeypatch) -> None:
    X = np.random.default_rng(22).normal(size=(4000, 12))
    s = IVFSearch.build(X, 10, seed=1)
    assert s.nlist == _neighbours.ivf_cells(len(X) - 400) and 1 <= s.nprobe <= s.nlist
    assert s.recall_ - 2 * s.recall_err_ >= _neighbours.RECALL_TARGET
    # a recall that cannot be reached: every cell, then the largest re-ranking, then it stops
    monkeypatch.setattr(_neighbours, "RECALL_TARGET", 1.01)
    s = IVFSearch.build(X, 10, seed=1)
    assert s.nprobe == s.nlist and s.k_factor == _neighbours.IVF_MAX_K_FACTOR
    # visiting every cell with that re-ranking is as good as the exact search here
    assert s.recall_ >= 0.999


def test_ivf_cells() -> None:
    assert _neighbours.ivf_cells(1_000_000) == 4096   # 4 sqrt(n) = 4000
    assert _neighbours.ivf_cells(300_000) == 2048     # 2191
    assert _neighbours.ivf_cells(3000) == 64          # at least 39 events per cell to train on
    assert _neighbours.ivf_cells(10) == 1


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_index_measures_recall_on_events_held_out_of_it(kind) -> None:
    X = np.random.default_rng(12).normal(size=(3000, 8))
    s = INDEXES[kind].build(X, 10, seed=3)
    m = 300  # a tenth of the events
    assert s.recall_events_ == m and s.index.ntotal == len(X)
    # every training event is in the index, under its own index: the held-out ones added last
    np.testing.assert_array_equal(np.sort(s.order), np.arange(len(X)))
    held = s.order[-m:]
    d2, idx = s.kneighbors(X[held], 1)
    np.testing.assert_array_equal(idx[:, 0], held)
    assert np.all(d2[:, 0] == 0.0)
    # the recall reached its target by two standard errors, and is that of new queries
    assert s.recall_ - 2 * s.recall_err_ >= _neighbours.RECALL_TARGET
    Q = np.random.default_rng(13).normal(size=(1000, 8))
    r = recall(s.kneighbors(Q, 10)[1], ExactSearch(X).kneighbors(Q, 10)[1])
    assert abs(r - s.recall_) <= 5 * s.recall_err_ + 0.005
    assert f"held out of {s.held_out_of} until then" in s.describe()


def test_recall_rows_per_query() -> None:
    truth = np.array([[0, 1], [2, 3]])
    np.testing.assert_allclose(_neighbours.recall_rows(np.array([[1, 9], [2, 3]]), truth),
                               [0.5, 1.0])


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_index_stored_without_its_order_keeps_the_identity(kind) -> None:
    # a model written before the node order was stored: nodes in training order
    X = np.random.default_rng(14).normal(size=(200, 3))
    s = INDEXES[kind].build(X, 5)
    meta, blobs = _neighbours.state_of(s)
    assert f"{kind}_order.i64" in blobs
    again = _neighbours.load_search(kind, X, meta, blobs)
    np.testing.assert_array_equal(again.order, s.order)
    np.testing.assert_array_equal(again.kneighbors(X, 5)[1], s.kneighbors(X, 5)[1])
    old = _neighbours.load_search(kind, X, meta, {f"{kind}.faiss": blobs[f"{kind}.faiss"]})
    np.testing.assert_array_equal(old.order, np.arange(len(X)))
    from mva.errors import InputError

    with pytest.raises(InputError, match="not a permutation"):
        INDEXES[kind].from_bytes(X, blobs[f"{kind}.faiss"], order=np.zeros(200, int),
                                 **s.knobs())


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_index_is_stored_with_the_model(tmp_path: Path, kind) -> None:
    X, y = two_gaussians(400, seed=8, d=4)
    params = {"k": 10, "search": kind}
    m = KNN(params, "classification").fit(X, y, np.ones(len(X)))
    meta, _, blobs = m.state()
    assert meta["search"] == kind and f"{kind}.faiss" in blobs
    assert all(meta[key] == value for key, value in m.search_.knobs().items())
    m2 = roundtrip(m, params, "classification", tmp_path)
    assert m2.search_.kind == kind and m2.search_.knobs() == m.search_.knobs()
    Xq = np.random.default_rng(9).normal(size=(200, 4))
    np.testing.assert_array_equal(m2.predict(Xq), m.predict(Xq))


def test_auto_uses_the_ivf_index_above_the_size_limit(monkeypatch) -> None:
    X, y = two_gaussians(300, seed=10, d=4)
    assert KNN({"k": 5}, "classification").fit(X, y, np.ones(600)).search_.kind == "exact"
    monkeypatch.setattr(_neighbours, "EXACT_MAX_VALUES", 600 * 4 - 1)
    assert _neighbours.choose("auto", 600, 4, "cpu") == "ivf"
    assert KNN({"k": 5, "device": "cpu"}, "classification").fit(
        X, y, np.ones(600)).search_.kind == "ivf"
    assert _neighbours.choose("exact", 10**9, 20, "cpu") == "exact"
    assert _neighbours.choose("hnsw", 10**9, 20, "cpu") == "hnsw"


def test_search_limit_is_the_export_limit() -> None:
    from mva.export.knn import KNN_MAX_VALUES

    # every kNN small enough to export found its neighbours exactly, as the graph does
    assert _neighbours.EXACT_MAX_VALUES == KNN_MAX_VALUES


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_index_search_rejects_an_index_of_other_events(kind) -> None:
    from mva.errors import InputError

    X = np.random.default_rng(11).normal(size=(100, 3))
    s = INDEXES[kind].build(X, 5)
    with pytest.raises(InputError, match="index holds 100 x 3"):
        INDEXES[kind].from_bytes(X[:50], s.to_bytes(), **s.knobs())


@pytest.mark.gpu
def test_exact_search_on_cuda_equals_cpu() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    X, Q = samples()["gauss20"]
    cpu = ExactSearch(X, "cpu").kneighbors(Q, 10)
    gpu = ExactSearch(X, "cuda").kneighbors(Q, 10)
    np.testing.assert_array_equal(cpu[1], gpu[1])
    np.testing.assert_array_equal(cpu[0], gpu[0])
