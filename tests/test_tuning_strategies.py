"""Strategies and the objective: staged tiers, per-epoch reports, pruning with reasons."""

from __future__ import annotations

import datetime
import math

import optuna
import pytest
from optuna.trial import TrialState

from gradwise import TrainConfig, load_table, split_table
from gradwise.tuning import Budget, Objective, default_space, make_pruner, make_sampler, staged_plan
from gradwise.tuning.strategies import NARROW_FACTOR, STAGE_SHARES, joint_plan, stage_at

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def iris():
    return split_table(load_table("builtin:iris"), seed=0)


def test_budget_split_is_twenty_five_forty_five_thirty():
    assert STAGE_SHARES == (0.25, 0.45, 0.3)
    assert [stage_at(f) for f in (0.0, 0.24, 0.25, 0.69, 0.7, 0.99, 1.5)] == [0, 0, 1, 1, 2, 2, 2]


def _toy_score(config):
    # Best at lr = 0.01, hidden = 128; the sampler only needs something to climb.
    return -((math.log10(config["lr"]) + 2) ** 2) - (math.log2(config["hidden"]) - 7) ** 2 / 10


def test_staged_search_goes_alpha_first_then_medium_around_best_alpha_then_low_tier():
    space = default_space("momentum")
    plan = staged_plan(Budget(n_trials=20))  # 25/45/30 %: trials 0-4, 5-13, 14-19
    study = optuna.create_study(direction="maximize", sampler=make_sampler("staged", 0))

    def objective(trial):
        config = {**space.defaults(), **plan(trial, space)}
        trial.set_user_attr("config", config)
        return _toy_score(config)

    study.optimize(objective, n_trials=20)
    trials = study.trials
    assert [set(t.params) for t in trials[:5]] == [{"lr"}] * 5
    for t in trials[5:14]:
        assert set(t.params) == {"lr", "beta", "hidden", "batch_size"}
        best_alpha = max(trials[: t.number], key=lambda u: u.value).user_attrs["config"]["lr"]  # best so far
        assert best_alpha / NARROW_FACTOR * 0.999 <= t.params["lr"] <= best_alpha * NARROW_FACTOR * 1.001
    best_medium = max(trials[:14], key=lambda t: t.value).user_attrs["config"]
    for t in trials[14:]:
        assert set(t.params) == {"layers", "lr_decay"}
        assert {k: t.user_attrs["config"][k] for k in ("lr", "beta", "hidden", "batch_size")} == {k: best_medium[k] for k in ("lr", "beta", "hidden", "batch_size")}
    assert [t.user_attrs["stage"] for t in trials] == [0] * 5 + [1] * 9 + [2] * 6


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
