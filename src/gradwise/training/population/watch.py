"""The gradient monitor on a population: per-member, per-layer measures from the stacked tensors.

Two measures (document section 1), each a [layers, K] tensor so one op serves every member:

- the gradient norm ||dJ/dW|| of each layer, averaged over the epoch's steps;
- the backward gain of each layer, ||dJ/d input|| / ||dJ/d output||, the |w g'(z)| factor
  the gradient is multiplied by on its way down, measured on the first step of each epoch
  (the inputs' gradients cost an extra backward product, so not on every step).

From them two findings decide, member by member, whether a trial is hopeless, as the tuner's
pruning on ``diverging_loss`` / ``exploding_gradient`` does for a single run: gradients that
overflow while the loss is finite, or a gain over the depth above ``EXPLODING_SETUP`` in
the first epoch or ``EXPLODING_TRAINING`` later with more than 2 per layer; and an epoch
training loss that has grown to more than twice both its first and its best value.
The thresholds are those of :mod:`gradwise.diagnosis.rules`, kept here as numbers so this
module does not depend on the diagnosis package's internals.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

EXPLODING_SETUP = 30.0
EXPLODING_TRAINING = 1000.0
GAIN_PER_LAYER = 2.0
DIVERGING_FACTOR = 2.0


def member_norms(t: Tensor) -> Tensor:
    """||t[k]|| for each member k of a [K, ...] tensor."""
    return t.detach().flatten(1).norm(dim=1)


class PopulationWatch:
    """Accumulates during an epoch on the device; ``end_epoch`` hands each member its summary."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.reports: dict[int, list[dict[str, Any]]] = {}
        self._reset()

    def _reset(self) -> None:
        self.norm_sum: Tensor | None = None
        self.steps = 0
        self.gains: Tensor | None = None

    def after_backward(self, weight_grads: list[Tensor], kept: list[Tensor] | None) -> None:
        norms = torch.stack([member_norms(g) for g in weight_grads])
        self.norm_sum = norms if self.norm_sum is None else self.norm_sum + norms
        self.steps += 1
        if kept:  # [input_0, output_0, input_1, output_1, ...]
            inputs, outputs = kept[0::2], kept[1::2]
            self.gains = torch.stack([member_norms(i.grad) / member_norms(o.grad) for i, o in zip(inputs, outputs)])

    def end_epoch(self, epochs: dict[int, int], ids: list[int], losses: dict[int, float], live: set[int]) -> None:
        """``epochs``: each live member's epoch just ended (members that joined later are behind)."""
        norms = (self.norm_sum / max(self.steps, 1)).cpu() if self.norm_sum is not None else None
        gains = self.gains.cpu() if self.gains is not None else None
        for slot, member in enumerate(ids):
            if member not in live:
                continue
            report = {"epoch": epochs[member], "train_loss": losses.get(member, math.nan)}
            if norms is not None:
                report["grad_norms"] = norms[:, slot].tolist()
            if gains is not None:
                report["gains"] = gains[:, slot].tolist()
            self.reports.setdefault(member, []).append(report)
        self._reset()

    def fatal(self, member: int) -> str | None:
        """'exploding_gradient' or 'diverging_loss' when this member's measures show it, else None."""
        reports = self.reports.get(member, [])
        if not reports:
            return None
        last = reports[-1]
        if math.isfinite(last["train_loss"]) and not all(math.isfinite(n) for n in last.get("grad_norms", [])):
            return "exploding_gradient"
        if exploding(last.get("gains", []), setup=last["epoch"] == 1):
            return "exploding_gradient"
        if diverging([r["train_loss"] for r in reports]):
            return "diverging_loss"
        return None


def exploding(gains: list[float], setup: bool) -> bool:
    if len(gains) < 2 or any(math.isnan(g) or g < 0 for g in gains):
        return False
    depth_gain = math.prod(gains)
    per_layer = depth_gain ** (1 / len(gains)) if math.isfinite(depth_gain) else math.inf
    return depth_gain > (EXPLODING_SETUP if setup else EXPLODING_TRAINING) and per_layer > GAIN_PER_LAYER


def diverging(losses: list[float]) -> bool:
    finite = [v for v in losses if math.isfinite(v)]
    if len(finite) < 3:
        return False
    start, end, best = finite[0], finite[-1], min(finite)
    return end > DIVERGING_FACTOR * start and end > DIVERGING_FACTOR * best
