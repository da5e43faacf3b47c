"""The mva Python API, the way a notebook user works: toy data, train, inspect, apply, report.

    python examples/python_api.py [OUTPUT_DIR] [--fast]

Every step below is one public call; the same steps on the command line are
``mva example``, ``mva train``, ``mva apply`` and ``mva report``.  ``--fast`` trains only a small
BDT and the Fisher discriminant (a few seconds) instead of every method of the toy config.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import uproot

import mva
import mva.examples
import mva.report

# Only fast methods: `methods=...` replaces the whole `methods:` mapping of the config (a value is
# parsed as YAML, exactly like `mva train --set KEY=VALUE`).
FAST = ["methods={bdt: {type: bdt, n_estimators: 50}, fisher: {type: linear}}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default="./mva-python-example", type=Path,
                        help="folder for the toy data, the run and the scored file "
                             "(default: %(default)s)")
    parser.add_argument("--fast", action="store_true",
                        help="train only a 50-tree BDT and the Fisher discriminant")
    args = parser.parse_args(argv)
    out: Path = args.output
    out.mkdir(parents=True, exist_ok=True)

    # 1. Toy data: TreeS (signal) and TreeB (weighted background) in data/toy.root, plus a
    #    config.yaml that trains on them (`mva example classification -n 2000`).
    config_path = mva.examples.write_example("classification", out / "toy", n=2000, force=True)
    toy_file = config_path.parent / "data" / "toy.root"

    # 2. The config, validated when read; relative data paths resolve against its folder.
    #    Overrides work as `--set` does: load_config(path, overrides=["split.seed=3"]).
    cfg = mva.load_config(config_path, overrides=FAST if args.fast else None)
    print(f"methods: {', '.join(cfg.methods)}")

    # 3. Train every method; the run directory appears complete or not at all (force=True
    #    replaces the one of an earlier run of this script).
    run_dir = out / "run"
    mva.train(cfg, run_dir, force=True)

    # 4. All figures of merit are in metrics.json (the file batch jobs read).
    metrics = json.loads((run_dir / "metrics.json").read_text())
    print(f"{'method':<10} {'test AUC':>9} {'effS@effB=0.1':>14}")
    for name, m in metrics["methods"].items():
        test = m["test"]
        print(f"{name:<10} {test['roc_auc']:>9.4f} {test['eff_sig_at_bkg']['0.1']:>14.4f}")

    # 5. Apply the trained methods to new events (here the toy background): one branch per
    #    method (plus <method>_prob = P(S|y) and <method>_rarity) in a tree of the same name.
    scored = out / "scored.root"
    summary = mva.apply(run_dir, [str(toy_file)], scored, tree="TreeB")
    print(f"scored {summary['written']} events -> {scored}")
    with uproot.open(scored) as f:
        tree = f["TreeB"]
        for name in summary["methods"]:
            print(f"mean {name} score on TreeB: {tree[name].array(library='np').mean():.4f}")

    # 6. The self-contained HTML report (train already wrote one; this re-creates it, as
    #    `mva report` does; pass several run directories to compare them).
    report = mva.report.write_report([run_dir])
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
