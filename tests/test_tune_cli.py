"""`gradwise tune` end to end, in subprocesses: result files, --resume after SIGINT and SIGKILL."""

from __future__ import annotations

import dataclasses

import csv
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from gradwise.tuning import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

# Small trials keep these tests fast; the space file is also how users fix values.
SMALL = '[fixed]\nepochs = {epochs}\n[params.hidden]\nlow = 4\nhigh = 16\n'


def _space(tmp_path: Path, epochs: int) -> Path:
    path = tmp_path / f"space{epochs}.toml"
    path.write_text(SMALL.format(epochs=epochs))
    return path


def _study(out: Path) -> optuna.Study:
    storage = open_storage(None, out)
    return optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)


def _tune(*args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "gradwise", "tune", "--data", "builtin:iris", *map(str, args)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def test_tune_prints_one_json_document_and_writes_model_trials_and_importance(tmp_path, cli):
    out = tmp_path / "run"
    result = cli("tune", "--data", "builtin:iris", "--trials", 6, "--space", _space(tmp_path, 4), "--out", out, "--json")
    assert result.code == 0, result.stderr
    document = result.json()
    assert document["trials"]["complete"] + document["trials"]["pruned"] == 6
    assert document["metric"] == "accuracy" and document["direction"] == "maximize"
    assert set(document["best"]["config"]) >= {"lr", "hidden", "batch_size", "layers"}
    assert 0 <= document["final"]["test"]["accuracy"] <= 1
    assert document["final"]["chosen"].startswith(("best trial", "untuned defaults"))
    # iris is a small table: the final model is the mean of 5 networks, each tested too.
    assert document["final"]["members"] == 5 and len(document["final"]["member_test"]) == 5
    # iris' 24 test rows: a constant scores about a third; a tuned model that beats it has no warning
    assert document["final"]["constant_baseline"]["accuracy"] < 0.5
    assert ("warning" in document["final"]) == (document["final"]["test"]["accuracy"] <= document["final"]["constant_baseline"]["accuracy"])
    assert document["untuned_val"] is not None  # trial 0 is the defaults, the baseline to beat
    importance = {row["param"]: row for row in document["importance"]}
    assert importance["lr"]["document"] == "high" and importance["hidden"]["document"] == "medium"
    rows = list(csv.DictReader(open(document["files"]["trials_csv"])))
    assert len(rows) == 6 and {"number", "value", "state", "params_lr"} <= set(rows[0])
    predicted = cli("predict", "--model", document["files"]["model"], "--data", "builtin:iris", "--json")
    assert predicted.code == 0, predicted.stderr
    # Running again into the same directory without --resume refuses to mix studies.
    again = cli("tune", "--data", "builtin:iris", "--trials", 1, "--out", out)
    assert again.code == 2
    assert again.stderr.strip().count("\n") == 0 and "--resume" in again.stderr


def _wait_for_finished(out: Path, at_least: int, process: subprocess.Popen, mid_trial: bool) -> list[int]:
    """Numbers of finished trials once ``at_least`` are done (and, if asked, one is mid-epoch)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-2000:]
        if (out / "study.journal").exists():
            try:
                trials = _study(out).get_trials(deepcopy=False)
            except (IndexError, KeyError):
                trials = []  # the study is being created
            done = [t.number for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
            running = [t for t in trials if t.state == TrialState.RUNNING and t.intermediate_values]
            if len(done) >= at_least and (running or not mid_trial):
                return done
        time.sleep(0.02)
    raise AssertionError("the tuning run made no progress")


def _values(study: optuna.Study, numbers: list[int]) -> dict[int, tuple]:
    trials = study.get_trials(deepcopy=False)
    return {n: (trials[n].state, trials[n].value, trials[n].params) for n in numbers}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_interrupted_tune_resumes_the_same_study_keeping_every_finished_trial(tmp_path, sig, cli):
    # Trials long enough (80 epochs) that one is surely mid-epoch when the signal comes. One
    # trial at a time, so exactly one is cut (tests/test_population_tune.py: a population cut).
    out, space = tmp_path / "run", _space(tmp_path, 80)
    process = _tune("--trials", 5, "--space", space, "--out", out, "--pruner", "none", "--cv", 0, "--population", "off", "--json")
    finished = _wait_for_finished(out, 2, process, mid_trial=True)
    before = _values(_study(out), finished)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert process.returncode == 130 and "--resume" in stderr
        with open(out / "trials.csv", newline="") as listed:  # what was found so far, before any resume
            rows = {int(row["number"]): row["state"] for row in csv.DictReader(listed)}
        assert all(rows[n] == before[n][0].name for n in finished)
    else:
        assert not (out / "trials.csv").exists()
        assert process.returncode == -signal.SIGKILL

    resumed = cli("tune", "--data", "builtin:iris", "--out", out, "--resume", "--json")
    assert resumed.code == 0, resumed.stderr
    study = _study(out)
    counts = resumed.json()["trials"]
    assert counts["complete"] + counts["pruned"] == 5 and counts["running"] == 0 and counts["waiting"] == 0
    # Every trial finished before the interruption is still there, unchanged.
    after = _values(study, finished)
    assert after == before
    # The trial cut off mid-epoch was failed and run again with the same parameters.
    cut = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(cut) == 1
    retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == cut[0].number]
    assert len(retry) == 1 and retry[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retry[0].params == cut[0].params


def test_interrupted_tune_reports_the_trials_so_far_marked_interrupted_with_a_resume_command_that_works(tmp_path, cli):
    out = tmp_path / "run"
    process = _tune("--trials", 50, "--space", _space(tmp_path, 10), "--out", out, "--cv", 0, "--population", "off", "--workers", 1, "--ensemble", 1, "--json")
    _wait_for_finished(out, 2, process, mid_trial=False)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    resume = stderr.rsplit("Continue with: ", 1)[1].strip()
    assert f"report: {out / 'report.html'}" in stderr and "--data builtin:iris" in resume  # the study's name comes from --data
    document = json.loads((out / "report.json").read_text())
    assert document["title"].endswith("(interrupted)") and document["tune"]["interrupted"] == {"resume": resume}
    with open(out / "trials.csv", newline="") as listed:
        finished = sum(row["state"] in ("COMPLETE", "PRUNED") for row in csv.DictReader(listed))
    counts = document["tune"]["result"]["trials"]
    assert counts["complete"] + counts["pruned"] == finished >= 2 and document["tune"]["result"]["final"] == {}
    page = (out / "report.html").read_text()
    assert "Interrupted: the search so far" in page and f"Continue it with: {resume}" in page and 'id="figure-0"' in page
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no temporary file left
    # The command the report gives continues the study; its end replaces the interim report.
    resumed = cli(*shlex.split(resume)[1:], "--trials", finished + 1, "--json")
    assert resumed.code == 0, resumed.stderr
    document = json.loads((out / "report.json").read_text())
    assert "interrupted" not in document["tune"] and not document["title"].endswith("(interrupted)")
    assert "Interrupted: the search so far" not in (out / "report.html").read_text()


def test_tune_interrupted_before_any_trial_finished_writes_no_report(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from gradwise.cli import main
    from gradwise.tuning import session

    def interrupted(*args, **kwargs):  # Ctrl-C before the first trial ends
        raise KeyboardInterrupt

    monkeypatch.setattr(session, "run_worker", interrupted)
    out = tmp_path / "run"
    args = ["tune", "--data", "builtin:iris", "--trials", "2", "--out", str(out), "--cv", "0", "--population", "off", "--workers", "1"]
    result = CliRunner().invoke(main, args, env={"GRADWISE_STORAGE": None}, catch_exceptions=False)
    assert result.exit_code == 130 and "Continue with: gradwise tune" in result.stderr and "report:" not in result.stderr
    names = {p.name for p in out.iterdir()}
    assert "study.journal" in names and not names & {"report.html", "report.json", "trials.csv"}, names  # the study stays for --resume


def test_workers_option_runs_local_worker_processes_on_the_journal(tmp_path, cli):
    out = tmp_path / "run"
    result = cli("tune", "--data", "builtin:iris", "--trials", 4, "--workers", 2, "--space", _space(tmp_path, 3), "--out", out, "--cv", 0, "--json")
    assert result.code == 0, result.stderr
    study = _study(out)
    assert len(study.trials) == 4
    # Two worker processes ran (one may have found the budget taken before it started).
    assert sorted(p.name for p in (out / "logs").iterdir()) == ["worker-0.log", "worker-1.log"]
    assert {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert os.path.isdir(out / "model")


def test_batch_norm_flag_trains_every_trial_and_the_final_model_with_batch_norm(tmp_path, cli):
    from gradwise import load_bundle

    # Worker processes train the trials (in populations): the flag must reach them through
    # the study, since a worker's command line carries no training options.
    out = tmp_path / "run"
    result = cli("tune", "--data", "builtin:iris", "--batch-norm", "--trials", 4, "--workers", 2, "--population", 2, "--space", _space(tmp_path, 3), "--out", out, "--cv", 0, "--ensemble", 1, "--json")
    assert result.code == 0, result.stderr
    trials = _study(out).trials
    assert len(trials) == 4 and all(t.user_attrs["config"]["batch_norm"] is True for t in trials)
    model, _ = load_bundle(out / "model")
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())


BN_SPACES = {
    "searched": '[params.batch_norm]\ntype = "categorical"\nchoices = [true, false]\n',
    "fixed off": "[fixed]\nbatch_norm = false\n",
    "pinned off": "[params.batch_norm]\nvalue = false\n",
}


@pytest.mark.parametrize("name", BN_SPACES)
def test_batch_norm_flag_that_the_space_file_contradicts_is_one_line_and_exit_2(tmp_path, cli, name):
    space = tmp_path / "space.toml"
    space.write_text(BN_SPACES[name])
    result = cli("tune", "--data", "builtin:iris", "--batch-norm", "--trials", 1, "--space", space, "--out", tmp_path / "run")
    assert result.code == 2 and result.stderr.count("\n") == 1 and "--space" in result.stderr and "batch_norm" in result.stderr, result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text", ["[fixed]\nbatch_norm = true\n", "[fixed]\nepochs = 3\n"])
def test_batch_norm_flag_agrees_with_a_space_file_that_fixes_the_same_or_nothing(tmp_path, text):
    from gradwise.cli.tune import check_flag_against_space
    from gradwise.tuning import load_space

    space = tmp_path / "space.toml"
    space.write_text(text)
    check_flag_against_space("batch_norm", True, load_space(space))  # no error


SHARED_CONFLICTS = {
    "--epochs against [fixed] epochs": (["--epochs", "30"], "[fixed]\nepochs = 5\n", "--epochs 30 contradicts"),
    "--patience 0 against [fixed] patience": (["--patience", "0"], "[fixed]\npatience = 4\n", "--patience 0 contradicts"),
    "--activation against [fixed] activation": (["--activation", "tanh"], '[fixed]\nactivation = "relu"\n', "--activation tanh contradicts"),
    "--normalize against [fixed] normalize": (["--normalize", "standard"], '[fixed]\nnormalize = "minmax"\n', "--normalize standard contradicts"),
}


@pytest.mark.parametrize("name", SHARED_CONFLICTS)
def test_a_training_option_that_the_space_file_fixes_otherwise_is_one_line_and_exit_2(tmp_path, cli, name):
    # Before, the file's value silently won: --epochs 30 trained every trial 5 epochs.
    flags, text, message = SHARED_CONFLICTS[name]
    space = tmp_path / "space.toml"
    space.write_text(text)
    result = cli("tune", "--data", "builtin:iris", *flags, "--trials", 1, "--space", space, "--out", tmp_path / "run")
    assert result.code == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "run").exists()


def test_the_default_of_a_training_option_never_conflicts_with_the_space_file(tmp_path, cli):
    # --epochs has a default (60): a file that fixes epochs is obeyed when --epochs is not given.
    space = tmp_path / "space.toml"
    space.write_text("[fixed]\nepochs = 2\n")
    result = cli("tune", "--data", "builtin:iris", "--trials", 1, "--cv", 0, "--ensemble", 1, "--no-report", "--space", space, "--out", tmp_path / "run", "--json")
    assert result.code == 0, result.stderr
    assert _study(tmp_path / "run").trials[0].user_attrs["config"]["epochs"] == 2


@pytest.mark.slow
def test_breast_cancer_tuned_model_reaches_95_percent_test_accuracy(tmp_path, cli):
    # A shorter variant of the acceptance run (benchmarks/tune_acceptance.py runs --trials 30).
    result = cli("tune", "--data", "builtin:breast_cancer", "--trials", 10, "--epochs", 30, "--out", tmp_path / "bc", "--json")
    assert result.code == 0, result.stderr
    assert result.json()["final"]["test"]["accuracy"] >= 0.95


@pytest.mark.slow
def test_diabetes_tuned_model_beats_an_untuned_train_in_test_rmse(tmp_path, cli):
    # The acceptance run of benchmarks/tune_acceptance.py: 66 test rows decide little alone,
    # so the claim is over three split seeds, as the benchmark reports it.
    untuned, tuned = [], []
    for seed in (0, 1, 2):
        train = cli("train", "--data", "builtin:diabetes", "--seed", seed, "--json")
        tune = cli("tune", "--data", "builtin:diabetes", "--seed", seed, "--trials", 30, "--out", tmp_path / f"d{seed}", "--json")
        assert train.code == 0 and tune.code == 0, train.stderr + tune.stderr
        untuned.append(train.json()["metrics"]["test"]["rmse"])
        tuned.append(tune.json()["final"]["test"]["rmse"])
    assert sum(tuned) < sum(untuned), (tuned, untuned)


def test_resume_without_a_study_to_continue_is_a_config_error(tmp_path):
    from gradwise.errors import ConfigError
    from gradwise.tuning import TuneSpec, tune

    with pytest.raises(ConfigError, match="no study 'gradwise-iris'"):
        tune(TuneSpec(data="builtin:iris", n_trials=1), tmp_path, resume=True)


def test_a_python_resume_refuses_a_spec_that_would_change_the_study_and_takes_a_new_budget(tmp_path):
    # Before, tune(spec, resume=True) continued the stored study and dropped base={"epochs": 3} unsaid.
    from gradwise.errors import ConfigError
    from gradwise.tuning import TuneSpec, default_space, tune

    space = default_space("adam").to_dict()
    space["params"]["lr"]["low"] = 1e-3  # a space of the caller's own, with tuples where JSON has lists
    space["params"]["hidden"]["choices"] = ()
    first = TuneSpec(data="builtin:iris", n_trials=1, timeout=None, cv=0, split=(0.6, 0.2, 0.2), population="off", space=space, base={"epochs": 2})
    tune(first, tmp_path, retrain=False)
    for changed, named in ((dict(base={"epochs": 3}), r"base\['epochs'\].*epochs = 2"), (dict(cv=3), "TuneSpec.cv.*cv = 0"),
                           (dict(strategy="joint"), "TuneSpec.strategy")):
        with pytest.raises(ConfigError, match=named):
            tune(dataclasses.replace(first, n_trials=2, **changed), tmp_path, resume=True, retrain=False)
    again = tune(dataclasses.replace(first, n_trials=2), tmp_path, resume=True, retrain=False)  # the same spec, a new budget
    assert again.counts.finished == 2


def test_the_live_line_counts_trials_by_state_and_names_the_metric():
    import time

    import optuna
    from optuna.trial import TrialState

    from gradwise.tuning.display import status_line

    study = optuna.create_study(direction="maximize")
    for value in (0.9, 0.95):
        study.add_trial(optuna.trial.create_trial(value=value))
    study.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED))
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))
    line = status_line(study, time.monotonic(), "accuracy")
    # a failed trial is retried, so it is not among those done
    assert line.startswith("trials done 3 (complete 2, pruned 1), failed 1, running 0 | best validation accuracy 0.9500 (trial 1) | ")


def test_tune_weight_column_weights_the_study_and_the_final_test_score(tmp_path, cli):
    """The weight column travels in the study's spec (workers load the table from it), and the
    final model's reported test accuracy is the weighted one."""
    import numpy as np
    import pandas as pd

    from gradwise import load_table, split_table
    from gradwise.models.bundle import load_bundle
    from gradwise.tuning.spec import read_spec

    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=120), rng.normal(size=120)
    noisy = np.where(rng.random(120) < 0.2, x2, x1)  # some labels the features cannot explain: test errors
    data = tmp_path / "weighted.csv"
    pd.DataFrame({"x1": x1, "x2": x2, "w": rng.uniform(0.2, 3.0, 120), "label": np.where(noisy > 0, "a", "b")}).to_csv(data, index=False)
    out = tmp_path / "run"
    result = cli("tune", "--data", data, "--target", "label", "--weight-column", "w", "--trials", 3, "--space", _space(tmp_path, 3),
                 "--ensemble", 1, "--workers", 1, "--no-report", "--out", out, "--json")
    assert result.code == 0, result.stderr
    document = result.json()
    assert read_spec(_study(out)).weight_column == "w"
    splits = split_table(load_table(data, target="label", weight="w"), seed=0)
    hits = load_bundle(document["files"]["model"])[0].predict_array(splits.test.X) == splits.test.y
    assert document["final"]["test"]["accuracy"] == pytest.approx(np.average(hits, weights=splits.test.w), rel=1e-5)
    assert not np.isclose(np.average(hits, weights=splits.test.w), hits.mean())


