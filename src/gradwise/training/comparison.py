"""Every optimizer and gradient-descent variant on the same problem, measured side by side.

Each run starts from the same initial weights (the config's seed), sees the same split and
the same batch order, and differs only in the optimizer, its learning rate and the batch
size: the document's section 3 made visible. Plain GD crawls or zig-zags, momentum damps
the oscillation, RMSprop and Adam scale each direction's step.

Measures, per run:

- final train / val loss: evaluated on the whole split at the end (best weights restored);
- epochs / updates to target: the first epoch whose mean training loss is at or below the
  target loss (by default the median of the runs' final training losses, so the faster
  half reach it), and the optimizer steps taken by then;
- oscillation: of all the movement of the per-epoch training loss curve, the share that
  went up: Σ max(0, ℓ[e+1] − ℓ[e]) / Σ |ℓ[e+1] − ℓ[e]|. 0 is a steady descent, 0.5 as
  much up as down. Per epoch rather than per update, because a mini-batch's loss also
  moves with the examples it happens to hold, which would hide what the optimizer does;
- zig-zag: the share of consecutive updates whose directions disagree (Δθ_t · Δθ_t-1 < 0):
  the path itself. Gradient descent keeps undoing part of its last step (most of all on
  single examples); momentum's averaged step V keeps going the same way.

``gradwise compare`` is this module behind command-line options.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import torch

from ..config import TrainConfig
from ..data import Splits
from .loop import fit

MAX_CURVE_POINTS = 2000


def compare_optimizers(base: TrainConfig, splits: Splits, optimizers: Sequence[str | tuple[str, float]], batch_sizes: Sequence[int | str] = ("full", 1, 64),
                       target_loss: float | None = None, curves: bool = False) -> dict[str, Any]:
    """Train ``base`` once per optimizer and batch size; returns the target and the runs.

    ``optimizers``: names (trained at ``base.lr``) or ``(name, lr)`` pairs. ``curves``: keep
    each run's per-epoch losses and learning rate and its per-update losses (thinned to at
    most :data:`MAX_CURVE_POINTS`), as the report and ``--json`` show them.
    """
    pairs = [(o, base.lr) if isinstance(o, str) else (o[0], float(o[1])) for o in optimizers]
    # One untimed full-batch epoch first, so the first run's time does not include the
    # process's one-off start-up costs (lazy imports, thread pools, allocator growth).
    fit(base.replace(epochs=1, batch_size="full", patience=None), splits)
    runs = [run_one(base, splits, name, lr, size) for name, lr in pairs for size in batch_sizes]
    target = target_loss if target_loss is not None else default_target(runs)
    return {"target_loss": target, "runs": [finish(r, target, curves) for r in runs]}


def variant_name(batch_size: int | str, n_train: int) -> str:
    """The document's name for the gradient-descent variant a batch size gives."""
    if batch_size == "full" or int(batch_size) >= n_train:
        return "batch"
    return "stochastic" if int(batch_size) == 1 else f"mini-batch {batch_size}"


def oscillation(losses: list[float]) -> float | None:
    """Share of the curve's total movement that went up (0 steady descent, 0.5 pure noise)."""
    steps = [b - a for a, b in zip(losses, losses[1:]) if math.isfinite(a) and math.isfinite(b)]
    moved = sum(abs(d) for d in steps)
    return sum(d for d in steps if d > 0) / moved if moved > 0 else None


def to_target(history: list, target: float) -> tuple[int | None, int | None]:
    """(epoch, updates) when the epoch's training loss first reached ``target``."""
    for record in history:
        if math.isfinite(record.train_loss) and record.train_loss <= target:
            return record.epoch, record.updates
    return None, None


class UpdateLosses:
    """Callback that keeps the training loss of every update."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_after_backward(self, state: Any, loss: torch.Tensor) -> None:
        self.losses.append(float(loss.detach()))


class StepReversals:
    """Callback that counts consecutive updates pointing against each other (cosine < 0).

    This is the zig-zag of the document's section 3: plain gradient descent, and more so
    its noisy stochastic form, keeps undoing part of its last step; momentum averages the
    steps, so consecutive ones agree. Counted on the device, read once at the end.
    """

    def on_train_start(self, state: Any) -> None:
        self._params = [p for p in state.model.parameters() if p.requires_grad]
        self._before = self._flat()
        self._last: torch.Tensor | None = None
        self._reversals = torch.zeros((), device=self._before.device)
        self.pairs = 0

    def _flat(self) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([p.detach().reshape(-1) for p in self._params])

    def on_step_end(self, state: Any) -> None:
        after = self._flat()
        step = after - self._before
        if self._last is not None:
            self._reversals += torch.dot(step, self._last) < 0
            self.pairs += 1
        self._before, self._last = after, step

    def share(self) -> float | None:
        """Share of consecutive update pairs that reversed direction (None with < 2 updates)."""
        return float(self._reversals) / self.pairs if self.pairs else None


def thin(values: list[float], limit: int = MAX_CURVE_POINTS) -> tuple[list[float], int]:
    """Every k-th value so at most ``limit`` remain, and k."""
    stride = max(1, math.ceil(len(values) / limit))
    return values[::stride], stride


def run_one(base: TrainConfig, splits: Splits, optimizer: str, lr: float, batch_size: int | str) -> dict[str, Any]:
    config = base.replace(optimizer=optimizer, lr=lr, batch_size=batch_size)
    recorder, reversals = UpdateLosses(), StepReversals()
    result = fit(config, splits, callbacks=[recorder, reversals])
    return {
        "optimizer": optimizer,
        "lr": lr,
        "batch_size": config.batch_size,
        "variant": variant_name(config.batch_size, len(splits.train)),
        "final_train_loss": result.metrics["train"].get("loss"),
        "final_val_loss": result.metrics["val"].get("loss"),
        "epochs_run": result.epochs_run,
        "updates": result.updates,
        "seconds": result.seconds,
        "oscillation": oscillation([record.train_loss for record in result.history]),
        "zigzag": reversals.share(),
        "stop_reason": result.stop_reason,
        "_history": result.history,
        "_update_losses": recorder.losses,
    }


def default_target(runs: list[dict[str, Any]]) -> float | None:
    """The median of the runs' finite final training losses: the faster half reach it."""
    finals = [r["final_train_loss"] for r in runs if r["final_train_loss"] is not None and math.isfinite(r["final_train_loss"])]
    return statistics.median(finals) if finals else None


def finish(run: dict[str, Any], target: float | None, with_curves: bool) -> dict[str, Any]:
    history, losses = run.pop("_history"), run.pop("_update_losses")
    run["epochs_to_target"], run["updates_to_target"] = to_target(history, target) if target is not None else (None, None)
    if with_curves:
        thinned, stride = thin(losses)
        run["curves"] = {
            "epoch_train_loss": [r.train_loss for r in history],
            "epoch_val_loss": [r.val_loss for r in history],
            "lr": [r.lr for r in history],
            "update_loss": thinned,
            "update_loss_stride": stride,
        }
    return run
