"""The running averages that momentum, RMSprop and Adam are built from (document section 3).

Momentum keeps an average of gradients V, RMSprop an average of squared gradients S, and
Adam keeps both; the three optimizers call these helpers, so an identity such as
"RMSprop is Adam with β1 = 0" holds by construction and is asserted in the tests.

Each helper has a single-tensor form, written as the equation reads and used by the
reference path (it also works when the hyperparameters are 0-d tensors, which is how the
compiled path passes them so that a new learning rate does not trigger a recompile), and a
``foreach`` form over lists of tensors for the fast eager path.
"""

from __future__ import annotations

import torch
from torch import Tensor

Scalar = float | Tensor


def average_(avg: Tensor, x: Tensor, beta: Scalar) -> Tensor:
    """V := β·V + (1 − β)·x, in place."""
    return avg.mul_(beta).add_((1 - beta) * x)


def square_average_(avg: Tensor, x: Tensor, beta: Scalar) -> Tensor:
    """S := β·S + (1 − β)·x², in place."""
    return avg.mul_(beta).add_((1 - beta) * x * x)


def root_mean_square(avg_sq: Tensor, eps: Scalar, eps_inside_sqrt: bool) -> Tensor:
    """sqrt(S + ε) as the document writes it, or sqrt(S) + ε as Kingma and Ba do."""
    return (avg_sq + eps).sqrt() if eps_inside_sqrt else avg_sq.sqrt() + eps


def with_weight_decay(grad: Tensor, param: Tensor, weight_decay: Scalar | None) -> Tensor:
    """dθ + λθ: the gradient of the loss plus an L2 penalty (λ/2)·‖θ‖². ``None`` means none."""
    return grad if weight_decay is None else grad + weight_decay * param


# -- the same pieces over lists of tensors (one kernel launch per list, not per tensor) --


def foreach_average_(avgs: list[Tensor], xs: list[Tensor], beta: float) -> None:
    # lerp reads and writes each element once, where mul_ then add_ would take two passes.
    torch._foreach_lerp_(avgs, xs, 1 - beta)


def foreach_square_average_(avgs: list[Tensor], xs: list[Tensor], beta: float) -> None:
    torch._foreach_mul_(avgs, beta)
    torch._foreach_addcmul_(avgs, xs, xs, value=1 - beta)


def foreach_root_mean_square(avg_sqs: list[Tensor], eps: float, eps_inside_sqrt: bool,
                             scales: list[float] | None = None) -> list[Tensor]:
    """New tensors holding sqrt(c·S + ε) (or sqrt(c·S) + ε) for each S and scale c (default 1).

    The first operation makes the new tensors and the rest work in place on them: at 10M
    parameters every extra temporary is 40 MB of fresh memory to fault in each step.
    """
    if scales is not None:
        out = torch._foreach_mul(avg_sqs, scales)
        if eps_inside_sqrt:
            torch._foreach_add_(out, eps)
            torch._foreach_sqrt_(out)
        else:
            torch._foreach_sqrt_(out)
            torch._foreach_add_(out, eps)
    elif eps_inside_sqrt:
        out = torch._foreach_add(avg_sqs, eps)
        torch._foreach_sqrt_(out)
    else:
        out = torch._foreach_sqrt(avg_sqs)
        torch._foreach_add_(out, eps)
    return out


def foreach_with_weight_decay(grads: list[Tensor], params: list[Tensor], weight_decay: float | None) -> list[Tensor]:
    return grads if weight_decay is None else torch._foreach_add(grads, params, alpha=weight_decay)
