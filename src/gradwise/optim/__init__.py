"""The document's optimizers (section 3) and learning-rate decay.

``GD``, ``Momentum``, ``RMSprop`` and ``Adam`` are ``torch.optim.Optimizer`` subclasses;
``gd``, ``momentum``, ``rmsprop`` and ``adam`` are their stateless updates over lists of
tensors. ``build_optimizer`` turns a TrainConfig into one of them (or any torch.optim
class), ``make_schedule`` turns ``--lr-decay`` into a function of the epoch.
"""

from .adam import Adam, adam
from .base import GradwiseOptimizer
from .build import OPTIMIZERS, build_optimizer
from .gd import GD, gd
from .momentum import Momentum, momentum
from .rmsprop import RMSprop, rmsprop
from .schedules import constant, cosine, exponential, inverse_time, make_schedule, step

__all__ = [
    "GD", "Momentum", "RMSprop", "Adam", "GradwiseOptimizer",
    "gd", "momentum", "rmsprop", "adam",
    "OPTIMIZERS", "build_optimizer", "make_schedule",
    "constant", "inverse_time", "exponential", "step", "cosine",
]
