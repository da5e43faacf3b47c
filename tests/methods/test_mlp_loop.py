"""MLP training loop: the same model, bit for bit, as a plain torch loop that gathers every
batch from the shuffled indices (the loop before the epoch-wise gather), with zero-weight
batches skipped and the epoch loss weighted by the batch weights; a GPU where there is one."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import two_gaussians

from mva.methods.mlp import MLP, build_network


def plain_loop(X, y, w, seed: int, hidden: list[int], lr: float, batch: int, epochs: int,
               lasso: float = 0.0):
    """What a torch user writes: per batch a gather of the shuffled indices, Adam, the weighted
    logistic loss (plus ``lasso`` times the sum over inputs of the norm of the first layer's
    weights from each input). Returns the network and the weighted mean training loss (without
    the penalty) of every epoch."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = build_network(X.shape[1], hidden, 1, "relu", 0.0)
    Xt = torch.as_tensor(X, dtype=torch.float32)
    yt = torch.as_tensor(y.astype(np.float64), dtype=torch.float32)
    wt = torch.as_tensor(w / np.mean(np.abs(w)), dtype=torch.float32)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    history = []
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=gen)
        total, wsum = 0.0, 0.0
        for s in range(0, len(X), batch):
            idx = perm[s:s + batch]
            wb = wt[idx]
            if float(wb.sum()) <= 0:
                continue
            opt.zero_grad()
            losses = F.binary_cross_entropy_with_logits(net(Xt[idx])[:, 0], yt[idx],
                                                        reduction="none")
            loss = (wb * losses).sum() / wb.sum()
            # the penalty through autograd (mva adds its gradient by hand)
            (loss + lasso * net[0].weight.norm(dim=0).sum() if lasso else loss).backward()
            opt.step()
            total += float(loss.detach()) * float(wb.sum())
            wsum += float(wb.sum())
        history.append(total / wsum)
    return net, history


@pytest.mark.parametrize("lasso", [0.0, 0.02])
def test_training_equals_a_plain_torch_loop(lasso: float) -> None:
    import torch

    X, y = two_gaussians(300, seed=1, d=3)
    w = np.random.default_rng(2).uniform(0.5, 1.5, len(X))
    # two thirds of the events have no weight: batches of 5 without any are skipped
    w[np.random.default_rng(3).permutation(len(X))[:400]] = 0.0
    params = {"hidden_layers": [8, 8], "epochs": 4, "batch_size": 5, "learning_rate": 0.01,
              "early_stopping": False, "device": "cpu", "n_jobs": 1, "activation": "relu",
              "lr_schedule": "constant", "input_lasso": lasso}
    m = MLP(params, "classification", seed=4).fit(X, y, w)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        net, history = plain_loop(X, y, w, 4, [8, 8], 0.01, 5, 4, lasso)
    finally:
        torch.set_num_threads(threads)
    for (name, a), b in zip(m.net_.state_dict().items(), net.state_dict().values()):
        if lasso:  # the same gradient, summed in another order: equal to rounding
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        else:
            assert torch.equal(a, b), name
    np.testing.assert_allclose(m.history_["train"], history, rtol=1e-5 if lasso else 1e-6)


def test_input_lasso_switches_off_the_inputs_without_information() -> None:
    """Two informative inputs and four of pure noise: the group lasso (the classification
    default) leaves the noise inputs' first-layer weights a small fraction of what they are
    without it and of the informative inputs' weights; regression has no default lasso."""
    rng = np.random.default_rng(6)
    n = 3000
    y = (rng.random(n) < 0.5).astype(np.int8)
    X = np.column_stack([rng.normal(y * 1.0, 1.0), rng.normal(-y * 0.8, 1.0),
                         rng.normal(size=(n, 4))])
    w = np.ones(n)

    def column_norms(params: dict) -> np.ndarray:
        m = MLP({"hidden_layers": [16], "epochs": 60, "early_stopping": False, "n_jobs": 1,
                 "device": "cpu", **params}, "classification", seed=1).fit(X, y, w)
        return m.net_[0].weight.detach().norm(dim=0).numpy()

    with_lasso, without = column_norms({}), column_norms({"input_lasso": 0.0})
    assert with_lasso[2:].sum() < 0.15 * without[2:].sum()
    assert with_lasso[2:].max() < 0.3 * with_lasso[:2].min()
    assert MLP({}, "classification").input_lasso == MLP.CLASSIFICATION_LASSO > 0
    assert MLP({}, "multiclass", n_classes=3).input_lasso == MLP.CLASSIFICATION_LASSO
    assert MLP({}, "regression").input_lasso == 0.0
    assert MLP({"input_lasso": 0.1}, "regression").input_lasso == 0.1


@pytest.mark.gpu
def test_auto_device_trains_on_the_gpu() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    X, y = two_gaussians(500, seed=5, d=3)
    m = MLP({"epochs": 3, "hidden_layers": [8]}, "classification").fit(X, y, np.ones(len(X)))
    assert m.device_ == "cuda" and m.state()[0]["trained_on"] == "cuda"
    cpu = MLP({"epochs": 3, "hidden_layers": [8], "device": "cpu"}, "classification").fit(
        X, y, np.ones(len(X)))
    assert np.corrcoef(m.predict(X), cpu.predict(X))[0, 1] > 0.95
