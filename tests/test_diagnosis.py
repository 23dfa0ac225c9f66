"""The diagnosis names the cause on broken set-ups, stays quiet on healthy ones, and its
first fix cures what it names."""

import json

import pytest
from click.testing import CliRunner
from sklearn.datasets import load_wine

from gradwise import TrainConfig
from gradwise.cli import main
from gradwise.data import load_table, split_table
from gradwise.diagnosis import DEFAULT_EVERY, GradientMonitor, loss_rules
from gradwise.diagnosis.sabotage import Sabotage, hidden_biases, large_weights_zero_z, scaled_weights
from gradwise.training import fit

EPOCHS = 5


_SPLITS = {}


def splits(name):
    if name not in _SPLITS:
        _SPLITS[name] = split_table(load_table(f"builtin:{name}"), seed=0)
    return _SPLITS[name]


negative_biases = hidden_biases(-10.0)


def diagnose(config, data, sabotage=None):
    monitor = GradientMonitor(every=1)
    callbacks = ([Sabotage(sabotage)] if sabotage else []) + [monitor]
    fit(config.replace(epochs=EPOCHS), data, callbacks=callbacks)
    return monitor.diagnose(config)


def cured(config, data, sabotage, diagnosis):
    """Apply the first fix of the main finding and diagnose again.

    A fix that re-initializes (changes init or activation) replaces the bad initialization.
    """
    fix = diagnosis.main.fixes[0]
    assert fix.changes, fix
    if {"init", "activation"} & set(fix.changes):
        sabotage = None
    return diagnose(config.replace(**fix.changes), data, sabotage)


@pytest.fixture(scope="module")
def unscaled_splits(tmp_path_factory):
    frame = load_wine(as_frame=True).frame
    frame["alcohol"] = frame["alcohol"] * 1e4  # one feature 1e4 times the scale of the others
    path = tmp_path_factory.mktemp("unscaled") / "wine_unscaled.csv"
    frame.to_csv(path, index=False)
    return split_table(load_table(str(path), target="target"), seed=0)


def _layer_names(config, data):
    return [str(i) for i in range(0, 2 * (config.layers + 1), 2)]


def test_ten_layer_sigmoid_with_normal_init_is_vanishing_or_saturated_at_the_early_layers():
    config = TrainConfig(layers=10, activation="sigmoid", init="normal")
    d = diagnose(config, splits("digits"))
    assert not d.healthy
    assert d.main.problem in ("vanishing_gradient", "saturated_activations")
    early = _layer_names(config, None)[:5]
    assert d.main.layers[0] in early
    assert d.main.fixes[0].changes == {"activation": "relu", "init": "he"}
    assert cured(config, splits("digits"), None, d).healthy


def test_large_weights_with_zero_z_biases_is_exploding_and_he_init_cures_it():
    config = TrainConfig(layers=3, activation="sigmoid", init="normal")
    sabotage = large_weights_zero_z(5.0)
    d = diagnose(config, splits("breast_cancer"), sabotage)
    assert d.main.problem == "exploding_gradient", d.problems()
    assert d.main.evidence["gain_per_layer"] > 2
    assert cured(config, splits("breast_cancer"), sabotage, d).healthy


def test_relu_with_ten_times_he_weights_is_exploding():
    scale = scaled_weights(10.0)
    config = TrainConfig(layers=3)
    d = diagnose(config, splits("wine"), scale)
    assert d.main.problem == "exploding_gradient", d.problems()
    assert cured(config, splits("wine"), scale, d).healthy


def test_feature_1e4_times_the_others_without_normalization_is_unscaled_inputs(unscaled_splits):
    config = TrainConfig(layers=3, normalize="none")
    d = diagnose(config, unscaled_splits)
    assert d.main.problem == "unscaled_inputs", d.problems()
    assert d.main.evidence["ratio"] > 1e3
    assert d.main.fixes[0].changes == {"normalize": "minmax"}
    assert cured(config, unscaled_splits, None, d).healthy


@pytest.mark.parametrize("data", ["breast_cancer", "diabetes"])
def test_sgd_with_learning_rate_10_is_diverging_loss_and_a_lower_rate_cures_it(data):
    config = TrainConfig(layers=3, optimizer="gd", lr=10.0)
    d = diagnose(config, splits(data))
    assert d.main.problem == "diverging_loss", d.problems()
    assert d.main.severity == "critical"
    assert d.main.fixes[0].changes["lr"] <= 0.03
    assert cured(config, splits(data), None, d).healthy


