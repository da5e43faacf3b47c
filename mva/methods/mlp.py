"""Multi-layer perceptron in torch: classification (logistic loss), multiclass (softmax and
cross-entropy) and regression (squared, absolute or Huber error, or a per-event likelihood:
Gaussian or double-sided crystal ball).

Weights are stored as numpy arrays (``.npz``) plus the architecture in JSON, never with pickle.
Regression targets are standardised internally and transformed back.
"""

from __future__ import annotations

import functools
import logging
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from mva.errors import InputError
from mva.methods.base import (
    Method,
    Params,
    State,
    as_2d,
    check_class_labels,
    fixed_blocks,
    n_threads,
    softmax,
)

__all__ = ["MLP"]

log = logging.getLogger(__name__)

_LOSS_ALIASES = {"squared_error": "mse", "absolute_error": "mae"}


class MLPParams(Params):
    #: widths of the hidden layers (at most 100 layers of 1 .. 100000 nodes)
    hidden_layers: list[Annotated[int, Field(ge=1, le=100_000)]] = Field(
        default_factory=lambda: [64, 64], max_length=100)
    #: ``elu`` by default: a smooth network for the smooth likelihood ratios and regression
    #: functions of physics (see ``benchmarks/bench_defaults.py``: on the ring and Friedman
    #: toys ReLU's piecewise-linear fit stays 1-2 % further from the limit)
    activation: Literal["relu", "sigmoid", "tanh", "leaky_relu", "elu"] = "elu"
    optimizer: Literal["adam", "sgd", "momentum"] = "adam"
    learning_rate: float = Field(3e-3, gt=0, allow_inf_nan=False)
    #: ``plateau``: the learning rate is multiplied by ``lr_factor`` when the validation loss
    #: (the training loss without validation events) has not improved for ``lr_patience``
    #: epochs, down to 1e-3 of its start; ``exponential``: multiplied by ``lr_decay`` after
    #: every epoch; ``constant``. None: ``exponential`` where ``lr_decay`` < 1 is given, else
    #: ``plateau``
    lr_schedule: Literal["plateau", "exponential", "constant"] | None = None
    lr_factor: float = Field(0.3, gt=0, lt=1, allow_inf_nan=False)
    lr_patience: int = Field(10, ge=1, le=100_000)
    #: the learning rate is multiplied by this after every epoch (``lr_schedule: exponential``)
    lr_decay: float = Field(1.0, gt=0, le=1, allow_inf_nan=False)
    momentum: float = Field(0.9, ge=0, lt=1, allow_inf_nan=False)
    l2: float = Field(0.0, ge=0, allow_inf_nan=False)
    #: group-lasso penalty ``input_lasso * sum_j ||W_j||`` on the first layer, W_j the weights
    #: leaving input j, added to the loss of every batch: an input that does not help the fit
    #: is driven to zero as a whole instead of adding noise to every hidden node. None: 3e-3
    #: for classification and multiclass, 0 for regression (see ``MLP.input_lasso``)
    input_lasso: float | None = Field(None, ge=0, allow_inf_nan=False)
    dropout: float = Field(0.0, ge=0, lt=1, allow_inf_nan=False)
    batch_size: int = Field(256, ge=1, le=10_000_000)
    #: the most epochs: with early stopping (the default) training ends when the validation
    #: loss has not improved for ``patience`` epochs, and the best epoch is kept
    epochs: int = Field(500, ge=1, le=100_000)
    early_stopping: bool = True
    patience: int = Field(30, ge=1, le=100_000)
    validation_fraction: float = Field(0.2, gt=0, lt=1, allow_inf_nan=False)
    #: networks averaged (their raw outputs, the logits): with early stopping the training
    #: events are split in ``ensemble`` parts and each network trains on all parts but one and
    #: stops on that one, so that every training event is trained on (no validation split of
    #: ``validation_fraction`` is left out); without, each trains on all events from its own
    #: seed. None: 5 for classification and multiclass below 20 000 training events with
    #: early stopping (see ``MLP.members``), else 1. Classification and multiclass only
    ensemble: int | None = Field(None, ge=1, le=100)
    loss: Literal["squared_error", "absolute_error", "huber", "mse", "mae", "gaussian",
                  "double_crystal_ball", "binary_crossentropy",
                  "categorical_crossentropy"] | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: CPU threads (default: 1 below 100k events, else all cores)
    n_jobs: int | None = Field(None, ge=1, le=4096)


