"""The kNN at scale: ``mva train`` against a bare scikit-learn brute-force search, and the
approximate index at a million events against bare faiss.

Events as ``bench_classification.py`` writes them (20 float32 features, weights); k = 20.

* ``train`` (``--train-events``, default 200k signal + 200k background, ``test_fraction: 0.5``):
  ``mva train`` with only a kNN (exact search: 200k x 20 values are below the limit of 5M),
  default outputs (metrics, output.root, models, plots, report), against a script that reads the
  same branches with uproot (float32, as they are stored), splits, standardises,
  ``NearestNeighbors(algorithm="brute").fit(train).kneighbors(train + test)`` (400k queries
  against 200k events) and takes the weighted signal fraction. Each in a fresh process,
  alternating, wall time and peak RSS (target: mva <= 2x). mva does more than the bare
  side: its permutation importance scores 21 x 20k more test events.
* ``million`` (``--events``, default 1M training + 1M test events, in this process): mva's ``KNN``
  fit (``search: auto`` chooses the IVF index: 4-bit PQ fast scan, re-ranked), scoring the test
  events, then the training events (not with ``--no-score-train``: they are not in the
  target); against bare faiss doing the same (the same index factory string, nprobe and
  k_factor, all threads, ``search`` of k neighbours, the weighted fraction). The neighbour recall and the test AUC of mva's scores are compared with
  the exact search (mva's ``ExactSearch``) on ``--check-events`` test events (targets: fit and
  scoring the test events <= 10 min, recall >= 0.98, |AUC - exact AUC| <= 0.002).
* ``scaling``: mva's kNN fit + scoring as many test events, at 100k, 300k and 1M training events.

Usage: python benchmarks/bench_knn.py [--steps train,million,scaling] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_classification import DATA_CONFIG, FEATURES, make_data  # noqa: E402
from bench_mlp import Timer, make_events  # noqa: E402

K = 20

CONFIG = DATA_CONFIG + """methods:
  knn: {{type: knn, k: {k}}}
"""

BARE = """
import numpy as np, uproot
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler
features = {features}
parts = []
for tree, label in (("TreeS", 1), ("TreeB", 0)):
    cols = uproot.open({data!r})[tree].arrays(features + ["weight"], library="np")
    X = np.column_stack([cols[f] for f in features])
    parts.append((X, np.full(len(X), label), cols["weight"]))
X = np.concatenate([p[0] for p in parts]); y = np.concatenate([p[1] for p in parts])
w = np.concatenate([p[2] for p in parts])
test = np.random.default_rng(7).random(len(X)) < 0.5
scaler = StandardScaler().fit(X[~test])
Xtr, Xte = scaler.transform(X[~test]), scaler.transform(X[test])
nn = NearestNeighbors(n_neighbors={k}, algorithm="brute").fit(Xtr)
ytr, wtr = y[~test], w[~test]
for Q in (Xtr, Xte):
    idx = nn.kneighbors(Q, return_distance=False)
    score = (wtr[idx] * ytr[idx]).sum(1) / wtr[idx].sum(1)
