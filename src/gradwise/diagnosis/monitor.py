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
registered only for on-cadence steps (off-cadence steps cost a counter and a list append).

Observing more often than every DEFAULT_EVERY steps (``every=1`` to catch the step where a
gradient blows up) makes most observed steps *lean*: the quantities that change slowly, the
weight norms (the update ratio's denominator, carried between), the input scale and the
dead-unit fractions, are measured on *full* steps, one in DEFAULT_EVERY steps, and so are
the hooks of interior layers, which only confirm how the blocks are wired.
An observed step leaves its numbers on the device in one vector; they are read back, with
one synchronisation for all the steps waiting, when the observations are asked for (see
:mod:`~gradwise.diagnosis.observation`). To keep the observed step cheap, activation and
gradient norms are taken on the batch's first 64 rows (a gain is a ratio of norms over the
same examples) and update norms on each layer's first 4096 weights (see
:mod:`~gradwise.diagnosis.updates`); weight and weight-gradient norms are exact.
"""

from __future__ import annotations

import math
from array import array
import warnings
import weakref
from collections import deque
from functools import partial
from typing import TYPE_CHECKING, Any, Sequence

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from ..errors import ConfigError
from . import measures as M
from .observation import (
    LayerObservation,
    Observation,
    RawStep,
    Structure,
    UpdateLayout,
    assign_update,
    decode,
    decode_tail,
)
from .probes import Probe, find_layers, integer
from .recording import StepRecord
from .updates import UpdateProbe

if TYPE_CHECKING:
    from .findings import Diagnosis

__all__ = ["DEFAULT_EVERY", "GradientMonitor", "LayerObservation", "Observation"]

DEFAULT_EVERY = 20  # one observed step in 20 keeps the average cost near 1% (benchmarks/monitor_overhead.py)
READ_BACK_EVERY = 512  # observed steps left on the device at most before they are read back
# Observations kept at most. Each holds every layer's numbers (about 4 KB for a 7-layer MLP),
# and a 10M-step run observed every 20 steps would make 500,000 of them (2 GB). At the cap every
# other one is dropped and later ones are kept at twice the spacing, so the kept ones stay
# evenly spread over the run (the rules read its first observation, first quarter and late
# half); the first observation with a non-finite gradient is always kept, as evidence.
MAX_OBSERVATIONS = 2048


class GradientMonitor:
    """Watch gradient flow in ``model`` every ``every`` steps; :meth:`diagnose` names problems.

    ``optimizer`` is optional: when given, update-to-weight ratios are measured right after
    its step; without it they are measured at the next :meth:`observe`.

    ``scaler``: the ``torch.amp.GradScaler`` of a mixed-precision loop. Its ``.grad``
    tensors then carry the loss scale (65,536 at first), and its first steps often overflow
    to inf on purpose: the scaler skips those and lowers the scale. Given the scaler, the
    monitor divides the gradient norms by the scale (or not, after ``scaler.unscale_``) and
    leaves the steps the scaler skips out of the observations, counting them
    (``skipped_by_loss_scaler`` in the summary). Without it, such a run was diagnosed
    ``exploding_gradient`` (critical) and its gradient norms read 65,536 times too large.
    """

    def __init__(self, model: nn.Module | None = None, every: int = DEFAULT_EVERY, optimizer: torch.optim.Optimizer | None = None,
                 scaler: Any = None) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ConfigError(f"every must be a positive integer (observe every N steps), got {every!r}")
        if scaler is not None and not all(hasattr(scaler, name) for name in ("is_enabled", "get_scale")):
            raise ConfigError(f"scaler must be the loop's torch.amp.GradScaler, got {type(scaler).__name__}")
        self.every = every
        self.model: nn.Module | None = None
        self.optimizer = optimizer
        self.scaler = scaler if scaler is not None and scaler.is_enabled() else None
        self.scaler_skipped = 0  # observed steps whose overflowed gradients the scaler skipped
        self.config: Any = None  # the TrainConfig, when used as a gradwise.fit callback
        self._observations: list[Observation] = []
        self._losses = array("d")  # every step's loss: 8 bytes a step (a list of floats took 32)
        self._raw: list[RawStep] = []  # observed steps not yet read back
        self._observed = 0  # observed steps so far
        self.epoch_losses: list[float] = []  # mean train loss per epoch (fit callback only)
        self.stopped_nonfinite = False
        self._steps = 0
        self._handles: list[Any] = []
        self._interior_handles: list[Any] = []
        self._full_armed = True
        self._post_hook = None
        self._global_hook = False  # the post hook is torch's global one, until the optimizer is found
        self._record = StepRecord()
        self._loss_buffer: list[torch.Tensor] = []
        self._updates = UpdateProbe()
        self._unsynced_updates: list[tuple[UpdateLayout, torch.Tensor]] = []  # measured after a step
        self._alive_history: dict[str, deque] = {}
        self._by_step: dict[int, Observation] = {}
        self._last_decoded: Observation | None = None  # kept or not: it carries weight norms
        self._decoded = 0  # observations read back so far (kept or thinned out)
        self.stride = 1  # one read-back observation in this many is kept (see MAX_OBSERVATIONS)
        self._nonfinite_kept = False
        self._dead_examples: dict[str, int] = {}
        self._direct: frozenset[str] = frozenset()  # layers seen feeding an activation directly
        self._skipped: dict[str, str] = {}  # modules whose measuring failed -> why
        self._hook_fns: dict[tuple, Any] = {}  # the hook objects, made once (see _hook_fn)
        self.entries: list[tuple[str, nn.Parameter]] = []
        if model is not None:
            self.attach(model, optimizer)

    # ---- attaching ----

    def attach(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> "GradientMonitor":
        """Find the layers and activations of ``model`` and arm the hooks for the next step.

        Each layer is measured by the probe of its kind (:mod:`~gradwise.diagnosis.probes`);
        a layer's weight matrices are its entries in the observations (an LSTM has
        ``lstm.ih_l0``, ``lstm.hh_l0``...). Without ``optimizer``, the first optimizer that
        steps the model's parameters is found and read (its class and learning rate).
        """
        self.detach()
        self.model = model
        self._hook_fns = {}
        found = find_layers(model)
        self._hooked = [(name, module, probe, probe.weights(name, module)[0][0]) for name, module, probe in found if probe.hooked]
        self.entries = [(entry, weight) for name, module, probe in found for entry, weight in probe.weights(name, module)]
        self.activations = [(name, m, M.activation_kind(m)) for name, m in model.named_modules() if M.activation_kind(m)]
        if not self.entries:
            raise ConfigError(f"{type(model).__name__} has no layer with a weight matrix to monitor")
        self.layers = [(entry, module) for name, module, probe in found for entry, _ in probe.weights(name, module)]
        self.units = {entry: int(weight.shape[0]) for entry, weight in self.entries}
        self._kinds = {entry: probe.kind for name, module, probe in found for entry, _ in probe.weights(name, module)}
        self._direct = frozenset()
        self._structure: Structure | None = None  # how the blocks were wired at the last full step
        self._interior: frozenset[str] = frozenset()  # modules whose hooks lean steps can do without
        self._record = StepRecord()
        if optimizer is not None:
            self.optimizer = optimizer
        if self.optimizer is not None:
            self._post_hook = self.optimizer.register_step_post_hook(lambda *_: self._after_step())
        else:
            # A weak reference: a monitor nobody holds any more must not live on in torch's
            # global hooks (what remains of it there is a no-op).
            adopt = weakref.WeakMethod(self._maybe_adopt)
            self._post_hook = register_optimizer_step_post_hook(lambda opt, *_: (adopt() or _ignore)(opt))
            self._global_hook = True
        self._arm(self._steps % self.every == 0)
        return self

    def detach(self) -> None:
        """Remove every hook; the model and optimizer are as they were before attaching."""
        self._arm(False)
        if self._post_hook is not None:
            self._post_hook.remove()
            self._post_hook = None
        self._global_hook = False

    def _maybe_adopt(self, optimizer: torch.optim.Optimizer, *_: Any) -> None:
        """A global step hook while the model's optimizer is unknown: adopt the first optimizer
        holding one of the model's weights, so the fixes know its class and learning rate;
        from then on it measures that optimizer's updates, as its own step hook would.
        (Hooks cannot be added or removed from inside a step's hooks.)"""
        if self.optimizer is None and self.entries:
            ours = {id(w) for _, w in self.entries}
            if any(id(p) in ours for group in optimizer.param_groups for p in group["params"]):
                self.optimizer = optimizer
        if optimizer is self.optimizer:
            self._after_step()

    def _own_step_hook(self) -> None:
        """Once the optimizer is found, trade the global step hook for one on it (outside a
        step: hooks cannot be added or removed while a step runs them)."""
        self._post_hook.remove()
        self._post_hook = self.optimizer.register_step_post_hook(lambda *_: self._after_step())
        self._global_hook = False

    def _arm(self, on: bool) -> None:
        """Register the hooks for the next step (``on``) or remove them all.

        Once a full step has shown how the blocks are wired, the hooks of *interior* layers
        (fed by an activation and feeding one, e.g. an MLP's middle layers) only repeat what
        is known; they are registered again on full steps, every DEFAULT_EVERY steps.
        """
        if not on or self.model is None:
            for handle in self._handles + self._interior_handles:
                handle.remove()
            self._handles, self._interior_handles = [], []
            return
        if not self._handles:
            for name, module, probe, entry in self._hooked:
                if name not in self._interior and name not in self._skipped:
                    self._handles += self._layer_hooks(name, module, probe, entry)
            for name, module, kind in self.activations:
                if name not in self._skipped:
                    self._handles.append(module.register_forward_hook(self._hook_fn(("act", name), self._activation_hook, name, kind)))
        self._full_armed = self._structure is None or self._due(self._observed)
        self._record.full = self._full_armed
        if self._full_armed and not self._interior_handles:
            for name, module, probe, entry in self._hooked:
                if name in self._interior and name not in self._skipped:
                    self._interior_handles += self._layer_hooks(name, module, probe, entry)
        elif not self._full_armed:
            for handle in self._interior_handles:
                handle.remove()
            self._interior_handles = []

    def _layer_hooks(self, name: str, module: nn.Module, probe: Probe, entry: str) -> list[Any]:
        hooks = [module.register_forward_hook(self._hook_fn(("layer", name), self._layer_hook, name, entry, probe), with_kwargs=True)]
        if not probe.has_formula and probe.has_input_gradient:
                # No formula for ||dJ/d input|| when the data feeds this layer: make that input
                # differentiable on observed steps (the values and weight gradients are unchanged).
            hooks.append(module.register_forward_pre_hook(self._hook_fn(("pre", name), self._input_pre_hook, name, probe), with_kwargs=True))
        return hooks

    def _hook_fn(self, key: tuple, method: Any, *bound: Any) -> Any:
        """The same hook object every time a module's hook is registered again.

        Under torch.compile a new hook object fails the compiled graph's guards and forces a
        recompilation at every observed step (until the recompile limit turns the model back
        to eager); the same object finds the graph compiled for observed steps. Dynamo does
        not trace the hooks' Python: they run as they are, between compiled pieces.
        """
        fn = self._hook_fns.get(key)
        if fn is None:
            fn = self._hook_fns[key] = torch.compiler.disable(partial(method, *bound))
        return fn

    def _due(self, index: int) -> bool:
        """Is the ``index``-th observation one of those every DEFAULT_EVERY steps?"""
        return index % max(1, DEFAULT_EVERY // self.every) == 0

    # The hooks measure detached tensors (cheaper than entering no_grad on every call) and
    # ignore passes under no_grad: evaluation passes are not training steps. They never raise
    # into the user's forward or backward: a module whose measuring fails is skipped from
    # then on, with one warning naming it.

    def _layer_hook(self, name: str, entry: str, probe: Probe, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        if torch.is_grad_enabled() and name not in self._skipped:
            try:
                self._record.on_layer(name, entry, probe, module, args, kwargs, output)  # the record is replaced at observe
            except Exception as error:  # noqa: BLE001  the user's run comes first
                self._skip(name, f"{type(error).__name__}: {error}")

    def _input_pre_hook(self, name: str, probe: Probe, module: nn.Module, args: tuple, kwargs: dict) -> Any:
        if not (torch.is_grad_enabled() and args and name not in self._skipped):
            return None
        x = args[0]
        if not isinstance(x, torch.Tensor) or x.requires_grad or integer(x):
            return None
        if not any(p.requires_grad for p in module.parameters()):
            return None  # a frozen layer's gradient is not the user's to pay for
        fresh = x.detach().requires_grad_(True)
        self._record.differentiable.add(id(fresh))
        # Self-attention passes one tensor as query, key and value; keep them one tensor.
        return tuple(fresh if a is x else a for a in args), kwargs

    def _activation_hook(self, name: str, kind: str, module: nn.Module, inputs: tuple, output: Any) -> None:
        if torch.is_grad_enabled() and name not in self._skipped:
            try:
                self._record.on_activation(name, kind, module, inputs, output)
            except Exception as error:  # noqa: BLE001
                self._skip(name, f"{type(error).__name__}: {error}")

    def _skip(self, name: str, why: str) -> None:
        """Stop measuring module ``name`` (its hooks go at the next arming), warning once."""
        if name in self._skipped:
            return
        self._skipped[name] = why
        warnings.warn(f"GradientMonitor: skipping module {name!r}, which it cannot measure ({why})", RuntimeWarning, stacklevel=2)

    # ---- stepping ----

    def observe(self, loss: torch.Tensor | None = None) -> None:
        """Call after ``loss.backward()`` and before ``optimizer.step()``, every step."""
        if self._global_hook and self.optimizer is not None:
            self._own_step_hook()
        step = self._steps
        self._steps += 1
        if loss is not None:
            self._loss_buffer.append(loss.detach())
        if step % self.every == 0 and self.model is not None:
            self._observe_now(step)
        else:
            self._finish_update()  # the previous observed step's update, if still open
        self._arm((step + 1) % self.every == 0)

    def _after_step(self) -> None:
        """After an optimizer step: measure the update now, unless the next step is observed,
        which measures it in its own fused call (the weights do not move until then)."""
        if self._steps % self.every != 0:
            self._finish_update()

    def _finish_update(self) -> None:
        pending = self._updates.subtract()
        if pending is not None:
            layout, moved = pending
            with torch.no_grad():
                self._unsynced_updates.append((layout, M.norms(moved)))

    def _observe_now(self, step: int) -> None:
        rec = self._record
        for name, why in rec.failed.items():
            self._skip(name, why)
        if rec.failed:
            self._arm(False)  # re-armed by observe() without the failed modules
        structure = self._learn_structure(rec)
        self._record = StepRecord(direct=self._direct)
        # Weights move by about the update ratio (~1e-3) per step, so their norms are taken on
        # full steps only (at most one in DEFAULT_EVERY) and carried in between.
        weigh = self._full_armed
        self._observed += 1
        with torch.no_grad():
            raw = self._measure(step, rec, structure, weigh)
        self._raw.append(raw)
        if len(self._raw) >= READ_BACK_EVERY:
            self._read_back()  # bounds what waits on the device in a long run nobody reads

    def _measure(self, step: int, rec: StepRecord, structure: Structure, weigh: bool) -> RawStep:
        """Put every number of this observed step into one vector on the device."""
        present = [(n, w) for n, w in self.entries if w.grad is not None]
        names, weights = [n for n, _ in present], [w for _, w in present]
        keys_now, taken, keys_later, deferred, counts = rec.norm_list()
        pending = self._updates.subtract()  # the previous step's update, when it is still open
        update_layouts, moved = ([pending[0]], pending[1]) if pending is not None else ([], [])
        # One fused call: the gradient (and weight) norms of every layer, the update norms and
        # the hooks' deferred norms.
        parts = [M.norms([w.grad for w in weights] + (weights if weigh else []) + moved + deferred)]
        if taken is not None:
            parts.append(taken)
        self._updates.before_step(step, names, weights)
        fraction_keys = list(rec.fractions)
        if fraction_keys:
            parts.append(torch.stack([rec.fractions[k] for k in fraction_keys]))
        dead_layout = self._alive_counts(rec, parts)
        feature_count, n_features = self._input_scale(rec, parts)
        n_losses = len(self._loss_buffer)
        parts += self._take_losses()
        late, self._unsynced_updates = self._unsynced_updates, []
        parts += [norms for _, norms in late]
        if self.scaler is not None:  # last: the other parameters' gradient norms (biases...), summed
            measured = {id(w) for w in weights}
            rest = [p.grad for p in self.model.parameters() if p.grad is not None and id(p) not in measured]
            parts.append(M.norms(rest).sum().reshape(1))
        return RawStep(
            step=step, names=names, weighed=weigh, structure=structure,
            keys=keys_later + keys_now, counts=counts, fraction_keys=fraction_keys, dead_layout=dead_layout,
            dead_examples=dict(self._dead_examples), feature_count=feature_count, n_features=n_features,
            n_losses=n_losses, values=_concat(parts), updates=update_layouts, late_updates=[layout for layout, _ in late],
            grad_scale=None if self.scaler is None else grad_factor(self.scaler),
        )

    @staticmethod
    def _input_scale(rec: StepRecord, parts: list[torch.Tensor]) -> tuple[int, int]:
        """Append the input's per-feature norms (full steps); returns (entries behind each, features)."""
        if rec.input_x is None:
            return 0, 0
        feature_norms, entries = M.feature_norms(rec.input_x, rec.input_axis)
        parts.append(feature_norms)
        return entries, feature_norms.numel()

    def _learn_structure(self, rec: StepRecord) -> Structure:
        """The wiring of this step: learned from a full step's record, else the last one learned."""
        if (self._full_armed or self._structure is None) and rec.order:
            self._direct = frozenset(rec.fed_directly)
            self._structure = Structure(rec.order, rec.owner, rec.grad_in_from, rec.entry_of, rec.act_class,
                                        rec.producers, rec.time_steps, self._kinds)
            # Interior uses are fed by an activation's output and feed one: the activations'
            # hooks measure their flow. A module is left out on lean steps only if all its uses are.
            interior_uses = {u for u in rec.fed_directly if u in rec.grad_in_from} - rec.sources - rec.recurrent
            modules = {u.split("#")[0] for u in rec.entry_of}
            interior = frozenset(m for m in modules if all(
                u in interior_uses for u in rec.entry_of if u.split("#")[0] == m))
            if interior != self._interior:
                self._arm(False)  # re-registered by the caller, without the interior layers' hooks
                self._interior = interior
        if self._structure is not None:
            return self._structure
        return Structure(rec.order, rec.owner, rec.grad_in_from, rec.entry_of, rec.act_class, rec.producers, rec.time_steps, self._kinds)

    def _alive_counts(self, rec: StepRecord, parts: list[torch.Tensor]) -> list[tuple[str, int]]:
        """Append, per ReLU layer, how many units were active in recent batches.

        A unit is alive if any of enough recent examples (DEAD_MIN_EXAMPLES, pooled over
        batches when one batch is smaller) activated it. The counts are taken on the device,
        so a layer costs one number in the vector, not one per unit.
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

    def _take_losses(self) -> list[torch.Tensor]:
        buffer, self._loss_buffer = self._loss_buffer, []
        if not buffer:
            return []
        return [torch.stack([b if b.dim() == 0 else b.float().mean() for b in buffer])]

    # ---- reading back ----

    @property
    def observations(self) -> list[Observation]:
        """Every observed step, per layer (reads back what is still on the device)."""
        self._read_back()
        return self._observations

    @property
    def losses(self) -> Sequence[float]:
        """The loss of every step observe() was given, in order (an ``array("d")``)."""
        self._read_back()
        return self._losses

    def _read_back(self) -> None:
        """One synchronisation for all observed steps not read yet."""
        raws, self._raw = self._raw, []
        if not raws:
            return
        flat = _concat([r.values for r in raws]).cpu().tolist()  # one transfer (one device: the model's)
        at = 0
        for raw in raws:
            size = raw.values.numel()
            values, at = flat[at:at + size], at + size
            # Under a loss scaler the step's last value sums the norms of the gradients the layers'
            # own do not cover: inf or NaN in either is an overflow the scaler skips (no update,
            # nothing wrong with training).
            rest_finite = raw.grad_scale is None or math.isfinite(values.pop())
            obs, losses, updates = decode(raw, values, self._last_decoded)
            if raw.grad_scale is not None and not (rest_finite and _finite_gradients(obs)):
                self.scaler_skipped += 1
            else:
                self._last_decoded = obs
                self._keep(obs)
            self._file(losses, updates)

    def _keep(self, obs: Observation) -> None:
        """Store ``obs`` if it falls on the current spacing (or is the first non-finite one)."""
        index, self._decoded = self._decoded, self._decoded + 1
        evidence = not self._nonfinite_kept and not _finite_gradients(obs)
        if index % self.stride and not evidence:
            return
        self._nonfinite_kept = self._nonfinite_kept or evidence
        self._observations.append(obs)
        self._by_step[obs.step] = obs
        if len(self._observations) >= MAX_OBSERVATIONS:
            first_nonfinite = next((o for o in self._observations if not _finite_gradients(o)), None)
            self._observations = [o for i, o in enumerate(self._observations) if i % 2 == 0 or o is first_nonfinite]
            self._by_step = {o.step: o for o in self._observations}
            self.stride *= 2

    def flush(self) -> None:
        """Measure any open update and read back everything still on the device."""
        self._finish_update()
        self._read_back()
        losses = self._take_losses()
        late, self._unsynced_updates = self._unsynced_updates, []
        parts = losses + [norms for _, norms in late]
        if not parts:
            return
        values = _concat(parts).cpu().tolist()
        self._file(*decode_tail(values, losses[0].numel() if losses else 0, [layout for layout, _ in late]))

    def _file(self, losses: list[float], updates: list[tuple[UpdateLayout, list[float]]]) -> None:
        """Keep read-back losses and give each update ratio to the observation it belongs to."""
        self._losses.extend(losses)
        for layout, deltas in updates:
            assign_update(self._by_step.get(layout.step), layout, deltas)

    # ---- results ----

    def layer_table(self) -> list[dict[str, Any]]:
        """Per layer, the median of each measure over all observations."""
        from .rules import layer_summary  # rules import nothing from here; avoid a cycle anyway

        self.flush()
        return layer_summary(self.observations)

    def diagnose(self, config: Any = None, problems: Sequence[str] | None = None) -> "Diagnosis":
        """Turn what was observed into findings; ``config`` (a TrainConfig) tailors the fixes.

        ``problems`` (e.g. ``("diverging_loss",)``) runs only those problems' rules and leaves
        the per-layer table out: a cheaper check to make often during training."""
        from .rules import diagnose as run_rules

        self.flush()
        return run_rules(self, config if config is not None else self.config, problems)

    def current_lr(self) -> float | None:
        if self.optimizer is not None and self.optimizer.param_groups:
            lr = self.optimizer.param_groups[0].get("lr", math.nan)
            return float(lr.item() if isinstance(lr, torch.Tensor) else lr)
        return None

    # ---- gradwise.fit callback protocol ----

    def on_train_start(self, state: Any) -> None:
        self.config = state.config
        self.optimizer = state.optimizer
        if self.model is not state.model:
            self.attach(state.model)

    def on_after_backward(self, state: Any, loss: torch.Tensor) -> None:
        step = self._steps
        self.observe(loss)
        if step % self.every == 0 and not bool(torch.isfinite(loss.detach()).all()):
            # Checked on observed steps only (one small synchronisation each): stop now, the
            # diagnosis has what it needs and further NaN steps teach nothing.
            self.stopped_nonfinite = True
            from ..training.callbacks import StopTraining

            raise StopTraining(
                f"non-finite loss (NaN or inf) at step {step}: training diverged; "
                "see the diagnosis for fixes"
            )

    def on_step_end(self, state: Any) -> None:
        self._after_step()

    def on_epoch_end(self, state: Any, record: Any) -> None:
        self.epoch_losses.append(float(record.train_loss))
        if not all(math.isfinite(v) for v in (record.train_loss, record.val_loss) if v is not None):
            self.stopped_nonfinite = True

    def on_train_end(self, state: Any) -> None:
        self.flush()
        self._arm(False)


def _finite_gradients(obs: Observation) -> bool:
    return all(math.isfinite(layer.grad_norm) for layer in obs.layers.values())


def grad_factor(scaler: Any) -> float:
    """The factor the ``.grad`` tensors carry now: the loss scale, or 1 once ``unscale_`` ran
    this step (torch keeps that stage per optimizer, in the scaler's own state)."""
    from torch.amp.grad_scaler import OptState

    states = getattr(scaler, "_per_optimizer_states", {})
    if any(state.get("stage") is OptState.UNSCALED for state in states.values()):
        return 1.0
    return float(scaler.get_scale())


def _ignore(*_: Any) -> None:
    return None


def _concat(parts: list[torch.Tensor]) -> torch.Tensor:
    """Flatten and join on the first part's device (parts of a CPU model are all on the CPU)."""
    device = parts[0].device
    return torch.cat([(p if p.device == device else p.to(device)).reshape(-1).float() for p in parts])
