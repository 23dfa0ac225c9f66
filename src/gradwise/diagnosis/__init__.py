"""Seeing and naming unstable gradients (document section 1).

- :class:`GradientMonitor` attaches to any ``nn.Module`` and records gradient flow.
- :meth:`GradientMonitor.diagnose` returns a :class:`Diagnosis` of :class:`Finding` s with fixes.
- :func:`run_chain` reproduces the document's single-neuron chain, product formula vs autograd.
"""

from .chain import ChainLayer, ChainResult, depth_scaling, run_chain, scenario
from .findings import PROBLEMS, SEVERITIES, Diagnosis, Finding, Fix
from .monitor import DEFAULT_EVERY, GradientMonitor, LayerObservation, Observation
from .report import render_diagnosis

__all__ = [
    "ChainLayer",
    "ChainResult",
    "DEFAULT_EVERY",
    "Diagnosis",
    "Finding",
    "Fix",
    "GradientMonitor",
    "LayerObservation",
    "Observation",
    "PROBLEMS",
    "SEVERITIES",
    "depth_scaling",
    "render_diagnosis",
    "run_chain",
    "scenario",
]
