"""mva: multivariate analysis for high-energy physics.

Map of the package
------------------
config          typed YAML config (``load_config``), validated once, errors name the key path
io.readers      ROOT (uproot), CSV, Parquet -> column chunks; ``io.expressions`` safe expressions
io.events       the in-memory event table (``Events``) built from a config
io.writers      atomic writers: ROOT TTrees (mktree/extend), CSV, Parquet, run directories
preprocessing   standardize, minmax, decorrelate, pca, uniform, gauss (JSON-storable)
tasks           binary, multiclass, regression: one module each; what differs between tasks
methods         knn, bdt (xgboost), svm (scikit-learn), mlp (torch), linear: one module each
methods.adaptive  the defaults chosen for the training sample (kNN k, SVR epsilon, BDT depth)
tuning          ``tune``: optuna search over a documented default space, cross-validated
evaluation      ROC/KS/separation/significance, multiclass and regression metrics, P(S|y), plots,
                the overtraining warning (``evaluation.overtraining``)
naming          output branch and plot file names, the plot index the report reads
training        ``train(config, output)``; application: ``apply(run_dir, inputs, output)``
store           models on disk without pickle, manifest with SHA-256 checksums
backends        where work runs: this process, or Dask (``open_backend(scheduler=, cluster=)``)
progress        progress bars on a terminal, a plain line now and then in batch logs
report          the self-contained HTML report of one or several runs
export          ``export_run(run_dir, output)``: ONNX and xgboost JSON for CMSSW, Athena, ROOT
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["load_config", "train", "apply", "__version__"]


def __getattr__(name: str):  # lazy: keep ``import mva`` and ``mva --help`` light
    if name == "load_config":
        from mva.config import load_config

        return load_config
    if name == "train":
        from mva.training import train

        return train
    if name == "apply":
        from mva.application import apply

        return apply
    raise AttributeError(name)
