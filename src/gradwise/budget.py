"""Memory and work budgets: what the machine can hold and do, checked before the work starts.

**Memory.** Before a network is built, :func:`check_memory` estimates what training it
holds at its peak and refuses, with one line that names the estimate and the fix, a
configuration that would not fit in the memory available (the system's available memory,
capped by an address-space limit such as ``ulimit -v``; on a GPU, its free memory). The
estimate, per network, in float32:

* parameters P = Σ (fan_in + 1) · fan_out over the Linear layers (+ 2 per batch-norm unit);
  training holds them :data:`WEIGHT_COPIES` times (weights, gradients, the best epoch's copy
  that early stopping keeps, the one-buffer copy that flattening makes for a moment, and
  about two temporaries of the optimizer's update over that buffer), plus the optimizer's
  state: 0 (GD), 1 (momentum, RMSprop) or 2 (Adam, and any ``torch:NAME``) values per
  weight (measured on digits, 3 x 4,096 units with Adam: 0.98 GB above the process's
  baseline against an estimate of 1.09 GB);
* activations of one batch of B examples: every hidden layer keeps its Linear output and its
  activation (and batch norm's output, and dropout's output and mask) for the backward pass,
  which needs about two more layers' worth; evaluation runs in chunks of 8,192 rows without
  gradients.

``members`` multiplies it all, for trainers that train several networks at once.

**Work.** Caps that follow from the machine or from what a number can buy: local tuning
workers (:func:`max_workers`), networks in a tuned model's ensemble, cross-validation
folds, and the length of ``gradwise chain``. Each is named in its option's ``--help``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

# One memory budget for the table and the network: the same reading of what is available,
# the same share of it (the allocator, torch's buffers and Python need the rest), one format.
from .data.memory import AVAILABLE_SHARE, available_bytes, format_size
from .errors import ConfigError

FLOAT_BYTES = 4
WEIGHT_COPIES = 6
OPTIMIZER_STATE = {"gd": 0, "momentum": 1, "rmsprop": 1, "adam": 2}
TORCH_OPTIMIZER_STATE = 2  # Adam-like; most torch.optim classes keep one or two buffers
BACKWARD_LAYERS = 2
EVAL_CHUNK = 8192  # rows per forward pass in gradwise.training.metrics.evaluate

WORKERS_PER_CORE = 2  # more local workers than this only queue for the same cores
# At most this many networks in a tuned model's ensemble, or folds per trial: each costs a
# full fit, and past 20 the estimate's noise no longer shrinks enough to pay for it.
MAX_ENSEMBLE = 20
MAX_FOLDS = 20
# gradwise chain: 1,000 factors w·g'(z) already take the gradient hundreds of orders of
# magnitude away (to 0 or inf in float64) and print in ~5 s; --depth N builds N chains,
# N²/2 neurons in all, and 200 takes about as long.
MAX_CHAIN_LAYERS = 1_000
MAX_CHAIN_DEPTH = 200


class MemoryBudgetError(ConfigError):
    """A configuration whose training would not fit in the memory available."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak bytes of training ``members`` networks of one configuration."""

    parameters: int  # per network
    weight_bytes: int  # weights, gradients, copies and optimizer state, all members
    activation_bytes: int  # one batch forward and backward, plus evaluation, all members

    @property
    def total(self) -> int:
        return self.weight_bytes + self.activation_bytes


def parameter_count(n_inputs: int, n_outputs: int, layers: int, hidden: int, batch_norm: bool = False) -> int:
    """Weights and biases of the MLP that :func:`gradwise.models.mlp.build_mlp` builds."""
    widths = [n_inputs] + [hidden] * layers + [n_outputs]
    linear = sum((fan_in + 1) * fan_out for fan_in, fan_out in zip(widths, widths[1:]))
    return linear + (2 * hidden * layers if batch_norm else 0)


def optimizer_state(optimizer: str) -> int:
    """Values the optimizer keeps per weight (velocity, squared average, ...)."""
    return OPTIMIZER_STATE.get(optimizer, TORCH_OPTIMIZER_STATE)


