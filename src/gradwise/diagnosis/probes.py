"""One small probe per kind of layer, behind one interface.

The monitor's engine schedules observations and never asks what kind a layer is; it asks
the layer's :class:`Probe` instead:

- which weight matrices the layer has (``weights``): a Linear has one, an LSTM two per
  stacked layer (input-to-hidden and hidden-to-hidden), attention its in- and
  out-projections;
- which tensor is the layer's input and which its output (``main_input``, ``main_output``);
- on which axis of the input the features lie (``feature_axis``), for the input scale;
- how to get ||dJ/d input|| of a layer fed by the data (``input_gradient``), when a cheap
  formula exists; without one the monitor makes that input differentiable on observed steps;
- whether the layer unrolls over time (``recurrent``), so that the gradient through time is
  measured at its input.

Kinds measured: Linear, Conv1d/2d/3d (and transposed), Embedding/EmbeddingBag,
MultiheadAttention, RNN/LSTM/GRU. Any other module with a weight of two or more dimensions
is measured by :class:`GenericProbe` (hooks on its first input and output); any other
parameter of two or more dimensions by :class:`ParameterProbe` (from its ``.grad`` only).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Probe:
    """The default behaviour: a module with a ``weight`` matrix, input first, output a tensor."""

    kind = "layer"
    hooked = True  # False: measured from the parameters' gradients only, no hooks
    recurrent = False
    has_input_gradient = True  # False (Embedding): its input is integer, dJ/d input does not exist
    has_formula = False  # True when input_gradient computes dJ/d input from dJ/d output

    def matches(self, module: nn.Module) -> bool:
        weight = getattr(module, "weight", None)
        return isinstance(weight, nn.Parameter) and weight.dim() >= 2

    def weights(self, name: str, module: nn.Module) -> list[tuple[str, nn.Parameter]]:
        """(entry name, weight) for each weight matrix, the block's own entry first."""
        return [(name, module.weight)]

    def claims(self, module: nn.Module) -> list[nn.Module]:
        """Submodules this probe measures itself (not to be measured again on their own)."""
        return []

    def main_input(self, args: tuple, kwargs: dict) -> torch.Tensor | None:
        x = args[0] if args else next(iter(kwargs.values()), None)
        return x if isinstance(x, torch.Tensor) else None

    def other_inputs(self, args: tuple, kwargs: dict) -> list[torch.Tensor]:
        """Further tensor inputs the gradient flows into (attention's key and value)."""
        return []

    def main_output(self, output: Any) -> torch.Tensor | None:
        return output if isinstance(output, torch.Tensor) else None

    def feature_axis(self, module: nn.Module, x: torch.Tensor) -> int:
        """The axis of ``x`` whose entries are the input features (channels for a conv)."""
        return 1 if x.dim() > 2 else -1

    def input_gradient(self, module: nn.Module, grad_out: torch.Tensor) -> torch.Tensor | None:
        """dJ/d input from dJ/d output without autograd, when the input needs no gradient."""
        return None


class LinearProbe(Probe):
    kind = "linear"
    has_formula = True

    def matches(self, module: nn.Module) -> bool:
        return isinstance(module, nn.Linear)

    def feature_axis(self, module: nn.Module, x: torch.Tensor) -> int:
        return -1  # (batch, features) or batch-first sequences (batch, time, features)

    def input_gradient(self, module: nn.Module, grad_out: torch.Tensor) -> torch.Tensor | None:
        # dJ/dx = dJ/dz W; in the gradient's dtype (bf16 under autocast, float64 models).
        return grad_out @ module.weight.detach().to(grad_out.dtype)


class ConvProbe(Probe):
    kind = "conv"

    def matches(self, module: nn.Module) -> bool:
        return isinstance(module, nn.modules.conv._ConvNd)

    def feature_axis(self, module: nn.Module, x: torch.Tensor) -> int:
        return 1 if x.dim() == module.weight.dim() else 0  # batched (N, C, ...) or unbatched (C, ...)


class EmbeddingProbe(Probe):
    kind = "embedding"
    has_input_gradient = False

    def matches(self, module: nn.Module) -> bool:
        return isinstance(module, (nn.Embedding, nn.EmbeddingBag))