"""


def measure(cmd: list[str]) -> tuple[float, float, float]:
    """Run ``cmd`` in a fresh process (through this script): (wall s, peak RSS MiB, CPU s)."""
    out = subprocess.run([sys.executable, __file__, "--measure", *cmd], check=True,
                         capture_output=True, text=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return res["wall"], res["rss_mib"], res["cpu"]


def _measure_child(cmd: list[str]) -> None:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.stderr.write(proc.stderr)
        raise SystemExit(proc.returncode)
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"wall": wall, "rss_mib": use.ru_maxrss / 1024,
                      "cpu": use.ru_utime + use.ru_stime}))


def step_train(args, out: Path) -> dict:
    data = out / f"bench_{args.train_events}.root"
    make_data(data, args.train_events)
    fmt = dict(features=FEATURES, data=str(data), k=K)
    (out / "knn.yaml").write_text(CONFIG.format(**fmt))
    (out / "bare_knn.py").write_text(textwrap.dedent(BARE.format(**fmt)))
    mva = shutil.which("mva", path=str(Path(sys.executable).parent)) or "mva"
    bare_cmd = [sys.executable, str(out / "bare_knn.py")]
    mva_cmd = [mva, "-q", "train", str(out / "knn.yaml"), "--output", str(out / "run_knn"),
               "--force"]
    pairs = []
    for _ in range(args.repeat):
        b = measure(bare_cmd)
        m = measure(mva_cmd)
        pairs.append((b, m))
        print(f"  pair: bare {b[0]:.1f} s (CPU {b[2]:.0f} s) {b[1]:.0f} MiB | mva {m[0]:.1f} s "
              f"(CPU {m[2]:.0f} s) {m[1]:.0f} MiB | ratio {m[0] / b[0]:.2f} (CPU "
              f"{m[2] / b[2]:.2f})", flush=True)
    ratio = statistics.median(m[0] / b[0] for b, m in pairs)
    metrics = json.loads((out / "run_knn" / "metrics.json").read_text())["methods"]["knn"]
    res = {"bare_s": statistics.median(b[0] for b, _ in pairs),
           "mva_s": statistics.median(m[0] for _, m in pairs),
           "bare_rss_mib": statistics.median(b[1] for b, _ in pairs),
           "mva_rss_mib": statistics.median(m[1] for _, m in pairs),
           "ratio": ratio, "cpu_ratio": statistics.median(m[2] / b[2] for b, m in pairs),
           "pairs": pairs, "fit_seconds": metrics["fit_seconds"],
           "notes": metrics.get("notes"), "training_events": metrics.get("training_events")}
    print(f"train ({args.train_events} + {args.train_events} events): bare {res['bare_s']:.1f} s "
          f"{res['bare_rss_mib']:.0f} MiB | mva {res['mva_s']:.1f} s {res['mva_rss_mib']:.0f} MiB "
          f"| ratio {ratio:.2f} (target <= 2) {'OK' if ratio <= 2 else 'MISSED'}, CPU time "
          f"ratio {res['cpu_ratio']:.2f}; "
          f"{metrics.get('notes')}", flush=True)
    return res


def split(n: int, seed: int):
    """``n`` training and ``n`` test events, standardised on the training events."""
    X, y, w = make_events(n, seed=seed)
    test = np.zeros(len(X), bool)
    test[np.random.default_rng(7).permutation(len(X))[:n]] = True
    mu, sd = X[~test].mean(0), X[~test].std(0)
    X = (X - mu) / sd
    return (X[~test], y[~test], w[~test].astype(np.float64)), (X[test], y[test],
                                                                w[test].astype(np.float64))


def weighted_fraction(idx: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    return (w[idx] * y[idx]).sum(1) / w[idx].sum(1)


def bare_faiss(train, test, search, score_train: bool = True) -> dict:
    """The index mva chose (``search``), as a faiss user builds and queries it: the same kind
    and parameters (mva's tuned nprobe and k_factor, or efSearch), all threads, k neighbours.
    An exact search (small samples) is compared with faiss's HNSW at efSearch 128."""
    import faiss

    from mva.methods import _neighbours

    X, y, w = train
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    res = {}
    with Timer() as t:
        if search.kind == "ivf":
            index = faiss.index_factory(X.shape[1], f"IVF{search.nlist},PQ{X.shape[1]}x4fs,RFlat")
            index.train(X32)
            index.add(X32)
            ivf = faiss.SearchParametersIVF()
            ivf.nprobe = search.nprobe
            params = faiss.IndexRefineSearchParameters()
            params.k_factor = search.k_factor
            params.base_index_params = ivf
        else:
            index = faiss.IndexHNSWFlat(X.shape[1], _neighbours.HNSW_M)
            index.hnsw.efConstruction = _neighbours.HNSW_EF_CONSTRUCTION
            index.add(X32)
            params = faiss.SearchParametersHNSW()
            params.efSearch = search.ef_search if search.kind == "hnsw" else 128
    res.update(fit_s=t.wall, fit_cpu=t.cpu)
    for name, Q in (("test", test[0]), ("train", X))[:2 if score_train else 1]:
        with Timer() as t:
            _, idx = index.search(np.ascontiguousarray(Q, dtype=np.float32), K, params=params)
            weighted_fraction(idx, y, w)
        res.update({f"{name}_s": t.wall, f"{name}_cpu": t.cpu})
    return res


def mva_knn(train, test, score_train: bool = True) -> tuple[dict, object, np.ndarray]:
    from mva.methods.knn import KNN

    with Timer() as t:
        m = KNN({"k": K}, "classification", seed=7).fit(*train)
    res = {"fit_s": t.wall, "fit_cpu": t.cpu, "search": m.search_.kind,
           "describe": m.search_.describe()}
    with Timer() as t:
        s_test = m.predict(test[0])
    res.update(test_s=t.wall, test_cpu=t.cpu)
    if score_train:
        with Timer() as t:
            m.predict(train[0])
        res.update(train_s=t.wall, train_cpu=t.cpu)
    return res, m, s_test


def _times(r: dict) -> str:
    return ", ".join(f"{k} {r[f'{k}_s']:.1f} s (CPU {r[f'{k}_cpu']:.0f} s)"
                     for k in ("fit", "test", "train") if f"{k}_s" in r)


def step_million(args) -> dict:
    from sklearn.metrics import roc_auc_score

    from mva.methods._neighbours import ExactSearch, recall

    train, test = split(args.events, seed=5)
    print(f"million: {len(train[0])} training + {len(test[0])} test events", flush=True)
    rows = []
    for _ in range(args.repeat):
        m_res, model, s_test = mva_knn(train, test, args.score_train)
        print(f"  mva: {m_res['describe']}: {_times(m_res)}", flush=True)
        b_res = bare_faiss(train, test, model.search_, args.score_train)
        print(f"  bare faiss: {_times(b_res)}", flush=True)
        rows.append({"mva": m_res, "bare": b_res})
    # the approximation against the exact search, on a subsample of the test events
    rng = np.random.default_rng(11)
    sub = np.sort(rng.choice(len(test[0]), args.check_events, replace=False))
    t0 = time.perf_counter()
    _, exact_idx = ExactSearch(np.asarray(train[0], np.float64)).kneighbors(
        np.asarray(test[0][sub], np.float64), K)
    t_exact = time.perf_counter() - t0
    approx_idx = model.kneighbors(test[0][sub])[1]
    r = recall(approx_idx, exact_idx)
    exact_scores = weighted_fraction(exact_idx, train[1], train[2])
    auc_exact = roc_auc_score(test[1][sub], exact_scores, sample_weight=test[2][sub])
    auc_approx = roc_auc_score(test[1][sub], s_test[sub], sample_weight=test[2][sub])
    keys = [f"{a}_{b}" for a in ("fit", "test", "train")[:3 if args.score_train else 2]
            for b in ("s", "cpu")]
    med = {side: {k: statistics.median(r_[side][k] for r_ in rows) for k in keys}
           for side in ("mva", "bare")}
    total = med["mva"]["fit_s"] + med["mva"]["test_s"]
    bare_total = med["bare"]["fit_s"] + med["bare"]["test_s"]
    res = {"rows": rows, "median": med, "recall": r, "auc_exact": auc_exact,
           "auc_approx": auc_approx, "exact_s_per_query": t_exact / len(sub),
           "check_events": int(len(sub))}
    cpu = med["mva"]["fit_cpu"] + med["mva"]["test_cpu"]
    bare_cpu = med["bare"]["fit_cpu"] + med["bare"]["test_cpu"]
    train_part = (f"+ train {med['mva']['train_s']:.0f} s" if args.score_train
                  else "training events not scored")
    print(f"million: mva fit + test {total:.0f} s (CPU {cpu:.0f} s; <= 600 s: "
          f"{'OK' if total <= 600 else 'MISSED'}), "
          f"{train_part}; bare "
          f"faiss fit + test {bare_total:.0f} s (CPU {bare_cpu:.0f} s), ratio "
          f"{total / bare_total:.2f} (CPU {cpu / bare_cpu:.2f}); recall {r:.4f} (>= 0.98), AUC {auc_approx:.4f} vs "
          f"exact {auc_exact:.4f} on {len(sub)} test events (|diff| {abs(auc_approx - auc_exact):.4f}"
          f" <= 0.002); exact search {1e3 * t_exact / len(sub):.1f} ms per query", flush=True)
    return res


def step_scaling(args, million: dict | None = None) -> dict:
    out = {}
    for n in [int(s) for s in args.scaling.split(",") if s]:
        if million is not None and n == args.events:
            res = {**million["rows"][0]["mva"]}       # measured above: not again
        else:
            train, test = split(n, seed=6)
            res, _, _ = mva_knn(train, test, score_train=False)
        out[n] = res
        print(f"scaling: {n:>8} training + {n} test events: {res['search']}: "
              f"{_times({k: v for k, v in res.items() if not k.startswith('train')})}",
              flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", default="train,million,scaling")
    ap.add_argument("--train-events", type=int, default=200_000, help="events per class")
    ap.add_argument("--events", type=int, default=1_000_000,
                    help="training (and test) events of the million step")
    ap.add_argument("--check-events", type=int, default=5000)
    ap.add_argument("--scaling", default="100000,300000,1000000")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--no-score-train", dest="score_train", action="store_false",
                    help="million step: do not score the training events (not in its target)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = ap.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    steps = args.steps.split(",")
    if "train" in steps:
        results["train"] = step_train(args, out)
    if "million" in steps:
        results["million"] = step_million(args)
    if "scaling" in steps:
        results["scaling"] = step_scaling(args, results.get("million"))
    (out / "bench_knn.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        _measure_child(sys.argv[2:])
    else:
        main()
