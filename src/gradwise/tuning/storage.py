"""Where a study lives, and how a trial lost with its process gets run again.

- Embedded (the default): Optuna's journal storage, one append-only file in the output
  directory (``study.journal``). Several local processes may share it (file lock).
- ``--storage postgresql://...`` (or any SQLAlchemy URL): Optuna's ``RDBStorage``, with its
  heartbeat switched on, so that workers on any machine can join the study.

Stale trials. A trial whose process died stays RUNNING forever unless someone fails it.

- With ``RDBStorage`` Optuna's heartbeat does it: each running trial's process writes a
  heartbeat every ``heartbeat_interval`` seconds; any worker that finds a trial silent for
  ``grace_period`` seconds marks it FAIL and :class:`RetryStaleTrial` (Optuna's
  ``RetryHeartbeatStaleTrialCallback``) enqueues a WAITING copy with the same parameters.
- Optuna 5's journal storage has no heartbeat, so for it (and, as a faster path, for every
  storage) each trial records its owner ``host:pid`` in the user attribute ``worker``; a
  RUNNING trial whose owner is on this host and no longer alive is failed and retried the
  same way. On ``--resume`` of an embedded study, a RUNNING trial with no owner recorded is
  stale too (the process died between ``study.ask()`` and recording itself). A journal file
  shared across machines (NFS) gets no stale detection for remote owners: use PostgreSQL.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import socket
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..errors import ConfigError

JOURNAL_NAME = "study.journal"
WORKER_ATTR = "worker"
DEFAULT_HEARTBEAT = 10  # seconds between heartbeats of a running trial (RDB storage)
MAX_RETRY = 3
# Optuna warns when a heartbeat storage is used outside study.optimize; our ask-and-tell loop
# runs its own heartbeat thread (see heartbeat() below), so the warning does not apply.
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
_NOT_INHERITED = (WORKER_ATTR, "fail_reason")  # what a retry must not copy from the dead trial  # a trial that keeps killing its worker is not retried forever


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def is_database_url(storage: str | None) -> bool:
    return storage is not None and "://" in storage


def journal_path(out_dir: str | Path) -> Path:
    return Path(out_dir) / JOURNAL_NAME


def sqlalchemy_url(url: str) -> str:
    """postgresql://... → postgresql+psycopg://... (psycopg 3 is the installed driver)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


class RetryStaleTrial:
    """Optuna's ``RetryHeartbeatStaleTrialCallback``, minus the dead owner's ``worker`` mark.

    The copy would otherwise carry the dead process's ``host:pid`` until its new owner
    overwrites it, and another worker could fail it again in that instant. (Its
    ``fail_reason`` stays with the failed original too.)
    """

    def __init__(self, max_retry: int | None = MAX_RETRY) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trial = copy.deepcopy(trial)
        trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in _NOT_INHERITED}
        self._retry(study, trial)


