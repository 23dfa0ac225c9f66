"""Strategies and the objective: staged tiers, per-epoch reports, pruning with reasons."""

from __future__ import annotations

import datetime
import math
import time

import optuna
import pytest
from optuna.trial import TrialState

from gradwise import TrainConfig, load_table, split_table
from gradwise.tuning import Budget, Objective, default_space, make_pruner, make_sampler, staged_plan
from gradwise.tuning.space import SearchSpace
from gradwise.tuning.strategies import MEDIUM_NARROW_FACTOR, NARROW_FACTOR, STAGE_SHARES, STAGE_TRIALS, joint_plan, stage_at, stage_by_trials

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def iris():
    return split_table(load_table("builtin:iris"), seed=0)


def test_budget_split_is_ten_thirty_sixty():
    assert STAGE_SHARES == (0.1, 0.3, 0.6)
    assert [stage_at(f) for f in (0.0, 0.09, 0.1, 0.39, 0.4, 0.99, 1.5)] == [0, 0, 1, 1, 2, 2, 2]


def _toy_score(config):
    # Best at lr = 0.01, hidden = 128; the sampler only needs something to climb.
    return -((math.log10(config["lr"]) + 2) ** 2) - (math.log2(config["hidden"]) - 7) ** 2 / 10


def _within(value, center, factor):
    return center / factor * 0.999 <= value <= center * factor * 1.001


def test_staged_search_goes_alpha_first_then_medium_around_best_alpha_then_low_tier():
    space = default_space("momentum")
    plan = staged_plan(Budget(n_trials=30))  # 10/30/60 %: trials 0-2, 3-11, 12-29
    study = optuna.create_study(direction="maximize", sampler=make_sampler("staged", 0))

    def objective(trial):
        config = {**space.defaults(), **plan(trial, space)}
        trial.set_user_attr("config", config)
        return _toy_score(config)

    study.optimize(objective, n_trials=30)
    trials = study.trials
    assert [_searched(t) for t in trials[:3]] == [{"lr"}] * 3
    for t in trials[:3]:  # the tiers not opened yet are told to the sampler at their defaults
        assert {name: t.params[name] for name in ("beta", "hidden", "batch_size", "layers")} == {"beta": pytest.approx(0.1), "hidden": 64, "batch_size": 64, "layers": 2}
        assert "lr_decay" not in t.params  # "no decay" is no point of the decay-rate range
    for t in trials[3:12]:
        assert _searched(t) == {"lr", "beta", "hidden", "batch_size"}
        assert t.params["layers"] == 2 and t.user_attrs["config"]["layers"] == 2
        best_alpha = max(trials[: t.number], key=lambda u: u.value).user_attrs["config"]["lr"]  # best so far
        assert _within(t.params["lr"], best_alpha, NARROW_FACTOR)
    # The low stage opens layers and decay; α and the medium tier stay searched near the best trial's values.
    for t in trials[12:]:
        assert _searched(t) == set(t.params) == {"lr", "beta", "hidden", "batch_size", "layers", "lr_decay"}
        best = max(trials[: t.number], key=lambda u: u.value).user_attrs["config"]
        assert _within(t.params["lr"], best["lr"], NARROW_FACTOR)
        assert _within(t.params["beta"], 1 - best["beta"], MEDIUM_NARROW_FACTOR)  # sampled as 1 - β
        for name in ("hidden", "batch_size"):
            assert math.floor(best[name] / MEDIUM_NARROW_FACTOR) <= t.params[name] <= math.ceil(best[name] * MEDIUM_NARROW_FACTOR)
    assert [t.user_attrs["stage"] for t in trials] == [0] * 3 + [1] * 9 + [2] * 18


