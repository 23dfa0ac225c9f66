"""What the monitor's hooks collect during one on-cadence step, and how it comes back.

Hooks do as little as possible: they keep references to the tensors whose norms are needed
(layer outputs, activation outputs, their gradients) and compute only what cannot wait
(masks of active ReLU units, saturation, which later in-place operations could change).
:meth:`StepRecord.collect` then takes every norm in one fused call and returns one flat
vector, so an observed step costs one device synchronisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn

from . import measures as M

Key = tuple[str, str]  # (measure, module name)


@dataclass
class StepRecord:
    """Tensors gathered by the hooks during one on-cadence forward/backward pass."""

    order: list[str] = field(default_factory=list)  # weighted layers and activations, as called
    input_x: torch.Tensor | None = None  # what the first layer received
    first: tuple[str, nn.Linear] | None = None  # the first Linear, whose input gradient we compute
    to_norm: dict[Key, torch.Tensor] = field(default_factory=dict)
    fractions: dict[Key, torch.Tensor] = field(default_factory=dict)  # 0-d saturation fractions
    masks: dict[str, tuple[torch.Tensor, int]] = field(default_factory=dict)  # active units, examples
    grad_in_from: dict[str, str] = field(default_factory=dict)  # layer -> activation feeding it
    owner: dict[str, str] = field(default_factory=dict)  # activation -> layer it follows
    last_output: tuple[str, torch.Tensor, Any] | None = None
    last_layer: str | None = None
    act_outputs: dict[int, tuple[str, torch.Tensor]] = field(default_factory=dict)

    # ---- forward hooks ----

    def on_layer(self, name: str, module: nn.Module, inputs: tuple, output: Any) -> None:
        if not torch.is_grad_enabled() or not isinstance(output, torch.Tensor):
            return  # evaluation passes are not training steps
        x = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        if self.input_x is None and x is not None and not self.order:
            self.input_x = x.detach()
        self.order.append(name)
        self.last_layer = name
        self.to_norm[("z_rms", name)] = output.detach()
        if output.requires_grad:
            # A first Linear's input needs no gradient; ||dJ/dx|| = ||dJ/dz W|| is computed later.
            if isinstance(module, nn.Linear) and (x is None or not x.requires_grad) and self.first is None:
                self.first = (name, module)
            handle = output.register_hook(partial(self._keep, ("grad_out", name)))
            self.last_output = (name, output, handle)
        if x is not None and x.requires_grad:
            source = self.act_outputs.get(id(x))
            if source is not None and source[1] is x:
                self.grad_in_from[name] = source[0]  # the same tensor as an activation's output
            else:
                x.register_hook(partial(self._keep, ("grad_in", name)))

    def on_activation(self, name: str, kind: str, module: nn.Module, inputs: tuple, output: Any) -> None:
        if not torch.is_grad_enabled() or not isinstance(output, torch.Tensor):
            return
        self.order.append(name)
        if self.last_layer is not None and self.last_layer not in self.owner.values():
            self.owner[name] = self.last_layer  # the first activation after a layer completes its block
        last, self.last_output = self.last_output, None
        if last is not None and inputs and inputs[0] is last[1]:
            self.to_norm.pop(("z_rms", last[0]), None)  # the activation's scale is shown instead
            if self.first is None or self.first[0] != last[0]:
                last[2].remove()  # the block ends after this activation; dJ/dz is not needed
        self.to_norm[("act_rms", name)] = output.detach()
        if output.requires_grad:
            output.register_hook(partial(self._keep, ("grad_act", name)))
            self.act_outputs[id(output)] = (name, output)
        if kind == "relu":
            # Judged from the output: an in-place ReLU has already overwritten its input.
            self.masks[name] = (M.active_units(output), int(output.shape[0]) if output.dim() else 1)
        elif kind == "saturating":
            self.fractions[("saturation", name)] = _saturation(module, inputs[0], output)

    def _keep(self, key: Key, grad: torch.Tensor) -> None:
        self.to_norm[key] = grad.detach()

    # ---- after backward ----

    def norm_list(self) -> tuple[list[Key], list[torch.Tensor], dict[Key, int]]:
        """Keys and tensors to take norms of, and the entry counts for turning norms into RMS."""
        tensors = dict(self.to_norm)
        if self.first is not None and ("grad_out", self.first[0]) in tensors:
            name, linear = self.first
            tensors[("grad_in", name)] = tensors[("grad_out", name)] @ linear.weight.detach()
        counts = {k: t.numel() for k, t in tensors.items() if k[0] in ("z_rms", "act_rms")}
        return list(tensors), list(tensors.values()), counts


def _saturation(module: nn.Module, z: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    if isinstance(module, nn.Sigmoid):
        return M.saturation_fraction(z, M.SATURATION_THRESHOLD["sigmoid"])
    if isinstance(module, nn.Tanh):
        return M.saturation_fraction(z, M.SATURATION_THRESHOLD["tanh"])
    if isinstance(module, nn.Hardsigmoid):
        return M.hard_saturation_fraction(out, 0.0, 1.0)
    return M.hard_saturation_fraction(out, float(module.min_val), float(module.max_val))  # Hardtanh


