"""What the monitor's hooks collect during one on-cadence step, and how it comes back.

Hooks take each norm as soon as its tensor exists (on the batch's first rows) and keep only
the 0-d result: holding on to activations or gradients would stop PyTorch from reusing
their memory during the backward pass, which costs more than the norms themselves. The
monitor then stacks these results with the weight norms into one vector, so an observed
step costs one device synchronisation.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn

from . import measures as M

Key = tuple[str, str]  # (measure, module name)
# Scales and gradient norms are taken on the batch's first rows: a gain is a ratio of two
# norms over the same examples, so a sample of examples estimates it without reading every
# activation of a large batch.
NORM_ROWS = 64
# Norms of tensors up to this many entries are taken after backward, all in one fused call,
# instead of one call per hook: on small models the per-call overhead is most of the cost.
# Holding a tensor that long keeps its memory alive, so larger ones are measured at once.
DEFER_ENTRIES = 1 << 20


def _rows(t: torch.Tensor) -> torch.Tensor:
    return t[:NORM_ROWS] if t.dim() > 1 and t.shape[0] > NORM_ROWS else t


@dataclass
class StepRecord:
    """Tensors gathered by the hooks during one on-cadence forward/backward pass.

    ``direct`` names the layers known (from an earlier step) to feed an activation directly;
    their own output gradient and scale are not needed, so no hook or norm is spent on them.
    """

    direct: frozenset[str] = frozenset()
    full: bool = True  # a full step also measures the slow quantities: input scale, dead units
    order: list[str] = field(default_factory=list)  # weighted layers and activations, as called
    input_x: torch.Tensor | None = None  # what the first layer received
    first: tuple[str, nn.Linear] | None = None  # the first Linear, whose input gradient we compute
    norms: dict[Key, torch.Tensor] = field(default_factory=dict)  # 0-d norms
    deferred: dict[Key, tuple[torch.Tensor, int]] = field(default_factory=dict)  # rows, their version
    counts: dict[Key, int] = field(default_factory=dict)  # entries behind each scale norm
    fractions: dict[Key, torch.Tensor] = field(default_factory=dict)  # 0-d saturation fractions
    unit_max: dict[str, tuple[torch.Tensor, int]] = field(default_factory=dict)  # ReLU: max per unit, examples
    grad_in_from: dict[str, str] = field(default_factory=dict)  # layer -> activation feeding it
    owner: dict[str, str] = field(default_factory=dict)  # activation -> layer it follows
    owned: set[str] = field(default_factory=set)  # layers that already have their activation
    fed_directly: set[str] = field(default_factory=set)  # layers whose output went straight into an activation
    pending: tuple[str, torch.Tensor, Any] | None = None  # latest layer output not yet consumed
    last_layer: str | None = None
    act_outputs: dict[int, tuple[str, Any]] = field(default_factory=dict)  # id -> (name, weakref)

    # ---- forward hooks ----

    def on_layer(self, name: str, module: nn.Module, inputs: tuple, output: Any) -> None:
        """Forward hook body, for training passes (grad mode on) only."""
        if not isinstance(output, torch.Tensor):
            return
        self.settle()
        x = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        if self.full and self.input_x is None and x is not None and not self.order:
            self.input_x = _rows(x.detach())
        self.order.append(name)
        self.last_layer = name
        if output.requires_grad:
            # A first Linear's input needs no gradient; ||dJ/dx|| = ||dJ/dz W|| from dJ/dz.
            first = isinstance(module, nn.Linear) and (x is None or not x.requires_grad) and self.first is None
            if first:
                self.first = (name, module)
            handle = None
            if first or name not in self.direct:
                handle = _on_grad(output, partial(self._on_grad_out, name, module if first else None))
            self.pending = (name, output, handle)
        if x is not None and x.requires_grad:
            source = self.act_outputs.get(id(x))
            if source is not None and source[1]() is x:
                self.grad_in_from[name] = source[0]  # the same tensor as an activation's output
            else:
                _on_grad(x, partial(self._keep, ("grad_in", name)))

    def settle(self) -> None:
        """A layer output that no activation consumed is the block's output: record its scale."""
        if self.pending is not None:
            self._norm(("z_rms", self.pending[0]), self.pending[1].detach(), count=True)
            self.pending = None

    def _norm(self, key: Key, t: torch.Tensor, count: bool = False) -> torch.Tensor:
        """Record the norm of ``t``'s first rows (now, or deferred); returns those rows."""
        rows = _rows(t)
        if t.numel() <= DEFER_ENTRIES:
            # The version counter tells at the end whether anything changed it in place since.
            self.deferred[key] = (rows, rows._version)
        else:
            self.norms[key] = M.tensor_norm(rows)
        if count:
            self.counts[key] = rows.numel()
        return rows

    def on_activation(self, name: str, kind: str, module: nn.Module, inputs: tuple, output: Any) -> None:
        if not isinstance(output, torch.Tensor):
            return
        self.order.append(name)
        if self.last_layer is not None and self.last_layer not in self.owned:
            self.owner[name] = self.last_layer  # the first activation after a layer completes its block
            self.owned.add(self.last_layer)
        pending, self.pending = self.pending, None
        if pending is not None and inputs and inputs[0] is pending[1]:
            self.fed_directly.add(pending[0])
            if pending[2] is not None and (self.first is None or self.first[0] != pending[0]):
                pending[2].remove()  # the block ends after this activation; the layer's dJ/dz is not needed
        elif pending is not None:
            self.pending = pending
            self.settle()
        rows = self._norm(("act_rms", name), output.detach(), count=True)
        if output.requires_grad:
            _on_grad(output, partial(self._keep, ("grad_act", name)))
            self.act_outputs[id(output)] = (name, weakref.ref(output))  # never keep activations alive
        if kind == "relu" and self.full:
            # Judged from the output: an in-place ReLU has already overwritten its input.
            # On the first rows too: "never active" is judged over DEAD_MIN_EXAMPLES examples,
            # pooled across batches, and reading every row of a large batch costs more.
            self.unit_max[name] = (M.unit_max(rows), int(rows.shape[0]) if rows.dim() else 1)
        elif kind == "saturating":
            self.fractions[("saturation", name)] = _saturation(module, inputs[0].detach(), output.detach())

    def _keep(self, key: Key, grad: torch.Tensor) -> None:
        self._norm(key, grad)  # backward runs with grad mode off: slicing builds no graph

    def _on_grad_out(self, name: str, first_linear: nn.Linear | None, grad: torch.Tensor) -> None:
        self._norm(("grad_out", name), grad)
        if first_linear is not None:  # ||dJ/dx|| of the first layer = ||dJ/dz W||
            self._norm(("grad_in", name), _rows(grad) @ first_linear.weight.detach())

    # ---- after backward ----

    def norm_list(self) -> tuple[list[Key], torch.Tensor | None, list[Key], list[torch.Tensor], dict[Key, int]]:
        """Norms already taken (keys, stacked), the deferred tensors whose norms are still to
        take (keys, tensors), and the entries behind each scale norm.

        A deferred tensor changed in place after its hook saw it (its version moved on) no
        longer holds what was observed; its measure is dropped rather than reported wrong.
        """
        self.settle()
        keys = list(self.norms)
        stacked = torch.stack([self.norms[k] for k in keys]) if keys else None
        fresh = [(k, rows) for k, (rows, version) in self.deferred.items() if rows._version == version]
        self.deferred = {}
        return keys, stacked, [k for k, _ in fresh], [rows for _, rows in fresh], self.counts

def _on_grad(t: torch.Tensor, hook: Any) -> Any:
    """Call ``hook(dJ/dt)`` during backward; returns a handle with ``remove()``.

    On the node that produced ``t`` where there is one (a pre-hook there is cheaper to
    register than a tensor hook, and sees the same gradient), else on the tensor.
    """
    node = t.grad_fn
    if node is None:
        return t.register_hook(hook)
    index = t.output_nr
    return node.register_prehook(lambda grads: hook(grads[index]))


def _saturation(module: nn.Module, z: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    if isinstance(module, nn.Sigmoid):
        return M.saturation_fraction(z, M.SATURATION_THRESHOLD["sigmoid"])
    if isinstance(module, nn.Tanh):
        return M.saturation_fraction(z, M.SATURATION_THRESHOLD["tanh"])
    if isinstance(module, nn.Hardsigmoid):
        return M.hard_saturation_fraction(out, 0.0, 1.0)
    return M.hard_saturation_fraction(out, float(module.min_val), float(module.max_val))  # Hardtanh
