"""Time ``mva apply`` over many files: one local process, ``--cluster local:N``, and the bare loop.

Makes FILES ROOT files of EVENTS events (20 float32 features, tree Events; one file written, the
others hard links or copies of it), trains a BDT with mva's defaults (``{type: bdt}``) on a small
sample, then, each in a fresh process:

* ``mva apply RUN data/*.root --tree Events --output scored/`` in one process (its default
  outputs: score, P(S|y) and Rarity per event, one output file per input);
* the same with ``--cluster local:N`` (N worker processes, one thread each);
* the bare loop a user would write: for every file, uproot ``iterate`` in chunks (float32 as
  uproot gives it), ``xgboost.Booster.inplace_predict``, and an uproot output file with the score.

Prints wall times, the ratios and the scaling efficiency (local time / cluster time / N).
Usage: python benchmarks/bench_dask_apply.py [--files 20] [--events 1000000] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

N_FEATURES = 20
FEATURES = [f"x{i}" for i in range(N_FEATURES)]
BIN = Path(sys.executable).parent


def make_file(path: Path, n: int, seed: int = 1) -> None:
    import uproot

    if path.exists():
        return
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.root")
    with uproot.recreate(tmp) as f:
        t = f.mktree("Events", {name: np.float32 for name in FEATURES} | {"label": np.int32})
        for start in range(0, n, 250_000):
            m = min(250_000, n - start)
            y = (rng.random(m) < 0.5).astype(np.int32)
            cols = {name: (rng.normal(size=m) + 0.3 * (2 * y - 1) * (j % 3 == 0)).astype(
                np.float32) for j, name in enumerate(FEATURES)}
            cols["label"] = y
            t.extend(cols)
    os.replace(tmp, path)


def make_inputs(d: Path, files: int, events: int) -> list[Path]:
    first = d / f"ev{events}" / "data_00.root"
    make_file(first, events)
    paths = [first]
    for i in range(1, files):
        p = first.with_name(f"data_{i:02d}.root")
        if not p.exists():
            try:
                os.link(first, p)
            except OSError:
                shutil.copy(first, p)
        paths.append(p)
    return paths


def train(d: Path, data: Path) -> Path:
    run = d / "run"
    if (run / "metrics.json").exists():
        return run
    config = d / "config.yaml"
    config.write_text(textwrap.dedent(f"""
        task: classification
        data:
          signal: {{files: [{data}], tree: Events, cut: "label == 1"}}
          background: {{files: [{data}], tree: Events, cut: "label == 0"}}
          features: [{", ".join(FEATURES)}]
        split: {{train_size: {{signal: 20000, background: 20000}}, seed: 1}}
        methods:
          bdt: {{type: bdt}}
        """))
    subprocess.run([str(BIN / "mva"), "-q", "train", str(config), "--output", str(run),
                    "--force", "--set", "evaluation.plots=false"], check=True)
    return run


BARE = """
import sys, numpy as np, uproot, xgboost as xgb
features = {features}
booster = xgb.Booster(); booster.load_model({model!r})
for path in sys.argv[1:]:
    out = {out!r} + "/" + path.rsplit("/", 1)[-1]
    with uproot.recreate(out) as f:
        tree = f.mktree("Events", {{"bdt": np.float32}})
        for cols in uproot.open(path)["Events"].iterate(features, step_size=200_000,
                                                        library="np"):
            X = np.column_stack([cols[n] for n in features])
            tree.extend({{"bdt": booster.inplace_predict(X).astype(np.float32)}})
"""


def timed(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "dask")
    args = ap.parse_args()
    d = args.out
    paths = make_inputs(d, args.files, args.events)
    run = train(d, paths[0])
    model = next((run / "models" / "bdt").glob("*.ubj"))
    inputs = [str(p) for p in paths]
    bare = d / "bare.py"
    bare.write_text(BARE.format(features=FEATURES, model=str(model), out=str(d / "bare_out")))
    sides = {
        "mva apply, one process": [str(BIN / "mva"), "-q", "apply", str(run), *inputs,
                                   "--tree", "Events", "--output", f"{d}/local_out/"],
        f"mva apply --cluster local:{args.workers}": [
            str(BIN / "mva"), "-q", "apply", str(run), *inputs, "--tree", "Events",
            "--output", f"{d}/cluster_out/", "--cluster", f"local:{args.workers}"],
        "bare uproot + xgboost loop": [sys.executable, str(bare), *inputs],
    }
    (d / "bare_out").mkdir(exist_ok=True)
    times: dict[str, list[float]] = {k: [] for k in sides}
    for _ in range(args.repeat):  # interleaved: drifts of the machine hit every side alike
        for name, argv in sides.items():
            times[name].append(timed(argv))
    med = {k: float(np.median(v)) for k, v in times.items()}
    n = args.files * args.events
    print(f"apply of a default BDT ({{type: bdt}}) to {args.files} files x {args.events} events "
          f"({n / 1e6:.0f}M), {os.cpu_count()} cores, median of {args.repeat}")
    for name, t in med.items():
        print(f"  {name:<34} {t:7.1f} s  ({n / t / 1e6:.2f}M events/s)")
    local, cluster = med["mva apply, one process"], med[f"mva apply --cluster local:{args.workers}"]
    bare_t = med["bare uproot + xgboost loop"]
    print(f"  ratio mva one process / bare:        {local / bare_t:.2f}")
    print(f"  ratio mva local:{args.workers} / bare:             {cluster / bare_t:.2f}")
    print(f"  speed-up local:{args.workers} vs one process:      {local / cluster:.2f}")
    print(f"  scaling efficiency (speed-up / {args.workers}):    {local / cluster / args.workers:.2f}")


if __name__ == "__main__":
    main()
