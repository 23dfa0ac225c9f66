"""What the four optimizers share: argument checks, lazy state, the step loop.

Each optimizer is a thin :class:`torch.optim.Optimizer` subclass (so param groups,
``state_dict``/``load_state_dict``, step hooks and torch's LR schedulers work) that names
its per-parameter buffers and hands lists of tensors to a stateless update function.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
from torch import Tensor

from ..config import is_finite_number
from ..errors import ConfigError
from ._compile import IMPLEMENTATIONS, choose

Check = Callable[[str, Any], None]


def check_lr(name: str, value: Any) -> None:
    if not (is_finite_number(value) and value >= 0):
        raise ConfigError(f"{name} must be a number >= 0, got {value!r}; try 1e-3")


def check_beta(name: str, value: Any) -> None:
    if not (is_finite_number(value) and 0 <= value < 1):
        raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}; try 0.9")


def check_betas(name: str, value: Any) -> None:
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise ConfigError(f"{name} must be a pair (beta1, beta2), got {value!r}; try (0.9, 0.999)")
    check_beta(f"{name}[0]", value[0])
    check_beta(f"{name}[1]", value[1])


def check_eps(name: str, value: Any) -> None:
    if not (is_finite_number(value) and value > 0):
        raise ConfigError(f"{name} must be a number > 0, got {value!r}; try 1e-8")


def check_weight_decay(name: str, value: Any) -> None:
    if not (is_finite_number(value) and value >= 0):
        raise ConfigError(f"{name} must be a number >= 0, got {value!r}; use 0 for none")


def check_flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False, got {value!r}")


def check_impl(name: str, value: Any) -> None:
    if value not in IMPLEMENTATIONS:
        raise ConfigError(f"{name} must be one of {', '.join(IMPLEMENTATIONS)}, got {value!r}")


class GradwiseOptimizer(torch.optim.Optimizer):
    """Base class: subclasses set ``buffers``, ``checks`` and implement ``_update``."""

    buffers: tuple[str, ...] = ()  # per-parameter running averages, created as zeros
    checks: dict[str, Check] = {"lr": check_lr, "weight_decay": check_weight_decay, "impl": check_impl}
    compile_pays = True  # False when eager is already one pass over memory (plain GD)

    def __init__(self, params: Iterable, defaults: dict[str, Any]) -> None:
        self._check(defaults)
        super().__init__(params, defaults)

    def _check(self, group: dict[str, Any]) -> None:
        for name, check in self.checks.items():
            if name in group:
                check(name, group[name])

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        # Values given for one group are checked like constructor arguments.
        self._check({k: v for k, v in param_group.items() if k != "params"})
        super().add_param_group(param_group)

    def _init_group(self, group: dict[str, Any]) -> tuple[list[Tensor], list[Tensor], list[list[Tensor]], list[int]]:
        """Parameters that have a gradient, their gradients, buffers and step counts (after this step)."""
        params, grads, steps = [], [], []
        buffers: list[list[Tensor]] = [[] for _ in self.buffers]
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise ConfigError(f"{type(self).__name__} does not support sparse gradients; use dense parameters")
            state = self.state[p]
            if not state:  # lazy: state exists only for parameters that ever had a gradient
                state["step"] = 0
                for name in self.buffers:
                    state[name] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] += 1
            params.append(p)
            grads.append(p.grad)
            steps.append(state["step"])
            for names, name in zip(buffers, self.buffers):
                names.append(state[name])
        return params, grads, buffers, steps

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; ``closure`` re-evaluates the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, buffers, steps = self._init_group(group)
            if params:
                impl = choose(group["impl"], sum(p.numel() for p in params), self.compile_pays)
                self._update(group, params, grads, buffers, steps, impl)
        return loss

    def _update(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor],
                buffers: list[list[Tensor]], steps: list[int], impl: str) -> None:
        raise NotImplementedError
