"""One training loop for the document's three gradient-descent variants.

Batch, stochastic and mini-batch gradient descent differ only in how many examples feed
each update: all m (one update per epoch), 1 (m updates, in a fresh random order each
epoch) or B (ceil(m / B) updates). So they are one loop with a batch size. The table lives
on the device as tensors and each epoch takes one shuffled copy, sliced into views, so no
per-example Python code runs.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from ..budget import check_memory
from ..config import TrainConfig
from ..data.normalize import Normalizer
from ..data.splitting import Splits
from ..errors import ConfigError
from ..models.mlp import build_mlp
from ..models.model import GradwiseModel
from ..optim import build_optimizer, make_schedule
from .denormals import flushed_denormals
from .flat import ELEMENTWISE_OPTIMIZERS, FlatParameters
from .callbacks import EpochRecord, StopTraining, TrainState, dispatch, step_ended
from .metrics import RunningMetrics, evaluate, loss_function, row_loss_function, target_variance, weighted_mean
from .progress import EpochProgress
from .result import FitResult


def fit(config: TrainConfig, splits: Splits, callbacks: Iterable[Any] = (), progress: bool = False, model: GradwiseModel | None = None) -> FitResult:
    """Build a model for ``splits`` as ``config`` says, train it, and return the result.

    The input normalizer (and, for regression, the target normalizer) is fitted on the
    training split only. Training stops after ``config.epochs`` epochs, when validation loss
    has not improved for ``config.patience`` epochs (the best weights are restored), when the
    loss becomes NaN or inf, or when a callback raises :class:`StopTraining`.

    Given ``model`` (a result's model, on the CPU), training continues from its weights
    with its normalizers kept as they were fitted, so more epochs on new rows see the same
    scaling; the optimizer starts afresh.

    >>> from gradwise import TrainConfig, load_table, split_table, fit
    >>> splits = split_table(load_table("builtin:iris"), seed=0)
    >>> result = fit(TrainConfig(epochs=5, hidden=8), splits)
    >>> len(result.history)
    5
    """
    started = time.perf_counter()
    callbacks = list(callbacks)
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    if model is None:  # refuse, before building it, a network that cannot fit in memory
        check_memory(config, splits.n_features, splits.n_outputs, len(splits.train), device=device)
    model = build_model(config, splits) if model is None else model
    data = _tensors(model, splits, device)
    net = model.net.to(device)
    flat = FlatParameters(net)
    optimizer = build_optimizer(config, flat.flatten() if config.optimizer in ELEMENTWISE_OPTIMIZERS else flat.params)
    state = TrainState(net, optimizer, config, splits.task)
    trainer = _Trainer(config, state, data, callbacks, device, flat)
    try:
        with flushed_denormals():
            stop_reason = trainer.run(progress)
    finally:
        flat.restore()
    metrics = {name: _metrics(net, data, name, splits.task) for name in ("train", "val", "test")}
    model.to("cpu")
    return FitResult(model, config, state.history, metrics, stop_reason, state.step, trainer.best_epoch, time.perf_counter() - started, splits.task)


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when it is there; asking for CUDA without it is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto")
    return torch.device(name)


def build_model(config: TrainConfig, splits: Splits) -> GradwiseModel:
    """The network plus normalizers fitted on the training split."""
    if len(splits.train) == 0:
        raise ConfigError("the training split is empty; give more rows or a larger train fraction in --split")
    net = build_mlp(splits.n_features, splits.n_outputs, config.layers, config.hidden, config.activation, config.init, config.batch_norm, config.dropout)
    input_norm = Normalizer(config.normalize).fit(splits.train.X, splits.train.w)
    target_norm = None
    if splits.task == "regression":
        target_norm = Normalizer(config.normalize).fit(splits.train.y, splits.train.w)
    return GradwiseModel(net, input_norm, target_norm, splits.encoder, splits.target)


def _tensors(model: GradwiseModel, splits: Splits, device: torch.device) -> dict[str, Any]:
    """Normalize each split once; training then works on the network alone.

    ``out["weights"][name]`` holds a split's row weights on the device, None when it has none."""
    out: dict[str, Any] = {"weights": {}}
    for name in ("train", "val", "test"):
        part = getattr(splits, name)
        X, y = normalized_split(model, part, splits.task)
        out[name] = (X.to(device), y.to(device))
        out["weights"][name] = None if part.w is None else torch.as_tensor(part.w, dtype=torch.float32).to(device)
    out["target_scale"] = model.target_normalizer.scale_ if model.target_normalizer is not None else None
    return out


def normalized_split(model: GradwiseModel, part: Any, task: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One split's inputs (and regression targets) normalized as the network sees them.

    The inputs go to the normalizer as float32 NumPy, which reads them in place: one copy
    of X (the normalized one) instead of two, which on a 300,000-row table is its size again."""
    X = torch.from_numpy(model.input_normalizer(np.asarray(part.X, dtype=np.float32)))
    y = torch.tensor(part.y)
    if task == "regression":
        y = model.target_normalizer(y.to(torch.float32))
    return X, y


def split_metrics(model: GradwiseModel, splits: Splits) -> dict[str, dict[str, float]]:
    """Loss and metrics of a trained model on each split (on the CPU), as ``fit`` reports them."""
    data = _tensors(model, splits, torch.device("cpu"))
    return {name: _metrics(model.net, data, name, splits.task) for name in ("train", "val", "test")}


def _metrics(net: nn.Module, data, name: str, task: str) -> dict[str, float]:
    X, y = data[name]
    if len(X) == 0:
        return {}
    loss, metrics = evaluate(net, X, y, task, data["target_scale"], weights=data["weights"][name])
    return {"loss": loss, **metrics}


def weightless_batches(weights: torch.Tensor, batch_size: int) -> list[bool]:
    """For each batch of ``batch_size`` rows, whether all its weights are 0 (one host sync
    per epoch, and only in weighted runs)."""
    padding = (-len(weights)) % batch_size
    sums = torch.nn.functional.pad(weights, (0, padding)).view(-1, batch_size).sum(dim=1)
    return (sums <= 0).tolist()


class _Trainer:
    """The epoch loop with early stopping; small methods so each rule is visible."""

    def __init__(self, config: TrainConfig, state: TrainState, data, callbacks: list, device: torch.device, flat: FlatParameters) -> None:
        self.config, self.state, self.data, self.callbacks, self.flat = config, state, data, callbacks, flat
        self.loss_fn = loss_function(state.task)
        self.row_loss_fn = row_loss_function(state.task)  # for weighted rows only
        self.schedule = make_schedule(config.lr_decay, config.lr, config.epochs)
        self.generator = torch.Generator(device=device).manual_seed(config.seed)
        self.batch_size = config.resolved_batch_size(len(data["train"][0]))
        if config.batch_norm and self.batch_size == 1:
            raise ConfigError("--batch-norm needs batches of at least 2 examples; use --batch-size 2 or more, or drop --batch-norm")
        self.best_loss, self.best_epoch, self.best_weights = math.inf, None, None
        self.target_var = self._train_target_var()

    def run(self, progress: bool) -> str:
        dispatch(self.callbacks, "on_train_start", self.state)
        reason = None
        with EpochProgress(self.config.epochs, enabled=progress) as bar:
            try:
                for epoch in range(self.config.epochs):
                    self.state.epoch = epoch
                    record = self._epoch(epoch)
                    self.state.history.append(record)
                    bar.advance(record)
                    dispatch(self.callbacks, "on_epoch_end", self.state, record)
                    reason = self._stop_reason(record)
                    if reason:
                        break
            except StopTraining as stop:
                reason = str(stop) or "stopped by a callback"
        reason = reason or f"completed {self.config.epochs} epochs"
        self._restore_best()
        dispatch(self.callbacks, "on_train_end", self.state)
        return reason

    def _epoch(self, epoch: int) -> EpochRecord:
        started = time.perf_counter()
        lr = self.schedule(epoch)
        for group in self.state.optimizer.param_groups:
            group["lr"] = lr
        train_loss, train_metrics = self._train_one_epoch()
        X_val, y_val = self.data["val"]
        val_loss, val_metrics = evaluate(self.state.model, X_val, y_val, self.state.task, self.data["target_scale"], weights=self.data["weights"]["val"])
        return EpochRecord(epoch + 1, train_loss, None if len(X_val) == 0 else val_loss, train_metrics, val_metrics, lr, self.state.step, time.perf_counter() - started)

    def _train_one_epoch(self) -> tuple[float, dict[str, float]]:
        net, optimizer, state = self.state.model, self.state.optimizer, self.state
        net.train()
        X, y = self.data["train"]
        w = self.data["weights"]["train"]
        m, B = len(X), self.batch_size
        if B < m:  # stochastic and mini-batch: a fresh random order every epoch
            order = torch.randperm(m, generator=self.generator, device=X.device)
            X, y = X[order], y[order]
            w = None if w is None else w[order]
        weightless = None if w is None else weightless_batches(w, B)
        running = RunningMetrics(state.task, self.data["target_scale"], self.target_var)
        for start in range(0, m, B):
            xb, yb = X[start : start + B], y[start : start + B]
            if len(xb) == 1 and self.config.batch_norm:
                continue  # batch norm cannot normalize a single example; skip the remainder
            if weightless is not None and weightless[start // B]:
                continue  # only weight-0 rows: as if they were not there, no update at all
            self.flat.zero_grad(optimizer)
            out = net(xb)
            if w is None:
                loss = self.loss_fn(out, yb)
            else:
                wb = w[start : start + B]
                loss = weighted_mean(self.row_loss_fn(out, yb), wb)
            loss.backward()
            dispatch(self.callbacks, "on_after_backward", state, loss)
            if self.config.clip_grad is not None:
                nn.utils.clip_grad_norm_(net.parameters(), self.config.clip_grad)
            optimizer.step()
            state.step += 1
            running.update(out, yb, loss, None if w is None else wb)
            if step_ended(self.callbacks, state):
                break
        return running.result()

    def _train_target_var(self) -> torch.Tensor | None:
        if self.state.task == "classification":
            return None
        return target_variance(self.data["train"][1], self.data["target_scale"], self.data["weights"]["train"])

    def _stop_reason(self, record: EpochRecord) -> str | None:
        losses = [record.train_loss] + ([record.val_loss] if record.val_loss is not None else [])
        if not all(math.isfinite(v) for v in losses):
            return f"non-finite loss (NaN or inf) in epoch {record.epoch}: training diverged; lower the learning rate (--lr) or clip gradients (--clip-grad 1)"
        if record.val_loss is None:
            return None
        if record.val_loss < self.best_loss:
            self.best_loss, self.best_epoch = record.val_loss, record.epoch
            self.best_weights = copy.deepcopy(self.state.model.state_dict())
        elif self.config.patience is not None and record.epoch - self.best_epoch >= self.config.patience:
            return f"early stopping: validation loss has not improved for {self.config.patience} epochs (best at epoch {self.best_epoch})"
        return None

    def _restore_best(self) -> None:
        if self.best_weights is not None:
            self.state.model.load_state_dict(self.best_weights)
