"""gradwise compare: same start, same data, every optimizer and variant, one JSON document."""

import json
import math

import pytest
from click.testing import CliRunner

from gradwise.cli import main
from gradwise.cli.compare import parse_optimizers
from gradwise.training.comparison import oscillation, variant_name

ARGS = ["compare", "--data", "builtin:iris", "--epochs", "3", "--hidden", "8", "--patience", "0",
        "--optimizers", "gd=0.5,momentum,adam=0.01", "--batch-sizes", "full,32"]


@pytest.fixture(scope="module")
def document():
    result = CliRunner().invoke(main, ARGS + ["--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # exactly one JSON document, nothing else on stdout


def test_compare_runs_every_optimizer_with_every_batch_size(document):
    pairs = [(r["optimizer"], r["variant"]) for r in document["runs"]]
    assert pairs == [(o, v) for o in ("gd", "momentum", "adam") for v in ("batch", "mini-batch 32")]
    assert [r["lr"] for r in document["runs"]] == [0.5, 0.5, 0.1, 0.1, 0.01, 0.01]  # momentum: the default for it


def test_compare_counts_updates_per_variant(document):
    for run in document["runs"]:
        per_epoch = 1 if run["variant"] == "batch" else math.ceil(102 / 32)  # iris: 102 training rows
        assert run["updates"] == 3 * per_epoch and run["epochs_run"] == 3


def test_every_run_starts_from_the_same_weights_on_the_same_batches(document):
    by_variant = {}
    for run in document["runs"]:
        by_variant.setdefault(run["variant"], set()).add(run["curves"]["update_loss"][0])
    assert all(len(first_losses) == 1 for first_losses in by_variant.values())


def test_target_and_measures_are_consistent_with_the_curves(document):
    target = document["target_loss"]
    for run in document["runs"]:
        curve = run["curves"]["epoch_train_loss"]
        reached = [epoch for epoch, loss in enumerate(curve, 1) if loss <= target]
        assert run["epochs_to_target"] == (reached[0] if reached else None)
        assert run["oscillation"] == oscillation(curve)
        assert len(run["curves"]["update_loss"]) == run["updates"]


def test_the_python_api_runs_what_the_command_runs(document):
    from gradwise import TrainConfig, compare_optimizers, load_table, split_table

    splits = split_table(load_table("builtin:iris"), seed=0)
    base = TrainConfig(epochs=3, hidden=8, patience=None, lr=0.1)
    comparison = compare_optimizers(base, splits, [("gd", 0.5), "momentum", ("adam", 0.01)], ("full", 32))
    assert comparison["target_loss"] == pytest.approx(document["target_loss"], rel=1e-5)
    for ours, theirs in zip(comparison["runs"], document["runs"], strict=True):
        assert (ours["optimizer"], ours["lr"], ours["variant"]) == (theirs["optimizer"], theirs["lr"], theirs["variant"])
        assert ours["final_train_loss"] == pytest.approx(theirs["final_train_loss"], rel=1e-5)
        assert ours["zigzag"] == pytest.approx(theirs["zigzag"]) and "curves" not in ours  # curves only when asked


def test_table_output_names_every_run():
    result = CliRunner().invoke(main, ARGS[:-4] + ["--optimizers", "gd,rmsprop", "--batch-sizes", "16"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "gd" in result.stdout and "rmsprop" in result.stdout and "mini-batch 16" in result.stdout


@pytest.mark.parametrize("extra, fragment", [
    (["--optimizers", "sgd"], "--optimizers item 'sgd': must be one of gd, momentum, rmsprop, adam"),
    (["--optimizers", "gd=fast"], "'fast' is not a learning rate"),
    (["--batch-sizes", "full,0"], "--batch-size must be 'full' or a positive integer"),
])
def test_bad_choices_fail_before_training_with_one_line(extra, fragment):
    result = CliRunner().invoke(main, ["compare", "--data", "builtin:iris", *extra])
    assert result.exit_code == 2
    assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_oscillation_is_zero_for_descent_and_one_half_for_zigzag():
    assert oscillation([3.0, 2.0, 1.5, 1.0]) == 0.0
    assert oscillation([1.0, 2.0, 1.0, 2.0, 1.0]) == 0.5
    assert oscillation([1.0, 1.0]) is None


def test_names_and_rates():
    assert parse_optimizers("GD=0.3, adam", None) == [("gd", 0.3), ("adam", 1e-3)]
    assert parse_optimizers("gd,torch:AdamW", 0.05) == [("gd", 0.05), ("torch:AdamW", 0.05)]
    assert [variant_name(b, 100) for b in ("full", 1, 10, 100)] == ["batch", "stochastic", "mini-batch 10", "batch"]



def test_the_table_is_never_cut_when_stdout_is_a_pipe(cli):
    # rich assumes 80 columns off a terminal; the nine columns would then read "0.0…".
    result = cli("compare", "--data", "builtin:iris", "--epochs", "2", "--optimizers", "gd,adam", "--batch-sizes", "full")
    assert result.code == 0, result.stderr
    assert "…" not in result.stdout and "epochs→target" in result.stdout and "oscillation" in result.stdout


def test_momentum_and_adam_take_straight_paths_where_gd_and_rmsprop_zig_zag():
    # Section 3: gradient descent's consecutive mini-batch steps keep undoing each other;
    # momentum (and Adam's first moment) average them, so consecutive steps agree.
    args = ["compare", "--data", "builtin:iris", "--epochs", "10", "--batch-sizes", "16", "--json",
            "--optimizers", "gd=0.5,momentum=0.5,rmsprop=0.01,adam=0.01"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    zigzag = {r["optimizer"]: r["zigzag"] for r in json.loads(result.stdout)["runs"]}
    assert all(0 <= z <= 1 for z in zigzag.values())
    assert zigzag["momentum"] < 0.2 < 0.5 < zigzag["gd"]
    assert zigzag["adam"] < 0.2 < 0.5 < zigzag["rmsprop"]
