"""The normalizer against scikit-learn's scalers, one-shot and streamed (document section 2)."""

import numpy as np
import pytest
import torch
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from gradwise import Normalizer

REFERENCES = {"minmax": MinMaxScaler, "standard": StandardScaler}


def _data(n=137, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)) * np.array([1.0, 1e-3, 1e4, 5.0, 0.0, 1.0]) + np.array([0.0, 3.0, -2e5, 1.0, 7.0, 1e6])
    return X  # column 4 is constant (7.0), column 5 has a huge offset


@pytest.mark.parametrize("method", ["minmax", "standard"])
def test_fit_matches_sklearn_scaler(method):
    X = _data()
    expected = REFERENCES[method]().fit(X).transform(X)
    got = Normalizer(method).fit(X)(X)
    np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("method", ["minmax", "standard"])
@pytest.mark.parametrize("chunk", [1, 2, 50, 137, 137 + 42])
def test_partial_fit_in_chunks_equals_one_shot_and_sklearn(method, chunk):
    X = _data()
    streamed = Normalizer(method)
    for start in range(0, len(X), chunk):
        streamed.partial_fit(X[start : start + chunk])
    reference = REFERENCES[method]().fit(X)
    np.testing.assert_allclose(streamed(X), reference.transform(X), atol=1e-6)
    one_shot = Normalizer(method).fit(X)
    np.testing.assert_allclose(streamed.mean_.numpy(), one_shot.mean_.numpy(), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(streamed.var_.numpy(), reference.var_ if method == "standard" else X.var(axis=0), rtol=1e-9, atol=1e-12)


def test_fit_resets_previous_statistics():
    norm = Normalizer("minmax").fit(np.array([[100.0], [200.0]]))
    norm.fit(np.array([[0.0], [1.0]]))
    assert norm.n_samples_seen_.item() == 2
    np.testing.assert_allclose(norm(np.array([[0.5]])), [[0.5]])


@pytest.mark.parametrize("method", ["minmax", "standard"])
def test_constant_feature_never_gives_nan_or_inf(method):
    X = np.full((10, 2), 3.0)
    X[:, 1] = np.arange(10)
    out = Normalizer(method).fit(X)(X)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[:, 0], 0.0)


@pytest.mark.parametrize("method", ["minmax", "standard", "none"])
def test_inverse_maps_back_to_original_units(method):
    X = _data()
    norm = Normalizer(method).fit(X)
    np.testing.assert_allclose(norm.inverse(norm(X)), X, rtol=1e-9, atol=1e-6)


def test_minmax_default_scales_training_data_to_unit_interval():
    X = _data()
    out = Normalizer().fit(X)(X)
    assert out.min() >= 0.0 and out.max() <= 1.0 + 1e-12
    assert Normalizer().method == "minmax"


def test_accepts_tensors_and_keeps_their_dtype():
    X = torch.tensor(_data(), dtype=torch.float32)
    norm = Normalizer("standard").fit(X)
    out = norm(X)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), StandardScaler().fit_transform(X.double().numpy()), atol=1e-5)


def test_none_is_identity():
    X = _data()
    np.testing.assert_array_equal(Normalizer("none").fit(X)(X), X)


def test_statistics_travel_in_state_dict():
    X = _data()
    fitted = Normalizer("standard").fit(X)
    restored = Normalizer("standard", n_features=X.shape[1])
    restored.load_state_dict(fitted.state_dict())
    np.testing.assert_array_equal(restored(X), fitted(X))


def test_multi_column_targets_are_normalized_per_column():
    Y = np.stack([np.linspace(0, 10, 50), np.linspace(-1e3, 1e3, 50)], axis=1)
    norm = Normalizer("minmax").fit(Y)
    np.testing.assert_allclose(norm(Y), MinMaxScaler().fit_transform(Y), atol=1e-12)


def test_rejects_nan_and_unfitted_use():
    with pytest.raises(ValueError, match="NaN"):
        Normalizer().fit(np.array([[1.0], [np.nan]]))
    with pytest.raises(RuntimeError, match="not fitted"):
        Normalizer()(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="method"):
        Normalizer("robust")
