"""The objective: one Optuna ``trial`` → one :class:`TrainConfig` → one :func:`gradwise.fit`.

Each epoch the validation metric goes to ``trial.report(value, epoch)``; when
``trial.should_prune()`` says so (Hyperband, successive halving or the median rule),
``optuna.TrialPruned`` is raised from inside the training loop and reaches Optuna
unchanged. A run that diverges is pruned at once, without waiting for the pruner: a
non-finite loss, or the gradient monitor diagnosing ``diverging_loss`` or
``exploding_gradient`` (document section 1). So is a trial still running when the
worker's ``--timeout`` has passed (:class:`Deadline`). The reason is kept in the trial's
user attribute ``prune_reason``, so the trials table says why each trial ended.

Example::

    objective = Objective(splits, default_space("adam"), joint_plan(), metric="accuracy")
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.HyperbandPruner())
    study.optimize(objective, n_trials=20)
"""

from __future__ import annotations

import math
import time
from typing import Any

import optuna

from ..config import TrainConfig
from .interrupts import InterruptCheck
from .space import SearchSpace

# The validation metric each task is judged by, and whether larger is better.
METRICS = {"accuracy": "maximize", "rmse": "minimize", "r2": "maximize", "loss": "minimize"}
DEFAULT_METRIC = {"classification": "accuracy", "regression": "rmse"}
FATAL_FINDINGS = ("diverging_loss", "exploding_gradient")


def metric_value(metrics: dict[str, float], metric: str) -> float:
    """The chosen metric from a fit's metrics dict (``loss`` is the loss itself)."""
    return float(metrics.get(metric, math.nan))


def epoch_metric(record: Any, metric: str) -> float:
    if metric == "loss":
        return math.nan if record.val_loss is None else float(record.val_loss)
    return float(record.val_metrics.get(metric, math.nan))


class PruningCallback:
    """A gradwise training callback that reports to the trial and prunes.

    ``monitor`` is a :class:`gradwise.diagnosis.GradientMonitor` that is itself one of the
    run's callbacks (it observes every step); here its diagnosis is read at the end of
    epochs 1-5 and every fifth epoch after, since divergence shows early and a diagnosis
    is not free.
    """

    def __init__(self, trial: optuna.Trial, metric: str, monitor: Any = None) -> None:
        self.trial, self.metric, self.monitor = trial, metric, monitor

    def on_epoch_end(self, state: Any, record: Any) -> None:
        losses = [record.train_loss] + ([] if record.val_loss is None else [record.val_loss])
        if not all(math.isfinite(v) for v in losses):
            self._prune(f"diverging_loss: non-finite loss in epoch {record.epoch}")
        if record.epoch <= 5 or record.epoch % 5 == 0:
            fatal = fatal_finding(self.monitor)
            if fatal:
                self._prune(f"{fatal} diagnosed by the gradient monitor in epoch {record.epoch}")
        value = epoch_metric(record, self.metric)
        if math.isfinite(value):
            self.trial.report(value, record.epoch)
            if self.trial.should_prune():
                self._prune(f"pruner: unpromising validation {self.metric} {value:.4g} at epoch {record.epoch}")

    def _prune(self, reason: str) -> None:
        self.trial.set_user_attr("prune_reason", reason)
        raise optuna.TrialPruned(reason)


