"""Bad input: one clear line on stderr, exit code 2, no traceback, nothing written or changed.

Table-driven: each command has a table of cases, ``name -> (args(tmp_path), message)``.
``args`` builds the command's arguments and any input files inside ``tmp_path``; the test
then snapshots every file under ``tmp_path`` (paths and bytes), runs the command in-process,
and asserts exit code 2, exactly one ``gradwise: error:`` line holding ``message``, no
traceback, and a ``tmp_path`` byte-for-byte as it was. To add a case, add a row.
"""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from gradwise.cli import main


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def snapshot(root):
    """Every file and folder under ``root``: relative path -> bytes (None for a folder)."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


def assert_refused(root, args, message):
    """The contract: exit 2, one line naming the problem, no traceback, ``root`` untouched."""
    before = snapshot(root)
    result = invoke(*args)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert len(lines) == 1 and lines[0].startswith("gradwise: error: "), result.stderr
    assert message in lines[0], lines[0]
    assert "Traceback" not in result.output
    after = snapshot(root)
    assert after.keys() == before.keys(), sorted(set(after) ^ set(before))
    assert after == before, [k for k in after if after[k] != before[k]]
    return lines[0]


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
    # Outputs and diverged runs of issue 9 (H9a): refused before training, or with nothing saved.
    "out is a file": (lambda p: ["--out", write(p, "file.txt", "keep me")], "exists and is a file"),
    "out under a file": (lambda p: ["--out", write(p, "file.txt", "keep me") / "model"], "file.txt' is a file, not a directory"),
    "out holds a bundle": (lambda p: ["--out", _fake_run(p, "gradwise.json", "model.safetensors")], "already holds a run (gradwise.json, model.safetensors); pass --overwrite"),
    "out holds a tuning run": (lambda p: ["--out", _fake_run(p, "study.journal", "trials.csv")], "already holds a run (study.journal, trials.csv)"),
    "diverged run": (lambda p: ["--data", "builtin:iris", "--optimizer", "gd", "--lr", "1e6", "--init", "normal", "--epochs", "3"], "training diverged (non-finite loss (NaN or inf) in epoch 1): no model was saved to"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_train_bad_input_is_one_line_exit_2_and_no_output(tmp_path, case):
    make_args, message = CASES[case]
    # The case's own options come last, so they win over these defaults (click keeps the last).
    assert_refused(tmp_path, ["train", "--epochs", "1", "--out", tmp_path / "model", *make_args(tmp_path)], message)


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


# -- outputs, leftovers and bundles (issue 9, H9a) ------------------------------------------
def _fake_run(p, *names):
    """A directory holding the named files of an earlier run (only their names matter)."""
    run = p / "run"
    run.mkdir(exist_ok=True)
    for name in names:
        write(run, name, "earlier run")
    return run


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """One small trained iris bundle; each case works on its own copy."""
    out = tmp_path_factory.mktemp("bundle") / "m"
    result = invoke("train", "--data", "builtin:iris", "--epochs", "1", "--hidden", "8", "--out", out)
    assert result.exit_code == 0, result.output
    return out


def _copy(p, source, edit=None, weights=None, text=None):
    """A copy of ``source`` in ``p/m``: its gradwise.json passed through ``edit`` (or replaced
    by ``text``), its weights through ``weights`` (with the digest gradwise.json keeps of
    them brought up to date, so the load goes on to the check the case is about)."""
    from safetensors.torch import load_file, save_file

    from gradwise.models.bundle import DIGEST, file_digest

    target = p / "m"
    shutil.copytree(source, target)
    if text is not None:
        (target / "gradwise.json").write_text(text)
    if edit is not None:
        meta = json.loads((target / "gradwise.json").read_text())
        changed = edit(meta)
        (target / "gradwise.json").write_text(json.dumps(meta if changed is None else changed))
    if weights is not None:
        tensors = load_file(target / "model.safetensors")
        weights(tensors)
        save_file(tensors, target / "model.safetensors")
        meta = json.loads((target / "gradwise.json").read_text())
        (target / "gradwise.json").write_text(json.dumps({**meta, DIGEST: file_digest(target / "model.safetensors")}))
    return target


def _iris_csv(p, name="iris.csv"):
    from sklearn.datasets import load_iris

    path = p / name
    load_iris(as_frame=True).frame.rename(columns={"target": "target_code"}).to_csv(path, index=False)
    return path


def _nan_weights(tensors):
    name = next(k for k in tensors if k.startswith("net.") and k.endswith("weight"))
    tensors[name][0, 0] = float("nan")


def _predict(edit=None, weights=None, text=None):
    return lambda p, m: ["--model", _copy(p, m, edit, weights, text), "--data", "builtin:iris", "--out", p / "p.csv"]


# name -> (args(tmp_path, bundle), message)
PREDICT_CASES = {
    "no bundle": (lambda p, m: ["--model", p / "none", "--data", "builtin:iris", "--out", p / "p.csv"], "is not a gradwise model bundle"),
    "out is the input table": (lambda p, m: ["--model", m, "--data", (t := _iris_csv(p)), "--out", t], "is the --data table itself"),
    "out is the input table, --overwrite": (lambda p, m: ["--model", m, "--data", (t := _iris_csv(p)), "--out", t, "--overwrite"], "is the --data table itself"),
    "out is the input through another path": (lambda p, m: ["--model", m, "--data", _iris_csv(p), "--out", p / "." / "iris.csv", "--overwrite"], "is the --data table itself"),
    "out exists": (lambda p, m: ["--model", m, "--data", "builtin:iris", "--out", write(p, "p.csv", "mine\n")], "already exists; pass --overwrite"),
    "out is a directory": (lambda p, m: ["--model", m, "--data", "builtin:iris", "--out", m], "is a directory"),
    "out under a file": (lambda p, m: ["--model", m, "--data", "builtin:iris", "--out", write(p, "f.txt", "x") / "p.csv"], "f.txt' is a file, not a directory"),
    "out not csv": (lambda p, m: ["--model", m, "--data", "builtin:iris", "--out", p / "p.txt"], "--out must be a .csv file"),
    "missing column": (lambda p, m: ["--model", m, "--data", _table(p, a=GOOD_X), "--out", p / "p.csv"], "is missing from the table"),
    # Bundles edited into an inconsistent state: refused with one line, never a traceback.
    "bundle: bad json": (_predict(text="{oops"), "is damaged: Expecting property name"),
    "bundle: not an object": (_predict(lambda meta: [1]), "gradwise.json holds a list, not an object"),
    "bundle: missing key": (_predict(lambda meta: meta.pop("model") and None), "field 'model': field required"),
    "bundle: wrong type": (_predict(lambda meta: meta["model"].update(n_features="four")), "field 'model.n_features': input should be a valid integer (got 'four')"),
    "bundle: config not a table": (_predict(lambda meta: meta.update(config=[1])), "field 'config': input should be a valid dictionary"),
    "bundle: members not a number": (_predict(lambda meta: meta["model"].update(members="x")), "field 'model.members'"),
    "bundle: outputs vs classes": (_predict(lambda meta: meta["model"]["target"].update(classes=["a", "b"])), "model.n_outputs is 3 but the target has 2 classes"),
    "bundle: no target names": (_predict(lambda meta: meta["model"]["target"].update(names=[])), "field 'model.target.names'"),
    "bundle: task mismatch": (_predict(lambda meta: meta["model"]["target"].update(task="regression")), "model.task is 'classification' but model.target.task is 'regression'"),
    "bundle: repeated column": (_predict(lambda meta: meta["model"]["encoder"]["columns"].append(meta["model"]["encoder"]["columns"][0])), "model.encoder.columns must be a list of distinct column names"),
    "bundle: wrong shapes": (_predict(lambda meta: meta["config"].update(hidden=9)), "is damaged: Error(s) in loading state_dict"),
    "bundle: huge width": (_predict(lambda meta: meta["model"].update(n_features=9_000_000)), "describes a network of"),
    "bundle: bad config value": (_predict(lambda meta: meta["config"].update(activation="swish")), "is damaged: --activation must be one of"),
    "bundle: diverged weights": (_predict(weights=_nan_weights), "is diverged (its weights hold NaN or inf values"),
}


@pytest.mark.parametrize("case", sorted(PREDICT_CASES))
def test_predict_bad_input_is_one_line_exit_2_and_changes_nothing(tmp_path, bundle, case):
    make_args, message = PREDICT_CASES[case]
    assert_refused(tmp_path, ["predict", *make_args(tmp_path, bundle)], message)


def test_predict_into_its_own_input_leaves_the_table_byte_for_byte(tmp_path, bundle):
    table = _iris_csv(tmp_path)
    before = table.read_bytes()
    for extra in ([], ["--overwrite"]):
        assert invoke("predict", "--model", bundle, "--data", table, "--out", table, *extra).exit_code == 2
    assert table.read_bytes() == before


def test_predict_overwrite_replaces_an_existing_file(tmp_path, bundle):
    out = write(tmp_path, "p.csv", "old\n")
    assert invoke("predict", "--model", bundle, "--data", "builtin:iris", "--out", out, "--overwrite").exit_code == 0
    assert out.read_text().startswith("target")


def _used_tune_out(p, data="builtin:iris"):
    """--out of an earlier tune: its journal (study gradwise-<data>), trials.csv and model/."""
    from gradwise.tuning import TuneSpec, open_storage
    from gradwise.tuning.runner import create_study

    out = p / "tuned"
    spec = TuneSpec(data=data, n_trials=2, timeout=None)
    create_study(spec, open_storage(None, out), "gradwise-" + data.split(":")[1], "classification")
    write(out, "trials.csv", "number,value\n0,0.9\n")
    (out / "model").mkdir()
    write(out / "model", "gradwise.json", "{}")
    return out


TUNE = ["tune", "--data", "builtin:iris", "--trials", "2", "--epochs", "2", "--cv", "0", "--ensemble", "1"]

# name -> (args(tmp_path), message); TUNE's options come first, so a case's own win.
TUNE_CASES = {
    "bad activation": (lambda p: ["--out", p / "out", "--activation", "swish"], "--activation must be one of"),
    "bad fixed value in the space file": (lambda p: ["--out", p / "out", "--space", write(p, "s.toml", '[fixed]\nactivation = "swish"\n')], "swish"),
    "more folds than rows": (lambda p: ["--out", p / "out", "--data", _table(p, x=GOOD_X, y=[0, 1] * 6), "--cv", "15"], "more folds than the"),
    "resume with nothing to resume": (lambda p: ["--out", p / "out", "--resume"], "--resume: there is no study 'gradwise-iris'"),
    "out under a file": (lambda p: ["--out", write(p, "f.txt", "x") / "out"], "f.txt' is a file, not a directory"),
    "out is a file": (lambda p: ["--out", write(p, "f.txt", "x")], "exists and is a file"),
    "other data into a used out": (lambda p: ["--out", _used_tune_out(p), "--data", "builtin:wine"], "already holds another run (study.journal, trials.csv, model); pass --overwrite"),
    "same data into a used out": (lambda p: ["--out", _used_tune_out(p)], "study 'gradwise-iris' already exists in"),
    "out holds a train bundle": (lambda p: ["--out", _fake_run(p, "gradwise.json", "model.safetensors")], "already holds another run (gradwise.json, model.safetensors)"),
    "storage is not a journal": (lambda p: ["--out", p / "out", "--storage", write(p, "j.json", '{"a": 1}\n')], "is not an Optuna study journal"),
    "storage is a directory": (lambda p: ["--out", p / "out", "--storage", p], "is a directory, not a file"),
    "out holds the user's report.html": (lambda p: ["--out", _foreign_report(p)], "report.html' exists and was not written by gradwise"),
    "out holds the user's report.html, --overwrite": (lambda p: ["--out", _foreign_report(_used_tune_out(p)), "--overwrite"], "report.html' exists and was not written by gradwise"),
    "out holds a run a killed --overwrite set aside": (lambda p: ["--out", _left_aside(_used_tune_out(p)), "--overwrite"], "set aside; move them back into"),
    "resume beside a run a killed --overwrite set aside": (lambda p: ["--out", _left_aside(_used_tune_out(p)), "--resume"], "set aside; move them back into"),
}


def _foreign_report(p):
    write(p, "report.html", "<html>my own page</html>")
    return p


def _left_aside(out):
    """What a `tune --overwrite` killed with SIGKILL leaves: the earlier run, set aside."""
    (out / ".gradwise-replaced-1").mkdir()
    write(out / ".gradwise-replaced-1", "trials.csv", "number,value\n0,0.8\n")
    return out


@pytest.mark.parametrize("case", sorted(TUNE_CASES))
def test_tune_bad_input_is_one_line_exit_2_and_leaves_nothing(tmp_path, case):
    make_args, message = TUNE_CASES[case]
    assert_refused(tmp_path, [*TUNE, *make_args(tmp_path)], message)


def test_run_files_are_the_names_train_and_tune_write():
    from gradwise.files import RUN_FILES
    from gradwise.models.bundle import METADATA, WEIGHTS
    from gradwise.tuning.result import MODEL_DIR, TRIALS_CSV
    from gradwise.tuning.storage import JOURNAL_NAME

    assert set(RUN_FILES) == {METADATA, WEIGHTS, JOURNAL_NAME, TRIALS_CSV, MODEL_DIR}


def test_report_files_are_the_names_of_a_runs_report():
    from gradwise.files import REPORT_FILES
    from gradwise.reporting.document import DOCUMENT_NAME, REPORT_NAME

    assert set(REPORT_FILES) == {REPORT_NAME, DOCUMENT_NAME}


WORKER_CASES = {
    "storage missing": (lambda p: ["--storage", p / "missing.journal", "--study", "s"], "study journal"),
    "storage not a journal": (lambda p: ["--storage", write(p, "j.json", '{"a": 1}\n'), "--study", "s"], "is not an Optuna study journal"),
    "storage is a directory": (lambda p: ["--storage", p, "--study", "s"], "is a directory, not a file"),
    "no such study": (lambda p: ["--storage", _used_tune_out(p) / "study.journal", "--study", "other"], "--study 'other' does not exist in this storage"),
    "no storage": (lambda p: ["--study", "s"], "Missing option '--storage'"),
}


@pytest.mark.parametrize("case", sorted(WORKER_CASES))
def test_worker_bad_input_is_one_line_exit_2_and_creates_nothing(tmp_path, monkeypatch, case):
    monkeypatch.delenv("GRADWISE_STORAGE", raising=False)
    make_args, message = WORKER_CASES[case]
    assert_refused(tmp_path, ["worker", *make_args(tmp_path)], message)


OTHER_CASES = {
    "compare: bad optimizer": (lambda p: ["compare", "--optimizers", "foo"], "--optimizers item 'foo'"),
    "compare: bad batch size": (lambda p: ["compare", "--batch-sizes", "0"], "--batch-size must be 'full' or a positive integer"),
    "compare: out under a file": (lambda p: ["compare", "--epochs", "1", "--out", write(p, "f.txt", "x") / "out"], "f.txt' is a file, not a directory"),
    "diagnose: missing data": (lambda p: ["diagnose", "--data", p / "nope.csv"], "does not exist"),
    "diagnose: bad lr": (lambda p: ["diagnose", "--lr", "-1"], "--lr must be a positive number"),
    "diagnose: out is a file": (lambda p: ["diagnose", "--out", write(p, "f.txt", "x")], "exists and is a file"),
    "chain: no layers": (lambda p: ["chain", "--layers", "0"], "'--layers'"),
    "chain: bad weights": (lambda p: ["chain", "--weights", "a,b"], "--weights must be comma-separated numbers"),
    "chain: bad activation": (lambda p: ["chain", "--activation", "foo"], "'foo' is not one of"),
}


@pytest.mark.parametrize("case", sorted(OTHER_CASES))
def test_other_commands_bad_input_is_one_line_exit_2(tmp_path, case):
    make_args, message = OTHER_CASES[case]
    assert_refused(tmp_path, make_args(tmp_path), message)


def test_train_overwrite_replaces_an_earlier_run(tmp_path):
    run = _fake_run(tmp_path, "gradwise.json", "model.safetensors")
    result = invoke("train", "--data", "builtin:iris", "--epochs", "1", "--hidden", "8", "--out", run, "--overwrite")
    assert result.exit_code == 0, result.output
    assert json.loads((run / "gradwise.json").read_text())["format"] == "gradwise-bundle/1"


def test_train_overwrite_no_report_removes_the_earlier_report_but_not_a_users(tmp_path):
    run = tmp_path / "run"
    assert invoke("train", "--data", "builtin:iris", "--epochs", "1", "--hidden", "8", "--out", run).exit_code == 0
    assert (run / "report.html").exists() and (run / "report.json").exists()
    result = invoke("train", "--data", "builtin:iris", "--epochs", "1", "--hidden", "8", "--out", run, "--overwrite", "--no-report")
    assert result.exit_code == 0, result.output
    assert not (run / "report.html").exists() and not (run / "report.json").exists()
    (run / "report.html").write_text("<p>my own notes</p>")
    assert invoke("train", "--data", "builtin:iris", "--epochs", "1", "--hidden", "8", "--out", run, "--overwrite", "--no-report").exit_code == 0
    assert (run / "report.html").read_text() == "<p>my own notes</p>"


def test_tune_overwrite_sets_aside_the_earlier_runs_files_and_nothing_else(tmp_path):
    from gradwise.tuning.session import _Aside, guard_out_dir

    out = _used_tune_out(tmp_path)
    notes = write(out, "notes.txt", "mine")
    aside = _Aside.move(out, guard_out_dir(out, None, "gradwise-wine", resume=False, overwrite=True))
    assert sorted(p.name for p in out.iterdir()) == [aside.folder.name, "notes.txt"] and notes.read_text() == "mine"


def test_tune_whose_trials_all_fail_before_one_finishes_leaves_no_study(tmp_path):
    from gradwise.errors import GradwiseError
    from gradwise.tuning import TuneSpec, tune
    from gradwise.tuning.space_file import apply_overrides

    # Batch norm cannot train on batches of one: every trial fails when it starts training.
    space = apply_overrides({"fixed": {"batch_norm": True, "batch_size": 1, "epochs": 1}})
    spec = TuneSpec(data="builtin:iris", space=space.to_dict(), n_trials=1, timeout=None, cv=0, ensemble=1, monitor=False)
    with pytest.raises(GradwiseError, match="no trial completed") as refused:
        tune(spec, tmp_path / "out", retrain=False)
    assert "the first failed trial said:" in str(refused.value) and "\n" not in str(refused.value)
    assert snapshot(tmp_path) == {}


def test_tune_whose_every_trial_fails_stops_early_instead_of_failing_until_its_budget_ends(tmp_path):
    import re

    from gradwise.errors import GradwiseError
    from gradwise.tuning import TuneSpec, tune
    from gradwise.tuning.runner import FAILS_WITHOUT_RESULT
    from gradwise.tuning.space_file import apply_overrides

    # The same broken space as above, under a budget of 1,000 trials: it would be allowed
    # 3,000 failures before, and stops after its first FAILS_WITHOUT_RESULT now (plus what
    # the last population asked for at once).
    space = apply_overrides({"fixed": {"batch_norm": True, "batch_size": 1, "epochs": 1}})
    spec = TuneSpec(data="builtin:iris", space=space.to_dict(), n_trials=1000, timeout=None, cv=0, ensemble=1, monitor=False, workers=1)
    with pytest.raises(GradwiseError, match="no trial completed") as refused:
        tune(spec, tmp_path / "out", retrain=False)
    failed = int(re.search(r"(\d+) failed", str(refused.value)).group(1))
    assert FAILS_WITHOUT_RESULT <= failed <= FAILS_WITHOUT_RESULT + 8
    assert "the search stopped there" in str(refused.value) and "\n" not in str(refused.value)
    assert snapshot(tmp_path) == {}
