"""The document's single-neuron chain: dJ/dw_1 is a product of factors w·g'(z), one per
later layer, so it shrinks or grows exponentially with depth. Per depth, the product of
those factors and |dJ/dw_1| as the product formula and as torch.autograd compute it."""

from __future__ import annotations

import math
from typing import Any

from ...diagnosis.chain import ACTIVATIONS, run_chain, scenario
from ...errors import ConfigError
from ..page import Figure, TableBlock
from .style import new_figure, positive_or_none

SCENARIOS = ("vanishing", "exploding")


def chain_rows(activation: str, max_depth: int, seed: int = 0) -> list[dict[str, Any]]:
    """One row per scenario and depth: the product of factors and |dJ/dw_1| both ways."""
    activation = activation if activation in ACTIVATIONS else "sigmoid"
    rows = []
    for name in SCENARIOS:
        for depth in range(1, max_depth + 1):
            try:
                weights, biases = scenario(name, depth, 1.0, activation, seed)
            except ConfigError:  # a scenario this activation has no recipe for
                break
            chain = run_chain(1.0, weights, biases, activation)
            rows.append({"scenario": name, "depth": depth, "activation": activation,
                         "product": math.prod(layer.factor for layer in chain.layers[1:]),
                         "formula": abs(chain.layers[0].grad_w_formula), "autograd": abs(chain.layers[0].grad_w_autograd)})
    return rows


def chain_part(activation: str, depth: int) -> dict[str, Any]:
    return {"activation": activation, "rows": chain_rows(activation, max(2, depth))}


def chain_figure(chain: dict[str, Any]) -> Figure:
    figure = new_figure(f"Single-neuron chain ({chain['activation']}): the product of w·g'(z) and |dJ/dw1| per depth",
                        "depth L (layers in the chain)", "magnitude", log_y=True)
    for name in SCENARIOS:
        rows = [r for r in chain["rows"] if r["scenario"] == name]
        if not rows:
            continue
        depths = [r["depth"] for r in rows]
        figure.add_scatter(x=depths, y=positive_or_none([abs(r["product"]) for r in rows]), mode="lines", name=f"{name}: |∏ w·g'(z)| (layers 2..L)")
        figure.add_scatter(x=depths, y=positive_or_none([r["formula"] for r in rows]), mode="lines", line={"dash": "dash"}, name=f"{name}: |dJ/dw1| product formula")
        figure.add_scatter(x=depths, y=positive_or_none([r["autograd"] for r in rows]), mode="markers", marker={"symbol": "x", "size": 9}, name=f"{name}: |dJ/dw1| autograd")
    return Figure("chain", figure, "vanishing: weights from N(0, 1), zero biases; exploding: w = 100 and biases that put every z "
                  "where g' is largest. The formula's value and autograd's coincide; both follow the product of the factors.")


def chain_table(chain: dict[str, Any]) -> TableBlock:
    rows = [[r["scenario"], r["depth"], r["product"], r["formula"], r["autograd"]] for r in chain["rows"]]
    return TableBlock("Chain per depth", ["scenario", "depth", "∏ w·g'(z)", "|dJ/dw1| formula", "|dJ/dw1| autograd"], rows)