class Deadline:
    """Prunes the trial once ``at`` (``time.monotonic()``) has passed, so ``--timeout`` holds
    to within a training step instead of a whole trial: a 5-fold trial on digits takes 20-30 s,
    and the default two-minute search overran by 26 s waiting for one. The epoch running at
    the deadline ends after its current step (``EndEpoch``): an epoch of a 4 x 512 network
    with batch 16 on ggplot2's diamonds took 25 s on a 2-core CPU, and a 60 s search on that
    table once ran for 104 s.

    While the study has no completed trial, pruning would leave nothing to hand back, so the
    trial instead ends there as complete, scored by its best epoch so far (:func:`cut_first`).
    Before, it ran on to its end: a first trial on ggplot2's diamonds (53,940 rows, 60 epochs
    of about a second) took the search to 87 s of a 40 s --timeout.
    """

    def __init__(self, trial: optuna.Trial, at: float) -> None:
        self.trial, self.at = trial, at

    def on_step_end(self, state: Any) -> None:
        if deadline_passed(self.at):
            from ..training.callbacks import EndEpoch

            raise EndEpoch()

    def on_epoch_end(self, state: Any, record: Any) -> None:
        from ..training.callbacks import StopTraining

        if not deadline_passed(self.at):
            return
        if not self.trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            raise StopTraining(cut_first(self.trial, record.epoch))
        reason = f"the --timeout ran out in epoch {record.epoch} of this trial"
        self.trial.set_user_attr("prune_reason", reason)
        raise optuna.TrialPruned(reason)


def deadline_passed(deadline: float | None) -> bool:
    """Whether ``deadline`` (``time.monotonic()`` seconds; None: none) has passed."""
    return deadline is not None and time.monotonic() >= deadline


CUT_FIRST = "the --timeout ran out before any trial had completed"


def cut_first(trial: optuna.Trial, epoch: int) -> str:
    """The stop reason of a trial that the --timeout ends, unpruned, because none has completed
    yet; it is marked ``cut_by_timeout`` (its score is over fewer epochs than the budget)."""
    trial.set_user_attr("cut_by_timeout", epoch)
    return f"{CUT_FIRST}: ended in epoch {epoch} with its best epoch's score"


def make_monitor() -> Any:
    """A fresh gradient monitor, or None when ``gradwise.diagnosis`` cannot provide one."""
    try:
        from ..diagnosis import GradientMonitor
    except ImportError:
        return None
    return GradientMonitor()


def fatal_finding(monitor: Any) -> str | None:
    """``diverging_loss`` or ``exploding_gradient`` when the monitor diagnoses either (above info)."""
    if monitor is None:
        return None
    for finding in monitor.diagnose(problems=FATAL_FINDINGS).findings:
        if finding.severity != "info":
            return finding.problem
    return None


def mean_curve_best(curves: list[list[float]], maximize: bool) -> tuple[float, int]:
    """(best value, its 1-based epoch) of the folds' validation curves averaged epoch by epoch.

    Why one epoch for all folds, not each fold's own best: the minimum of a noisy curve is
    optimistic, and more so the noisier the curve, so "mean of per-fold bests" favours
    high-α configurations whose validation score jumps around — on diabetes those won the
    cross-validation and then lost on the test rows. Choosing a single epoch on the mean
    curve lets the k folds' noise average out first, and that epoch is the one the final
    refit on train + val trains for. A fold stopped early by patience keeps its last value
    for the later epochs (it had stopped improving).
    """
    length = max(len(c) for c in curves)
    padded = [c + [c[-1]] * (length - len(c)) for c in curves]
    means = [sum(values) / len(values) for values in zip(*padded)]
    pick = max if maximize else min
    best = pick(range(length), key=lambda e: means[e])
    return means[best], best + 1


