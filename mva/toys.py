"""Toy data sets with known truth for examples, tests and benchmarks (numpy only).

Every generator draws from ``np.random.default_rng(seed)``, so the same seed gives the same
events, and returns float64 arrays keyed by branch name.

* :func:`classification_toy`: TMVA-style four correlated Gaussian variables.
* :func:`regression_toy`: TMVA-style two uniform variables and a parabola plus Gaussian noise.
* :func:`calorimeter_toy`: photons for an energy regression, with the per-photon mean response
  and resolution of the generator stored for oracle comparisons.
* :func:`multiclass_toy`: three Gaussian classes in four variables with different covariances
  (quadratic Bayes boundaries); :func:`multiclass_bayes_accuracy` gives the best achievable
  accuracy from the true densities.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CALO_BARREL_ETA",
    "CALO_ENDCAP_ETA",
    "CALO_ETA_MAX",
    "CALO_RESOLUTION",
    "CRACK_RESOLUTION_FACTOR",
    "MULTICLASS_CLASSES",
    "MULTICLASS_COVARIANCES",
    "MULTICLASS_MEANS",
    "PILEUP_GEV_PER_RHO",
    "R9_TAIL_THRESHOLD",
    "REGRESSION_NOISE",
    "calorimeter_resolution",
    "calorimeter_toy",
    "classification_toy",
    "multiclass_bayes_accuracy",
    "multiclass_log_densities",
    "multiclass_toy",
    "regression_toy",
    "regression_truth",
]

# --------------------------------------------------------------------------------------------
# classification
# --------------------------------------------------------------------------------------------

# In the spirit of TMVA's createData.C.  var2 shifts against the others, so the correlation makes
# it useful only jointly; the classes differ in correlation, so the optimal boundary is quadratic
# (a linear classifier reaches AUC ~0.90, a BDT ~0.91).
_SIGNAL_MEAN = np.array([0.4, -0.2, 0.5, 0.8])
_BACKGROUND_MEAN = np.array([-0.3, 0.2, -0.4, -0.5])
_SIGNAL_CORR = 0.6
_BACKGROUND_CORR = 0.2
_VARIABLE_SIGMA = np.array([1.0, 1.0, 1.0, 1.0])


def _equicorrelated_cov(rho: float, sigma: np.ndarray) -> np.ndarray:
    corr = np.full((sigma.size, sigma.size), rho)
    np.fill_diagonal(corr, 1.0)
    return corr * np.outer(sigma, sigma)


def classification_toy(
    n_signal: int = 6000, n_background: int = 6000, seed: int = 0
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Signal and background with four correlated Gaussian variables ``var1..var4``.

    Signal and background differ in means and correlation; a linear classifier reaches an AUC of
    about 0.90, a non-linear one about 0.91.  Both carry a branch ``weight``: 1 for signal,
    uniform in (0.5, 1.5) for background.

    Returns
    -------
    signal, background
        Dicts of float64 arrays with keys ``var1..var4, weight``.
    """
    rng = np.random.default_rng(seed)
    sig = rng.multivariate_normal(
        _SIGNAL_MEAN, _equicorrelated_cov(_SIGNAL_CORR, _VARIABLE_SIGMA), size=n_signal
    )
    bkg = rng.multivariate_normal(
        _BACKGROUND_MEAN, _equicorrelated_cov(_BACKGROUND_CORR, _VARIABLE_SIGMA), size=n_background
    )
    signal = {f"var{i + 1}": sig[:, i].copy() for i in range(4)}
    background = {f"var{i + 1}": bkg[:, i].copy() for i in range(4)}
    signal["weight"] = np.ones(n_signal)
    background["weight"] = rng.uniform(0.5, 1.5, size=n_background)
    return signal, background


# --------------------------------------------------------------------------------------------
# regression
# --------------------------------------------------------------------------------------------

#: Standard deviation of the Gaussian noise on ``fvalue`` in :func:`regression_toy`.
REGRESSION_NOISE = 0.5


def regression_truth(var1: np.ndarray, var2: np.ndarray) -> np.ndarray:
    """Noise-free target of :func:`regression_toy`.

    ``2 + 0.5 (var1^2 + var2^2) - 0.3 var1 var2``.
    """
    return 2.0 + 0.5 * (var1**2 + var2**2) - 0.3 * var1 * var2


