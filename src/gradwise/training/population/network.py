"""K MLPs as one network: each Linear layer is a [K, in, out] weight and one ``baddbmm``.

The members' weights are copied in from ordinary ``build_mlp`` networks (so each starts
from exactly the weights ``gradwise.fit`` would draw for it) and copied back out at the end.
Every weight and bias is a view into one [K, P] buffer, and every gradient a view into one
[K, P] gradient buffer, so the optimizer updates all layers of all members in a handful of
ops (the same trick as :mod:`gradwise.training.flat`, one row per member).

Members may differ in hidden width: each layer is as wide as the widest member, and a
[K, 1, H] mask of 0/1 multiplies the hidden activations, so a padded unit outputs exactly 0,
passes no gradient, and its weights (zero at the start) get zero gradients and stay zero.

With batch norm (Linear -> BatchNorm1d -> activation, as ``build_mlp`` builds it) each hidden
layer's gamma and beta are [K, 1, H] views into the same buffer, so the optimizer updates them
as ``fit``'s optimizer updates BatchNorm's weight and bias (weight decay and clipping included).
The batch statistics are each member's own, over its real rows only (a batch's padding rows
are not its data); the running mean and variance are per-member [K, H] buffers that only the
members taking the step update, and evaluation normalizes with them as eval mode does. A
padded unit's z is 0 on every row, so it normalizes to 0, and its gamma and beta (0, with
zero gradients) keep it there before the unit mask.
"""

from __future__ import annotations

from dataclasses import dataclass

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
# torch.nn.BatchNorm1d's defaults, which build_mlp uses.
BN_EPS = 1e-5
BN_MOMENTUM = 0.1


def linear_layers(net: nn.Module) -> list[nn.Linear]:
    return [m for m in net.modules() if isinstance(m, nn.Linear)]


def norm_layers(net: nn.Module) -> list[nn.BatchNorm1d]:
    return [m for m in net.modules() if isinstance(m, nn.BatchNorm1d)]


@dataclass
class MemberState:
    """What one member's network holds: its row of the parameter buffer and, with batch norm,
    its running statistics (a row of ``stats``) and how many batches it has normalized."""

    row: Tensor
    stats: Tensor
    tracked: int

    def cpu(self) -> "MemberState":
        return MemberState(self.row.cpu(), self.stats.cpu(), self.tracked)


