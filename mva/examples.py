"""``mva example``: toy data sets with a config that trains on them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mva.errors import InputError
from mva.io.writers import atomic_directory, write_trees

__all__ = ["EXAMPLES", "write_example"]

CLASSIFICATION_CONFIG = """\
# TMVA-style toy: four correlated Gaussian variables, weighted background.
task: classification
data:
  signal:     {files: [data/toy.root], tree: TreeS}
  background: {files: [data/toy.root], tree: TreeB, weight: weight}
  features: [var1, var2, var3, var4]     # branch names or expressions: "var1 + var2", "abs(eta)"
  spectators: []                         # carried into outputs, never trained on
  cut: ""                                # selection for both classes; a class may have its own `cut`
split:
  train_size: {signal: 1000, background: 1000}   # or  test_fraction: 0.5
  seed: 7
methods:
  bdt: {type: bdt, n_estimators: 800, max_depth: 3, learning_rate: 0.1}
  mlp: {type: mlp, hidden_layers: [64, 64], activation: relu, epochs: 100}
  knn: {type: knn, k: 20}
  svm: {type: svm, C: 1.0, gamma: scale}
  fisher: {type: linear}
evaluation:
  yields: {signal: 1000, background: 10000}   # expected events after the selection
"""

REGRESSION_CONFIG = """\
# TMVA-style regression toy: a noisy parabola of two uniform variables.
task: regression
data:
  files: [data/regression.root]
  tree: TreeR
  features: [var1, var2]
  target: fvalue
split: {train_size: 10000, seed: 3}
methods:
  bdt: {type: bdt}
  mlp: {type: mlp}
  knn: {type: knn}
  svm: {type: svm}
  linear: {type: linear}
"""

CALORIMETER_CONFIG = """\
# Photon energy correction: predict E_true/E_raw and a per-photon resolution.
task: regression
data:
  files: [data/photons.root]
  tree: photons
  features: [E_raw, eta, phi, r9, sigma_ieie, rho, nVtx]
  spectators: [E_true]
  target: E_true / E_raw          # an expression; several targets as a list
  weight: ""                       # optional
split: {test_fraction: 0.5, seed: 3}
methods:
  bdt: {type: bdt}
  mlp: {type: mlp}
  knn: {type: knn}
  svm: {type: svm}
  dcb: {type: mlp, loss: double_crystal_ball}   # also loss: gaussian
"""

MULTICLASS_CONFIG = """\
# Three Gaussian classes in four variables, differing in means, widths and correlations, so the
# optimal boundaries are quadratic (Bayes accuracy 0.817; a linear classifier reaches ~0.77).
task: multiclass
data:
  classes:                      # ordered: classID 0, 1, 2
    signal: {files: [data/multiclass.root], tree: signal}
    ttbar:  {files: [data/multiclass.root], tree: ttbar, weight: weight}
    qcd:    {files: [data/multiclass.root], tree: qcd}
  features: [x1, x2, x3, x4]
split:
  train_size: {signal: 2000, ttbar: 2000, qcd: 2000}   # or  test_fraction: 0.5
  seed: 7
methods:
  bdt: {type: bdt}
  mlp: {type: mlp}
  knn: {type: knn}
  svm: {type: svm}
  linear: {type: linear}
evaluation:
  # expected events: the priors of <method>_<class>_prob (accuracy and AUCs use the trained
  # probabilities, i.e. equal priors)
  yields: {signal: 100, ttbar: 5000, qcd: 20000}
"""


def _digits_config() -> str:
    classes = "\n".join(f"    d{k}: {{files: [data/digits.csv], cut: \"label == {k}\"}}"
                         for k in range(10))
    return f"""\
# scikit-learn's handwritten digits (1797 8x8 images, UCI): ten classes from one CSV with a
# label column, selected by cuts; the 64 pixels are the features.
task: multiclass
data:
  classes:                      # ordered: classID 0 .. 9
{classes}
  features: [{", ".join(f"p{i}" for i in range(64))}]
