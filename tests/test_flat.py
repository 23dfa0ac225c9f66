"""Flat parameters give bit-identical training and leave the model as it was."""

import pytest
import torch
from torch import nn

from gradwise.optim import GD, Adam, Momentum, RMSprop
from gradwise.training.flat import FlatParameters


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))


@pytest.mark.parametrize("make", [lambda p: GD(p, lr=0.1), lambda p: Momentum(p, lr=0.1), lambda p: RMSprop(p, lr=0.01), lambda p: Adam(p, lr=0.01)])
def test_flat_training_is_bit_identical_to_per_tensor_training(make):
    X, y = torch.randn(32, 5), torch.randn(32, 3)
    plain, flat_net = _net(), _net()
    flat = FlatParameters(flat_net)
    optimizers = [make(plain.parameters()), make(flat.flatten())]
    assert len(optimizers[1].param_groups[0]["params"]) == 1
    for _ in range(6):
        for net, opt, zero in ((plain, optimizers[0], lambda: optimizers[0].zero_grad()), (flat_net, optimizers[1], lambda: flat.zero_grad(optimizers[1]))):
            zero()
            nn.functional.mse_loss(net(X), y).backward()
            opt.step()
    for a, b in zip(plain.parameters(), flat_net.parameters()):
        assert torch.equal(a, b)
        assert torch.equal(a.grad, b.grad)


def test_restore_gives_each_parameter_its_own_storage():
    net = _net()
    flat = FlatParameters(net)
    flat.flatten()
    pointers = {p.untyped_storage().data_ptr() for p in net.parameters()}
    assert len(pointers) == 1
    flat.restore()
    assert len({p.untyped_storage().data_ptr() for p in net.parameters()}) == 4
    assert all(p.grad is None for p in net.parameters())