class Objective:
    """``objective(trial)``: configure with ``plan``, train, report, return the validation metric.

    ``plan(trial, space)`` returns the TrainConfig values this trial tries (see
    :mod:`gradwise.tuning.strategies`); everything else comes from ``base``.

    With ``folds`` (a list of Splits from :func:`~gradwise.tuning.folds.make_folds`) the
    score is the best epoch of the folds' mean validation curve (:func:`mean_curve_best`). Fold 0 is
    trained first and is the one reported to the pruner epoch by epoch: it is the same rows
    in every trial, so its curves are comparable and a poor configuration is pruned after
    one partial fit rather than k. The other folds run only for configurations that
    survive fold 0.
    """

    def __init__(self, splits: Any, space: SearchSpace, plan: Any, metric: str, base: TrainConfig | None = None, monitor: bool = True, folds: list[Any] | None = None) -> None:
        self.splits, self.space, self.plan, self.metric = splits, space, plan, metric
        self.base = (base or TrainConfig()).replace(**space.defaults())
        self.monitor = monitor
        self.folds = folds or None
        self.deadline: float | None = None  # time.monotonic() past which trials are cut (see Deadline)

    def config_for(self, trial: optuna.Trial, space: SearchSpace | None = None) -> TrainConfig:
        """The trial's TrainConfig, its values drawn from ``space`` (default: the study's)."""
        config = self.base.replace(**self.plan(trial, space or self.space))
        trial.set_user_attr("config", _jsonable(config.to_dict()))
        return config

    def __call__(self, trial: optuna.Trial) -> float:
        config = self.config_for(trial)
        prune_if_too_big(trial, config, (self.folds or [self.splits])[0])
        if self.folds is None:
            value, result = self._fit(trial, config, self.splits, report=True)
            trial.set_user_attr("epochs_run", len(result.history))
            trial.set_user_attr("best_epoch", result.best_epoch or len(result.history))
            trial.set_user_attr("stop_reason", result.stop_reason)
            return value
        curves = []
        for index, fold in enumerate(self.folds):
            _, result = self._fit(trial, config, fold, report=index == 0)
            curves.append([epoch_metric(record, self.metric) for record in result.history])
            if result.stop_reason.startswith(CUT_FIRST):
                break  # out of time: the folds trained so far score it
        value, epoch = mean_curve_best(curves, METRICS[self.metric] == "maximize")
        trial.set_user_attr("cv_folds", len(self.folds))
        # Each fold's score at the chosen epoch: finalize compares the best trial with the
        # untuned one fold by fold (result.choose_final).
        trial.set_user_attr("fold_values", [c[min(epoch, len(c)) - 1] for c in curves])
        trial.set_user_attr("fold_epochs_run", [len(c) for c in curves])
        trial.set_user_attr("best_epoch", epoch)
        trial.set_user_attr("epochs_run", max(len(c) for c in curves))
        trial.set_user_attr("stop_reason", result.stop_reason)
        return value

    def _fit(self, trial: optuna.Trial, config: TrainConfig, splits: Any, report: bool) -> tuple[float, Any]:
        """(validation metric, FitResult) of one fit; prunes on divergence, and per epoch if ``report``."""
        from ..training.loop import fit  # lazy: importing the tuner should not import torch work

        callbacks: list[Any] = [InterruptCheck()] + ([] if self.deadline is None else [Deadline(trial, self.deadline)])
        if report:
            monitor = make_monitor() if self.monitor else None
            callbacks += ([monitor] if monitor is not None else []) + [PruningCallback(trial, self.metric, monitor)]
        result = fit(config, splits, callbacks=callbacks)
        value = metric_value(result.metrics.get("val", {}), self.metric)
        if not math.isfinite(value):
            reason = f"diverging_loss: {result.stop_reason}"
            trial.set_user_attr("prune_reason", reason)
            raise optuna.TrialPruned(reason)
        return value, result


def prune_if_too_big(trial: optuna.Trial, config: TrainConfig, splits: Any, members: int = 1) -> None:
    """Prune, with the estimate as the recorded reason, a trial whose network cannot fit in
    memory (gradwise.budget), instead of letting it grow until the kernel kills the worker."""
    reason = memory_reason(config, splits, members)
    if reason is not None:
        trial.set_user_attr("prune_reason", reason)
        raise optuna.TrialPruned(reason)


def memory_reason(config: TrainConfig, splits: Any, members: int = 1) -> str | None:
    """'memory: ...' when ``members`` networks of ``config`` cannot train on ``splits`` here."""
    from ..budget import MemoryBudgetError, check_memory
    from ..training.loop import resolve_device

    try:
        check_memory(config, splits.n_features, splits.n_outputs, len(splits.train), members, resolve_device(config.device))
    except MemoryBudgetError as error:
        return f"memory: {error}"
    return None


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    """TrainConfig dict with tuples as lists, so every storage keeps it as JSON."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
