"""Gradient descent, θ := θ − α dθ (document section 3).

Batch, stochastic and mini-batch gradient descent are this one update; they differ only in
how many examples the training loop averages the gradient over (m, 1 or B).
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import Tensor

from ._compile import dispatch
from .base import GradwiseOptimizer
from .moments import foreach_with_weight_decay, with_weight_decay


class GD(GradwiseOptimizer):
    """Plain gradient descent: θ := θ − α (dθ + λθ).

    Args:
        lr: learning rate α >= 0.
        weight_decay: λ, an L2 penalty added to the gradient (default 0).
        impl: "auto" (default), "reference", "foreach" or "compiled"; all compute the same.

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> opt = GD([w], lr=0.1)
        >>> (w ** 2).sum().backward(); opt.step()
        >>> round(w.item(), 6)  # 1 - 0.1 * 2
        0.8
    """

    compile_pays = False  # eager add_ already reads θ and dθ and writes θ once each

    def __init__(self, params: Iterable, lr: float, weight_decay: float = 0.0, *, impl: str = "auto") -> None:
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay, "impl": impl})

    def _update(self, group: dict[str, Any], params, grads, buffers, steps, impl: str) -> None:
        gd(params, grads, lr=group["lr"], weight_decay=group["weight_decay"], impl=impl)


def _single_tensor_gd(params: list[Tensor], grads: list[Tensor], *, lr, weight_decay) -> None:
    for p, g in zip(params, grads):
        g = with_weight_decay(g, p, weight_decay)
        p.sub_(lr * g)  # θ := θ − α dθ


def _foreach_gd(params: list[Tensor], grads: list[Tensor], *, lr, weight_decay) -> None:
    grads = foreach_with_weight_decay(grads, params, weight_decay)
    torch._foreach_add_(params, grads, alpha=-lr)


def gd(params: list[Tensor], grads: list[Tensor], *, lr: float, weight_decay: float = 0.0, impl: str = "foreach") -> None:
    """Functional gradient descent over lists of tensors (no state)."""
    kwargs = {"lr": lr, "weight_decay": weight_decay or None}
    dispatch(impl, _single_tensor_gd, _foreach_gd, (params, grads), kwargs)