def test_relu_layers_with_large_negative_bias_are_dead_units():
    config = TrainConfig(layers=3)
    d = diagnose(config, splits("wine"), negative_biases)
    assert d.main.problem == "dead_units", d.problems()
    assert d.main.severity == "critical" and d.main.origin == "setup"
    assert d.main.layers[0] == "0"
    assert cured(config, splits("wine"), negative_biases, d).healthy


@pytest.mark.parametrize("data", ["digits", "breast_cancer", "wine", "diabetes"])
def test_three_layer_relu_he_adam_on_normalized_inputs_is_healthy(data):
    config = TrainConfig(layers=3, activation="relu", init="he", normalize="minmax", optimizer="adam")
    d = diagnose(config, splits(data))
    assert d.healthy, [(f.problem, f.severity, f.evidence) for f in d.findings]


def test_healthy_at_the_default_cadence_too():
    monitor = GradientMonitor()
    fit(TrainConfig(layers=3, epochs=12), splits("breast_cancer"), callbacks=[monitor])
    assert monitor.every == DEFAULT_EVERY and len(monitor.observations) > 3
    assert monitor.diagnose().healthy


def test_diagnosis_to_dict_is_json_with_findings_and_layers():
    config = TrainConfig(layers=3, optimizer="gd", lr=10.0)
    d = diagnose(config, splits("wine"))
    doc = json.loads(json.dumps(d.to_dict(), default=str))
    assert doc["healthy"] is False
    assert {"problem", "severity", "layers", "evidence", "fixes"} <= set(doc["findings"][0])
    assert all(isinstance(f, str) for f in doc["findings"][0]["fixes"])
    assert [row["layer"] for row in doc["layers"]] == ["0", "2", "4", "6"]
    assert {f["severity"] for f in doc["findings"]} <= {"info", "warning", "critical"}


