"""End to end: <method>_prob from `mva apply` is calibrated on an independent sample mixed with
the configured composition (issue target: ECE over 10 bins <= 0.02), and the Rarity of an
independent background sample is flat."""

from __future__ import annotations

import json

import numpy as np
import pytest
import uproot
from scipy import stats

from mva.application import apply
from mva.config import load_config
from mva.evaluation.probability import expected_calibration_error, reweight_to_fraction
from mva.examples import write_example
from mva.io.writers import write_trees
from mva.toys import classification_toy
from mva.training import train

METHODS = {"bdt": {"type": "bdt", "n_estimators": 150}, "fisher": {"type": "linear"}}


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("prob")
    config = write_example("classification", base / "toy", n=10000, seed=5)
    cfg = load_config(config, [f"methods={json.dumps(METHODS)}", "split={test_fraction: 0.5}",
                               "evaluation.plots=false"])
    train(cfg, base / "run")
    # an independent sample from the same generator, another seed
    sig, bkg = classification_toy(n_signal=40000, n_background=40000, seed=1234)
    write_trees(base / "independent.root", {"TreeS": sig, "TreeB": bkg})
    out = {}
    for tree in ("TreeS", "TreeB"):
        apply(base / "run", [str(base / "independent.root")], base / f"{tree}.root", tree=tree)
        out[tree] = uproot.open(base / f"{tree}.root")[tree].arrays(library="np")
    out["weights"] = (sig["weight"], bkg["weight"])
    # the densities (and the Rarity's background CDF) are fitted on every other test event
    test = uproot.open(base / "run" / "output.root")["TestTree"].arrays(library="np")
    half = (np.arange(len(test["weight"])) % 2 == 0) & (test["classID"] == 1)
    w_fit = test["weight"][half]
    out["n_fit_background"] = w_fit.sum() ** 2 / (w_fit**2).sum()
    out["f_s"] = cfg.evaluation.resolved_signal_fraction(0.5)
    return out


@pytest.mark.parametrize("method", list(METHODS))
def test_signal_probability_is_calibrated(scored: dict, method: str) -> None:
    prob = np.concatenate([scored["TreeS"][f"{method}_prob"], scored["TreeB"][f"{method}_prob"]])
    labels = np.r_[np.ones(len(scored["TreeS"][method])), np.zeros(len(scored["TreeB"][method]))]
    weights = reweight_to_fraction(labels, np.concatenate(scored["weights"]), scored["f_s"])
    assert scored["f_s"] == pytest.approx(1000 / 11000)  # the example's expected yields
    assert expected_calibration_error(prob, labels, weights, bins=10) <= 0.02
    # and it is informative: far from the constant f_s
    assert np.std(prob) > 0.1


@pytest.mark.parametrize("method", list(METHODS))
def test_rarity_of_independent_background_is_flat(scored: dict, method: str) -> None:
    rarity = scored["TreeB"][f"{method}_rarity"]
    w = scored["weights"][1]
    # the background is weighted: test flatness on a weight-proportional resample
    rng = np.random.default_rng(0)
    m = 20000
    sample = rng.choice(rarity, size=m, p=w / w.sum())
    # flat within the precision of the background CDF it was built from (n_fit events): the
    # two-sample KS bound at 99 % confidence, c(0.01) sqrt(1/n_fit + 1/m)
    n_fit = scored["n_fit_background"]
    distance = stats.kstest(sample, "uniform").statistic
    assert distance < 1.628 * np.sqrt(1 / n_fit + 1 / m)
    # signal is not flat: it piles up at high rarity
    assert np.median(scored["TreeS"][f"{method}_rarity"]) > 0.8
