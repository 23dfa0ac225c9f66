"""The document's optimizers (section 3) and learning-rate decay.

``GD``, ``Momentum``, ``RMSprop`` and ``Adam`` are ``torch.optim.Optimizer`` subclasses;
``gd``, ``momentum``, ``rmsprop`` and ``adam`` are their stateless updates over lists of
tensors. ``build_optimizer`` turns a TrainConfig into one of them (or any torch.optim
class), ``make_schedule`` turns ``--lr-decay`` into a function of the epoch.

Every public name is imported on first use (PEP 562): building a TrainConfig checks its
``--lr-decay`` with :mod:`.schedules`, which needs no torch, and the command line's
``--help`` builds one for its defaults.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .._lazy import lazy_exports

# public name -> the submodule that defines it
_HOMES = {
    "Adam": ".adam", "adam": ".adam",
    "GradwiseOptimizer": ".base",
    "OPTIMIZERS": ".build", "build_optimizer": ".build",
    "GD": ".gd", "gd": ".gd",
    "Momentum": ".momentum", "momentum": ".momentum",
    "RMSprop": ".rmsprop", "rmsprop": ".rmsprop",
    **dict.fromkeys(("constant", "cosine", "exponential", "inverse_time", "make_schedule", "step"), ".schedules"),
}

__all__ = [
    "GD", "Momentum", "RMSprop", "Adam", "GradwiseOptimizer",
    "gd", "momentum", "rmsprop", "adam",
    "OPTIMIZERS", "build_optimizer", "make_schedule",
    "constant", "inverse_time", "exponential", "step", "cosine",
]


# Four submodules share their name with the update they define (``adam.adam``). Loaded
# eagerly, the package's own import rebound each name to the function; loaded lazily, the
# import system binds a submodule to the package attribute of its name whenever some code
# imports it, so the package keeps the function instead (see _Package).
_NAMED_LIKE_MODULES = ("adam", "gd", "momentum", "rmsprop")


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _NAMED_LIKE_MODULES and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
