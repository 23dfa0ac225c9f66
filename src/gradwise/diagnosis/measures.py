"""The monitor's measurements, one small function each.

Tensor measures run on the model's device and return tensors (never Python numbers), so a
monitored step can gather all of them and synchronise once. They expect to be called under
``torch.no_grad()`` (the monitor's hooks are), so they build no autograd graph and need no
``detach`` (each detach is one more operator call on every observed step). Series measures work on the
Python floats that come back from that synchronisation.

Vocabulary (document section 1): for a layer computing z = W a_prev + b and a = g(z), the
*backward gain* of the layer is ||dJ/da_prev|| / ||dJ/da||, the measured counterpart of the
single-neuron factor |w g'(z)|; gains below 1 over many layers make the gradient vanish,
above 1 make it explode.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

# |z| beyond which g'(z) is under ~7% of its maximum: sigma'(4) = 0.018 (max 1/4),
# tanh'(2) = 0.071 (max 1); the unit then passes almost no gradient.
SATURATION_THRESHOLD = {"sigmoid": 4.0, "tanh": 2.0}
DEAD_MIN_EXAMPLES = 64  # a unit is called dead only if no example out of this many activates it

SATURATING = (nn.Sigmoid, nn.Tanh, nn.Hardsigmoid)
RELU_FAMILY = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU)
OTHER_ACTIVATIONS = (nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Softplus, nn.Hardtanh, nn.Hardswish)


def activation_kind(module: nn.Module) -> str | None:
    """'saturating', 'relu' or 'other' for an activation module; None for anything else."""
    if isinstance(module, RELU_FAMILY):  # before Hardtanh: ReLU6 subclasses it
        return "relu"
    if isinstance(module, SATURATING):
        return "saturating"
    if isinstance(module, OTHER_ACTIVATIONS):
        return "other"
    return None


def tensor_norm(t: torch.Tensor) -> torch.Tensor:
    """The L2 norm of a whole tensor as float32 (half precision is summed in float32)."""
    if t.dtype in (torch.float16, torch.bfloat16):
        return torch.linalg.vector_norm(t, dtype=torch.float32)
    norm = torch.linalg.vector_norm(t)
    return norm if norm.dtype == torch.float32 else norm.float()


def norms(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """L2 norms of many tensors as one float32 vector, in one fused call where possible."""
    if not tensors:
        return torch.zeros(0)
    if hasattr(torch, "_foreach_norm") and len({t.dtype for t in tensors}) == 1:
        return torch.stack(torch._foreach_norm(list(tensors))).float()
    return torch.stack([tensor_norm(t) for t in tensors])




def per_unit(t: torch.Tensor) -> torch.Tensor:
    """View a batch as (examples, units, positions): units are features or channels."""
    if t.dim() == 1:
        return t.reshape(-1, 1, 1)
    return t.reshape(t.shape[0], t.shape[1], -1)


def feature_norms(x: torch.Tensor, axis: int = 1) -> tuple[torch.Tensor, int]:
    """L2 norm of each input feature over the batch, and the entries behind it.

    ``axis`` holds the features: the last for tables and batch-first sequences (batch, time,
    features), 1 for a convolution's channels. norm / sqrt(entries) is the feature's RMS:
    its scale as the layer sees it. Half precision is summed in float32.
    """
    if x.dim() < 2:
        x = x.reshape(-1, 1)
    features = x.movedim(axis, -1).reshape(-1, x.shape[axis])
    dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else None
    return torch.linalg.vector_norm(features, dim=0, dtype=dtype), features.shape[0]


def input_scale_summary(scales: Sequence[float]) -> dict[str, float] | None:
    """Largest feature scale, median non-zero feature scale, and index of the largest.

    The median ignores all-zero features (a sparse one-hot column in a small batch), which
    would otherwise make every dense feature look out of scale.
    """
    if not scales:
        return None
    largest = scales.index(max(scales))
    nonzero = [v for v in scales if v > 0]
    return {"max": scales[largest], "median": median(nonzero) if nonzero else 0.0, "feature": largest}


def saturation_fraction(z: torch.Tensor, threshold: float) -> torch.Tensor:
    """Fraction of pre-activations with |z| > threshold, where g' is nearly zero."""
    return (z.abs() > threshold).float().mean()


def hard_saturation_fraction(out: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Fraction of outputs pinned at a hard activation's bounds (zero gradient there)."""
    return ((out <= low) | (out >= high)).float().mean()


def unit_max(out: torch.Tensor) -> torch.Tensor:
    """Largest output of each unit over the batch; a ReLU unit with max <= 0 passed no gradient."""
    if out.dim() == 2:
        return out.amax(dim=0)
    return per_unit(out).amax(dim=(0, 2))


def positive_counts(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """How many entries of each tensor are > 0, as one float vector.

    Layers of one width (the usual MLP) take three calls together; otherwise two per tensor.
    """
    if len({t.numel() for t in tensors}) == 1:
        return (torch.stack([t.reshape(-1) for t in tensors]) > 0).sum(dim=1).float()
    return torch.stack([torch.count_nonzero(t > 0) for t in tensors]).float()


def pooled_max(maxima: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-unit maximum over several batches (a unit is dead if it is <= 0 in all of them)."""
    pooled = maxima[0]
    for m in maxima[1:]:
        pooled = torch.maximum(pooled, m)
    return pooled


# ---- series measures on Python floats ----


def finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]




def median(values: Sequence[float]) -> float | None:
    vals = sorted(finite(values))
    if not vals:
        return None
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else 0.5 * (vals[mid - 1] + vals[mid])


def chunk_means(values: Sequence[float], chunks: int) -> list[float]:
    """Means of ``chunks`` consecutive, nearly equal slices: a smoothed loss curve."""
    n = len(values)
    chunks = max(1, min(chunks, n))
    bounds = [round(i * n / chunks) for i in range(chunks + 1)]
    return [sum(values[a:b]) / (b - a) for a, b in zip(bounds, bounds[1:]) if b > a]


def sign_change_fraction(series: Sequence[float]) -> float:
    """Share of consecutive differences that flip sign: 1.0 is a perfect zig-zag."""
    diffs = [b - a for a, b in zip(series, series[1:]) if b != a]
    if len(diffs) < 2:
        return 0.0
    flips = sum(1 for d0, d1 in zip(diffs, diffs[1:]) if (d0 > 0) != (d1 > 0))
    return flips / (len(diffs) - 1)
