"""Seeing and naming unstable gradients (document section 1).

- :class:`GradientMonitor` attaches to any ``nn.Module`` and records gradient flow.
- :meth:`GradientMonitor.diagnose` returns a :class:`Diagnosis` of :class:`Finding` s with fixes.
- :func:`run_chain` reproduces the document's single-neuron chain, product formula vs autograd.

Every public name is imported on first use (PEP 562), as in the ``gradwise`` package, so
a light module of this package (``chain_names``) loads without torch.
"""

from __future__ import annotations

from .._lazy import lazy_exports

# public name -> the submodule that defines it
_HOMES = {
    **dict.fromkeys(("ChainLayer", "ChainResult", "depth_scaling", "run_chain", "scenario"), ".chain"),
    **dict.fromkeys(("PROBLEMS", "SEVERITIES", "Diagnosis", "Finding", "Fix"), ".findings"),
    **dict.fromkeys(("DEFAULT_EVERY", "GradientMonitor", "LayerObservation", "Observation"), ".monitor"),
    "render_diagnosis": ".report",
}

__all__ = sorted(_HOMES)

__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
