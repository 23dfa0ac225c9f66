"""The training loop: update counts per variant, stopping rules, metrics, callbacks."""

import math

import numpy as np
import pytest
import torch

from gradwise import EndEpoch, StopTraining, TrainConfig, fit, load_table, split_table
from gradwise.errors import ConfigError


@pytest.fixture(scope="module")
def iris():
    return split_table(load_table("builtin:iris"), seed=0)


@pytest.fixture(scope="module")
def diabetes():
    return split_table(load_table("builtin:diabetes"), seed=0)


class StepCounter:
    def __init__(self):
        self.per_epoch, self.steps = [], 0

    def on_step_end(self, state):
        self.steps += 1

    def on_epoch_end(self, state, record):
        self.per_epoch.append(self.steps - sum(self.per_epoch))


@pytest.mark.parametrize("batch_size, expected", [("full", lambda m: 1), (1, lambda m: m), (16, lambda m: math.ceil(m / 16)), (7, lambda m: math.ceil(m / 7))])
def test_updates_per_epoch_for_batch_stochastic_and_minibatch(iris, batch_size, expected):
    m = len(iris.train)
    counter = StepCounter()
    result = fit(TrainConfig(batch_size=batch_size, epochs=3, patience=None, optimizer="gd", lr=0.01, hidden=8), iris, [counter])
    assert counter.per_epoch == [expected(m)] * 3
    assert result.updates == 3 * expected(m)
    assert [r.updates for r in result.history] == [expected(m) * (i + 1) for i in range(3)]


def test_stochastic_visits_examples_in_a_fresh_order_each_epoch(iris):
    seen = []

    class FirstExample:
        def on_after_backward(self, state, loss):
            seen.append((state.epoch, loss.item()))

    fit(TrainConfig(batch_size=1, epochs=2, patience=None, optimizer="gd", lr=1e-12, hidden=4), iris, [FirstExample()])
    # a negligible lr keeps the weights (nearly) fixed, so per-example losses differ only by order.
    m = len(iris.train)
    first, second = [l for e, l in seen if e == 0], [l for e, l in seen if e == 1]
    assert len(first) == len(second) == m
    assert first != second and sorted(first) == pytest.approx(sorted(second))


def test_same_seed_same_result_different_seed_different(iris):
    config = TrainConfig(epochs=5, hidden=8)
    a, b = fit(config, iris), fit(config, iris)
    assert a.history[-1].train_loss == b.history[-1].train_loss
    c = fit(config.replace(seed=1), iris)
    assert c.history[-1].train_loss != a.history[-1].train_loss


def test_early_stopping_restores_the_best_weights(iris):
    result = fit(TrainConfig(epochs=300, patience=3, lr=0.05, hidden=32), iris)
    assert result.stop_reason.startswith("early stopping")
    best = min(r.val_loss for r in result.history)
    assert result.best_epoch == [r.val_loss for r in result.history].index(best) + 1
    assert result.epochs_run == result.best_epoch + 3
    assert result.metrics["val"]["loss"] == pytest.approx(best, rel=1e-5)


def test_diverging_run_stops_cleanly_with_a_reason(iris):
    result = fit(TrainConfig(optimizer="gd", lr=1e6, epochs=50, init="normal", activation="relu"), iris)
    assert result.diverged and "lower the learning rate" in result.stop_reason
    assert result.epochs_run < 50


def test_callback_can_stop_training(iris):
    class StopAtTwo:
        def on_epoch_end(self, state, record):
            if record.epoch == 2:
                raise StopTraining("enough")

    result = fit(TrainConfig(epochs=10), iris, [StopAtTwo()])
    assert result.epochs_run == 2 and result.stop_reason == "enough"


def test_a_step_callback_can_end_an_epoch_early_and_training_goes_on(iris):
    """EndEpoch from on_step_end: that epoch ends after the step, is evaluated on the
    validation rows and recorded; the next epoch runs in full."""

    class EndFirstEpochAtStep3:
        def on_step_end(self, state):
            if state.epoch == 0 and state.step == 3:
                raise EndEpoch()

    m = len(iris.train)
    steps = math.ceil(m / 16)
    counter = StepCounter()
    config = TrainConfig(batch_size=16, epochs=3, patience=None, hidden=8)
    result = fit(config, iris, [EndFirstEpochAtStep3(), counter])
    assert counter.per_epoch == [3, steps, steps]
    assert [r.updates for r in result.history] == [3, 3 + steps, 3 + 2 * steps]
    assert result.epochs_run == 3 and result.stop_reason == "completed 3 epochs"
    assert math.isfinite(result.history[0].val_loss) and math.isfinite(result.history[0].train_loss)
    assert result.history[0].val_loss != fit(config, iris).history[0].val_loss  # not the full epoch's


