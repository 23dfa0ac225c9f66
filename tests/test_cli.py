"""End to end through the command line, in subprocesses, as a user runs it."""

import shutil

import pandas as pd
import pytest


def test_train_digits_defaults_json_then_predict(cli, tmp_path):
    model = tmp_path / "model"
    result = cli("train", "--json", "--out", model)
    assert result.code == 0, result.stderr
    document = result.json()  # exactly one JSON document on stdout
    assert document["metrics"]["test"]["accuracy"] >= 0.95
    assert document["model_path"] == str(model)
    assert len(document["history"]) == document["epochs_run"] > 0
    assert {"train_loss", "val_loss", "train", "val", "lr", "updates"} <= set(document["history"][0])

    out = tmp_path / "pred.csv"
    predicted = cli("predict", "--model", model, "--data", "builtin:digits", "--out", out, "--json")
    assert predicted.code == 0, predicted.stderr
    summary = predicted.json()
    assert summary["score"]["accuracy"] > 0.95 and summary["n_rows"] == 1797
    frame = pd.read_csv(out)
    assert len(frame) == 1797 and frame.columns[0] == "target"


def test_diabetes_reports_rmse_in_original_units_and_predictions_too(cli, tmp_path):
    model = tmp_path / "m"
    result = cli("train", "--data", "builtin:diabetes", "--epochs", "40", "--lr", "3e-3", "--json", "--out", model)
    assert result.code == 0, result.stderr
    rmse = result.json()["metrics"]["test"]["rmse"]
    assert 35 < rmse < 90  # target spans 25..346; a normalized-units RMSE would be < 1
    predicted = cli("predict", "--model", model, "--data", "builtin:diabetes", "--json")
    values = [row["target"] for row in predicted.json()["predictions"]]
    assert 25 < sum(values) / len(values) < 346


def test_human_output_names_splits_and_where_the_model_went(cli, tmp_path):
    result = cli("train", "--data", "builtin:iris", "--epochs", "3", "--out", tmp_path / "m")
    assert result.code == 0, result.stderr
    assert "test" in result.stdout and "accuracy" in result.stdout and "gradwise predict --model" in result.stdout


def test_train_warns_when_the_model_is_no_better_than_a_constant(cli, tmp_path):
    """A target of pure noise on 60 rows: the run succeeds, and says the model learned nothing."""
    import numpy as np

    rng = np.random.default_rng(0)
    pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60), "y": 100 + rng.normal(size=60)}).to_csv(tmp_path / "noise.csv", index=False)
    result = cli("train", "--data", tmp_path / "noise.csv", "--target", "y", "--epochs", 30, "--lr", 0.05, "--json")
    assert result.code == 0, result.stderr
    document = result.json()
    assert document["metrics"]["test"]["rmse"] >= document["constant_baseline"]["test"]["rmse"]
    assert len(document["warnings"]) == 1 and "no better than always predicting the training rows' mean" in document["warnings"][0]
    shown = cli("train", "--data", tmp_path / "noise.csv", "--target", "y", "--epochs", 30, "--lr", 0.05)
    assert "warning: the model is no better than always predicting" in " ".join(shown.stdout.split())
    assert cli("train", "--data", "builtin:iris", "--epochs", 20, "--json").json()["warnings"] == []


def test_console_script_and_help(cli):
    gradwise = shutil.which("gradwise")
    assert gradwise is not None
    result = cli("--help")
    assert result.code == 0
    for name in ("train", "predict", "tune", "diagnose", "compare", "chain", "worker"):
        assert name in result.stdout
    train_help = cli("train", "--help").stdout
    assert "--batch-size" in train_help and "--weight-column" in train_help
    assert "--weight-column" in cli("tune", "--help").stdout


