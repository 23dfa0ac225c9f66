"""Losses and metrics; metrics are always reported in the target's original units."""

from __future__ import annotations

import torch
from torch import nn


def loss_function(task: str) -> nn.Module:
    """Cross-entropy on logits for classes; mean squared error on normalized targets."""
    return nn.CrossEntropyLoss() if task == "classification" else nn.MSELoss()


def row_loss_function(task: str) -> nn.Module:
    """The same losses, one value per row (MSE averaged over a row's outputs), for weighting."""
    return nn.CrossEntropyLoss(reduction="none") if task == "classification" else _RowMSE()


class _RowMSE(nn.Module):
    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return ((outputs - targets) ** 2).mean(dim=1)


def weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum(w * v) / sum(w), as scikit-learn's MLP averages a batch (numpy.average).

    A batch whose weights are all 0 gives 0 rather than 0/0: it carries no information.
    """
    total = weights.sum()
    return (weights * values).sum() / torch.where(total > 0, total, torch.ones_like(total))


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

    def update(self, outputs: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor, weights: torch.Tensor | None = None) -> None:
        """Add a batch; ``loss`` is its (weighted) mean. With ``weights`` every sum and the
        count are weighted, so accuracy, RMSE and R² are those scikit-learn's metrics give
        with ``sample_weight``."""
        n = targets.shape[0] if weights is None else weights.detach().double().sum()
        self.count += n
        if self.loss_sum is None:
            shape = () if self.task == "classification" else (outputs.shape[1],)
            self.loss_sum = torch.zeros((), dtype=torch.float64, device=loss.device)
            self.score_sum = torch.zeros(shape, dtype=torch.float64, device=loss.device)
        self.loss_sum += loss.detach().double() * n
        if self.task == "classification":
            correct = outputs.detach().argmax(dim=1) == targets
            self.score_sum += correct.sum() if weights is None else (correct * weights.detach().double()).sum()
        else:
            squared = (outputs.detach() - targets) ** 2
            self.score_sum += (squared if weights is None else squared * weights.detach()[:, None]).sum(dim=0).double()

    def result(self) -> tuple[float, dict[str, float]]:
        count = float(self.count)  # a tensor once weighted batches were added
        if count == 0:
            return float("nan"), {}
        loss = float(self.loss_sum) / count
        if self.task == "classification":
            return loss, {"accuracy": float(self.score_sum) / count}
        return loss, regression_metrics(self.score_sum.cpu(), count, self.target_scale, self.target_var)


def regression_metrics(sse_normalized: torch.Tensor, count: int, scale: torch.Tensor, var: torch.Tensor) -> dict[str, float]:
    """RMSE over all outputs and R² averaged over outputs, in original units."""
    sse = sse_normalized.double() / scale.double().cpu() ** 2
    rmse = torch.sqrt(sse.sum() / (count * sse.numel()))
    total = var.double().cpu() * count
    r2_per_output = torch.where(total > 0, 1 - sse / torch.where(total > 0, total, torch.ones_like(total)), torch.zeros_like(total))
    return {"rmse": float(rmse), "r2": float(r2_per_output.mean())}


def target_variance(y_normalized: torch.Tensor, scale: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Per-output variance of a target in original units, from its normalized values
    (weighted when ``weights`` are given, as r2_score weighs its total sum of squares)."""
    if weights is None:
        variance = y_normalized.double().var(dim=0, unbiased=False)
    else:
        w = weights.double()[:, None]
        total = w.sum().clamp_min(torch.finfo(torch.float64).tiny)
        mean = (w * y_normalized.double()).sum(dim=0) / total
        variance = (w * (y_normalized.double() - mean) ** 2).sum(dim=0) / total
    return variance.cpu() / scale.double().cpu() ** 2


@torch.no_grad()
def evaluate(net: nn.Module, X: torch.Tensor, y: torch.Tensor, task: str, target_scale=None, chunk: int = 8192, weights: torch.Tensor | None = None) -> tuple[float, dict[str, float]]:
    """Loss and metrics of ``net`` on normalized inputs ``X`` (eval mode, in chunks);
    with per-row ``weights``, the weighted mean loss and weighted metrics."""
    if len(X) == 0:
        return float("nan"), {}
    # R² compares with this split's own variance, as sklearn does.
    target_var = target_variance(y, target_scale, weights) if task != "classification" else None
    was_training = net.training
    net.eval()
    loss_fn = loss_function(task) if weights is None else row_loss_function(task)
    running = RunningMetrics(task, target_scale, target_var)
    for start in range(0, len(X), chunk):
        xb, yb = X[start : start + chunk], y[start : start + chunk]
        out = net(xb)
        if weights is None:
            running.update(out, yb, loss_fn(out, yb))
        else:
            wb = weights[start : start + chunk]
            running.update(out, yb, weighted_mean(loss_fn(out, yb), wb), wb)
    net.train(was_training)
    return running.result()
