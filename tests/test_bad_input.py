"""Bad input: one clear line on stderr, exit code 2, no traceback, no output left behind."""

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from gradwise.cli import main


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    return path


def _table(tmp_path, **columns):
    path = tmp_path / "t.csv"
    pd.DataFrame(columns).to_csv(path, index=False)
    return path


GOOD_X = list(np.linspace(0, 1, 12))


CASES = {
    "missing file": (lambda p: ["--data", p / "nope.csv"], "does not exist"),
    "unknown format": (lambda p: ["--data", write(p, "t.xlsx", "a,b\n1,2\n")], "unknown data format '.xlsx'"),
    "empty table": (lambda p: ["--data", write(p, "t.csv", "a,b\n")], "is empty"),
    "empty file": (lambda p: ["--data", write(p, "t.csv", "")], "is empty"),
    "malformed csv": (lambda p: ["--data", write(p, "t.csv", 'a,b\n1,2\n3,"4\n')], "cannot read"),
    "missing target": (lambda p: ["--data", _table(p, x=GOOD_X, y=[0, 1] * 6), "--target", "price"], "target column 'price' not found"),
    "non-numeric": (lambda p: ["--data", _table(p, x=["1", "2", "oops"] * 4, y=[0, 1] * 6)], "column 'x' has 4 non-numeric values (first at row 3: 'oops')"),
    # A gap is imputed by default (tests/test_missing.py); --missing error keeps the old stop.
    "nan feature, --missing error": (lambda p: ["--data", _table(p, x=GOOD_X[:-1] + [np.nan], y=[0, 1] * 6), "--missing", "error"], "column 'x' has 1 missing values (first at row 12)"),
    "inf feature": (lambda p: ["--data", _table(p, x=GOOD_X[:-1] + [np.inf], y=[0, 1] * 6)], "column 'x' has 1 infinite values"),
    "nan target, --missing error": (lambda p: ["--data", _table(p, x=GOOD_X, y=[0.5, np.nan] * 6), "--missing", "error"], "target column 'y' has 6 missing values"),
    # Data defects of issue 9 (H10): each was a traceback or an anonymous message.
    "target named twice": (lambda p: ["--data", _table(p, x=GOOD_X, y=GOOD_X), "--target", "y,y"], "--target names column 'y' more than once"),
    "string second target": (lambda p: ["--data", _table(p, x=GOOD_X, a=GOOD_X, b=["u", "v"] * 6), "--target", "a,b"], "several target columns mean regression, so each must be numeric, but 'b' holds labels"),
    "huge feature values": (lambda p: ["--data", _table(p, x=GOOD_X[:-2] + [1e308, -1e308], y=[0, 1] * 6)], "column 'x' has 2 too large values (first at row 11: 1e+308); float32 holds at most"),
    "bad --missing": (lambda p: ["--missing", "fill"], "'fill' is not one of 'impute', 'drop', 'error'"),
    "bad --max-memory": (lambda p: ["--max-memory", "lots"], "--max-memory must be a positive size such as 2G"),
    "table over --max-memory": (lambda p: ["--data", _table(p, x=GOOD_X * 100, y=[0, 1] * 600), "--max-memory", "1kB"], "the encoded table would need about 14.4 kB (1,200 rows x 1 float32 columns, x3 while training), more than the 1.0 kB of --max-memory; the widest inputs are 'x' (1 columns)"),
    "single class": (lambda p: ["--data", _table(p, x=GOOD_X, y=["a"] * 12)], "single class"),
    "negative lr": (lambda p: ["--lr", "-0.1"], "--lr must be a positive number"),
    "batch size 0": (lambda p: ["--batch-size", "0"], "--batch-size must be 'full' or a positive integer"),
    "split sum": (lambda p: ["--split", "0.7,0.2,0.2"], "--split fractions must sum to 1"),
    "zero epochs": (lambda p: ["--epochs", "0"], "--epochs must be a positive integer"),
    "unknown builtin": (lambda p: ["--data", "builtin:mnist"], "unknown built-in dataset 'mnist'"),
    "bad activation": (lambda p: ["--activation", "swish"], "'swish' is not one of"),
    "not a number": (lambda p: ["--lr", "fast"], "'fast' is not a valid float"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_train_bad_input_is_one_line_exit_2_and_no_output(tmp_path, case):
    make_args, message = CASES[case]
    out = tmp_path / "model"
    result = invoke("train", *make_args(tmp_path), "--epochs" if case != "zero epochs" else "--seed", "1", "--out", out)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradwise: error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.output
    assert not out.exists()


def test_predict_bad_inputs(tmp_path):
    out = tmp_path / "p.csv"
    result = invoke("predict", "--model", tmp_path / "none", "--data", "builtin:iris", "--out", out)
    assert result.exit_code == 2 and "not a gradwise model bundle" in result.stderr and not out.exists()
    model = tmp_path / "m"
    assert invoke("train", "--data", "builtin:iris", "--epochs", "2", "--out", model).exit_code == 0
    frame = pd.DataFrame({"sepal length (cm)": [1.0, "bad"], "sepal width (cm)": [1.0, 2.0]})
    frame.to_csv(tmp_path / "new.csv", index=False)
    result = invoke("predict", "--model", model, "--data", tmp_path / "new.csv", "--out", out)
    assert result.exit_code == 2 and "is missing from the table" in result.stderr and not out.exists()
    frame["petal length (cm)"] = 1.0
    frame["petal width (cm)"] = 1.0
    frame.to_csv(tmp_path / "new.csv", index=False)
    result = invoke("predict", "--model", model, "--data", tmp_path / "new.csv", "--out", out)
    assert result.exit_code == 2 and "non-numeric" in result.stderr and not out.exists()


def test_out_that_is_a_file_is_rejected_before_training(tmp_path):
    target = write(tmp_path, "file.txt", "keep me")
    result = invoke("train", "--out", target)
    assert result.exit_code == 2 and "is a file" in result.stderr
    assert target.read_text() == "keep me"


# -- data defects of issue 9 that now succeed (H10) -----------------------------------------
def test_many_classes_leave_validation_and_test_metrics_filled_and_say_why(tmp_path):
    rng = np.random.default_rng(0)
    # The table had 6,000 rows and 5,000 classes; a fifth of it shows the same defect.
    labels = np.concatenate([np.arange(1000), rng.integers(0, 1000, 200)])  # most classes: one row
    path = _table(tmp_path, x=rng.normal(size=1200), y=[f"c{v}" for v in labels])
    result = invoke("train", "--data", path, "--epochs", "1", "--json")
    assert result.exit_code == 0, result.stderr
    metrics = __import__("json").loads(result.stdout)["metrics"]
    assert metrics["val"] and metrics["test"], metrics
    assert "have too few rows to stratify" in result.stderr and "Traceback" not in result.output


def test_predict_on_gaps_imputes_or_names_the_fix_that_exists(tmp_path):
    path = _table(tmp_path, x=GOOD_X * 2, z=GOOD_X[::-1] * 2, y=[0, 1] * 12)
    holes = _table(tmp_path / "..", x=[np.nan, 0.5], z=[0.1, 0.2])
    out = tmp_path / "p.csv"
    for missing in ("impute", "error"):
        assert invoke("train", "--data", path, "--epochs", "1", "--missing", missing, "--out", tmp_path / missing).exit_code == 0
    result = invoke("predict", "--model", tmp_path / "impute", "--data", holes, "--out", out)
    assert result.exit_code == 0 and "imputed the training median for gaps in columns that had none in training: 'x' (1)" in result.stderr
    out.unlink()
    result = invoke("predict", "--model", tmp_path / "error", "--data", holes, "--out", out)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and not out.exists()
    assert "column 'x' has 1 missing values (first at row 1); this model was trained to refuse gaps; fill them in" in lines[0]
    assert "--drop-invalid" not in lines[0]
