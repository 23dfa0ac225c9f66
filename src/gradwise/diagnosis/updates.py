"""The update-to-weight ratio ||ΔW|| / ||W|| of each layer across one optimizer step.

The monitor cannot see inside the optimizer, so it copies a fixed block of each layer's
weights before the step and subtracts after it. The copies live in buffers allocated once
and reused (a monitor observing every step would otherwise allocate and free them every
step), and the subtraction happens in place in those buffers.

Rows of a weight matrix are exchangeable units, so the block (the first
:data:`UPDATE_SAMPLE` entries) estimates the whole layer's update norm once scaled by
sqrt(entries / block entries); the ratio divides by the layer's exact weight norm, which the
monitor measures anyway. Layers with at most UPDATE_SAMPLE weights are measured exactly.
"""

from __future__ import annotations

import math

import torch

from .observation import UpdateLayout

# Weight entries per layer behind the update norm. Copying and subtracting the block is
# memory-bound right after the optimizer has streamed through its state; 4096 entries keep
# it cheap on every step and still average over thousands of weights.
UPDATE_SAMPLE = 4096


def weight_block(weight: torch.Tensor) -> torch.Tensor:
    """A view of the layer's first UPDATE_SAMPLE weights, the block whose update is measured."""
    flat = weight.detach().reshape(-1)
    return flat[:UPDATE_SAMPLE] if flat.numel() > UPDATE_SAMPLE else flat


class UpdateProbe:
    """Copies weight blocks before an optimizer step and measures how far they moved."""

    def __init__(self) -> None:
        self._blocks: dict[str, tuple[int, torch.Tensor]] = {}
        self._scales: dict[str, float] = {}  # sqrt(layer entries / block entries)
        self._buffers: list[torch.Tensor] = []
        self._armed: tuple[int, list[str], list[torch.Tensor]] | None = None

    @property
    def armed(self) -> bool:
        return self._armed is not None

    def before_step(self, step: int, names: list[str], weights: list[torch.Tensor]) -> None:
        """Remember the blocks of ``weights`` (called at an observed step, before the update)."""
        if not weights:  # no layer had a gradient this step: nothing will move
            return
        blocks = [self._block(name, w) for name, w in zip(names, weights)]
        buffers = self._buffers_like(blocks)
        _copy_all(buffers, blocks)
        self._armed = (step, names, blocks)

    def subtract(self) -> tuple[UpdateLayout, list[torch.Tensor]] | None:
        """After the step: turn the copies into W_before - W_after (the update, negated; its
        norm is the same) and return them with their layout; None when nothing was armed.

        The caller takes the norms, so that they can join another fused call.
        """
        if self._armed is None:
            return None
        step, names, blocks = self._armed
        self._armed = None
        moved = self._buffers[: len(blocks)]
        with torch.no_grad():
            _sub_all(moved, blocks)
        return UpdateLayout(step, names, [self._scales[name] for name in names]), moved

    def _block(self, name: str, weight: torch.Tensor) -> torch.Tensor:
        """The layer's block as a view, rebuilt only when the weight's storage changed."""
        cached = self._blocks.get(name)
        if cached is None or cached[0] != weight.data_ptr():
            cached = (weight.data_ptr(), weight_block(weight))
            self._blocks[name] = cached
            self._scales[name] = math.sqrt(weight.numel() / cached[1].numel())
        return cached[1]

    def _buffers_like(self, blocks: list[torch.Tensor]) -> list[torch.Tensor]:
        """Reuse the buffers when they still match the blocks; otherwise allocate new ones."""
        same = len(self._buffers) == len(blocks) and all(
            b.shape == k.shape and b.dtype == k.dtype and b.device == k.device for b, k in zip(self._buffers, blocks)
        )
        if not same:
            self._buffers = [torch.empty_like(k) for k in blocks]
        return self._buffers


def _copy_all(dst: list[torch.Tensor], src: list[torch.Tensor]) -> None:
    if hasattr(torch, "_foreach_copy_"):
        torch._foreach_copy_(dst, src)
    else:
        for d, s in zip(dst, src):
            d.copy_(s)


def _sub_all(dst: list[torch.Tensor], src: list[torch.Tensor]) -> None:
    if len({t.dtype for t in dst}) == 1:
        torch._foreach_sub_(dst, src)
    else:
        for d, s in zip(dst, src):
            d.sub_(s)