def test_diagnose_cli_json_reports_findings_and_stops_a_nan_run_early():
    result = CliRunner().invoke(main, ["diagnose", "--data", "builtin:diabetes", "--optimizer", "gd", "--lr", "1e4", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["healthy"] is False
    assert doc["findings"][0]["problem"] == "diverging_loss"
    assert doc["stop_reason"].startswith("non-finite")
    assert doc["layers"] and "gain" in doc["layers"][0]


def test_diagnose_cli_text_shows_the_layer_table_and_explained_findings():
    args = ["diagnose", "--data", "builtin:wine", "--layers", "3", "--epochs", "3", "--normalize", "none"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "Gradient flow per layer" in result.output
    assert "unscaled_inputs" in result.output and "fix 1: normalize inputs with minmax" in result.output


def test_train_monitor_reports_a_diagnosis_alongside_training():
    result = CliRunner().invoke(main, ["train", "--data", "builtin:wine", "--epochs", "2", "--monitor", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert "healthy" in doc["diagnosis"] and doc["diagnosis"]["layers"]


def test_every_fix_is_its_text_and_its_changes_make_a_valid_config():
    config = TrainConfig(layers=3, optimizer="gd", lr=10.0)
    d = diagnose(config, splits("wine"))
    first = d.main.fixes[0]
    assert first == "lower the learning rate to about 1e-2" and first.changes == {"lr": 0.01}
    for finding in d.findings:
        for fix in finding.fixes:
            assert isinstance(fix, str) and fix
            config.replace(**fix.changes)  # raises ConfigError if a fix named an invalid setting


@pytest.mark.parametrize("optimizer, lr", [("adam", 1e-6), ("gd", 1e-4)])
def test_a_tiny_learning_rate_is_slow_convergence_and_the_first_fix_cures_it(optimizer, lr):
    config = TrainConfig(layers=3, optimizer=optimizer, lr=lr)
    d = diagnose(config, splits("breast_cancer"))
    assert d.main.problem == "slow_convergence", d.problems()
    assert cured(config, splits("breast_cancer"), None, d).healthy


# Variants of the cases above that were misdiagnosed once (benchmarks/diagnosis_variants.py).


@pytest.mark.parametrize("bias", [-5.0, -20.0])
def test_leaky_relu_with_large_negative_bias_is_vanishing_not_dead(bias):
    # Leaky units pass 1% of the gradient when negative: never dead, but the gradient vanishes.
    config = TrainConfig(layers=3, activation="leaky_relu")
    d = diagnose(config, splits("wine"), hidden_biases(bias))
    assert "dead_units" not in [f.problem for f in d.findings if f.severity != "info"], d.problems()
    assert d.main.problem == "vanishing_gradient", d.problems()
    assert cured(config, splits("wine"), hidden_biases(bias), d).healthy


@pytest.mark.parametrize("activation, hidden", [("sigmoid", 16), ("tanh", 32)])
def test_narrow_ten_layer_saturating_stack_is_cured_by_its_first_fix(activation, hidden):
    # relu + he on 10 narrow layers leaves some layer half dead by chance: not a finding.
    config = TrainConfig(layers=10, hidden=hidden, batch_size=32, activation=activation, init="normal")
    d = diagnose(config, splits("breast_cancer"))
    assert d.main.problem in ("vanishing_gradient", "saturated_activations"), d.problems()
    assert cured(config, splits("breast_cancer"), None, d).healthy


@pytest.mark.parametrize("layers, hidden, batch_size", [(3, 16, 64), (15, 16, "full")])
def test_narrow_relu_he_layers_are_not_called_dead_by_chance(layers, hidden, batch_size):
    config = TrainConfig(layers=layers, hidden=hidden, batch_size=batch_size)
    d = diagnose(config, splits("diabetes"))
    assert d.healthy, [(f.problem, f.severity, f.evidence) for f in d.findings]


@pytest.mark.parametrize("data, optimizer, lr", [("diabetes", "rmsprop", 1e-3), ("wine", "momentum", 1e-2)])
def test_healthy_recipe_with_rmsprop_or_momentum_at_a_sound_rate_is_healthy(data, optimizer, lr):
    # seed 4: a lucky low starting loss (rmsprop) and only two batches per epoch (wine)
    config = TrainConfig(layers=3, optimizer=optimizer, lr=lr, seed=4)
    d = diagnose(config, splits(data))
    assert d.healthy, [(f.problem, f.severity, f.evidence) for f in d.findings]


@pytest.mark.parametrize("data, optimizer, seed", [("breast_cancer", "momentum", 2), ("diabetes", "gd", 4)])
def test_learning_rate_10_is_diverging_and_its_first_fix_cures_it_for_other_seeds(data, optimizer, seed):
    # momentum: the loss stays near chance without a spike, the update ratio shows the step;
    # gd: 3e-2 still blew up this seed of the diabetes regression.
    config = TrainConfig(layers=3, optimizer=optimizer, lr=10.0, seed=seed)
    d = diagnose(config, splits(data))
    assert d.main.problem == "diverging_loss", d.problems()
    assert cured(config, splits(data), None, d).healthy


@pytest.mark.parametrize("data, config, sabotage", [
    ("breast_cancer", TrainConfig(layers=3, activation="sigmoid", init="normal"), large_weights_zero_z(5.0)),
    ("diabetes", TrainConfig(layers=3, optimizer="gd", lr=10.0), None),
    ("wine", TrainConfig(layers=3), None),
])
def test_a_diagnosis_restricted_to_some_problems_finds_exactly_what_the_full_one_finds_of_them(data, config, sabotage):
    monitor = GradientMonitor(every=1)
    fit(config.replace(epochs=EPOCHS), splits(data), callbacks=([Sabotage(sabotage)] if sabotage else []) + [monitor])
    wanted = ("exploding_gradient", "diverging_loss")
    full = [(f.problem, f.severity, f.evidence) for f in monitor.diagnose().findings if f.problem in wanted]
    restricted = monitor.diagnose(problems=wanted)
    assert [(f.problem, f.severity, f.evidence) for f in restricted.findings] == full
    assert restricted.layers == [] and monitor.diagnose().layers  # the layer table is what a check skips
    assert data == "wine" or full  # the broken set-ups do show one of them


def _spike_written_plainly(losses):
    """The spike rule's evidence, one window at a time (what the vectorised rule must equal)."""
    import statistics

    start = losses[0]
    if len(losses) < 2 or not start > 0:
        return None
    window = 3 if len(losses) >= 6 else 1
    rolling = [statistics.median(losses[i:i + window]) for i in range(1, len(losses) - window + 1)]
    sustained, single = max(rolling), max(losses[1:])
    if sustained < loss_rules.SPIKE_WARNING * start and single < loss_rules.SPIKE_SINGLE * start:
        return None
    return {"loss_start": start, "loss_peak": single, "sustained_peak": sustained,
            "peak_step": losses.index(single), "loss_end": losses[-1]}


@pytest.mark.parametrize("seed", range(6))
def test_the_loss_spike_evidence_equals_the_rule_written_plainly(seed):
    import random

    rng = random.Random(seed)
    for length in (2, 3, 5, 6, 7, 40, 500):
        losses = [1.0 + 0.1 * rng.random() for _ in range(length)]
        for _ in range(rng.randrange(3)):  # a lone spike, a sustained one, or none
            at = rng.randrange(1, length)
            for i in range(at, min(length, at + rng.choice((1, 3, 4)))):
                losses[i] = rng.choice((3.0, 6.0, 12.0, 25.0))
        assert loss_rules._loss_spike(losses) == _spike_written_plainly(losses), (length, losses)
