"""What one observed step measured, and how the raw numbers become per-layer observations.

An observed step leaves a :class:`RawStep` behind: one vector of numbers still on the
model's device, plus the layout needed to read it. Reading it (a device synchronisation and
some Python per layer) waits until the observations are asked for, by :meth:`diagnose`,
:attr:`GradientMonitor.observations` or a stop on a non-finite loss, so that training steps
pay for the measuring, not for the bookkeeping, and a GPU is synchronised once for many
observed steps instead of once per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
import torch
from torch import nn

from . import measures as M

Key = tuple[str, str]  # (measure, module name)


@dataclass
class LayerObservation:
    """One layer at one on-cadence step (NaN where a number could not be measured)."""

    grad_norm: float = math.nan
    weight_norm: float = math.nan
    grad_in: float = math.nan  # ||dJ/d input||
    grad_out: float = math.nan  # ||dJ/d output|| (the pre-activation z)
    gain: float = math.nan  # ||dJ/d block input|| / ||dJ/d block output||
    z_rms: float = math.nan
    act_rms: float = math.nan
    grad_act: float = math.nan  # ||dJ/d output of the activation that follows||
    activation: str | None = None  # class name of the activation that follows
    saturation: float = math.nan
    dead: float = math.nan
    dead_examples: int = 0  # examples behind the dead fraction
    update_ratio: float = math.nan


@dataclass
class Observation:
    step: int
    loss: float
    layers: dict[str, LayerObservation]
    input_scale: dict[str, float] | None = None


@dataclass
class UpdateLayout:
    """Where one observed step's update norms sit: ||ΔW_block|| per layer, and the scale to
    the whole layer (sqrt(layer entries / block entries))."""

    step: int
    names: list[str]
    scales: list[float]


@dataclass
class Structure:
    """How the model's blocks were wired at a step (from the forward hooks)."""

    order: list[str]
    owner: dict[str, str]  # activation -> the layer it follows
    grad_in_from: dict[str, str]  # layer -> the activation whose output it took


@dataclass
class RawStep:
    """One observed step's numbers, unsynchronised, and the layout to read them.

    ``values`` holds, in order: the gradient norm of each layer in ``names`` and, when
    ``weighed``, its weight norm; the update norms of ``updates``; the hooks' norms (``keys``); the saturation
    fractions; the active-unit counts of ``dead_layout``; the input's feature norms; then
    ``n_losses`` losses (every step's since the previous observed step) and the update norms
    of ``late_updates``.
    """

    step: int
    names: list[str]
    weighed: bool  # weight norms measured at this step (else carried from the previous one)
    structure: Structure
    keys: list[Key]
    counts: dict[Key, int]
    fraction_keys: list[Key]
    dead_layout: list[tuple[str, int]]
    dead_examples: dict[str, int]
    feature_count: int
    n_features: int
    n_losses: int
    values: torch.Tensor
    updates: list[UpdateLayout] = field(default_factory=list)
    late_updates: list[UpdateLayout] = field(default_factory=list)


class Reader:
    """Reads consecutive slices of a synchronised vector."""

    def __init__(self, values: list[float]) -> None:
        self.values, self.at = values, 0

    def take(self, n: int) -> list[float]:
        out = self.values[self.at:self.at + n]
        self.at += n
        return out


