"""`tune --workers N` keeps the storage password out of every worker's argv (what `ps` shows)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.postgres
SECRET = "s3cret"


def _children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (read from /proc, as `ps` does)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # the process ended meanwhile
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _argv(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _ps_lines() -> list[str]:
    return subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout.splitlines()


def _environ(pid: int) -> bytes:
    try:
        return (Path("/proc") / str(pid) / "environ").read_bytes()
    except OSError:
        return b""


def _wait_for_workers(tune: subprocess.Popen, n: int, timeout: float = 180) -> dict[int, str]:
    """argv of the first ``n`` `gradwise worker` children of ``tune`` seen running."""
    seen: dict[int, str] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < n and tune.poll() is None and time.monotonic() < deadline:
        for pid in _children(tune.pid):
            argv = _argv(pid)
            if " worker " in argv and b"GRADWISE_STORAGE=" in _environ(pid):
                seen[pid] = argv
        time.sleep(0.2)
    return seen


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_started_by_tune_carry_no_password_in_argv(tmp_path, postgres_url):
    url = postgres_url.replace("postgres@", f"postgres:{SECRET}@", 1)  # trust auth ignores it
    assert SECRET in url
    command = [sys.executable, "-m", "gradwise", "tune", "--data", "builtin:iris", "--storage", url, "--study", "secrets",
               "--workers", "2", "--trials", "20", "--epochs", "2", "--cv", "0", "--ensemble", "1", "--out", tmp_path / "out", "--json"]
    with open(tmp_path / "stdout", "wb") as out, open(tmp_path / "stderr", "wb") as err:
        tune = subprocess.Popen([str(c) for c in command], stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    try:
        workers = _wait_for_workers(tune, 2)
        ps = _ps_lines()
    finally:
        tune.send_signal(signal.SIGINT)  # seen enough: the workers are stopped with it
        try:
            tune.wait(timeout=60)
        except subprocess.TimeoutExpired:
            tune.kill()
    assert len(workers) == 2, (workers, (tmp_path / "stderr").read_text()[-2000:])
    assert all(SECRET not in argv and "--storage" not in argv for argv in workers.values()), workers
    # The user's own `gradwise tune` shows what the user typed; no other process shows it.
    assert [line for line in ps if SECRET in line and line.split()[0] != str(tune.pid)] == []
    assert SECRET not in (tmp_path / "stdout").read_text() + (tmp_path / "stderr").read_text()
