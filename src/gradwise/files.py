"""Atomic file writes (a file is either complete or absent) and strict JSON."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
from pathlib import Path
from typing import Any, Callable, Iterator

try:
    import fcntl
except ImportError:  # not POSIX: runs on one --out are not kept apart
    fcntl = None

from .errors import GradwiseError


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp_file(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _new_temp_file(path: Path) -> str:
    """A new empty file beside ``path``, with the mode a plain ``open(path, "w")`` gives it
    (0666 less the umask). ``tempfile.mkstemp`` makes it 0600, which every report,
    trials.csv and predictions file kept after the rename: unreadable to the user's group."""
    for _ in range(100):
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temporary name beside {path}")


# What `train` and `tune` write into --out: a bundle (models/bundle.py), a study journal
# (tuning/storage.py), trials.csv and model/ (tuning/result.py). Their presence marks a run
# that a new one must not silently replace; tests/test_bad_input.py keeps the names in step.
RUN_FILES = ("gradwise.json", "model.safetensors", "study.journal", "trials.csv", "model")
# A run's report (reporting/document.py, reporting/page.py). It belongs to the run beside it
# and goes with it, but alone it marks no run (diagnose and compare write one too), and a
# report.html or report.json that gradwise did not write is the user's: never listed.
REPORT_FILES = ("report.html", "report.json")
# `tune --workers N` sends each worker's stderr to LOG_DIR/worker-I.log (tuning/workers.py).
# Like the report, the folder goes with the run beside it, and only while it holds nothing
# but such logs: a logs/ folder with anything else in it is the user's.
LOG_DIR = "logs"
WORKER_LOG = re.compile(r"worker-\d+\.log")


def worker_log_name(index: int) -> str:
    """The name of worker ``index``'s log in LOG_DIR (what :func:`holds_only_worker_logs` recognizes)."""
    return f"worker-{index}.log"


def previous_run(directory: str | Path, reports: bool = False) -> list[str]:
    """The files of an earlier train or tune run found in ``directory`` (none: []).

    With ``reports``, also the report.html and report.json that gradwise wrote beside them,
    and the folder of its workers' logs.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [name for name in RUN_FILES if (directory / name).exists()]
    if reports and found:
        found += [name for name in REPORT_FILES if written_by_gradwise(directory / name)]
        found += [LOG_DIR] if holds_only_worker_logs(directory / LOG_DIR) else []
    return found


def holds_only_worker_logs(folder: Path) -> bool:
    """True when ``folder`` is a directory of worker logs that `tune --workers` wrote, and nothing else."""
    if not folder.is_dir() or folder.is_symlink():
        return False
    entries = list(folder.iterdir())
    return bool(entries) and all(p.is_file() and WORKER_LOG.fullmatch(p.name) for p in entries)


def written_by_gradwise(path: str | Path) -> bool:
    """True when ``path`` is a report.html or report.json that gradwise wrote: the marks
    that ``reporting.page.write_page`` and ``reporting.document.save_document`` check before
    they replace one (the page's generator tag, the document's format)."""
    from .reporting.document import DOCUMENT_NAME, FORMAT
    from .reporting.page import GENERATOR

    path = Path(path)
    mark = {DOCUMENT_NAME: f'"format": "{FORMAT}"'}.get(path.name, GENERATOR)
    try:
        with open(path, "rb") as handle:
            return path.is_file() and mark in handle.read(4096).decode("utf-8", "replace")
    except OSError:
        return False


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when both paths name one existing file (through links and relative paths)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output_dir(path: str | Path, option: str = "--out") -> None:
    """Fail now, before any work, when ``path`` cannot be (or become) a directory we write in."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise GradwiseError(f"{option} '{path}' exists and is a file; give a directory path")
    _check_creatable(path, option)


@contextlib.contextmanager
def claim_output_dir(path: str | Path, option: str = "--out") -> Iterator[Path]:
    """Hold directory ``path`` for this run alone while the block runs, creating it if needed.

    A second run on the same directory is refused with one line instead of interleaving
    with the first: two `tune` runs would share one journal, and a `tune --overwrite` would
    move the running study's files aside under it. The lock is ``flock`` on the directory
    itself, so nothing is written for it and the kernel drops it when the process dies (no
    stale lock after a kill). Directories this call created are removed again on the way out
    when the run left nothing in them.
    """
    path = Path(path)
    created = _missing_chain(path)
    path.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        if fcntl is not None:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise GradwiseError(f"{option} '{path}' is in use by another gradwise run; wait for it to end, or choose another {option}") from None
        yield path
    finally:
        os.close(descriptor)  # releases the lock
        for directory in created:  # deepest first
            with contextlib.suppress(OSError):
                directory.rmdir()  # only when empty


def _missing_chain(path: Path) -> list[Path]:
    """``path`` and those of its ancestors that do not exist yet, deepest first."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def check_output_file(path: str | Path, option: str = "--out") -> None:
    """Fail now when ``path`` cannot be written as a file (a directory, or under a file)."""
    path = Path(path)
    if path.is_dir():
        raise GradwiseError(f"{option} '{path}' is a directory; give a file path such as predictions.csv")
    _check_creatable(path.parent, option, shown=path)


def _check_creatable(path: Path, option: str, shown: Path | None = None) -> None:
    """The nearest existing ancestor of ``path`` must be a directory we may write in."""
    shown = shown or path
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise GradwiseError(f"{option} '{shown}' cannot be created: '{ancestor}' is a file, not a directory; choose another path")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise GradwiseError(f"{option} '{shown}' cannot be written: no write permission in '{ancestor}'; choose another path")


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def jsonable(value: Any) -> Any:
    """Make ``value`` strict JSON: NaN and inf become null, NumPy/torch scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def atomic_write_json(path: str | Path, document: Any) -> Path:
    """Write ``document`` as strict JSON (no NaN or inf) to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(jsonable(document), indent=2, allow_nan=False))
