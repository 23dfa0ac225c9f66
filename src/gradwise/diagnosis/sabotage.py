"""The document's broken set-ups as deliberate initializations, to see a diagnosis at work.

Each function returns ``apply(net)``, which spoils a freshly built network; :class:`Sabotage`
applies it when ``gradwise.fit`` starts training (it is a training-loop callback)::

    fit(config, splits, callbacks=[Sabotage(large_weights_zero_z(5.0)), monitor])

The tests of the diagnosis and ``benchmarks/diagnosis_variants.py`` build their broken cases
from these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

Spoiler = Callable[[nn.Module], None]


@dataclass
class Sabotage:
    """A bad initialization, applied when training starts: part of the broken set-up."""

    apply: Spoiler

    def on_train_start(self, state: Any) -> None:
        self.apply(state.model)


def hidden_linears(net: nn.Module) -> list[nn.Linear]:
    """Every Linear layer but the output layer (the last one)."""
    return [m for m in net.modules() if isinstance(m, nn.Linear)][:-1]


def hidden_biases(value: float) -> Spoiler:
    """Every hidden layer's bias set to ``value`` (a large negative one kills ReLU units)."""

    def apply(net: nn.Module) -> None:
        with torch.no_grad():
            for m in hidden_linears(net):
                m.bias.fill_(value)

    return apply


def scaled_weights(factor: float) -> Spoiler:
    """Every Linear layer's weights multiplied by ``factor`` (10 × He makes gradients explode)."""

    def apply(net: nn.Module) -> None:
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, nn.Linear):
                    m.weight.mul_(factor)

    return apply


def large_weights_zero_z(scale: float) -> Spoiler:
    """Weights ~ N(0, scale²) and the document's biases b = -W a_prev, so z = 0 on average.

    The biases depend on what each layer receives, so they are set on the first batch, in a
    forward pre-hook that removes itself.
    """

    def apply(net: nn.Module) -> None:
        def centre(module: nn.Module, args: tuple) -> None:
            handle.remove()
            a = args[0]
            with torch.no_grad():
                for m in module:
                    if isinstance(m, nn.Linear):
                        m.weight.normal_(0.0, scale)
                        m.bias.copy_(-(a.mean(0) @ m.weight.T))
                    a = m(a)

        handle = net.register_forward_pre_hook(centre)

    return apply
