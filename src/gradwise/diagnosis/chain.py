"""The document's single-neuron chain (section 1), computed two ways.

A chain of L one-unit layers, input ``a0``, layer l computing

    z_l = w_l * a_{l-1} + b_l,      a_l = g(z_l)

and the cost ``J = 0.5 * (a_L - y)^2`` on the output, so ``dJ/da_L = a_L - y``.
The chain rule written as the document's product gives, for every layer,

    dJ/dw_l = a_{l-1} * g'(z_l) * [w_{l+1} g'(z_{l+1})] * ... * [w_L g'(z_L)] * dJ/da_L

Each bracket ``w_j g'(z_j)`` is a *factor*: when factors are below 1 the gradient of the
early layers shrinks exponentially with depth (vanishing gradient), above 1 it grows
(exploding gradient). :func:`run_chain` evaluates the product formula with plain float64
Python arithmetic and the derivative of each activation written out by hand, and asks
``torch.autograd`` for the same gradients, so the two can be compared.

>>> chain = run_chain(1.0, [100.0] * 4, exploding_biases(1.0, [100.0] * 4, "sigmoid"), "sigmoid")
>>> [round(layer.factor, 6) for layer in chain.layers]
[25.0, 25.0, 25.0, 25.0]
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .chain_names import SCENARIOS

LEAKY_SLOPE = 0.01  # torch.nn.LeakyReLU's default negative slope
SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)  # the stable form for negative z avoids overflow in exp(-z)
    return e / (1.0 + e)


def _d_sigmoid(z: float) -> float:
    s = _sigmoid(z)
    return s * (1.0 - s)


def _d_tanh(z: float) -> float:
    return 1.0 - math.tanh(z) ** 2


# At the kink z = 0 the piecewise derivatives follow torch's conventions (relu'(0) = 0,
# leaky_relu'(0) = slope, elu'(0) = 1, selu'(0) = scale * alpha), so autograd agrees exactly.
def _d_relu(z: float) -> float:
    return 1.0 if z > 0 else 0.0


def _d_leaky_relu(z: float) -> float:
    return 1.0 if z > 0 else LEAKY_SLOPE


def _elu(z: float) -> float:
    return z if z > 0 else math.expm1(z)


def _d_elu(z: float) -> float:
    return 1.0 if z > 0 else math.exp(z)


def _selu(z: float) -> float:
    return SELU_SCALE * (z if z > 0 else SELU_ALPHA * math.expm1(z))


def _d_selu(z: float) -> float:
    return SELU_SCALE * (1.0 if z > 0 else SELU_ALPHA * math.exp(z))


def _gelu(z: float) -> float:
    return 0.5 * z * (1.0 + math.erf(z / math.sqrt(2.0)))


def _d_gelu(z: float) -> float:
    # d/dz [z * Phi(z)] = Phi(z) + z * phi(z)
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0))) + z * math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


# name -> (g in float64 Python, g' in float64 Python, g in torch for autograd)
ACTIVATIONS: dict[str, tuple[Callable[[float], float], Callable[[float], float], Callable]] = {
    "sigmoid": (_sigmoid, _d_sigmoid, torch.sigmoid),
    "tanh": (math.tanh, _d_tanh, torch.tanh),
    "relu": (lambda z: max(z, 0.0), _d_relu, F.relu),
    "leaky_relu": (lambda z: z if z > 0 else LEAKY_SLOPE * z, _d_leaky_relu, lambda t: F.leaky_relu(t, LEAKY_SLOPE)),
    "elu": (_elu, _d_elu, F.elu),
    "selu": (_selu, _d_selu, F.selu),
    "gelu": (_gelu, _d_gelu, F.gelu),
}
EXPLODING_WEIGHT = 100.0  # the document's w1 = w2 = w3 = w4 = 100


@dataclass
class ChainLayer:
    """One neuron of the chain: its parameters, values and both gradients of J."""

    layer: int
    w: float
    b: float
    z: float
    a: float
    g_prime: float  # g'(z)
    factor: float  # w * g'(z), the term this layer contributes to earlier layers' gradients
    grad_w_formula: float  # dJ/dw by the document's product formula
    grad_w_autograd: float  # dJ/dw by torch.autograd
    grad_b_formula: float
    grad_b_autograd: float


@dataclass
class ChainResult:
    a0: float
    y: float
    activation: str
    cost: float
    layers: list[ChainLayer]

    @property
    def max_abs_error(self) -> float:
        """Largest |formula - autograd| over all dJ/dw and dJ/db."""
        return max(
            max(abs(l.grad_w_formula - l.grad_w_autograd), abs(l.grad_b_formula - l.grad_b_autograd))
            for l in self.layers
        )

    def to_dict(self) -> dict:
        return {
            "a0": self.a0,
            "y": self.y,
            "activation": self.activation,
            "cost": self.cost,
            "cost_formula": "J = 0.5 * (a_L - y)^2",
            "max_abs_error": self.max_abs_error,
            "layers": [asdict(l) for l in self.layers],
        }


def _check(activation: str, weights: list[float], biases: list[float]) -> None:
    if activation not in ACTIVATIONS:
        raise ConfigError(f"--activation must be one of {', '.join(ACTIVATIONS)}; got {activation!r}")
    if len(weights) == 0:
        raise ConfigError("the chain needs at least one layer; got no weights")
    if len(weights) != len(biases):
        raise ConfigError(
            f"--weights and --biases must have one value per layer; got {len(weights)} weights "
            f"and {len(biases)} biases"
        )


def forward(a0: float, weights: list[float], biases: list[float], activation: str) -> tuple[list[float], list[float]]:
    """Pre-activations z_1..z_L and activations a_1..a_L, in float64."""
    g = ACTIVATIONS[activation][0]
    zs, acts, a = [], [], a0
    for w, b in zip(weights, biases):
        z = w * a + b
        a = g(z)
        zs.append(z)
        acts.append(a)
    return zs, acts


def product_formula_grads(
    a0: float, weights: list[float], zs: list[float], acts: list[float], dJ_daL: float, activation: str
) -> tuple[list[float], list[float]]:
    """dJ/dw_l and dJ/db_l for every layer by the document's product of factors."""
    dg = ACTIVATIONS[activation][1]
    L = len(weights)
    grads_w, grads_b = [0.0] * L, [0.0] * L
    upstream = dJ_daL  # [w_{l+1} g'(z_{l+1})] * ... * [w_L g'(z_L)] * dJ/da_L
    for l in reversed(range(L)):
        a_prev = a0 if l == 0 else acts[l - 1]
        grads_b[l] = dg(zs[l]) * upstream
        grads_w[l] = a_prev * grads_b[l]
        upstream *= weights[l] * dg(zs[l])
    return grads_w, grads_b


