"""Learning-rate decay as pure functions of the (0-based) epoch.

The training loop asks ``schedule(epoch)`` for the rate at the start of each epoch and writes
it into the optimizer; nothing here holds state, so a schedule can be evaluated anywhere
(plots, tests, a resumed run) and always gives the same value.

    inverse_time:K      α / (1 + K·epoch)
    exponential:K       α · K^epoch
    step:S:G            α · G^⌊epoch / S⌋   (multiply by G every S epochs)
    cosine              α · (1 + cos(π·epoch / epochs)) / 2
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable

from ..errors import ConfigError

Schedule = Callable[[int], float]

SYNTAX = "inverse_time:K, exponential:K, step:EVERY:GAMMA or cosine (e.g. --lr-decay exponential:0.95)"


def constant(epoch: int, lr: float) -> float:
    return lr


def inverse_time(epoch: int, lr: float, k: float) -> float:
    """α / (1 + k·epoch)."""
    return lr / (1.0 + k * epoch)


def exponential(epoch: int, lr: float, k: float) -> float:
    """α · k^epoch."""
    return lr * k**epoch


def step(epoch: int, lr: float, every: int, gamma: float) -> float:
    """α · γ^⌊epoch / every⌋: the rate is multiplied by γ after every ``every`` epochs."""
    return lr * gamma ** (epoch // every)


def cosine(epoch: int, lr: float, epochs: int) -> float:
    """α · (1 + cos(π·epoch/epochs)) / 2: from α at epoch 0 towards 0 at ``epochs``."""
    return lr * 0.5 * (1.0 + math.cos(math.pi * min(epoch, epochs) / epochs))


def _fail(spec: str, rule: str) -> ConfigError:
    return ConfigError(f"--lr-decay {spec!r}: {rule}; expected {SYNTAX}")


def _number(spec: str, text: str, rule: str, ok: Callable[[float], bool]) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _fail(spec, f"{text!r} is not a number") from None
    if not (math.isfinite(value) and ok(value)):
        raise _fail(spec, f"{rule}, got {text}")
    return value


def _integer(spec: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise _fail(spec, f"EVERY must be a positive integer, got {text!r}") from None
    if value < 1:
        raise _fail(spec, f"EVERY must be a positive integer, got {text}")
    return value


def _parse(spec: str, lr: float, epochs: int) -> Schedule:
    name, *args = spec.strip().lower().split(":")
    arity = {"inverse_time": 1, "exponential": 1, "step": 2, "cosine": 0}
    if name not in arity:
        raise _fail(spec, f"unknown decay {name!r}")
    if len(args) != arity[name]:
        raise _fail(spec, f"{name} takes {arity[name]} value(s), got {len(args)}")
    if name == "inverse_time":
        return partial(inverse_time, lr=lr, k=_number(spec, args[0], "K must be >= 0", lambda k: k >= 0))
    if name == "exponential":
        return partial(exponential, lr=lr, k=_number(spec, args[0], "K must be in (0, 1]", lambda k: 0 < k <= 1))
    if name == "step":
        gamma = _number(spec, args[1], "GAMMA must be in (0, 1]", lambda g: 0 < g <= 1)
        return partial(step, lr=lr, every=_integer(spec, args[0]), gamma=gamma)
    return partial(cosine, lr=lr, epochs=epochs)


def make_schedule(spec: str | None, base_lr: float, total_epochs: int) -> Schedule:
    """The learning rate for each 0-based epoch; ``spec`` None (or "none") keeps it constant.

    >>> s = make_schedule("step:10:0.5", 0.1, 100)
    >>> s(0), s(9), s(10), s(25)
    (0.1, 0.1, 0.05, 0.025)
    """
    if spec is not None and not isinstance(spec, str):
        raise ConfigError(f"--lr-decay must be text, got {spec!r}; expected {SYNTAX}")
    if spec is None or spec.strip().lower() in ("", "none", "constant"):
        return partial(constant, lr=base_lr)
    if not (isinstance(total_epochs, int) and total_epochs >= 1):
        raise ConfigError(f"total_epochs must be a positive integer, got {total_epochs!r}")
    return _parse(spec, base_lr, total_epochs)