def decode(raw: RawStep, values: list[float], activations: dict[str, nn.Module],
           previous: Observation | None = None) -> tuple[Observation, list[float], list[tuple[UpdateLayout, list[float]]]]:
    """The step's observation, the losses it carried, and the update norms it carried.

    ``previous`` (the observation before) supplies the weight norms a step did not measure.
    """
    read = Reader(values)
    n = len(raw.names)
    grad_norms = read.take(n)
    weight_norms = read.take(n) if raw.weighed else _carried_weight_norms(raw.names, previous)
    updates = [(u, read.take(len(u.names))) for u in raw.updates]
    measured = dict(zip(raw.keys, read.take(len(raw.keys))))
    for key, count in raw.counts.items():
        if key in measured:
            measured[key] /= math.sqrt(max(count, 1))  # norm -> RMS
    measured.update(zip(raw.fraction_keys, read.take(len(raw.fraction_keys))))
    for (name, size), alive in zip(raw.dead_layout, read.take(len(raw.dead_layout))):
        measured[("dead", name)] = (size - alive) / max(size, 1)
    root = math.sqrt(max(raw.feature_count, 1))
    scales = [v / root for v in read.take(raw.n_features)]
    losses = read.take(raw.n_losses)
    updates += [(u, read.take(len(u.names))) for u in raw.late_updates]
    layers = {name: LayerObservation(grad_norm=g, weight_norm=w) for name, g, w in zip(raw.names, grad_norms, weight_norms)}
    _fill_layers(layers, raw, measured, activations)
    loss = losses[-1] if losses else math.nan
    return Observation(step=raw.step, loss=loss, layers=_in_order(layers, raw), input_scale=M.input_scale_summary(scales)), losses, updates


def _carried_weight_norms(names: list[str], previous: Observation | None) -> list[float]:
    layers = previous.layers if previous is not None else {}
    return [layers[name].weight_norm if name in layers else math.nan for name in names]


def decode_tail(values: list[float], n_losses: int, updates: list[UpdateLayout]) -> tuple[list[float], list[tuple[UpdateLayout, list[float]]]]:
    """Losses and update norms synchronised without an observation (at flush)."""
    read = Reader(values)
    losses = read.take(n_losses)
    return losses, [(u, read.take(len(u.names))) for u in updates]


def assign_update(obs: Observation | None, update: UpdateLayout, deltas: list[float]) -> None:
    """update ratio = ||ΔW_block|| · scale / ||W|| (the exact weight norm of the same step)."""
    if obs is None:
        return
    for name, scale, delta in zip(update.names, update.scales, deltas):
        layer = obs.layers.get(name)
        if layer is not None:
            w = layer.weight_norm
            layer.update_ratio = delta * scale / w if w > 0 else math.nan


def _in_order(layers: dict[str, LayerObservation], raw: RawStep) -> dict[str, LayerObservation]:
    order = [name for name in raw.structure.order if name in layers]
    return {name: layers[name] for name in dict.fromkeys(order + raw.names)}


def _fill_layers(layers: dict[str, LayerObservation], raw: RawStep, measured: dict[Key, float], activations: dict[str, nn.Module]) -> None:
    """Attach hook measurements to layers and compute block gains in forward order."""
    nan = math.nan
    structure = raw.structure
    for layer, act in structure.grad_in_from.items():
        measured[("grad_in", layer)] = measured.get(("grad_act", act), nan)
    for name, layer in layers.items():
        layer.grad_out = measured.get(("grad_out", name), nan)
        layer.grad_in = measured.get(("grad_in", name), nan)
        layer.z_rms = measured.get(("z_rms", name), nan)
    for act, owner in structure.owner.items():
        layer = layers.get(owner)
        if layer is None:
            continue
        layer.activation = type(activations[act]).__name__
        layer.act_rms = measured.get(("act_rms", act), nan)
        layer.grad_act = measured.get(("grad_act", act), nan)
        layer.saturation = measured.get(("saturation", act), nan)
        layer.dead = measured.get(("dead", act), nan)
        if ("dead", act) in measured:
            layer.dead_examples = raw.dead_examples.get(act, 0)
    for layer in layers.values():
        # A block is the layer and the activation after it (document: z = w a + b, a = g(z)),
        # so its output gradient is taken after the activation; without one, at z.
        out = layer.grad_act if math.isfinite(layer.grad_act) else layer.grad_out
        layer.gain = layer.grad_in / out if out and math.isfinite(out) and out > 0 else nan
