"""Time ``mva train``/``mva apply`` against the bare libraries doing the same work.

Makes 1M signal + 1M background events with 20 float32 features in a ROOT file (once, cached),
then runs each step in a fresh process and records its wall time and peak RSS:

* train: ``mva train`` with only a BDT (200 trees, depth 3, test_fraction 0.5) and its default
  outputs: evaluation with uncertainties, permutation importance, TrainTree/TestTree, plots and
  the HTML report; vs the bare libraries as a user writes them: uproot reads the branches (float32
  as stored), numpy splits, xgboost fits the same model and predicts train and test;
* apply: ``mva apply`` of that BDT to 1M events with its default outputs (score, P(S|y), Rarity)
  vs uproot read (float32) + xgboost ``inplace_predict`` + uproot write of the score.

Prints the median of the pairwise ratios (targets: train time <= 1.3x, train peak RSS <= 1.5x,
apply time <= 1.2x).
Usage: python benchmarks/bench_classification.py [--events 1000000] [--repeat 3] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

N_FEATURES = 20
FEATURES = [f"x{i}" for i in range(N_FEATURES)]
TREES, DEPTH, ETA = 200, 3, 0.1


def make_data(path: Path, n: int, seed: int = 1) -> None:
    import uproot

    if path.exists():
        return
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.root")
    with uproot.recreate(tmp) as f:
        for tree, shift in (("TreeS", 0.3), ("TreeB", -0.3)):
            t = f.mktree(tree, {name: np.float32 for name in FEATURES} | {"weight": np.float32})
            for start in range(0, n, 250_000):
                m = min(250_000, n - start)
                cols = {name: (rng.normal(size=m) + shift * (j % 3 == 0)).astype(np.float32)
                        for j, name in enumerate(FEATURES)}
                cols["weight"] = rng.uniform(0.5, 1.5, m).astype(np.float32)
                t.extend(cols)
    os.replace(tmp, path)


BARE_TRAIN = """
import numpy as np, uproot, xgboost as xgb, os
features = {features}
parts = []
for tree, label in (("TreeS", 1), ("TreeB", 0)):
    t = uproot.open({data!r})[tree]
    cols = t.arrays(features + ["weight"], library="np")
    X = np.column_stack([cols[f] for f in features])
    parts.append((X, np.full(len(X), label), cols["weight"]))
X = np.concatenate([p[0] for p in parts]); y = np.concatenate([p[1] for p in parts])
w = np.concatenate([p[2] for p in parts])
rng = np.random.default_rng(7)
test = rng.random(len(X)) < 0.5
params = dict(objective="binary:logistic", tree_method="hist", max_depth={depth}, eta={eta},
              subsample=0.8, nthread=len(os.sched_getaffinity(0)), seed=7)
booster = xgb.train(params, xgb.QuantileDMatrix(X[~test], y[~test], weight=w[~test]), {trees})
p_train = booster.inplace_predict(X[~test]); p_test = booster.inplace_predict(X[test])
booster.save_model({model!r})
"""

BARE_APPLY = """
import numpy as np, uproot, xgboost as xgb
features = {features}
cols = uproot.open({data!r})["TreeS"].arrays(features, library="np")
X = np.column_stack([cols[f] for f in features])
booster = xgb.Booster(); booster.load_model({model!r})
score = booster.inplace_predict(X)
with uproot.recreate({out!r}) as f:
    f.mktree("TreeS", {{"bdt": score.dtype}}).extend({{"bdt": score}})
"""

#: the data and split of every benchmark on these events (a format string: data, features);
#: each script appends its ``methods:``
DATA_CONFIG = """
task: classification
data:
  signal: {{files: [{data}], tree: TreeS}}
  background: {{files: [{data}], tree: TreeB}}
  weight: weight
  features: {features}
split: {{test_fraction: 0.5, seed: 7}}
"""

CONFIG = DATA_CONFIG + """methods:
  # the model of the bare side (mva's defaults stop early and subsample 0.5: other work)
  bdt: {{type: bdt, n_estimators: {trees}, max_depth: {depth}, learning_rate: {eta},
         early_stopping: false, subsample: 0.8, min_child_weight: 1}}
