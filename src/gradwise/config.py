"""One object that describes a training run.

The command line, the Python API and the tuner all build a :class:`TrainConfig` and hand it
to :func:`gradwise.fit`. It holds plain values only (numbers, strings, tuples), so it can be
saved as JSON inside a model bundle and rebuilt from there with :meth:`TrainConfig.from_dict`.

The defaults are a sound starting point for a small table: two hidden ReLU layers with He
initialization, inputs min-max normalized, Adam at 1e-3, mini-batches of 64.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import ConfigError

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "gelu")
INITS = ("normal", "xavier", "he", "torch")
NORMALIZERS = ("minmax", "standard", "none")
TASKS = ("classification", "regression")
DEVICES = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides how a model is built and trained (not which data it sees)."""

    # -- normalization (document section 2) --
    normalize: str = "minmax"
    # -- model architecture --
    layers: int = 2  # hidden layers
    hidden: int = 64  # units per hidden layer
    activation: str = "relu"
    init: str = "he"
    batch_norm: bool = False
    dropout: float = 0.0
    # -- optimizer (document section 3) --
    optimizer: str = "adam"  # gd | momentum | rmsprop | adam | torch:<ClassName>
    lr: float = 1e-3
    beta: float = 0.9  # momentum / RMSprop averaging
    beta1: float = 0.9  # Adam first moment
    beta2: float = 0.999  # Adam second moment
    eps: float = 1e-8
    lr_decay: str | None = None  # inverse_time:K | exponential:K | step:S:G | cosine
    weight_decay: float = 0.0
    clip_grad: float | None = None  # clip the global gradient norm at this value
    # -- gradient-descent variant: "full" (batch), 1 (stochastic) or B (mini-batch) --
    batch_size: int | str = 64
    epochs: int = 100
    patience: int | None = 15  # early stopping on validation loss; None disables it
    # -- run --
    seed: int = 0
    device: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)  # optimizer kwargs for torch:<Class>

    def __post_init__(self) -> None:
        validate(self)

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training option(s) {unknown}; valid options are {sorted(known)}")
        return cls(**values)

    def resolved_batch_size(self, n_train: int) -> int:
        """The batch size in examples: m for 'full' (batch gradient descent), else B capped at m."""
        if self.batch_size == "full":
            return n_train
        return min(int(self.batch_size), n_train)


def parse_batch_size(value: int | str) -> int | str:
    """Accept 'full' (batch GD), or a positive integer given as int or string."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("full", "batch", "all"):
            return "full"
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(
                f"--batch-size must be 'full' or a positive integer, got {value!r}"
            ) from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"--batch-size must be 'full' or a positive integer, got {value!r}")
    return value


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def is_finite_number(value: Any) -> bool:
    """A real int or float (not a bool), neither NaN nor infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _choice(name: str, value: Any, options: tuple[str, ...]) -> None:
    _require(value in options, f"--{name.replace('_', '-')} must be one of {', '.join(options)}; got {value!r}")


def validate(c: TrainConfig) -> None:
    """Reject absurd values with a message that names the option, the value and the rule."""
    _choice("normalize", c.normalize, NORMALIZERS)
    _choice("activation", c.activation, ACTIVATIONS)
    _choice("init", c.init, INITS)
    _choice("device", c.device, DEVICES)
    _require(isinstance(c.layers, int) and 0 <= c.layers <= 100, f"--layers must be an integer in [0, 100], got {c.layers!r}")
    _require(isinstance(c.hidden, int) and 1 <= c.hidden <= 100_000, f"--hidden must be an integer in [1, 100000], got {c.hidden!r}")
    _require(is_finite_number(c.dropout) and 0 <= c.dropout < 1, f"--dropout must be in [0, 1), got {c.dropout!r}")
    _require(is_finite_number(c.lr) and c.lr > 0, f"--lr must be a positive number, got {c.lr!r}; try 1e-3")
    for name in ("beta", "beta1", "beta2"):
        value = getattr(c, name)
        _require(is_finite_number(value) and 0 <= value < 1, f"--{name} must be in [0, 1), got {value!r}")
    _require(is_finite_number(c.eps) and c.eps > 0, f"--eps must be a positive number, got {c.eps!r}; try 1e-8")
    _require(is_finite_number(c.weight_decay) and c.weight_decay >= 0, f"--weight-decay must be >= 0, got {c.weight_decay!r}")
    _require(c.clip_grad is None or (is_finite_number(c.clip_grad) and c.clip_grad > 0), f"--clip-grad must be a positive number, got {c.clip_grad!r}")
    object.__setattr__(c, "batch_size", parse_batch_size(c.batch_size))
    _require(isinstance(c.epochs, int) and not isinstance(c.epochs, bool) and c.epochs >= 1, f"--epochs must be a positive integer, got {c.epochs!r}")
    _require(c.patience is None or (isinstance(c.patience, int) and c.patience >= 1), f"--patience must be a positive integer, got {c.patience!r}")
    _require(isinstance(c.seed, int), f"--seed must be an integer, got {c.seed!r}")
    _require(isinstance(c.optimizer, str) and c.optimizer != "", f"--optimizer must be a name, got {c.optimizer!r}")
    # A malformed --lr-decay fails here, when the configuration is built, not epochs later.
    from .optim.schedules import make_schedule

    make_schedule(c.lr_decay, c.lr, c.epochs)
