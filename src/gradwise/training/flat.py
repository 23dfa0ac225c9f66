"""Flat parameters: every weight a view into one buffer, so an elementwise update is one op.

The document's four optimizers update each element of θ from the same element of dθ, V
and S alone. Laying all parameters (and their gradients) end to end in one tensor lets the
optimizer run each of its operations once over one buffer instead of once per layer: fewer
kernel launches per step, with bit-identical results (the arithmetic per element is the
same). Autograd accumulates into the existing ``.grad`` views in place, so the buffer stays
in sync; gradients are zeroed by zeroing the buffer, never by setting them to None.
"""

from __future__ import annotations

import torch
from torch import nn

# Optimizers whose update of one element depends on that element alone.
ELEMENTWISE_OPTIMIZERS = ("gd", "momentum", "rmsprop", "adam")


class FlatParameters:
    """``with``-free helper: ``flatten()`` before training, ``restore()`` after."""

    def __init__(self, net: nn.Module) -> None:
        self.params = [p for p in net.parameters() if p.requires_grad]
        self.flat: nn.Parameter | None = None

    def flatten(self) -> list[nn.Parameter]:
        """Re-seat the parameters as views of one buffer; returns what the optimizer gets."""
        kinds = {(p.dtype, p.device) for p in self.params}
        if len(self.params) < 2 or len(kinds) != 1:
            return self.params
        self.flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in self.params]))
        self.flat.grad = torch.zeros_like(self.flat)
        offset = 0
        for p in self.params:
            n = p.numel()
            p.data = self.flat.data[offset : offset + n].view_as(p)
            p.grad = self.flat.grad[offset : offset + n].view_as(p)
            offset += n
        return [self.flat]

    def zero_grad(self, optimizer: torch.optim.Optimizer) -> None:
        if self.flat is None:
            optimizer.zero_grad(set_to_none=True)
        else:
            self.flat.grad.zero_()

    def restore(self) -> None:
        """Give every parameter its own storage again (saved models must not share memory)."""
        if self.flat is None:
            return
        for p in self.params:
            p.data = p.data.clone()
            p.grad = None
        self.flat = None
