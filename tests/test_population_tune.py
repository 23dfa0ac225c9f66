"""gradwise tune with populations: ordinary Optuna trials, pruned one by one; importance at a rung."""

from __future__ import annotations

import math
import resource
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from gradwise.tuning import TuneSpec, default_space, importance_table
from gradwise.tuning.populations import resolve_population
from gradwise.tuning.runner import create_study, load_study, run_worker
from gradwise.tuning.spec import load_splits


def run_study(population, n_trials=8, epochs=6, cv="auto", strategy="staged"):
    spec = TuneSpec(data="builtin:iris", n_trials=n_trials, timeout=None, base={"epochs": epochs, "device": "cpu"},
                    population=population, cv=cv, seed=0, strategy=strategy)
    splits = load_splits(spec)
    storage = optuna.storages.InMemoryStorage()
    create_study(spec, storage, "s", splits.task)
    study, spec = load_study(storage, "s", spec, worker_seed=0)
    run_worker(study, spec, splits)
    return study


@pytest.fixture(scope="module")
def population_study():
    return run_study(4)


def test_every_trial_is_an_ordinary_finished_optuna_trial(population_study):
    trials = population_study.get_trials()
    assert len(trials) == 8
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    for t in trials:
        assert "config" in t.user_attrs and t.user_attrs["seconds"] > 0
        if t.state == TrialState.PRUNED:
            assert t.user_attrs["prune_reason"]
        else:  # cross-validated: each fold's value at the chosen epoch, as one-at-a-time trials record
            assert len(t.user_attrs["fold_values"]) == 5 and math.isfinite(t.value)
            assert t.intermediate_values  # reported epoch by epoch to its own trial
    assert trials[0].user_attrs.get("untuned") and trials[0].user_attrs["stage"] == 0
    assert population_study.sampler._constant_liar  # trials asked together are spread out
    # The α grid follows the untuned trial, one grid point per trial, as one at a time.
    assert [t.user_attrs.get("grid") for t in trials[1:5]] == [0, 1, 2, 3]
    # Trial 4 (the last grid point, the same network) was asked once half of the first four had
    # ended and joined their running population instead of waiting for it to finish.
    assert trials[4].user_attrs.get("joined_population") and not trials[0].user_attrs.get("joined_population")


def test_population_off_keeps_the_one_trial_at_a_time_path():
    study = run_study("off", n_trials=2, epochs=3, cv=0)
    assert len(study.trials) == 2
    assert not any(t.user_attrs.get("population") for t in study.trials)


def test_auto_batches_small_tables_and_leaves_large_ones_alone():
    assert resolve_population("auto", 1_257) > 1
    assert resolve_population("auto", 200_000) == 0
    assert resolve_population("off", 100) == 0 and resolve_population(16, 100) == 16


def test_importance_at_the_highest_rung_when_hyperband_pruned_most_trials():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize")
    rng = np.random.default_rng(0)
    for i in range(30):
        lr, hidden = float(10 ** rng.uniform(-4, -1)), int(rng.integers(8, 512))
        score = (np.log10(lr) + 2.5) ** 2 + 1e-3 * rng.normal()
        last = 27 if i < 4 else (9 if i < 16 else 3)  # 4 complete, 12 pruned at epoch 9, 14 at epoch 3
        values = {e: score + 1.0 / e for e in range(1, last + 1)}
        state = TrialState.COMPLETE if i < 4 else TrialState.PRUNED
        study.add_trial(optuna.trial.create_trial(state=state, value=score if i < 4 else None, params={}, distributions={},
                                                  intermediate_values=values,
                                                  user_attrs={"config": {"lr": lr, "hidden": hidden, "batch_size": 64, "layers": 2}}))
    rows = importance_table(study, default_space("adam"))
    by_name = {row["param"]: row for row in rows}
    assert by_name["lr"]["empirical"] > by_name["hidden"]["empirical"]
    assert "epoch 9 of the 16 trials" in by_name["lr"]["basis"]


