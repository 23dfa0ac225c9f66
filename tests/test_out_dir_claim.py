"""One run per --out: a second `tune` or `train` on a folder that a running one holds is
refused with one line and touches nothing; the hold ends with the run, even a killed one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from gradwise.cli import main
from gradwise.errors import GradwiseError
from gradwise.files import claim_output_dir

TUNE = ["tune", "--data", "builtin:iris", "--epochs", "2", "--cv", "0", "--ensemble", "1", "--population", "off", "--workers", "1"]
TRAIN = ["train", "--data", "builtin:iris", "--epochs", "2"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], env={"GRADWISE_STORAGE": None}, catch_exceptions=False)


def snapshot(root):
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


def wait_for(path, process, seconds=120):
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


def test_overwrite_while_a_tune_runs_on_the_same_out_is_refused_and_moves_nothing(tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "gradwise", *TUNE, "--timeout", "300", "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(out / "study.journal", first)
        for extra in (["--overwrite"], ["--resume"], []):
            result = invoke(*TUNE, "--trials", "1", "--out", out, *extra)
            assert result.exit_code == 2, result.output
            assert f"--out '{out}' is in use by another gradwise run" in result.stderr
            assert not list(out.glob(".gradwise-replaced-*")) and (out / "study.journal").exists()
        result = invoke(*TRAIN, "--out", out, "--overwrite")
        assert result.exit_code == 2 and "is in use by another gradwise run" in result.stderr
        assert not (out / "model.safetensors").exists()
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    assert first.returncode == 130  # the first run ended as a Ctrl-C ends it, its study kept
    assert invoke(*TUNE, "--trials", "1", "--out", out, "--resume").exit_code == 0  # the hold ended with it


def test_train_into_a_held_folder_is_refused_before_it_writes(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with claim_output_dir(out):
        result = invoke(*TRAIN, "--out", out)
        assert result.exit_code == 2, result.output
        assert result.stderr.strip() == f"gradwise: error: --out '{out}' is in use by another gradwise run; wait for it to end, or choose another --out"
        assert snapshot(out) == {"notes.txt": b"mine"}
    assert invoke(*TRAIN, "--out", out).exit_code == 0  # released on the way out
    assert (out / "model.safetensors").exists()


def test_a_claim_removes_the_folders_it_created_when_the_run_left_them_empty(tmp_path):
    deep = tmp_path / "a" / "b" / "c"
    with claim_output_dir(deep):
        assert deep.is_dir()
    assert not (tmp_path / "a").exists()
    with claim_output_dir(deep):
        (deep / "kept").write_text("x")
    assert (deep / "kept").exists()
    with pytest.raises(GradwiseError, match="no such run"):
        with claim_output_dir(tmp_path / "failed"):
            raise GradwiseError("no such run")
    assert not (tmp_path / "failed").exists()


def test_the_hold_of_a_killed_run_ends_with_its_process(tmp_path):
    holder = "import sys, time; from gradwise.files import claim_output_dir\nwith claim_output_dir(sys.argv[1]):\n    print('held', flush=True); time.sleep(300)"
    process = subprocess.Popen([sys.executable, "-c", holder, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "held"
        with pytest.raises(GradwiseError, match="in use by another gradwise run"):
            with claim_output_dir(tmp_path):
                pass
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    with claim_output_dir(tmp_path):  # no stale lock after SIGKILL
        pass
