"""Quality of the multiclass task against known optima (issue targets).

* Gaussian toy (``mva example multiclass``: three classes in four variables with different
  covariances, so the Bayes boundaries are quadratic): the example config as written (all five
  methods at their defaults, 2000 training events per class) trained through the real ``mva``
  command on a large test sample; each method's test accuracy against the Bayes accuracy computed
  from the generator's true densities (target: best method within 1 % of Bayes, i.e.
  best / Bayes >= 0.99).
* scikit-learn's handwritten digits (1797 8x8 images, a real data set that ships with the
  package; ``mva example digits``): a CSV with 64 pixel features ``p0..p63`` and a ``label``
  column, ten classes ``d0..d9`` selected by the cuts ``label == k``, all five methods at their
  defaults, ``test_fraction: 0.3`` (targets: best test accuracy >= 0.97, linear >= 0.94).

Usage: python benchmarks/bench_multiclass.py [--events 50000] [--bayes-events 500000] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from mva.toys import multiclass_bayes_accuracy

METHODS = {name: {"type": name} for name in ("bdt", "mlp", "knn", "svm", "linear")}
BAYES_TARGET = 0.99  # best / Bayes
DIGITS_BEST_TARGET = 0.97
DIGITS_LINEAR_TARGET = 0.94


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True)


def read_test_accuracies(run_dir: Path) -> dict[str, float]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["task"] == "multiclass", metrics["task"]
    return {name: m["test"]["accuracy"] for name, m in metrics["methods"].items()}


def toy(mva: str, out: Path, events: int) -> dict[str, float]:
    ex = out / "multiclass"
    run([mva, "-q", "example", "multiclass", "--output", str(ex), "-n", str(events), "--force"])
    run([mva, "-q", "train", str(ex / "config.yaml"), "--output", str(out / "multiclass-run"),
         "--force"])
    return read_test_accuracies(out / "multiclass-run")


def digits(mva: str, out: Path) -> dict[str, float]:
    ex = out / "digits"
    run([mva, "-q", "example", "digits", "--output", str(ex), "--force"])
    run([mva, "-q", "train", str(ex / "config.yaml"), "--output", str(out / "digits-run"),
         "--force"])
    return read_test_accuracies(out / "digits-run")


def _ok(flag: bool) -> str:
    return "OK" if flag else "MISSED"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=50000,
                    help="toy events per class (2000 of them train, the rest test)")
    ap.add_argument("--bayes-events", type=int, default=500000,
                    help="events per class for the Monte Carlo Bayes accuracy")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = ap.parse_args()
    mva = shutil.which("mva", path=str(Path(sys.executable).parent)) or "mva"
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    bayes, bayes_err = multiclass_bayes_accuracy(n=args.bayes_events, seed=2024)
    acc = toy(mva, out, args.events)
    best = max(acc, key=acc.get)
    ratio = acc[best] / bayes
    print(f"multiclass toy ({args.events} events per class, 2000 of them for training): "
          "test accuracy")
    print(f"  {'Bayes':<8} {bayes:.4f} +- {bayes_err:.4f}")
    for name, a in sorted(acc.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<8} {a:.4f}   / Bayes {a / bayes:.4f}")
    print(f"  best {best}: best / Bayes {ratio:.4f} (target >= {BAYES_TARGET}) "
          f"{_ok(ratio >= BAYES_TARGET)}")

    dig = digits(mva, out)
    dbest = max(dig, key=dig.get)
    print("digits (sklearn load_digits, 10 classes, test_fraction 0.3): test accuracy")
    for name, a in sorted(dig.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<8} {a:.4f}")
    print(f"  best {dbest}: {dig[dbest]:.4f} (target >= {DIGITS_BEST_TARGET}) "
          f"{_ok(dig[dbest] >= DIGITS_BEST_TARGET)}; linear {dig['linear']:.4f} "
          f"(target >= {DIGITS_LINEAR_TARGET}) {_ok(dig['linear'] >= DIGITS_LINEAR_TARGET)}")

    results = {"toy": {"bayes": bayes, "bayes_error": bayes_err, "test_accuracy": acc,
                       "best_over_bayes": ratio},
               "digits": {"test_accuracy": dig}}
    (out / "multiclass_results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
