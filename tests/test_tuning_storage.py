"""Storage: journal file and PostgreSQL, stale trials failed and retried with the same parameters."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from gradwise.errors import ConfigError
from gradwise.tuning import fail_stale_trials, open_storage
from gradwise.tuning.storage import WORKER_ATTR, _engine, budget_lock, sqlalchemy_url, storage_journal

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _running_trial(study, owner):
    trial = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)})
    if owner is not None:
        trial.set_user_attr(WORKER_ATTR, owner)
    trial.set_user_attr("stage", 1)
    return trial


def test_default_storage_is_a_journal_file_in_the_output_directory(tmp_path):
    storage = open_storage(None, tmp_path / "out")
    assert isinstance(storage, optuna.storages.JournalStorage)
    assert storage_journal(storage) == tmp_path / "out" / "study.journal"


def test_trial_of_a_dead_local_process_is_failed_and_requeued_with_its_parameters(tmp_path):
    study = optuna.create_study(storage=open_storage(None, tmp_path))
    dead = _running_trial(study, f"{socket.gethostname()}:{_dead_pid()}")
    alive = _running_trial(study, f"{socket.gethostname()}:{os.getpid()}")
    remote = _running_trial(study, "some-other-host:1")
    ownerless = _running_trial(study, None)

    assert fail_stale_trials(study) == [dead.number]
    trials = study.get_trials()
    assert trials[dead.number].state == TrialState.FAIL
    assert trials[dead.number].user_attrs["fail_reason"] == "its worker process died mid-trial"
    for kept in (alive, remote, ownerless):
        assert trials[kept.number].state == TrialState.RUNNING
    retry = [t for t in trials if t.state == TrialState.WAITING]
    assert len(retry) == 1
    assert retry[0].system_attrs["failed_trial"] == dead.number
    assert retry[0].params == trials[dead.number].params
    assert retry[0].user_attrs["stage"] == 1 and WORKER_ATTR not in retry[0].user_attrs
    # The retry is what the next ask() hands out, with the same α.
    again = study.ask()
    assert again.number == retry[0].number
    assert again.suggest_float("lr", 1e-4, 1.0, log=True) == retry[0].params["lr"]


def test_cut_and_retried_trials_are_not_counted_as_failures(tmp_path):
    """A Ctrl-C or a lost worker in the middle of a wide population cut 26 trials at once;
    counted as failures they would trip 'the first 20 trials all failed' on --resume."""
    from gradwise.tuning.runner import FAILS_WITHOUT_RESULT, count_trials, failed_from_the_start

    study = optuna.create_study(storage=open_storage(None, tmp_path))
    study.tell(study.ask(), state=TrialState.FAIL)  # a trial's own failure, not retried
    dead = f"{socket.gethostname()}:{_dead_pid()}"
    cut = [_running_trial(study, dead).number for _ in range(FAILS_WITHOUT_RESULT + 5)]
    assert sorted(fail_stale_trials(study)) == cut
    counts = count_trials(study)
    assert (counts.failed, counts.retried, counts.waiting) == (1, len(cut), len(cut))
    assert not failed_from_the_start(counts)
    again = study.ask()  # the retry is cut too: its original and itself are both retried
    again.set_user_attr(WORKER_ATTR, dead)
    assert fail_stale_trials(study) == [again.number]
    assert count_trials(study).retried == len(cut) + 1


def test_on_resume_an_ownerless_running_trial_is_stale_too(tmp_path):
    study = optuna.create_study(storage=open_storage(None, tmp_path))
    ownerless = _running_trial(study, None)
    assert fail_stale_trials(study, ownerless_is_stale=True) == [ownerless.number]


def test_database_urls_use_the_psycopg3_driver():
    assert sqlalchemy_url("postgresql://postgres@127.0.0.1:5432/test") == "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    assert sqlalchemy_url("sqlite:///x.db") == "sqlite:///x.db"


def test_unreachable_database_is_a_config_error_without_the_password():
    with pytest.raises(ConfigError) as error:
        open_storage("postgresql://me:secret@127.0.0.1:1/nothing", ".")
    assert "secret" not in str(error.value) and "me:***@" in str(error.value)


@pytest.mark.postgres
def test_postgres_heartbeat_fails_a_silent_trial_of_another_machine_and_retries_it(postgres_url):
    storage = open_storage(postgres_url, ".", heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(storage=storage, study_name="heartbeat")
    silent = _running_trial(study, "another-machine:1234")  # the pid check cannot judge it
    storage.record_heartbeat(silent._trial_id)
    assert fail_stale_trials(study) == []
    assert study.get_trials()[silent.number].state == TrialState.RUNNING
    time.sleep(3.5)
    assert fail_stale_trials(study) == [silent.number]
    trials = study.get_trials()
    assert trials[silent.number].state == TrialState.FAIL
    assert "stopped sending heartbeats" in trials[silent.number].user_attrs["fail_reason"]
    retries = [t for t in trials if t.state == TrialState.WAITING]
    assert [t.system_attrs["failed_trial"] for t in retries] == [silent.number]
    assert retries[0].params == trials[silent.number].params


@pytest.mark.postgres
def test_postgres_budget_lock_is_exclusive_across_connections(postgres_url):
    storage = open_storage(postgres_url, ".")
    study = optuna.create_study(storage=storage, study_name="lock")
    other = optuna.load_study(study_name="lock", storage=open_storage(postgres_url, "."))
    from sqlalchemy import text

    with budget_lock(study, None):
        with _engine(other._storage).connect() as conn:
            key = 0x67726164_0000 + other._study_id
            assert conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar() is False
    with _engine(other._storage).connect() as conn:
        assert conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar() is True
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
