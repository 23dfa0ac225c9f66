"""RMSprop (document section 3).

    S := β S + (1 − β) dθ²;   α' = α / sqrt(S + ε);   θ := θ − α' dθ

S is an exponentially weighted average of squared gradients, so each direction gets its own
step: large, noisy gradient components are divided by a large root mean square, small
consistent ones by a small one.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import Tensor

from ._compile import dispatch
from .base import GradwiseOptimizer, check_beta, check_eps, check_flag
from .moments import (
    foreach_root_mean_square,
    foreach_square_average_,
    foreach_with_weight_decay,
    root_mean_square,
    square_average_,
    with_weight_decay,
)


class RMSprop(GradwiseOptimizer):
    """RMSprop with ε inside the square root (the document) or outside (torch, Hinton's slides).

    Args:
        lr: learning rate α >= 0.
        beta: β in [0, 1), the averaging constant of S (default 0.9).
        eps: ε > 0 (default 1e-8).
        eps_inside_sqrt: True divides by sqrt(S + ε) as the document does; False by
            sqrt(S) + ε, which equals ``torch.optim.RMSprop(alpha=β)``.
        weight_decay: λ, L2 penalty added to the gradient.
        impl: "auto", "reference", "foreach" or "compiled".

    RMSprop(β) equals the document's Adam (no bias correction) with β1 = 0 and β2 = β.

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> opt = RMSprop([w], lr=0.01, beta=0.9)
        >>> (w ** 2).sum().backward(); opt.step()  # S = 0.1 * 4, step 0.01 * 2 / sqrt(0.4)
        >>> round(w.item(), 4)
        0.9684
    """

    buffers = ("S",)
    checks = {**GradwiseOptimizer.checks, "beta": check_beta, "eps": check_eps, "eps_inside_sqrt": check_flag}

    def __init__(self, params: Iterable, lr: float, beta: float = 0.9, eps: float = 1e-8,
                 weight_decay: float = 0.0, *, eps_inside_sqrt: bool = True, impl: str = "auto") -> None:
        defaults = {"lr": lr, "beta": beta, "eps": eps, "weight_decay": weight_decay,
                    "eps_inside_sqrt": eps_inside_sqrt, "impl": impl}
        super().__init__(params, defaults)

    def _update(self, group: dict[str, Any], params, grads, buffers, steps, impl: str) -> None:
        rmsprop(params, grads, buffers[0], lr=group["lr"], beta=group["beta"], eps=group["eps"],
                weight_decay=group["weight_decay"], eps_inside_sqrt=group["eps_inside_sqrt"], impl=impl)


def _single_tensor_rmsprop(params, grads, Ss, *, lr, beta, eps, weight_decay, eps_inside_sqrt) -> None:
    for p, g, S in zip(params, grads, Ss):
        g = with_weight_decay(g, p, weight_decay)
        square_average_(S, g, beta)  # S := β S + (1 − β) dθ²
        p.sub_(lr * g / root_mean_square(S, eps, eps_inside_sqrt))  # θ := θ − α dθ / sqrt(S + ε)


def _foreach_rmsprop(params, grads, Ss, *, lr, beta, eps, weight_decay, eps_inside_sqrt) -> None:
    grads = foreach_with_weight_decay(grads, params, weight_decay)
    foreach_square_average_(Ss, grads, beta)
    denominators = foreach_root_mean_square(Ss, eps, eps_inside_sqrt)
    torch._foreach_addcdiv_(params, grads, denominators, value=-lr)


def rmsprop(params: list[Tensor], grads: list[Tensor], Ss: list[Tensor], *, lr: float, beta: float, eps: float,
            weight_decay: float = 0.0, eps_inside_sqrt: bool = True, impl: str = "foreach") -> None:
    """Functional RMSprop update; ``Ss`` are updated in place."""
    kwargs = {"lr": lr, "beta": beta, "eps": eps, "weight_decay": weight_decay or None,
              "eps_inside_sqrt": eps_inside_sqrt}
    dispatch(impl, _single_tensor_rmsprop, _foreach_rmsprop, (params, grads, Ss), kwargs)
