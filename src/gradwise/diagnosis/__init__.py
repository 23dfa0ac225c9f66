"""Seeing and naming unstable gradients (document section 1).

- :class:`GradientMonitor` attaches to any ``nn.Module`` and records gradient flow.
- :meth:`GradientMonitor.diagnose` returns a :class:`Diagnosis` of :class:`Finding` s with fixes.
- :func:`run_chain` reproduces the document's single-neuron chain, product formula vs autograd.

Every public name is imported on first use (PEP 562), as in the ``gradwise`` package, so
a light module of this package (``chain_names``) loads without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> the submodule that defines it
_HOMES = {
    **dict.fromkeys(("ChainLayer", "ChainResult", "depth_scaling", "run_chain", "scenario"), ".chain"),
    **dict.fromkeys(("PROBLEMS", "SEVERITIES", "Diagnosis", "Finding", "Fix"), ".findings"),
    **dict.fromkeys(("DEFAULT_EVERY", "GradientMonitor", "LayerObservation", "Observation"), ".monitor"),
    "render_diagnosis": ".report",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name], __name__), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