def test_a_stage_ends_after_its_trial_cap_per_parameter_before_its_share():
    """Cheap trials (populations) must not spend hundreds of trials on α alone."""

    def stages(space, n_trials):
        plan = staged_plan(Budget(n_trials=100_000))  # shares never end a stage here
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))

        def objective(trial):
            config = {**space.defaults(), **plan(trial, space)}
            trial.set_user_attr("config", config)
            return _toy_score(config)

        study.optimize(objective, n_trials=n_trials)
        return [t.user_attrs["stage"] for t in study.trials]

    momentum = default_space("momentum")  # the medium tier opens β, hidden units and batch size
    assert stages(momentum, 4 * STAGE_TRIALS + 5) == [0] * STAGE_TRIALS + [1] * 3 * STAGE_TRIALS + [2] * 5
    data = momentum.to_dict()
    for name in ("beta", "hidden", "batch_size"):
        data["params"][name]["enabled"] = False
    assert stages(SearchSpace.from_dict(data), STAGE_TRIALS + 3) == [0] * STAGE_TRIALS + [2] * 3  # nothing to open


def test_a_trial_cut_and_retried_counts_once_toward_its_stage_cap():
    """The copy of a cut trial inherits its ``stage``; the failed original must not count too,
    or each Ctrl-C or lost worker would end a stage one trial early."""
    from gradwise.tuning.storage import RetryStaleTrial

    space = default_space("adam")  # the high stage opens α alone: a cap of STAGE_TRIALS trials
    study = optuna.create_study(direction="maximize")

    def run(state):
        trial = study.ask()
        trial.set_user_attr("stage", 0)
        if state == TrialState.FAIL:  # cut, as run_one handles a Ctrl-C: failed, then queued again
            study.tell(trial, state=TrialState.FAIL)
            RetryStaleTrial()(study, study._storage.get_trial(trial._trial_id))
        else:
            study.tell(trial, 1.0)
        return trial

    for _ in range(STAGE_TRIALS - 2):
        run(TrialState.COMPLETE)
    run(TrialState.FAIL)
    retry = run(TrialState.FAIL)  # the queued copy is asked next, and cut as well
    assert study.trials[retry.number].system_attrs["retry_history"] == [STAGE_TRIALS - 2]
    assert stage_by_trials(study, space) == 0  # 38 complete and one trial still to be run
    run(TrialState.COMPLETE)  # the second copy finishes it
    assert stage_by_trials(study, space) == 0
    run(TrialState.COMPLETE)
    assert stage_by_trials(study, space) == 1


def _searched(trial):
    """The parameters a trial let the sampler choose (pinned ones have a one-point range)."""
    return {name for name, d in trial.distributions.items() if not d.single()}


def test_timeout_budget_is_counted_in_trial_seconds():
    study = optuna.create_study()
    start = datetime.datetime(2026, 1, 1)
    for seconds in (30, 20):
        study.add_trial(optuna.trial.FrozenTrial(number=0, state=TrialState.COMPLETE, value=0.0, datetime_start=start, datetime_complete=start + datetime.timedelta(seconds=seconds), params={}, distributions={}, user_attrs={}, system_attrs={}, intermediate_values={}, trial_id=0))
    assert Budget(timeout=100).spent(study) == pytest.approx(0.5)
    assert Budget(timeout=100, workers=2).spent(study) == pytest.approx(0.25)
    assert Budget(n_trials=4, timeout=1000).spent(study) == pytest.approx(0.5)


def test_joint_asks_for_every_enabled_parameter():
    space = default_space("adam")
    trial = optuna.create_study().ask()
    assert set(joint_plan()(trial, space)) == {"lr", "hidden", "batch_size", "layers", "lr_decay"}


def test_strategies_use_optunas_samplers_and_pruners():
    assert isinstance(make_sampler("joint", 0), optuna.samplers.TPESampler)
    assert isinstance(make_sampler("staged", 0), optuna.samplers.TPESampler)
    assert isinstance(make_sampler("random", 0), optuna.samplers.RandomSampler)
    assert isinstance(make_pruner("hyperband", 60), optuna.pruners.HyperbandPruner)
    assert isinstance(make_pruner("halving", 60), optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(make_pruner("median", 60), optuna.pruners.MedianPruner)


def _fixed_plan(**values):
    return lambda trial, space: dict(values)


def test_objective_reports_the_validation_metric_every_epoch_and_returns_it(iris):
    space = default_space("adam")
    objective = Objective(iris, space, _fixed_plan(lr=0.01), "accuracy", TrainConfig(epochs=4, patience=None, hidden=8))
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE
    assert sorted(trial.intermediate_values) == [1, 2, 3, 4]
    assert all(0 <= v <= 1 for v in trial.intermediate_values.values())
    assert trial.user_attrs["config"]["lr"] == 0.01 and trial.user_attrs["epochs_run"] == 4
    assert 0 <= trial.value <= 1


def test_pruner_verdict_raises_trial_pruned_with_the_reason_recorded(iris):
    objective = Objective(iris, default_space("adam"), _fixed_plan(), "accuracy", TrainConfig(epochs=5, hidden=8))
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=1.5))
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.PRUNED
    assert trial.user_attrs["prune_reason"].startswith("pruner: unpromising validation accuracy")
    assert list(trial.intermediate_values) == [1]


