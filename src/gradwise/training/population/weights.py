"""Weighted members: each batch's loss is sum(w * loss) / sum(w) over the member's real rows,
as :func:`gradwise.fit` weights it, and a batch of only weight-0 rows makes no update.

fit skips such a batch before its forward pass (``loop.weightless_batches``): no step, no
optimizer state change, no batch-norm running statistics, and its rows count nowhere in the
epoch's loss and metrics. Here the member sits that step out (the optimizer's ``active``, the
network's ``stepping``), which has the same effect, so its update count is fit's too.
Nothing here runs for a population whose training split carries no weights.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .data import Stacked


class EpochWeights:
    """One epoch's row weights of every member in its epoch order, batch by batch."""

    def __init__(self, train: Stacked, order: Tensor, batch_sizes: list[int], steps: list[int]) -> None:
        # order's padding entries point at row 0, a real row: the mask puts their weight back to 0.
        self.w = train.w.gather(1, order) * train.valid()
        device = self.w.device
        self.same_size = len(set(batch_sizes)) == 1
        self.sizes = torch.tensor(batch_sizes, device=device).unsqueeze(1)
        self.counts = train.counts.unsqueeze(1)
        self.offsets = torch.arange(max(batch_sizes), device=device).unsqueeze(0)
        S = max(steps)
        within = torch.arange(S, device=device).unsqueeze(0) < torch.tensor(steps, device=device).unsqueeze(1)
        self.takes = within & batches_with_weight(self.w, self.counts, self.sizes, S)  # [K, S]

    def updates_in(self, steps: int) -> list[int]:
        """Each member's updates in the epoch's first ``steps`` steps (one host sync, as fit's)."""
        return self.takes[:, :steps].sum(dim=1).tolist()

    def active(self, s: int) -> Tensor:
        """[K] whether each member updates in step ``s`` (a batch of its own with some weight)."""
        return self.takes[:, s]

    def batch(self, s: int) -> Tensor:
        """[K, b] weights of step ``s``'s rows, laid out as the trainer lays out that batch's rows."""
        if self.same_size:  # rows [s·B, (s + 1)·B) of every member's epoch order, padding already 0
            B = int(self.sizes[0])
            return self.w[:, s * B : (s + 1) * B]
        index = s * self.sizes + self.offsets  # member k's rows [s·B_k, (s + 1)·B_k), padded to the largest B
        real = (self.offsets < self.sizes) & (index < self.counts)
        return self.w.gather(1, index.clamp(max=self.w.shape[1] - 1)) * real


def batches_with_weight(w: Tensor, counts: Tensor, sizes: Tensor, steps: int) -> Tensor:
    """[K, steps] whether member k's batch s (its rows [s·B_k, (s + 1)·B_k) of ``w``'s order)
    holds a row of positive weight. Counted as rows, not summed as weights, so that a tiny
    weight beside large ones is never rounded away."""
    positive = torch.nn.functional.pad((w > 0).long().cumsum(dim=1), (1, 0))  # [K, M + 1]
    s = torch.arange(steps, device=w.device).unsqueeze(0)
    starts, ends = (s * sizes).minimum(counts), ((s + 1) * sizes).minimum(counts)
    return positive.gather(1, ends) > positive.gather(1, starts)


def weighted_losses(per_row: Tensor, weights: Tensor, total: Tensor) -> Tensor:
    """[K] each member's weighted mean loss, sum(w * loss) / sum(w) (``total``); 0 for a
    member whose weights in this batch are all 0, rather than 0/0 (it carries nothing)."""
    return (per_row * weights).sum(dim=1) / torch.where(total > 0, total, torch.ones_like(total))
