"""Gradient descent with momentum (document section 3).

    V := β V + (1 − β) dθ;   θ := θ − α V

V is an exponentially weighted average of past gradients: components that change sign from
step to step cancel out (less oscillation), components that agree add up.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import Tensor

from ._compile import dispatch
from .base import GradwiseOptimizer, check_beta
from .moments import average_, foreach_average_, foreach_with_weight_decay, with_weight_decay


class Momentum(GradwiseOptimizer):
    """Momentum in the document's (dampened) form.

    Args:
        lr: learning rate α >= 0.
        beta: β in [0, 1), default 0.9 ("generally sufficient"); β = 0 is plain GD.
        weight_decay: λ, L2 penalty added to the gradient.
        impl: "auto", "reference", "foreach" or "compiled".

    With learning rate α this equals ``torch.optim.SGD(lr=α(1 − β), momentum=β)``: torch
    keeps the undamped sum, which is V / (1 − β).

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> opt = Momentum([w], lr=0.1, beta=0.9)
        >>> (w ** 2).sum().backward(); opt.step()
        >>> round(w.item(), 6)  # V = 0.1 * 2 = 0.2, then 1 - 0.1 * 0.2
        0.98
    """

    buffers = ("V",)
    checks = {**GradwiseOptimizer.checks, "beta": check_beta}

    def __init__(self, params: Iterable, lr: float, beta: float = 0.9, weight_decay: float = 0.0, *,
                 impl: str = "auto") -> None:
        super().__init__(params, {"lr": lr, "beta": beta, "weight_decay": weight_decay, "impl": impl})

    def _update(self, group: dict[str, Any], params, grads, buffers, steps, impl: str) -> None:
        momentum(params, grads, buffers[0], lr=group["lr"], beta=group["beta"],
                 weight_decay=group["weight_decay"], impl=impl)


def _single_tensor_momentum(params, grads, Vs, *, lr, beta, weight_decay) -> None:
    for p, g, V in zip(params, grads, Vs):
        g = with_weight_decay(g, p, weight_decay)
        average_(V, g, beta)  # V := β V + (1 − β) dθ
        p.sub_(lr * V)  # θ := θ − α V


def _foreach_momentum(params, grads, Vs, *, lr, beta, weight_decay) -> None:
    grads = foreach_with_weight_decay(grads, params, weight_decay)
    foreach_average_(Vs, grads, beta)
    torch._foreach_add_(params, Vs, alpha=-lr)


def momentum(params: list[Tensor], grads: list[Tensor], Vs: list[Tensor], *, lr: float, beta: float,
             weight_decay: float = 0.0, impl: str = "foreach") -> None:
    """Functional momentum update; ``Vs`` are updated in place."""
    kwargs = {"lr": lr, "beta": beta, "weight_decay": weight_decay or None}
    dispatch(impl, _single_tensor_momentum, _foreach_momentum, (params, grads, Vs), kwargs)
