"""GradwiseClassifier and GradwiseRegressor inside scikit-learn's own machinery.

Small data and few epochs: each test checks that the piece of scikit-learn works with the
estimators and that the numbers are those of a network that learned something.
"""

from __future__ import annotations

import copy
import dataclasses

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import sparse
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, load_iris, make_regression
from sklearn.experimental import enable_halving_search_cv  # noqa: F401  (enables the import below)
from sklearn.inspection import permutation_importance
from sklearn.metrics import accuracy_score, log_loss, r2_score
from sklearn.model_selection import GridSearchCV, HalvingRandomSearchCV, RandomizedSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from scipy.stats import loguniform, randint

import gradwise
from gradwise.errors import DataError
from gradwise.sklearn import GradwiseClassifier, GradwiseRegressor
from gradwise.sklearn.inputs import hold_out_weighted

QUICK = dict(epochs=20, hidden=16, lr=0.05, batch_size=32, device="cpu")
SKLEARN_ONLY = {"validation_fraction": 0.1, "threads": 0}


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def diabetes():
    return load_diabetes(return_X_y=True)


@pytest.mark.parametrize("cls", [GradwiseClassifier, GradwiseRegressor])
def test_every_train_config_field_is_a_parameter_with_its_default(cls):
    params = cls().get_params()
    defaults = {f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default) for f in dataclasses.fields(gradwise.TrainConfig)}
    defaults["extra"] = None  # {} in the config; a scikit-learn default cannot be a dict
    assert params == {**defaults, **SKLEARN_ONLY}


def test_grid_search_over_lr_and_hidden_on_iris_picks_a_good_network(iris):
    X, y = iris
    grid = GridSearchCV(GradwiseClassifier(**QUICK), {"lr": [1e-4, 0.05], "hidden": [4, 16]}, cv=3, n_jobs=1).fit(X, y)
    assert grid.best_params_["lr"] == 0.05  # 20 epochs at 1e-4 barely move the weights
    assert grid.best_score_ > 0.9
    assert grid.best_estimator_.classes_.tolist() == [0, 1, 2]


SPACE = {"lr": loguniform(1e-2, 1e-1), "hidden": randint(8, 24)}  # draws NumPy scalars


@pytest.mark.slow  # most of its time is two worker processes importing torch
def test_randomized_search_runs_in_two_worker_processes(iris):
    X, y = iris
    search = RandomizedSearchCV(GradwiseClassifier(**QUICK), SPACE, n_iter=2, cv=2, n_jobs=2, random_state=0).fit(X, y)
    assert search.best_score_ > 0.8
    assert isinstance(search.best_estimator_.config_.hidden, int)


def test_halving_random_search_finds_a_good_network(iris):
    X, y = iris
    halving = HalvingRandomSearchCV(GradwiseClassifier(**QUICK), SPACE, n_candidates=3, cv=2, factor=3, min_resources=50, n_jobs=1, random_state=0).fit(X, y)
    assert halving.best_estimator_.score(X, y) > 0.8


