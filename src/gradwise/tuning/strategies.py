"""How the budget is spent: ``staged`` (the default), ``joint`` or ``random``.

A strategy is an Optuna sampler plus a *plan*: ``plan(trial, space)`` decides which
parameters this trial asks the sampler for (``trial.suggest_*``) and which it takes as fixed.

``staged`` follows the document's ranking (EQUATIONS.md section 4). The budget, counted in
trials (``--trials``) or in trial-seconds (``--timeout`` × workers), whichever runs out
first, is split:

========  ======  ==========================================================================
stage     share   what is searched
========  ======  ==========================================================================
high      10 %    α alone, everything else at its default: the untuned defaults, a coarse α
                  grid (:data:`ALPHA_GRID`, run in full even past the share), then TPE
medium    30 %    β, hidden units, mini-batch size; α within ×/÷ 10 of the best α so far
low       60 %    layers, α decay (and any enabled "almost never" parameter); α and the medium
                  tier within ×/÷ 10 of the best trial's values
========  ======  ==========================================================================

The order is the document's: each stage opens the next tier, and the tiers opened before
stay searchable near their best values, because the best α moves with the width and depth of
the network. The shares are in trial-seconds when a --timeout is set, and the trials differ
in cost: α-alone trials train the small default network, later ones often wider, deeper
networks, so 10 % of the seconds is still dozens of α trials while the low stage, which
searches the most parameters, gets the most time.

A stage also ends once it has run :data:`STAGE_TRIALS` trials for each parameter it opens
(40 for α alone, 80 for hidden units and batch size): trained in populations, trials are
cheap enough that a share of the seconds buys hundreds of them, far more than TPE needs to
place a parameter or two.

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
from .storage import retried_numbers

STRATEGIES = ("staged", "joint", "random")
PRUNERS = ("hyperband", "halving", "median", "none")
STAGES = (("high",), ("medium",), ("low", "never"))
# Measured with benchmarks/tune_efficiency.py (15 s budgets, staged only, median over seeds):
# 25/45/30 with the later tiers' α pinned near the first choice left breast_cancer's best
# validation loss at 0.025 by mid-budget (seeds 5-9) and 0.022 at the end; 10/30/60 with the
# wider searches below: 0.021 by mid-budget and 0.016 at the end, and two of those five seeds
# found the deep, wide networks (0.002, 0.007) that plain Optuna's best runs find. Diabetes
# ended no worse (median final RMSE 53.40 vs 53.60 over 10 and 8 seeds; at mid-budget 54.0
# vs 53.8, within the seeds' spread). 15/35/50: breast_cancer 0.028 by mid-budget (seeds 0-4).
# Full benchmark (15 s, seeds 0-2) with all of this: time to reach plain Optuna's final score,
# median, diabetes 0.32 of the budget; breast_cancer still never (0.21 on one seed; plain
# Optuna's final there is often a near-zero loss, 0.0015-0.0028), mean best loss at 15 s
# 0.0080 against plain Optuna's 0.0093.
STAGE_SHARES = (0.1, 0.3, 0.6)
# Why the later stages keep searching the earlier tiers near the best values (not fixed at
# them): the best α depends on the width and depth of the network (on breast_cancer the best
# 2-layer, 64-unit α was 0.01-0.03, the best 4-layer, 300-unit one 0.001-0.003), so α fixed
# at the first stage's choice, or searched within only ×/÷ 3 of it, shut out the wide, deep
# networks that win there; and one best trial chosen on a noisy validation score is a poor
# place to pin the medium tier while the low tier is searched.
NARROW_FACTOR = 10.0  # the medium and low stages search α within ×/÷ this factor of the best α
# The low stage searches the medium tier within ×/÷ this of its best values: 3 kept a narrow
# best trial's width (38 units) away from the 300-unit networks (breast_cancer, seeds 0-4,
# median best loss 0.026 by mid-budget and 0.016 at the end; 10: 0.021 and 0.014).
MEDIUM_NARROW_FACTOR = 10.0
# A stage also ends once it has run this many trials per parameter it opens, if that comes
# before its share of the budget. Populations made trials cheap: on breast_cancer (30 s, one
# process) the high stage's 10 % bought 141 trials of α alone and the medium stage's 30 %
# 229 more, long after TPE had stopped learning anything new there, so the low tier, where
# that table's deep networks are, opened only at half the budget. Measured with
# benchmarks/tune_variants.py (30 s, seeds 0-5, mean best at 20/50/100 % of the budget):
# breast_cancer validation loss, no cap 0.0319/0.0251/0.0169, 10 trials 0.0242/0.0180/0.0138,
# 20: 0.0200/0.0167/0.0128, 40: 0.0212/0.0158/0.0075, 80: 0.0255/0.0206/0.0177; diabetes
# RMSE, no cap 54.46/53.98/53.79, 20: 53.98/53.48/53.18, 40: 53.48/53.28/52.76. One trial
# at a time (tens of trials in such a budget) rarely reaches the cap.
STAGE_TRIALS = 40
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
            # A trial trained in a population records its share of the population's time.
            seconds = sum(t.user_attrs.get("seconds", t.duration.total_seconds() if t.duration else 0.0) for t in trials if t.state in _FINISHED)
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


def stage_by_trials(study: optuna.Study, space: SearchSpace, exclude: int | None = None) -> int:
    """The first stage that has not yet run :data:`STAGE_TRIALS` trials per parameter it opens.

    A stage that opens no parameter (a --space that searches nothing of its tier) is
    passed at once. A trial cut and run again counts once: its copy inherits its ``stage``,
    and the failed original is left out (:func:`~gradwise.tuning.storage.retried_numbers`).
    """
    trials = study.get_trials(deepcopy=False)
    taken_over = retried_numbers(trials)
    counts = [0] * len(STAGES)
    for t in trials:
        stage = t.user_attrs.get("stage")
        if stage is not None and t.number != exclude and t.number not in taken_over:
            counts[stage] += 1
    for index, tiers in enumerate(STAGES[:-1]):
        if counts[index] < STAGE_TRIALS * len(space.searched(tiers)):
            return index
    return len(STAGES) - 1


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
            stage = max(stage_at(budget.spent(trial.study, exclude=trial.number)), stage_by_trials(trial.study, space, trial.number))
        fixed = trial.user_attrs.get("config") or best_config(trial.study) or space.defaults()
        trial.set_user_attr("stage", stage)
        return _stage_values(trial, space, stage, fixed)

    return plan


def _stage_values(trial: optuna.Trial, space: SearchSpace, stage: int, best: dict[str, Any]) -> dict[str, Any]:
    if stage == 0:
        values = space.suggest(trial, [p.name for p in space.searched(STAGES[0])])
    else:
        values = _around_best(trial, space.searched(STAGES[0]), best, NARROW_FACTOR)
    if stage == 1:
        values.update(space.suggest(trial, [p.name for p in space.searched(STAGES[1])]))
    elif stage == 2:
        values.update(_around_best(trial, space.searched(STAGES[1]), best, MEDIUM_NARROW_FACTOR))
        values.update(space.suggest(trial, [p.name for p in space.searched(STAGES[2])]))
    for tiers in STAGES[stage + 1:]:
        values.update(_pinned_defaults(trial, space.searched(tiers)))
    return values


def _pinned_defaults(trial: optuna.Trial, params: list[Any]) -> dict[str, Any]:
    """The tiers not opened yet, at their defaults, told to the sampler as one-point ranges.

    Why tell it: TPE models a parameter from the trials that recorded it. Unrecorded, the
    early stages' trials, which ran the default 64 units and 2 layers and hold the best
    scores when a tier opens, would be invisible to the model of that tier, and its first
    trials would be drawn from the prior alone; recorded, TPE starts from what they show.
    Measured (benchmarks/tune_efficiency.py set-up, 15 s, seeds 0-9, median best at half the
    budget): breast_cancer validation loss 0.0217 against 0.0247 unrecorded; diabetes RMSE
    53.89 against 53.81-53.86, within the seeds' spread.
    """
    values = {}
    for p in params:
        pinned = p.pinned(p.default)
        if pinned is not None:
            values[p.name] = pinned.suggest(trial)
    return values


def _around_best(trial: optuna.Trial, params: list[Any], best: dict[str, Any], factor: float) -> dict[str, Any]:
    """Each parameter searched within ×/÷ ``factor`` of its best value so far (see Param.narrowed)."""
    return {p.name: p.narrowed(best.get(p.name, p.default), factor).suggest(trial) for p in params}


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


def untuned_params(space: SearchSpace) -> dict[str, Any]:
    """Raw ``{name: value}`` params of the untuned trial enqueued first in every study.

    Only parameters whose default a sampled value can express: "no α decay" (None) has no
    point in the decay-rate range, and a categorical default may not be among the choices.
    """
    from .space import to_raw_value

    return {p.name: to_raw_value(p, p.default) for p in space.searched() if p.default is not None and p.kind != "categorical"}


def untuned_values(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """Every searched parameter at its default. The enqueued ones are still suggested (Optuna
    fixes them to the queued values) so the sampler learns from trial 0; the others are not
    suggested at all, since a sampled value would replace their default."""
    values = {p.name: p.default for p in space.searched()}
    values.update(space.suggest(trial, list(untuned_params(space))))
    return values


def joint_plan(budget: Budget | None = None) -> Callable[[optuna.Trial, SearchSpace], dict[str, Any]]:
    def plan(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
        if trial.user_attrs.get("untuned"):
            return untuned_values(trial, space)
        return space.suggest(trial)

    return plan


def make_plan(strategy: str, budget: Budget) -> Callable[[optuna.Trial, SearchSpace], dict[str, Any]]:
    return staged_plan(budget) if strategy == "staged" else joint_plan(budget)


def make_sampler(strategy: str, seed: int | None, constant_liar: bool = False) -> optuna.samplers.BaseSampler:
    """TPE for staged and joint (fewer random start-up trials in staged: each stage is small),
    Optuna's RandomSampler for random. ``constant_liar``: trials asked while others run (a
    population's batch) are drawn as if the running ones had scored badly, so they spread out."""
    if strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    startup = 5 if strategy == "staged" else 10
    if constant_liar:
        return optuna.samplers.TPESampler(n_startup_trials=startup, seed=seed, constant_liar=True)
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
