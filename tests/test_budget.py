"""Memory and work budgets: estimates checked against what torch allocates, refusals checked
end to end under an address-space limit, so a regression fails instead of exhausting memory."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from gradwise import TrainConfig
from gradwise.budget import (
    MemoryBudgetError, check_memory, cpu_cores, estimate_memory, fitting_chunks, largest_hidden,
    max_workers, optimizer_state, parameter_count,
)
from gradwise.models.mlp import build_mlp
from gradwise.optim import build_optimizer


@pytest.mark.parametrize("shape", [(4, 3, 2, 16, False), (64, 10, 0, 8, False), (13, 1, 3, 7, True), (2, 5, 1, 1, True)])
def test_parameter_count_is_what_torch_builds(shape):
    n_inputs, n_outputs, layers, hidden, batch_norm = shape
    net = build_mlp(n_inputs, n_outputs, layers, hidden, batch_norm=batch_norm)
    assert parameter_count(*shape) == sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("optimizer", ["gd", "momentum", "rmsprop", "adam", "torch:SGD", "torch:Adam"])
def test_optimizer_state_covers_what_each_optimizer_keeps(optimizer):
    config = TrainConfig(optimizer=optimizer, extra={"momentum": 0.9} if optimizer == "torch:SGD" else {})
    net = build_mlp(4, 3, 2, 16)
    opt = build_optimizer(config, list(net.parameters()))
    net(torch.randn(8, 4)).sum().backward()
    opt.step()
    kept = sum(t.numel() for state in opt.state.values() for t in state.values() if torch.is_tensor(t) and t.numel() > 1)
    assert kept <= optimizer_state(optimizer) * sum(p.numel() for p in net.parameters())


def test_the_estimate_covers_weights_gradients_and_state_and_scales_with_members():
    config = TrainConfig(layers=3, hidden=256)
    one = estimate_memory(config, 64, 10, 1000)
    P = parameter_count(64, 10, 3, 256)
    assert one.parameters == P and one.weight_bytes >= P * 4 * (1 + 1 + 2)  # weights, gradients, Adam's m and v
    assert one.activation_bytes >= 64 * 256 * 3 * 4 * 2  # one batch: Linear output and activation per layer
    eight = estimate_memory(config, 64, 10, 1000, members=8)
    assert eight.total == 8 * one.total


def test_a_network_that_cannot_fit_is_refused_with_the_estimate_and_a_width_that_fits():
    config = TrainConfig(layers=2, hidden=100_000)
    with pytest.raises(MemoryBudgetError) as refused:
        check_memory(config, 4, 3, 105, available=16 * 10**9)
    message = str(refused.value)
    assert "2 x 100,000 hidden units (10,000,900,003 parameters each) needs about 320.2 GB" in message
    fits = largest_hidden(config, 4, 3, 105, 1, int(16e9 * 0.8))
    assert f"use --hidden {fits} or less" in message
    check_memory(config.replace(hidden=fits), 4, 3, 105, available=16 * 10**9)
    with pytest.raises(MemoryBudgetError):
        check_memory(config.replace(hidden=fits + 1), 4, 3, 105, available=16 * 10**9)


def test_when_activations_dominate_the_fix_is_a_smaller_batch():
    config = TrainConfig(layers=1, hidden=4096, batch_size="full")
    with pytest.raises(MemoryBudgetError, match="use a smaller --batch-size"):
        check_memory(config, 8, 1, 10**7, available=10**9)


def test_populations_are_split_into_parts_that_fit():
    configs = [TrainConfig(hidden=1000, layers=2)] * 7
    one = estimate_memory(configs[0], 10, 2, 500, members=5).total
    chunks = fitting_chunks(configs, 10, 2, 500, members_each=5, available=int(3.5 * one / 0.8))
    assert chunks == [[0, 1, 2], [3, 4, 5], [6]]
    wide = [TrainConfig(hidden=10, layers=1), TrainConfig(hidden=1000, layers=2)]  # padded to the widest
    assert fitting_chunks(wide, 10, 2, 500, 5, available=int(1.5 * one / 0.8)) == [[0], [1]]


def test_workers_are_capped_at_two_per_core():
    assert max_workers() == 2 * cpu_cores()


# The end-to-end check runs in a child process whose address space is limited, so a budget
# that stopped working ends in MemoryError there, not in the kernel killing this machine's jobs.
_UNDER_LIMIT = textwrap.dedent('''
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), resource.RLIM_INFINITY))
    from click.testing import CliRunner
    from gradwise.cli import main
    runs = {}
    for name, args in json.loads(sys.argv[2]).items():
        result = CliRunner().invoke(main, args)
        runs[name] = {"code": result.exit_code, "stderr": result.stderr, "stdout": result.stdout,
                      "error": repr(result.exception) if result.exit_code not in (0, 2) else None}
    print("RESULT" + json.dumps(runs))
''')


def test_the_largest_hidden_and_a_huge_space_end_in_exit_2_or_memory_pruned_trials(tmp_path):
    (tmp_path / "huge.toml").write_text("[params.hidden]\nlow = 8\nhigh = 1e9\n")
    # hidden 20,000..100,000 with 2 layers is 0.4-10 G parameters: none fits in the limit.
    (tmp_path / "wide.toml").write_text("[params.hidden]\nlow = 20000\nhigh = 100000\n[params.layers]\nvalue = 2\n")
    tune = ["tune", "--data", "builtin:iris", "--strategy", "random", "--epochs", "1", "--cv", "0", "--ensemble", "1", "--no-report", "--json"]
    runs = {
        "train at the largest --hidden": ["train", "--data", "builtin:iris", "--epochs", "1", "--hidden", "100000"],
        "space up to 1e9": [*tune, "--trials", "2", "--space", str(tmp_path / "huge.toml"), "--out", str(tmp_path / "a")],
        "space of wide networks": [*tune, "--trials", "3", "--space", str(tmp_path / "wide.toml"), "--out", str(tmp_path / "b")],
    }
    limit = 6 * 2**30
    child = subprocess.run([sys.executable, "-c", _UNDER_LIMIT, str(limit), json.dumps(runs)], capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, child.stderr[-3000:]
    result = json.loads(child.stdout.split("RESULT", 1)[1])
    train = result["train at the largest --hidden"]
    assert train["code"] == 2 and "needs about" in train["stderr"] and "use --hidden" in train["stderr"], train
    assert result["space up to 1e9"]["code"] == 2 and "--space params.hidden.high must be an integer in [1, 100000], got 1000000000" in result["space up to 1e9"]["stderr"]
    wide = result["space of wide networks"]
    assert wide["code"] == 0, wide
    trials = json.loads(wide["stdout"])["trials"]
    assert trials["pruned"] == 2 and trials["failed"] == 0, trials  # the untuned trial (64 units) completes
    import pandas as pd

    reasons = pd.read_csv(tmp_path / "b" / "trials.csv")["user_attrs_prune_reason"].dropna()
    assert len(reasons) == 2 and all(r.startswith("memory: training a network of 2 x") for r in reasons), list(reasons)
