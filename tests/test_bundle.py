"""Saved models: same predictions after loading, safe formats, atomic writes."""

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from gradwise import GradwiseError, TrainConfig, fit, load_bundle, load_table, save_bundle, split_table


@pytest.mark.parametrize("data, config", [
    ("builtin:iris", TrainConfig(epochs=5, normalize="standard", batch_norm=True, dropout=0.1, activation="tanh")),
    ("builtin:diabetes", TrainConfig(epochs=5, layers=3, hidden=16)),
])
def test_loaded_bundle_predicts_exactly_like_the_trained_model(tmp_path, data, config):
    splits = split_table(load_table(data))
    result = fit(config, splits)
    save_bundle(result.model, tmp_path / "m", config, result.metrics)
    model, meta = load_bundle(tmp_path / "m")
    np.testing.assert_array_equal(model.predict_array(splits.test.X), result.model.predict_array(splits.test.X))
    assert meta["config"] == config.to_dict() and meta["metrics"]["test"] == result.metrics["test"]


def test_bundle_is_safetensors_and_json_only(tmp_path):
    splits = split_table(load_table("builtin:iris"))
    result = fit(TrainConfig(epochs=1), splits)
    save_bundle(result.model, tmp_path, result.config)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gradwise.json", "model.safetensors"]
    json.loads((tmp_path / "gradwise.json").read_text())
    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as f:
        keys = set(f.keys())
    assert "input_normalizer.scale_" in keys and any(k.startswith("net.") for k in keys)


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    splits = split_table(load_table("builtin:iris"))
    result = fit(TrainConfig(epochs=1), splits)
    import gradwise.models.bundle as bundle

    def broken_dumps(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(bundle.json, "dumps", broken_dumps)
    with pytest.raises(OSError):
        save_bundle(result.model, tmp_path / "m", result.config)
    assert not (tmp_path / "m" / "gradwise.json").exists()
    assert [p.name for p in (tmp_path / "m").iterdir() if p.name.endswith(".tmp")] == []


def test_loading_a_non_bundle_or_damaged_bundle_is_a_clear_error(tmp_path):
    with pytest.raises(GradwiseError, match="not a gradwise model bundle"):
        load_bundle(tmp_path)
    splits = split_table(load_table("builtin:iris"))
    result = fit(TrainConfig(epochs=1), splits)
    save_bundle(result.model, tmp_path, result.config)
    (tmp_path / "model.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(GradwiseError, match="damaged"):
        load_bundle(tmp_path)


def test_predict_on_raw_frame_returns_labels_and_probabilities():
    table = load_table("builtin:iris")
    splits = split_table(table)
    result = fit(TrainConfig(epochs=30, lr=1e-2), splits)
    frame = result.model.predict(table.features)
    assert list(frame.columns) == ["target", "p(setosa)", "p(versicolor)", "p(virginica)"]
    assert set(frame["target"]) <= {"setosa", "versicolor", "virginica"}
    np.testing.assert_allclose(frame.iloc[:, 1:].sum(axis=1), 1.0, rtol=1e-5)
    assert torch.is_tensor(result.model.input_normalizer.scale_)


def test_an_ensemble_predicts_the_mean_of_its_networks_and_survives_a_save(tmp_path):
    from gradwise.models import MeanOfNets
    from gradwise.training.loop import split_metrics

    splits = split_table(load_table("builtin:diabetes"))
    runs = [fit(TrainConfig(epochs=3, hidden=16, seed=seed), splits) for seed in (0, 1, 2)]
    # The members' own predictions, in original units, averaged by hand (the target
    # normalization is affine, so the mean commutes with it).
    by_hand = np.mean([run.model.predict_array(splits.test.X) for run in runs], axis=0)
    model = runs[0].model
    model.net = MeanOfNets([run.model.net for run in runs])
    np.testing.assert_allclose(model.predict_array(splits.test.X), by_hand, rtol=1e-5)
    rmse = float(np.sqrt(np.mean((by_hand.reshape(-1) - np.asarray(splits.test.y, dtype=float).reshape(-1)) ** 2)))
    assert split_metrics(model, splits)["test"]["rmse"] == pytest.approx(rmse, rel=1e-4)
    save_bundle(model, tmp_path / "m", runs[0].config)
    loaded, meta = load_bundle(tmp_path / "m")
    assert meta["model"]["members"] == 3 and len(loaded.net.members) == 3
    np.testing.assert_array_equal(loaded.predict_array(splits.test.X), model.predict_array(splits.test.X))


def test_weights_from_another_save_beside_the_json_are_refused_not_mixed(tmp_path):
    # A save over an existing bundle that dies between its two renames leaves the new
    # weights beside the old gradwise.json. Same shapes, so they would load; the JSON's
    # digest of its own weights file tells them apart.
    splits = split_table(load_table("builtin:iris"))
    for name, seed in (("old", 0), ("new", 1)):
        config = TrainConfig(epochs=2, seed=seed)
        save_bundle(fit(config, splits).model, tmp_path / name, config)
    (tmp_path / "old" / "model.safetensors").write_bytes((tmp_path / "new" / "model.safetensors").read_bytes())
    with pytest.raises(GradwiseError, match="model.safetensors is not the weights file gradwise.json was saved with"):
        load_bundle(tmp_path / "old")
    load_bundle(tmp_path / "new")  # an intact bundle loads
    meta_path = tmp_path / "old" / "gradwise.json"
    meta = json.loads(meta_path.read_text())
    del meta["weights_sha256"]  # a bundle saved before digests were recorded still loads
    meta_path.write_text(json.dumps(meta))
    load_bundle(tmp_path / "old")
