"""Two `gradwise worker` processes share one study on the real PostgreSQL server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from gradwise.tuning import TuneSpec, open_storage
from gradwise.tuning.runner import count_trials, create_study
from gradwise.tuning.space_file import apply_overrides

pytestmark = pytest.mark.postgres
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _make_study(url: str, name: str, n_trials: int, epochs: int, pruner: str = "hyperband", population: str = "auto") -> optuna.Study:
    space = apply_overrides({"params": {"hidden": {"low": 4, "high": 16}}, "fixed": {"epochs": epochs, "patience": None}})
    spec = TuneSpec(data="builtin:iris", space=space.to_dict(), n_trials=n_trials, timeout=None, pruner=pruner, population=population)
    storage = open_storage(url, ".")
    create_study(spec, storage, name, "classification")
    return optuna.load_study(study_name=name, storage=storage)


def _worker(url: str, name: str, offset: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "gradwise", "worker", "--storage", url, "--study", name, "--heartbeat", "1", "--seed-offset", str(offset), "--json"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def _finish(process: subprocess.Popen, timeout: float = 240) -> dict:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-2000:]
    return json.loads(out)


def _finished(study: optuna.Study) -> list:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def test_two_workers_finish_forty_trials_with_none_lost_or_duplicated(postgres_url):
    study = _make_study(postgres_url, "two-workers", n_trials=40, epochs=3)
    workers = [_worker(postgres_url, "two-workers", i) for i in (1, 2)]
    reports = [_finish(w) for w in workers]

    counts = count_trials(study)
    assert counts.finished == 40
    assert (counts.failed, counts.running, counts.waiting) == (0, 0, 0)
    assert all(r["trials_run"] > 0 for r in reports), reports  # both really worked
    assert sum(r["trials_run"] for r in reports) == len(study.trials) == 40
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(40))
    owners = {t.user_attrs["worker"] for t in study.trials}
    assert len(owners) == 2


def test_a_worker_killed_mid_trial_loses_only_that_trial_which_is_retried(postgres_url):
    # One trial at a time: a killed worker training a population loses all of that
    # population's running trials (each retried alike; tests/test_population_tune.py).
    study = _make_study(postgres_url, "killed-worker", n_trials=6, epochs=40, pruner="none", population="off")
    victim, survivor = _worker(postgres_url, "killed-worker", 1), _worker(postgres_url, "killed-worker", 2)
    owner = f"{socket.gethostname()}:{victim.pid}"
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline:
        running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t.user_attrs.get("worker") == owner]
        if running and running[0].intermediate_values:  # really mid-trial: an epoch is reported
            os.kill(victim.pid, signal.SIGKILL)
            killed = running[0].number
        time.sleep(0.05)
    assert killed is not None, "the victim never started a trial"
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    _finish(survivor)

    trials = study.get_trials()
    assert trials[killed].state == TrialState.FAIL
    assert trials[killed].user_attrs["fail_reason"] == "its worker process died mid-trial"
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retries[0].params == trials[killed].params
    counts = count_trials(study)
    assert counts.finished == 6 and counts.failed == 0 and counts.retried == 1 and counts.running == 0 and counts.waiting == 0
