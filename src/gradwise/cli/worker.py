"""``gradwise worker``: join a tuning study from any machine and run its trials."""

from __future__ import annotations

import sys
from typing import Any

import click

from ._errors import handle_errors
from .options import emit_json, output_options

STORAGE_ENV = "GRADWISE_STORAGE"  # tuning/workers.py passes --storage this way


@click.command("worker")
@click.option("--storage", required=True, envvar=STORAGE_ENV, show_envvar=True, help="The study's storage: postgresql://user@host/db, or a study.journal path on this machine. Read from the environment when not given, so a password need not appear in the process list.")
@click.option("--study", "study_name", required=True, help="Name of a study created by gradwise tune.")
@click.option("--timeout", type=float, default=None, help="Stop after this many seconds: no new trial starts, and a running one stops within its training step (pruned once the study has a result) (default: when the study's --trials are done).")
@click.option("--threads", type=click.IntRange(0, 1024), default=0, show_default=True, help="torch threads for this worker; 0: one for trials trained one at a time, and for populations the cores that other processes leave idle.")
@click.option("--heartbeat", "heartbeat_interval", type=int, default=10, show_default=True, help="Seconds between heartbeats (PostgreSQL); a trial silent for 3 heartbeats is retried.")
@click.option("--seed-offset", type=int, default=None, help="Sampler seed = study seed + 1000 × this (default: a random seed).")
@click.option("--quiet", is_flag=True, help="Print nothing when done.")
@output_options
@handle_errors
def command(storage: str, study_name: str, timeout: float | None, threads: int, heartbeat_interval: int, seed_offset: int | None, quiet: bool, as_json: bool) -> None:
    """Run trials of a study that `gradwise tune` created, until its budget is used.

    \b
    Example (on each machine):
      gradwise worker --storage postgresql://me@db.example/optuna --study houses

    A worker killed mid-trial loses only that trial: another worker notices its silent
    heartbeat and runs the trial again.
    """
    from pathlib import Path

    from ..tuning.runner import load_study, run_worker, set_threads
    from ..tuning.storage import open_storage, worker_id

    set_threads(threads)
    backend = open_storage(storage, Path(storage).parent, heartbeat_interval, create=False)
    study, spec = _load(backend, study_name, seed_offset, load_study)
    try:
        ran = run_worker(study, spec, timeout=timeout if timeout is not None else spec.timeout if spec.n_trials is None else None)
    except KeyboardInterrupt:
        click.echo(f"gradwise worker {worker_id()}: interrupted; its running trial is queued again", err=True)
        sys.exit(130)
    summary = {"worker": worker_id(), "study": study_name, "trials_run": ran}
    if as_json:
        emit_json(summary)
    elif not quiet:
        click.echo(f"worker {summary['worker']} ran {ran} trials of study {study_name}")


def _load(backend: Any, study_name: str, seed_offset: int | None, load_study: Any) -> Any:
    import optuna

    from ..errors import ConfigError
    from ..tuning.spec import read_spec

    if study_name not in optuna.get_all_study_names(backend):
        raise ConfigError(f"--study {study_name!r} does not exist in this storage; create it with: gradwise tune --storage URL --study {study_name}")
    spec = read_spec(optuna.load_study(study_name=study_name, storage=backend))
    seed = None if seed_offset is None else spec.seed + 1000 * seed_offset
    return load_study(backend, study_name, spec, worker_seed=seed)
