"""Local worker processes for ``gradwise tune --workers N``.

Each is ``python -m gradwise worker --study NAME`` with the storage in its environment
(``GRADWISE_STORAGE``), exactly what a user would start by hand on another machine. Each worker gets its own sampler seed (so two workers do
not sample the same points) and an equal share of the CPU threads. On Linux a worker also
asks the kernel to end it when its parent dies, so a killed ``gradwise tune`` leaves no
orphans; the trial it was running is then retried on ``--resume``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..files import worker_log_name


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except Exception:
        pass


# The storage URL may hold a password: it goes to each worker through this environment
# variable (readable only by the same user, in /proc/PID/environ), never its argv (which
# every user sees in `ps`). `gradwise worker --storage` reads it.
STORAGE_ENV = "GRADWISE_STORAGE"


def worker_command(study: str, index: int, timeout: float | None, threads: int) -> list[str]:
    command = [sys.executable, "-m", "gradwise", "worker", "--study", study, "--seed-offset", str(index), "--threads", str(threads), "--quiet"]
    if timeout is not None:
        command += ["--timeout", f"{timeout:g}"]
    return command


def start_workers(n: int, storage: str, study: str, timeout: float | None, log_dir: Path) -> list[subprocess.Popen]:
    """Start ``n`` worker processes; their stderr goes to ``log_dir/worker-I.log``."""
    threads = max(1, (os.cpu_count() or 1) // n)
    log_dir.mkdir(parents=True, exist_ok=True)
    processes = []
    for index in range(n):
        log = open(log_dir / worker_log_name(index), "ab")
        process = subprocess.Popen(
            worker_command(study, index + 1, timeout, threads),
            env={**os.environ, STORAGE_ENV: storage},
            stdout=subprocess.DEVNULL,
            stderr=log,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        log.close()  # the child holds its own copy of the descriptor
        processes.append(process)
    return processes


def stop_workers(processes: list[subprocess.Popen], sig: int = signal.SIGINT, wait: float = 10.0) -> None:
    """Send ``sig`` to every live worker, then wait; kill those that do not exit in time."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(sig)
    deadline = time.monotonic() + wait
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def failed_workers(processes: list[subprocess.Popen]) -> list[int]:
    """Exit codes of workers that ended badly (0 is success)."""
    return [p.returncode for p in processes if p.returncode not in (0, None)]
