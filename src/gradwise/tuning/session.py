"""``tune()``: create or resume a study, run its trials, and hand back the result.

>>> from gradwise.tuning import TuneSpec, tune
>>> result = tune(TuneSpec(data="builtin:iris", n_trials=3, timeout=None,
...                        base={"epochs": 5}), out_dir="runs/iris")      # doctest: +SKIP
>>> result.best["config"]["lr"]                                           # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import optuna

from ..errors import ConfigError, GradwiseError
from ..files import LOG_DIR, check_output_dir, claim_output_dir, previous_run
from .display import LiveDisplay
from .result import TRIALS_CSV, TuneResult, finalize, write_trials_csv
from .runner import count_trials, create_study, load_study, local_workers, run_worker, set_threads
from .spec import SPEC_ATTR, TuneSpec, build_objective, load_splits, read_spec
from .storage import DEFAULT_HEARTBEAT, JOURNAL_NAME, fail_stale_trials, is_database_url, check_journal, journal_path, open_storage, remove_journal
from .workers import failed_workers, start_workers, stop_workers

optuna.logging.set_verbosity(optuna.logging.WARNING)


def default_study_name(spec: TuneSpec) -> str:
    name = spec.data.split(":", 1)[-1]
    return "gradwise-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(name).stem or "data")


def open_session(spec: TuneSpec, out_dir: Path, storage: str | None, study_name: str, resume: bool, heartbeat_interval: int,
                 claims: dict[str, tuple[str, Any]] | None = None) -> tuple[Any, TuneSpec, bool]:
    """(storage, spec, created): check --resume against what the storage holds (and against
    ``claims``, the options the caller gave on purpose: see :func:`check_claims`)."""
    if resume and not is_database_url(storage) and not (Path(storage) if storage else journal_path(out_dir)).exists():
        raise ConfigError(f"--resume: there is no study {study_name!r} in {storage_label(storage, out_dir)} to continue; run without --resume to start it")
    backend = open_storage(storage, out_dir, heartbeat_interval)
    exists = study_name in optuna.get_all_study_names(backend)
    where = storage_label(storage, out_dir)
    if exists and not resume:
        raise ConfigError(f"study {study_name!r} already exists in {where}; pass --resume to continue it, or choose another --out or --study")
    if resume and not exists:
        raise ConfigError(f"--resume: there is no study {study_name!r} in {where} to continue; run without --resume to start it")
    if exists:
        study = optuna.load_study(study_name=study_name, storage=backend)
        stored = read_spec(study)
        check_claims(study, stored, claims or {})
        given = spec.n_trials is not None or spec.timeout is not None  # a new budget replaces the stored one
        source = spec if given else stored
        spec = dataclasses.replace(stored, n_trials=source.n_trials, timeout=source.timeout, workers=spec.workers)
    spec.check_budget()
    return backend, spec, not exists


def storage_label(storage: str | None, out_dir: Path) -> str:
    if is_database_url(storage):
        from .storage import _redact

        return _redact(storage)
    return str(Path(storage) if storage else journal_path(out_dir))


def check_claims(study: optuna.Study, stored: TuneSpec, claims: dict[str, tuple[str, Any]]) -> None:
    """Refuse a ``--resume`` whose deliberately given options differ from the study's own.

    ``claims`` maps a spec field (or ``base.NAME``, a training option every trial shares) to
    (how the user wrote it, its value). A resumed study keeps the settings it was created
    with (:func:`open_session`), so a changed one would otherwise be ignored without a word."""
    from .result import metric_of

    config = stored.base_config()
    for name, (flag, value) in claims.items():
        kept = getattr(config, name[5:]) if name.startswith("base.") else getattr(stored, name)
        if name == "metric":  # a study made without --metric has its task's default one
            kept = metric_of(study, stored)
        if _as_stored(kept) != _as_stored(value):
            shown = kept if not isinstance(kept, dict) else "another space"
            raise ConfigError(f"{flag} differs from study {study.study_name!r}, which --resume continues as it was created ({name.removeprefix('base.')} = {json.dumps(shown, default=str)}); "
                              "drop the option, or start a new study (another --out or --study, or --overwrite)")


def _as_stored(value: Any) -> Any:
    """``value`` as the study's JSON holds it (a tuple comes back a list)."""
    return json.loads(json.dumps(value, default=str))


# What a resume may change: this run's budget, not the study.
BUDGET_FIELDS = ("n_trials", "timeout", "workers")


