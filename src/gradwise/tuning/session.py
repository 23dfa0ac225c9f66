"""``tune()``: create or resume a study, run its trials, and hand back the result.

>>> from gradwise.tuning import TuneSpec, tune
>>> result = tune(TuneSpec(data="builtin:iris", n_trials=3, timeout=None,
...                        base={"epochs": 5}), out_dir="runs/iris")      # doctest: +SKIP
>>> result.best["config"]["lr"]                                           # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path
from typing import Any

import optuna

from ..errors import ConfigError, GradwiseError
from .display import LiveDisplay
from .result import TuneResult, finalize
from .runner import create_study, load_study, run_worker, set_threads
from .spec import SPEC_ATTR, TuneSpec, load_splits, read_spec
from .storage import DEFAULT_HEARTBEAT, fail_stale_trials, is_database_url, journal_path, open_storage
from .workers import failed_workers, start_workers, stop_workers

optuna.logging.set_verbosity(optuna.logging.WARNING)


def default_study_name(spec: TuneSpec) -> str:
    name = spec.data.split(":", 1)[-1]
    return "gradwise-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(name).stem or "data")


def open_session(spec: TuneSpec, out_dir: Path, storage: str | None, study_name: str, resume: bool, heartbeat_interval: int) -> tuple[Any, TuneSpec, bool]:
    """(storage, spec, created): check --resume against what the storage holds."""
    backend = open_storage(storage, out_dir, heartbeat_interval)
    exists = study_name in optuna.get_all_study_names(backend)
    where = storage_label(storage, out_dir)
    if exists and not resume:
        raise ConfigError(f"study {study_name!r} already exists in {where}; pass --resume to continue it, or choose another --out or --study")
    if resume and not exists:
        raise ConfigError(f"--resume: there is no study {study_name!r} in {where} to continue; run without --resume to start it")
    if exists:
        stored = read_spec(optuna.load_study(study_name=study_name, storage=backend))
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


def tune(
    spec: TuneSpec,
    out_dir: str | Path,
    storage: str | None = None,
    study_name: str | None = None,
    resume: bool = False,
    display: bool | None = False,
    retrain: bool = True,
    heartbeat_interval: int = DEFAULT_HEARTBEAT,
    threads: int = 1,
) -> TuneResult:
    """Search ``spec``'s space within its budget; returns the best model and the evidence."""
    out_dir = Path(out_dir)
    set_threads(threads)
    study_name = study_name or default_study_name(spec)
    backend, spec, created = open_session(spec, out_dir, storage, study_name, resume, heartbeat_interval)
    splits = load_splits(spec)
    if created:
        create_study(spec, backend, study_name, splits.task)
    study, spec = load_study(backend, study_name, spec, worker_seed=spec.seed)
    study.set_user_attr(SPEC_ATTR, spec.to_dict())  # a resume may have changed the budget
    embedded = not is_database_url(storage)
    if resume:  # the previous run may have died mid-trial: retry what it left RUNNING
        fail_stale_trials(study, ownerless_is_stale=embedded)
    with LiveDisplay(display, spec.metric_for(splits.task)) as live:
        if spec.workers == 1:
            run_worker(study, spec, splits, timeout=spec.timeout, on_trial=live.update)
        else:
            _run_local_workers(study, spec, storage or str(journal_path(out_dir)), out_dir, live)
    return finalize(study, spec, splits, out_dir, retrain=retrain, progress=live.enabled)


def _run_local_workers(study: optuna.Study, spec: TuneSpec, storage: str, out_dir: Path, live: LiveDisplay) -> None:
    processes = start_workers(spec.workers, storage, study.study_name, spec.timeout, out_dir / "logs")
    try:
        while any(p.poll() is None for p in processes):
            live.update(study)
            time.sleep(1.0)
    except KeyboardInterrupt:
        stop_workers(processes)
        raise
    bad = failed_workers(processes)
    if bad:
        raise GradwiseError(f"{len(bad)} of {len(processes)} worker processes failed (exit codes {bad}); see {out_dir / 'logs'}")
