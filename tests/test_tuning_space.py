"""The search space: the document's ranking, practitioner ranges, and --space files."""

from __future__ import annotations

import json
import math

import optuna
import pytest

from gradwise.errors import ConfigError
from gradwise.tuning import default_space, load_space
from gradwise.tuning.space import to_config_value, to_raw_value

# EQUATIONS.md section 4, written out plainly.
DOCUMENT_RANKING = {"lr": "high", "beta": "medium", "hidden": "medium", "batch_size": "medium", "layers": "low", "lr_decay": "low", "beta1": "never", "beta2": "never", "eps": "never"}


@pytest.mark.parametrize("family", ["gd", "momentum", "rmsprop", "adam"])
def test_every_parameter_carries_the_documents_importance(family):
    space = default_space(family)
    for name, param in space.params.items():
        assert param.tier == DOCUMENT_RANKING[name], name
    assert [p.tier for p in space.searched()] == sorted((p.tier for p in space.searched()), key=["high", "medium", "low", "never"].index)


def test_momentum_beta_exists_only_for_momentum_and_rmsprop_and_adam_betas_are_off_by_default():
    assert "beta" in default_space("momentum").params and "beta" in default_space("rmsprop").params
    assert "beta" not in default_space("adam").params and "beta" not in default_space("gd").params
    adam = default_space("adam")
    assert {p.name for p in adam.params.values() if not p.enabled} == {"beta1", "beta2", "eps"}


def test_learning_rate_is_log_uniform_and_beta_is_sampled_as_one_minus_beta_on_a_log_scale():
    space = default_space("momentum")
    lr, beta = space.params["lr"], space.params["beta"]
    assert lr.log and lr.kind == "float"
    assert beta.log and beta.transform == "one_minus"
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    betas = []
    for _ in range(400):
        trial = study.ask()
        betas.append(space.suggest(trial, ["beta"])["beta"])
        study.tell(trial, 0.0)
    # 1 - β log-uniform on [1e-3, 1e-1]: half the samples have 1 - β below sqrt(1e-4) = 0.01.
    below = sum(1 - b < 0.01 for b in betas) / len(betas)
    assert 0.4 < below < 0.6
    assert all(0.9 - 1e-12 <= b <= 0.999 + 1e-12 for b in betas)


def test_hidden_units_and_batch_size_are_log_integers():
    space = default_space("adam")
    for name in ("hidden", "batch_size"):
        assert space.params[name].kind == "int" and space.params[name].log


def test_decay_rate_becomes_an_inverse_time_schedule_and_back():
    decay = default_space("adam").params["lr_decay"]
    assert to_config_value(decay, 0.25) == "inverse_time:0.25"
    assert to_raw_value(decay, "inverse_time:0.25") == pytest.approx(0.25)
    assert to_raw_value(decay, None) == decay.low


def test_narrowing_keeps_alpha_within_a_factor_of_the_center_and_inside_the_range():
    lr = default_space("adam").params["lr"]
    narrow = lr.narrowed(0.01, 3.0)
    assert narrow.low == pytest.approx(0.01 / 3) and narrow.high == pytest.approx(0.03)
    edge = lr.narrowed(lr.high, 3.0)
    assert edge.high == lr.high and edge.low == pytest.approx(lr.high / 3)


def test_narrowing_log_integers_rounds_outward_and_leaves_linear_ones_whole():
    space = default_space("adam")
    hidden, layers = space.params["hidden"], space.params["layers"]
    assert (hidden.narrowed(64, 3.0).low, hidden.narrowed(64, 3.0).high) == (21, 192)
    assert (hidden.narrowed(512, 3.0).low, hidden.narrowed(512, 3.0).high) == (170, 512)
    assert layers.narrowed(2, 3.0) == layers  # a linear range of four values: nothing to narrow


def _write(tmp_path, suffix, text):
    path = tmp_path / f"space{suffix}"
    path.write_text(text)
    return path


TOML = """
optimizer = "momentum"
[fixed]
epochs = 7
[params.lr]
low = 0.01
high = 0.5
[params.hidden]
value = 32
[params.dropout]
type = "float"
low = 0.0
high = 0.5
tier = "low"
"""


def test_toml_file_narrows_fixes_and_adds_parameters(tmp_path):
    space = load_space(_write(tmp_path, ".toml", TOML))
    assert space.family == "momentum"
    assert (space.params["lr"].low, space.params["lr"].high) == (0.01, 0.5)
    assert not space.params["hidden"].enabled and space.defaults()["hidden"] == 32
    assert space.params["dropout"].tier == "low" and space.params["dropout"].enabled
    assert space.defaults()["epochs"] == 7
    assert "hidden" not in [p.name for p in space.searched()]


def test_json_and_yaml_files_mean_the_same_as_toml(tmp_path):
    document = {"optimizer": "momentum", "fixed": {"epochs": 7}, "params": {"lr": {"low": 0.01, "high": 0.5}, "hidden": {"value": 32}, "dropout": {"type": "float", "low": 0.0, "high": 0.5, "tier": "low"}}}
    toml = load_space(_write(tmp_path, ".toml", TOML)).to_dict()
    assert load_space(_write(tmp_path, ".json", json.dumps(document))).to_dict() == toml
    yaml_text = "optimizer: momentum\nfixed: {epochs: 7}\nparams:\n  lr: {low: 0.01, high: 0.5}\n  hidden: {value: 32}\n  dropout: {type: float, low: 0.0, high: 0.5, tier: low}\n"
    assert load_space(_write(tmp_path, ".yaml", yaml_text)).to_dict() == toml


def test_mentioning_an_almost_never_parameter_switches_it_on(tmp_path):
    space = load_space(_write(tmp_path, ".json", json.dumps({"params": {"beta2": {"low": 1e-4, "high": 1e-2}}})))
    assert space.params["beta2"].enabled


def test_command_line_family_wins_over_the_files(tmp_path):
    assert load_space(_write(tmp_path, ".toml", 'optimizer = "momentum"'), family="rmsprop").family == "rmsprop"


@pytest.mark.parametrize(
    "document, words",
    [
        ({"parms": {}}, "unknown key"),
        ({"params": {"lr": {"lo": 1}}}, "unknown key"),
        ({"params": {"lr": {"low": 1.0, "high": 0.1}}}, "must not exceed"),
        ({"params": {"lr": {"low": 0.0}}}, "log-scale range must be positive"),
        ({"params": {"momentum": {"type": "float", "low": 0, "high": 1}}}, "unknown training option"),
        ({"params": {"dropout": {"low": 0.0, "high": 0.5}}}, "give its type"),
        ({"params": {"lr": {"tier": "urgent"}}}, "tier must be one of"),
        ({"optimizer": "sgd"}, "--space optimizer must be one of"),
    ],
)
def test_bad_space_files_say_what_is_wrong(tmp_path, document, words):
    with pytest.raises(ConfigError, match=words):
        load_space(_write(tmp_path, ".json", json.dumps(document)))


def test_a_missing_or_unparsable_space_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_space(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="could not be parsed"):
        load_space(_write(tmp_path, ".toml", "lr = ["))
    with pytest.raises(ConfigError, match="must end in"):
        load_space(_write(tmp_path, ".ini", "x"))


def test_space_round_trips_through_a_dict_as_stored_in_the_study():
    space = default_space("rmsprop")
    from gradwise.tuning import SearchSpace

    assert SearchSpace.from_dict(json.loads(json.dumps(space.to_dict()))) == space
    assert all(math.isfinite(p.low) for p in space.params.values())
