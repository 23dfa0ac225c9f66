"""A gradient-flow monitor that attaches to any ``nn.Module`` from the outside.

In an existing loop it costs two lines::

    monitor = GradientMonitor(model)    # observes every DEFAULT_EVERY (20) steps
    for x, y in batches:
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        monitor.observe(loss)          # after backward, before step
        optimizer.step()
    print(monitor.diagnose().findings)

It is also a training-loop callback: ``gradwise.fit(config, splits, callbacks=[monitor])``.

Every ``every``-th step ("on cadence") it records, per layer, the weight-gradient norm, the
backward gain ||dJ/d input|| / ||dJ/d output|| (document section 1's |w g'(z)|), the
saturation of sigmoid/tanh units, the fraction of dead ReLU units, the update-to-weight
ratio and the scale of inputs and activations; every step it keeps the loss. Hooks are
registered only for on-cadence steps (off-cadence steps cost a counter and a list append)
and each on-cadence step synchronises with the device once. To keep that step cheap,
activation and gradient norms are taken on the batch's first 64 rows (a gain is a ratio of
norms over the same examples) and update norms on each layer's first 4096 weights (see
:mod:`~gradwise.diagnosis.updates`); weight and weight-gradient norms are exact.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from . import measures as M
from .recording import StepRecord
from .updates import PendingUpdate, UpdateProbe

DEFAULT_EVERY = 20  # one observed step in 20 keeps the average cost near 1% (benchmarks/monitor_overhead.py)


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


class GradientMonitor:
    """Watch gradient flow in ``model`` every ``every`` steps; :meth:`diagnose` names problems.

    ``optimizer`` is optional: when given, update-to-weight ratios are measured right after
    its step; without it they are measured at the next :meth:`observe`.
    """

    def __init__(self, model: nn.Module | None = None, every: int = DEFAULT_EVERY, optimizer: torch.optim.Optimizer | None = None) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ConfigError(f"every must be a positive integer (observe every N steps), got {every!r}")
        self.every = every
        self.model: nn.Module | None = None
        self.optimizer = optimizer
        self.config: Any = None  # the TrainConfig, when used as a gradwise.fit callback
        self.observations: list[Observation] = []
        self.losses: list[float] = []  # every observed step's loss
        self.epoch_losses: list[float] = []  # mean train loss per epoch (fit callback only)
        self.stopped_nonfinite = False
        self._steps = 0
        self._handles: list[Any] = []
        self._post_hook = None
        self._record = StepRecord()
        self._loss_buffer: list[torch.Tensor] = []
        self._updates = UpdateProbe()
        self._unsynced_updates: list[PendingUpdate] = []
        self._alive_history: dict[str, deque] = {}
        self._by_step: dict[int, Observation] = {}
        self._dead_examples: dict[str, int] = {}
        self._direct: frozenset[str] = frozenset()  # layers seen feeding an activation directly
        if model is not None:
            self.attach(model, optimizer)

    # ---- attaching ----

    def attach(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> "GradientMonitor":
        """Find the layers and activations of ``model`` and arm the hooks for the next step."""
        self.detach()
        self.model = model
        self.layers = [(name, m) for name, m in model.named_modules() if M.is_weighted_layer(m)]
        self.activations = [(name, m, M.activation_kind(m)) for name, m in model.named_modules() if M.activation_kind(m)]
        if not self.layers:
            raise ConfigError(f"{type(model).__name__} has no layer with a weight matrix to monitor")
        self._modules = dict(self.layers)
        self._direct = frozenset()
        self._record = StepRecord()
        self._activation_modules = {name: m for name, m, _ in self.activations}
        if optimizer is not None:
            self.optimizer = optimizer
            self._post_hook = optimizer.register_step_post_hook(lambda *_: self._finish_update())
        self._arm(self._steps % self.every == 0)
        return self

    def detach(self) -> None:
        """Remove every hook; the model and optimizer are as they were before attaching."""
        self._arm(False)
        if self._post_hook is not None:
            self._post_hook.remove()
            self._post_hook = None

    def _arm(self, on: bool) -> None:
        if on and not self._handles and self.model is not None:
            for name, module in self.layers:
                self._handles.append(module.register_forward_hook(partial(self._layer_hook, name)))
            for name, module, kind in self.activations:
                self._handles.append(module.register_forward_hook(partial(self._activation_hook, name, kind)))
        elif not on:
            for handle in self._handles:
                handle.remove()
            self._handles = []

    def _layer_hook(self, name: str, module: nn.Module, inputs: tuple, output: Any) -> None:
        if torch.is_grad_enabled():  # evaluation passes under no_grad are not training steps
            with torch.no_grad():
                self._record.on_layer(name, module, inputs, output)  # the record is replaced at observe

    def _activation_hook(self, name: str, kind: str, module: nn.Module, inputs: tuple, output: Any) -> None:
        if torch.is_grad_enabled():
            with torch.no_grad():
                self._record.on_activation(name, kind, module, inputs, output)

    # ---- stepping ----

    def observe(self, loss: torch.Tensor | None = None) -> None:
        """Call after ``loss.backward()`` and before ``optimizer.step()``, every step."""
        step = self._steps
        self._steps += 1
        if self._updates.armed:
            self._finish_update()  # the previous on-cadence step's update has been applied
        if loss is not None:
            self._loss_buffer.append(loss.detach())
        if step % self.every == 0 and self.model is not None:
            self._observe_now(step)
        self._arm((step + 1) % self.every == 0)

    def _finish_update(self) -> None:
        pending = self._updates.after_step()
        if pending is not None:
            self._unsynced_updates.append(pending)

    def _observe_now(self, step: int) -> None:
        rec = self._record
        self._direct = frozenset(rec.fed_directly) if rec.order else self._direct
        self._record = StepRecord(direct=self._direct)
        with torch.no_grad():
            names = [n for n, m in self.layers if m.weight.grad is not None]
            weights = [self._modules[n].weight for n in names]
            taken_keys, taken, deferred_keys, deferred, counts = rec.norm_list()
            # One fused call for the weight and gradient norms of every layer and the hooks' norms.
            parts = [M.norms([w.grad for w in weights] + weights + deferred)]
            if taken is not None:
                parts.append(taken)
            self._updates.before_step(step, names, weights)
            fraction_keys = list(rec.fractions)
            if fraction_keys:
                parts.append(torch.stack([rec.fractions[k] for k in fraction_keys]))
            dead_layout = self._alive_counts(rec, parts)
            feature_count = 0
            if rec.input_x is not None:
                feature_norms, feature_count = M.feature_norms(rec.input_x)
                parts.append(feature_norms)
            values = _Cursor(self._sync(parts))
        n = len(names)
        grad_norms, weight_norms = values.take(n), values.take(n)
        measured = dict(zip(deferred_keys + taken_keys, values.take(len(deferred_keys) + len(taken_keys))))
        for key, count in counts.items():
            if key in measured:
                measured[key] /= math.sqrt(max(count, 1))  # norm -> RMS
        measured.update(zip(fraction_keys, values.take(len(fraction_keys))))
        for (name, size), alive in zip(dead_layout, values.take(len(dead_layout))):
            measured[("dead", name)] = (size - alive) / max(size, 1)
        root = math.sqrt(max(feature_count, 1))
        scales = [v / root for v in values.take(values.remaining())]
        obs = self._build(step, names, grad_norms, weight_norms, rec, measured, M.input_scale_summary(scales))
        self.observations.append(obs)
        self._by_step[step] = obs

    def _alive_counts(self, rec: StepRecord, parts: list[torch.Tensor]) -> list[tuple[str, int]]:
        """Append, per ReLU layer, how many units were active in recent batches.

        A unit is alive if any of enough recent examples (DEAD_MIN_EXAMPLES, pooled over
        batches when one batch is smaller) activated it. The counts are taken on the device,
        so a layer costs one number in the synchronised vector, not one per unit.
        """
        layout, maxima = [], []
        for name, (unit, n) in rec.unit_max.items():
            history = self._alive_history.setdefault(name, deque())
            history.append((unit, n))
            examples = self._dead_examples.get(name, 0) + n
            # Keep just enough recent batches to judge "never active" on DEAD_MIN_EXAMPLES examples.
            while len(history) > 1 and examples - history[0][1] >= M.DEAD_MIN_EXAMPLES:
                examples -= history.popleft()[1]
            self._dead_examples[name] = examples
            maxima.append(unit if len(history) == 1 else M.pooled_max([m for m, _ in history]))
            layout.append((name, unit.numel()))
        if maxima:
            parts.append(M.positive_counts(maxima))
        return layout

    def _sync(self, parts: list[torch.Tensor]) -> list[float]:
        """One transfer for this step's numbers and the pending losses and updates.

        Returns the step's own numbers; losses and update norms are filed away here.
        """
        losses = self._take_losses()
        updates, self._unsynced_updates = self._unsynced_updates, []
        tail = [losses] + [u.norms for u in updates]
        device = parts[0].device
        everything = [p if p.device == device else p.to(device) for p in parts + tail]
        values = torch.cat([p if p.dim() == 1 else p.reshape(-1) for p in everything]).tolist()
        n_tail = sum(t.numel() for t in tail)
        own, rest = values[: len(values) - n_tail], values[len(values) - n_tail:]
        loss_values = rest[: losses.numel()]
        self.losses.extend(loss_values)
        self._last_loss = loss_values[-1] if loss_values else math.nan
        self._assign_updates(updates, rest[losses.numel():])
        return own

    def _take_losses(self) -> torch.Tensor:
        buffer, self._loss_buffer = self._loss_buffer, []
        if not buffer:
            return torch.zeros(0)
        return torch.stack([b if b.dim() == 0 else b.float().mean() for b in buffer])

    def _assign_updates(self, updates: list[PendingUpdate], values: list[float]) -> None:
        """Each update arrives as ||ΔW_block|| per layer; the ratio uses the exact ||W||."""
        i = 0
        for update in updates:
            obs = self._by_step.get(update.step)
            for name, scale, delta in zip(update.names, update.scales, values[i:i + len(update.names)]):
                layer = obs.layers.get(name) if obs is not None else None
                if layer is not None:
                    w = layer.weight_norm
                    layer.update_ratio = delta * scale / w if w > 0 else math.nan
            i += len(update.names)

    def _build(self, step: int, names: list[str], grad_norms: list[float], weight_norms: list[float],
               rec: StepRecord, measured: dict[tuple[str, str], float], input_scale: dict | None) -> Observation:
        layers = {name: LayerObservation(grad_norm=g, weight_norm=w) for name, g, w in zip(names, grad_norms, weight_norms)}
        for layer, act in rec.grad_in_from.items():
            measured[("grad_in", layer)] = measured.get(("grad_act", act), math.nan)
        order = [name for name in rec.order if name in layers] or names
        _fill_layers(layers, order, rec.owner, measured, self._activation_modules)
        for act, owner in rec.owner.items():
            if owner in layers and act in rec.unit_max:
                layers[owner].dead_examples = self._dead_examples.get(act, 0)
        ordered = {name: layers[name] for name in dict.fromkeys(order + names)}
        return Observation(step=step, loss=self._last_loss, layers=ordered, input_scale=input_scale)

    def flush(self) -> None:
        """Measure any pending update and synchronise what is still on the device."""
        self._finish_update()
        updates, self._unsynced_updates = self._unsynced_updates, []
        if updates:
            values = torch.cat([u.norms.reshape(-1).float().cpu() for u in updates]).tolist()
            self._assign_updates(updates, values)
        if self._loss_buffer:
            self.losses.extend(self._take_losses().float().cpu().tolist())

    # ---- results ----

    def layer_table(self) -> list[dict[str, Any]]:
        """Per layer, the median of each measure over all observations."""
        from .rules import layer_summary  # rules import nothing from here; avoid a cycle anyway

        self.flush()
        return layer_summary(self.observations)

    def diagnose(self, config: Any = None) -> "Diagnosis":
        """Turn what was observed into findings; ``config`` (a TrainConfig) tailors the fixes."""
        from .rules import diagnose as run_rules

        self.flush()
        return run_rules(self, config if config is not None else self.config)

    def current_lr(self) -> float | None:
        if self.optimizer is not None and self.optimizer.param_groups:
            return float(self.optimizer.param_groups[0].get("lr", math.nan))
        return None

    # ---- gradwise.fit callback protocol ----

    def on_train_start(self, state: Any) -> None:
        self.config = state.config
        self.optimizer = state.optimizer
        if self.model is not state.model:
            self.attach(state.model)

    def on_after_backward(self, state: Any, loss: torch.Tensor) -> None:
        self.observe(loss)
        if self.losses and not math.isfinite(self.losses[-1]):
            # Known without an extra sync (it came back with this step's numbers): stop now,
            # the diagnosis has what it needs and further NaN steps teach nothing.
            self.stopped_nonfinite = True
            from ..training.callbacks import StopTraining

            raise StopTraining(
                f"non-finite loss (NaN or inf) at step {len(self.losses) - 1}: training diverged; "
                "see the diagnosis for fixes"
            )

    def on_step_end(self, state: Any) -> None:
        self._finish_update()

    def on_epoch_end(self, state: Any, record: Any) -> None:
        self.epoch_losses.append(float(record.train_loss))
        if not all(math.isfinite(v) for v in (record.train_loss, record.val_loss) if v is not None):
            self.stopped_nonfinite = True

    def on_train_end(self, state: Any) -> None:
        self.flush()
        self._arm(False)


class _Cursor:
    """Reads consecutive slices of the synchronised vector."""

    def __init__(self, values: list[float]) -> None:
        self.values, self.at = values, 0

    def take(self, n: int) -> list[float]:
        out = self.values[self.at:self.at + n]
        self.at += n
        return out

    def remaining(self) -> int:
        return len(self.values) - self.at


def _fill_layers(layers: dict[str, LayerObservation], order: list[str], owners: dict[str, str],
                 measured: dict[tuple[str, str], float], activations: dict[str, nn.Module]) -> None:
    """Attach hook measurements to layers and compute block gains in forward order."""
    nan = math.nan
    for name in order:
        layer = layers[name]
        layer.grad_out = measured.get(("grad_out", name), nan)
        layer.grad_in = measured.get(("grad_in", name), nan)
        layer.z_rms = measured.get(("z_rms", name), nan)
    for act, owner in owners.items():
        layer = layers.get(owner)
        if layer is None:
            continue
        layer.activation = type(activations[act]).__name__
        layer.act_rms = measured.get(("act_rms", act), nan)
        layer.grad_act = measured.get(("grad_act", act), nan)
        layer.saturation = measured.get(("saturation", act), nan)
        layer.dead = measured.get(("dead", act), nan)
    for name in order:
        # A block is the layer and the activation after it (document: z = w a + b, a = g(z)),
        # so its output gradient is taken after the activation; without one, at z.
        layer = layers[name]
        out = layer.grad_act if math.isfinite(layer.grad_act) else layer.grad_out
        layer.gain = layer.grad_in / out if out and math.isfinite(out) and out > 0 else nan