def regression_toy(n: int = 20000, seed: int = 0) -> dict[str, np.ndarray]:
    """TMVA-style regression toy: ``var1, var2`` uniform in (0, 5), target ``fvalue``.

    ``fvalue = regression_truth(var1, var2) + N(0, REGRESSION_NOISE)``, so the best achievable
    RMS of the residuals is :data:`REGRESSION_NOISE`.
    """
    rng = np.random.default_rng(seed)
    var1 = rng.uniform(0.0, 5.0, size=n)
    var2 = rng.uniform(0.0, 5.0, size=n)
    fvalue = regression_truth(var1, var2) + rng.normal(0.0, REGRESSION_NOISE, size=n)
    return {"var1": var1, "var2": var2, "fvalue": fvalue}


# --------------------------------------------------------------------------------------------
# calorimeter photons
# --------------------------------------------------------------------------------------------

#: |eta| below which a photon is in the barrel; between this and CALO_ENDCAP_ETA is the crack.
CALO_BARREL_ETA = 1.4442
#: |eta| above which a photon is in the endcap.
CALO_ENDCAP_ETA = 1.566
#: Acceptance |eta| < CALO_ETA_MAX.
CALO_ETA_MAX = 2.5

#: Relative resolution terms (a [GeV^1/2], b [GeV], c) of sigma_E/E = a/sqrt(E) (+) b/E (+) c.
CALO_RESOLUTION: dict[str, tuple[float, float, float]] = {
    "barrel": (0.08, 0.30, 0.007),
    "endcap": (0.12, 0.50, 0.015),
}
#: In the crack the endcap resolution is multiplied by this factor.
CRACK_RESOLUTION_FACTOR = 2.0

#: Pileup energy added per unit of rho [GeV]: the mean response grows by this * rho / E_true.
PILEUP_GEV_PER_RHO = 0.05

#: Photons with r9 above this have no low-side tail; below it the tail probability rises linearly.
R9_TAIL_THRESHOLD = 0.94
_R9_MIN = 0.3
_TAIL_PROB_MAX = 0.8  # tail probability reached at r9 = _R9_MIN
_TAIL_SCALE = 0.08  # mean of the exponential log-loss in the tail

_E_MIN, _E_MAX = 20.0, 300.0
_SPECTRUM_INDEX = 1.5  # dN/dE ~ E^-index


def _falling_spectrum(rng: np.random.Generator, n: int) -> np.ndarray:
    """Inverse-CDF sample of dN/dE ~ E^-k on (_E_MIN, _E_MAX)."""
    p = 1.0 - _SPECTRUM_INDEX
    lo, hi = _E_MIN**p, _E_MAX**p
    return (lo + rng.uniform(size=n) * (hi - lo)) ** (1.0 / p)


def calorimeter_resolution(e_true: np.ndarray, abs_eta: np.ndarray) -> np.ndarray:
    """Relative Gaussian resolution sigma_E/E of the toy calorimeter.

    ``a/sqrt(E) (+) b/E (+) c`` (added in quadrature) with the barrel or endcap terms of
    :data:`CALO_RESOLUTION`; the crack uses the endcap terms times
    :data:`CRACK_RESOLUTION_FACTOR`.
    """
    barrel = abs_eta < CALO_BARREL_ETA
    crack = ~barrel & (abs_eta < CALO_ENDCAP_ETA)
    terms = np.where(
        barrel[:, None], np.array(CALO_RESOLUTION["barrel"]), np.array(CALO_RESOLUTION["endcap"])
    )
    a, b, c = terms.T
    res = np.sqrt((a / np.sqrt(e_true)) ** 2 + (b / e_true) ** 2 + c**2)
    return np.where(crack, CRACK_RESOLUTION_FACTOR * res, res)


def _eta_response(abs_eta: np.ndarray) -> np.ndarray:
    """Mean containment of the core versus |eta|: falls across the barrel, dips in the crack."""
    barrel = 0.98 - 0.02 * (abs_eta / CALO_BARREL_ETA) ** 2
    endcap = 0.95 + 0.01 * (abs_eta - CALO_ENDCAP_ETA)
    crack = np.full_like(abs_eta, 0.90)
    return np.select(
        [abs_eta < CALO_BARREL_ETA, abs_eta < CALO_ENDCAP_ETA], [barrel, crack], default=endcap
    )


def _tail_probability(r9: np.ndarray) -> np.ndarray:
    frac = (R9_TAIL_THRESHOLD - r9) / (R9_TAIL_THRESHOLD - _R9_MIN)
    return _TAIL_PROB_MAX * np.clip(frac, 0.0, 1.0)


