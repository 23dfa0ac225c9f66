"""Cross-validated trial scores for small tables, the α grid, and the choice of final model."""

from __future__ import annotations

from collections import Counter

import numpy as np
import optuna
import pytest

from gradwise import TrainConfig, fit, load_table, split_table
from gradwise.errors import ConfigError
from gradwise.tuning import Objective, TuneSpec, default_space
from gradwise.tuning.folds import make_folds, resolve_folds, resolve_members
from gradwise.tuning.objective import mean_curve_best
from gradwise.tuning.result import choose_final
from gradwise.tuning.runner import create_study, load_study, run_worker
from gradwise.tuning.strategies import ALPHA_GRID

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def iris():
    return split_table(load_table("builtin:iris"), seed=0)


def _rows(part):
    # A multiset: iris has duplicate rows.
    return Counter(tuple(np.round(x, 6)) + (int(y),) for x, y in zip(part.X, part.y))


def test_folds_partition_train_and_val_stratified_and_leave_test_alone(iris):
    folds = make_folds(iris, 5, seed=0)
    everything = _rows(iris.train) + _rows(iris.val)
    held = [_rows(f.val) for f in folds]
    assert sum(held, Counter()) == everything
    for fold, rows in zip(folds, held):
        assert _rows(fold.train) == everything - rows
        assert np.array_equal(fold.test.X, iris.test.X)
        # Stratified: every class is in every held-out fold (iris: ~25 rows per fold, 3 classes).
        assert set(np.unique(fold.val.y)) == {0, 1, 2}


def test_auto_cross_validates_small_tables_only_and_bad_values_are_refused():
    assert resolve_folds("auto", 500) == 5
    assert resolve_folds("auto", 5000) == 0
    assert resolve_folds(0, 500) == 0 and resolve_folds(3, 500) == 3
    with pytest.raises(ConfigError, match="--cv"):
        resolve_folds(1, 500)
    with pytest.raises(ConfigError, match="--cv"):
        TuneSpec(cv="many")


def test_auto_ensembles_the_final_model_of_small_tables_only_and_bad_values_are_refused():
    assert resolve_members("auto", 500) == 5 and resolve_members("auto", 5000) == 1
    assert resolve_members(1, 500) == 1 and resolve_members(3, 5000) == 3
    for bad in (0, -2, "many", True):
        with pytest.raises(ConfigError, match="--ensemble"):
            TuneSpec(ensemble=bad)


def test_mean_curve_best_picks_one_epoch_on_the_averaged_curves():
    # Fold a is noisy (its own best is 1.0 at epoch 2), fold b stopped early at epoch 3.
    curves = [[3.0, 1.0, 4.0, 2.0], [2.0, 5.0, 1.0]]
    padded = [[3.0, 1.0, 4.0, 2.0], [2.0, 5.0, 1.0, 1.0]]
    means = [sum(v) / 2 for v in zip(*padded)]
    assert mean_curve_best(curves, maximize=False) == (min(means), means.index(min(means)) + 1)
    assert mean_curve_best(curves, maximize=True) == (max(means), means.index(max(means)) + 1)


def test_cross_validated_objective_scores_the_mean_fold_curve(iris):
    space = default_space("adam")
    base = TrainConfig(epochs=4, patience=None, seed=0, device="cpu", )
    folds = make_folds(iris, 3, seed=0)
    objective = Objective(iris, space, lambda trial, space: {"lr": 0.01}, "loss", base, monitor=False, folds=folds)
    study = optuna.create_study()
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    # The same three fits written out: per-epoch validation losses, averaged, best epoch.
    config = base.replace(**space.defaults()).replace(lr=0.01)  # what every trial starts from, plus the plan
    curves = [[r.val_loss for r in fit(config, f).history] for f in folds]
    means = [sum(v) / 3 for v in zip(*curves)]
    assert trial.value == pytest.approx(min(means), rel=1e-5)
    assert trial.user_attrs["best_epoch"] == means.index(min(means)) + 1
    assert trial.user_attrs["fold_values"] == pytest.approx([c[means.index(min(means))] for c in curves], rel=1e-5)
    assert list(trial.intermediate_values) == [1, 2, 3, 4]  # fold 0 reports each epoch


def test_staged_study_starts_with_the_defaults_then_an_alpha_grid(iris):
    spec = TuneSpec(data="builtin:iris", n_trials=24, timeout=None, base={"epochs": 1, "patience": None}, monitor=False)
    storage = optuna.storages.InMemoryStorage()
    create_study(spec, storage, "s", "classification")
    study, spec = load_study(storage, "s", spec, worker_seed=0)
    run_worker(study, spec, iris)
    lrs = [t.user_attrs["config"]["lr"] for t in study.trials]
    assert study.trials[0].user_attrs.get("untuned") and lrs[0] == 1e-3
    # The grid comes next, queued one at a time and run in full although the high stage's
    # share is only 2.4 of the 24 trials; nothing is left over.
    assert lrs[1 : 1 + len(ALPHA_GRID)] == pytest.approx([1e-3 * f for f in ALPHA_GRID])
    assert len(study.trials) == 24