def test_an_interrupted_population_keeps_told_trials_and_retries_the_cut_ones(tmp_path, cli):
    """SIGINT mid-population: trials already told stay as they were; every trial still training
    is failed and re-queued with its parameters, and --resume finishes the budget."""
    import signal

    from test_tune_cli import _space, _study, _tune, _values, _wait_for_finished

    out = tmp_path / "run"
    # One population holds the whole budget, so no refill asks happen: the signal lands in training.
    process = _tune("--trials", 4, "--space", _space(tmp_path, 60), "--out", out, "--pruner", "none", "--cv", 0,
                    "--population", 4, "--ensemble", 1, "--json")
    finished = _wait_for_finished(out, 1, process, mid_trial=True)
    before = _values(_study(out), finished)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "--resume" in stderr
    resumed = cli("tune", "--data", "builtin:iris", "--out", out, "--resume", "--json")
    assert resumed.code == 0, resumed.stderr
    study = _study(out)
    assert _values(study, finished) == before
    cut = [t for t in study.trials if t.state == TrialState.FAIL]
    assert cut and all(t.user_attrs["fail_reason"] == "interrupted (SIGINT)" for t in cut)
    for t in cut:
        retry = [r for r in study.trials if r.system_attrs.get("failed_trial") == t.number]
        assert len(retry) == 1 and retry[0].params == t.params and retry[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    counts = resumed.json()["trials"]
    assert counts["complete"] + counts["pruned"] == 4 and counts["running"] == 0
    assert counts["failed"] == 0 and counts["retried"] == len(cut)  # cut, not broken


def test_trials_share_a_population_only_within_a_width_and_batch_size_bucket():
    from gradwise import TrainConfig, load_table, split_table
    from gradwise.tuning.populations import TrialRun, group_trials

    splits = split_table(load_table("builtin:iris"), seed=0)
    base = TrainConfig(device="cpu")
    configs = [base.replace(hidden=40, batch_size=20), base.replace(hidden=60, batch_size=30),  # both 33-64 and 17-32
               base.replace(hidden=70, batch_size=30), base.replace(hidden=40, batch_size=200), base.replace(hidden=40, layers=3, batch_size=20)]
    groups = group_trials([TrialRun(None, c) for c in configs], [splits])
    assert sorted(len(g) for g in groups) == [1, 1, 1, 2]
    assert {id(r.config) for g in groups if len(g) == 2 for r in g} == {id(configs[0]), id(configs[1])}


def test_trials_asked_to_fill_a_population_are_drawn_with_its_shape():
    # joint: every trial asks TPE for depth, width and batch size, so trials drawn freely
    # would nearly all differ in shape and train one population each.
    study = run_study(4, n_trials=12, epochs=4, cv=0, strategy="joint")
    trials = study.get_trials()
    assert len(trials) == 12
    shapes = [tuple(t.user_attrs["config"][k] for k in ("layers", "hidden", "batch_size")) for t in trials]
    # Trial 0 (the untuned run) opens the first population, trials 1-3 fill it, and its
    # refills keep its shape until it has trained twice its size; trial 8 opens the next.
    assert shapes[:8] == [shapes[0]] * 8 and shapes[8:] == [shapes[8]] * 4
    assert shapes[0] != shapes[8]
    assert len({t.user_attrs["config"]["lr"] for t in trials}) == 12  # what a member has of its own is searched
    for t in trials[1:8] + trials[9:]:  # the pinned values are told to the sampler as one-point ranges
        assert all(t.distributions[k].single() for k in ("layers", "hidden", "batch_size"))
        assert not t.distributions["lr"].single()


def test_shaped_space_pins_what_decides_a_population_and_nothing_else():
    import dataclasses

    from gradwise import TrainConfig
    from gradwise.tuning.populations import shaped_space

    space = default_space("momentum")
    shaped = shaped_space(space, TrainConfig(layers=3, hidden=100, batch_size=32))
    assert [(shaped.params[k].low, shaped.params[k].high) for k in ("layers", "hidden", "batch_size")] == [(3, 3), (100, 100), (32, 32)]
    assert all(shaped.params[k] == space.params[k] for k in ("lr", "beta", "lr_decay"))
    # A value outside the searched range (the untuned 64 units against a --space of wide
    # networks) is never pinned: trials are only drawn inside their range.
    wide = dataclasses.replace(space.params["hidden"], low=20000, high=100000)
    assert shaped_space(dataclasses.replace(space, params={**space.params, "hidden": wide}), TrainConfig(hidden=64)).params["hidden"] == wide
    # The staged plan's "near the best value" ranges stay inside a pinned range.
    assert (shaped.params["hidden"].narrowed(400, 3).low, shaped.params["hidden"].narrowed(400, 3).high) == (100, 100)


def test_threads_auto_gives_populations_the_idle_cores_and_one_trial_at_a_time_one():
    import os
    import subprocess
    import sys
    import time

    import torch

    from gradwise.tuning import runner

    before = torch.get_num_threads()
    try:
        runner.set_threads(0)
        assert torch.get_num_threads() == 1
        with runner.population_threads():
            idle = torch.get_num_threads()
        assert torch.get_num_threads() == 1
        assert 1 <= idle <= len(os.sched_getaffinity(0))
        # A process spinning on a core beside us takes that core away from the population.
        spinner = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass"])
        try:
            time.sleep(0.3)
            assert runner.free_cores() <= max(1, idle - 1)
        finally:
            spinner.wait()
        runner.set_threads(1)  # an explicit count is kept for populations too
        with runner.population_threads():
            assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("storage_kind", ["memory", "journal"])
def test_a_queued_trial_is_told_apart_from_a_sampled_one(tmp_path, storage_kind):
    """Queued trials (the untuned run, the α grid, retries) keep their values: never reshaped."""
    from gradwise.tuning.runner import _queued

    storage = optuna.storages.InMemoryStorage() if storage_kind == "memory" else optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "s.journal")))
    study = optuna.create_study(storage=storage)
    study.enqueue_trial({"x": 0.5})
    queued, sampled = study.ask(), study.ask()
    assert _queued(study, queued) and not _queued(study, sampled)