def test_a_time_limit_ends_training_within_the_step_that_passes_it(iris):
    from gradwise.training.callbacks import TimeLimit

    result = fit(TrainConfig(batch_size=4, epochs=50, patience=None, hidden=8), iris, [TimeLimit(0.0)])
    assert result.epochs_run == 1 and result.updates == 1
    assert result.stop_reason == "time limit: 0 s reached in epoch 1"


def test_other_callback_exceptions_propagate(iris):
    class Boom:
        def on_epoch_end(self, state, record):
            raise KeyError("pruned")

    with pytest.raises(KeyError):
        fit(TrainConfig(epochs=3), iris, [Boom()])


def test_regression_metrics_are_in_original_units(diabetes):
    result = fit(TrainConfig(epochs=30, lr=3e-3), diabetes)
    predictions = result.model.predict_array(diabetes.test.X)[:, 0]
    truth = diabetes.test.y[:, 0]
    rmse = float(np.sqrt(np.mean((predictions - truth) ** 2)))
    r2 = 1 - np.sum((predictions - truth) ** 2) / np.sum((truth - truth.mean()) ** 2)
    assert result.metrics["test"]["rmse"] == pytest.approx(rmse, rel=1e-4)
    assert result.metrics["test"]["r2"] == pytest.approx(r2, rel=1e-3, abs=1e-4)
    assert 30 < rmse < 100  # diabetes targets range 25..346: original units, not normalized ones


def test_classification_accuracy_matches_predictions(iris):
    result = fit(TrainConfig(epochs=40, lr=1e-2), iris)
    accuracy = np.mean(result.model.predict_array(iris.test.X) == iris.test.y)
    assert result.metrics["test"]["accuracy"] == pytest.approx(accuracy)
    assert accuracy > 0.85


def test_normalizer_is_fitted_on_the_training_split_only(iris):
    result = fit(TrainConfig(epochs=1), iris)
    norm = result.model.input_normalizer
    np.testing.assert_allclose(norm.data_min_.numpy(), iris.train.X.min(axis=0).astype(np.float64))
    np.testing.assert_allclose(norm.data_max_.numpy(), iris.train.X.max(axis=0).astype(np.float64))


@pytest.mark.parametrize("changes, option", [
    ({"lr": -0.1}, "--lr"), ({"lr": 0.0}, "--lr"), ({"batch_size": 0}, "--batch-size"), ({"batch_size": "half"}, "--batch-size"),
    ({"epochs": 0}, "--epochs"), ({"beta": 1.0}, "--beta"), ({"eps": 0.0}, "--eps"), ({"hidden": 0}, "--hidden"),
    ({"activation": "swish"}, "--activation"), ({"dropout": 1.0}, "--dropout"), ({"lr": float("nan")}, "--lr"),
])
def test_absurd_configuration_is_rejected_naming_the_option(changes, option):
    with pytest.raises(ConfigError, match=option):
        TrainConfig(**changes)


def test_batch_norm_and_dropout_models_train(iris):
    result = fit(TrainConfig(epochs=5, batch_norm=True, dropout=0.2, batch_size=16), iris)
    assert math.isfinite(result.metrics["val"]["loss"])
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in result.model.net.modules())


def test_fit_flushes_subnormals_while_training_and_restores_the_mode_after():
    from gradwise.training.denormals import _flushing, flushed_denormals

    assert not _flushing()
    with flushed_denormals():
        assert _flushing()
        assert float(torch.tensor([1e-30]) * 1e-10) == 0.0
    assert not _flushing()
    seen = []

    class Watch:
        def on_epoch_end(self, state, record):
            seen.append(_flushing())

    fit(TrainConfig(epochs=2, hidden=4), split_table(load_table("builtin:iris"), seed=0), callbacks=[Watch()])
    assert seen == [True, True] and not _flushing()
    torch.set_flush_denormal(True)  # the user's own setting survives a block
    try:
        with flushed_denormals():
            assert _flushing()
        assert _flushing()
    finally:
        torch.set_flush_denormal(False)


# -- row weights (Part.w) -----------------------------------------------------------------
def weighted(splits, weights_for):
    from dataclasses import replace

    from gradwise.data.splitting import Part

    parts = {name: getattr(splits, name) for name in ("train", "val", "test")}
    return replace(splits, **{name: Part(p.X, p.y, weights_for(name, len(p))) for name, p in parts.items()})


def test_a_batch_of_only_weight_zero_rows_makes_no_update(iris):
    zeros_every_third = lambda name, n: np.where(np.arange(n) % 3 == 0, 0.0, 1.0).astype(np.float32)  # noqa: E731
    counter = StepCounter()
    fit(TrainConfig(batch_size=1, epochs=2, patience=None, optimizer="gd", lr=0.01, hidden=4), weighted(iris, zeros_every_third), [counter])
    positive = int((zeros_every_third("train", len(iris.train)) > 0).sum())
    assert counter.per_epoch == [positive, positive]