def autograd_grads(
    a0: float, weights: list[float], biases: list[float], y: float, activation: str
) -> tuple[list[float], list[float]]:
    """The same gradients from torch.autograd in float64, as an independent check."""
    g = ACTIVATIONS[activation][2]
    w = torch.tensor(weights, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(biases, dtype=torch.float64, requires_grad=True)
    a = torch.tensor(a0, dtype=torch.float64)
    for l in range(len(weights)):
        a = g(w[l] * a + b[l])
    cost = 0.5 * (a - y) ** 2
    cost.backward()
    return w.grad.tolist(), b.grad.tolist()


def run_chain(a0: float, weights: list[float], biases: list[float], activation: str = "sigmoid", y: float = 1.0) -> ChainResult:
    """Forward the chain, then dJ/dw and dJ/db by product formula and by autograd."""
    weights, biases = [float(w) for w in weights], [float(b) for b in biases]
    _check(activation, weights, biases)
    a0, y = float(a0), float(y)
    zs, acts = forward(a0, weights, biases, activation)
    dJ_daL = acts[-1] - y
    gw, gb = product_formula_grads(a0, weights, zs, acts, dJ_daL, activation)
    aw, ab = autograd_grads(a0, weights, biases, y, activation)
    dg = ACTIVATIONS[activation][1]
    layers = [
        ChainLayer(
            layer=l + 1, w=weights[l], b=biases[l], z=zs[l], a=acts[l], g_prime=dg(zs[l]),
            factor=weights[l] * dg(zs[l]), grad_w_formula=gw[l], grad_w_autograd=aw[l],
            grad_b_formula=gb[l], grad_b_autograd=ab[l],
        )
        for l in range(len(weights))
    ]
    return ChainResult(a0=a0, y=y, activation=activation, cost=0.5 * dJ_daL**2, layers=layers)


def normal_weights(depth: int, seed: int = 0) -> list[float]:
    """The document's "standard approach": weights drawn from N(0, 1).

    The same seed gives the same leading weights at every depth, so deeper chains extend
    shallower ones and depth comparisons change only the depth.
    """
    rng = random.Random(seed)
    return [rng.gauss(0.0, 1.0) for _ in range(depth)]


def exploding_biases(a0: float, weights: list[float], activation: str) -> list[float]:
    """Biases that put every z_l at the point where g' is largest: b_l = z* - w_l * a_{l-1}.

    For the document's example z* = 0 (so b_1 = -w_1 * a0). ReLU and leaky ReLU have their
    kink at 0, where torch takes the left derivative, so for them z* = 1 (g' = 1 there).
    """
    g = ACTIVATIONS[activation][0]
    target = 1.0 if activation in ("relu", "leaky_relu") else 0.0
    biases, a = [], a0
    for w in weights:
        biases.append(target - w * a)
        a = g(target)
    return biases


def scenario(name: str, depth: int = 4, a0: float = 1.0, activation: str = "sigmoid", seed: int = 0) -> tuple[list[float], list[float]]:
    """Weights and biases for the document's two cases.

    ``vanishing``: weights from N(0, 1), zero biases; ``exploding``: every w = 100 and biases
    chosen so every z = 0 (where the sigmoid's g' is largest, 1/4, so each factor is 25).
    """
    if name == "vanishing":
        return normal_weights(depth, seed), [0.0] * depth
    if name == "exploding":
        weights = [EXPLODING_WEIGHT] * depth
        return weights, exploding_biases(a0, weights, activation)
    raise ConfigError(f"--scenario must be one of {', '.join(SCENARIOS)}; got {name!r}")


def depth_scaling(
    max_depth: int, a0: float = 1.0, activation: str = "sigmoid", scenario_name: str = "vanishing",
    seed: int = 0, y: float = 1.0,
) -> list[dict]:
    """|dJ/dw1| for chains of depth 1..max_depth built by the same recipe.

    ``ratio`` is |dJ/dw1| at this depth over the previous depth: for the exploding case it
    is the constant factor w g'(0) = 25 (sigmoid), for the vanishing case |w g'(z)|, mostly < 1.
    """
    if max_depth < 1:
        raise ConfigError(f"--depth must be a positive integer, got {max_depth}")
    rows, previous = [], None
    for depth in range(1, max_depth + 1):
        weights, biases = scenario(scenario_name, depth, a0, activation, seed)
        chain = run_chain(a0, weights, biases, activation, y)
        grad = abs(chain.layers[0].grad_w_formula)
        rows.append({
            "depth": depth,
            "abs_grad_w1": grad,
            "abs_grad_w1_autograd": abs(chain.layers[0].grad_w_autograd),
            "ratio": grad / previous if previous else None,
        })
        previous = grad
    return rows
