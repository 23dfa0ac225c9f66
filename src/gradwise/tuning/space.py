"""The hyperparameters to tune, ranked as the document ranks them (EQUATIONS.md section 4).

=========================  =============  ==========================================
hyperparameter             importance     range searched (a practitioner's choice)
=========================  =============  ==========================================
learning rate α (``lr``)   high           log-uniform, family-dependent (Adam 1e-4..0.3)
momentum β (``beta``)      medium         1 − β log-uniform in [1e-3, 0.1], so β in [0.9, 0.999]
hidden units (``hidden``)  medium         log-integer in [8, 512]
mini-batch (``batch_size``) medium        log-integer in [16, 512]
layers (``layers``)        low            integer in [1, 4]
α decay (``lr_decay``)     low            inverse-time rate k, log-uniform in [1e-3, 1]
Adam β1, β2, ε             never          off unless a --space file enables them
=========================  =============  ==========================================

Momentum β only exists for the ``momentum`` and ``rmsprop`` families; with ``adam`` the
document's "almost never" row (β1, β2, ε) takes its place and is off by default.

Each :class:`Param` turns an Optuna ``trial`` into one :class:`~gradwise.config.TrainConfig`
value with the usual ``trial.suggest_float(..., log=True)`` / ``suggest_int`` /
``suggest_categorical`` calls; β and the Adam betas are sampled as ``1 - β`` on a log scale
because the average's window 1/(1 − β) is what matters (0.9 → 10 steps, 0.999 → 1000).

Example::

    space = default_space("momentum")
    def objective(trial):
        config = TrainConfig().replace(**space.suggest(trial, ["lr", "beta"]))
        ...
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ..config import is_finite_number
from ..errors import ConfigError

TIERS = ("high", "medium", "low", "never")
FAMILIES = ("gd", "momentum", "rmsprop", "adam")
KINDS = ("float", "int", "categorical")
# How a sampled number becomes a TrainConfig value (and back, for defaults and importance).
TRANSFORMS = ("identity", "one_minus", "inverse_time")


@dataclass(frozen=True)
class Param:
    """One searchable hyperparameter: its range, its default and the document's importance."""

    name: str  # the TrainConfig field it sets
    kind: str = "float"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    default: Any = None  # the TrainConfig value used while this parameter is not searched
    tier: str = "low"
    transform: str = "identity"
    enabled: bool = True

    def __post_init__(self) -> None:
        _check_param(self)

    def suggest(self, trial: Any) -> Any:
        """Ask ``trial`` for this parameter; returns the TrainConfig value."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            raw = trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        else:
            raw = trial.suggest_float(self.name, self.low, self.high, log=self.log)
        return to_config_value(self, raw)

    def narrowed(self, center: Any, factor: float) -> "Param":
        """This parameter searched within ×/÷ ``factor`` of ``center`` (a config value).

        Log-scale floats and integers only (α, 1 − β, hidden units, batch size); any other
        parameter keeps its whole range."""
        if self.kind == "int" and self.log:
            return self.within(math.floor(center / factor), math.ceil(center * factor))
        if self.kind != "float" or not self.log:
            return self
        raw = to_raw_value(self, center)
        return self.within(raw / factor, raw * factor)

    def within(self, low: float, high: float) -> "Param":
        """This range cut to [low, high]; where they do not meet, the end of this range nearer
        to them (so a range pinned to one point stays pinned)."""
        low, high = max(self.low, low), min(self.high, high)
        if low > high:
            point = self.high if low > self.high else self.low
            low = high = point
        if self.kind == "int":
            low, high = int(low), int(high)
        return dataclasses.replace(self, low=low, high=high)

    def pinned(self, value: Any) -> "Param | None":
        """This parameter with its range shrunk to ``value`` (a config value), or None where a
        single point cannot stand for it: a categorical (Optuna wants the same choices in every
        trial) or a value outside the sampled scale, like "no α decay"."""
        if self.kind == "categorical" or value is None:
            return None
        raw = to_raw_value(self, value)
        return dataclasses.replace(self, low=raw, high=raw)

    def distribution(self) -> Any:
        """The Optuna distribution of the raw (sampled) value."""
        import optuna

        if self.kind == "categorical":
            return optuna.distributions.CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return optuna.distributions.IntDistribution(int(self.low), int(self.high), log=self.log)
        return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["choices"] = list(self.choices)
        return out


def to_config_value(param: Param, raw: Any) -> Any:
    """Sampled number → TrainConfig value (β = 1 − x; decay k → 'inverse_time:k')."""
    if param.transform == "one_minus":
        return 1.0 - raw
    if param.transform == "inverse_time":
        return f"inverse_time:{raw:.6g}"
    return raw


def to_raw_value(param: Param, value: Any) -> Any:
    """TrainConfig value → sampled number; None (no decay) maps to the range's low end."""
    if param.transform == "one_minus":
        return 1.0 - value
    if param.transform == "inverse_time":
        if value is None:
            return param.low
        return float(str(value).split(":", 1)[1])
    return value


