"""How the budget is spent: ``staged`` (the default), ``joint`` or ``random``.

A strategy is an Optuna sampler plus a *plan*: ``plan(trial, space)`` decides which
parameters this trial asks the sampler for (``trial.suggest_*``) and which it takes as fixed.

``staged`` follows the document's ranking (EQUATIONS.md section 4). The budget, counted in
trials (``--trials``) or in trial-seconds (``--timeout`` × workers), whichever runs out
first, is split:

========  ======  ==========================================================================
stage     share   what is searched
========  ======  ==========================================================================
high      25 %    α alone, everything else at its default: the untuned defaults, a coarse α
                  grid (:data:`ALPHA_GRID`), then TPE
medium    45 %    β, hidden units, mini-batch size; α within ×/÷ 3 of the best α so far
low       30 %    layers, α decay (and any enabled "almost never" parameter); the high and
                  medium parameters fixed at the best trial's values
========  ======  ==========================================================================

Every worker computes the current stage from the study itself, so workers on different
machines agree without talking to each other. A retried trial (its worker died) replays the
stage and the fixed values it was started with.

``joint`` asks TPE for every enabled parameter in every trial; ``random`` asks Optuna's
``RandomSampler`` the same. All three use the same pruner (Hyperband by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import optuna
from optuna.trial import TrialState

from .space import SearchSpace

STRATEGIES = ("staged", "joint", "random")
PRUNERS = ("hyperband", "halving", "median", "none")
STAGES = (("high",), ("medium",), ("low", "never"))
# Measured with benchmarks/tune_efficiency.py (15 s, 3 seeds, same machine and load): with
# the α grid the high stage settles quickly, and 40/40/20 left the later stages too little
# time (time to reach plain Optuna's final score, median: diabetes never -> 0.48 of the
# budget; breast_cancer never either way, one seed reached at 0.75 with 25/45/30).
STAGE_SHARES = (0.25, 0.45, 0.3)
NARROW_FACTOR = 3.0  # the medium stage searches α within ×/÷ this factor of the best α
_COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass(frozen=True)
class Budget:
    """How much tuning to do: trials in the study, and/or seconds per worker."""

    n_trials: int | None = None
    timeout: float | None = None
    workers: int = 1

    def spent(self, study: optuna.Study, exclude: int | None = None) -> float:
        """The fraction of the budget used so far, in [0, ∞)."""
        trials = study.get_trials(deepcopy=False)
        fractions = [0.0]
        if self.n_trials:
            started = sum(t.state in _COUNTED and t.number != exclude for t in trials)
            fractions.append(started / self.n_trials)
        if self.timeout:
            seconds = sum(t.duration.total_seconds() for t in trials if t.state in _FINISHED and t.duration)
            fractions.append(seconds / (self.timeout * max(1, self.workers)))
        return max(fractions)


def stage_at(fraction: float) -> int:
    """The stage index for a spent budget fraction (0 = high, 1 = medium, 2 = low)."""
    total = 0.0
    for index, share in enumerate(STAGE_SHARES):
        total += share
        if fraction < total - 1e-9:
            return index
    return len(STAGE_SHARES) - 1


def best_config(study: optuna.Study) -> dict[str, Any] | None:
    """The TrainConfig dict of the best completed trial so far, or None."""
    try:
        best = study.best_trial
    except ValueError:  # no completed trial yet
        return None
    return best.user_attrs.get("config")


def staged_plan(budget: Budget) -> Callable[[optuna.Trial, SearchSpace], dict[str, Any]]:
    def plan(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
        stage = trial.user_attrs.get("stage")  # set on a retried trial: replay it
        if stage is None:
            stage = stage_at(budget.spent(trial.study, exclude=trial.number))
        fixed = trial.user_attrs.get("config") or best_config(trial.study) or space.defaults()
        trial.set_user_attr("stage", stage)
        return _stage_values(trial, space, stage, fixed)

    return plan


def _stage_values(trial: optuna.Trial, space: SearchSpace, stage: int, best: dict[str, Any]) -> dict[str, Any]:
    if stage == 0:
        return space.suggest(trial, [p.name for p in space.searched(STAGES[0])])
    values: dict[str, Any] = {}
    if stage == 1:
        for p in space.searched(STAGES[0]):  # α again, but only near the best one
            values[p.name] = p.narrowed(best.get(p.name, p.default), NARROW_FACTOR).suggest(trial)
        values.update(space.suggest(trial, [p.name for p in space.searched(STAGES[1])]))
        return values
    for p in space.searched(STAGES[0] + STAGES[1]):
        values[p.name] = best.get(p.name, p.default)
    values.update(space.suggest(trial, [p.name for p in space.searched(STAGES[2])]))
    return values


# The high stage starts from a coarse log grid around the default α (half-decade steps,
# larger rates first: the defaults are conservative, and on the benchmark tables the best α
# was 3-30x Adam's 1e-3). TPE needs several observations before it models anything, so
# spending its random start-up trials on an evenly spread grid reaches a good α sooner.
ALPHA_GRID = (3.0, 10.0, 30.0, 1.0 / 3.0)


def alpha_grid(space: SearchSpace) -> list[dict[str, Any]]:
    """Raw ``{name: value}`` params of the grid trials enqueued after the untuned one."""
    from .space import to_raw_value

    trials = []
    for p in space.searched(STAGES[0]):
        if p.kind != "float" or not p.log or p.default is None:
            continue
        center = to_raw_value(p, p.default)
        for factor in ALPHA_GRID:
            value = center * factor
            if p.low <= value <= p.high:
                trials.append({p.name: value})
    return trials


def joint_plan(budget: Budget | None = None) -> Callable[[optuna.Trial, SearchSpace], dict[str, Any]]:
    def plan(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
        return space.suggest(trial)

    return plan


def make_plan(strategy: str, budget: Budget) -> Callable[[optuna.Trial, SearchSpace], dict[str, Any]]:
    return staged_plan(budget) if strategy == "staged" else joint_plan(budget)


def make_sampler(strategy: str, seed: int | None) -> optuna.samplers.BaseSampler:
    """TPE for staged and joint (fewer random start-up trials in staged: each stage is small),
    Optuna's RandomSampler for random."""
    if strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    startup = 5 if strategy == "staged" else 10
    return optuna.samplers.TPESampler(n_startup_trials=startup, seed=seed)


def make_pruner(name: str, max_epochs: int) -> optuna.pruners.BasePruner:
    """Hyperband (default) or successive halving over epochs; median; or none."""
    min_resource = max(1, max_epochs // 20)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=min_resource, max_resource=max_epochs, reduction_factor=3)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=min_resource, reduction_factor=3)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=min_resource)
    return optuna.pruners.NopPruner()