def spec_claims(spec: TuneSpec) -> dict[str, tuple[str, Any]]:
    """A Python caller's claims for :func:`check_claims`: every field of ``spec`` set away from
    its default (and every ``base`` option), as the CLI's are the options typed on purpose.
    Before, ``tune(spec, resume=True)`` continued the stored study and dropped a changed
    ``base={"epochs": 5}`` or ``cv=3`` without a word."""
    plain = TuneSpec()
    claims = {f"base.{name}": (f"base[{name!r}]", value) for name, value in spec.base.items()}
    for item in dataclasses.fields(TuneSpec):
        value = getattr(spec, item.name)
        if item.name not in (*BUDGET_FIELDS, "base") and value != getattr(plain, item.name):
            claims[item.name] = (f"TuneSpec.{item.name}", value)
    return claims


def tune(
    spec: TuneSpec,
    out_dir: str | Path,
    storage: str | None = None,
    study_name: str | None = None,
    resume: bool = False,
    display: bool | None = False,
    retrain: bool = True,
    heartbeat_interval: int = DEFAULT_HEARTBEAT,
    threads: int = 0,
    overwrite: bool = False,
    claims: dict[str, tuple[str, Any]] | None = None,
) -> TuneResult:
    """Search ``spec``'s space within its budget; returns the best model and the evidence.

    Nothing is written before every check has passed (see :func:`prepare`), an ``out_dir``
    holding another run is refused unless ``overwrite``, and a study this call created is
    removed again if the call fails before any trial has completed. With ``overwrite`` the
    earlier run's files are set aside, not deleted, until this run has its result: a run
    that fails or is interrupted (:class:`EarlierRunRestored`) puts them back as they were.
    On ``resume``, ``claims`` (the options the caller set on purpose, as :func:`check_claims`
    reads them; by default every field of ``spec`` away from its default, :func:`spec_claims`)
    must agree with the study's stored settings.
    """
    out_dir = Path(out_dir)
    check_output_dir(out_dir)
    set_threads(threads)
    study_name = study_name or default_study_name(spec)
    if resume and claims is None:
        claims = spec_claims(spec)
    spec, splits = (spec, None) if resume else prepare(spec)  # a resume checks the stored spec instead
    fresh = not out_dir.exists()
    with claim_output_dir(out_dir):  # a second run on this --out is refused from here on
        aside = _Aside.move(out_dir, guard_out_dir(out_dir, storage, study_name, resume, overwrite))
        replacing = aside.folder is not None
        try:
            result = _session(spec, out_dir, storage, study_name, resume, heartbeat_interval, splits, display, retrain, replacing, fresh, claims)
        except BaseException as error:
            aside.restore()
            if replacing and isinstance(error, KeyboardInterrupt):
                raise EarlierRunRestored(str(out_dir)) from error
            raise
        aside.discard()
    return result


class EarlierRunRestored(KeyboardInterrupt):
    """``tune --overwrite`` was interrupted: the earlier run is back in ``out_dir`` as it was."""


class TuneInterrupted(KeyboardInterrupt):
    """A Ctrl-C once some trials had finished: trials.csv lists them, and ``study`` (with its
    ``spec``) holds them, for a report of the search so far
    (:func:`~gradwise.tuning.result.interim_result`). Never raised when the run was replacing
    an earlier one: that run is put back instead (:class:`EarlierRunRestored`)."""

    def __init__(self, study: optuna.Study, spec: TuneSpec) -> None:
        super().__init__()
        self.study, self.spec = study, spec


def _session(spec: TuneSpec, out_dir: Path, storage: str | None, study_name: str, resume: bool, heartbeat_interval: int, splits: Any, display: bool | None, retrain: bool, replacing: bool, fresh: bool,
             claims: dict[str, tuple[str, Any]] | None = None) -> TuneResult:
    """Open the study and run it; a failure removes the study this call created if no trial
    of it completed (an interrupt too, when the run was replacing an earlier one: otherwise
    the study is kept for --resume). ``fresh``: out_dir did not exist before this call."""
    before = _Footprint.take(out_dir, storage, fresh)
    backend, created = None, False
    try:
        backend, spec, created = open_session(spec, out_dir, storage, study_name, resume, heartbeat_interval, claims)
        return _run(spec, out_dir, storage, study_name, resume, backend, created, splits, display, retrain)
    except BaseException as error:
        if created and (replacing or isinstance(error, Exception)):
            before.undo(backend, study_name)
        elif isinstance(error, KeyboardInterrupt) and not replacing and backend is not None:
            study = _list_finished_trials(backend, study_name, out_dir)
            if study is not None:
                raise TuneInterrupted(study, spec) from error
        raise