def test_resume_refuses_an_option_that_would_change_the_study_and_accepts_the_same_ones(tmp_path, cli):
    # Before, --resume kept the stored settings and ignored a changed --epochs without a word.
    out = tmp_path / "run"
    common = ("--data", "builtin:iris", "--cv", 0, "--ensemble", 1, "--no-report", "--out", out)
    first = cli("tune", *common, "--trials", 1, "--epochs", 2, "--json")
    assert first.code == 0, first.stderr
    for changed, shown in ((("--epochs", 5), "--epochs 5 differs"), (("--strategy", "random"), "--strategy random differs"),
                           (("--metric", "loss"), "--metric loss differs"), (("--optimizer", "gd"), "--optimizer differs")):
        refused = cli("tune", *common, "--trials", 2, *changed, "--resume")
        assert refused.code == 2 and refused.stderr.count("\n") == 1 and shown in refused.stderr, refused.stderr
    assert len(_study(out).trials) == 1  # nothing ran
    # Options that repeat the study's own settings (or its defaults) are fine, and so is a new budget.
    again = cli("tune", *common, "--trials", 2, "--epochs", 2, "--metric", "accuracy", "--strategy", "staged", "--optimizer", "adam", "--resume", "--json")
    assert again.code == 0, again.stderr
    assert len(_study(out).trials) == 2
