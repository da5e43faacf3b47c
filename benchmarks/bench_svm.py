"""The SVM at scale: the Nystroem solver on hundreds of thousands of events against the exact SVC
on 20k, and against scikit-learn doing the same approximation.

Events as ``bench_classification.py`` makes them (20 float32 features), standardised as mva
does; all sides in this process, alternating, medians of ``--repeat``:

* target (``--events``, default 1M: half for training, half for testing): mva's ``SVM`` at its
  defaults (``solver: auto``: Nystroem with 1000 landmarks above ``max_train_events``) fitted on
  all training events, then scoring every event (training + test, 1M); against scikit-learn's
  ``SVC`` (the exact solver mva used before) on a 20k subset. Test AUC (weighted) of both on
  the same ``--auc-events`` test events, fit time, scoring time (targets: >= 500k training
  events in <= 5 min, AUC no worse than the exact SVC on 20k, 1M events scored in <= 30 s);
* same work (``--compare-events``, default 100k training events): mva's Nystroem fit against
  scikit-learn's ``Nystroem(n_components=1000)`` + ``LinearSVC`` (the squared hinge, as mva's)
  on the same events, ratio of the fit times (sklearn needs the n x 1000 float64 features and
  liblinear's copy of them: about 25 GB at 1M events, so the comparison is made smaller);
* scaling: mva's fit time at 100k, 300k and 1M training events.

Usage: python benchmarks/bench_svm.py [--events 1000000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_mlp import Timer, make_events  # noqa: E402  (the same events)

N_LANDMARKS = 1000


def standardised_split(n_events: int, seed: int = 1):
    X, y, w = make_events(n_events // 2, seed=seed)
    test = np.random.default_rng(7).random(len(X)) < 0.5
    mu, sd = X[~test].mean(0), X[~test].std(0)
    X = ((X - mu) / sd).astype(np.float64)
    return (X[~test], y[~test], w[~test].astype(np.float64)), (X[test], y[test],
                                                                w[test].astype(np.float64))


def auc(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s, sample_weight=w))


def mva_fit(train, seed: int = 7):
    """mva's SVM at its defaults: the model and the fit's (wall, CPU) seconds."""
    from mva.methods.svm import SVM

    with Timer() as t:
        m = SVM({}, "classification", seed=seed).fit(*train)
    return m, (t.wall, t.cpu)


def exact_svc(train, n: int = 20_000, seed: int = 7):
    from sklearn.svm import SVC

    X, y, w = train
    idx = np.sort(np.random.default_rng(seed).choice(len(X), min(n, len(X)), replace=False))
    with Timer() as t:
        svc = SVC(random_state=seed).fit(X[idx], y[idx], sample_weight=w[idx] / w[idx].mean())
    return svc, (t.wall, t.cpu)


def sklearn_nystroem(train, seed: int = 7) -> tuple[float, float]:
    from sklearn.kernel_approximation import Nystroem
    from sklearn.svm import LinearSVC

    X, y, w = train
    with Timer() as t:
        ny = Nystroem(gamma=1.0 / (X.shape[1] * X.var()), n_components=N_LANDMARKS,
                      random_state=seed)
        F = ny.fit_transform(X)
        LinearSVC(C=1.0).fit(F, y, sample_weight=w / w.mean())
    return t.wall, t.cpu


def fmt(t: tuple[float, float]) -> str:
    return f"{t[0]:.1f} s (CPU {t[1]:.0f} s)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000, help="events in all (half train)")
    ap.add_argument("--auc-events", type=int, default=100_000,
                    help="test events on which both AUCs are computed")
    ap.add_argument("--compare-events", type=int, default=100_000,
                    help="training events of the comparison with scikit-learn's Nystroem")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--scaling", default="100000,300000,1000000",
                    help="training-event counts of the scaling table ('' for none)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = ap.parse_args()
    results: dict = {"scaling": {}}

    train, test = standardised_split(args.events)
    sub = np.random.default_rng(3).choice(len(test[0]), min(args.auc_events, len(test[0])),
                                          replace=False)
    Xa, ya, wa = (a[sub] for a in test)
    everything = np.vstack([train[0], test[0]])
    print(f"target: {len(train[0])} training events, {len(everything)} scored, AUC on "
          f"{len(sub)} test events", flush=True)
    rows = []
    for _ in range(args.repeat):
        svc, t_svc = exact_svc(train)
        with Timer() as t:
            auc_svc = auc(ya, svc.decision_function(Xa), wa)
        t_svc_score = (t.wall, t.cpu)
        m, t_fit = mva_fit(train)
        with Timer() as t:
            scores = m.predict(everything)
        t_score = (t.wall, t.cpu)
        auc_mva = auc(ya, scores[len(train[0]):][sub], wa)
        rows.append(dict(svc_fit=t_svc, svc_score=t_svc_score, svc_auc=auc_svc, mva_fit=t_fit,
                         mva_score=t_score, mva_auc=auc_mva, training_events=m.training_events_,
                         solver=m.solver_, n_support=len(svc.support_), notes=m.notes_))
        print(f"  exact SVC on 20k: fit {fmt(t_svc)} ({len(svc.support_)} support vectors), "
              f"scoring {len(sub)} events {fmt(t_svc_score)}, test AUC {auc_svc:.4f}")
        print(f"  mva ({m.solver_}, {m.training_events_} events): fit {fmt(t_fit)}, scoring "
              f"{len(everything)} events {fmt(t_score)}, test AUC {auc_mva:.4f}; {m.notes_}",
              flush=True)
    r = sorted(rows, key=lambda r: r["mva_fit"][0])[len(rows) // 2]     # the median fit
    results["target"] = {"rows": rows}
    per_million = r["mva_score"][0] * 1e6 / len(everything)
    print(f"target: fit {fmt(r['mva_fit'])} on {r['training_events']} events "
          f"(<= 300 s: {'OK' if r['mva_fit'][0] <= 300 else 'MISSED'}), scoring "
          f"{len(everything)} in {fmt(r['mva_score'])} (<= 30 s for 1M: "
          f"{'OK' if per_million <= 30 else 'MISSED'}), AUC {r['mva_auc']:.4f} vs exact SVC on "
          f"20k {r['svc_auc']:.4f} ({'OK' if r['mva_auc'] >= r['svc_auc'] else 'MISSED'})",
          flush=True)

    if args.compare_events:
        small, _ = standardised_split(2 * args.compare_events, seed=2)
        pairs = []
        for _ in range(args.repeat):
            b = sklearn_nystroem(small)
            _, m_t = mva_fit(small)
            pairs.append((b, m_t))
            print(f"  pair: sklearn Nystroem + LinearSVC {fmt(b)}, mva {fmt(m_t)}, ratio "
                  f"{m_t[0] / b[0]:.2f} (CPU {m_t[1] / b[1]:.2f})", flush=True)
        ratio = statistics.median(m[0] / b[0] for b, m in pairs)
        cpu_ratio = statistics.median(m[1] / b[1] for b, m in pairs)
        results["same_work"] = {"events": len(small[0]), "pairs": pairs, "ratio": ratio,
                                "cpu_ratio": cpu_ratio}
        print(f"same work ({len(small[0])} training events): ratio {ratio:.2f}, CPU time ratio "
              f"{cpu_ratio:.2f}", flush=True)

    for n in [int(s) for s in args.scaling.split(",") if s]:
        tr, _ = standardised_split(2 * n, seed=4)
        m, t = mva_fit(tr)
        with Timer() as ts:
            m.predict(tr[0])
        results["scaling"][n] = {"fit": t, "score": (ts.wall, ts.cpu)}
        print(f"scaling: {n:>8} training events: fit {fmt(t)}, scoring them "
              f"{fmt((ts.wall, ts.cpu))}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_svm.json").write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    sys.exit(main())
