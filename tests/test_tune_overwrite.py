"""`tune --overwrite` loses nothing: the earlier run is set aside, not deleted, until the new
run has its result; its report goes with it; and `tune` reads --storage from GRADWISE_STORAGE."""

from __future__ import annotations

import optuna
import pytest
from click.testing import CliRunner

from gradwise.cli import main

TUNE = ["tune", "--data", "builtin:iris", "--trials", "2", "--epochs", "2", "--cv", "0", "--ensemble", "1", "--population", "off"]
# Batch norm cannot train on batches of one: every trial of this space fails at its start.
FAILING_SPACE = '[fixed]\nbatch_norm = true\nbatch_size = 1\n'


def invoke(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env={"GRADWISE_STORAGE": None, **(env or {})}, catch_exceptions=False)


def snapshot(root):
    """Every file and folder under ``root``: relative path -> bytes (None for a folder)."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


@pytest.fixture
def earlier(tmp_path):
    """--out of a finished tune (journal, trials.csv, model/, report.html and report.json)
    beside a file of the user's."""
    out = tmp_path / "run"
    result = invoke(*TUNE, "--out", out)
    assert result.exit_code == 0, result.output
    assert {"study.journal", "trials.csv", "model", "report.html", "report.json"} <= {p.name for p in out.iterdir()}
    (out / "notes.txt").write_text("mine")
    return out


def test_overwrite_whose_trials_all_fail_puts_the_earlier_run_back_byte_for_byte(tmp_path, earlier):
    before = snapshot(earlier)
    space = tmp_path / "fail.toml"
    space.write_text(FAILING_SPACE)
    result = invoke(*TUNE, "--out", earlier, "--overwrite", "--space", space, "--no-monitor")
    assert result.exit_code == 2, result.output
    assert "gradwise: error: no trial completed" in result.stderr and "Traceback" not in result.output
    assert snapshot(earlier) == before


def test_overwrite_interrupted_after_trials_completed_puts_the_earlier_run_back(earlier, monkeypatch):
    from gradwise.tuning import session

    def interrupted(*args, **kwargs):  # Ctrl-C once the new run's trials are done
        raise KeyboardInterrupt

    monkeypatch.setattr(session, "finalize", interrupted)
    before = snapshot(earlier)
    result = invoke(*TUNE, "--out", earlier, "--overwrite", "--seed", "7")
    assert result.exit_code == 130, result.output
    assert "the earlier run in" in result.stderr and "--resume" not in result.stderr
    assert snapshot(earlier) == before


@pytest.fixture
def earlier_with_workers(earlier):
    """--out of a finished tune beside the logs/ that `tune --workers 2` leaves (its workers'
    stderr), written by hand: a real workers run would double this fixture's time."""
    (earlier / "logs").mkdir()
    for index in range(2):
        (earlier / "logs" / f"worker-{index}.log").write_text(f"the earlier run's worker {index}\n")
    return earlier


def test_interrupted_overwrite_with_workers_puts_the_earlier_workers_logs_back(earlier_with_workers, monkeypatch):
    from gradwise.tuning import session

    def interrupted(*args, **kwargs):  # Ctrl-C once the new run's workers have finished
        raise KeyboardInterrupt

    monkeypatch.setattr(session, "finalize", interrupted)
    before = snapshot(earlier_with_workers)
    # The new workers must write something to their logs: each prints its import times.
    result = invoke(*TUNE, "--out", earlier_with_workers, "--overwrite", "--workers", "2", "--seed", "7", "--no-report",
                    env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.exit_code == 130, result.output
    assert snapshot(earlier_with_workers) == before  # the new workers' lines are gone with their run


def test_overwrite_replaces_the_earlier_workers_logs_but_keeps_a_users_logs_folder(earlier_with_workers):
    result = invoke(*TUNE, "--out", earlier_with_workers, "--overwrite", "--no-report", "--seed", "7")
    assert result.exit_code == 0, result.output
    assert not (earlier_with_workers / "logs").exists()  # they were the earlier run's, replaced with it
    assert not list(earlier_with_workers.glob(".gradwise-replaced-*"))

    logs = earlier_with_workers / "logs"
    logs.mkdir()
    (logs / "worker-0.log").write_text("a worker's")
    (logs / "mine.txt").write_text("mine")  # now logs/ is the user's: it stays where it is
    result = invoke(*TUNE, "--out", earlier_with_workers, "--overwrite", "--no-report")
    assert result.exit_code == 0, result.output
    assert (logs / "mine.txt").read_text() == "mine" and (logs / "worker-0.log").read_text() == "a worker's"


def test_overwrite_no_report_leaves_no_stale_report_but_keeps_a_foreign_one(tmp_path, earlier):
    result = invoke(*TUNE, "--out", earlier, "--overwrite", "--no-report", "--seed", "7")
    assert result.exit_code == 0, result.output
    names = {p.name for p in earlier.iterdir()}
    assert {"study.journal", "trials.csv", "model", "notes.txt"} <= names and not names & {"report.html", "report.json"}, names
    assert not any(name.startswith(".gradwise-replaced-") for name in names)

    (earlier / "report.html").write_text("<html>my own page</html>")  # not gradwise's
    result = invoke(*TUNE, "--out", earlier, "--overwrite", "--no-report")
    assert result.exit_code == 0, result.output
    assert (earlier / "report.html").read_text() == "<html>my own page</html>"
    assert not list(earlier.glob(".gradwise-replaced-*"))


def test_tune_reads_storage_from_gradwise_storage_and_an_explicit_storage_wins(tmp_path):
    from gradwise.tuning import open_storage

    journal = tmp_path / "shared.journal"
    result = invoke(*TUNE, "--out", tmp_path / "a", "--no-report", env={"GRADWISE_STORAGE": str(journal)})
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "a" / "study.journal").exists()
    assert optuna.get_all_study_names(open_storage(str(journal), tmp_path)) == ["gradwise-iris"]

    unreachable = "postgresql://me:s3cret@127.0.0.1:1/nothing"
    result = invoke(*TUNE, "--out", tmp_path / "b", "--no-report", "--storage", tmp_path / "b.journal", env={"GRADWISE_STORAGE": unreachable})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b.journal").is_file()

    assert "GRADWISE_STORAGE" in invoke("tune", "--help").output


@pytest.mark.postgres
def test_tune_takes_a_database_url_with_a_password_from_gradwise_storage(tmp_path, postgres_url):
    url = postgres_url.replace("postgres@", "postgres:s3cret@", 1)  # trust auth ignores it
    result = invoke(*TUNE, "--out", tmp_path / "run", "--study", "from-env", "--no-report", "--json", env={"GRADWISE_STORAGE": url})
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "run" / "study.journal").exists()
    assert "from-env" in optuna.get_all_study_names(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
