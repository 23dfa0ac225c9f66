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
    time_gain: float = math.nan  # recurrent: ||dJ/dx_first|| / ||dJ/dx_last|| over the sequence
    time_steps: int = 0  # the sequence length behind time_gain
    kind: str = "layer"  # the probe's kind: linear, conv, embedding, attention, recurrent...


@dataclass
class UseFlow:
    """One call of a layer: the gradient at its input and at its block's output."""

    entry: str  # the layer (observation entry) it belongs to
    grad_in: float = math.nan
    grad_out: float = math.nan

    @property
    def gain(self) -> float:
        return self.grad_in / self.grad_out if self.grad_out > 0 and math.isfinite(self.grad_out) else math.nan


@dataclass
class Observation:
    step: int
    loss: float
    layers: dict[str, LayerObservation]
    input_scale: dict[str, float] | None = None
    uses: dict[str, UseFlow] = field(default_factory=dict)  # per call of a layer, in forward order
    wiring: dict[str, list[str]] = field(default_factory=dict)  # use -> the uses its input came from


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

    order: list[str]  # layer and activation uses, as called
    owner: dict[str, str]  # activation use -> the layer use it follows
    grad_in_from: dict[str, str]  # layer use -> the activation use whose output it took
    entry_of: dict[str, str] = field(default_factory=dict)  # layer use -> observation entry
    act_class: dict[str, str] = field(default_factory=dict)  # activation use -> class name
    producers: dict[str, list[str]] = field(default_factory=dict)  # layer use -> uses feeding it
    time_steps: dict[str, int] = field(default_factory=dict)  # recurrent use -> sequence length
    kinds: dict[str, str] = field(default_factory=dict)  # entry -> probe kind


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
    grad_scale: float | None = None  # the loss scale the gradients carry (a GradScaler's), or None


class Reader:
    """Reads consecutive slices of a synchronised vector."""

    def __init__(self, values: list[float]) -> None:
        self.values, self.at = values, 0

    def take(self, n: int) -> list[float]:
        out = self.values[self.at:self.at + n]
        self.at += n
        return out


def decode(raw: RawStep, values: list[float],
           previous: Observation | None = None) -> tuple[Observation, list[float], list[tuple[UpdateLayout, list[float]]]]:
    """The step's observation, the losses it carried, and the update norms it carried.

    ``previous`` (the observation before) supplies the weight norms a step did not measure.
    """
    read = Reader(values)
    n = len(raw.names)
    grad_norms = [g / raw.grad_scale for g in read.take(n)] if raw.grad_scale else read.take(n)
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
    uses = _fill_layers(layers, raw, measured)
    loss = losses[-1] if losses else math.nan
    obs = Observation(step=raw.step, loss=loss, layers=_in_order(layers, raw), input_scale=M.input_scale_summary(scales),
                      uses=uses, wiring=raw.structure.producers)
    return obs, losses, updates


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
    entries = raw.structure.entry_of
    order = [entries[use] for use in raw.structure.order if entries.get(use) in layers]
    return {name: layers[name] for name in dict.fromkeys(order + raw.names)}


def _fill_layers(layers: dict[str, LayerObservation], raw: RawStep, measured: dict[Key, float]) -> dict[str, UseFlow]:
    """Attach hook measurements to layers (a layer's first use) and give every use its flow."""
    nan = math.nan
    structure = raw.structure
    for use, act in structure.grad_in_from.items():
        measured[("grad_in", use)] = measured.get(("grad_act", act), nan)
    act_after = {layer: act for act, layer in structure.owner.items()}
    for entry, layer in layers.items():
        layer.kind = structure.kinds.get(entry, layer.kind)
    uses: dict[str, UseFlow] = {}
    for use, entry in structure.entry_of.items():
        act = act_after.get(use)
        grad_act = measured.get(("grad_act", act), nan) if act else nan
        # A block is the layer and the activation after it (document: z = w a + b, a = g(z)),
        # so its output gradient is taken after the activation; without one, at z.
        grad_out = grad_act if math.isfinite(grad_act) else measured.get(("grad_out", use), nan)
        uses[use] = UseFlow(entry, measured.get(("grad_in", use), nan), grad_out)
        layer = layers.get(entry)
        if layer is None or "#" in use:
            continue  # further uses of a layer count in the flow, its row shows the first
        layer.grad_out = measured.get(("grad_out", use), nan)
        layer.grad_in = uses[use].grad_in
        layer.gain = uses[use].gain
        layer.z_rms = measured.get(("z_rms", use), nan)
        first, last = measured.get(("time_first", use), nan), measured.get(("time_last", use), nan)
        if last > 0:
            layer.time_gain, layer.time_steps = first / last, structure.time_steps.get(use, 0)
        if act is not None:
            layer.activation = structure.act_class.get(act)
            layer.act_rms = measured.get(("act_rms", act), nan)
            layer.grad_act = grad_act
            layer.saturation = measured.get(("saturation", act), nan)
            layer.dead = measured.get(("dead", act), nan)
            if ("dead", act) in measured:
                layer.dead_examples = raw.dead_examples.get(act, 0)
    return uses
