"""``gradwise chain``: the document's single-neuron chain, product formula next to autograd."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ..budget import MAX_CHAIN_DEPTH, MAX_CHAIN_LAYERS
from ..diagnosis.chain_names import ACTIVATION_NAMES, SCENARIOS
from ..errors import ConfigError
from ._errors import handle_errors
from .options import emit_json


def parse_floats(text: str | None, name: str) -> list[float] | None:
    """'1, -0.5,2' -> [1.0, -0.5, 2.0]; None stays None."""
    if text is None:
        return None
    try:
        return [float(part) for part in text.replace(" ", "").split(",") if part != ""]
    except ValueError:
        raise ConfigError(f"--{name} must be comma-separated numbers like 0.5,-1.2,2; got {text!r}") from None


def chain_parameters(options: dict[str, Any]) -> tuple[list[float], list[float]]:
    """Weights and biases from --scenario, or --weights/--biases, or N(0, 1) weights and zero biases."""
    from ..diagnosis.chain import normal_weights, scenario  # here: --help needs no torch

    weights = parse_floats(options["weights"], "weights")
    biases = parse_floats(options["biases"], "biases")
    layers = options["layers"] if weights is None else len(weights)
    if layers < 1:
        raise ConfigError(f"--layers must be a positive integer, got {layers}")
    if layers > MAX_CHAIN_LAYERS:
        raise ConfigError(f"--weights gives {layers:,} layers; a chain has at most {MAX_CHAIN_LAYERS:,}")
    if options["scenario"]:
        if options["weights"] or options["biases"]:
            raise ConfigError("--scenario sets the weights and biases itself; drop --weights/--biases or --scenario")
        return scenario(options["scenario"], layers, options["a0"], options["activation"], options["seed"])
    if weights is None:
        weights = normal_weights(layers, options["seed"])
    if biases is None:
        biases = [0.0] * len(weights)
    return weights, biases


def chain_table(chain) -> Table:
    table = Table(title=f"Single-neuron chain, {chain.activation}, a0 = {chain.a0:g}, J = 0.5 (a_L - y)^2 with y = {chain.y:g}", title_justify="left")
    for column in ("l", "w", "b", "z", "a", "g'(z)", "w·g'(z)", "dJ/dw formula", "dJ/dw autograd"):
        table.add_column(column, justify="right")
    for l in chain.layers:
        table.add_row(
            str(l.layer), f"{l.w:.4g}", f"{l.b:.4g}", f"{l.z:.4g}", f"{l.a:.4g}", f"{l.g_prime:.4g}",
            f"{l.factor:.4g}", f"{l.grad_w_formula:.4g}", f"{l.grad_w_autograd:.4g}",
        )
    return table


def depth_table(rows: list[dict], scenario_name: str) -> Table:
    table = Table(title=f"|dJ/dw1| against depth ({scenario_name} recipe)", title_justify="left")
    for column in ("depth", "|dJ/dw1|", "ratio to depth - 1"):
        table.add_column(column, justify="right")
    for row in rows:
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.3g}"
        table.add_row(str(row["depth"]), f"{row['abs_grad_w1']:.4g}", ratio)
    return table


@click.command("chain")
@click.option("--a0", type=float, default=1.0, show_default=True, help="The input a0.")
@click.option("--weights", default=None, help="Comma-separated w_1..w_L (default: drawn from N(0, 1)).")
@click.option("--biases", default=None, help="Comma-separated b_1..b_L (default: zeros).")
@click.option("--activation", type=click.Choice(ACTIVATION_NAMES), default="sigmoid", show_default=True)
@click.option("--layers", type=click.IntRange(1, MAX_CHAIN_LAYERS), default=4, show_default=True, help=f"Chain length when --weights is not given (at most {MAX_CHAIN_LAYERS:,}: by then the product of the factors is far outside float64's range).")
@click.option("--y", "y", type=float, default=1.0, show_default=True, help="Target of the cost J = 0.5 (a_L - y)^2.")
@click.option("--scenario", type=click.Choice(SCENARIOS), default=None, help="vanishing: N(0, 1) weights; exploding: w = 100, biases so every z = 0.")
@click.option("--depth", type=click.IntRange(1, MAX_CHAIN_DEPTH), default=None, help=f"Also show |dJ/dw1| for chains of depth 1..N built the same way (N at most {MAX_CHAIN_DEPTH}).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the N(0, 1) weights.")
@click.option("--json", "as_json", is_flag=True, help="Print the same numbers as one JSON document.")
@handle_errors
def command(as_json: bool, **options: Any) -> None:
    """Reproduce the document's chain z_l = w_l a_(l-1) + b_l, a_l = g(z_l).

    For every layer it prints w, b, z, a, g'(z), the factor w·g'(z) and dJ/dw from the
    product formula next to autograd's value.

    \b
    Examples:
      gradwise chain                                  # 4 sigmoid layers, weights from N(0, 1)
      gradwise chain --scenario exploding             # w = 100, every z = 0: factors of 25
      gradwise chain --scenario vanishing --depth 12  # |dJ/dw1| shrinks with depth
      gradwise chain --weights 0.5,2,-1 --biases 0,0,0 --activation tanh --a0 0.3
    """
    from ..diagnosis.chain import depth_scaling, run_chain

    weights, biases = chain_parameters(options)
    chain = run_chain(options["a0"], weights, biases, options["activation"], options["y"])
    rows = None
    if options["depth"] is not None:
        rows = depth_scaling(options["depth"], options["a0"], options["activation"], options["scenario"] or "vanishing", options["seed"], options["y"])
    if as_json:
        document = chain.to_dict()
        document["scenario"] = options["scenario"]
        if rows is not None:
            document["depth_scaling"] = rows
        emit_json(document)
        return
    console = Console(width=max(Console().width, 110))  # nine numeric columns; never truncate them
    console.print(chain_table(chain))
    console.print(f"largest |formula - autograd| = {chain.max_abs_error:.3g}; cost J = {chain.cost:.6g}", highlight=False)
    if rows is not None:
        console.print(depth_table(rows, options["scenario"] or "vanishing"))
