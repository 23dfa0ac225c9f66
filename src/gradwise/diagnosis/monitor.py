"""A gradient-flow monitor that attaches to any ``nn.Module`` from the outside.

In an existing loop it costs two lines::

    monitor = GradientMonitor(model, every=10)
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
and each on-cadence step synchronises with the device once.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from . import measures as M

DEFAULT_EVERY = 10


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
class _StepRecord:
    """Device tensors gathered by the hooks during one on-cadence forward/backward."""

    order: list[str] = field(default_factory=list)
    input_rms: torch.Tensor | None = None
    grad_out: dict[str, torch.Tensor] = field(default_factory=dict)
    grad_in: dict[str, torch.Tensor] = field(default_factory=dict)
    grad_act: dict[str, torch.Tensor] = field(default_factory=dict)
    z_rms: dict[str, torch.Tensor] = field(default_factory=dict)
    act_rms: dict[str, torch.Tensor] = field(default_factory=dict)
    saturation: dict[str, torch.Tensor] = field(default_factory=dict)
    alive: dict[str, tuple[torch.Tensor, int]] = field(default_factory=dict)


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
        self._record = _StepRecord()
        self._loss_buffer: list[torch.Tensor] = []
        self._snapshot: tuple[int, list[str], list[torch.Tensor], torch.Tensor] | None = None
        self._unsynced_updates: list[tuple[int, list[str], torch.Tensor]] = []
        self._alive_history: dict[str, deque] = {}
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

    # ---- hooks (on-cadence steps only) ----

    def _layer_hook(self, name: str, module: nn.Module, inputs: tuple, output: Any) -> None:
        if not torch.is_grad_enabled() or not isinstance(output, torch.Tensor):
            return  # evaluation passes are not training steps
        rec = self._record
        x = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        if x is not None and not any(n in rec.z_rms for n, _ in self.layers):
            rec.input_rms = M.feature_rms(x)  # what the first layer receives, after any normalizer
        rec.order.append(name)
        rec.z_rms[name] = M.rms(output)
        if output.requires_grad:
            # A first Linear layer's input needs no gradient; compute ||dJ/dx|| = ||dJ/dz W|| ourselves.
            manual = module if isinstance(module, nn.Linear) and (x is None or not x.requires_grad) else None
            output.register_hook(partial(self._on_grad_out, rec, name, manual))
        if x is not None and x.requires_grad:
            x.register_hook(partial(self._on_grad_in, rec, name))

    @staticmethod
    def _on_grad_out(rec: _StepRecord, name: str, linear: nn.Linear | None, grad: torch.Tensor) -> None:
        rec.grad_out[name] = M.tensor_norm(grad)
        if linear is not None:
            rec.grad_in[name] = M.tensor_norm(grad.detach() @ linear.weight.detach())

    @staticmethod
    def _on_grad_act(rec: _StepRecord, name: str, grad: torch.Tensor) -> None:
        rec.grad_act[name] = M.tensor_norm(grad)

    @staticmethod
    def _on_grad_in(rec: _StepRecord, name: str, grad: torch.Tensor) -> None:
        rec.grad_in[name] = M.tensor_norm(grad)

    def _activation_hook(self, name: str, kind: str, module: nn.Module, inputs: tuple, output: Any) -> None:
        if not torch.is_grad_enabled() or not isinstance(output, torch.Tensor):
            return
        rec = self._record
        rec.order.append(name)
        rec.act_rms[name] = M.rms(output)
        if output.requires_grad:
            output.register_hook(partial(self._on_grad_act, rec, name))
        if kind == "relu":
            # Judged from the output: an in-place ReLU has already overwritten its input.
            rec.alive[name] = (M.active_units(output), int(output.shape[0]) if output.dim() else 1)
        elif kind == "saturating":
            rec.saturation[name] = _saturation(module, inputs[0], output)

    # ---- stepping ----

    def observe(self, loss: torch.Tensor | None = None) -> None:
        """Call after ``loss.backward()`` and before ``optimizer.step()``, every step."""
        step = self._steps
        self._steps += 1
        if self._snapshot is not None:
            self._finish_update()  # the previous on-cadence step's update has been applied
        if loss is not None:
            self._loss_buffer.append(loss.detach())
        if step % self.every == 0 and self.model is not None:
            self._observe_now(step)
        self._arm((step + 1) % self.every == 0)

    def _finish_update(self) -> None:
        if self._snapshot is None:
            return
        step, names, before, before_norms = self._snapshot
        self._snapshot = None
        modules = dict(self.layers)
        after = [modules[n].weight for n in names]
        self._unsynced_updates.append((step, names, M.update_ratios(after, before, before_norms)))

    def _observe_now(self, step: int) -> None:
        rec, self._record = self._record, _StepRecord()
        names = [n for n, m in self.layers if m.weight.grad is not None]
        modules = dict(self.layers)
        weights = [modules[n].weight.detach() for n in names]
        grad_norms = M.norms([modules[n].weight.grad for n in names])
        weight_norms = M.norms(weights)
        self._snapshot = (step, names, [w.clone() for w in weights], weight_norms)
        keys, scalars = self._gather(rec)
        values = self._sync(grad_norms, weight_norms, scalars)
        obs = self._build(step, names, rec, keys, values)
        self.observations.append(obs)

    def _gather(self, rec: _StepRecord) -> tuple[list[tuple[str, str]], list[torch.Tensor]]:
        """Every per-step scalar as (kind, name) keys and 0-d tensors, for one stack."""
        keys: list[tuple[str, str]] = []
        scalars: list[torch.Tensor] = []
        for kind in ("grad_out", "grad_in", "grad_act", "z_rms", "act_rms", "saturation"):
            for name, value in getattr(rec, kind).items():
                keys.append((kind, name))
                scalars.append(value)
        for name, (mask, n) in rec.alive.items():
            history = self._alive_history.setdefault(name, deque())
            history.append((mask, n))
            # Keep just enough recent batches to judge "never active" on DEAD_MIN_EXAMPLES examples.
            while len(history) > 1 and sum(k for _, k in history) - history[0][1] >= M.DEAD_MIN_EXAMPLES:
                history.popleft()
            keys.append(("dead", name))
            scalars.append(M.dead_fraction([m for m, _ in history]))
        if rec.input_rms is not None:
            summary = M.input_scale_summary(rec.input_rms)
            keys += [("input", "max"), ("input", "median"), ("input", "feature")]
            scalars += list(summary.unbind())
        return keys, scalars

    def _sync(self, grad_norms: torch.Tensor, weight_norms: torch.Tensor, scalars: list[torch.Tensor]) -> list[float]:
        """Bring every number of this step (and pending losses and updates) back at once."""
        device = grad_norms.device
        parts = [grad_norms, weight_norms]
        if scalars:
            parts.append(torch.stack([s.to(device, torch.float32) for s in scalars]))
        losses = self._take_losses(device)
        updates, self._unsynced_updates = self._unsynced_updates, []
        parts += [losses] + [u.to(device) for _, _, u in updates]
        values = torch.cat([p.reshape(-1).float() for p in parts]).tolist()
        n_loss = losses.numel()
        tail = len(values) - sum(u.numel() for _, _, u in updates)
        self._assign_updates(updates, values[tail:])
        loss_values = values[tail - n_loss:tail]
        self.losses.extend(loss_values)
        self._last_loss = loss_values[-1] if loss_values else math.nan
        return values[: tail - n_loss]

    def _take_losses(self, device: torch.device) -> torch.Tensor:
        buffer, self._loss_buffer = self._loss_buffer, []
        if not buffer:
            return torch.zeros(0, device=device)
        return torch.stack([b.reshape(()) if b.numel() == 1 else b.float().mean() for b in buffer]).float().to(device)

    def _assign_updates(self, updates: list[tuple[int, list[str], torch.Tensor]], values: list[float]) -> None:
        by_step = {o.step: o for o in self.observations}
        i = 0
        for step, names, _ in updates:
            for name in names:
                obs = by_step.get(step)
                if obs is not None and name in obs.layers:
                    obs.layers[name].update_ratio = values[i]
                i += 1

    def _build(self, step: int, names: list[str], rec: _StepRecord, keys: list[tuple[str, str]], values: list[float]) -> Observation:
        n = len(names)
        layers = {name: LayerObservation(grad_norm=values[i], weight_norm=values[n + i]) for i, name in enumerate(names)}
        measured: dict[tuple[str, str], float] = dict(zip(keys, values[2 * n:]))
        order = [name for name in rec.order if name in layers] or names
        _fill_layers(layers, order, rec.order, measured, dict((nm, m) for nm, m, _ in self.activations))
        for name, (_, count) in rec.alive.items():
            owner = _owner(rec.order, name, layers)
            if owner is not None:
                layers[owner].dead_examples = sum(k for _, k in self._alive_history[name])
        input_scale = None
        if ("input", "max") in measured:
            input_scale = {k: measured[("input", k)] for k in ("max", "median", "feature")}
        ordered = {name: layers[name] for name in dict.fromkeys(order + names)}
        return Observation(step=step, loss=self._last_loss, layers=ordered, input_scale=input_scale)

    def flush(self) -> None:
        """Measure any pending update and synchronise what is still on the device."""
        self._finish_update()
        updates, self._unsynced_updates = self._unsynced_updates, []
        if updates:
            values = torch.cat([u.reshape(-1).float().cpu() for _, _, u in updates]).tolist()
            self._assign_updates(updates, values)
        if self._loss_buffer:
            self.losses.extend(self._take_losses(torch.device("cpu")).tolist())

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
        if not math.isfinite(record.train_loss):
            self.stopped_nonfinite = True

    def on_train_end(self, state: Any) -> None:
        self.flush()
        self._arm(False)


def _saturation(module: nn.Module, z: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    if isinstance(module, nn.Sigmoid):
        return M.saturation_fraction(z, M.SATURATION_THRESHOLD["sigmoid"])
    if isinstance(module, nn.Tanh):
        return M.saturation_fraction(z, M.SATURATION_THRESHOLD["tanh"])
    if isinstance(module, nn.Hardsigmoid):
        return M.hard_saturation_fraction(out, 0.0, 1.0)
    return M.hard_saturation_fraction(out, float(module.min_val), float(module.max_val))  # Hardtanh


def _owner(order: list[str], activation: str, layers: dict[str, LayerObservation]) -> str | None:
    """The weighted layer called last before ``activation`` in the forward pass."""
    owner = None
    for name in order:
        if name == activation:
            return owner
        if name in layers:
            owner = name
    return None


def _fill_layers(layers: dict[str, LayerObservation], order: list[str], calls: list[str],
                 measured: dict[tuple[str, str], float], activations: dict[str, nn.Module]) -> None:
    """Attach hook measurements to layers and compute block gains in forward order."""
    nan = math.nan
    for name in order:
        layer = layers[name]
        layer.grad_out = measured.get(("grad_out", name), nan)
        layer.grad_in = measured.get(("grad_in", name), nan)
        layer.z_rms = measured.get(("z_rms", name), nan)
    for act in activations:
        owner = _owner(calls, act, layers)
        if owner is None or layers[owner].activation is not None:
            continue
        layer = layers[owner]
        layer.activation = type(activations[act]).__name__
        layer.act_rms = measured.get(("act_rms", act), nan)
        layer.grad_act = measured.get(("grad_act", act), nan)
        layer.saturation = measured.get(("saturation", act), nan)
        layer.dead = measured.get(("dead", act), nan)
    for i, name in enumerate(order):
        # A block is the layer and the activation after it (document: z = w a + b, a = g(z)),
        # so its output gradient is taken after the activation; without one, at z.
        layer = layers[name]
        out = layer.grad_act if math.isfinite(layer.grad_act) else layer.grad_out
        layer.gain = layer.grad_in / out if out and math.isfinite(out) and out > 0 else nan
