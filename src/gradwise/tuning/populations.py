"""Trials trained in populations: several Optuna trials, and all their CV folds, in one network.

The worker asks Optuna for up to ``K`` trials at once (ask-and-tell, under the shared
budget lock; TPE runs with ``constant_liar`` so that trials asked together spread out),
turns each into its TrainConfig with the same plan as a one-at-a-time trial, and trains
every (trial, fold) pair as a member of a :class:`~gradwise.training.population.PopulationTrainer`.
Without cross-validation, the first trial of a batch opens a population and the others, and
the trials asked later to refill it, are drawn with its depth, width and batch size pinned
(:func:`shaped_space`), so they differ in what a member may have of its own (α, β, α decay,
...) and all train together.
Trials that still differ in shape (a queued trial, a categorical choice) go to separate
populations; hidden widths within a factor of 2 share one (padded and masked), and so do
batch sizes within a factor of 2. After every epoch each live trial reports the mean of its folds' validation
metric to its own Optuna trial; a trial the pruner stops (or that diverges, or that the
gradient monitor finds exploding, or that the --timeout cuts) ends alone, and its members
stop costing compute once the population compacts. Every trial is then told to the study
as an ordinary COMPLETE or PRUNED trial with the same user attributes a one-at-a-time
trial gets, so resume, workers, retries, trials.csv and importance see no difference.

``--population``: ``off`` (one trial at a time, as before), ``K`` (trials per population)
or ``auto``, which chooses :data:`AUTO_TRIALS` trials for tables of up to
:data:`AUTO_MAX_ROWS` training rows and ``off`` above (see :func:`resolve_population`).
"""

from __future__ import annotations

import contextlib
import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import optuna
from optuna.trial import TrialState

from ..errors import ConfigError
from .interrupts import raise_pending
from .objective import METRICS, FATAL_FINDINGS, cut_first, deadline_passed, epoch_metric, mean_curve_best, memory_reason
from .space import to_raw_value
from .storage import RetryStaleTrial, heartbeat

ASK_SECONDS = "ask_seconds"  # set by the runner: the seconds its ask and configuration took

# Measured with benchmarks/population.py (2-core CPU, populations on both cores, gradwise.fit
# on its fastest thread count): digits (1,257 training rows, 2x64, batch 64) 3.5x
# gradwise.fit's configurations per second at K = 8, 6.5x at K = 32, 7.8x at K = 128; a
# 50,000 x 32 table, 3x128, batch 256: 2.5x at K = 8 and 32, less at 128 (the stacks outgrow
# the cache). With 5 CV folds per trial, 8 trials make 40 members. The default `gradwise
# tune` (digits, 120 s) finished 223-331 trials with 8 per population and 51-106 one at a
# time (benchmarks/tune_default.py, 3 seeds); 16 per population finished 10% more trials in
# 45 s but asks TPE for more points at once. Above 20,000 rows the gain was not measured
# beyond (b), so "auto" leaves those tables to one trial at a time.
AUTO_TRIALS = 8
AUTO_MAX_ROWS = 20_000


def resolve_population(value: Any, n_train: int) -> int:
    """Trials per population: 0 means off (one trial at a time, today's path)."""
    if value in (None, "auto"):
        return AUTO_TRIALS if n_train <= AUTO_MAX_ROWS else 0
    if value == "off":
        return 0
    try:
        k = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"--population must be auto, off or a number of trials >= 1; got {value!r}") from None
    if k < 1:
        raise ConfigError(f"--population must be auto, off or a number of trials >= 1; got {value!r}")
    return 0 if k == 1 else k


@dataclass(eq=False)  # compared by identity: a run is one trial
class TrialRun:
    """One trial in a population: its folds' member indices, curves and how it ended."""

    trial: optuna.Trial
    config: Any
    members: list[int] = field(default_factory=list)
    prune_reason: str | None = None
    results: dict[int, Any] = field(default_factory=dict)  # member index -> MemberResult, as they end
    seconds: float = 0.0  # its share of the population's time: each epoch split among the trials in it
    state: TrialState | None = None  # set once told