def estimate_memory(config: Any, n_inputs: int, n_outputs: int, n_train: int, members: int = 1) -> MemoryEstimate:
    """What training ``config`` on ``n_train`` rows holds at its peak (see the module doc)."""
    P = parameter_count(n_inputs, n_outputs, config.layers, config.hidden, config.batch_norm)
    weights = P * (WEIGHT_COPIES + optimizer_state(config.optimizer)) * FLOAT_BYTES
    batch = config.resolved_batch_size(max(n_train, 1))
    per_layer = 2 + int(config.batch_norm) + 2 * int(config.dropout > 0)
    width = max(config.hidden if config.layers else 0, n_inputs, n_outputs)
    train = batch * width * (per_layer * config.layers + BACKWARD_LAYERS) * FLOAT_BYTES
    evaluation = min(max(n_train, 1), EVAL_CHUNK) * width * 2 * FLOAT_BYTES
    return MemoryEstimate(P, weights * members, max(train, evaluation) * members)


def check_memory(config: Any, n_inputs: int, n_outputs: int, n_train: int, members: int = 1, device: Any = None, available: int | None = None) -> MemoryEstimate:
    """The estimate, or :class:`MemoryBudgetError` naming it and the fix when it cannot fit."""
    estimate = estimate_memory(config, n_inputs, n_outputs, n_train, members)
    limit = int((available_memory(device) if available is None else available) * AVAILABLE_SHARE)
    if estimate.total <= limit:
        return estimate
    raise MemoryBudgetError(_too_big(config, estimate, limit, n_inputs, n_outputs, n_train, members))


def _too_big(config: Any, estimate: MemoryEstimate, limit: int, n_inputs: int, n_outputs: int, n_train: int, members: int) -> str:
    networks = f"{members} networks of " if members > 1 else "a network of "
    shape = f"{config.layers} x {config.hidden:,} hidden units ({estimate.parameters:,} parameters each)"
    if estimate.activation_bytes > estimate.weight_bytes and config.batch_size != 1:
        fix = "use a smaller --batch-size, a smaller --hidden or fewer --layers"
    else:
        fits = largest_hidden(config, n_inputs, n_outputs, n_train, members, limit)
        fix = f"use --hidden {fits} or less, or fewer --layers" if fits else "use a smaller --hidden or fewer --layers"
    return (f"training {networks}{shape} needs about {format_size(estimate.total)} "
            f"({format_size(estimate.weight_bytes)} weights, gradients and optimizer state, {format_size(estimate.activation_bytes)} activations), "
            f"more than the {format_size(limit)} it may use ({AVAILABLE_SHARE:.0%} of the memory available); {fix}")


def largest_hidden(config: Any, n_inputs: int, n_outputs: int, n_train: int, members: int, limit: int) -> int:
    """The widest hidden layer that fits in ``limit`` bytes with everything else unchanged (0: none)."""
    def fits(hidden: int) -> bool:
        return estimate_memory(config.replace(hidden=hidden), n_inputs, n_outputs, n_train, members).total <= limit

    low, high = 0, config.hidden
    while low < high:  # the estimate grows with the width: bisect for the last width that fits
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) else (low, middle - 1)
    return low


def available_memory(device: Any = None) -> int:
    """Bytes this process may still allocate: free GPU memory on a CUDA device, else the
    system's available memory capped by the address-space limit."""
    if device is not None and getattr(device, "type", str(device)) == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    return available_bytes()


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def max_workers() -> int:
    """The most local tuning workers: :data:`WORKERS_PER_CORE` per core."""
    return WORKERS_PER_CORE * cpu_cores()


def fitting_chunks(configs: list[Any], n_inputs: int, n_outputs: int, n_train: int, members_each: int = 1, available: int | None = None) -> list[list[int]]:
    """Indices of ``configs`` in consecutive chunks whose networks fit in memory when each
    chunk trains at once (a population), ``members_each`` networks per config (its CV folds),
    every one as wide and as deep as the chunk's widest and deepest."""
    limit = int((available_memory() if available is None else available) * AVAILABLE_SHARE)
    chunks: list[list[int]] = []
    for index, config in enumerate(configs):
        candidate = (chunks[-1] if chunks else []) + [index]
        widest = config.replace(hidden=max(configs[i].hidden for i in candidate), layers=max(configs[i].layers for i in candidate))
        if len(candidate) > 1 and estimate_memory(widest, n_inputs, n_outputs, n_train, members_each * len(candidate)).total <= limit:
            chunks[-1] = candidate
        else:
            chunks.append([index])
    return chunks