def _check_param(p: Param) -> None:
    where = f"search-space parameter {p.name!r}"
    if p.kind not in KINDS:
        raise ConfigError(f"{where}: type must be one of {', '.join(KINDS)}; got {p.kind!r}")
    if p.tier not in TIERS:
        raise ConfigError(f"{where}: tier must be one of {', '.join(TIERS)}; got {p.tier!r}")
    if p.transform not in TRANSFORMS:
        raise ConfigError(f"{where}: transform must be one of {', '.join(TRANSFORMS)}; got {p.transform!r}")
    if p.kind == "categorical":
        if not p.choices:
            raise ConfigError(f"{where}: a categorical parameter needs a non-empty 'choices' list")
        return
    if not (is_finite_number(p.low) and is_finite_number(p.high)):
        raise ConfigError(f"{where}: needs finite 'low' and 'high', got low={p.low!r}, high={p.high!r}")
    if p.low > p.high:
        raise ConfigError(f"{where}: 'low' must not exceed 'high', got low={p.low!r} > high={p.high!r}; swap them")
    if p.log and p.low <= 0:
        raise ConfigError(f"{where}: a log-scale range must be positive, got low={p.low!r}; raise it or set log = false")


# The learning-rate range depends on the family: adaptive methods divide by sqrt(S), so their
# useful α is smaller than plain gradient descent's.
_LR_RANGE = {"gd": (1e-3, 1.0), "momentum": (1e-3, 1.0), "rmsprop": (1e-4, 0.1), "adam": (1e-4, 0.3)}


def default_space(family: str = "adam") -> "SearchSpace":
    """The document's list with the ranges above, for one optimizer family."""
    if family not in FAMILIES:
        raise ConfigError(f"--optimizer must be one of {', '.join(FAMILIES)} for tuning; got {family!r}")
    low, high = _LR_RANGE[family]
    params = [Param("lr", low=low, high=high, log=True, default=1e-3 if family in ("adam", "rmsprop") else 0.1, tier="high")]
    if family in ("momentum", "rmsprop"):
        params.append(Param("beta", low=1e-3, high=0.1, log=True, default=0.9, tier="medium", transform="one_minus"))
    params += [
        Param("hidden", kind="int", low=8, high=512, log=True, default=64, tier="medium"),
        Param("batch_size", kind="int", low=16, high=512, log=True, default=64, tier="medium"),
        Param("layers", kind="int", low=1, high=4, default=2, tier="low"),
        Param("lr_decay", low=1e-3, high=1.0, log=True, default=None, tier="low", transform="inverse_time"),
    ]
    if family == "adam":
        params += [
            Param("beta1", low=0.01, high=0.3, log=True, default=0.9, tier="never", transform="one_minus", enabled=False),
            Param("beta2", low=1e-4, high=0.01, log=True, default=0.999, tier="never", transform="one_minus", enabled=False),
            Param("eps", low=1e-10, high=1e-6, log=True, default=1e-8, tier="never", enabled=False),
        ]
    return SearchSpace(family=family, params={p.name: p for p in params})


@dataclass(frozen=True)
class SearchSpace:
    """Named :class:`Param` objects plus fixed TrainConfig values shared by every trial."""

    family: str = "adam"
    params: dict[str, Param] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)  # e.g. {"epochs": 60, "patience": 10}

    def searched(self, tiers: tuple[str, ...] = TIERS) -> list[Param]:
        """Enabled parameters of the given tiers, in the document's order of importance."""
        chosen = [p for p in self.params.values() if p.enabled and p.tier in tiers]
        return sorted(chosen, key=lambda p: TIERS.index(p.tier))

    def defaults(self) -> dict[str, Any]:
        """TrainConfig values for the untuned run: the family, fixed values, parameter defaults."""
        values = {"optimizer": self.family, **self.fixed}
        values.update({p.name: p.default for p in self.params.values()})
        return values

    def suggest(self, trial: Any, names: list[str] | None = None) -> dict[str, Any]:
        """``trial.suggest_*`` for the named (default: all enabled) parameters."""
        chosen = self.searched() if names is None else [self.params[n] for n in names]
        return {p.name: p.suggest(trial) for p in chosen}

    def to_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.family,
            "params": {name: p.to_dict() for name, p in self.params.items()},
            "fixed": dict(self.fixed),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SearchSpace":
        params = {name: Param(**{**spec, "choices": tuple(spec.get("choices", ()))}) for name, spec in data["params"].items()}
        return cls(family=data["optimizer"], params=params, fixed=dict(data.get("fixed", {})))
