"""Run an optimizer's single-tensor reference update through ``torch.compile``.

Why: on a CPU, an eager update makes one pass over memory per operation (Adam needs about
six), while Inductor fuses the whole update into one loop that reads θ, dθ, V, S once and
writes θ, V, S once, which is what ``torch.optim.Adam(fused=True)`` does by hand. Compiling
the reference itself means the fast path cannot drift from the equations it is tested
against. Measured on a 2-core CPU in benchmarks/optim_step.py.

Why not always: compiling costs seconds (more without Inductor's on-disk cache) and needs a
C++ compiler, so the automatic choice compiles only large parameter groups, and any failure
falls back to the eager ``foreach`` path with one warning. ``GRADWISE_COMPILE=0`` turns
compilation off.
"""

from __future__ import annotations

import functools
import os
import warnings
from typing import Any, Callable

import torch

# "auto" compiles a group only from this many elements. A first compile takes 5-20 s on a
# 2-core CPU (about 1 s from Inductor's disk cache), and at 1M parameters it saves about
# 10 ms a step over foreach Adam (benchmarks/optim_step.py), so it pays back within a
# few thousand steps; the small MLPs of tabular work would never repay it.
AUTO_COMPILE_MIN_NUMEL = 1 << 19

IMPLEMENTATIONS = ("auto", "reference", "foreach", "compiled")

# Inductor re-checks every input's sizes and strides on each call (about 3 µs a tensor);
# the optimizer hands it its own state tensors, whose layout it created, so skip that.
_INDUCTOR_OPTIONS = {"size_asserts": False}

_compiled: dict[Callable, Callable] = {}
_failure: list[str] = []  # the first compile error, once one happened


def compile_allowed() -> bool:
    """False after a compile failure, or when GRADWISE_COMPILE=0."""
    return not _failure and os.environ.get("GRADWISE_COMPILE", "1") != "0"


def choose(impl: str, numel: int, compile_pays: bool) -> str:
    """Resolve ``auto`` to a concrete path for a group of ``numel`` elements."""
    if impl == "compiled" and not compile_allowed():
        return "foreach"
    if impl != "auto":
        return impl
    if compile_pays and numel >= AUTO_COMPILE_MIN_NUMEL and compile_allowed():
        return "compiled"
    return "foreach"


def _compiled_version(reference: Callable) -> Callable:
    if reference not in _compiled:
        # dynamic=True: one kernel serves every parameter shape instead of one per shape.
        _compiled[reference] = torch.compile(reference, dynamic=True, fullgraph=True, options=_INDUCTOR_OPTIONS)
    return _compiled[reference]


@functools.lru_cache(maxsize=256)
def _scalar(value: float) -> torch.Tensor:
    # Cached: betas and ε never change and lr rarely does, so most steps create no tensor.
    return torch.tensor(value, dtype=torch.float64)


def _as_tensor(value: Any) -> Any:
    # Hyperparameters become 0-d float64 tensors: a Python float would be baked into the
    # kernel, and every new learning rate (decay, schedulers) would recompile it.
    if isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
        return _scalar(float(value))
    if isinstance(value, list) and value and isinstance(value[0], float):
        # Per-parameter values (bias corrections) are nearly always all equal: one tensor.
        return [_scalar(v) for v in value] if len(set(value)) > 1 else [_scalar(value[0])] * len(value)
    if isinstance(value, list) and value and isinstance(value[0], torch.nn.Parameter):
        # Dynamo keeps a Parameter's shape static, which would recompile for every model size;
        # a detached alias shares the storage, so updating it updates the parameter.
        return [p.detach() for p in value]
    return value


def run_compiled(reference: Callable, fallback: Callable, args: tuple, kwargs: dict[str, Any]) -> None:
    """Call the compiled ``reference``; on any compile error warn once and call ``fallback``."""
    if compile_allowed():
        try:
            _compiled_version(reference)(*map(_as_tensor, args), **{k: _as_tensor(v) for k, v in kwargs.items()})
            return
        except Exception as error:  # noqa: BLE001 - any compiler failure means "use eager"
            _failure.append(f"{type(error).__name__}: {error}".splitlines()[0])
            warnings.warn(
                f"gradwise: torch.compile failed ({_failure[0]}); optimizers use the eager foreach path",
                RuntimeWarning,
                stacklevel=3,
            )
    fallback(*args, **kwargs)


def dispatch(impl: str, reference: Callable, foreach: Callable, args: tuple, kwargs: dict[str, Any]) -> None:
    """Run one update with the chosen implementation: "reference", "foreach" or "compiled"."""
    if impl == "compiled":
        run_compiled(reference, foreach, args, kwargs)
    elif impl == "foreach":
        foreach(*args, **kwargs)
    else:
        reference(*args, **kwargs)
