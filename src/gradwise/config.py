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
from typing import Annotated, Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field

from .errors import ConfigError
from .validation import option_name, rule, validated

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


def is_finite_number(value: Any) -> bool:
    """A real int or float (not a bool), neither NaN nor infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


MAX_LAYERS = 100
MAX_HIDDEN = 100_000
MAX_SEED = 2**32 - 1  # NumPy's and torch's seeds are unsigned 32-bit integers
_POSITIVE_INT = Annotated[int, Field(ge=1)]


class TrainConfigSchema(BaseModel):
    """The type and range of every TrainConfig field (strict: "5" is not 5, True is not 1)."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

    normalize: Literal[NORMALIZERS] = rule("one of " + ", ".join(NORMALIZERS))
    layers: int = rule(f"an integer in [0, {MAX_LAYERS}]", ge=0, le=MAX_LAYERS)
    hidden: int = rule(f"an integer in [1, {MAX_HIDDEN}]", ge=1, le=MAX_HIDDEN)
    activation: Literal[ACTIVATIONS] = rule("one of " + ", ".join(ACTIVATIONS))
    init: Literal[INITS] = rule("one of " + ", ".join(INITS))
    batch_norm: bool = rule("true or false")
    dropout: float = rule("a number in [0, 1)", ge=0, lt=1)
    optimizer: str = rule("an optimizer name (gd, momentum, rmsprop, adam or torch:NAME)", min_length=1)
    lr: float = rule("a positive number", "try 1e-3", gt=0)
    beta: float = rule("a number in [0, 1)", ge=0, lt=1)
    beta1: float = rule("a number in [0, 1)", ge=0, lt=1)
    beta2: float = rule("a number in [0, 1)", ge=0, lt=1)
    eps: float = rule("a positive number", "try 1e-8", gt=0)
    lr_decay: str | None = rule("text such as inverse_time:0.1, exponential:0.95, step:10:0.5 or cosine")
    weight_decay: float = rule("a number >= 0", ge=0)
    clip_grad: Annotated[float, Field(gt=0)] | None = rule("a positive number")
    batch_size: Literal["full"] | _POSITIVE_INT = rule("'full' or a positive integer")
    epochs: int = rule("a positive integer", ge=1)
    patience: _POSITIVE_INT | None = rule("a positive integer (0 on the command line disables it)")
    seed: int = rule(f"an integer in [0, {MAX_SEED}]", "try --seed 0", ge=0, le=MAX_SEED)
    device: Literal[DEVICES] = rule("one of " + ", ".join(DEVICES))
    extra: dict[str, Any] = rule("a table of keyword arguments for the torch optimizer")


def validate(c: TrainConfig) -> None:
    """Reject absurd values with a message that names the option, the value and the rule."""
    object.__setattr__(c, "batch_size", parse_batch_size(c.batch_size))
    validated(TrainConfigSchema, {f.name: getattr(c, f.name) for f in fields(c)})
    # A malformed --lr-decay fails here, when the configuration is built, not epochs later.
    from .optim.schedules import make_schedule

    make_schedule(c.lr_decay, c.lr, c.epochs)


def check_values(values: dict[str, Any], name_of: Callable[[str], str] = option_name) -> None:
    """Check some TrainConfig values on their own (a --space file's, a stored study's); the
    message names each through ``name_of``, e.g. ``--space fixed.epochs``."""
    defaults = TrainConfig().to_dict()
    for name, value in values.items():
        try:
            value = parse_batch_size(value) if name == "batch_size" else value
        except ConfigError:
            pass  # the schema below words the message with name_of
        validated(TrainConfigSchema, {**defaults, name: value}, name_of)
        if name == "lr_decay":
            from .optim.schedules import make_schedule

            make_schedule(value, defaults["lr"], defaults["epochs"])
