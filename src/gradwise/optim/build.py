"""From a TrainConfig to an optimizer: the one place option names meet optimizer arguments.

``config.optimizer`` is gd, momentum, rmsprop, adam, or ``torch:NAME`` for any class in
``torch.optim``. ``config.extra`` passes further keyword arguments and wins over the rest.

Default for ``adam``: Kingma and Ba's form (bias correction, ε outside the root), because it
is what practitioners tune against and it makes early steps full size; pass
``extra={"bias_correction": False, "eps_inside_sqrt": True}`` for the document's form.
``rmsprop`` keeps the document's ε inside the root (``extra={"eps_inside_sqrt": False}``
gives torch's).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable

import torch

from ..errors import ConfigError
from .adam import Adam
from .gd import GD
from .momentum import Momentum
from .rmsprop import RMSprop


def _gd(c: Any) -> dict[str, Any]:
    return {"lr": c.lr, "weight_decay": c.weight_decay}


def _momentum(c: Any) -> dict[str, Any]:
    return {"lr": c.lr, "beta": c.beta, "weight_decay": c.weight_decay}


def _rmsprop(c: Any) -> dict[str, Any]:
    return {"lr": c.lr, "beta": c.beta, "eps": c.eps, "weight_decay": c.weight_decay}


def _adam(c: Any) -> dict[str, Any]:
    return {"lr": c.lr, "betas": (c.beta1, c.beta2), "eps": c.eps, "weight_decay": c.weight_decay,
            "bias_correction": True, "eps_inside_sqrt": False}


# name -> (class, the arguments a config gives it)
OPTIMIZERS: dict[str, tuple[type, Callable[[Any], dict[str, Any]]]] = {
    "gd": (GD, _gd),
    "momentum": (Momentum, _momentum),
    "rmsprop": (RMSprop, _rmsprop),
    "adam": (Adam, _adam),
}


def _accepted(cls: type) -> set[str]:
    return {name for name in inspect.signature(cls.__init__).parameters if name not in ("self", "params")}


def _torch_class(name: str) -> type:
    cls = getattr(torch.optim, name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)) or cls is torch.optim.Optimizer:
        valid = sorted(n for n, v in vars(torch.optim).items()
                       if isinstance(v, type) and issubclass(v, torch.optim.Optimizer) and v is not torch.optim.Optimizer)
        raise ConfigError(f"--optimizer torch:{name}: torch.optim has no optimizer class {name!r}; "
                          f"valid names are {', '.join(valid)}")
    return cls


def _torch_kwargs(cls: type, c: Any) -> dict[str, Any]:
    """lr always; betas and eps where the class takes them in our sense (a pair, a number);
    weight decay only when set, so a class's own default (AdamW's 0.01) stays."""
    defaults = {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()}
    kwargs: dict[str, Any] = {"lr": c.lr}
    if isinstance(defaults.get("betas"), tuple) and len(defaults["betas"]) == 2:
        kwargs["betas"] = (c.beta1, c.beta2)
    if isinstance(defaults.get("eps"), float):
        kwargs["eps"] = c.eps
    if "weight_decay" in defaults and c.weight_decay:
        kwargs["weight_decay"] = c.weight_decay
    return kwargs


# torch.optim classes the training loop cannot drive, and why
UNSUPPORTED = {
    "LBFGS": "it needs a closure that re-evaluates the loss, and gradwise's loop calls step() without one",
    "SparseAdam": "it needs sparse gradients, and an MLP's are dense",
}


def _construct(cls: type, params: Iterable, kwargs: dict[str, Any], label: str) -> torch.optim.Optimizer:
    unknown = sorted(set(kwargs) - _accepted(cls))
    if unknown:
        raise ConfigError(f"--optimizer {label} takes no argument(s) {unknown}; "
                          f"it accepts {sorted(_accepted(cls))}")
    try:
        return cls(params, **kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:  # torch's own checks, e.g. a bad betas
        raise ConfigError(f"--optimizer {label}: {error}") from None


def build_optimizer(config: Any, params: Iterable) -> torch.optim.Optimizer:
    """The optimizer ``config`` names, over ``params`` (tensors or param-group dicts)."""
    name = config.optimizer.strip()
    extra = dict(config.extra or {})
    if name.lower().startswith("torch:"):
        cls = _torch_class(name[len("torch:"):])
        if cls.__name__ in UNSUPPORTED:
            raise ConfigError(f"--optimizer {name} cannot be used: {UNSUPPORTED[cls.__name__]}; try torch:Adam or torch:SGD")
        return _construct(cls, params, {**_torch_kwargs(cls, config), **extra}, name)
    if name.lower() not in OPTIMIZERS:
        raise ConfigError(f"--optimizer must be one of {', '.join(OPTIMIZERS)} or torch:NAME "
                          f"(e.g. torch:AdamW), got {name!r}")
    cls, arguments = OPTIMIZERS[name.lower()]
    return _construct(cls, params, {**arguments(config), **extra}, name.lower())
