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
from .probes import integer

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

    Everything is keyed by *use*: a module called once is its own name; called again in
    the same pass (a shared ``self.act = nn.ReLU()``, a layer applied twice) its k-th call is
    ``name#k``, so reuse never overwrites a record. ``direct`` names the uses known (from an
    earlier step) to feed an activation directly; their own output gradient and scale are
    not needed, so no hook or norm is spent on them.
    """

    direct: frozenset[str] = frozenset()
    full: bool = True  # a full step also measures the slow quantities: wiring, input scale, dead units
    order: list[str] = field(default_factory=list)  # layer and activation uses, as called
    input_x: torch.Tensor | None = None  # what the first layer received (floating inputs only)
    input_axis: int = -1  # its feature axis
    norms: dict[Key, torch.Tensor] = field(default_factory=dict)  # 0-d norms
    deferred: dict[Key, tuple[torch.Tensor, int]] = field(default_factory=dict)  # rows, their version
    counts: dict[Key, int] = field(default_factory=dict)  # entries behind each scale norm
    fractions: dict[Key, torch.Tensor] = field(default_factory=dict)  # 0-d saturation fractions
    unit_max: dict[str, tuple[torch.Tensor, int]] = field(default_factory=dict)  # ReLU: max per unit, examples
    grad_in_from: dict[str, str] = field(default_factory=dict)  # layer use -> activation use feeding it
    owner: dict[str, str] = field(default_factory=dict)  # activation use -> layer use it follows
    owned: set[str] = field(default_factory=set)  # layer uses that already have their activation
    fed_directly: set[str] = field(default_factory=set)  # layer uses whose output went straight into an activation
    pending: tuple[str, torch.Tensor, Any] | None = None  # latest layer output not yet consumed
    last_layer: str | None = None
    act_outputs: dict[int, tuple[str, Any]] = field(default_factory=dict)  # id -> (use, weakref)
    calls: dict[str, int] = field(default_factory=dict)  # module name -> calls so far in this pass
    entry_of: dict[str, str] = field(default_factory=dict)  # layer use -> the observation entry it reports to
    act_class: dict[str, str] = field(default_factory=dict)  # activation use -> class name
    producers: dict[str, list[str]] = field(default_factory=dict)  # layer use -> layer uses its input came from
    sources: set[str] = field(default_factory=set)  # layer uses fed by the data (no layer before them)
    recurrent: set[str] = field(default_factory=set)  # layer uses unrolled over time
    time_steps: dict[str, int] = field(default_factory=dict)  # recurrent use -> sequence length
    nodes: dict[Any, str] = field(default_factory=dict)  # autograd node of a block output -> layer use (full steps)
    differentiable: set[int] = field(default_factory=set)  # ids of inputs the monitor made differentiable
    failed: dict[str, str] = field(default_factory=dict)  # module name -> what went wrong in a backward hook

    def use(self, name: str) -> str:
        """The name of this call of module ``name``: ``name``, then ``name#2``, ``name#3``..."""
        k = self.calls.get(name, 0) + 1
        self.calls[name] = k
        return name if k == 1 else f"{name}#{k}"

    # ---- forward hooks ----

    def on_layer(self, name: str, entry: str, probe: Any, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        """Forward hook body, for training passes (grad mode on) only."""
        out = probe.main_output(output)
        if out is None:
            return
        self.settle()
        use = self.use(name)
        x = probe.main_input(args, kwargs)
        made = x is not None and id(x) in self.differentiable
        fed_by_data = x is None or not x.requires_grad or made
        if self.full and self.input_x is None and x is not None and not self.order and not integer(x):
            self.input_x, self.input_axis = _rows(x.detach()), probe.feature_axis(module, x)
        self.order.append(use)
        self.entry_of[use] = entry
        self.last_layer = use
        if probe.recurrent:
            self.recurrent.add(use)
        if self.full:
            self._wire(use, out, [] if fed_by_data else [x] + probe.other_inputs(args, kwargs))
        if fed_by_data:
            self.sources.add(use)
        if out.requires_grad:
            # A layer fed by the data: its ||dJ/d input|| comes from dJ/d output by the probe's
            # formula (Linear: dJ/dz W), or equals it (Embedding: the looked-up rows), or from
            # the input the monitor made differentiable.
            formula = fed_by_data and not made and probe.has_input_gradient
            identity = fed_by_data and not probe.has_input_gradient
            measure_in = (probe if formula else None), identity
            handle = None
            if formula or identity or use not in self.direct:
                handle = _on_grad(out, self._safe(name, partial(self._on_grad_out, use, module, measure_in)))
            self.pending = (use, out, handle, formula or identity)
        if x is not None and x.requires_grad:
            source = self.act_outputs.get(id(x))
            if source is not None and source[1]() is x:
                self.grad_in_from[use] = source[0]  # the same tensor as an activation's output
            else:
                _on_grad(x, self._safe(name, partial(self._keep, ("grad_in", use))))
            if probe.recurrent and x.dim() >= 2:
                axis = probe.time_axis(module, x)
                self.time_steps[use] = int(x.shape[axis])
                _on_grad(x, self._safe(name, partial(self._through_time, use, axis)))

    def _wire(self, use: str, out: torch.Tensor, inputs: list[torch.Tensor]) -> None:
        """Which earlier layer uses this use's inputs came from, read off the autograd graph.

        Walking back from the input stops at the first block outputs met, so a residual sum
        finds both the branch and the skip, a concatenation both inputs, and a reshape or a
        normalization in between is walked through.
        """
        self.producers[use] = _walk(inputs, self.nodes)
        if out.grad_fn is not None:
            self.nodes[out.grad_fn] = use

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
        if not isinstance(output, torch.Tensor) or not output.is_floating_point():
            return
        use = self.use(name)
        self.order.append(use)
        self.act_class[use] = type(module).__name__
        pending, self.pending = self.pending, None
        fed = pending is not None and bool(inputs) and inputs[0] is pending[1]
        if self.last_layer is not None and self.last_layer not in self.owned and (fed or self._follows(inputs)):
            self.owner[use] = self.last_layer  # the first activation after a layer completes its block
            self.owned.add(self.last_layer)
            if self.full and output.grad_fn is not None:
                self.nodes[output.grad_fn] = self.last_layer  # the block's output, for the wiring
        if fed:
            self.fed_directly.add(pending[0])
            if pending[2] is not None and not pending[3]:
                pending[2].remove()  # the block ends after this activation; the layer's dJ/dz is not needed
        elif pending is not None:
            self.pending = pending
            self.settle()
        rows = self._norm(("act_rms", use), output.detach(), count=True)
        if output.requires_grad:
            _on_grad(output, self._safe(name, partial(self._keep, ("grad_act", use))))
            self.act_outputs[id(output)] = (use, weakref.ref(output))  # never keep activations alive
        if kind == "relu" and self.full:
            # Judged from the output: an in-place ReLU has already overwritten its input.
            # On the first rows too: "never active" is judged over DEAD_MIN_EXAMPLES examples,
            # pooled across batches, and reading every row of a large batch costs more.
            self.unit_max[use] = (M.unit_max(rows), int(rows.shape[0]) if rows.dim() else 1)
        elif kind == "saturating" and inputs and isinstance(inputs[0], torch.Tensor):
            self.fractions[("saturation", use)] = _saturation(module, inputs[0].detach(), output.detach())

    def _follows(self, inputs: tuple) -> bool:
        """Does this activation's input come from the last layer alone (through a norm or a
        dropout, say)? An activation after a residual sum does not complete one layer's block.
        Lean steps reuse the wiring of full steps, where this is decided."""
        if not self.full:
            return True
        x = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        return x is not None and _walk([x], self.nodes) == [self.last_layer]

    # ---- backward hooks (never raise: see _safe) ----

    def _safe(self, name: str, hook: Any) -> Any:
        """``hook``, except that an error inside the user's backward() is kept, not raised."""

        def guarded(grad: torch.Tensor) -> None:
            if name in self.failed or grad is None:
                return
            try:
                hook(grad)
            except Exception as error:  # noqa: BLE001  the user's run comes first
                self.failed[name] = f"{type(error).__name__}: {error}"

        return guarded

    def _keep(self, key: Key, grad: torch.Tensor) -> None:
        self._norm(key, grad)  # backward runs with grad mode off: slicing builds no graph

    def _on_grad_out(self, use: str, module: nn.Module, measure_in: tuple, grad: torch.Tensor) -> None:
        self._norm(("grad_out", use), grad)
        probe, identity = measure_in
        if identity:
            self._norm(("grad_in", use), grad)
        elif probe is not None:
            dx = probe.input_gradient(module, _rows(grad))
            if dx is not None:
                self._norm(("grad_in", use), dx)

    def _through_time(self, use: str, axis: int, grad: torch.Tensor) -> None:
        """||dJ/dx_t|| at the first and the last time step: the gradient carried back through
        time, the document's product of factors w g'(z) unrolled over the sequence."""
        self._norm(("time_first", use), grad.select(axis, 0))
        self._norm(("time_last", use), grad.select(axis, -1))

    # ---- after backward ----

    def norm_list(self) -> tuple[list[Key], torch.Tensor | None, list[Key], list[torch.Tensor], dict[Key, int]]:
        """Norms already taken (keys, stacked), the deferred tensors whose norms are still to
        take (keys, tensors), and the entries behind each scale norm.

        A deferred tensor changed in place after its hook saw it (its version moved on) no
        longer holds what was observed; its measure is dropped rather than reported wrong.
        """
        self.settle()
        self.nodes = {}  # the graph is gone after backward; do not keep its nodes
        keys = list(self.norms)
        stacked = torch.stack([self.norms[k] for k in keys]) if keys else None
        fresh = [(k, rows) for k, (rows, version) in self.deferred.items() if rows._version == version]
        self.deferred = {}
        return keys, stacked, [k for k, _ in fresh], [rows for _, rows in fresh], self.counts


WALK_LIMIT = 256  # autograd nodes visited per input at most, so a huge graph costs a bounded walk


def _walk(inputs: list[torch.Tensor], nodes: dict[Any, str]) -> list[str]:
    """The layer uses whose block outputs are the nearest ancestors of ``inputs``."""
    stack = [t.grad_fn for t in inputs if t.grad_fn is not None]
    found: dict[str, None] = {}
    seen: set[int] = set()
    budget = WALK_LIMIT
    while stack and budget > 0:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        budget -= 1
        use = nodes.get(node)
        if use is not None:
            found[use] = None
            continue
        stack.extend(fn for fn, _ in node.next_functions if fn is not None)
    return list(found)


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