def _batch_sums(w: Any, batch_size: int) -> np.ndarray:
    """The sum of the weights of each batch of ``batch_size`` consecutive events (the last one
    may be shorter), float64 on the host: one transfer per epoch."""
    import torch

    n = len(w)
    full = n // batch_size
    parts = [w[:full * batch_size].reshape(full, batch_size).sum(1)]
    if n % batch_size:
        parts.append(w[full * batch_size:].sum().reshape(1))
    return torch.cat(parts).double().cpu().numpy()


def _activation(name: str) -> Any:
    import torch.nn as nn

    return {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
            "leaky_relu": nn.LeakyReLU, "elu": nn.ELU}[name]()


def build_network(n_in: int, hidden: list[int], n_out: int, activation: str, dropout: float):
    import torch.nn as nn

    layers: list[Any] = []
    prev = n_in
    for width in hidden:
        layers += [nn.Linear(prev, width), _activation(activation)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        prev = width
    layers.append(nn.Linear(prev, n_out))
    return nn.Sequential(*layers)


def _average(nets: list[Any]) -> Any:
    """One module whose output is the mean of the networks' outputs (their logits)."""
    return _average_class()(nets)


@functools.cache
def _average_class() -> type:
    import torch
    import torch.nn as nn

    class Average(nn.Module):
        def __init__(self, members: list[Any]):
            super().__init__()
            self.members = nn.ModuleList(members)

        def forward(self, x: Any) -> Any:
            return torch.stack([m(x) for m in self.members]).mean(dim=0)

    return Average


class MLP(Method):
    libraries = ("torch",)
    clips_negative_weights = False  # negative weights enter the fit as they are
    Params = MLPParams
    supports_validation = True

    @classmethod
    def check_task(cls, task, params):
        loss = params.loss
        if task == "classification" and loss == "categorical_crossentropy":
            raise ValueError("loss 'categorical_crossentropy' is for multiclass; classification "
                             "uses binary_crossentropy")
        if task == "classification" and loss not in (None, "binary_crossentropy"):
            raise ValueError(f"loss {loss!r} is for regression; classification uses "
                             "binary_crossentropy")
        if task == "multiclass" and loss == "binary_crossentropy":
            raise ValueError("loss 'binary_crossentropy' is for binary classification; multiclass "
                             "uses categorical_crossentropy")
        if task == "multiclass" and loss not in (None, "categorical_crossentropy"):
            raise ValueError(f"loss {loss!r} is for regression; multiclass uses "
                             "categorical_crossentropy")
        if task == "regression" and (params.ensemble or 1) > 1:
            raise ValueError("ensemble is for classification and multiclass (the widths of a "
                             "regression's outputs do not average)")
        if task == "regression" and loss == "binary_crossentropy":
            raise ValueError("loss binary_crossentropy is for classification")
        if task == "regression" and loss == "categorical_crossentropy":
            raise ValueError("loss categorical_crossentropy is for multiclass")

    def wants_validation(self) -> float:
        return self.params.validation_fraction if self.params.early_stopping else 0.0

    @property
    def loss_name(self) -> str:
        if self.is_classification:
            return "binary_crossentropy"
        if self.is_multiclass:
            return "categorical_crossentropy"
        name = self.params.loss or "squared_error"
        return _LOSS_ALIASES.get(name, name)

    #: the default ensemble: this many networks below ``ENSEMBLE_EVENTS`` training events
    ENSEMBLE_MEMBERS = 5
    ENSEMBLE_EVENTS = 20_000

    def members(self, n_events: int) -> int:
        """The networks of the ensemble for ``n_events`` training events: as given, else
        ``ENSEMBLE_MEMBERS`` for classification and multiclass with early stopping below
        ``ENSEMBLE_EVENTS`` events, else 1.

        A single network stopped early on a fifth of a few thousand events varies from seed
        to seed by several 0.1 % of AUC (the ring toy of ``benchmarks/bench_defaults.py``:
        0.9935-0.9971 of the Bayes limit over seeds); the average of five, each stopped on
        its own fifth, varies less and trains on every event. Above 20 000 events a network
        varies less and costs more: one."""
        p = self.params
        if p.ensemble is not None:
            return p.ensemble
        if ((self.is_classification or self.is_multiclass) and p.early_stopping
                and n_events < self.ENSEMBLE_EVENTS):
            return self.ENSEMBLE_MEMBERS
        return 1

    #: the default ``input_lasso`` of classification and multiclass
    CLASSIFICATION_LASSO = 3e-3

    @property
    def input_lasso(self) -> float:
        """The group-lasso strength: as given, else ``CLASSIFICATION_LASSO`` for
        classification and multiclass and 0 for regression.

        Physics inputs often include variables that carry little or nothing; without the
        penalty every such input feeds noise into every hidden node, which a few thousand
        events cannot average away. ``benchmarks/bench_defaults.py`` (seed 1) gave the MLP on
        the eight Gaussian variables with three of noise 0.996 of the Bayes-limit AUC with the
        penalty and 0.992 without, on the ring beside two noise variables 0.9949 and 0.994, on
        the TMVA toys (whose four inputs all count) the same; ``bench_multiclass.py`` the
        digits (many empty border pixels) 0.963 and 0.957 accuracy. Regression is left without:
        on the squared error of a standardised target the same strength biases a precise
        fit (the low-noise parabola of the same script went from 1.03 to 1.08 of its noise
        floor at 1e-3 in an MLP-only run).
        """
        if self.params.input_lasso is not None:
            return self.params.input_lasso
        return self.CLASSIFICATION_LASSO if self.is_classification or self.is_multiclass else 0.0

    def _device(self) -> str:
        import torch

        if self.params.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.params.device

    def _loss_fn(self):
        import torch
        import torch.nn.functional as F

        if self.is_classification:
            def bce(raw, y, w):
                losses = F.binary_cross_entropy_with_logits(raw[:, 0], y, reduction="none")
                return (w * losses).sum() / w.sum()
            return bce
        if self.is_multiclass:
            def cce(raw, y, w):
                losses = F.cross_entropy(raw, y, reduction="none")
                return (w * losses).sum() / w.sum()
            return cce
        from mva.methods.losses import LOSSES

        spec, k = LOSSES[self.loss_name], self.n_per_target_

        def loss(raw, y, w):
            return torch.stack([
                spec.loss(raw[:, j * k:(j + 1) * k], y[:, j], w) for j in range(y.shape[1])
            ]).sum()
        return loss

    def fit(self, X, y, w, validation=None, monitor=None):
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(n_threads(self.params.n_jobs, len(X)))
        try:
            return self._fit(X, y, w, validation, monitor)
        finally:
            torch.set_num_threads(threads)

    def _fit(self, X, y, w, validation, monitor):
        import torch

        p = self.params
        self.device_ = self._device()
        if self.is_classification:
            self.y_mean_, self.y_scale_ = np.zeros(1), np.ones(1)
            self.n_per_target_, n_targets = 1, 1
        elif self.is_multiclass:
            # one logit per class; y_mean/y_scale are unused but keep the stored form uniform
            self.y_mean_, self.y_scale_ = np.zeros(1), np.ones(1)
            self.n_per_target_, n_targets = self.n_classes, 1
        else:
            from mva.methods.losses import LOSSES

            T = as_2d(y)
            n_targets = T.shape[1]
            wpos = np.clip(w, 0, None)
            self.y_mean_ = np.average(T, axis=0, weights=wpos)
            self.y_scale_ = np.sqrt(np.average((T - self.y_mean_) ** 2, axis=0, weights=wpos))
            self.y_scale_[self.y_scale_ == 0] = 1.0
            self.n_per_target_ = LOSSES[self.loss_name].n_outputs
        self.n_outputs_ = self.n_per_target_ * n_targets
        self.n_features_ = X.shape[1]
        if self.input_lasso and p.input_lasso is None:
            self.notes_.append(f"default input_lasso = {self.input_lasso:g}")
        n_all = len(X) + (0 if validation is None else len(validation[0]))
        # the default ensemble splits the validation events it is given (with early stopping)
        n_members = self.members(n_all) if validation is not None or p.ensemble else 1
        if n_members == 1:
            self.training_events_ = len(X)
            net, self.history_, stop = self._train_net(X, y, w, validation, monitor, self.seed,
                                                       "mlp: training")
            self.notes_ += [stop] if stop else []
            self.net_ = net.eval()
            self.fitted_ = True
            return self
        if validation is not None:
            # every event trains all networks but one, and stops that one
            X, y, w = (np.concatenate([a, b]) for a, b in zip((X, y, w), validation,
                                                               strict=True))
            from mva.split import random_parts

            # each class spread evenly over the parts (classification and multiclass only)
            groups = [(str(c), c) for c in np.unique(y)]
            part = random_parts(y, len(X), n_members, self.seed, groups, rotate=True)
        self.training_events_ = len(X)
        nets, stops = [], []
        for m in range(n_members):
            if validation is None:
                fit, val = (X, y, w), None
            else:
                mine = part == m
                fit = (X[~mine], y[~mine], w[~mine])
                val = (X[mine], y[mine], w[mine])
            net, history, stop = self._train_net(
                *fit, val, monitor if val is None else None, self.seed + m,
                f"mlp: network {m + 1}/{n_members}")
            nets.append(net.eval())
            stops.append(stop)
            if m == 0:
                self.history_ = history
        how = ("each trained on all parts but one and stopped early on that one"
               if validation is not None else "each from its own seed")
        default = "default " if p.ensemble is None else ""
        self.notes_.append(f"{default}ensemble of {n_members} networks for {len(X)} training "
                           f"events, {how}; the loss curves are the first network's")
        if any(stops):
            self.notes_.append("early stopping: " + "; ".join(
                f"network {m + 1} {st[len('early stopping '):]}" for m, st in enumerate(stops)
                if st))
        self.net_ = _average(nets).to(torch.device(self.device_)).eval()
        self.fitted_ = True
        return self

    def _tensors(self, Xa, ya, wa):
        import torch

        dev = self.device_
        if self.is_multiclass:
            # cross_entropy takes class indices as int64
            yt = torch.as_tensor(check_class_labels(ya, self.n_classes), device=dev)
        elif self.is_classification:
            yt = torch.as_tensor(ya.astype(np.float64), dtype=torch.float32, device=dev)
        else:
            yt = torch.as_tensor((as_2d(ya) - self.y_mean_) / self.y_scale_,
                                 dtype=torch.float32, device=dev)
        wa = wa / np.mean(np.abs(wa)) if np.any(wa) else wa
        return (torch.as_tensor(Xa, dtype=torch.float32, device=dev), yt,
                torch.as_tensor(wa, dtype=torch.float32, device=dev))

    def _train_net(self, X, y, w, validation, monitor, seed: int, label: str):
        """One network trained from ``seed``: (the network with the best epoch's weights,
        the loss history, the early-stopping note or None)."""
        import torch

        from mva.progress import Progress

        p = self.params
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        dev = self.device_
        net = build_network(X.shape[1], p.hidden_layers, self.n_outputs_, p.activation,
                            p.dropout).to(dev)
        Xt, yt, wt = self._tensors(X, y, w)
        extra = validation if validation is not None else monitor
        extra_name = "validation" if validation is not None else "test"
        ev = self._tensors(*extra) if extra is not None else None
        loss_fn = self._loss_fn()
        if p.optimizer == "adam":
            opt = torch.optim.Adam(net.parameters(), lr=p.learning_rate, weight_decay=p.l2)
        else:
            opt = torch.optim.SGD(net.parameters(), lr=p.learning_rate, weight_decay=p.l2,
                                  momentum=p.momentum if p.optimizer == "momentum" else 0.0)
        sched = self._scheduler(opt)
        lasso, first = self.input_lasso, net[0]
        history: dict[str, list[float]] = {"train": []}
        if ev is not None:
            history[extra_name] = []
        best, best_state, bad_epochs, stop = np.inf, None, 0, None
        n, bs = len(Xt), p.batch_size
        progress = Progress(p.epochs, label, "epochs")
        for epoch in range(p.epochs):
            net.train()
            perm = torch.randperm(n, generator=gen).to(dev)
            # the epoch's events in batch order, gathered once: each batch is then a view, and
            # nothing in the loop waits for the device (the batch weights are summed up front,
            # the losses collected as tensors)
            Xp, yp, wp = Xt[perm], yt[perm], wt[perm]
            sums = _batch_sums(wp, bs)
            kept = np.flatnonzero(sums > 0)          # a batch without weight teaches nothing
            losses = []
            for b in kept.tolist():
                s = b * bs
                opt.zero_grad()
                loss = loss_fn(net(Xp[s:s + bs]), yp[s:s + bs], wp[s:s + bs])
                loss.backward()
                if lasso:
                    # the penalty's gradient, lasso * W_j / ||W_j||, added directly (a third
                    # cheaper per batch than through autograd); the recorded loss is the data's
                    with torch.no_grad():
                        W = first.weight
                        W.grad.add_(W / W.norm(dim=0).clamp_min(1e-12), alpha=lasso)
                opt.step()
                losses.append(loss.detach())
            batch_losses = (torch.stack(losses).double().cpu().numpy() if losses
                            else np.zeros(0))
            history["train"].append(float((batch_losses * sums[kept]).sum())
                                    / max(float(sums[kept].sum()), 1e-12))
            if ev is not None:
                net.eval()
                with torch.no_grad():
                    vloss = float(self._batched_loss(net, loss_fn, *ev))
                history[extra_name].append(vloss)
                if validation is not None and p.early_stopping:
                    if vloss < best - 1e-7:
                        best, bad_epochs = vloss, 0
                        best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                    else:
                        bad_epochs += 1
                        if bad_epochs >= p.patience:
                            stop = (f"early stopping after epoch {epoch + 1}, best "
                                    f"epoch {epoch + 1 - bad_epochs}")
                            progress.update(1, **{k: v[-1] for k, v in history.items()})
                            break
            if sched is not None:
                monitored = history.get("validation", history["train"])
                sched.step(monitored[-1]) if self._plateau else sched.step()
            log.debug("mlp epoch %d: %s", epoch + 1, {k: v[-1] for k, v in history.items()})
            progress.update(1, **{k: v[-1] for k, v in history.items()})
        progress.close()
        if best_state is not None:
            net.load_state_dict(best_state)
        return net, history, stop

    @property
    def _plateau(self) -> bool:
        return self._schedule == "plateau"

    @property
    def _schedule(self) -> str:
        p = self.params
        if p.lr_schedule is not None:
            return p.lr_schedule
        return "exponential" if p.lr_decay < 1 else "plateau"

    def _scheduler(self, opt: Any) -> Any:
        """The learning-rate schedule (None: constant). By default the rate falls by
        ``lr_factor`` whenever the monitored loss stalls: a constant rate leaves the weights
        jittering at the scale of the minibatch noise, which on a smooth, precise target is
        far above the noise floor. Starting at 3e-3 with this schedule the MLP comes to
        1.065x the noise floor of the low-noise parabola of ``benchmarks/bench_defaults.py``
        (a constant 1e-3: 1.09x), and closer on the other toys there too."""
        import torch

        p = self.params
        if self._schedule == "plateau":
            return torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, factor=p.lr_factor, patience=p.lr_patience, min_lr=p.learning_rate * 1e-3)
        if self._schedule == "exponential":
            return torch.optim.lr_scheduler.ExponentialLR(opt, gamma=p.lr_decay)
        return None

    @staticmethod
    def _batched_loss(net, loss_fn, X, y, w, block: int = 65536):
        total, wsum = 0.0, 0.0
        for s in range(0, len(X), block):
            wb = w[s:s + block]
            total += float(loss_fn(net(X[s:s + block]), y[s:s + block], wb)) * float(wb.sum())
            wsum += float(wb.sum())
        return total / wsum if wsum else float("nan")

    #: events per forward pass at prediction; every pass has exactly this many rows
    PREDICT_BLOCK = 4096

    def predict_with_sigma(self, X):
        import torch

        self._check_fitted()
        dev = next(self.net_.parameters()).device
        block = self.PREDICT_BLOCK
        outs = []
        with torch.no_grad():
            for _, n, xb in fixed_blocks(X, block, np.float32):
                out = self.net_(torch.as_tensor(xb, device=dev))
                outs.append(out[:n].double().cpu())
        raw = torch.cat(outs) if outs else torch.empty((0, self.n_outputs_), dtype=torch.float64)
        if self.is_classification:
            from scipy.special import expit

            # scipy's expit, not torch.sigmoid: torch's vectorised kernel rounds the last
            # elements of an array differently, so scores would depend on the chunk size
            return expit(raw[:, 0].numpy()), None
        if self.is_multiclass:
            return softmax(raw.numpy()), None
        from mva.methods.losses import LOSSES

        spec, k = LOSSES[self.loss_name], self.n_per_target_
        preds, sigmas = [], []
        for j in range(len(self.y_mean_)):
            pred, sigma = spec.predict(raw[:, j * k:(j + 1) * k])
            preds.append(pred.numpy() * self.y_scale_[j] + self.y_mean_[j])
            sigmas.append(None if sigma is None else sigma.numpy() * self.y_scale_[j])
        pred = np.stack(preds, axis=1)
        sigma = None if sigmas[0] is None else np.stack(sigmas, axis=1)
        return pred, sigma

    def state(self) -> State:
        arrays = {f"param.{k}": v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}
        arrays.update(y_mean=self.y_mean_, y_scale=self.y_scale_)
        meta = {"n_features": self.n_features_, "n_outputs": self.n_outputs_,
                "n_per_target": self.n_per_target_, "trained_on": self.device_,
                "ensemble": self.n_networks}
        if self.is_multiclass:
            meta["n_classes"] = self.n_classes
        return meta, arrays, {}

    @property
    def n_networks(self) -> int:
        """The networks averaged (``param.members.<m>.`` in the stored arrays when more than
        one, else ``param.``)."""
        return len(self.net_.members) if hasattr(self.net_, "members") else 1

    def set_state(self, meta, arrays, blobs):
        import torch

        if self.is_multiclass and meta.get("n_classes") != self.n_classes:
            raise InputError(f"MLP model stored for {meta.get('n_classes')} classes, "
                             f"loaded for {self.n_classes}")
        self.n_features_, self.n_outputs_ = int(meta["n_features"]), int(meta["n_outputs"])
        self.n_per_target_ = int(meta["n_per_target"])
        self.device_ = meta.get("trained_on", "cpu")
        p = self.params
        nets = [build_network(self.n_features_, p.hidden_layers, self.n_outputs_, p.activation,
                              p.dropout) for _ in range(int(meta.get("ensemble", 1)))]
        net = nets[0] if len(nets) == 1 else _average(nets)
        net.load_state_dict({k[len("param."):]: torch.as_tensor(v) for k, v in arrays.items()
                             if k.startswith("param.")})
        self.net_ = net.to(self._device()).eval()
        self.y_mean_, self.y_scale_ = arrays["y_mean"], arrays["y_scale"]
