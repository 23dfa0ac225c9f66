"""build_optimizer: from a TrainConfig to the optimizer it names."""

import pytest
import torch

from gradwise.config import TrainConfig
from gradwise.errors import ConfigError
from gradwise.optim import GD, Adam, Momentum, RMSprop, build_optimizer


def params():
    return [torch.nn.Parameter(torch.zeros(3))]


@pytest.mark.parametrize("name, cls, expected", [
    ("gd", GD, {"lr": 0.3, "weight_decay": 0.01}),
    ("momentum", Momentum, {"lr": 0.3, "beta": 0.8, "weight_decay": 0.01}),
    ("rmsprop", RMSprop, {"lr": 0.3, "beta": 0.8, "eps": 1e-6, "eps_inside_sqrt": True}),
    ("adam", Adam, {"lr": 0.3, "betas": (0.7, 0.99), "eps": 1e-6, "bias_correction": True, "eps_inside_sqrt": False}),
    ("Adam", Adam, {"lr": 0.3}),
])
def test_config_names_the_optimizer_and_its_values(name, cls, expected):
    config = TrainConfig(optimizer=name, lr=0.3, beta=0.8, beta1=0.7, beta2=0.99, eps=1e-6, weight_decay=0.01)
    optimizer = build_optimizer(config, params())
    assert type(optimizer) is cls
    group = optimizer.param_groups[0]
    assert {k: group[k] for k in expected} == expected


def test_cli_adam_is_kingma_and_ba_and_equals_torch_adam():
    ours, theirs = params(), params()
    a = build_optimizer(TrainConfig(optimizer="adam", lr=0.01), ours)
    b = torch.optim.Adam(theirs, lr=0.01)
    for t in range(5):
        grad = torch.tensor([1.0, -2.0, 0.5]) * (t + 1)
        ours[0].grad, theirs[0].grad = grad.clone(), grad.clone()
        a.step()
        b.step()
    torch.testing.assert_close(ours[0], theirs[0])


def test_extra_switches_adam_to_the_document_form():
    config = TrainConfig(optimizer="adam", extra={"bias_correction": False, "eps_inside_sqrt": True})
    group = build_optimizer(config, params()).param_groups[0]
    assert group["bias_correction"] is False and group["eps_inside_sqrt"] is True


def test_torch_class_by_name_gets_lr_betas_eps_and_keeps_its_own_weight_decay_default():
    optimizer = build_optimizer(TrainConfig(optimizer="torch:AdamW", lr=0.02, beta1=0.8, eps=1e-7), params())
    group = optimizer.param_groups[0]
    assert type(optimizer) is torch.optim.AdamW
    assert (group["lr"], group["betas"], group["eps"], group["weight_decay"]) == (0.02, (0.8, 0.999), 1e-7, 0.01)


def test_torch_class_takes_extra_arguments():
    optimizer = build_optimizer(TrainConfig(optimizer="torch:SGD", lr=0.1, extra={"momentum": 0.5}), params())
    assert type(optimizer) is torch.optim.SGD and optimizer.param_groups[0]["momentum"] == 0.5


@pytest.mark.parametrize("name, extra, fragments", [
    ("sgd", {}, ["gd, momentum, rmsprop, adam", "torch:NAME", "'sgd'"]),
    ("torch:Nope", {}, ["no optimizer class 'Nope'", "AdamW"]),
    ("torch:Optimizer", {}, ["no optimizer class 'Optimizer'"]),
    ("torch:LBFGS", {}, ["cannot be used", "closure"]),
    ("torch:SparseAdam", {}, ["cannot be used", "sparse"]),
    ("adam", {"momentum": 0.9}, ["takes no argument(s) ['momentum']", "bias_correction"]),
    ("torch:SGD", {"momentum": -1.0}, ["torch:SGD", "momentum"]),
    ("momentum", {"beta": 2.0}, ["beta must be a number in [0, 1), got 2.0"]),
])
def test_bad_optimizer_choice_raises_config_error(name, extra, fragments):
    with pytest.raises(ConfigError) as caught:
        build_optimizer(TrainConfig(optimizer=name, extra=extra), params())
    for fragment in fragments:
        assert fragment in str(caught.value)


@pytest.fixture(scope="module")
def iris():
    from gradwise.data import load_table, split_table

    return split_table(load_table("builtin:iris"), seed=0)


@pytest.mark.parametrize("name", ["gd", "momentum", "rmsprop", "adam", "torch:AdamW", "torch:Adafactor"])
def test_fit_trains_with_each_optimizer_and_applies_the_decay_per_epoch(iris, name):
    from gradwise import fit

    config = TrainConfig(optimizer=name, lr=0.01, lr_decay="step:1:0.5", epochs=3, hidden=4, patience=None)
    result = fit(config, iris)
    assert [record.lr for record in result.history] == [0.01, 0.005, 0.0025]
    assert all(record.train_loss == record.train_loss for record in result.history)  # finite, not NaN