def test_cv_folds_whose_encodings_differ_in_width_still_train_in_populations(tmp_path):
    """Each fold fits its own imputer: a column with two gaps gets a missing-value indicator
    only in the folds whose training rows hold a gap, so folds differ in input width. Before,
    every population refused its trial's folds and every trial failed."""
    rng = np.random.default_rng(0)
    n = 150
    x = rng.normal(size=n)
    frame = {"x": x, "gappy": np.where(np.arange(n) < 2, np.nan, rng.normal(size=n)), "y": 2 * x + 0.1 * rng.normal(size=n)}
    import pandas as pd

    path = tmp_path / "gaps.csv"
    pd.DataFrame(frame).to_csv(path, index=False)
    spec = TuneSpec(data=str(path), target="y", n_trials=8, timeout=None, base={"epochs": 3, "device": "cpu"}, population="auto", cv=5, seed=0)
    splits = load_splits(spec)
    from gradwise.tuning.spec import build_objective

    assert len({fold.n_features for fold in build_objective(spec, splits).folds}) > 1
    storage = optuna.storages.InMemoryStorage()
    create_study(spec, storage, "s", splits.task)
    study, spec = load_study(storage, "s", spec, worker_seed=0)
    run_worker(study, spec, splits)
    states = [t.state for t in study.trials]
    assert len(states) == 8 and TrialState.FAIL not in states and TrialState.COMPLETE in states