def _list_finished_trials(backend: Any, study_name: str, out_dir: Path) -> optuna.Study | None:
    """After a Ctrl-C, trials.csv lists what the study holds so far, so the user can see what
    was found without resuming; --resume rewrites it at the end. (Not when the run was
    replacing an earlier one: that run is put back as it was.) Written atomically, so a
    second Ctrl-C leaves the old file or none, never half a file. Returns the study when it
    has finished trials (and trials.csv was written), else None."""
    try:
        study = optuna.load_study(study_name=study_name, storage=backend)
    except KeyError:  # interrupted before the study existed
        return None
    if not count_trials(study).finished:
        return None
    write_trials_csv(study, out_dir / TRIALS_CSV)
    return study


def _run(spec: TuneSpec, out_dir: Path, storage: str | None, study_name: str, resume: bool, backend: Any, created: bool, splits: Any, display: bool | None, retrain: bool) -> TuneResult:
    if splits is None:
        spec, splits = prepare(spec)
    if created:
        create_study(spec, backend, study_name, splits.task)
    study, spec = load_study(backend, study_name, spec, worker_seed=spec.seed)
    study.set_user_attr(SPEC_ATTR, spec.to_dict())  # a resume may have changed the budget
    embedded = not is_database_url(storage)
    if resume:  # the previous run may have died mid-trial: retry what it left RUNNING
        fail_stale_trials(study, ownerless_is_stale=embedded)
    started = time.monotonic()
    with LiveDisplay(display, spec.metric_for(splits.task)) as live:
        if spec.workers == 1:
            run_worker(study, spec, splits, timeout=spec.timeout, on_trial=live.update)
        else:
            _run_local_workers(study, spec, storage or str(journal_path(out_dir)), out_dir, live)
    return finalize(study, spec, splits, out_dir, retrain=retrain, progress=live.enabled, search_seconds=time.monotonic() - started)


def prepare(spec: TuneSpec) -> tuple[TuneSpec, Any]:
    """Every check that needs the configuration or the data, run before any file is written.

    The base configuration and the space are built, the table is loaded and split, and the
    objective is built once (folds against rows, the metric against the task), so a bad
    --activation, a bad value in the space file's ``fixed`` table or too many --cv folds
    stop the run with nothing created. Returns the spec with its worker count resolved
    (:func:`~gradwise.tuning.runner.local_workers`) and the splits.
    """
    spec.check_budget()
    spec.base_config()
    splits = load_splits(spec)
    spec = dataclasses.replace(spec, workers=local_workers(spec, splits))
    build_objective(spec, splits)
    return spec, splits


def guard_out_dir(out_dir: Path, storage: str | None, study_name: str, resume: bool, overwrite: bool) -> list[str]:
    """Refuse an ``out_dir`` that holds another run, unless ``overwrite``: then return the
    names of its files (its report too, if gradwise wrote it) for :class:`_Aside` to move."""
    _refuse_left_aside(out_dir)
    used = [] if resume else previous_run(out_dir)
    if not used:
        return []
    if overwrite:
        return previous_run(out_dir, reports=True)
    if JOURNAL_NAME in used and not is_database_url(storage) and storage is None and study_name in _study_names(journal_path(out_dir)):
        raise ConfigError(f"study {study_name!r} already exists in {journal_path(out_dir)}; pass --resume to continue it, --overwrite to replace it, or choose another --out or --study")
    raise ConfigError(f"--out '{out_dir}' already holds another run ({', '.join(used)}); pass --overwrite to replace it, or choose another --out")


def _refuse_left_aside(out_dir: Path) -> None:
    """A ``tune --overwrite`` killed outright (SIGKILL, power loss) could not put the earlier
    run back: its files wait in a hidden folder, and only the user can say which run to keep."""
    left = sorted(out_dir.glob(ASIDE_PREFIX + "*")) if out_dir.is_dir() else []
    if left:
        raise ConfigError(f"'{left[0]}' holds the files of an earlier run that an interrupted `tune --overwrite` set aside; move them back into '{out_dir}' (after removing the files that replaced them) to restore that run, or delete the folder to keep what is in '{out_dir}'")


def _study_names(journal: Path) -> set[str]:
    """Names of the studies a journal created, read without taking its lock (which would
    create a lock file in a directory this run is about to refuse)."""
    check_journal(journal)
    names = set()
    with open(journal, "rb") as handle:
        for line in handle:
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("op_code") == 0:  # CREATE_STUDY
                    names.add(record.get("study_name"))
    return names


