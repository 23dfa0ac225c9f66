"""Losses and metrics; metrics are always reported in the target's original units."""

from __future__ import annotations

import torch
from torch import nn


def loss_function(task: str) -> nn.Module:
    """Cross-entropy on logits for classes; mean squared error on normalized targets."""
    return nn.CrossEntropyLoss() if task == "classification" else nn.MSELoss()


class RunningMetrics:
    """Sums kept on the device during an epoch (no host sync per step), read once at its end.

    For regression, squared errors are accumulated per output in normalized units and
    converted with the target normalizer's scale: an error e' = e * scale in normalized
    units is e = e' / scale in original units.
    """

    def __init__(self, task: str, target_scale: torch.Tensor | None, target_var: torch.Tensor | None) -> None:
        self.task = task
        self.target_scale = target_scale
        self.target_var = target_var  # per-output variance of the target (original units)
        # Created on the first batch, on its device: correct answers (a count) for classes,
        # per-output squared errors for regression.
        self.loss_sum: torch.Tensor | None = None
        self.score_sum: torch.Tensor | None = None
        self.count = 0

    def update(self, outputs: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor) -> None:
        n = targets.shape[0]
        self.count += n
        if self.loss_sum is None:
            shape = () if self.task == "classification" else (outputs.shape[1],)
            self.loss_sum = torch.zeros((), dtype=torch.float64, device=loss.device)
            self.score_sum = torch.zeros(shape, dtype=torch.float64, device=loss.device)
        self.loss_sum += loss.detach().double() * n
        if self.task == "classification":
            self.score_sum += (outputs.detach().argmax(dim=1) == targets).sum()
        else:
            self.score_sum += ((outputs.detach() - targets) ** 2).sum(dim=0).double()

    def result(self) -> tuple[float, dict[str, float]]:
        if self.count == 0:
            return float("nan"), {}
        loss = float(self.loss_sum) / self.count
        if self.task == "classification":
            return loss, {"accuracy": float(self.score_sum) / self.count}
        return loss, regression_metrics(self.score_sum.cpu(), self.count, self.target_scale, self.target_var)


def regression_metrics(sse_normalized: torch.Tensor, count: int, scale: torch.Tensor, var: torch.Tensor) -> dict[str, float]:
    """RMSE over all outputs and R² averaged over outputs, in original units."""
    sse = sse_normalized.double() / scale.double().cpu() ** 2
    rmse = torch.sqrt(sse.sum() / (count * sse.numel()))
    total = var.double().cpu() * count
    r2_per_output = torch.where(total > 0, 1 - sse / torch.where(total > 0, total, torch.ones_like(total)), torch.zeros_like(total))
    return {"rmse": float(rmse), "r2": float(r2_per_output.mean())}


def target_variance(y_normalized: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Per-output variance of a target in original units, from its normalized values."""
    return y_normalized.double().var(dim=0, unbiased=False).cpu() / scale.double().cpu() ** 2


@torch.no_grad()
def evaluate(net: nn.Module, X: torch.Tensor, y: torch.Tensor, task: str, target_scale=None, chunk: int = 8192) -> tuple[float, dict[str, float]]:
    """Loss and metrics of ``net`` on normalized inputs ``X`` (eval mode, in chunks)."""
    if len(X) == 0:
        return float("nan"), {}
    # R² compares with this split's own variance, as sklearn does.
    target_var = target_variance(y, target_scale) if task != "classification" else None
    was_training = net.training
    net.eval()
    loss_fn = loss_function(task)
    running = RunningMetrics(task, target_scale, target_var)
    for start in range(0, len(X), chunk):
        xb, yb = X[start : start + chunk], y[start : start + chunk]
        out = net(xb)
        running.update(out, yb, loss_fn(out, yb))
    net.train(was_training)
    return running.result()