def _draw_r9(rng: np.random.Generator, abs_eta: np.ndarray) -> np.ndarray:
    """r9 in (0.3, 1): unconverted photons near 0.95, converted ones spread low.

    More tracker material at large |eta| means more conversions.
    """
    n = abs_eta.size
    converted = rng.uniform(size=n) < 0.2 + 0.15 * abs_eta / CALO_ETA_MAX
    shape = np.where(converted, rng.beta(2.5, 2.5, size=n), rng.beta(18.0, 1.5, size=n))
    return _R9_MIN + (1.0 - _R9_MIN) * shape


def calorimeter_toy(n: int = 50000, seed: int = 0) -> dict[str, np.ndarray]:
    """Photons for an energy regression of ``E_true / E_raw`` from shower variables.

    Generator (all float64):

    * ``E_true``: dN/dE ~ E^-1.5 on (20, 300) GeV; ``eta`` uniform in (-2.5, 2.5) with the
      barrel/endcap crack at 1.4442 < |eta| < 1.566; ``phi`` uniform in (-pi, pi).
    * ``nVtx``: 1 + Poisson(24); ``rho`` = 0.6 nVtx + N(0, 2), clipped at 0.
    * ``r9`` in (0.3, 1) (low for converted photons, more frequent at large |eta|);
      ``sigma_ieie`` ~ 0.0095 in the barrel and 0.027 in the endcap, wider for low r9.
    * Core response ``m = eta_response(|eta|) + PILEUP_GEV_PER_RHO * rho / E_true`` smeared by
      the relative Gaussian resolution :func:`calorimeter_resolution`:
      ``m (1 + resolution * N(0, 1))``.
    * Low-side tail: with probability rising linearly from 0 at r9 = ``R9_TAIL_THRESHOLD`` to
      0.8 at r9 = 0.3, the response is multiplied by ``exp(-Y)``, Y ~ Exponential(mean 0.08).
    * ``E_raw = E_true * response``.

    Returns
    -------
    dict
        Branches ``E_raw, E_true, eta, phi, r9, sigma_ieie, rho, nVtx`` and the oracle columns
        ``true_response_mean`` (the exact per-photon mean of ``E_raw / E_true``, tail included)
        and ``true_resolution`` (the per-photon relative resolution of the Gaussian core).
    """
    rng = np.random.default_rng(seed)
    e_true = _falling_spectrum(rng, n)
    eta = rng.uniform(-CALO_ETA_MAX, CALO_ETA_MAX, size=n)
    abs_eta = np.abs(eta)
    phi = rng.uniform(-np.pi, np.pi, size=n)
    n_vtx = 1.0 + rng.poisson(24.0, size=n).astype(np.float64)
    rho = np.clip(0.6 * n_vtx + rng.normal(0.0, 2.0, size=n), 0.0, None)
    r9 = _draw_r9(rng, abs_eta)
    sigma_ieie_base = np.where(abs_eta < CALO_BARREL_ETA, 0.0095, 0.027)
    sigma_ieie = sigma_ieie_base * (1.0 + 0.4 * (1.0 - r9)) * rng.lognormal(0.0, 0.08, size=n)

    core_mean = _eta_response(abs_eta) + PILEUP_GEV_PER_RHO * rho / e_true
    resolution = calorimeter_resolution(e_true, abs_eta)
    response = core_mean * (1.0 + resolution * rng.standard_normal(n))

    p_tail = _tail_probability(r9)
    in_tail = rng.uniform(size=n) < p_tail
    response = np.where(in_tail, response * np.exp(-rng.exponential(_TAIL_SCALE, size=n)), response)
    # E[exp(-Y)] = 1 / (1 + scale) for Y ~ Exponential(mean scale)
    mean_tail_factor = 1.0 - p_tail * _TAIL_SCALE / (1.0 + _TAIL_SCALE)

    return {
        "E_raw": e_true * response,
        "E_true": e_true,
        "eta": eta,
        "phi": phi,
        "r9": r9,
        "sigma_ieie": sigma_ieie,
        "rho": rho,
        "nVtx": n_vtx,
        "true_response_mean": core_mean * mean_tail_factor,
        "true_resolution": resolution,
    }


# --------------------------------------------------------------------------------------------
# multiclass
# --------------------------------------------------------------------------------------------

#: Class names of :func:`multiclass_toy`, in classID order.
MULTICLASS_CLASSES: tuple[str, ...] = ("signal", "ttbar", "qcd")

