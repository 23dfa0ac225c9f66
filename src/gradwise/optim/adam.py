"""Adam: momentum and RMSprop together (document section 3).

    V := β1 V + (1 − β1) dθ;   S := β2 S + (1 − β2) dθ²;   θ := θ − α V / sqrt(S + ε)

The document shows no bias correction and puts ε inside the square root. Kingma and Ba
(2015) divide V by 1 − β1^t and S by 1 − β2^t (t the step count, which undoes the pull of
the zero initial averages towards 0 in early steps) and add ε outside the root. Both
choices are arguments, so every combination can be reproduced.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import Tensor

from ._compile import dispatch
from .base import GradwiseOptimizer, check_betas, check_eps, check_flag
from .moments import (
    average_,
    foreach_average_,
    foreach_root_mean_square,
    foreach_square_average_,
    foreach_with_weight_decay,
    root_mean_square,
    square_average_,
    with_weight_decay,
)


class Adam(GradwiseOptimizer):
    """Adam, in the document's form or in Kingma and Ba's.

    Args:
        lr: learning rate α >= 0 (default 1e-3).
        betas: (β1, β2), each in [0, 1) (default (0.9, 0.999)).
        eps: ε > 0 (default 1e-8).
        bias_correction: divide V and S by 1 − β1^t and 1 − β2^t (default True).
        eps_inside_sqrt: sqrt(S + ε) as the document writes (default True), or sqrt(S) + ε.
        weight_decay: λ, L2 penalty added to the gradient (not AdamW's decoupled decay).
        impl: "auto", "reference", "foreach" or "compiled".

    ``bias_correction=False`` is literally the document's update;
    ``bias_correction=True, eps_inside_sqrt=False`` is Kingma and Ba's, the same as
    ``torch.optim.Adam``.

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> opt = Adam([w], lr=0.1, eps_inside_sqrt=False)
        >>> (w ** 2).sum().backward(); opt.step()  # first bias-corrected step is α·sign(dθ)
        >>> round(w.item(), 6)
        0.9
    """

    buffers = ("V", "S")
    checks = {**GradwiseOptimizer.checks, "betas": check_betas, "eps": check_eps,
              "bias_correction": check_flag, "eps_inside_sqrt": check_flag}

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, *, bias_correction: bool = True,
                 eps_inside_sqrt: bool = True, impl: str = "auto") -> None:
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                    "bias_correction": bias_correction, "eps_inside_sqrt": eps_inside_sqrt, "impl": impl}
        super().__init__(params, defaults)

    def _update(self, group: dict[str, Any], params, grads, buffers, steps, impl: str) -> None:
        beta1, beta2 = group["betas"]
        adam(params, grads, buffers[0], buffers[1], steps, lr=group["lr"], beta1=beta1, beta2=beta2,
             eps=group["eps"], weight_decay=group["weight_decay"], bias_correction=group["bias_correction"],
             eps_inside_sqrt=group["eps_inside_sqrt"], impl=impl)


def _single_tensor_adam(params, grads, Vs, Ss, corrections1, corrections2, *, lr, beta1, beta2, eps,
                        weight_decay, eps_inside_sqrt) -> None:
    for p, g, V, S, c1, c2 in zip(params, grads, Vs, Ss, corrections1, corrections2):
        g = with_weight_decay(g, p, weight_decay)
        average_(V, g, beta1)  # V := β1 V + (1 − β1) dθ
        square_average_(S, g, beta2)  # S := β2 S + (1 − β2) dθ²
        # θ := θ − α V̂ / sqrt(Ŝ + ε), with V̂ = V / c1 and Ŝ = S / c2 (c = 1 without bias correction).
        # Scalars are divided once, not per element: the compiled kernel stays memory-bound.
        p.sub_((lr / c1) * V / root_mean_square(S * (1 / c2), eps, eps_inside_sqrt))


def _foreach_adam(params, grads, Vs, Ss, corrections1, corrections2, *, lr, beta1, beta2, eps,
                  weight_decay, eps_inside_sqrt) -> None:
    grads = foreach_with_weight_decay(grads, params, weight_decay)
    foreach_average_(Vs, grads, beta1)
    foreach_square_average_(Ss, grads, beta2)
    scales = [1 / c for c in corrections2] if any(c != 1 for c in corrections2) else None
    denominators = foreach_root_mean_square(Ss, eps, eps_inside_sqrt, scales)  # sqrt(Ŝ + ε), Ŝ = S / c2
    torch._foreach_addcdiv_(params, Vs, denominators, [-lr / c for c in corrections1])


def bias_corrections(steps: list[int], beta: float, enabled: bool) -> list[float]:
    """1 − β^t for each parameter's step count t (1.0 everywhere when disabled)."""
    return [1.0 - beta**t if enabled else 1.0 for t in steps]


def adam(params: list[Tensor], grads: list[Tensor], Vs: list[Tensor], Ss: list[Tensor], steps: list[int], *,
         lr: float, beta1: float, beta2: float, eps: float, weight_decay: float = 0.0,
         bias_correction: bool = True, eps_inside_sqrt: bool = True, impl: str = "foreach") -> None:
    """Functional Adam update; ``Vs`` and ``Ss`` are updated in place, ``steps`` count from 1."""
    corrections = (bias_corrections(steps, beta1, bias_correction), bias_corrections(steps, beta2, bias_correction))
    kwargs = {"lr": lr, "beta1": beta1, "beta2": beta2, "eps": eps, "weight_decay": weight_decay or None,
              "eps_inside_sqrt": eps_inside_sqrt}
    dispatch(impl, _single_tensor_adam, _foreach_adam, (params, grads, Vs, Ss, *corrections), kwargs)