class StackedMLP:
    """The population's network. ``forward(x)`` maps [K, B, d] inputs to [K, B, outputs]."""

    def __init__(self, nets: list[nn.Module], activation: str, dropout: list[float], device: torch.device,
                 shapes: list[tuple[int, int]] | None = None) -> None:
        """``shapes`` ((in, out) per layer) pads every member to these sizes, at least its own, so
        members with other widths can join later (:meth:`extend`)."""
        layers = [linear_layers(net) for net in nets]
        norms = [norm_layers(net) for net in nets]
        self.K, self.depth, self.activation_name = len(nets), len(layers[0]), activation
        self.batch_norm = bool(norms[0])
        widest = [(max(m[i].in_features for m in layers), max(m[i].out_features for m in layers)) for i in range(self.depth)]
        self.outputs = widest[-1][1]
        self.shapes = [(max(a, c), max(b, d)) for (a, b), (c, d) in zip(widest, shapes or widest)]
        self.shapes[-1] = (self.shapes[-1][0], max(self.shapes[-1][1], OUTPUT_COLUMNS))
        sizes = [fan_in * fan_out + fan_out for fan_in, fan_out in self.shapes]
        self.flat = torch.zeros(self.K, sum(sizes) + 2 * self._normed_units(), device=device)
        self.grad = torch.zeros_like(self.flat)
        self._seat()
        # Running mean then running variance of each normalized layer, one row per member.
        self.stats = torch.zeros(self.K, 2 * self._normed_units(), device=device)
        self.tracked = torch.zeros(self.K, dtype=torch.int64, device=device)
        self._copy_in(layers, norms)
        self.activation = ACTIVATIONS[activation]()
        self.unit_masks = self._unit_masks(layers, device)
        drop = torch.tensor(dropout, dtype=torch.float32, device=device).view(-1, 1, 1)
        self.dropout = drop if bool((drop > 0).any()) else None
        self.generator = torch.Generator(device=device).manual_seed(0)  # dropout masks (see trainer docs)

    def _normed_units(self) -> int:
        """Hidden units that batch norm normalizes (all hidden layers' widths, or none)."""
        return sum(out for _, out in self.shapes[:-1]) if self.batch_norm else 0

    def _seat(self) -> None:
        """(Re)make every view and leaf over the current buffers."""
        self.weights, self.biases, self.gammas, self.betas = self._views(self.flat)
        self.params = self._leaves()
        self.buffer = self._buffer_leaf()
        self._group_params: dict[tuple[int, int], list[nn.Parameter]] = {}

    def _views(self, buffer: Tensor) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
        """Weights [K, in, out] and biases [K, 1, out] of each layer, then (with batch norm)
        each hidden layer's gamma and beta [K, 1, H], all views into ``buffer``."""
        weights, biases, offset, rows = [], [], 0, buffer.shape[0]
        for fan_in, fan_out in self.shapes:
            weights.append(buffer[:, offset : offset + fan_in * fan_out].view(rows, fan_in, fan_out))
            offset += fan_in * fan_out
            biases.append(buffer[:, offset : offset + fan_out].view(rows, 1, fan_out))
            offset += fan_out
        gammas, betas = [], []
        for _, width in self.shapes[:-1] if self.batch_norm else []:
            gammas.append(buffer[:, offset : offset + width].view(rows, 1, width))
            betas.append(buffer[:, offset + width : offset + 2 * width].view(rows, 1, width))
            offset += 2 * width
        return weights, biases, gammas, betas

    def _all_views(self, buffer: Tensor) -> list[Tensor]:
        """Every parameter's view, in the order ``params`` lists them (weights, biases, gammas, betas)."""
        return [view for kind in self._views(buffer) for view in kind]

    def _stat_views(self, stats: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Each normalized layer's running mean and running variance ([K, H] views of ``stats``)."""
        means, variances, offset = [], [], 0
        for _, width in self.shapes[:-1] if self.batch_norm else []:
            means.append(stats[:, offset : offset + width])
            variances.append(stats[:, offset + width : offset + 2 * width])
            offset += 2 * width
        return means, variances

    def _leaves(self, rows: slice = slice(None)) -> list[nn.Parameter]:
        """Leaf tensors whose data and .grad are the buffers' views (autograd adds into them in
        place): of every member, or of the members at ``rows``."""
        params = []
        for data, grad in zip(self._all_views(self.flat[rows]), self._all_views(self.grad[rows])):
            p = nn.Parameter(torch.empty(0, device=data.device))
            p.data, p.grad = data, grad
            params.append(p)
        return params

    def _buffer_leaf(self) -> nn.Parameter:
        """The whole [K, P] buffer as one tensor with its gradient: what the optimizer updates."""
        p = nn.Parameter(torch.empty(0, device=self.flat.device))
        p.data, p.grad = self.flat, self.grad
        return p

    def _copy_in(self, layers: list[list[nn.Linear]], norms: list[list[nn.BatchNorm1d]]) -> None:
        means, variances = self._stat_views(self.stats)
        # A padded unit's running variance starts at 1 as a real one's does; its gamma stays 0.
        for variance in variances:
            variance.fill_(1.0)
        with torch.no_grad():
            for k, member in enumerate(layers):
                for i, linear in enumerate(member):
                    self.weights[i][k, : linear.in_features, : linear.out_features] = linear.weight.detach().T
                    self.biases[i][k, 0, : linear.out_features] = linear.bias.detach()
            for k, member in enumerate(norms):
                for i, norm in enumerate(member):
                    width = norm.num_features
                    self.gammas[i][k, 0, :width] = norm.weight.detach()
                    self.betas[i][k, 0, :width] = norm.bias.detach()
                    means[i][k, :width] = norm.running_mean
                    variances[i][k, :width] = norm.running_var
                if member:
                    self.tracked[k] = int(member[0].num_batches_tracked)

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

    def forward(self, x: Tensor, train: bool, keep: list[Tensor] | None = None, group: slice | None = None,
                valid: Tensor | None = None, stepping: Tensor | None = None) -> Tensor:
        """Outputs for [K, B, d] inputs, or for the members at ``group`` ([k, B, d] inputs, theirs);
        ``keep`` collects each layer's input and pre-activation (with ``retain_grad``) for the
        gradient monitor's backward gains.

        With batch norm in training: ``valid`` ([k, B] bool, None when every row is real) says
        which rows the batch statistics are over, and ``stepping`` ([K] bool, None for all)
        which members' running statistics this batch updates (those taking the step)."""
        params = self._params_of(group)
        rows = group if group is not None else slice(None)
        weights, biases = params[: self.depth], params[self.depth : 2 * self.depth]
        gammas, betas = params[2 * self.depth : 3 * self.depth - 1], params[3 * self.depth - 1 :]
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
            if self.batch_norm:
                z = self._normalize(z, i, gammas[i], betas[i], rows, train, valid, stepping)
            h = self.activation(z)
            if train and self.dropout is not None:
                keep_prob = 1 - self.dropout[rows]
                h = h * (torch.rand(h.shape, generator=self.generator, device=h.device) < keep_prob) / keep_prob
            if self.unit_masks[i] is not None:
                h = h * self.unit_masks[i][rows]
        raise AssertionError("unreachable")

    def _normalize(self, z: Tensor, layer: int, gamma: Tensor, beta: Tensor, rows: slice, train: bool,
                   valid: Tensor | None, stepping: Tensor | None) -> Tensor:
        """BatchNorm1d on [k, B, H]: batch statistics in training, the running ones otherwise."""
        means, variances = self._stat_views(self.stats)
        if not train:
            mean, variance = means[layer][rows].unsqueeze(1), variances[layer][rows].unsqueeze(1)
            return (z - mean) * torch.rsqrt(variance + BN_EPS) * gamma + beta
        if valid is None:
            n = torch.full((z.shape[0], 1, 1), float(z.shape[1]), device=z.device)
            mean = z.mean(dim=1, keepdim=True)
            centered = z - mean
            variance = (centered * centered).mean(dim=1, keepdim=True)
        else:  # padding rows are not the member's data: they neither count nor shift the mean
            weight = valid.unsqueeze(2).to(z.dtype)
            n = weight.sum(dim=1, keepdim=True)
            mean = (z * weight).sum(dim=1, keepdim=True) / n.clamp(min=1)
            centered = z - mean
            variance = (centered * centered * weight).sum(dim=1, keepdim=True) / n.clamp(min=1)
        self._update_running(layer, rows, mean, variance, n, stepping)
        return centered * torch.rsqrt(variance + BN_EPS) * gamma + beta

    @torch.no_grad()
    def _update_running(self, layer: int, rows: slice, mean: Tensor, variance: Tensor, n: Tensor, stepping: Tensor | None) -> None:
        """Running mean and variance as BatchNorm1d keeps them: momentum 0.1, the variance
        unbiased (n - 1). Members not stepping (a 1-row or empty batch) keep theirs."""
        means, variances = self._stat_views(self.stats)
        unbiased = variance * n / (n - 1).clamp(min=1)
        new_mean = torch.lerp(means[layer][rows], mean.squeeze(1), BN_MOMENTUM)
        new_var = torch.lerp(variances[layer][rows], unbiased.squeeze(1), BN_MOMENTUM)
        if stepping is not None:
            keep = ~stepping[rows].unsqueeze(1)
            new_mean = torch.where(keep, means[layer][rows], new_mean)
            new_var = torch.where(keep, variances[layer][rows], new_var)
        means[layer][rows] = new_mean
        variances[layer][rows] = new_var
        if layer == 0:
            self.tracked[rows] += 1 if stepping is None else stepping[rows].long()

    def zero_grad(self) -> None:
        self.grad.zero_()

    def select(self, index: Tensor) -> None:
        """Keep only the members at ``index`` (compaction)."""
        flat, grad = self.flat.index_select(0, index), self.grad.index_select(0, index)
        self.K = len(index)
        self.flat, self.grad = flat, grad
        self.stats, self.tracked = self.stats.index_select(0, index), self.tracked.index_select(0, index)
        self._seat()
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
        self.stats, self.tracked = torch.cat([self.stats, other.stats]), torch.cat([self.tracked, other.tracked])
        self.K += other.K
        self._seat()

    def member_state(self, slot: int) -> MemberState:
        """A copy of the member at ``slot`` (a best-weights snapshot, or its final state)."""
        return MemberState(self.flat[slot].detach().clone(), self.stats[slot].clone(), int(self.tracked[slot]))

    def copy_out(self, state: MemberState, net: nn.Module) -> None:
        """Write one member (see :meth:`member_state`) into its own ``build_mlp`` network."""
        weights, biases, gammas, betas = self._views(state.row.unsqueeze(0))
        means, variances = self._stat_views(state.stats.unsqueeze(0))
        with torch.no_grad():
            for i, linear in enumerate(linear_layers(net)):
                linear.weight.copy_(weights[i][0, : linear.in_features, : linear.out_features].T)
                linear.bias.copy_(biases[i][0, 0, : linear.out_features])
            for i, norm in enumerate(norm_layers(net)):
                width = norm.num_features
                norm.weight.copy_(gammas[i][0, 0, :width])
                norm.bias.copy_(betas[i][0, 0, :width])
                norm.running_mean.copy_(means[i][0, :width])
                norm.running_var.copy_(variances[i][0, :width])
                norm.num_batches_tracked.fill_(state.tracked)


def _cat_masks(a: Tensor | None, b: Tensor | None, ka: int, kb: int, width: int) -> Tensor | None:
    if a is None and b is None:
        return None
    ref = a if a is not None else b
    ones = lambda k: torch.ones(k, 1, width, device=ref.device)  # noqa: E731
    return torch.cat([a if a is not None else ones(ka), b if b is not None else ones(kb)])


def _dropout_or_zero(dropout: Tensor | None, k: int, like: Tensor) -> Tensor:
    return dropout if dropout is not None else torch.zeros(k, 1, 1, device=like.device)
