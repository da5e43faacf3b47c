"""Time an MLP epoch in ``mva`` against a bare torch loop doing the same work.

Both sides train the same network (mva's default architecture and activation, batch size 256,
Adam at mva's default learning rate) on the same float32 events (20 features, the data of
``bench_classification.py``) for ``--epochs`` epochs, in this process, on the same device:

* mva: ``MLP(...).fit(X_fit, y, w, validation=...)``, as ``mva train`` calls it (its default early
  stopping: the weighted validation loss after every epoch, the best epoch's weights kept);
* bare: the loop a torch user writes: the tensors moved to the device once, per epoch a
  ``randperm``, per batch a gather of the shuffled indices, forward, the weighted logistic loss,
  backward, ``Adam.step()``; after every epoch the validation loss (one forward pass).

The sides alternate (bare, mva, bare, mva, ...) and the medians of ``--repeat`` pairs are printed
with the median of the pairwise ratios (target: mva <= 1.2x bare per epoch), then the epoch time
of mva at 100k, 300k and 1M events (the scaling).
Usage: python benchmarks/bench_mlp.py [--events 200000] [--epochs 3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

N_FEATURES = 20


def make_events(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` signal + ``n`` background events as ``bench_classification.py`` writes them
    (float32 features, shifted in every third one; weights uniform in 0.5 .. 1.5)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(2 * n, N_FEATURES)).astype(np.float32)
    y = np.r_[np.ones(n), np.zeros(n)].astype(np.int8)
    X[:, ::3] += np.where(y == 1, 0.3, -0.3)[:, None].astype(np.float32)
    w = rng.uniform(0.5, 1.5, 2 * n).astype(np.float32)
    return X, y, w


class Timer:
    """Wall and CPU (all threads of this process) seconds of a block: the machine is shared, and
    CPU time varies less with the load of others than wall time does."""

    def __enter__(self) -> Timer:
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._w
        self.cpu = time.process_time() - self._c


def split(X, y, w, seed: int = 7):
    """80 % fit, 20 % validation (mva's default validation_fraction), standardised."""
    rng = np.random.default_rng(seed)
    val = rng.random(len(X)) < 0.2
    mu, sd = X[~val].mean(0), X[~val].std(0)
    Xs = (X - mu) / sd
    return (Xs[~val], y[~val], w[~val]), (Xs[val], y[val], w[val])


def mva_epochs(fit, val, epochs: int, device: str) -> tuple[float, float]:
    """Wall and CPU seconds per epoch of mva's MLP fit."""
    from mva.methods.mlp import MLP

    m = MLP({"epochs": epochs, "device": device}, "classification", seed=7)
    with Timer() as t:
        m.fit(*fit, validation=val)
    return t.wall / epochs, t.cpu / epochs


def bare_epochs(fit, val, epochs: int, device: str) -> tuple[float, float]:
    """Wall and CPU seconds per epoch of the bare loop."""
    with Timer() as t:
        bare_loop(fit, val, epochs, device)
    return t.wall / epochs, t.cpu / epochs


def bare_loop(fit, val, epochs: int, device: str) -> None:
    import torch
    import torch.nn.functional as F

    from mva.methods.mlp import MLPParams

    p = MLPParams()
    act = {"relu": torch.nn.ReLU, "elu": torch.nn.ELU, "tanh": torch.nn.Tanh,
           "sigmoid": torch.nn.Sigmoid, "leaky_relu": torch.nn.LeakyReLU}[p.activation]
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       "cpu" if device == "auto" else device)
    torch.manual_seed(7)
    layers, prev = [], N_FEATURES
    for width in p.hidden_layers:
        layers += [torch.nn.Linear(prev, width), act()]
        prev = width
    net = torch.nn.Sequential(*layers, torch.nn.Linear(prev, 1)).to(dev)
    X, y, w = (torch.as_tensor(a, device=dev, dtype=torch.float32) for a in fit)
    Xv, yv, wv = (torch.as_tensor(a, device=dev, dtype=torch.float32) for a in val)
    opt = torch.optim.Adam(net.parameters(), lr=p.learning_rate)
    for _ in range(epochs):
        perm = torch.randperm(len(X), device=dev)
        for s in range(0, len(X), p.batch_size):
            idx = perm[s:s + p.batch_size]
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(net(X[idx])[:, 0], y[idx], weight=w[idx],
                                                      reduction="sum") / w[idx].sum()
            loss.backward()
            opt.step()
        with torch.no_grad():
            vloss = F.binary_cross_entropy_with_logits(net(Xv)[:, 0], yv, weight=wv,
                                                       reduction="sum") / wv.sum()
            float(vloss)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000, help="events in all (half signal)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--scaling", default="100000,300000,1000000",
                    help="event counts of the scaling table ('' for none)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = ap.parse_args()
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}"
          f"{' (cuda)' if torch.cuda.is_available() else ''}")
    fit, val = split(*make_events(args.events // 2))
    print(f"{len(fit[0])} training + {len(val[0])} validation events, {args.epochs} epochs")
    # warm-up, untimed: torch's first calls (thread pools, kernels) on a small sample
    bare_epochs((fit[0][:2048], fit[1][:2048], fit[2][:2048]), val, 1, args.device)
    mva_epochs((fit[0][:2048], fit[1][:2048], fit[2][:2048]), val, 1, args.device)
    pairs = []
    for _ in range(args.repeat):
        b = bare_epochs(fit, val, args.epochs, args.device)
        m = mva_epochs(fit, val, args.epochs, args.device)
        pairs.append((b, m))
        print(f"  pair: bare {b[0]:.2f} s/epoch (CPU {b[1]:.2f} s), mva {m[0]:.2f} s/epoch "
              f"(CPU {m[1]:.2f} s), ratio {m[0] / b[0]:.2f}", flush=True)
    ratios = sorted(m[0] / b[0] for b, m in pairs)
    bare = statistics.median(b[0] for b, _ in pairs)
    mva = statistics.median(m[0] for _, m in pairs)
    ratio = statistics.median(ratios)
    cpu_ratio = statistics.median(m[1] / b[1] for b, m in pairs)
    print(f"epoch: bare {bare:.2f} s | mva {mva:.2f} s | ratio {ratio:.2f} "
          f"(target <= 1.2) {'OK' if ratio <= 1.2 else 'MISSED'}; CPU time ratio {cpu_ratio:.2f}")
    results = {"events": args.events, "epochs": args.epochs, "bare_s_per_epoch": bare,
               "mva_s_per_epoch": mva, "ratio": ratio, "ratios": ratios,
               "cpu_ratio": cpu_ratio, "scaling": {}}
    for n in [int(s) for s in args.scaling.split(",") if s]:
        fit_n, val_n = split(*make_events(n // 2, seed=2))
        t = mva_epochs(fit_n, val_n, 1, args.device)
        b = bare_epochs(fit_n, val_n, 1, args.device)
        results["scaling"][n] = {"mva_s_per_epoch": t, "bare_s_per_epoch": b}
        print(f"scaling: {n:>8} events: mva {t[0]:6.2f} s/epoch (CPU {t[1]:.2f} s), bare "
              f"{b[0]:6.2f} s/epoch (CPU {b[1]:.2f} s), ratio {t[0] / b[0]:.2f}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_mlp.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())
