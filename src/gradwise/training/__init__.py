"""The training loop: one loop for batch, stochastic and mini-batch gradient descent."""

from .callbacks import EndEpoch, EpochRecord, StopTraining, TrainState
from .comparison import compare_optimizers
from .loop import build_model, fit, resolve_device
from .metrics import evaluate, loss_function
from .result import FitResult

__all__ = ["EndEpoch", "EpochRecord", "FitResult", "StopTraining", "TrainState", "build_model", "compare_optimizers", "evaluate", "fit", "loss_function", "resolve_device"]