def test_categorical_features_train_and_predict_from_csv(cli, tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    n = 300
    color = rng.choice(["red", "green", "blue"], n)
    size = rng.normal(size=n)
    label = np.where((color == "red") | (size > 1), "yes", "no")
    path = tmp_path / "t.csv"
    pd.DataFrame({"color": color, "size": size, "label": label}).to_csv(path, index=False)
    result = cli("train", "--data", path, "--json", "--out", tmp_path / "m", "--epochs", "60", "--lr", "1e-2")
    assert result.code == 0, result.stderr
    assert result.json()["metrics"]["test"]["accuracy"] > 0.9
    predicted = cli("predict", "--model", tmp_path / "m", "--data", path, "--json")
    assert predicted.json()["score"]["accuracy"] > 0.9


def test_shares_print_at_fixed_precision_and_other_metrics_at_four_significant_digits():
    from gradwise.reporting.tables import format_metric

    assert [format_metric("accuracy", 1.0), format_metric("r2", 0.95), format_metric("rmse", 54.20123), format_metric("loss", 0.016943)] == ["1.0000", "0.9500", "54.2", "0.01694"]
    assert format_metric("accuracy", None) == "-"


def test_help_and_import_do_not_wait_for_torch_yet_every_public_name_resolves():
    import subprocess
    import sys

    # `gradwise --help` and a bare `import gradwise` leave torch (seconds to import) for the
    # code that needs it; each public name still resolves, to the object its module defines.
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['gradwise', '--help']\n"
        "try:\n    runpy.run_module('gradwise', run_name='__main__')\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "assert 'torch' not in sys.modules and 'optuna' not in sys.modules, 'imported too soon'\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0 and "Commands" in result.stdout, result.stderr
    import gradwise

    assert {"fit", "tune", "TrainConfig", "GradientMonitor", "Adam"} <= set(gradwise.__all__) <= set(dir(gradwise))
    for name in gradwise.__all__:
        assert getattr(gradwise, name) is not None
    from gradwise.tuning import TuneSpec

    assert gradwise.TuneSpec is TuneSpec and gradwise.report.__name__ == "gradwise.report"


@pytest.mark.parametrize("command", ["train", "diagnose", "compare", "tune", "predict", "worker", "report", "chain"])
def test_a_commands_help_does_not_wait_for_torch_pandas_or_optuna(command):
    import subprocess
    import sys

    probe = (
        "import sys, runpy\n"
        f"sys.argv = ['gradwise', {command!r}, '--help']\n"
        "try:\n    runpy.run_module('gradwise', run_name='__main__')\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "heavy = sorted({'torch', 'pandas', 'optuna'} & set(sys.modules))\n"
        "assert not heavy, f'imported for --help: {heavy}'\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0 and "Usage: gradwise " + command in result.stdout, result.stderr


def test_the_lazy_packages_resolve_every_public_name_to_what_its_module_defines():
    import types

    import importlib

    from gradwise import data, diagnosis, optim
    from gradwise.diagnosis.chain import ACTIVATIONS, SCENARIOS
    from gradwise.diagnosis.chain_names import ACTIVATION_NAMES

    adam_module = importlib.import_module("gradwise.optim.adam")  # named like its update: must not shadow it
    from gradwise.data.splitting import Splits
    from gradwise.optim.gd import gd

    assert tuple(ACTIVATIONS) == ACTIVATION_NAMES and SCENARIOS == ('vanishing', 'exploding')  # chain --help lists the table's names
    for package in (data, diagnosis, optim):
        assert set(package.__all__) <= set(dir(package))
        for name in package.__all__:
            assert not isinstance(getattr(package, name), types.ModuleType), name
    assert optim.adam is adam_module.adam and optim.gd is gd and data.Splits is Splits


def _weighted_csv(path, zero_rows: int = 0, zero_weight: float = 0.0):
    """80 rows of a learnable label with weights in [0.5, 2); then ``zero_rows`` rows whose
    label is flipped, of weight ``zero_weight``."""
    import numpy as np

    def rows(n, rng):
        x1, x2 = rng.normal(size=n), rng.normal(size=n)
        return pd.DataFrame({"x1": x1, "x2": x2, "w": rng.uniform(0.5, 2.0, size=n), "label": np.where(x1 - x2 > 0, "yes", "no")})

    frame = rows(80, np.random.default_rng(0))
    if zero_rows:
        flipped = rows(zero_rows, np.random.default_rng(1))
        flipped["label"] = np.where(flipped["label"] == "yes", "no", "yes")
        frame = pd.concat([frame, flipped.assign(w=zero_weight)], ignore_index=True)
    frame.to_csv(path, index=False)
    return path


def _train_weighted(cli, data, *extra):
    result = cli("train", "--data", data, "--target", "label", "--weight-column", "w", "--batch-size", "full", "--epochs", 25,
                 "--lr", 0.05, "--patience", 0, "--no-report", "--json", *extra)
    assert result.code == 0, result.stderr
    return result.json()


def test_train_weight_0_rows_with_flipped_labels_change_nothing(cli, tmp_path):
    """Rows of weight 0 train as if they were not in the table (same split of the others,
    same encoders and normalizers, no loss): the run equals one on the table without them;
    given weight 1 instead, the same flipped rows change the run."""
    import numpy as np

    without = _train_weighted(cli, _weighted_csv(tmp_path / "without.csv"))
    zeros = _train_weighted(cli, _weighted_csv(tmp_path / "zeros.csv", zero_rows=30))
    ones = _train_weighted(cli, _weighted_csv(tmp_path / "ones.csv", zero_rows=30, zero_weight=1.0))
    def losses(document, key):
        return np.array([epoch[key] for epoch in document["history"]])

    for key in ("train_loss", "val_loss"):
        np.testing.assert_allclose(losses(zeros, key), losses(without, key), rtol=1e-4)
    for split in ("train", "val", "test"):
        assert zeros["metrics"][split] == pytest.approx(without["metrics"][split], rel=1e-4)
    assert not np.allclose(losses(ones, "train_loss"), losses(without, "train_loss"), rtol=1e-2)


def test_train_reports_the_weighted_test_score(cli, tmp_path):
    """The test accuracy and the constant baseline are weighted by the column, as the loss is."""
    import numpy as np

    from gradwise import load_table, split_table
    from gradwise.models.bundle import load_bundle

    data = _weighted_csv(tmp_path / "t.csv", zero_rows=30, zero_weight=0.25)  # flipped rows: the model errs on some test rows
    document = _train_weighted(cli, data, "--out", tmp_path / "model")
    splits = split_table(load_table(data, target="label", weight="w"), seed=0)
    predicted = load_bundle(tmp_path / "model")[0].predict_array(splits.test.X)
    hits = predicted == splits.test.y
    assert document["metrics"]["test"]["accuracy"] == pytest.approx(np.average(hits, weights=splits.test.w), rel=1e-5)
    assert not np.isclose(np.average(hits, weights=splits.test.w), hits.mean())  # the weights move this score
    majority = np.bincount(splits.train.y, weights=splits.train.w).argmax()
    assert document["constant_baseline"]["test"]["accuracy"] == pytest.approx(np.average(splits.test.y == majority, weights=splits.test.w))


@pytest.mark.parametrize("command,column,bad_weight,message", [
    ("tune", "W", None, "weight column 'W' not found; did you mean 'w'?"),
    ("train", "w", -2.0, "weight column 'w' has 1 negative values (first at row 3: -2.0); row weights must be finite numbers >= 0"),
])
def test_a_bad_weight_column_is_one_line_and_exit_2(cli, tmp_path, command, column, bad_weight, message):
    frame = pd.read_csv(_weighted_csv(tmp_path / "t.csv"))
    if bad_weight is not None:
        frame.loc[2, "w"] = bad_weight
    frame.to_csv(tmp_path / "t.csv", index=False)
    result = cli(command, "--data", tmp_path / "t.csv", "--target", "label", "--weight-column", column, "--out", tmp_path / "out")
    assert result.code == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"gradwise: error: {message}")