def size_bucket(size: Any) -> Any:
    """Hidden widths (or batch sizes) within a factor of two share a population: padding to the
    widest wastes under half, and a member with half the batch size takes twice the steps."""
    return size if isinstance(size, str) else max(0, math.ceil(math.log2(max(int(size), 1))))


def bucket_shapes(config: Any, splits: Any) -> list[tuple[int, int]]:
    """(in, out) of each layer, hidden layers padded to the top of the width's bucket, so any
    trial of the same bucket can join the population later."""
    width = 2 ** size_bucket(config.hidden)
    dims = [splits.n_features] + [width] * config.layers + [splits.n_outputs]
    return list(zip(dims[:-1], dims[1:]))


_SIZED = ("hidden", "batch_size")
# A population takes refills held to its shape until it has trained this many times its size
# in trials; then it runs down and the next one opens with a shape of the sampler's choosing.
# Without a limit one shape would take the whole budget (every refill fits it).
POPULATION_TRIALS = 2
# Trials are drawn with the population's shape only when each has at most this many folds.
# A cross-validated trial brings its k folds as members, so free trials grouped by shape
# still fill a population, and pinning only costs shapes searched: the default `gradwise
# tune` (digits, 5 folds, 60 s, seeds 0-1) ended at best CV accuracy 0.9817 / 0.9823 with
# every batch pinned against 0.9843 / 0.9843 drawn freely.
SHAPED_FOLDS = 1


def shaped_space(space: Any, like: Any) -> Any:
    """``space`` with the parameters that decide a population pinned to the values of ``like``
    (the TrainConfig of the trial that opened it), so a trial asked to fill it can join it.

    Why: asked freely, a batch of trials draws as many depths, widths and batch sizes as it
    has trials, and grouped by shape they trained in populations of one to three trials
    (15 s on breast_cancer without CV: 60 populations for 176 trials), one trial at a time
    with extra steps. Pinned, a population is a search over what each member may have of its
    own (α, β, α decay, ...) for one network: α, the document's most important parameter,
    searched densely for the network it depends on, and the shape searched once per
    population. Measured (benchmarks/tune_efficiency.py set-up, diabetes, 15 s, seeds 0-5):
    603 trials against 375, mean best validation RMSE 54.32 / 53.60 / 53.34 at 3 / 7.5 / 15 s
    against 54.54 / 53.69 / 53.58; breast_cancer ended level (0.0181 against 0.0184).
    Keeping width and batch size free within the population's ×2 bucket was no better there.
    Categorical parameters stay free (Optuna wants the same choices in every trial); a trial
    that draws another value waits for its own population.
    """
    from ..training.population.trainer import SHARED_FIELDS  # lazy: imports torch

    params = dict(space.params)
    for name, p in space.params.items():
        value = getattr(like, name, None)
        if name not in (*_SIZED, *SHARED_FIELDS) or not p.enabled or p.kind == "categorical" or value is None or isinstance(value, str):
            continue
        # The untuned trial may sit outside a --space range (64 units against 20,000-100,000):
        # a trial is never drawn outside its range, so that parameter stays free.
        if p.low <= to_raw_value(p, value) <= p.high:
            params[name] = p.pinned(value) or p
    return replace(space, params=params)


def group_key(config: Any, splits: Any) -> tuple:
    """Trials with equal keys train in one population: same sequence of operations, widths and
    batch sizes in the same ×2 bucket."""
    from ..training.population import population_key

    return (population_key(config, splits), size_bucket(config.hidden), size_bucket(config.batch_size))


