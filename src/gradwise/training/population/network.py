"""K MLPs as one network: each Linear layer is a [K, in, out] weight and one ``baddbmm``.

The members' weights are copied in from ordinary ``build_mlp`` networks (so each starts
from exactly the weights ``gradwise.fit`` would draw for it) and copied back out at the end.
Every weight and bias is a view into one [K, P] buffer, and every gradient a view into one
[K, P] gradient buffer, so the optimizer updates all layers of all members in a handful of
ops (the same trick as :mod:`gradwise.training.flat`, one row per member).

Members may differ in hidden width: each layer is as wide as the widest member, and a
[K, 1, H] mask of 0/1 multiplies the hidden activations, so a padded unit outputs exactly 0,
passes no gradient, and its weights (zero at the start) get zero gradients and stay zero.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from ...models.mlp import ACTIVATIONS


# The parameters are strided views of one buffer (not dense), which autograd notes on the
# first backward; it still accumulates into them in place, which is all this module needs.
LAYOUT_WARNING = "grad and param do not obey the gradient layout contract"
# The output layer is computed at least this many columns wide, the extra ones zero weights
# that ``forward`` slices off: with fewer, the CPU's batched matmul is several times slower
# per FLOP (32 members, batch 64, 64 inputs, 2 threads: 188 us forward and 189 us for the
# weight gradient with 10 columns, 53 and 53 us with 16; 113 us with 1, as in regression).
OUTPUT_COLUMNS = 16
# Members go through forward and backward in groups whose widest activation ([members, batch,
# width] float32) stays about this size, so a step's activations stay in the CPU's last-level
# cache between the ops that write and read them. With 32 inputs, 3x128 and batch 256,
# 128 members took 188 ms a step in one group (16 MB activations) and 104 ms in groups of 32;
# on digits (2x64, batch 64) 128 members are one group, and smaller groups cost more in
# per-op overhead than they saved.
GROUP_BYTES = 1 << 22


def linear_layers(net: nn.Module) -> list[nn.Linear]:
    return [m for m in net.modules() if isinstance(m, nn.Linear)]


class StackedMLP:
    """The population's network. ``forward(x)`` maps [K, B, d] inputs to [K, B, outputs]."""

    def __init__(self, nets: list[nn.Module], activation: str, dropout: list[float], device: torch.device,
                 shapes: list[tuple[int, int]] | None = None) -> None:
        """``shapes`` ((in, out) per layer) pads every member to these sizes, at least its own, so
        members with other widths can join later (:meth:`extend`)."""
        layers = [linear_layers(net) for net in nets]
        self.K, self.depth, self.activation_name = len(nets), len(layers[0]), activation
        widest = [(max(m[i].in_features for m in layers), max(m[i].out_features for m in layers)) for i in range(self.depth)]
        self.outputs = widest[-1][1]
        self.shapes = [(max(a, c), max(b, d)) for (a, b), (c, d) in zip(widest, shapes or widest)]
        self.shapes[-1] = (self.shapes[-1][0], max(self.shapes[-1][1], OUTPUT_COLUMNS))
        sizes = [fan_in * fan_out + fan_out for fan_in, fan_out in self.shapes]
        self.flat = torch.zeros(self.K, sum(sizes), device=device)
        self.grad = torch.zeros_like(self.flat)
        self.weights, self.biases = self._views(self.flat)
        self.params = self._leaves()
        self.buffer = self._buffer_leaf()
        self._group_params: dict[tuple[int, int], list[nn.Parameter]] = {}
        self._copy_in(layers)
        self.activation = ACTIVATIONS[activation]()
        self.unit_masks = self._unit_masks(layers, device)
        drop = torch.tensor(dropout, dtype=torch.float32, device=device).view(-1, 1, 1)
        self.dropout = drop if bool((drop > 0).any()) else None
        self.generator = torch.Generator(device=device).manual_seed(0)  # dropout masks (see trainer docs)

    def _views(self, buffer: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        weights, biases, offset, rows = [], [], 0, buffer.shape[0]
        for fan_in, fan_out in self.shapes:
            weights.append(buffer[:, offset : offset + fan_in * fan_out].view(rows, fan_in, fan_out))
            offset += fan_in * fan_out
            biases.append(buffer[:, offset : offset + fan_out].view(rows, 1, fan_out))
            offset += fan_out
        return weights, biases

    def _leaves(self, rows: slice = slice(None)) -> list[nn.Parameter]:
        """Leaf tensors whose data and .grad are the buffers' views (autograd adds into them in
        place): of every member, or of the members at ``rows``."""
        weights, biases = self._views(self.flat[rows])
        grad_weights, grad_biases = self._views(self.grad[rows])
        params = []
        for data, grad in zip([*weights, *biases], [*grad_weights, *grad_biases]):
            p = nn.Parameter(torch.empty(0, device=data.device))
            p.data, p.grad = data, grad
            params.append(p)
        return params

    def _buffer_leaf(self) -> nn.Parameter:
        """The whole [K, P] buffer as one tensor with its gradient: what the optimizer updates."""
        p = nn.Parameter(torch.empty(0, device=self.flat.device))
        p.data, p.grad = self.flat, self.grad
        return p

    def _copy_in(self, layers: list[list[nn.Linear]]) -> None:
        with torch.no_grad():
            for k, member in enumerate(layers):
                for i, linear in enumerate(member):
                    self.weights[i][k, : linear.in_features, : linear.out_features] = linear.weight.detach().T
                    self.biases[i][k, 0, : linear.out_features] = linear.bias.detach()

    def _unit_masks(self, layers: list[list[nn.Linear]], device: torch.device) -> list[Tensor | None]:
        masks: list[Tensor | None] = []
        for i in range(self.depth - 1):
            widths = [member[i].out_features for member in layers]
            if set(widths) == {self.shapes[i][1]}:
                masks.append(None)
                continue
            mask = torch.zeros(self.K, 1, self.shapes[i][1], device=device)
            for k, width in enumerate(widths):
                mask[k, 0, :width] = 1.0
            masks.append(mask)
        return masks

    @property
    def weight_params(self) -> list[nn.Parameter]:
        return self.params[: self.depth]

    def member_groups(self, rows: int) -> list[slice]:
        """Consecutive groups of members whose activations on ``rows`` rows fit GROUP_BYTES
        (on the CPU; a GPU takes every member at once, its launches being the cost)."""
        if self.flat.device.type != "cpu":
            return [slice(0, self.K)]
        width = max(max(shape) for shape in self.shapes)
        size = max(1, GROUP_BYTES // (4 * max(rows, 1) * width))
        return [slice(start, min(start + size, self.K)) for start in range(0, self.K, size)]

    def _params_of(self, group: slice | None) -> list[nn.Parameter]:
        if group is None or (group.start == 0 and group.stop >= self.K):
            return self.params
        key = (group.start, group.stop)
        if key not in self._group_params:
            self._group_params[key] = self._leaves(group)
        return self._group_params[key]

    def forward(self, x: Tensor, train: bool, keep: list[Tensor] | None = None, group: slice | None = None) -> Tensor:
        """Outputs for [K, B, d] inputs, or for the members at ``group`` ([k, B, d] inputs, theirs);
        ``keep`` collects each layer's input and pre-activation (with ``retain_grad``) for the
        gradient monitor's backward gains."""
        params = self._params_of(group)
        rows = group if group is not None else slice(None)
        weights, biases = params[: self.depth], params[self.depth :]
        h = x
        for i in range(self.depth):
            if keep is not None:
                h.retain_grad() if h.requires_grad and not h.is_leaf else h.requires_grad_(True)
                keep.append(h)
            z = torch.baddbmm(biases[i], h, weights[i])
            if i == self.depth - 1:
                return z[..., : self.outputs]  # the padding columns (OUTPUT_COLUMNS) are zeros
            if keep is not None:
                z.retain_grad()
                keep.append(z)
            h = self.activation(z)
            if train and self.dropout is not None:
                keep_prob = 1 - self.dropout[rows]
                h = h * (torch.rand(h.shape, generator=self.generator, device=h.device) < keep_prob) / keep_prob
            if self.unit_masks[i] is not None:
                h = h * self.unit_masks[i][rows]
        raise AssertionError("unreachable")

    def zero_grad(self) -> None:
        self.grad.zero_()

    def select(self, index: Tensor) -> None:
        """Keep only the members at ``index`` (compaction)."""
        flat, grad = self.flat.index_select(0, index), self.grad.index_select(0, index)
        self.K = len(index)
        self.flat, self.grad = flat, grad
        self.weights, self.biases = self._views(self.flat)
        self.params = self._leaves()
        self.buffer = self._buffer_leaf()
        self._group_params = {}
        self.unit_masks = [None if m is None else m.index_select(0, index) for m in self.unit_masks]
        if self.dropout is not None:
            self.dropout = self.dropout.index_select(0, index)

    def extend(self, nets: list[nn.Module], dropout: list[float]) -> None:
        """Add members (their networks no wider than this population's shapes) as new rows."""
        other = StackedMLP(nets, self.activation_name, dropout, self.flat.device, self.shapes)
        if other.shapes != self.shapes:
            raise ValueError(f"members of shapes {other.shapes} do not fit a population of shapes {self.shapes}")
        self.unit_masks = [_cat_masks(a, b, self.K, other.K, shape[1]) for a, b, shape in zip(self.unit_masks, other.unit_masks, self.shapes)]
        if self.dropout is not None or other.dropout is not None:
            self.dropout = torch.cat([_dropout_or_zero(self.dropout, self.K, self.flat), _dropout_or_zero(other.dropout, other.K, self.flat)])
        self.flat = torch.cat([self.flat, other.flat])
        self.grad = torch.zeros_like(self.flat)
        self.K += other.K
        self.weights, self.biases = self._views(self.flat)
        self.params = self._leaves()
        self.buffer = self._buffer_leaf()
        self._group_params = {}

    def copy_out(self, row: Tensor, net: nn.Module) -> None:
        """Write one member's weights (a row of the buffer) into its own ``build_mlp`` network."""
        weights, biases = self._views(row.unsqueeze(0))
        with torch.no_grad():
            for i, linear in enumerate(linear_layers(net)):
                linear.weight.copy_(weights[i][0, : linear.in_features, : linear.out_features].T)
                linear.bias.copy_(biases[i][0, 0, : linear.out_features])


def _cat_masks(a: Tensor | None, b: Tensor | None, ka: int, kb: int, width: int) -> Tensor | None:
    if a is None and b is None:
        return None
    ref = a if a is not None else b
    ones = lambda k: torch.ones(k, 1, width, device=ref.device)  # noqa: E731
    return torch.cat([a if a is not None else ones(ka), b if b is not None else ones(kb)])


def _dropout_or_zero(dropout: Tensor | None, k: int, like: Tensor) -> Tensor:
    return dropout if dropout is not None else torch.zeros(k, 1, 1, device=like.device)