# The means sit on the corners of an equilateral triangle of radius _MC_RADIUS in (x1, x2); x3
# and x4 carry no mean difference, only different widths and correlations.  The classes differ
# in width (0.9, 1.0, 1.1) and equicorrelation (0, +0.5, -0.2), so the Bayes boundaries are
# quadratic: with equal priors the Bayes accuracy is 0.8173 (4-d numerical integration of
# max_k p_k / 3), a linear discriminant (LDA) reaches about 0.772 (4.5 % less) and QDA, being the
# true model, the Bayes accuracy.
_MC_RADIUS = 1.2
_MC_SIGMA = {"signal": 0.9, "ttbar": 1.0, "qcd": 1.1}
_MC_CORR = {"signal": 0.0, "ttbar": 0.5, "qcd": -0.2}


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


#: True mean vector (x1..x4) of each class of :func:`multiclass_toy`.
MULTICLASS_MEANS: dict[str, np.ndarray] = {
    name: _readonly(np.array([_MC_RADIUS * np.cos(phi), _MC_RADIUS * np.sin(phi), 0.0, 0.0]))
    for name, phi in zip(MULTICLASS_CLASSES, 2.0 * np.pi * np.arange(3) / 3, strict=True)
}
#: True 4x4 covariance matrix of each class: width sigma on every variable, equicorrelation rho.
MULTICLASS_COVARIANCES: dict[str, np.ndarray] = {
    name: _readonly(_equicorrelated_cov(_MC_CORR[name], np.full(4, _MC_SIGMA[name])))
    for name in MULTICLASS_CLASSES
}
#: The ttbar class carries weights uniform in this range (independent of x1..x4); others have 1.
_MC_TTBAR_WEIGHT = (0.5, 1.5)


def multiclass_toy(n_per_class: int = 4000, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Three Gaussian classes ``signal, ttbar, qcd`` in four variables ``x1..x4``.

    Each class is a multivariate normal with :data:`MULTICLASS_MEANS` and
    :data:`MULTICLASS_COVARIANCES`: the means differ in (x1, x2), the widths and correlations in
    all four variables, so the optimal (Bayes) boundaries are quadratic.  With equal priors the
    Bayes accuracy is 0.817 (:func:`multiclass_bayes_accuracy`); a linear classifier reaches
    about 0.77.  ``weight`` is 1 for signal and qcd and uniform in (0.5, 1.5) for ttbar,
    independent of the variables (so it changes no optimal decision).

    Returns
    -------
    dict
        Class name (in classID order) -> dict of float64 arrays ``x1..x4, weight`` of length
        ``n_per_class``.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, np.ndarray]] = {}
    for name in MULTICLASS_CLASSES:
        x = rng.multivariate_normal(MULTICLASS_MEANS[name], MULTICLASS_COVARIANCES[name],
                                    size=n_per_class)
        branches = {f"x{i + 1}": x[:, i].copy() for i in range(4)}
        if name == "ttbar":
            branches["weight"] = rng.uniform(*_MC_TTBAR_WEIGHT, size=n_per_class)
        else:
            branches["weight"] = np.ones(n_per_class)
        out[name] = branches
    return out


def multiclass_log_densities(x: np.ndarray) -> np.ndarray:
    """``(n, 3)`` log of the true density of each class (classID order) at the rows of ``x``."""
    from scipy.stats import multivariate_normal

    return np.column_stack([
        multivariate_normal(MULTICLASS_MEANS[c], MULTICLASS_COVARIANCES[c]).logpdf(x)
        for c in MULTICLASS_CLASSES
    ])


def multiclass_bayes_accuracy(n: int = 200000, seed: int = 12345) -> tuple[float, float]:
    """Bayes (best achievable) accuracy of :func:`multiclass_toy` for equal class priors.

    Draws ``n`` fresh events per class (independent of any toy sample unless the seeds
    coincide), classifies each by the largest true density (the argmax of the posterior for equal
    priors) and counts the correct ones.

    Returns
    -------
    accuracy, error
        The fraction correctly classified and its binomial standard error
        ``sqrt(a (1 - a) / (3 n))``.
    """
    toy = multiclass_toy(n_per_class=n, seed=seed)
    correct = 0
    for k, name in enumerate(MULTICLASS_CLASSES):
        x = np.column_stack([toy[name][f"x{i + 1}"] for i in range(4)])
        correct += int(np.count_nonzero(multiclass_log_densities(x).argmax(axis=1) == k))
    total = len(MULTICLASS_CLASSES) * n
    acc = correct / total
    return acc, float(np.sqrt(acc * (1.0 - acc) / total))
