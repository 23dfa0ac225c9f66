"""What a training run hands back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import TrainConfig
from ..models.model import GradwiseModel
from .callbacks import EpochRecord


@dataclass
class FitResult:
    """The trained model (on the CPU), its per-epoch history and final metrics per split.

    ``metrics`` maps 'train', 'val' and 'test' to {'loss', 'accuracy'} for classification
    or {'loss', 'rmse', 'r2'} for regression (RMSE in the target's original units); a split
    with no rows maps to {}.
    """

    model: GradwiseModel
    config: TrainConfig
    history: list[EpochRecord]
    metrics: dict[str, dict[str, float]]
    stop_reason: str
    updates: int
    best_epoch: int | None
    seconds: float
    task: str

    @property
    def epochs_run(self) -> int:
        return len(self.history)

    @property
    def diverged(self) -> bool:
        return self.stop_reason.startswith("non-finite")

    def to_dict(self, history: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "task": self.task,
            "metrics": self.metrics,
            "stop_reason": self.stop_reason,
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "updates": self.updates,
            "seconds": self.seconds,
            "config": self.config.to_dict(),
        }
        if history:
            out["history"] = [record.to_dict() for record in self.history]
        return out
