"""Multi-layer perceptrons with the document's architectural hyperparameters.

Each hidden layer is Linear -> [BatchNorm] -> activation -> [Dropout]; the output layer is
a plain Linear (logits for classification, values for regression). The weight
initialization matters for gradient flow (document section 1): ``normal`` draws N(0, 1),
the document's "standard approach", which with sigmoid makes gradients vanish; ``he`` and
``xavier`` scale the variance to the layer's fan-in so that w·g'(z) stays near 1.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "gelu": nn.GELU,
}
INITS = ("normal", "xavier", "he", "torch")


def build_mlp(
    n_inputs: int,
    n_outputs: int,
    layers: int = 2,
    hidden: int = 64,
    activation: str = "relu",
    init: str = "he",
    batch_norm: bool = False,
    dropout: float = 0.0,
) -> nn.Sequential:
    """Build an MLP with ``layers`` hidden layers of ``hidden`` units.

    >>> net = build_mlp(4, 3, layers=2, hidden=16, activation="tanh", init="xavier")
    >>> net(torch.zeros(5, 4)).shape
    torch.Size([5, 3])
    """
    if activation not in ACTIVATIONS:
        raise ConfigError(f"--activation must be one of {', '.join(ACTIVATIONS)}; got {activation!r}")
    if init not in INITS:
        raise ConfigError(f"--init must be one of {', '.join(INITS)}; got {init!r}")
    modules: list[nn.Module] = []
    width = n_inputs
    for _ in range(layers):
        modules.append(nn.Linear(width, hidden))
        if batch_norm:
            modules.append(nn.BatchNorm1d(hidden))
        modules.append(ACTIVATIONS[activation]())
        if dropout > 0:
            modules.append(nn.Dropout(dropout))
        width = hidden
    modules.append(nn.Linear(width, n_outputs))
    net = nn.Sequential(*modules)
    initialize(net, init, activation)
    return net


def initialize(net: nn.Module, scheme: str, activation: str) -> None:
    """Re-draw every Linear layer's weights with ``scheme``; biases start at zero."""
    if scheme == "torch":
        return  # keep PyTorch's own default (Kaiming-uniform with a = sqrt(5))
    gain = _gain(activation)
    for module in net.modules():
        if not isinstance(module, nn.Linear):
            continue
        with torch.no_grad():
            if scheme == "normal":
                module.weight.normal_(0.0, 1.0)
            elif scheme == "xavier":
                nn.init.xavier_normal_(module.weight, gain=gain)
            else:  # he: variance gain^2 / fan_in
                module.weight.normal_(0.0, gain / math.sqrt(module.in_features))
            module.bias.zero_()


def _gain(activation: str) -> float:
    """The std multiplier that keeps activations' variance steady through a layer."""
    if activation == "leaky_relu":
        return nn.init.calculate_gain("leaky_relu", 0.01)
    if activation in ("relu", "tanh", "sigmoid", "selu"):
        return nn.init.calculate_gain(activation)
    if activation in ("elu", "gelu"):
        return nn.init.calculate_gain("relu")  # close to ReLU's for positive inputs
    return 1.0