split: {{test_fraction: 0.3, seed: 1}}
methods:
  bdt: {{type: bdt}}
  mlp: {{type: mlp}}
  knn: {{type: knn}}
  svm: {{type: svm}}
  linear: {{type: linear}}
"""


def _digits(data: Path, n: int | None, seed: int) -> str:
    """A real data set that ships with scikit-learn (``n`` and ``seed`` do not apply)."""
    import pandas as pd
    from sklearn.datasets import load_digits

    digits = load_digits()
    table = pd.DataFrame(digits.data, columns=[f"p{i}" for i in range(digits.data.shape[1])])
    table["label"] = digits.target
    table.to_csv(data / "digits.csv", index=False)
    return _digits_config()


def _classification(data: Path, n: int | None, seed: int) -> str:
    from mva.toys import classification_toy

    kw: dict[str, Any] = {"seed": seed}
    if n:
        kw.update(n_signal=n, n_background=n)
    sig, bkg = classification_toy(**kw)
    write_trees(data / "toy.root", {"TreeS": sig, "TreeB": bkg})
    return CLASSIFICATION_CONFIG


def _regression(data: Path, n: int | None, seed: int) -> str:
    from mva.toys import regression_toy

    toy = regression_toy(**({"n": n} if n else {}), seed=seed)
    write_trees(data / "regression.root", {"TreeR": {k: np.asarray(v) for k, v in toy.items()}})
    return REGRESSION_CONFIG


def _calorimeter(data: Path, n: int | None, seed: int) -> str:
    from mva.toys import calorimeter_toy

    toy = calorimeter_toy(**({"n": n} if n else {}), seed=seed)
    write_trees(data / "photons.root", {"photons": {k: np.asarray(v) for k, v in toy.items()}})
    return CALORIMETER_CONFIG


def _multiclass(data: Path, n: int | None, seed: int) -> str:
    from mva.toys import multiclass_toy

    toy = multiclass_toy(**({"n_per_class": n} if n else {}), seed=seed)
    write_trees(data / "multiclass.root", toy)
    return MULTICLASS_CONFIG


EXAMPLES = {"classification": _classification, "regression": _regression, "digits": _digits,
            "calorimeter": _calorimeter, "multiclass": _multiclass}


#: what marks a directory that ``mva example`` wrote (and ``--force`` may replace)
EXAMPLE_MARKER = "mva-example.json"
_EXAMPLE_ENTRIES = frozenset({"data", "config.yaml", EXAMPLE_MARKER})


def write_example(kind: str, output: str | Path, *, n: int | None = None, seed: int = 0,
                  force: bool = False) -> Path:
    """Write the toy data to ``output/data``, the config to ``output/config.yaml`` and what
    was written (``mva-example.json``). With ``force`` an example directory is replaced, only
    while it holds nothing but the example (a run trained inside it is never deleted)."""
    import json

    from mva import __version__

    if kind not in EXAMPLES:
        raise InputError(f"unknown example {kind!r} (known: {', '.join(EXAMPLES)})")
    out = Path(output)
    if force and out.is_dir() and (out / EXAMPLE_MARKER).is_file():
        extra = sorted(p.name for p in out.iterdir() if p.name not in _EXAMPLE_ENTRIES)
        if extra:
            raise InputError(f"{out / extra[0]}: in the example directory {out}; move it or "
                             "choose another --output (--force replaces only an example)")
    with atomic_directory(output, force, markers=(EXAMPLE_MARKER,), kind="example") as tmp:
        (tmp / "data").mkdir()
        config = EXAMPLES[kind](tmp / "data", n, seed)
        (tmp / "config.yaml").write_text(config)
        (tmp / EXAMPLE_MARKER).write_text(json.dumps(
            {"example": kind, "events": n, "seed": seed, "mva": __version__}, indent=1) + "\n")
    return out / "config.yaml"