def mixed_frame(n: int = 240, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A table whose label depends on a string column and a number on another scale."""
    rng = np.random.default_rng(seed)
    city = rng.choice(["oslo", "lima", "pune"], n)
    income = rng.normal(50_000, 15_000, n)
    noise = rng.normal(0, 1, n)
    label = np.where((city == "lima") | (income > 60_000), "yes", "no")
    return pd.DataFrame({"city": city, "income": income, "noise": noise}), label


def test_pipeline_with_column_transformer_on_a_mixed_frame():
    X, y = mixed_frame()
    prep = ColumnTransformer([("city", OneHotEncoder(), ["city"]), ("num", StandardScaler(), ["income", "noise"])])
    pipe = make_pipeline(prep, GradwiseClassifier(**{**QUICK, "epochs": 60}))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.mean() > 0.9
    pipe.fit(X, y)
    assert set(pipe.predict(X.head())) <= {"yes", "no"}


def test_frame_with_string_columns_goes_through_gradwise_encoding():
    X, y = mixed_frame()
    clf = GradwiseClassifier(**{**QUICK, "epochs": 60}).fit(X.iloc[:180], y[:180])
    assert clf.feature_names_in_.tolist() == ["city", "income", "noise"]
    assert clf.encoder_.categories["city"][:3] == ["lima", "oslo", "pune"]
    assert clf.score(X.iloc[180:], y[180:]) > 0.85
    unseen = X.iloc[180:].assign(city="rome")  # an unknown level must not break prediction
    assert len(clf.predict(unseen)) == 60
    with pytest.raises(DataError, match="DataFrame"):
        clf.predict(X.iloc[180:].to_numpy())


def test_cross_val_score_on_diabetes_beats_predicting_the_mean(diabetes):
    X, y = diabetes
    r2 = cross_val_score(GradwiseRegressor(**{**QUICK, "hidden": 32, "epochs": 80}), X, y, cv=3)
    assert r2.mean() > 0.35  # the mean predictor scores about 0; sklearn's MLP about 0.45


def test_joblib_round_trip_predicts_identically(iris, tmp_path):
    X, y = iris
    clf = GradwiseClassifier(**QUICK).fit(X, y)
    joblib.dump(clf, tmp_path / "clf.joblib")
    loaded = joblib.load(tmp_path / "clf.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


def test_fitted_network_saves_as_a_bundle_without_pickle(diabetes, tmp_path):
    X, y = diabetes
    reg = GradwiseRegressor(**QUICK).fit(X, y)
    gradwise.save_bundle(reg.model_, tmp_path / "model", reg.config_)
    model, _ = gradwise.load_bundle(tmp_path / "model")
    np.testing.assert_allclose(model.predict_array(X.astype(np.float32)).ravel(), reg.predict(X), rtol=1e-5)


def test_calibrated_classifier_and_permutation_importance(iris):
    X, y = iris
    calibrated = CalibratedClassifierCV(GradwiseClassifier(**QUICK), cv=3).fit(X, y)
    proba = calibrated.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert (proba.argmax(axis=1) == y).mean() > 0.9
    rng = np.random.default_rng(0)
    X_noise = np.column_stack([X[:, 2], rng.normal(size=len(X))])  # petal length, then noise
    clf = GradwiseClassifier(**QUICK).fit(X_noise, y)
    importance = permutation_importance(clf, X_noise, y, n_repeats=3, random_state=0).importances_mean
    assert importance[0] > 0.3 > abs(importance[1])


def test_partial_fit_continues_from_the_current_weights(iris):
    X, y = iris
    order = np.random.default_rng(0).permutation(len(y))
    X, y = X[order], y[order]
    clf = GradwiseClassifier(**{**QUICK, "epochs": 5, "lr": 0.005})
    clf.partial_fit(X[:75], y[:75], classes=[0, 1, 2])
    first = log_loss(y, clf.predict_proba(X))
    scaling = clf.model_.input_normalizer.data_min_.clone()
    clf.partial_fit(X[75:], y[75:])
    clf.partial_fit(X, y)
    assert clf.n_iter_ == 15
    assert torch.equal(clf.model_.input_normalizer.data_min_, scaling)  # the weights' scale is kept
    assert log_loss(y, clf.predict_proba(X)) < 0.8 * first  # a restart would be back at `first`
    with pytest.raises(DataError, match="classes"):
        clf.partial_fit(X[:5], np.array([0, 1, 2, 3, 3]))


def test_seed_is_the_random_state(iris):
    X, y = iris
    same = [GradwiseClassifier(**QUICK, seed=3).fit(X, y).predict_proba(X) for _ in range(2)]
    np.testing.assert_array_equal(*same)
    fresh = [GradwiseClassifier(**QUICK, seed=None).fit(X, y).predict_proba(X) for _ in range(2)]
    assert not np.array_equal(*fresh)
    drawn = GradwiseClassifier(**QUICK, seed=np.random.RandomState(0)).fit(X, y)
    assert isinstance(drawn.config_.seed, int)


def test_validation_fraction_drives_early_stopping():
    X, y = make_regression(200, 5, noise=50, random_state=0)
    stopped = GradwiseRegressor(**{**QUICK, "epochs": 300, "lr": 0.05}, patience=3).fit(X, y)
    assert stopped.n_iter_ < 300 and stopped.stop_reason_.startswith("early stopping")
    no_hold_out = GradwiseRegressor(**{**QUICK, "epochs": 20}, validation_fraction=0.0).fit(X, y)
    assert no_hold_out.n_iter_ == 20 and no_hold_out.best_epoch_ is None


def test_sparse_input_matches_dense_and_a_huge_one_is_refused(iris):
    X, y = iris
    dense = GradwiseClassifier(**QUICK).fit(X, y)
    from_sparse = GradwiseClassifier(**QUICK).fit(sparse.csr_matrix(X), y)
    np.testing.assert_allclose(from_sparse.predict_proba(sparse.csc_matrix(X)), dense.predict_proba(X), rtol=1e-6)
    huge = sparse.csr_matrix((1_000_000, 10_000), dtype=np.float32)  # 40 GB if densified
    with pytest.raises(DataError, match="GiB"):
        GradwiseClassifier(**QUICK).fit(huge, np.arange(1_000_000) % 2)


def test_multi_output_regression_predicts_every_target():
    X, Y = make_regression(200, 6, n_targets=2, noise=5, random_state=0)
    reg = GradwiseRegressor(**{**QUICK, "epochs": 60}).fit(X, Y)
    assert reg.predict(X).shape == (200, 2) and reg.n_outputs_ == 2
    assert reg.score(X, Y) > 0.8


def test_threads_are_restored(iris):
    X, y = iris
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        GradwiseClassifier(**QUICK).fit(X, y)  # a small model trains on one thread
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_clone_keeps_parameters_and_drops_the_fit(iris):
    X, y = iris
    clf = GradwiseClassifier(**QUICK, extra={"bias_correction": True}).fit(X, y)
    copy = clone(clf)
    assert copy.get_params() == clf.get_params() and not hasattr(copy, "model_")


def test_bad_input_raises_gradwise_errors_with_scikit_learns_message(iris):
    X, y = iris
    clf = GradwiseClassifier(**QUICK).fit(X, y)
    with pytest.raises(DataError, match="X has 3 features, but GradwiseClassifier is expecting 4"):
        clf.predict(X[:, :3])
    with pytest.raises(DataError, match="NaN"):
        GradwiseClassifier(**QUICK).fit(np.where(X > 7, np.nan, X), y)
    with pytest.raises(DataError, match="Unknown label type"):
        GradwiseClassifier(**QUICK).fit(X, X[:, 0] + 0.5)
    with pytest.raises(gradwise.ConfigError, match="validation_fraction"):
        GradwiseClassifier(**QUICK, validation_fraction=1.5).fit(X, y)
    with pytest.raises(gradwise.ConfigError, match="--lr"):
        GradwiseClassifier(**{**QUICK, "lr": -1.0}).fit(X, y)


def test_nothing_else_in_gradwise_imports_the_scikit_learn_layer():
    from pathlib import Path

    package = Path(gradwise.__file__).parent
    importers = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if "sklearn" not in path.relative_to(package).parts[:1]
        and any(text in path.read_text() for text in ("gradwise.sklearn", "from ..sklearn", "from .sklearn", "from ...sklearn"))
    ]
    assert importers == []


# -- sample_weight ------------------------------------------------------------------------
# Full-batch gradient descent without a hold-out: one update per epoch over every row, so a
# weighted mean over the rows is exactly the plain mean over the rows repeated.
FULL_BATCH_GD = dict(epochs=8, hidden=8, lr=0.1, optimizer="gd", batch_size="full", patience=None, validation_fraction=0.0, device="cpu")


def network_parameters(estimator) -> list[np.ndarray]:
    return [p.detach().numpy().copy() for p in estimator.model_.net.parameters()]


def assert_same_network(a, b, rtol=1e-4, atol=1e-6):
    for pa, pb in zip(network_parameters(a), network_parameters(b), strict=True):
        np.testing.assert_allclose(pa, pb, rtol=rtol, atol=atol)


def small_task(task: str, n: int = 60, seed: int = 0):
    if task == "classification":
        X, y = load_iris(return_X_y=True)
        rows = np.random.default_rng(seed).choice(len(y), n, replace=False)
        return GradwiseClassifier, X[rows], y[rows]
    X, y = make_regression(n, 4, noise=10, random_state=seed)
    return GradwiseRegressor, X, y


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("normalize", ["minmax", "standard"])
def test_integer_weights_equal_repeating_the_rows_in_full_batch_gd(task, normalize):
    cls, X, y = small_task(task)
    weights = np.random.default_rng(1).integers(1, 4, len(y))
    weighted = cls(**FULL_BATCH_GD, normalize=normalize).fit(X, y, sample_weight=weights)
    repeated = cls(**FULL_BATCH_GD, normalize=normalize).fit(np.repeat(X, weights, axis=0), np.repeat(y, weights, axis=0))
    unweighted = cls(**FULL_BATCH_GD, normalize=normalize).fit(X, y)
    assert_same_network(weighted, repeated)
    method = "predict_proba" if task == "classification" else "predict"
    np.testing.assert_allclose(getattr(weighted, method)(X), getattr(repeated, method)(X), rtol=1e-4, atol=1e-6)
    # ...and the weights did change the fit (the comparison is not trivially true).
    assert not np.allclose(getattr(weighted, method)(X), getattr(unweighted, method)(X), rtol=1e-3)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_zero_weight_rows_do_not_change_a_full_batch_fit_nor_the_hold_out(task):
    cls, X, y = small_task(task)
    outliers = X[:10] * 50  # would stretch the min-max scaling if they counted
    X_more, y_more = np.vstack([X, outliers]), np.concatenate([y, y[:10]])
    weights = np.r_[np.ones(len(y)), np.zeros(10)]
    # Weight-0 rows scattered among the others, which keep their order (the hold-out
    # depends on the order of the rows, as train_test_split's does).
    order = np.argsort(np.r_[np.arange(len(y)), np.random.default_rng(2).uniform(0, len(y), 10)], kind="stable")
    early = {**FULL_BATCH_GD, "epochs": 30, "patience": 3, "validation_fraction": 0.2}
    for params in (FULL_BATCH_GD, early):
        with_zeros = cls(**params).fit(X_more[order], y_more[order], sample_weight=weights[order])
        without = cls(**params).fit(X, y)
        assert_same_network(with_zeros, without)
        assert with_zeros.n_iter_ == without.n_iter_ and with_zeros.best_epoch_ == without.best_epoch_
        np.testing.assert_allclose(with_zeros.model_.input_normalizer.data_max_, without.model_.input_normalizer.data_max_)


# Mini-batches of 16 under batch norm, with early stopping on a fifth held out: a weight-0
# row that stayed in training would move the batch boundaries and the batch statistics.
MINIBATCH_BN = {"epochs": 25, "hidden": 16, "lr": 0.02, "batch_size": 16, "batch_norm": True, "patience": 3, "validation_fraction": 0.2, "device": "cpu"}


def with_weightless_rows(task: str, frame: bool, n_zero: int = 12):
    """(estimator class, X, y, weights): 80 rows of positive weight in their own order, and
    ``n_zero`` rows of weight 0 scattered among them, outliers with other labels (and, in a
    DataFrame, the colour 'green' no other row has)."""
    cls, X, y = small_task(task, n=80)
    rng = np.random.default_rng(7)
    odd_labels = (y[:n_zero] + 1) % 3 if task == "classification" else -3 * y[:n_zero]
    X_all, y_all = np.vstack([X, X[:n_zero] * 50]), np.concatenate([y, odd_labels])
    weights = np.r_[rng.uniform(0.5, 2.0, len(y)), np.zeros(n_zero)]
    order = np.argsort(np.r_[np.arange(len(y)), rng.uniform(0, len(y), n_zero)], kind="stable")
    X_all, y_all, weights = X_all[order], y_all[order], weights[order]
    if frame:
        colour = np.where(weights > 0, np.where(np.arange(len(weights)) % 2, "red", "blue"), "green")
        X_all = pd.DataFrame(X_all, columns=[f"x{j}" for j in range(X.shape[1])]).assign(colour=colour)
    return cls, X_all, y_all, weights


def rows_of(X, keep: np.ndarray):
    return X.iloc[keep].reset_index(drop=True) if isinstance(X, pd.DataFrame) else X[keep]


def assert_same_fit(a, b) -> None:
    """The same epochs and losses, and every weight, running statistic and normalizer value."""
    assert a.n_iter_ == b.n_iter_ and a.best_epoch_ == b.best_epoch_
    def losses(estimator, key):
        return [np.nan if getattr(r, key) is None else getattr(r, key) for r in estimator.history_]  # None: nothing held out

    for key in ("train_loss", "val_loss"):
        np.testing.assert_allclose(losses(a, key), losses(b, key), rtol=1e-6, atol=0)
    state_a, state_b = a.model_.state_dict(), b.model_.state_dict()
    assert state_a.keys() == state_b.keys() and any("running_mean" in key for key in state_a)
    for key in state_a:
        torch.testing.assert_close(state_a[key], state_b[key], rtol=1e-6, atol=1e-7, msg=key)


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("frame", [False, True], ids=["array", "dataframe"])
def test_weight_0_rows_are_left_out_of_a_minibatch_batch_norm_fit(task, frame):
    """fit with weight-0 rows equals fit on the rows of positive weight alone: the same rows
    held out (hold_out_weighted among the positive rows, kept in their order), batches,
    batch-norm statistics, encoder and normalizers; predictions of every row follow. So does
    partial_fit, which holds no rows out."""
    cls, X, y, weights = with_weightless_rows(task, frame)
    keep = np.flatnonzero(weights > 0)
    with_zeros = cls(**MINIBATCH_BN).fit(X, y, sample_weight=weights)
    without = cls(**MINIBATCH_BN).fit(rows_of(X, keep), y[keep], sample_weight=weights[keep])
    assert_same_fit(with_zeros, without)
    assert with_zeros.stop_reason_.startswith("early stopping")  # the held-out rows decided the epoch kept
    assert with_zeros.encoder_.n_features == without.encoder_.n_features  # no 'green' column
    method = "predict_proba" if task == "classification" else "predict"
    np.testing.assert_allclose(getattr(with_zeros, method)(X), getattr(without, method)(X), rtol=1e-6, atol=1e-9)
    quick = {**MINIBATCH_BN, "epochs": 3}
    assert_same_fit(cls(**quick).partial_fit(X, y, sample_weight=weights), cls(**quick).partial_fit(rows_of(X, keep), y[keep], sample_weight=weights[keep]))


def test_weights_of_all_ones_equal_no_weights_with_minibatches_and_early_stopping(iris):
    X, y = iris
    plain = GradwiseClassifier(**QUICK).fit(X, y)
    ones = GradwiseClassifier(**QUICK).fit(X, y, sample_weight=np.ones(len(y)))
    assert_same_network(plain, ones, rtol=1e-5)
    assert ones.n_iter_ == plain.n_iter_ and ones.best_epoch_ == plain.best_epoch_
    np.testing.assert_allclose(ones.predict_proba(X), plain.predict_proba(X), rtol=1e-5, atol=1e-7)


def reference_weighted_step(net: torch.nn.Module, X_normalized: np.ndarray, y: np.ndarray, w: np.ndarray, lr: float) -> list[np.ndarray]:
    """One gradient-descent step on sum(w * cross-entropy) / sum(w), written out in plain torch."""
    linears = [copy_linear(m) for m in net.modules() if isinstance(m, torch.nn.Linear)]
    h = torch.tensor(X_normalized, dtype=torch.float64)
    for i, layer in enumerate(linears):
        h = layer(h)
        if i < len(linears) - 1:
            h = torch.relu(h)
    log_p = h - torch.logsumexp(h, dim=1, keepdim=True)
    row_loss = -log_p[torch.arange(len(y)), torch.tensor(y)]
    weights = torch.tensor(w, dtype=torch.float64)
    loss = (weights * row_loss).sum() / weights.sum()
    loss.backward()
    with torch.no_grad():
        return [(p - lr * p.grad).numpy() for layer in linears for p in (layer.weight, layer.bias)]


def copy_linear(layer: torch.nn.Linear) -> torch.nn.Linear:
    clone_ = torch.nn.Linear(layer.in_features, layer.out_features).double()
    with torch.no_grad():
        clone_.weight.copy_(layer.weight)
        clone_.bias.copy_(layer.bias)
    return clone_


def test_one_weighted_minibatch_step_matches_a_plain_torch_reference(iris):
    X, y = iris
    lr, batch = 0.5, 16
    clf = GradwiseClassifier(**{**FULL_BATCH_GD, "epochs": 1, "lr": lr, "batch_size": batch}).fit(X, y)
    start = copy.deepcopy(clf.model_.net)
    rows = np.random.default_rng(3).choice(len(y), batch, replace=False)  # exactly one mini-batch
    weights = np.random.default_rng(4).uniform(0, 3, batch)
    low, high = X.min(axis=0), X.max(axis=0)  # the scaling the first fit learned, by hand
    expected = reference_weighted_step(start, (X[rows] - low) / (high - low), y[rows], weights, lr)
    clf.partial_fit(X[rows], y[rows], sample_weight=weights)
    for got, want in zip(network_parameters(clf), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    unweighted = reference_weighted_step(start, (X[rows] - low) / (high - low), y[rows], np.ones(batch), lr)
    assert not all(np.allclose(got, other, rtol=1e-3) for got, other in zip(network_parameters(clf), unweighted))


def held_out_rows(estimator, weights: np.ndarray, labels=None) -> np.ndarray:
    _, val = hold_out_weighted(weights.astype(np.float32), estimator.validation_fraction, estimator.config_.seed, labels)
    return val


def test_weighted_validation_loss_and_r2_are_scikit_learns_weighted_ones(diabetes):
    X, y = diabetes
    weights = np.random.default_rng(5).uniform(0.1, 2, len(y))
    reg = GradwiseRegressor(**{**QUICK, "epochs": 10}).fit(X, y, sample_weight=weights)
    val = held_out_rows(reg, weights)
    best = reg.history_[reg.best_epoch_ - 1]  # the epoch whose weights were kept
    prediction = reg.predict(X[val])
    scale = reg.model_.target_normalizer.scale_.item()  # the loss is on normalized targets
    weighted_mse = np.average((prediction - y[val]) ** 2, weights=weights[val]) * scale**2
    assert best.val_loss == pytest.approx(weighted_mse, rel=1e-4)
    assert best.val_metrics["r2"] == pytest.approx(r2_score(y[val], prediction, sample_weight=weights[val]), rel=1e-4)
    assert best.val_metrics["r2"] != pytest.approx(r2_score(y[val], prediction), rel=1e-4)


def test_weighted_validation_loss_and_accuracy_are_scikit_learns_weighted_ones(iris):
    X, y = iris
    weights = np.random.default_rng(6).uniform(0.1, 3, len(y))
    clf = GradwiseClassifier(**{**QUICK, "epochs": 5, "lr": 0.01}, validation_fraction=0.3).fit(X, y, sample_weight=weights)
    val = held_out_rows(clf, weights, y)
    best = clf.history_[clf.best_epoch_ - 1]
    proba = clf.predict_proba(X[val])
    assert best.val_loss == pytest.approx(log_loss(y[val], proba, sample_weight=weights[val]), rel=1e-4)
    assert best.val_metrics["accuracy"] == pytest.approx(accuracy_score(y[val], clf.predict(X[val]), sample_weight=weights[val]), rel=1e-6)


@pytest.mark.parametrize(
    "weights, message",
    [
        (-np.ones(150), "Negative values"),
        (np.r_[np.ones(149), np.nan], "NaN"),
        (np.r_[np.ones(149), np.inf], "infinity"),
        (np.ones(10), r"sample_weight.shape == \(10,\), expected \(150,\)"),
        (np.zeros(150), "at least one non-zero"),
    ],
)
def test_bad_sample_weights_raise_value_errors_that_say_what_is_wrong(iris, weights, message):
    X, y = iris
    for fit in (GradwiseClassifier(**QUICK).fit, GradwiseClassifier(**QUICK).partial_fit):
        with pytest.raises(ValueError, match=message):
            fit(X, y, sample_weight=weights)


def class_weights(y: np.ndarray) -> np.ndarray:
    """Class 2 nearly silenced: a visible difference in what the network learns."""
    return np.where(y == 2, 0.05, 1.0)


def test_grid_search_and_cross_val_score_pass_sample_weight_to_fit(iris):
    X, y = iris
    w = class_weights(y)
    grid = GridSearchCV(GradwiseClassifier(**QUICK), {"hidden": [8, 16]}, cv=3).fit(X, y, sample_weight=w)
    refit = GradwiseClassifier(**{**QUICK, **grid.best_params_}).fit(X, y, sample_weight=w)
    np.testing.assert_array_equal(grid.best_estimator_.predict_proba(X), refit.predict_proba(X))
    unweighted = GradwiseClassifier(**{**QUICK, **grid.best_params_}).fit(X, y)
    assert not np.allclose(grid.best_estimator_.predict_proba(X), unweighted.predict_proba(X), atol=1e-3)

    scores = cross_val_score(GradwiseClassifier(**QUICK), X, y, cv=3, params={"sample_weight": w})
    by_hand = [GradwiseClassifier(**QUICK).fit(X[tr], y[tr], sample_weight=w[tr]).score(X[te], y[te]) for tr, te in StratifiedKFold(3).split(X, y)]
    np.testing.assert_array_equal(scores, by_hand)
