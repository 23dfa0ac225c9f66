"""The document's single-neuron chain (section 1): product formula against autograd."""

import json
import math
import random

import pytest
from click.testing import CliRunner

from gradwise.cli import main
from gradwise.diagnosis.chain import ACTIVATIONS, depth_scaling, run_chain, scenario


def _close(a: float, b: float, rel: float = 1e-10) -> bool:
    # Exploding chains reach 1e26; vanishing ones 1e-30: compare relative to the size. The
    # absolute floor covers saturated tanh chains, where autograd's own g' = 1 - tanh(z)^2
    # cancels (relative error ~1e-9 on gradients below 1e-6, absolute error below 1e-16).
    return abs(a - b) <= rel * max(abs(a), abs(b)) + 1e-15


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_product_formula_equals_autograd_for_random_chains_of_depth_1_to_20(activation):
    rng = random.Random(sorted(ACTIVATIONS).index(activation))  # the same chains in every run
    for depth in range(1, 21):
        for _ in range(3):
            weights = [rng.gauss(0, 1.5) for _ in range(depth)]
            biases = [rng.gauss(0, 1) for _ in range(depth)]
            chain = run_chain(rng.uniform(-2, 2), weights, biases, activation, y=rng.gauss(0, 1))
            for layer in chain.layers:
                assert _close(layer.grad_w_formula, layer.grad_w_autograd), (depth, layer)
                assert _close(layer.grad_b_formula, layer.grad_b_autograd), (depth, layer)


def test_chain_forward_matches_the_document_equations_written_plainly():
    a0, w, b = 0.3, [0.5, -2.0, 1.5], [0.1, 0.2, -0.3]
    a = a0
    for wl, bl in zip(w, b):
        a = math.tanh(wl * a + bl)
    chain = run_chain(a0, w, b, "tanh", y=0.0)
    assert chain.layers[-1].a == pytest.approx(a, abs=1e-15)
    assert chain.cost == pytest.approx(0.5 * a**2, abs=1e-15)


def test_document_four_layer_formula_for_dJ_dw1():
    # dJ/dw1 = dJ/da4 g4' g3' g2' g1' w4 w3 w2 a0, as the document writes it for L = 4.
    w, b = [0.9, -1.3, 0.7, 1.1], [0.2, -0.1, 0.3, 0.0]
    chain = run_chain(0.8, w, b, "sigmoid", y=1.0)
    g = [l.g_prime for l in chain.layers]
    dJ_da4 = chain.layers[-1].a - 1.0
    expected = dJ_da4 * g[3] * g[2] * g[1] * g[0] * w[3] * w[2] * w[1] * 0.8
    assert chain.layers[0].grad_w_autograd == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("a0", [1.0, 0.3, -2.5])
def test_exploding_recipe_makes_every_factor_25_and_dJ_dw1_25_cubed_times_dJ_dw4(a0):
    weights, biases = scenario("exploding", 4, a0, "sigmoid")
    assert weights == [100.0] * 4
    assert biases[0] == pytest.approx(-100.0 * a0)  # the document's b1 = -100 a0
    chain = run_chain(a0, weights, biases, "sigmoid")
    for layer in chain.layers:
        assert layer.z == pytest.approx(0.0, abs=1e-12)
        assert layer.factor == pytest.approx(25.0, rel=1e-12)
    a3 = chain.layers[2].a
    assert a3 == pytest.approx(0.5)
    dw1, dw4 = abs(chain.layers[0].grad_w_autograd), abs(chain.layers[3].grad_w_autograd)
    assert dw1 == pytest.approx(25**3 * (abs(a0) / a3) * dw4, rel=1e-10)


def test_exploding_depth_scaling_grows_by_25_per_layer_and_vanishing_shrinks():
    rows = depth_scaling(8, scenario_name="exploding")
    assert all(r["ratio"] == pytest.approx(25.0) for r in rows[1:])
    vanishing = depth_scaling(12, scenario_name="vanishing", seed=0)
    assert vanishing[-1]["abs_grad_w1"] < 1e-3 * vanishing[0]["abs_grad_w1"]


def test_vanishing_scenario_draws_standard_normal_weights_reproducibly():
    w4, b4 = scenario("vanishing", 4, seed=3)
    w6, _ = scenario("vanishing", 6, seed=3)
    assert w6[:4] == w4 and b4 == [0.0] * 4
    sample = scenario("vanishing", 4000, seed=1)[0]
    assert abs(sum(sample) / 4000) < 0.1 and abs(sum(x * x for x in sample) / 4000 - 1) < 0.1


def test_sigmoid_derivative_peaks_at_a_quarter():
    d = ACTIVATIONS["sigmoid"][1]
    assert d(0.0) == 0.25 and max(d(z / 10) for z in range(-50, 51)) == 0.25


def test_chain_cli_json_prints_every_layer_with_formula_and_autograd():
    result = CliRunner().invoke(main, ["chain", "--scenario", "exploding", "--depth", "5", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert len(doc["layers"]) == 4
    for layer in doc["layers"]:
        assert {"w", "b", "z", "a", "g_prime", "factor", "grad_w_formula", "grad_w_autograd"} <= set(layer)
        assert layer["factor"] == pytest.approx(25.0)
    assert [r["depth"] for r in doc["depth_scaling"]] == [1, 2, 3, 4, 5]


def test_chain_cli_table_with_given_weights():
    result = CliRunner().invoke(main, ["chain", "--weights", "0.5,2,-1", "--biases", "0,0.1,0", "--activation", "tanh"])
    assert result.exit_code == 0, result.output
    assert "w·g'(z)" in result.output and "autograd" in result.output


def test_chain_cli_rejects_mismatched_biases_in_one_line():
    result = CliRunner().invoke(main, ["chain", "--weights", "1,2", "--biases", "0"])
    assert result.exit_code == 2
    assert "one value per layer" in result.output