def retried_numbers(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of the trials that were cut (Ctrl-C, a lost worker) and run again.

    A retry's copy lists every trial of its series that was cut before it (Optuna's
    ``retry_history`` system attr), so each such trial is one attempt that a later copy
    took over: counting both would count one trial twice."""
    return {number for t in trials for number in t.system_attrs.get("retry_history", ())}


class FlockLock:
    """A journal lock the kernel releases when its process dies.

    Optuna's own file locks (``JournalFileOpenLock``, ``JournalFileSymlinkLock``) are lock
    *files*: a process killed while holding one leaves it behind, and the next run waits out
    a 30-second grace period before breaking it. ``flock`` has no such leftover, which is
    what ``--resume`` after a SIGKILL needs. (On NFS, flock maps to POSIX locks on Linux.)
    It has the two methods ``JournalFileBackend`` calls on its lock: acquire and release.
    """

    def __init__(self, journal: str) -> None:
        self._path = journal + ".flock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self._path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def open_storage(
    storage: str | None,
    out_dir: str | Path,
    heartbeat_interval: int = DEFAULT_HEARTBEAT,
    grace_period: int | None = None,
    create: bool = True,
) -> optuna.storages.BaseStorage:
    """A journal file in ``out_dir`` when ``storage`` is None or a path, else an RDBStorage.

    ``create=False`` (a worker, a resume) refuses a journal that does not exist yet instead of
    creating an empty one. An existing file must be an Optuna journal.
    """
    if not is_database_url(storage):
        path = Path(storage) if storage else journal_path(out_dir)
        check_journal(path, must_exist=not create)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FlockLock(str(path))
        try:
            return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path), lock_obj=lock))
        except Exception as error:  # a record Optuna cannot replay: damaged or not a journal
            raise ConfigError(f"'{path}' is not a readable Optuna study journal ({type(error).__name__}: {error}); give the study.journal that gradwise tune wrote") from None
    try:
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning, message=".*heartbeat")
        return optuna.storages.RDBStorage(
            sqlalchemy_url(storage),
            engine_kwargs={"pool_pre_ping": True},
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period or 3 * heartbeat_interval,
            heartbeat_stale_trial_callback=RetryStaleTrial(),
        )
    except Exception as exc:  # SQLAlchemy/psycopg errors: unreachable server, bad URL, no database
        raise ConfigError(f"--storage {_redact(storage)} cannot be opened: {str(exc).splitlines()[0]}; check the URL and that the server is running") from None


def check_journal(path: Path, must_exist: bool = False) -> None:
    """Refuse, without creating anything, a journal path that is missing (if it must exist),
    a directory, or a file whose first line is not an Optuna journal record."""
    if not path.exists():
        if must_exist:
            raise ConfigError(f"study journal '{path}' does not exist; give the study.journal that gradwise tune wrote (or a postgresql:// URL)")
        return
    if not path.is_file():
        raise ConfigError(f"study journal '{path}' is a directory, not a file; give the study.journal inside it (or a postgresql:// URL)")
    with open(path, "rb") as handle:
        first = handle.readline(1 << 16).strip()
    if first and not _is_journal_record(first):
        raise ConfigError(f"'{path}' is not an Optuna study journal (its first line is not a journal record); give the study.journal that gradwise tune wrote")


def _is_journal_record(line: bytes) -> bool:
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and "op_code" in record


def remove_journal(path: Path) -> None:
    """Delete a journal file and the lock files that live beside it."""
    for name in (str(path), str(path) + ".flock", str(path) + ".budget-lock"):
        Path(name).unlink(missing_ok=True)


def _redact(url: str) -> str:
    """Hide a password in a URL before it reaches a message."""
    head, sep, tail = url.partition("://")
    if "@" in tail and ":" in tail.split("@", 1)[0]:
        user = tail.split("@", 1)[0].split(":", 1)[0]
        return f"{head}{sep}{user}:***@{tail.split('@', 1)[1]}"
    return url


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _owner_dead(trial: FrozenTrial, ownerless_is_stale: bool) -> bool:
    owner = trial.user_attrs.get(WORKER_ATTR)
    if owner is None:
        return ownerless_is_stale
    host, _, pid = str(owner).rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid))


def fail_stale_trials(study: optuna.Study, ownerless_is_stale: bool = False) -> list[int]:
    """Fail RUNNING trials whose process is gone and enqueue their retries; returns their numbers.

    Two signs of a dead trial, each with its reason recorded in ``fail_reason``: an owner on
    this host whose pid is gone (the precise one, checked first), and, on a storage with a
    heartbeat, a trial silent for longer than the grace period (the owner may be on any
    machine). This does what ``optuna.storages.fail_stale_trials`` does, but writes the reason
    before the trial is failed: a finished trial can no longer be annotated.
    """
    reasons: dict[int, str] = {}
    for trial_id in _silent_trial_ids(study):
        reasons[trial_id] = "its worker stopped sending heartbeats (process or machine gone)"
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _owner_dead(trial, ownerless_is_stale):
            reasons[trial._trial_id] = "its worker process died mid-trial"
    storage = study._storage
    failed = []
    for trial_id, reason in reasons.items():
        try:
            storage.set_trial_user_attr(trial_id, "fail_reason", reason)
            if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker failed it first
        dead = storage.get_trial(trial_id)
        RetryStaleTrial()(study, dead)
        failed.append(dead.number)
    return sorted(failed)


def _silent_trial_ids(study: optuna.Study) -> list[int]:
    """RUNNING trials whose heartbeat is older than the grace period (heartbeat storages only)."""
    storage = study._storage
    if not callable(getattr(storage, "_get_stale_trial_ids", None)) or storage.get_heartbeat_interval() is None:
        return []
    return list(storage._get_stale_trial_ids(study._study_id))


@contextlib.contextmanager
def heartbeat(study: optuna.Study, trial: optuna.Trial) -> Iterator[None]:
    """Record the trial's heartbeat in the background while it runs (RDB storage only)."""
    storage = study._storage
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    if interval is None:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            storage.record_heartbeat(trial._trial_id)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name="gradwise-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def budget_lock(study: optuna.Study, journal: Path | None) -> Iterator[None]:
    """Serialize "count the trials, then ask for one" across workers, so none overshoots.

    PostgreSQL: a session advisory lock keyed by the study id. Journal file: an flock on a
    file beside it. Other databases: no lock (a worker may then start one trial too many).
    """
    engine = _engine(study._storage)
    if engine is not None and engine.dialect.name == "postgresql":
        from sqlalchemy import text

        key = 0x67726164_0000 + study._study_id  # "grad" + study id: unlikely to clash
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
        return
    if journal is None:
        yield
        return
    with open(str(journal) + ".budget-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _engine(storage: Any) -> Any:
    """The SQLAlchemy engine behind a study's storage (Optuna wraps RDBStorage in a cache)."""
    inner = getattr(storage, "_backend", storage)
    return getattr(inner, "engine", None) or getattr(storage, "engine", None)


def storage_journal(storage: Any) -> Path | None:
    """The journal file behind a JournalStorage, for the budget lock; None otherwise."""
    backend = getattr(storage, "_backend", None)
    path = getattr(backend, "_file_path", None)
    return Path(path) if path else None
