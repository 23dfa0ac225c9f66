"""Hooks into the training loop, for the gradient monitor, the tuner and progress display.

A callback is any object with some of these methods; the loop calls those that exist:

- ``on_train_start(state)``: model and optimizer are built, nothing trained yet.
- ``on_after_backward(state, loss)``: gradients are in ``.grad``, the optimizer has not
  stepped. This is where a gradient monitor observes (document section 1).
- ``on_step_end(state)``: after ``optimizer.step()``.
- ``on_epoch_end(state, record)``: ``record`` is the epoch's :class:`EpochRecord`.
- ``on_train_end(state)``.

Any of them may raise :class:`StopTraining` to end the run early and cleanly (the result
then says why); other exceptions propagate, so the tuner's ``optuna.TrialPruned`` reaches
Optuna unchanged. ``on_step_end`` may also raise :class:`EndEpoch`: the epoch ends after
that step and is evaluated as usual, so a clock need not wait out an epoch that takes
minutes on a large table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch


class StopTraining(Exception):
    """Raised by a callback to end training early; the message becomes the stop reason."""


class EndEpoch(Exception):
    """Raised by ``on_step_end`` to end the current epoch after this step: the rows it has
    not reached yet are left out of it, its validation follows, then ``on_epoch_end``."""


@dataclass
class EpochRecord:
    """What one epoch measured. Metrics are in the target's original units."""

    epoch: int
    train_loss: float
    val_loss: float | None
    train_metrics: dict[str, float]
    val_metrics: dict[str, float]
    lr: float
    updates: int  # optimizer steps taken so far in the run
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "train": self.train_metrics,
            "val": self.val_metrics,
            "lr": self.lr,
            "updates": self.updates,
            "seconds": self.seconds,
        }


@dataclass
class TrainState:
    """The live objects of a run, handed to every callback."""

    model: torch.nn.Module  # the network being trained (inputs already normalized)
    optimizer: torch.optim.Optimizer
    config: Any  # TrainConfig
    task: str
    epoch: int = 0
    step: int = 0  # optimizer steps so far
    history: list[EpochRecord] = field(default_factory=list)


class Callback(Protocol):  # pragma: no cover - documentation of the optional methods
    def on_train_start(self, state: TrainState) -> None: ...

    def on_after_backward(self, state: TrainState, loss: torch.Tensor) -> None: ...

    def on_step_end(self, state: TrainState) -> None: ...

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> None: ...

    def on_train_end(self, state: TrainState) -> None: ...


def dispatch(callbacks: list[Any], event: str, *args: Any) -> None:
    """Call ``event`` on every callback that defines it."""
    for callback in callbacks:
        method = getattr(callback, event, None)
        if method is not None:
            method(*args)


def step_ended(callbacks: list[Any], state: TrainState) -> bool:
    """``on_step_end`` on every callback (one that ends the epoch does not keep the others from
    seeing the step); whether any of them raised :class:`EndEpoch`."""
    end = False
    for callback in callbacks:
        method = getattr(callback, "on_step_end", None)
        if method is None:
            continue
        try:
            method(state)
        except EndEpoch:
            end = True
    return end


class TimeLimit:
    """Ends training once ``seconds`` have passed since the clock started (at construction,
    or at ``on_train_start``): the epoch running then ends after its current step
    (:class:`EndEpoch`), is evaluated, and training stops with the best weights so far, as
    with early stopping. Why not at the end of that epoch: one epoch of a wide network with
    small batches on ggplot2's diamonds (37,758 training rows, batch 16, 4 x 512) took 25 s
    on a 2-core CPU, and a table ten times that size would take minutes past the limit.
    ``reached()`` asks the same clock (populations end their members by it)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.monotonic()

    def on_train_start(self, state: TrainState) -> None:
        self.started = time.monotonic()

    def reached(self) -> bool:
        return time.monotonic() - self.started >= self.seconds

    def reason(self, epoch: int) -> str:
        return f"time limit: {self.seconds:.0f} s reached in epoch {epoch}"

    def on_step_end(self, state: TrainState) -> None:
        if self.reached():
            raise EndEpoch()

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> None:
        if self.reached():
            raise StopTraining(self.reason(record.epoch))