def group_trials(runs: list[TrialRun], splits_of: list[Any]) -> list[list[TrialRun]]:
    groups: dict[tuple, list[TrialRun]] = defaultdict(list)
    for run in runs:
        groups[group_key(run.config, splits_of[0])].append(run)
    return list(groups.values())


class PopulationObjective:
    """Trains a batch of asked trials in populations and tells each one to the study."""

    def __init__(self, objective: Any, monitor: bool) -> None:
        self.objective = objective
        self.monitor = monitor
        self.folds = objective.folds or [objective.splits]
        self.metric = objective.metric
        self.maximize = METRICS[self.metric] == "maximize"

    def run(self, study: optuna.Study, trials: list[tuple[optuna.Trial, Any]], take: Callable[[int], list] | None = None,
            size: int | None = None, on_told: Callable[[optuna.Study], None] | None = None) -> list[TrialState]:
        """Train and tell ``trials`` ((trial, its TrainConfig or the error configuring it raised));
        returns the final states of every trial it ran.

        ``take(n)`` asks the study for up to ``n`` more trials (as the runner's budget allows):
        once half of a running population's ``size`` trials have ended, new trials that fit it
        join it at their own epoch 1 (the rest wait for the next population), so the population
        keeps its size instead of shrinking to the last few survivors."""
        self.study, self.take, self.size, self.on_told = study, take, size or len(trials), on_told
        self.runs: list[TrialRun] = []
        self.pending: list[TrialRun] = []
        self.alone: list[TrialRun] = []
        with contextlib.ExitStack() as stack:
            self.stack = stack
            self._admit(trials)
            try:
                while self.pending:
                    group = max(group_trials(self.pending, self.folds), key=len)
                    for part in self._fitting_parts(group):  # populations small enough for memory
                        self.pending = [r for r in self.pending if r not in part]
                        self._train(part)
            except KeyboardInterrupt:
                for run in self.runs:
                    if run.state is None:  # told trials are kept; the cut ones are retried
                        run.trial.set_user_attr("fail_reason", "interrupted (SIGINT)")
                        study.tell(run.trial, state=TrialState.FAIL)
                        RetryStaleTrial()(study, study._storage.get_trial(run.trial._trial_id))
                raise
            except Exception as error:  # noqa: BLE001 - a broken population fails its untold trials, not the study
                for run in self.runs:
                    if run.state is None:
                        run.state = _fail(study, run.trial, error)
        for run in self.alone:
            run.state = self._one_at_a_time(study, run)
        return [run.state for run in self.runs]

    def _admit(self, trials: list[tuple[optuna.Trial, Any]]) -> list[TrialRun]:
        """Turn asked trials into runs waiting for a population; failures and hopeless ones are told now."""
        from ..training.population import can_batch

        admitted = []
        for trial, config in trials:
            run = TrialRun(trial, config, seconds=trial.user_attrs.get(ASK_SECONDS, 0.0))
            self.runs.append(run)
            if isinstance(config, Exception):  # a trial's own failure must not end the batch
                run.state = _fail(self.study, trial, config)
            elif (reason := memory_reason(config, self.folds[0], len(self.folds))) is not None:
                run.state = _tell_pruned(self.study, trial, reason)  # gradwise.budget: cannot fit
            elif can_batch(config):
                self.alone.append(run)
            else:
                self.stack.enter_context(heartbeat(self.study, trial))
                self.pending.append(run)
                admitted.append(run)
        return admitted

    def _one_at_a_time(self, study: optuna.Study, run: TrialRun) -> TrialState:
        from .runner import run_one

        return run_one(study, run.trial, self.objective)  # suggests again: Optuna hands back the same values

    def _fitting_parts(self, group: list[TrialRun]) -> list[list[TrialRun]]:
        from ..budget import fitting_chunks

        fold = self.folds[0]
        chunks = fitting_chunks([r.config for r in group], fold.n_features, fold.n_outputs, len(fold.train), len(self.folds))
        return [[group[i] for i in chunk] for chunk in chunks]

    # -- training one population --

    def _train(self, group: list[TrialRun]) -> None:
        from ..training.population import PopulationTrainer

        self.owner: dict[int, TrialRun] = {}
        self.trained: list[TrialRun] = []
        self.key = group_key(group[0].config, self.folds[0])
        members = self._members(group, 0)
        trainer = PopulationTrainer(members, monitor=self.monitor, shapes=bucket_shapes(group[0].config, self.folds[0]))
        trainer.run(self._on_epoch, self._on_end, self._refill, cut_epoch=self._cut_epoch)

    def _cut_epoch(self) -> bool:
        """Asked after every step but an epoch's last: a Ctrl-C that a finalizer swallowed ends
        the population here (an epoch of a large table takes minutes), and the epoch running
        at the --timeout ends in this step."""
        raise_pending()
        return deadline_passed(self.objective.deadline)

    def _members(self, group: list[TrialRun], first: int) -> list[Any]:
        from ..training.population import Member

        members = []
        for run in group:
            run.members = []
            for fold in self.folds:
                run.members.append(first + len(members))
                members.append(Member(run.config, fold))
            self.owner.update({m: run for m in run.members})
            self.trained.append(run)
        return members

    def _refill(self, trainer: Any) -> None:
        """Once half of the population's trials have ended, ask for more and add those that fit."""
        from ..training.population import Member

        live = [run for run in self.trained if run.state is None]
        if self.take is None or len(live) > self.size // 2 or len(self.pending) >= self.size:
            return
        if deadline_passed(self.objective.deadline):
            return
        if len(self.trained) >= POPULATION_TRIALS * self.size:  # this shape has had its share
            return
        opener = self.trained[0]
        fresh = self._admit(self.take(self.size - len(live), (opener.trial, opener.config)))
        joining = [run for run in fresh if group_key(run.config, self.folds[0]) == self.key
                   and trainer.fits(Member(run.config, self.folds[0])) and self._fits_memory(live + [run])]
        if joining:
            for run in joining:
                run.trial.set_user_attr("joined_population", True)  # trained beside trials asked before it
            self.pending = [r for r in self.pending if r not in joining]
            trainer.add(self._members(joining, len(trainer.members)))

    def _fits_memory(self, runs: list[TrialRun]) -> bool:
        return len(self._fitting_parts(runs)) == 1

    def _on_end(self, member: int, result: Any) -> None:
        """Tell a trial as soon as its last fold has ended: the study (and other workers) learn of it now."""
        run = self.owner[member]
        run.results[member] = result
        if len(run.results) == len(run.members):
            run.trial.set_user_attr("seconds", run.seconds)  # Budget.spent counts this, not the overlapping duration
            run.state = self._tell(self.study, run)
            if self.on_told is not None:
                self.on_told(self.study)  # e.g. the live display

    def _on_epoch(self, records: dict[int, Any], trainer: Any) -> dict[int, str]:
        raise_pending()  # a Ctrl-C that a finalizer swallowed ends the population here
        ending: dict[int, str] = {}
        live = list({id(self.owner[m]): self.owner[m] for m in records}.values())
        seconds = next(iter(records.values())).seconds if records else 0.0
        for run in live:
            run.seconds += seconds / len(live)
        for run in live:
            reason = self._judge(run, records, trainer)
            if reason is not None:
                run.prune_reason = reason
                ending.update({m: f"pruned: {reason}" for m in run.members})
            elif (cut := self._cut_first(run, records)) is not None:
                ending.update({m: cut for m in run.members})
        return ending

    def _judge(self, run: TrialRun, records: dict[int, Any], trainer: Any) -> str | None:
        """Why this trial ends now (diverging, exploding, pruner, timeout), or None; reports first."""
        live = [records[m] for m in run.members if m in records]
        epoch = live[0].epoch
        for record in live:
            losses = [record.train_loss] + ([] if record.val_loss is None else [record.val_loss])
            if not all(math.isfinite(v) for v in losses):
                return f"diverging_loss: non-finite loss in epoch {epoch}"
        if trainer.watch is not None and (epoch <= 5 or epoch % 5 == 0):
            for m in run.members:
                finding = trainer.watch.fatal(m) if m in records else None
                if finding in FATAL_FINDINGS:
                    return f"{finding} diagnosed by the gradient monitor in epoch {epoch}"
        value = self._mean_value(run, trainer, epoch)
        if math.isfinite(value):
            run.trial.report(value, epoch)
            run.reported = epoch
            if run.trial.should_prune():
                return f"pruner: unpromising validation {self.metric} {value:.4g} at epoch {epoch}"
        if deadline_passed(self.objective.deadline) and _has_complete(run.trial):
            return f"the --timeout ran out in epoch {epoch} of this trial"
        return None

    def _cut_first(self, run: TrialRun, records: dict[int, Any]) -> str | None:
        """The stop reason that ends ``run`` unpruned when the --timeout has run out before any
        trial completed (see objective.Deadline), or None."""
        if not deadline_passed(self.objective.deadline) or _has_complete(run.trial):
            return None
        return cut_first(run.trial, next(records[m].epoch for m in run.members if m in records))

    def _mean_value(self, run: TrialRun, trainer: Any, epoch: int) -> float:
        """The folds' mean validation metric at ``epoch``; a fold that already stopped keeps its last value."""
        values = []
        for m in run.members:
            history = trainer.histories[m]
            if history:
                values.append(epoch_metric(history[min(epoch, len(history)) - 1], self.metric))
        return sum(values) / len(values) if values else math.nan

    # -- telling the study --

    def _tell(self, study: optuna.Study, run: TrialRun) -> TrialState:
        trial = run.trial
        if run.prune_reason is not None:
            trial.set_user_attr("prune_reason", run.prune_reason)
            study.tell(trial, state=TrialState.PRUNED)
            return TrialState.PRUNED
        results = [run.results[m] for m in run.members]
        curves = [[epoch_metric(r, self.metric) for r in result.history] for result in results]
        if len(results) == 1:
            best = results[0].best_record() or results[0].history[-1]
            value = epoch_metric(best, self.metric)
            trial.set_user_attr("epochs_run", len(results[0].history))
            trial.set_user_attr("best_epoch", results[0].best_epoch or len(results[0].history))
        else:
            value, epoch = mean_curve_best(curves, self.maximize)
            trial.set_user_attr("cv_folds", len(results))
            trial.set_user_attr("fold_values", [c[min(epoch, len(c)) - 1] for c in curves])
            trial.set_user_attr("fold_epochs_run", [len(c) for c in curves])
            trial.set_user_attr("best_epoch", epoch)
            trial.set_user_attr("epochs_run", max(len(c) for c in curves))
        trial.set_user_attr("stop_reason", results[-1].stop_reason)
        trial.set_user_attr("population", True)
        if not math.isfinite(value):
            trial.set_user_attr("prune_reason", f"diverging_loss: {results[-1].stop_reason}")
            study.tell(trial, state=TrialState.PRUNED)
            return TrialState.PRUNED
        study.tell(trial, value)
        return TrialState.COMPLETE


def _has_complete(trial: optuna.Trial) -> bool:
    return bool(trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def _tell_pruned(study: optuna.Study, trial: optuna.Trial, reason: str) -> TrialState:
    trial.set_user_attr("prune_reason", reason)
    study.tell(trial, state=TrialState.PRUNED)
    return TrialState.PRUNED


def _fail(study: optuna.Study, trial: optuna.Trial, error: Exception) -> TrialState:
    trial.set_user_attr("fail_reason", f"{type(error).__name__}: {error}")
    study.tell(trial, state=TrialState.FAIL)
    return TrialState.FAIL
