"""Train K members at once; member k follows ``gradwise.fit(config_k, splits_k)`` step for step.

The equality contract (tests/test_population.py): without dropout, member k starts from the
weights ``fit`` draws (``torch.manual_seed(seed)`` then ``build_model``), sees its rows in
the order ``fit``'s generator gives, takes the same number of updates per epoch with the
same update rule and learning-rate schedule, and stops by the same rules (patience on its
validation loss, a non-finite loss, a callback), restoring its best weights as ``fit`` does.
Members may join a running population later (each counts its own epochs). Only the arithmetic is regrouped (one ``baddbmm`` per layer instead of ``addmm``, masked
sums instead of means), so losses and weights agree to float32 rounding, not bit for bit.
With dropout the masks come from the population's own generator, so a member is a network
``fit`` could have trained, but not with ``fit``'s draws.

With batch norm each member normalizes by its own batch's statistics over its real rows, and
its running statistics move only in the steps it takes; a member whose batch would be one
row sits that step out (no update, its running statistics untouched), as ``fit`` skips a
1-row batch, so its update count is ``fit``'s too. Evaluation uses the running statistics
(eval mode), and the best-weights snapshots and copy-out carry them with gamma and beta.

With row weights (``Part.w``) a member's loss is its weighted mean over its real batch rows,
and a batch of only weight-0 rows is a step it sits out, as ``fit`` skips it (weights.py).

Each member's loss is its own mean over its own batch rows, and the population minimizes
their sum: a member's parameters only reach its own term, so its gradient is the one it
would have alone, and a member whose loss is NaN or inf touches nothing but itself.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor

from ...config import TrainConfig
from ...data.splitting import Splits
from ...errors import ConfigError
from ...optim.batched import BatchedOptimizer, MemberHyper, optimizer_form
from ...optim.schedules import make_schedule
from ..callbacks import EpochRecord
from ..denormals import flushed_denormals
from ..loop import build_model, resolve_device
from ..metrics import regression_metrics, target_variance
from ..result import FitResult
from .data import Stacked, epoch_order, flat_order, gather_rows, member_tensors, stack, take
from .network import LAYOUT_WARNING, MemberState, StackedMLP
from .watch import PopulationWatch
from .weights import EpochWeights, weighted_losses

# Compact the stacks once this share of their members has ended (an ended member would
# otherwise keep costing a slot in every baddbmm).
COMPACT_SHARE = 0.25
EVAL_CHUNK = 8192
# Fields every member of a population must share: they change the sequence of operations.
# Batch sizes may differ (a member with a smaller one takes more steps an epoch), but batch
# gradient descent ("full") and mini-batches do not mix. Epoch limits may differ too: each
# member counts its own epochs (members can join a running population).
SHARED_FIELDS = ("normalize", "layers", "activation", "init", "batch_norm", "optimizer", "device")

EpochHook = Callable[[dict[int, EpochRecord], "PopulationTrainer"], dict[int, str] | None]


@dataclass
class Member:
    """One network of a population: its configuration and its rows."""

    config: TrainConfig
    splits: Splits


def population_key(config: TrainConfig, splits: Splits | None = None) -> tuple:
    """Members whose keys are equal can train in one population (hidden width may differ)."""
    extra = tuple(sorted((config.extra or {}).items()))
    # Input widths may differ (each CV fold fits its own encoders, so a string column can
    # give folds different one-hot widths): inputs and first-layer weights are zero-padded.
    data = () if splits is None else (splits.task, splits.n_outputs)
    return (*(getattr(config, f) for f in SHARED_FIELDS), config.batch_size == "full", config.dropout > 0, config.clip_grad is None, extra, *data)


def can_batch(config: TrainConfig) -> str | None:
    """Why ``config`` cannot train in a population (None when it can)."""
    if config.batch_norm and config.batch_size == 1:
        return "batch norm needs batches of at least 2 examples"  # fit says so as it refuses
    if config.optimizer not in ("gd", "momentum", "rmsprop", "adam"):
        return f"--optimizer {config.optimizer} has no batched form"
    return None


@dataclass
class MemberResult:
    """What ``fit`` would hand back for one member, without the per-split metrics (see :meth:`fit_result`)."""

    config: TrainConfig
    splits: Splits
    model: Any  # GradwiseModel with the member's final (best) weights, on the CPU
    history: list[EpochRecord] = field(default_factory=list)
    stop_reason: str = ""
    best_epoch: int | None = None
    updates: int = 0
    seconds: float = 0.0

    def fit_result(self) -> FitResult:
        from ..loop import split_metrics

        metrics = split_metrics(self.model, self.splits)
        return FitResult(self.model, self.config, self.history, metrics, self.stop_reason, self.updates, self.best_epoch, self.seconds, self.splits.task)

    def best_record(self) -> EpochRecord | None:
        """The epoch whose weights the member ends with (its best validation loss), if any."""
        if self.best_epoch is None:
            return None
        return self.history[self.best_epoch - 1]


class PopulationTrainer:
    """``PopulationTrainer(members).run(on_epoch)`` → one :class:`MemberResult` per member.

    ``on_epoch(records, trainer)`` is called after every epoch with the epoch's record of each
    member that trained in it (keyed by member index); it returns ``{index: reason}`` for
    members to end now (the tuner's pruning). A member that ``fit``'s own rules end in that
    epoch (patience, a non-finite loss) keeps that reason. ``trainer.watch`` holds the gradient monitor's
    per-member reports when ``monitor`` is true.
    """

    def __init__(self, members: list[Member], monitor: bool = False, shapes: list[tuple[int, int]] | None = None) -> None:
        """``shapes`` pads the network to these (in, out) sizes per layer, so that members up to
        that wide can join later with :meth:`add` (the tuner's refill)."""
        if not members:
            raise ConfigError("a population needs at least one member")
        self._check(members)
        self.task = members[0].splits.task
        self.device = resolve_device(members[0].config.device)
        self.key = population_key(members[0].config, members[0].splits)
        # slot -> member index. An ended member keeps its slot (and keeps stepping, its numbers
        # unused) until the stacks are compacted; ``live`` holds the members still training.
        self.ids: list[int] = []
        self.live: set[int] = set()
        self.members: list[Member] = []
        self.results: list[MemberResult | None] = []
        self.net: StackedMLP | None = None
        self._shapes = shapes
        # Per member, by member index (``add`` appends): the network fit would build, its data
        # and schedule, and the early-stopping state that fit keeps in locals.
        self.models: list = []
        self.scales: list[Tensor | None] = []
        self.train_var: list[Tensor | None] = []
        self.val_var: list[Tensor | None] = []
        self.batch_sizes: list[int] = []
        self.generators: list[torch.Generator] = []
        self.schedules: list = []
        self.best_loss: list[float] = []
        self.best_epoch: list[int | None] = []
        self.best_states: dict[int, MemberState] = {}
        self.updates: list[int] = []
        self.epochs_done: list[int] = []
        self.histories: list[list[EpochRecord]] = []
        self.cut_epoch: Callable[[], bool] | None = None  # see run
        self.add(members)
        self.watch = PopulationWatch(self.net.depth) if monitor else None

    @staticmethod
    def _check(members: list[Member]) -> None:
        keys = {population_key(m.config, m.splits) for m in members}
        if len(keys) > 1:
            raise ConfigError(f"members of a population must share {', '.join(SHARED_FIELDS)}, dropout and clipping presence")
        why = can_batch(members[0].config)
        if why:
            raise ConfigError(f"this configuration cannot train in a population: {why}")
        for m in members:
            if len(m.splits.train) == 0:
                raise ConfigError("the training split is empty; give more rows or a larger train fraction in --split")
            if m.config.batch_norm and m.config.resolved_batch_size(len(m.splits.train)) == 1:
                raise ConfigError("--batch-norm needs batches of at least 2 examples; use --batch-size 2 or more, or drop --batch-norm")

    def fits(self, member: Member) -> bool:
        """Whether ``member`` can join this population (same key, no wider than its padding)."""
        if population_key(member.config, member.splits) != self.key or can_batch(member.config):
            return False
        return member.splits.n_features <= self.net.shapes[0][0] and all(member.config.hidden <= out for _, out in self.net.shapes[:-1])

    def add(self, members: list[Member]) -> list[int]:
        """Add members (each starting at its epoch 1); returns their indices."""
        if not members:
            return []
        self._check([*self.members[:1], *members])
        first = len(self.members)
        models, train, val = [], [], []
        for m in members:
            # The draws fit makes: its torch.manual_seed(seed), then build_model. Only the CPU
            # generator is reseeded here: the CUDA part of manual_seed costs ~10 ms a call.
            torch.default_generator.manual_seed(m.config.seed)
            model = build_model(m.config, m.splits)
            models.append(model)
            train.append(member_tensors(model, m.splits, "train"))
            val.append(member_tensors(model, m.splits, "val"))
        configs = [m.config for m in members]
        self._grow_stacks(models, configs, train, val)
        scales = [model.target_normalizer.scale_ if model.target_normalizer is not None else None for model in models]
        self.members += members
        self.models += models
        self.scales += scales
        self.train_var += [self._variance(y, sc, w) for (_, y, w), sc in zip(train, scales)]
        self.val_var += [self._variance(y, sc, w) for (_, y, w), sc in zip(val, scales)]
        self.batch_sizes += [c.resolved_batch_size(len(X)) for c, (X, *_) in zip(configs, train)]
        self.generators += [torch.Generator(device=self.device).manual_seed(c.seed) for c in configs]
        self.schedules += [make_schedule(c.lr_decay, c.lr, c.epochs) for c in configs]
        n = len(members)
        self.results += [None] * n
        self.best_loss += [math.inf] * n
        self.best_epoch += [None] * n
        self.updates += [0] * n
        self.epochs_done += [0] * n
        self.histories += [[] for _ in members]
        added = list(range(first, first + n))
        self.ids += added
        self.live |= set(added)
        return added

    def _grow_stacks(self, models: list, configs: list[TrainConfig], train: list, val: list) -> None:
        """The network, optimizer, data and clipping stacks, new rows appended."""
        hyper = MemberHyper.from_values(self.device, lr=[c.lr for c in configs], beta=[c.beta for c in configs],
                                        beta1=[c.beta1 for c in configs], beta2=[c.beta2 for c in configs],
                                        eps=[c.eps for c in configs], weight_decay=[c.weight_decay for c in configs])
        clip = torch.tensor([c.clip_grad for c in configs], device=self.device) if configs[0].clip_grad is not None else None
        nets, dropout = [model.net for model in models], [c.dropout for c in configs]
        if self.net is None:
            self.net = StackedMLP(nets, configs[0].activation, dropout, self.device, self._shapes)
            self.train, self.val = stack(train, self.device), stack(val, self.device)
            bias_correction, eps_inside_sqrt = optimizer_form(configs[0].optimizer, configs[0].extra)
            self.optimizer = BatchedOptimizer(configs[0].optimizer, [self.net.buffer], hyper, bias_correction, eps_inside_sqrt)
            self.clip = clip
            return
        self.net.extend(nets, dropout)
        self.train, self.val = self.train.extend(stack(train, self.device)), self.val.extend(stack(val, self.device))
        self.optimizer.params = [self.net.buffer]
        self.optimizer.extend(hyper)
        if clip is not None:
            self.clip = torch.cat([self.clip, clip])

    def _variance(self, y: Tensor, scale: Tensor | None, w: Tensor | None) -> Tensor | None:
        return None if self.task == "classification" or len(y) == 0 else target_variance(y, scale, w)

    # -- the loop --

    def run(self, on_epoch: EpochHook | None = None, on_end: Callable[[int, MemberResult], None] | None = None,
            refill: Callable[["PopulationTrainer"], None] | None = None, cut_epoch: Callable[[], bool] | None = None) -> list[MemberResult]:
        """Train until every member has ended; ``on_end(index, result)`` hears of each as it ends,
        and ``refill(trainer)`` may :meth:`add` members after any epoch. ``cut_epoch()`` is asked
        after every step: true ends the epoch there, as ``EndEpoch`` ends ``fit``'s (a clock
        that has run out: an epoch of a large population can take minutes)."""
        self.started = time.perf_counter()
        self.on_end = on_end
        self.cut_epoch = cut_epoch
        with flushed_denormals():
            self._loop(on_epoch, refill)
        return [r for r in self.results if r is not None]

    def _loop(self, on_epoch: EpochHook | None, refill: Callable[["PopulationTrainer"], None] | None) -> None:
        while self.live:
            records = self._epoch()
            ending = self._stop_reasons(records)
            if on_epoch is not None:  # it sees every member of the epoch, even those ending by fit's rules
                for member, reason in (on_epoch(records, self) or {}).items():
                    ending.setdefault(member, reason)
            for member, record in records.items():
                epochs = self.members[member].config.epochs
                if record.epoch >= epochs:
                    ending.setdefault(member, f"completed {epochs} epochs")
            self._end(ending)
            if refill is not None:
                refill(self)

    def _epoch(self) -> dict[int, EpochRecord]:
        """One epoch of every live member (each at its own epoch count)."""
        started = time.perf_counter()
        lrs = [self.schedules[m](self.epochs_done[m]) for m in self.ids]
        self.optimizer.set_lr(torch.tensor(lrs, dtype=torch.float64, device=self.device))
        self.optimizer.flush_subnormal_state()
        train = self._train_one_epoch()
        val = self._evaluate(self.val, [self.val_var[m] for m in self.ids])
        seconds = time.perf_counter() - started
        records = {}
        for slot, member in enumerate(self.ids):
            if member not in self.live:
                continue
            self.epochs_done[member] += 1
            (train_loss, train_metrics), (val_loss, val_metrics) = train[slot], val[slot]
            record = EpochRecord(self.epochs_done[member], train_loss, val_loss, train_metrics, val_metrics, lrs[slot], self.updates[member], seconds)
            self.histories[member].append(record)
            records[member] = record
        if self.watch is not None:
            self.watch.end_epoch({m: r.epoch for m, r in records.items()}, self.ids, {m: r.train_loss for m, r in records.items()}, self.live)
        return records

    def _train_one_epoch(self) -> list[tuple[float, dict[str, float]]]:
        K = len(self.ids)
        batch_sizes = [self.batch_sizes[m] for m in self.ids]
        B = max(batch_sizes)
        counts = self.train.counts.tolist()
        steps = [self._updates_per_epoch(m, b) for m, b in zip(counts, batch_sizes)]
        steps_t = torch.tensor(steps, device=self.device)
        order = epoch_order(self.train, batch_sizes, [self.generators[m] for m in self.ids])
        valid = self.train.valid()
        sums = _Sums(K, self.device)
        same_size = len(set(batch_sizes)) == 1
        if same_size:  # each step copies its own batch rows
            X, y, batch = self.train, flat_order(order), self._same_size_batch
        else:
            X, y = gather_rows(self.train, order)
            batch = self._batch_of(batch_sizes)
        # Steps whose batch is B real rows for every member: no masks needed there.
        full_steps = min(m // B for m in counts) if same_size else 0
        weights = None if self.train.w is None else EpochWeights(self.train, order, batch_sizes, steps)
        taken = max(steps)  # steps of this epoch, fewer when cut_epoch ends it early
        for s in range(taken):
            if weights is not None:
                self._step(*batch(X, y, valid, s, B), weights.active(s), sums, first=s == 0, weights=weights.batch(s))
            else:
                active = None if s < min(steps) else torch.tensor(s, device=self.device) < steps_t
                self._step(*batch(X, y, valid, s, B), active, sums, first=s == 0, full=s < full_steps)
            if self.cut_epoch is not None and s + 1 < taken and self.cut_epoch():
                taken = s + 1
                break
        updates = [min(n, taken) for n in steps] if weights is None else weights.updates_in(taken)
        for slot, member in enumerate(self.ids):
            self.updates[member] += updates[slot]
        return sums.results(self.task, [self.scales[m] for m in self.ids], [self.train_var[m] for m in self.ids])

    def _updates_per_epoch(self, rows: int, batch_size: int) -> int:
        """ceil(rows / B) batches; with batch norm a last batch of one row is skipped (as fit
        skips it), so its member is inactive in that step."""
        batches = math.ceil(rows / batch_size)
        return batches - 1 if self.net.batch_norm and rows % batch_size == 1 else batches

    @staticmethod
    def _same_size_batch(train: Stacked, rows: Tensor, valid: Tensor, s: int, B: int) -> tuple[Tensor, Tensor, Tensor]:
        """Step ``s`` of every member: its rows [s·B, (s + 1)·B) of its epoch order (``rows``, flat)."""
        window = slice(s * B, (s + 1) * B)
        return (*take(train, rows[:, window]), valid[:, window])

    def _batch_of(self, batch_sizes: list[int]) -> Callable[..., tuple[Tensor, Tensor, Tensor]]:
        """Batches when members' batch sizes differ: member k's step s takes its rows
        [s·B_k, (s + 1)·B_k), padded to the largest B; it runs out of batches sooner or later
        than the others and sits out the remaining steps (the optimizer's ``active``)."""
        sizes = torch.tensor(batch_sizes, device=self.device).unsqueeze(1)
        offsets = torch.arange(max(batch_sizes), device=self.device).unsqueeze(0)
        counts = self.train.counts.unsqueeze(1)
        members = torch.arange(len(batch_sizes), device=self.device).unsqueeze(1)

        def batch(X: Tensor, y: Tensor, valid: Tensor, s: int, B: int) -> tuple[Tensor, Tensor, Tensor]:
            index = s * sizes + offsets
            real = (offsets < sizes) & (index < counts)
            index = index.clamp(max=X.shape[1] - 1)
            return X[members, index], y[members, index], real

        return batch

    def _step(self, xb: Tensor, yb: Tensor, valid: Tensor, active: Tensor | None, sums: "_Sums", first: bool, full: bool = False,
              weights: Tensor | None = None) -> None:
        """One update of every active member; ``full``: every row of the batch is real;
        ``weights`` ([K, b]): the rows' weights, each member's loss their weighted mean.

        Members go forward and backward in groups (``StackedMLP.member_groups``), each group's
        loss its own backward into the shared gradient buffer; the monitor's step takes them
        all at once, as its per-layer tensors span the population."""
        self.net.zero_grad()
        if active is not None:  # a member sitting the step out has no rows in it (batch norm: not even a 1-row batch)
            valid = valid & active.unsqueeze(1)
        kept = [] if (self.watch is not None and first) else None
        groups = [slice(0, self.net.K)] if kept is not None else self.net.member_groups(xb.shape[1])
        count = xb.shape[1] if full else valid.sum(dim=1)
        if weights is not None:  # weights stand in for the 0/1 mask in the losses and sums
            weights = weights * valid
            count = weights.sum(dim=1)
        outs, losses = [], []
        with _layout_warning_ignored() if first else contextlib.nullcontext():
            for group in groups:
                out = self.net.forward(xb[group], train=True, keep=kept, group=group, valid=None if full else valid[group], stepping=active)
                if kept is not None:
                    out.retain_grad()
                    kept.append(out)
                per_row = row_losses(out, yb[group], self.task)
                if weights is not None:
                    group_losses = weighted_losses(per_row, weights[group], count[group])
                else:
                    group_losses = per_row.mean(dim=1) if full else mean_losses(per_row, valid[group], count[group])
                group_losses.sum().backward()
                outs.append(out.detach())
                losses.append(group_losses.detach())
        if self.watch is not None:
            self.watch.after_backward([p.grad for p in self.net.weight_params], kept)
        if self.clip is not None:
            norms = self.net.grad.norm(dim=1)
            self.net.grad.mul_((self.clip / (norms + 1e-6)).clamp(max=1.0).unsqueeze(1))
        self.optimizer.step(active)
        mask = None if full else valid if weights is None else weights
        sums.add(_joined(outs), yb, mask, _joined(losses), count)

    @torch.no_grad()
    def _evaluate(self, split: Stacked, variances: list[Tensor | None]) -> list[tuple[float | None, dict[str, float]]]:
        K, M = split.X.shape[:2]
        sums = _Sums(K, self.device)
        valid = split.valid()
        for start in range(0, M, EVAL_CHUNK):
            rows = slice(start, start + EVAL_CHUNK)
            groups = self.net.member_groups(min(M - start, EVAL_CHUNK))
            out = _joined([self.net.forward(split.X[group, rows], train=False, group=group) for group in groups])
            mask = valid[:, rows] if split.w is None else split.w[:, rows]  # weights: 0 on padding rows
            count = mask.sum(dim=1)
            per_row = row_losses(out, split.y[:, rows], self.task)
            losses = mean_losses(per_row, mask, count) if split.w is None else weighted_losses(per_row, mask, count)
            sums.add(out, split.y[:, rows], mask, losses, count)
        results = sums.results(self.task, [self.scales[m] for m in self.ids], variances)
        return [(None, {}) if n == 0 else (loss, metrics) for (loss, metrics), n in zip(results, split.counts.tolist())]

    # -- ending members --

    def _stop_reasons(self, records: dict[int, EpochRecord]) -> dict[int, str]:
        """fit's rules, member by member: non-finite loss, improvement, patience."""
        ending = {}
        improved = []
        for member, record in records.items():
            losses = [record.train_loss] + ([record.val_loss] if record.val_loss is not None else [])
            if not all(math.isfinite(v) for v in losses):
                ending[member] = f"non-finite loss (NaN or inf) in epoch {record.epoch}: training diverged; lower the learning rate (--lr) or clip gradients (--clip-grad 1)"
                continue
            if record.val_loss is None:
                continue
            patience = self.members[member].config.patience
            if record.val_loss < self.best_loss[member]:
                self.best_loss[member], self.best_epoch[member] = record.val_loss, record.epoch
                improved.append(member)
            elif patience is not None and record.epoch - self.best_epoch[member] >= patience:
                ending[member] = f"early stopping: validation loss has not improved for {patience} epochs (best at epoch {self.best_epoch[member]})"
        for member in improved:
            self.best_states[member] = self.net.member_state(self.ids.index(member))
        return ending

    def _end(self, ending: dict[int, str]) -> None:
        if not ending:
            return
        now = time.perf_counter() - self.started
        for member, reason in ending.items():
            if member not in self.live:
                continue
            state = self.best_states.pop(member, None)
            if state is None:
                state = self.net.member_state(self.ids.index(member))
            model = self.models[member]
            self.net.copy_out(state.cpu(), model.net)  # the members' own networks never left the CPU
            self.results[member] = MemberResult(self.members[member].config, self.members[member].splits, model,
                                                self.histories[member], reason, self.best_epoch[member], self.updates[member], now)
            if self.on_end is not None:
                self.on_end(member, self.results[member])
        self.live -= set(ending)
        alive = [slot for slot, member in enumerate(self.ids) if member in self.live]
        dead = len(self.ids) - len(alive)
        if alive and dead >= max(1, COMPACT_SHARE * len(self.ids)):
            self.ids = [self.ids[slot] for slot in alive]
            self._compact(torch.tensor(alive, dtype=torch.int64, device=self.device))

    def _compact(self, index: Tensor) -> None:
        """Drop ended members from every stack, so they stop costing compute."""
        self.net.select(index)
        self.optimizer.params = [self.net.buffer]
        self.optimizer.select(index)
        self.train, self.val = self.train.select(index), self.val.select(index)
        if self.clip is not None:
            self.clip = self.clip.index_select(0, index)


def mean_losses(per_row: Tensor, valid: Tensor, count: Tensor) -> Tensor:
    """[K] each member's mean loss over its real rows (``count`` of them, per member)."""
    return (per_row * valid).sum(dim=1) / count.clamp(min=1)


def _joined(parts: list[Tensor]) -> Tensor:
    """The member groups' tensors as one population's (no copy for a single group)."""
    return parts[0] if len(parts) == 1 else torch.cat(parts)


@contextlib.contextmanager
def _layout_warning_ignored():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=LAYOUT_WARNING)
        yield


def row_losses(out: Tensor, y: Tensor, task: str) -> Tensor:
    """[K, B] loss of each row: cross-entropy on logits, or the mean squared error over outputs."""
    if task == "classification":
        # Cross-entropy −z_y + log Σ exp z, with the max subtracted first (as log_softmax does).
        # Written out because torch's CPU log_softmax over a last dimension of a few classes
        # took twice as long as these elementwise ops (1.7 vs 0.8 ms a step, 32 x 64 rows).
        top = out.detach().amax(dim=2, keepdim=True)
        log_sum = (out - top).exp().sum(dim=2).log() + top.squeeze(2)
        return log_sum - out.gather(2, y.unsqueeze(2)).squeeze(2)
    return ((out - y) ** 2).mean(dim=2)


class _Sums:
    """Per-member sums over an epoch's batches, kept on the device as each step's [K] terms
    and added up once at its end (as RunningMetrics does for fit): a step adds three small
    ops (argmax, compare, sum) instead of ten."""

    def __init__(self, K: int, device: torch.device) -> None:
        self.K, self.device = K, device
        self.losses: list[Tensor] = []
        self.counts: list[Tensor | int] = []
        self.scores: list[Tensor] = []

    def add(self, out: Tensor, y: Tensor, valid: Tensor | None, losses: Tensor, count: Tensor | int) -> None:
        """One batch: ``valid`` None when every row is real (``count`` then the batch size), the
        rows' weights (float, 0 on padding; ``count`` their sum) in a weighted population."""
        self.losses.append(losses)
        self.counts.append(count)
        if out.dim() == 3 and y.dim() == 2:  # classification: correct answers
            hits = out.argmax(dim=2) == y
            if valid is not None:
                hits = hits & valid if valid.dtype == torch.bool else hits * valid
            self.scores.append(hits.sum(dim=1))
        else:  # regression: squared errors per output
            squares = (out - y) ** 2
            self.scores.append((squares if valid is None else squares * valid.unsqueeze(2)).sum(dim=1))

    def _totals(self) -> tuple[Tensor, Tensor, Tensor | None]:
        if not self.losses:
            zeros = torch.zeros(self.K, dtype=torch.float64)
            return zeros, zeros.long(), None
        counts = torch.stack([c if isinstance(c, Tensor) else torch.full((self.K,), c, device=self.device) for c in self.counts]).double()
        loss = (torch.stack(self.losses).double() * counts).sum(dim=0)
        score = torch.stack(self.scores).double().sum(dim=0)
        return loss.cpu(), counts.sum(dim=0).cpu(), score.cpu()  # weighted counts are not whole

    def results(self, task: str, scales: list, variances: list) -> list[tuple[float, dict[str, float]]]:
        loss, count, score = self._totals()
        out = []
        for k in range(len(loss)):
            n = float(count[k])
            if n == 0:
                out.append((math.nan, {}))
            elif task == "classification":
                out.append((float(loss[k]) / n, {"accuracy": float(score[k]) / n}))
            else:
                out.append((float(loss[k]) / n, regression_metrics(score[k], n, scales[k], variances[k])))
        return out