class AttentionProbe(Probe):
    """nn.MultiheadAttention: it calls its out-projection functionally (no module hook fires
    there), so the block is the whole attention, measured at its query input and its output."""

    kind = "attention"

    def matches(self, module: nn.Module) -> bool:
        return isinstance(module, nn.MultiheadAttention)

    def weights(self, name: str, module: nn.Module) -> list[tuple[str, nn.Parameter]]:
        if module.in_proj_weight is not None:
            projections = [(_join(name, "in_proj"), module.in_proj_weight)]
        else:
            projections = [(_join(name, f"{p}_proj"), getattr(module, f"{p}_proj_weight")) for p in "qkv"]
        return projections + [(_join(name, "out_proj"), module.out_proj.weight)]

    def claims(self, module: nn.Module) -> list[nn.Module]:
        return [module.out_proj]

    def main_input(self, args: tuple, kwargs: dict) -> torch.Tensor | None:
        x = args[0] if args else kwargs.get("query")
        return x if isinstance(x, torch.Tensor) else None

    def other_inputs(self, args: tuple, kwargs: dict) -> list[torch.Tensor]:
        rest = list(args[1:3]) + [kwargs.get(k) for k in ("key", "value")]
        return [t for t in rest if isinstance(t, torch.Tensor)]

    def main_output(self, output: Any) -> torch.Tensor | None:
        out = output[0] if isinstance(output, tuple) else output
        return out if isinstance(out, torch.Tensor) else None

    def feature_axis(self, module: nn.Module, x: torch.Tensor) -> int:
        return -1


class RecurrentProbe(Probe):
    """nn.RNN, nn.LSTM, nn.GRU: per stacked layer (and direction) the input-to-hidden and the
    hidden-to-hidden weights; the gradient through time is measured at the input sequence."""

    kind = "recurrent"
    recurrent = True

    def matches(self, module: nn.Module) -> bool:
        return isinstance(module, nn.RNNBase)

    def weights(self, name: str, module: nn.Module) -> list[tuple[str, nn.Parameter]]:
        out = []
        for layer in range(module.num_layers):
            for suffix in ("", "_reverse") if module.bidirectional else ("",):
                for part in ("ih", "hh"):
                    out.append((_join(name, f"{part}_l{layer}{suffix}"), getattr(module, f"weight_{part}_l{layer}{suffix}")))
        return out

    def main_output(self, output: Any) -> torch.Tensor | None:
        out = output[0] if isinstance(output, tuple) else output
        return out if isinstance(out, torch.Tensor) else None  # a PackedSequence is not measured

    def feature_axis(self, module: nn.Module, x: torch.Tensor) -> int:
        return -1

    @staticmethod
    def time_axis(module: nn.Module, x: torch.Tensor) -> int:
        return 1 if module.batch_first and x.dim() == 3 else 0


class GenericProbe(Probe):
    """Any other module with a weight matrix (Bilinear, custom layers): hooks on its first
    tensor input and its output, no formula for the input gradient."""

    kind = "other"


class ParameterProbe(Probe):
    """Weight matrices of a module no other probe knows (``self.W = nn.Parameter(...)``):
    their gradient, weight and update norms are measured from the parameters alone."""

    kind = "parameter"
    hooked = False

    def matches(self, module: nn.Module) -> bool:
        return any(p.dim() >= 2 for p in module.parameters(recurse=False))

    def weights(self, name: str, module: nn.Module) -> list[tuple[str, nn.Parameter]]:
        return [(_join(name, n), p) for n, p in module.named_parameters(recurse=False) if p.dim() >= 2]


# The order matters: the first probe that matches a module measures it.
PROBES: tuple[Probe, ...] = (
    LinearProbe(), ConvProbe(), EmbeddingProbe(), AttentionProbe(), RecurrentProbe(), GenericProbe(), ParameterProbe(),
)


def probe_for(module: nn.Module) -> Probe | None:
    for probe in PROBES:
        if probe.matches(module):
            return probe
    return None


def find_layers(model: nn.Module) -> list[tuple[str, nn.Module, Probe]]:
    """Every measured module of ``model`` with its probe, in registration order.

    Submodules a probe claims (attention's out-projection) are left to that probe; a
    parameter shared by two modules is measured by each (a tied embedding and output layer).
    """
    claimed: set[int] = set()
    found = []
    for name, module in model.named_modules():
        if id(module) in claimed:
            continue
        probe = probe_for(module)
        if probe is None:
            continue
        claimed.update(id(m) for m in probe.claims(module))
        found.append((name, module, probe))
    return found


def _join(module: str, part: str) -> str:
    return f"{module}.{part}" if module else part  # the model itself has the empty name


def integer(t: torch.Tensor) -> bool:
    """Token ids, class indices, masks: never a scale, never a gradient."""
    return not (t.is_floating_point() or t.is_complex())
