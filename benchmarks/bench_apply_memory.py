"""Peak RSS of ``mva apply`` against the input size: it must not grow with the file.

Writes the classification example (``mva example classification -n N``: TreeB holds N events)
for N = 1M and 10M, trains a default BDT once on a small sample, then measures the peak RSS of
``mva apply RUN toy.root --tree TreeB --output scored.root`` (its default outputs) on each file,
in a fresh process. The same for files written by uproot with one basket per branch (one
``extend`` of everything), where uproot (like ROOT) would decompress the whole basket to read any
entry range of it: mva streams such baskets (``mva.io.baskets``).

Prints the RSS and the 10M/1M ratio (target: within 10 %).
Usage: python benchmarks/bench_apply_memory.py [--small 1000000] [--large 10000000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
from bench_classification import measure

BIN = Path(sys.executable).parent
FEATURES = ["var1", "var2", "var3", "var4"]


def example(d: Path, n: int) -> Path:
    out = d / f"example_{n}"
    if not (out / "data" / "toy.root").exists():
        subprocess.run([str(BIN / "mva"), "-q", "example", "classification", "--output",
                        str(out), "-n", str(n), "--seed", "3", "--force"], check=True,
                       stdout=subprocess.DEVNULL)
    return out / "data" / "toy.root"


def one_basket(d: Path, n: int) -> Path:
    import uproot

    path = d / f"one_basket_{n}.root"
    if not path.exists():
        rng = np.random.default_rng(4)
        with uproot.recreate(path) as f:
            t = f.mktree("TreeB", {name: np.float32 for name in [*FEATURES, "weight"]})
            t.extend({name: rng.normal(size=n).astype(np.float32) for name in FEATURES}
                     | {"weight": np.ones(n, dtype=np.float32)})
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=1_000_000)
    ap.add_argument("--large", type=int, default=10_000_000)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "memory")
    args = ap.parse_args()
    d = args.out.resolve()
    d.mkdir(parents=True, exist_ok=True)
    sizes = (args.small, args.large)
    inputs = {"mva example": [example(d, n) for n in sizes],
              "one basket per branch": [one_basket(d, n) for n in sizes]}
    run = d / "run"
    if not (run / "metrics.json").exists():
        config = inputs["mva example"][0].parents[1] / "config.yaml"
        subprocess.run([str(BIN / "mva"), "-q", "train", str(config), "--output", str(run),
                        "--force", "--set", "methods={bdt: {type: bdt}}",
                        "--set", "split.train_size={signal: 20000, background: 20000}"],
                       check=True, stdout=subprocess.DEVNULL)
    print(f"mva apply of a default BDT, peak RSS (MiB), {sizes[0] / 1e6:g}M vs "
          f"{sizes[1] / 1e6:g}M events")
    for kind, paths in inputs.items():
        rss = []
        for path, n in zip(paths, sizes, strict=True):
            wall, mib = measure([str(BIN / "mva"), "-q", "apply", str(run), str(path),
                                 "--tree", "TreeB", "--output", str(d / "scored.root")])
            rss.append(mib)
            print(f"  {kind:<22} {n / 1e6:5g}M events: {mib:6.0f} MiB  {wall:6.1f} s")
        ratio = rss[1] / rss[0]
        verdict = "OK" if ratio <= 1.1 else "MISSED"
        print(f"  {kind:<22} ratio {ratio:.2f} (target <= 1.10) {verdict}")


if __name__ == "__main__":
    main()