@pytest.mark.parametrize("cv", [False, True])
def test_past_the_deadline_a_trial_is_cut_at_its_epoch_end_complete_first_then_pruned(iris, cv):
    from gradwise.tuning.folds import make_folds

    folds = make_folds(iris, 3) if cv else None
    objective = Objective(iris, default_space("adam"), _fixed_plan(lr=0.01), "accuracy", TrainConfig(epochs=6, patience=None, hidden=8), monitor=False, folds=folds)
    objective.deadline = time.monotonic() - 1.0  # already past
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=2)
    first, second = study.trials
    # Nothing to hand back yet: the first trial ends after its first epoch as complete, scored
    # by that epoch (with CV, by the one fold it trained), and says why.
    assert first.state == TrialState.COMPLETE and first.user_attrs["epochs_run"] == 1
    assert first.user_attrs["cut_by_timeout"] == 1
    assert first.user_attrs["stop_reason"].startswith("the --timeout ran out before any trial had completed")
    assert 0 <= first.value <= 1
    if cv:
        assert len(first.user_attrs["fold_values"]) == 1
    assert second.state == TrialState.PRUNED
    assert second.user_attrs["prune_reason"] == "the --timeout ran out in epoch 1 of this trial"


def test_the_deadline_ends_the_epoch_it_falls_in_after_that_step(iris):
    """An epoch can take minutes on a large table: past the deadline the trial's epoch ends
    after its current step (evaluated, so a first trial still has a score), not at its end."""
    from gradwise import fit
    from gradwise.tuning.objective import Deadline

    study = optuna.create_study(direction="maximize")
    config = TrainConfig(epochs=6, patience=None, hidden=8, batch_size=4)
    assert len(iris.train) > 4
    result = fit(config, iris, callbacks=[Deadline(study.ask(), time.monotonic() - 1.0)])
    assert result.epochs_run == 1 and result.updates == 1 and math.isfinite(result.history[0].val_loss)
    assert result.stop_reason.startswith("the --timeout ran out before any trial had completed")
    study.tell(study.trials[0].number, 0.5)
    with pytest.raises(optuna.TrialPruned, match="the --timeout ran out in epoch 1"):
        fit(config, iris, callbacks=[Deadline(study.ask(), time.monotonic() - 1.0)])


@pytest.fixture(scope="module")
def diabetes():
    return split_table(load_table("builtin:diabetes"), seed=0)


def test_non_finite_loss_prunes_at_once_as_diverging_loss(diabetes):
    objective = Objective(diabetes, default_space("gd"), _fixed_plan(lr=3.0, batch_size=8), "rmse", TrainConfig(epochs=10, patience=None), monitor=False)
    study = optuna.create_study(pruner=optuna.pruners.NopPruner())
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.PRUNED
    assert trial.user_attrs["prune_reason"].startswith("diverging_loss: non-finite loss in epoch 1")


def test_gradient_monitor_diagnosis_prunes_a_diverging_run_whose_loss_is_still_finite(diabetes):
    # Adam with α = 1 on diabetes: the loss jumps to ~1e8 and stays finite; the monitor calls it.
    plan = _fixed_plan(lr=1.0, batch_size=32, layers=3)
    objective = Objective(diabetes, default_space("adam"), plan, "rmse", TrainConfig(epochs=6, patience=None))
    study = optuna.create_study(pruner=optuna.pruners.NopPruner())
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.PRUNED
    assert trial.user_attrs["prune_reason"] == "diverging_loss diagnosed by the gradient monitor in epoch 1"