def table_rows(table, keep: np.ndarray):
    """The table of only the rows ``keep`` (features, target and weights alike)."""
    from dataclasses import replace

    def rows(frame):
        return frame.iloc[keep].reset_index(drop=True)

    return replace(table, features=rows(table.features), target=rows(table.target), weights=table.weights[keep])


@pytest.mark.parametrize("name", ["iris", "diabetes"])
def test_a_minibatch_batch_norm_fit_with_weight_0_rows_equals_the_fit_without_them(name):
    """Weight-0 rows scattered through the table (every 7th) take no place in a mini-batch,
    the steps per epoch or the batch-norm statistics: the loss history, the stopping
    epoch, the metrics and every weight and running statistic equal the fit on the table
    without those rows. (Before, they sat in training batches, counting nothing in the loss
    but moving the batch statistics and the batch boundaries.)"""
    from dataclasses import replace

    plain = load_table(f"builtin:{name}")
    weights = 1.0 + np.arange(plain.n_rows) % 3
    weights[::7] = 0.0
    table = replace(plain, weights=weights)
    without = table_rows(table, np.flatnonzero(weights > 0))
    config = TrainConfig(batch_norm=True, batch_size=16, epochs=8, patience=2, hidden=16, lr=0.01, device="cpu")
    counters = StepCounter(), StepCounter()
    a = fit(config, split_table(table, seed=1), [counters[0]])
    b = fit(config, split_table(without, seed=1), [counters[1]])
    assert counters[0].per_epoch == counters[1].per_epoch
    for key in ("train_loss", "val_loss"):
        np.testing.assert_allclose([getattr(r, key) for r in a.history], [getattr(r, key) for r in b.history], rtol=1e-6, atol=0)
    assert a.best_epoch == b.best_epoch and a.stop_reason == b.stop_reason
    for split in ("train", "val", "test"):
        assert a.metrics[split] == pytest.approx(b.metrics[split], rel=1e-6)
    state_a, state_b = a.model.state_dict(), b.model.state_dict()  # weights, batch-norm running stats, normalizers
    assert state_a.keys() == state_b.keys() and any("running_var" in key for key in state_a)
    for key in state_a:
        torch.testing.assert_close(state_a[key], state_b[key], rtol=1e-6, atol=1e-7, msg=key)


def test_weighted_split_metrics_are_weighted_means(diabetes):
    rng = np.random.default_rng(0)
    splits = weighted(diabetes, lambda name, n: rng.uniform(0.1, 2, n).astype(np.float32))
    result = fit(TrainConfig(epochs=5, hidden=8, device="cpu"), splits)
    test = splits.test
    prediction = result.model.predict_array(test.X).ravel()
    target = test.y.ravel()
    rmse = np.sqrt(np.average((prediction - target) ** 2, weights=test.w))
    assert result.metrics["test"]["rmse"] == pytest.approx(rmse, rel=1e-4)
    unweighted = fit(TrainConfig(epochs=5, hidden=8, device="cpu"), diabetes)
    assert result.metrics["test"]["rmse"] != pytest.approx(unweighted.metrics["test"]["rmse"], rel=1e-3)


def test_merging_train_and_validation_keeps_row_weights(iris):
    only_train = weighted(iris, lambda name, n: np.full(n, 2.0, np.float32) if name == "train" else None)
    merged = only_train.merge_train_val()
    assert merged.train.w.tolist() == [2.0] * len(iris.train) + [1.0] * len(iris.val)
    assert len(merged.val) == 0 and iris.merge_train_val().train.w is None


def test_the_constant_baseline_is_scikit_learns_dummy_estimator_and_flags_a_useless_model():
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.metrics import accuracy_score, mean_squared_error

    from gradwise.training.baseline import constant_baseline, no_better_than_constant

    for name in ("iris", "diabetes"):
        splits = split_table(load_table(f"builtin:{name}"), seed=0)
        dummy = DummyClassifier(strategy="most_frequent") if splits.task == "classification" else DummyRegressor(strategy="mean")
        predicted = dummy.fit(splits.train.X, splits.train.y).predict(splits.test.X)
        expected = accuracy_score(splits.test.y, predicted) if splits.task == "classification" else mean_squared_error(splits.test.y, predicted) ** 0.5
        (metric, value), = constant_baseline(splits).items()
        assert value == pytest.approx(expected, rel=1e-6)
        better = {"accuracy": value + 0.1} if metric == "accuracy" else {"rmse": value * 0.5}
        worse = {"accuracy": value} if metric == "accuracy" else {"rmse": value * 1.5}
        assert no_better_than_constant(better, {metric: value}, 100) is None
        assert "no better than always predicting" in no_better_than_constant(worse, {metric: value}, 100)