ASIDE_PREFIX = ".gradwise-replaced-"  # + pid: where --overwrite keeps the earlier run meanwhile
_JOURNAL_LOCKS = (".flock", ".budget-lock")  # the lock files beside a journal (storage.py)


def _remove(out_dir: Path, names: list[str]) -> None:
    """Delete these run files of ``out_dir`` (a journal with its lock files)."""
    for name in names:
        path = out_dir / name
        if name == JOURNAL_NAME:
            remove_journal(path)
        elif path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


@dataclasses.dataclass
class _Aside:
    """--overwrite: the earlier run's files (only those gradwise writes), moved into a hidden
    folder inside ``out_dir`` (one rename each, so the same file system) until the new run
    has a result (:meth:`discard`), or put back when it has none (:meth:`restore`)."""

    out_dir: Path
    folder: Path | None = None  # None: nothing was set aside
    names: list[str] = dataclasses.field(default_factory=list)  # what the folder holds

    @classmethod
    def move(cls, out_dir: Path, names: list[str]) -> "_Aside":
        if not names:
            return cls(out_dir)
        aside = cls(out_dir, out_dir / f"{ASIDE_PREFIX}{os.getpid()}")
        aside.folder.mkdir()
        parts = [*names, *(JOURNAL_NAME + lock for lock in _JOURNAL_LOCKS if JOURNAL_NAME in names)]
        try:
            for part in parts:
                if (out_dir / part).exists():
                    os.replace(out_dir / part, aside.folder / part)
                    aside.names.append(part)
        except BaseException:
            aside._put_back()  # nothing new was written yet: only undo the moves
            raise
        return aside

    def restore(self) -> None:
        """Delete what the new run wrote in the earlier one's place, and put the earlier back."""
        if self.folder is not None:
            # A path this run emptied holds only what the new run wrote there since (a new
            # logs/ even when no run file was written, as with --storage on PostgreSQL).
            vacated = [name for name in self.names if (self.out_dir / name).exists()]
            _remove(self.out_dir, sorted({*previous_run(self.out_dir, reports=True), *vacated}))
            self._put_back()

    def _put_back(self) -> None:
        for name in self.names:
            os.replace(self.folder / name, self.out_dir / name)  # a file replaces a new lock file
        self.folder.rmdir()
        self.folder = None

    def discard(self) -> None:
        """The new run has its result: the earlier one is replaced for good."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


@dataclasses.dataclass
class _Footprint:
    """What existed before a run, so a run that fails before its first trial leaves no trace."""

    out_dir: Path
    journal: Path | None  # the embedded journal this run may create; None for a database
    had_out_dir: bool
    had_journal: bool

    @classmethod
    def take(cls, out_dir: Path, storage: str | None, fresh: bool) -> "_Footprint":
        journal = None if is_database_url(storage) else (Path(storage) if storage else journal_path(out_dir))
        return cls(out_dir, journal, not fresh, journal is not None and journal.exists())

    def undo(self, backend: Any, study_name: str) -> None:
        """Remove the study this run created, if no trial of it completed.

        Such a study holds nothing to keep, and left behind it would trap the user: the same
        command again is refused ("already exists"), and --resume repeats the failure.
        """
        try:
            study = optuna.load_study(study_name=study_name, storage=backend)
        except KeyError:  # the failure came before the study was created
            study = None
        if study is not None and count_trials(study).complete:
            return
        if self.journal is not None and not self.had_journal:
            remove_journal(self.journal)
        elif study is not None:
            optuna.delete_study(study_name=study_name, storage=backend)
        if not self.had_out_dir:  # claim_output_dir removes the folder itself once empty
            shutil.rmtree(self.out_dir / LOG_DIR, ignore_errors=True)


def _run_local_workers(study: optuna.Study, spec: TuneSpec, storage: str, out_dir: Path, live: LiveDisplay) -> None:
    processes = start_workers(spec.workers, storage, study.study_name, spec.timeout, out_dir / LOG_DIR)
    try:
        while any(p.poll() is None for p in processes):
            live.update(study)
            time.sleep(1.0)
    except KeyboardInterrupt:
        stop_workers(processes)
        raise
    bad = failed_workers(processes)
    if bad:
        raise GradwiseError(f"{len(bad)} of {len(processes)} worker processes failed (exit codes {bad}); see {out_dir / LOG_DIR}")
