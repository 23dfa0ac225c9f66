"""tune's final model: its ensemble trains as one population equal to fit one by one, and its
training is bounded by a time limit that keeps the best weights."""

from __future__ import annotations

import math

import optuna
import pytest
import torch

from gradwise import TrainConfig, fit, load_table, split_table
from gradwise.tuning import TuneSpec, tune
from gradwise.tuning import final as final_module
from gradwise.tuning.final import MIN_FINAL_SECONDS, final_time_limit, train_networks

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def iris():
    return split_table(load_table("builtin:iris"), seed=0)


def _weights(model) -> list[torch.Tensor]:
    return [p.detach() for p in model.net.parameters()]


def test_an_ensemble_trained_as_one_population_equals_fit_network_by_network(iris, monkeypatch):
    configs = [TrainConfig(hidden=8, epochs=12, patience=3, lr=0.01, seed=s) for s in (4, 5, 6)]
    monkeypatch.setattr(final_module, "_fit_one", lambda *a: pytest.fail("trained one by one, not as a population"))
    together = train_networks(configs, iris, progress=False, time_limit=None)
    assert len(together) == 3
    for config, run in zip(configs, together):
        alone = fit(config, iris)
        assert run.config.seed == config.seed
        assert len(run.history) == len(alone.history) and run.stop_reason == alone.stop_reason
        assert [r.val_loss for r in run.history] == pytest.approx([r.val_loss for r in alone.history], rel=1e-4)
        for a, b in zip(_weights(run.model), _weights(alone.model)):
            assert torch.allclose(a, b, atol=1e-5)
        assert run.metrics["test"]["loss"] == pytest.approx(alone.metrics["test"]["loss"], rel=1e-4)


@pytest.mark.parametrize("members", [1, 3])
def test_a_time_limit_ends_the_final_training_in_the_step_that_passes_it(iris, members):
    # A limit of 0 s is passed by the first step: every network ends there, its epoch cut
    # short (batches of 8: an epoch would be several steps) and evaluated, with its weights.
    configs = [TrainConfig(hidden=8, epochs=50, patience=None, seed=s, batch_size=8) for s in range(members)]
    runs = train_networks(configs, iris, progress=False, time_limit=0.0)
    assert len(iris.train) > 8
    for run in runs:
        assert len(run.history) == 1 and run.updates == 1 and math.isfinite(run.history[0].val_loss)
        assert run.stop_reason.startswith("time limit: 0 s reached in epoch 1")
        assert all(torch.isfinite(w).all() for w in _weights(run.model))


def test_the_final_limit_is_the_search_time_but_never_below_the_floor():
    assert final_time_limit(None) is None
    assert final_time_limit(5.0) == MIN_FINAL_SECONDS
    assert final_time_limit(3 * MIN_FINAL_SECONDS) == 3 * MIN_FINAL_SECONDS


def test_tune_bounds_its_final_model_by_the_search_and_says_so(tmp_path, monkeypatch, capsys):
    seen = []

    def no_time_left(search_seconds):
        seen.append(search_seconds)
        return 0.0

    monkeypatch.setattr("gradwise.tuning.result.final_time_limit", no_time_left)
    spec = TuneSpec(data="builtin:iris", n_trials=2, timeout=None, base={"epochs": 2, "patience": None}, monitor=False)
    result = tune(spec, tmp_path / "run")
    assert len(seen) == 1 and seen[0] > 0  # the search's own seconds were measured and handed on
    final = result.final
    assert final["time_limit"] == 0.0 and final["epochs_trained"] == 1
    assert final["stop_reason"].startswith("time limit")
    assert (tmp_path / "run" / final_module.MODEL_DIR / "gradwise.json").exists()
    from gradwise.cli.tune import render_result

    render_result(result)
    assert "stopped by its time limit (0 s: as long as the search" in " ".join(capsys.readouterr().out.split())