def test_workers_auto_starts_one_per_idle_core_only_for_populations_and_long_searches(monkeypatch):
    from gradwise.tuning import runner

    splits = load_splits(TuneSpec(data="builtin:digits"))
    idle = {"cores": 2}
    monkeypatch.setattr(runner, "free_cores", lambda: idle["cores"])  # the machine's idle cores, as measured

    def workers(**options):
        return runner.local_workers(TuneSpec(data="builtin:digits", **options), splits)

    assert workers() == 2  # the README's default search: 120 s, populations of 8
    assert workers(population="off") == 1  # one trial at a time: one process, as always
    assert workers(timeout=10.0) == 1  # too short to pay for a second start
    assert workers(n_trials=30, timeout=None) == 1  # under four populations per worker
    assert workers(n_trials=64, timeout=None) == 2
    assert workers(workers=3) == 3  # an explicit count is kept
    idle["cores"] = 1
    assert workers() == 1  # a busy machine: the other core is taken
    idle["cores"] = 2
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    used = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (used + runner.WORKER_BYTES + 2**28, hard))
    try:
        assert workers() == 1  # room for one more worker's memory only
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def test_prepare_resolves_workers_auto_and_refuses_more_than_the_machine_takes():
    from gradwise.budget import max_workers
    from gradwise.errors import ConfigError
    from gradwise.tuning.session import prepare

    spec, _ = prepare(TuneSpec(data="builtin:iris", n_trials=2, timeout=None, cv=0))
    assert spec.workers == 1 and TuneSpec.from_dict(spec.to_dict()).workers == 1  # what the study stores
    with pytest.raises(ConfigError, match=rf"--workers must be 'auto' or a number of workers in \[1, {max_workers()}\]"):
        prepare(TuneSpec(data="builtin:iris", n_trials=2, timeout=None, workers=max_workers() + 1))


def test_a_population_that_outlasts_the_timeout_before_any_trial_completed_ends_complete():
    # 2,000 epochs without early stopping would take minutes; the 1 s --timeout ends the first
    # population within an epoch of it, its trials complete (nothing else to hand back) and
    # marked as cut, and no trial after them is started.
    spec = TuneSpec(data="builtin:iris", n_trials=None, timeout=1.0, base={"epochs": 2000, "patience": None, "device": "cpu"},
                    population=4, cv="auto", seed=0, monitor=False)
    splits = load_splits(spec)
    storage = optuna.storages.InMemoryStorage()
    create_study(spec, storage, "s", splits.task)
    study, spec = load_study(storage, "s", spec, worker_seed=0)
    run_worker(study, spec, splits, timeout=1.0)
    trials = study.get_trials()
    cut = [t for t in trials if t.user_attrs.get("cut_by_timeout")]
    assert cut and all(t.state == TrialState.COMPLETE and math.isfinite(t.value) for t in cut)
    assert all(t.user_attrs["epochs_run"] < 2000 and len(t.user_attrs["fold_values"]) == 5 for t in cut)
    assert all(t.user_attrs["stop_reason"].startswith("the --timeout ran out before any trial had completed") for t in cut)


def test_a_weighted_study_stores_its_weight_column_and_its_population_trials_train(tmp_path):
    """Workers load the table from the spec in the study, so the weight column travels there;
    cross-validated trials then train their weighted folds in populations (before, every
    population refused weighted splits and every trial failed)."""
    import pandas as pd

    from gradwise.tuning.spec import build_objective, read_spec

    rng = np.random.default_rng(0)
    x = rng.normal(size=120)
    path = tmp_path / "weighted.csv"
    pd.DataFrame({"x": x, "z": rng.normal(size=120), "w": np.where(np.arange(120) % 4 == 0, 0.0, rng.uniform(0.5, 2, 120)),
                  "y": np.where(x > 0, "a", "b")}).to_csv(path, index=False)
    spec = TuneSpec(data=str(path), target="y", weight_column="w", n_trials=8, timeout=None, base={"epochs": 3, "device": "cpu"}, population=4, cv=3, seed=0)
    storage = optuna.storages.InMemoryStorage()
    splits = load_splits(spec)
    create_study(spec, storage, "s", splits.task)
    stored = read_spec(optuna.load_study(study_name="s", storage=storage))
    assert stored.weight_column == "w"
    worker_splits = load_splits(stored)  # what a `gradwise worker` on another machine trains on
    assert worker_splits.n_features == 2  # x and z: the weights are no feature
    assert all(part.w is not None for part in (worker_splits.train, worker_splits.val, worker_splits.test))
    assert all(fold.train.w is not None for fold in build_objective(stored, worker_splits).folds)
    study, stored = load_study(storage, "s", stored, worker_seed=0)
    run_worker(study, stored, worker_splits)
    states = [t.state for t in study.trials]
    assert len(states) == 8 and TrialState.FAIL not in states and TrialState.COMPLETE in states