"""


def measure(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd`` in a fresh process (through this script), return (wall s, peak RSS MiB)."""
    out = subprocess.run([sys.executable, __file__, "--measure", *cmd], check=True,
                         capture_output=True, text=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return res["wall"], res["rss_mib"]


def _measure_child(cmd: list[str]) -> None:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.stderr.write(proc.stderr)
        raise SystemExit(proc.returncode)
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"wall": wall, "rss_mib": rss}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000, help="events per class")
    ap.add_argument("--repeat", type=int, default=3,
                    help="interleaved bare/mva pairs per step (medians and the median ratio)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = ap.parse_args()
    out = args.out.resolve()
    data = out / f"bench_{args.events}.root"
    print(f"data: {data} ({args.events} signal + {args.events} background, {N_FEATURES} features)")
    make_data(data, args.events)
    mva = shutil.which("mva", path=str(Path(sys.executable).parent)) or "mva"
    fmt = dict(features=FEATURES, data=str(data), trees=TREES, depth=DEPTH, eta=ETA)
    (out / "bench.yaml").write_text(CONFIG.format(**fmt))
    bare_train = out / "bare_train.py"
    bare_train.write_text(textwrap.dedent(BARE_TRAIN.format(**fmt, model=str(out / "bare.ubj"))))
    bare_apply = out / "bare_apply.py"
    bare_apply.write_text(textwrap.dedent(BARE_APPLY.format(
        features=FEATURES, data=str(data), model=str(out / "bare.ubj"),
        out=str(out / "bare_scored.root"))))
    steps = {
        "train": ([sys.executable, str(bare_train)],
                  [mva, "-q", "train", str(out / "bench.yaml"), "--output", str(out / "run"),
                   "--force"]),
        "apply": ([sys.executable, str(bare_apply)],
                  [mva, "-q", "apply", str(out / "run"), str(data), "--tree", "TreeS",
                   "--output", str(out / "mva_scored.root"), "--methods", "bdt"]),
    }
    results = {}
    for step, (bare_cmd, mva_cmd) in steps.items():
        # interleaved pairs (bare, mva, bare, mva, ...): a drift of the machine's speed hits both
        pairs = [(measure(bare_cmd), measure(mva_cmd)) for _ in range(args.repeat)]
        t_ratios = sorted(m[0] / b[0] for b, m in pairs)
        m_ratios = sorted(m[1] / b[1] for b, m in pairs)
        med = len(pairs) // 2
        b_t = float(np.median([b[0] for b, _ in pairs]))
        m_t = float(np.median([m[0] for _, m in pairs]))
        b_m = float(np.median([b[1] for b, _ in pairs]))
        m_m = float(np.median([m[1] for _, m in pairs]))
        results[step] = dict(bare_s=b_t, mva_s=m_t, time_ratio=t_ratios[med], bare_rss_mib=b_m,
                             mva_rss_mib=m_m, rss_ratio=m_ratios[med],
                             time_ratios=t_ratios)
        print(f"{step:<6} bare {b_t:7.1f} s {b_m:7.0f} MiB | mva {m_t:7.1f} s {m_m:7.0f} MiB | "
              f"time x{t_ratios[med]:.2f} (pairs: {', '.join(f'{r:.2f}' for r in t_ratios)})  "
              f"RSS x{m_ratios[med]:.2f}")
    targets = {"train time": (results["train"]["time_ratio"], 1.3),
               "train RSS": (results["train"]["rss_ratio"], 1.5),
               "apply time": (results["apply"]["time_ratio"], 1.2)}
    for name, (ratio, target) in targets.items():
        print(f"{name:<11} ratio {ratio:.2f} (target <= {target}) {'OK' if ratio <= target else 'MISSED'}")
    (out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        _measure_child(sys.argv[2:])
    else:
        main()