@pytest.mark.parametrize("strategy", ["joint", "random"])
def test_trial_zero_is_the_untuned_defaults_under_every_strategy(iris, strategy):
    # lr_decay's default is "no decay" (None), which no sampled value expresses: it must be
    # taken as the default, not sampled, or trial 0 is not the untuned run it is compared with.
    spec = TuneSpec(data="builtin:iris", strategy=strategy, n_trials=1, timeout=None, cv=0, base={"epochs": 1, "patience": None}, monitor=False)
    storage = optuna.storages.InMemoryStorage()
    create_study(spec, storage, "s", "classification")
    study, spec = load_study(storage, "s", spec, worker_seed=0)
    run_worker(study, spec, iris)
    trial = study.trials[0]
    space = spec.search_space()
    assert trial.user_attrs.get("untuned")
    assert {name: trial.user_attrs["config"][name] for name in space.params} == {p.name: p.default for p in space.params.values()}


def _cv_study(untuned_folds, best_folds):
    study = optuna.create_study(direction="minimize")
    for i, (folds, untuned) in enumerate(((untuned_folds, True), (best_folds, False))):
        attrs = {"fold_values": folds, "config": {"lr": 0.001 if untuned else 0.01}, "untuned": untuned, "best_epoch": 5}
        study.add_trial(optuna.create_trial(value=sum(folds) / len(folds), user_attrs=attrs))
    return study


def test_final_model_keeps_the_defaults_unless_the_best_trial_beats_them_beyond_one_standard_error():
    noisy = _cv_study([50.0, 60.0, 55.0, 52.0, 58.0], [53.0, 55.0, 57.0, 50.0, 59.0])  # mean gain 0.2, SE ~1.4
    best = {"trial": 1, "value": noisy.best_value, "config": {"lr": 0.01}}
    chosen, why = choose_final(noisy, best)
    assert chosen["trial"] == 0 and chosen["config"] == {"lr": 0.001} and "untuned" in why
    clear = _cv_study([50.0, 60.0, 55.0, 52.0, 58.0], [48.0, 57.0, 53.5, 50.0, 56.0])  # every fold ~2 better
    chosen, why = choose_final(clear, {"trial": 1, "value": clear.best_value, "config": {"lr": 0.01}})
    assert chosen["trial"] == 1 and chosen["config"] == {"lr": 0.01}


def _weighted_iris(zeros: int = 20):
    """iris with row weights: the first ``zeros`` rows weigh 0, the others 1 to 3."""
    from dataclasses import replace

    table = load_table("builtin:iris")
    weights = 1.0 + np.arange(table.n_rows) % 3
    weights[:zeros] = 0.0
    return replace(table, weights=weights)


def _without_first_rows(table, n: int):
    """``table`` without its first ``n`` rows (the weight-0 rows of :func:`_weighted_iris`)."""
    from dataclasses import replace

    rest = slice(n, None)
    return replace(table, features=table.features.iloc[rest].reset_index(drop=True), target=table.target.iloc[rest].reset_index(drop=True), weights=table.weights[rest])


def _kept_encoder(splits, refit: bool):
    from dataclasses import replace

    return splits if refit else replace(splits, rows=None)  # rows=None: a table too big to keep its raw rows


def assert_same_folds(folds, expected) -> None:
    for k, (fold, want) in enumerate(zip(folds, expected, strict=True)):
        for name in ("train", "val", "test"):
            for attr in ("X", "y", "w"):
                np.testing.assert_array_equal(getattr(getattr(fold, name), attr), getattr(getattr(want, name), attr), err_msg=f"fold {k} {name}.{attr}")


@pytest.mark.parametrize("refit", [True, False], ids=["refit_encoders", "kept_encoder"])
def test_folds_carry_row_weights_and_hold_no_weight_0_rows(refit):
    """No fold trains on or holds out a weight-0 row; every fold equals, weights included,
    the fold of the table without those rows; and the held-out folds partition the rows."""
    table = _weighted_iris()
    splits = _kept_encoder(split_table(table, seed=0), refit)
    without = _kept_encoder(split_table(_without_first_rows(table, 20), seed=0), refit)
    folds = make_folds(splits, 5, seed=0)
    for fold in folds:
        assert (fold.train.w > 0).all() and (fold.val.w > 0).all()
    assert_same_folds(folds, make_folds(without, 5, seed=0))
    merged = without.merge_train_val().train  # every row of positive weight is held out once
    held = np.concatenate([fold.val.w for fold in folds])
    np.testing.assert_array_equal(np.sort(held), np.sort(merged.w))
    for fold in folds:
        assert len(fold.train) + len(fold.val) == len(merged)


@pytest.mark.parametrize("refit", [True, False], ids=["refit_encoders", "kept_encoder"])
def test_weight_0_rows_a_caller_puts_in_training_are_in_no_fold(refit):
    """Splits whose training part carries weight-0 rows (a caller's own encode_split;
    split_table puts them nowhere) give the folds of the splits without them."""
    from gradwise.data import encode_split

    table = _weighted_iris()
    splits = split_table(table, seed=0)
    rows = splits.rows
    weightless = np.arange(20)  # _weighted_iris's weight-0 rows, spread through training
    train = np.insert(rows.train, np.linspace(0, len(rows.train), len(weightless)).astype(int), weightless)
    by_hand = encode_split(table, train, rows.val, rows.test, splits.seed, splits.fractions)
    assert (by_hand.train.w == 0).sum() == 20
    assert_same_folds(make_folds(_kept_encoder(by_hand, refit), 5, seed=0), make_folds(_kept_encoder(splits, refit), 5, seed=0))
