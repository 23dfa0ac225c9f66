"""The trial loop every worker runs, in-process or as ``gradwise worker``.

It is Optuna's ask-and-tell loop (``study.ask()`` → ``objective(trial)`` → ``study.tell``)
rather than ``study.optimize``, for one reason: the trial budget is shared by every worker
of the study, so "count the trials, then ask for one" happens under a lock
(:func:`~gradwise.tuning.storage.budget_lock`) and the study ends with exactly ``--trials``
finished trials, none lost, none extra. Before each trial the loop fails and re-enqueues
trials whose worker died (:func:`~gradwise.tuning.storage.fail_stale_trials`); a worker that
finds the budget taken keeps waiting while other trials are still running, because one of
them may die and need a retry.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from ..budget import AVAILABLE_SHARE, available_memory, max_workers
from .interrupts import raise_pending, sticky_interrupts
from .objective import deadline_passed
from .populations import ASK_SECONDS
from .spec import SPEC_ATTR, TuneSpec, build_objective, load_splits, read_spec
from .storage import RetryStaleTrial, WORKER_ATTR, budget_lock, fail_stale_trials, heartbeat, retried_numbers, storage_journal, worker_id
from .strategies import make_pruner, make_sampler, untuned_params

POLL_SECONDS = 0.5
FAIL_LIMIT = 3  # stop after this many times --trials failed trials: something is broken
# A search whose first this-many trials all failed stops, whatever its budget: the fault is
# in the data or the space, and it would otherwise fail trial after trial until --timeout
# (on a table every trial of which raised, 1,744 failures in a 25-second search).
FAILS_WITHOUT_RESULT = 20


@dataclass
class Counts:
    """Trials by state. ``retried``: failed trials that were cut, not broken (a Ctrl-C, or
    a worker that died, ended them) and were queued again; ``failed`` counts only the rest,
    so an interrupted search does not look broken to the stop rules or to the user."""

    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0
    retried: int = 0

    @property
    def finished(self) -> int:
        return self.complete + self.pruned


def count_trials(study: optuna.Study) -> Counts:
    counts = Counts()
    names = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed", TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    for trial in trials:
        name = "retried" if trial.state == TrialState.FAIL and trial.number in retried else names.get(trial.state)
        if name:
            setattr(counts, name, getattr(counts, name) + 1)
    return counts


def direction_of(metric: str) -> str:
    from .objective import METRICS

    return METRICS[metric]


def create_study(spec: TuneSpec, storage: Any, study_name: str, task: str) -> optuna.Study:
    """A new study holding ``spec``; its first trial is queued with the defaults (the untuned run)."""
    study = optuna.create_study(storage=storage, study_name=study_name, direction=direction_of(spec.metric_for(task)))
    study.set_user_attr(SPEC_ATTR, spec.to_dict())
    study.enqueue_trial(untuned_params(spec.search_space()), user_attrs={"untuned": True})
    return study


def load_study(storage: Any, study_name: str, spec: TuneSpec | None = None, worker_seed: int | None = None) -> tuple[optuna.Study, TuneSpec]:
    """Open an existing study with the sampler and pruner its spec asks for."""
    probe = optuna.load_study(study_name=study_name, storage=storage)
    spec = spec or read_spec(probe)
    epochs = spec.base_config().epochs
    liar = getattr(spec, "population", "off") != "off"  # trials asked together spread out
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=make_sampler(spec.strategy, worker_seed, constant_liar=liar), pruner=make_pruner(spec.pruner, epochs))
    return study, spec


def failed_from_the_start(counts: Counts) -> bool:
    """Whether the first :data:`FAILS_WITHOUT_RESULT` trials all failed."""
    return counts.finished == 0 and counts.failed >= FAILS_WITHOUT_RESULT


def search_over(counts: Counts, limit: int | None) -> bool:
    """Whether no more trials should start: ``limit`` trials have finished, or the failures
    say something is broken (:data:`FAIL_LIMIT`, :func:`failed_from_the_start`)."""
    if failed_from_the_start(counts):
        return True
    return limit is not None and (counts.finished >= limit or counts.failed >= FAIL_LIMIT * limit)


def _take_trial(study: optuna.Study, spec: TuneSpec, journal: Path | None) -> tuple[optuna.Trial | None, bool]:
    """(trial, done): a new trial within the shared budget, or None to wait, or done."""
    with budget_lock(study, journal):
        counts = count_trials(study)
        limit = spec.n_trials
        if search_over(counts, limit):
            return None, True
        if limit is not None and counts.finished + counts.running >= limit:
            return None, False
        if spec.strategy == "staged":
            enqueue_alpha_grid(study, spec)
        trial = study.ask()
        trial.set_user_attr(WORKER_ATTR, worker_id())
        return trial, False


def _take_trials(study: optuna.Study, spec: TuneSpec, journal: Path | None, n: int, configure: Callable[..., Any],
                 like: Any = None) -> tuple[list[tuple[optuna.Trial, Any]], bool]:
    """(trials, done): up to ``n`` new trials within the shared budget, asked under one lock.

    Each is configured (``configure(trial, like)``, its TrainConfig or the error it raised)
    right after its ask, as a one-at-a-time trial is: the staged plan reads the budget spent
    so far, and the trials asked after it must count as started only once it has its stage.
    ``like``: (trial, TrainConfig) of the trial whose population these are to fill; without
    it, the first trial asked opens a population and the others are asked to fill it
    (:func:`~gradwise.tuning.populations.shaped_space`)."""
    trials: list[tuple[optuna.Trial, Any]] = []
    with budget_lock(study, journal):
        counts = count_trials(study)
        limit = spec.n_trials
        if search_over(counts, limit):
            return [], True
        if limit is not None and (spec.workers != 1 or journal is None):
            # Other workers may share the study (local ones, or any machine on a database):
            # leave them a share of what is left instead of taking a whole population's worth.
            n = min(n, max(1, math.ceil((limit - counts.finished - counts.running) / 2)))
        while len(trials) < n and (limit is None or counts.finished + counts.running + len(trials) < limit):
            if spec.strategy == "staged":
                enqueue_alpha_grid(study, spec)
            started = time.monotonic()
            trial = study.ask()
            trial.set_user_attr(WORKER_ATTR, worker_id())
            try:
                config = configure(trial, None if _queued(study, trial) else like)
            except Exception as error:  # noqa: BLE001 - told as FAIL by the population objective
                trials.append((trial, error))
                continue
            # The sampler's time is part of the trial's cost, as in a one-at-a-time trial's
            # duration: Budget.spent would otherwise run behind the clock.
            trial.set_user_attr(ASK_SECONDS, time.monotonic() - started)
            trials.append((trial, config))
            like = like or (trial, config)
    return trials, False


def _queued(study: optuna.Study, trial: optuna.Trial) -> bool:
    """Whether the trial came from the queue (the untuned run, the α grid, a retry): its values
    are fixed already, so it is configured as it is, whatever population it then fits.

    Read from the copy of the trial that ``ask`` fetched already (Optuna keeps it to look up
    fixed values), not from the storage again: one round trip less per trial on PostgreSQL."""
    frozen = getattr(trial, "_cached_frozen_trial", None)
    attrs = frozen.system_attrs if frozen is not None else study._storage.get_trial(trial._trial_id).system_attrs
    return "fixed_params" in attrs


def enqueue_alpha_grid(study: optuna.Study, spec: TuneSpec) -> None:
    """Queue the next point of the high stage's α grid (:func:`~gradwise.tuning.strategies.alpha_grid`).

    One at a time, just before a trial is asked for and under the budget lock: queued all at
    creation, the grid would outlive a small budget as never-run WAITING trials, and two
    workers would each queue it. The grid runs in full even when the high stage's share is
    spent first (a small --trials budget): its trials are the high stage's whole point.
    """
    from .strategies import alpha_grid

    trials = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.WAITING for t in trials):
        return
    used = {t.user_attrs.get("grid") for t in trials}
    for index, params in enumerate(alpha_grid(spec.search_space())):
        if index not in used:
            study.enqueue_trial(params, user_attrs={"stage": 0, "grid": index})
            return


def run_one(study: optuna.Study, trial: optuna.Trial, objective: Callable[[optuna.Trial], float]) -> TrialState:
    """Run and tell one trial. Ctrl-C fails it and queues its retry before re-raising."""
    with heartbeat(study, trial):
        try:
            value = objective(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
            return TrialState.PRUNED
        except KeyboardInterrupt:
            trial.set_user_attr("fail_reason", "interrupted (SIGINT)")
            study.tell(trial, state=TrialState.FAIL)
            RetryStaleTrial()(study, study._storage.get_trial(trial._trial_id))
            raise
        except Exception as error:  # a trial's own failure must not end the study
            trial.set_user_attr("fail_reason", f"{type(error).__name__}: {error}")
            study.tell(trial, state=TrialState.FAIL)
            return TrialState.FAIL
    if not math.isfinite(value):
        study.tell(trial, state=TrialState.PRUNED)
        return TrialState.PRUNED
    study.tell(trial, value)
    return TrialState.COMPLETE


def _population_size(spec: TuneSpec, splits: Any) -> int:
    """Trials per population for this worker (0: one trial at a time)."""
    from .populations import resolve_population

    return resolve_population(getattr(spec, "population", "off"), len(splits.train))


# --workers auto (local_workers): the shortest --timeout, and the fewest populations per
# worker under --trials, that pay for a second worker's start; and what a worker holds
# resident: torch, Optuna, the table and a population (digits: 600 MB).
WORKER_MIN_TIMEOUT = 60.0
WORKER_MIN_POPULATIONS = 4
WORKER_BYTES = 800 * 2**20


def _on_gpu(spec: TuneSpec) -> bool:
    from ..training.loop import resolve_device

    return resolve_device(spec.base_config().device).type == "cuda"


def local_workers(spec: TuneSpec, splits: Any) -> int:
    """The worker processes ``spec.workers`` asks for; "auto" resolves to one per free core
    (:func:`free_cores`) when trials train in populations, and to one otherwise.

    Why processes for populations: a population's step is too small to split across two
    threads well (0.9-1.3x on the 2-core machine), while a second process trains its own
    population as the first asks the sampler for its next trials. The README's default
    search (digits, 60 s) finished 150 trials on two workers against 69 on one. Trials one
    at a time stay in one process, as ``--population off`` always ran. A worker costs about
    5 s to start (torch's import, the table's load), so a short search stays in one process:
    under :data:`WORKER_MIN_TIMEOUT` seconds, or with a --trials budget that gives each worker
    fewer than :data:`WORKER_MIN_POPULATIONS` populations (on the 2-core machine, diabetes
    --trials 30 ran 20 s longer on two workers than on one; in 30-second searches on diabetes,
    benchmarks/tune_efficiency.py, two workers reached plain Optuna's best in a median 0.60
    of the budget, against 0.21 in one process, with 5 of the 30 s spent starting). On a GPU
    one process trains the population in one group, so auto stays at one there; and no more
    workers start than the available memory holds at :data:`WORKER_BYTES` each."""
    if spec.workers != "auto":
        return spec.workers
    population = _population_size(spec, splits)
    if not population or (spec.timeout is not None and spec.timeout < WORKER_MIN_TIMEOUT) or _on_gpu(spec):
        return 1
    workers = min(free_cores(), max_workers(), int(available_memory() * AVAILABLE_SHARE) // WORKER_BYTES)
    if spec.n_trials is not None:
        workers = min(workers, spec.n_trials // (WORKER_MIN_POPULATIONS * population))
    return max(1, workers)


def _shaped_configure(objective: Any) -> Callable[[optuna.Trial, Any], Any]:
    """configure(trial, like): the trial's TrainConfig, held to the population of ``like``
    ((trial, TrainConfig) of the trial that opened it) when given and the trials are not
    cross-validated (see :data:`~gradwise.tuning.populations.SHAPED_FOLDS`)."""
    from .populations import SHAPED_FOLDS, shaped_space

    shaped = len(objective.folds or [objective.splits]) <= SHAPED_FOLDS

    def configure(trial: optuna.Trial, like: Any) -> Any:
        if like is None or not shaped:
            return objective.config_for(trial)
        return objective.config_for(trial, shaped_space(objective.space, like[1]))

    return configure


def _population_objective(objective: Any, spec: TuneSpec) -> Any:
    from .populations import PopulationObjective

    return PopulationObjective(objective, monitor=spec.monitor)


# --threads 0 ("auto"): one torch thread for one-at-a-time trials, whose small steps run
# fastest on one, and the free cores for populations, whose batched steps are big enough to
# split. Set by set_threads, read by run_worker.
_auto_threads = False


def set_threads(threads: int) -> None:
    """torch's thread count for this worker; 0 means auto (see :func:`population_threads`)."""
    import torch

    global _auto_threads
    _auto_threads = threads == 0
    torch.set_num_threads(max(1, threads))


def free_cores(window: float = 0.2) -> int:
    """Cores of this process's that other processes leave idle now (at least 1).

    Why it matters: a torch thread that shares its core with another busy process makes
    every batched step wait for it; on the 2-core machine a population ran 2-5x slower on
    two threads than on one while a test suite ran beside it. Measured from /proc/stat over
    ``window`` seconds (while this process waits), since the load average still counts
    whatever ran in the last minute; elsewhere the load average is all there is."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    busy = _busy_cores(window)
    return max(1, min(cores, math.floor(cores - busy + 0.5)))


def _busy_cores(window: float) -> float:
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        return sum(fields[:8]), fields[3] + fields[4]  # all time (less guest), idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(window)
        total1, idle1 = sample()
        return (os.cpu_count() or 1) * (1 - (idle1 - idle0) / max(1, total1 - total0))
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]
        except OSError:
            return 0.0


@contextlib.contextmanager
def population_threads():
    """Under --threads auto, populations train on the free cores; the count is restored after."""
    import torch

    before = torch.get_num_threads()
    if _auto_threads:
        torch.set_num_threads(free_cores())
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_worker(
    study: optuna.Study,
    spec: TuneSpec,
    splits: Any = None,
    timeout: float | None = None,
    on_trial: Callable[[optuna.Study], None] | None = None,
    ownerless_is_stale: bool = False,
) -> int:
    """Run trials until the study's budget is used or ``timeout`` seconds pass; returns trials run.

    Set torch's thread count before calling (see :func:`set_threads`): the models are small,
    and on a busy CPU a second intra-op thread makes each step many times slower, not faster.
    """
    splits = splits if splits is not None else load_splits(spec)
    population = _population_size(spec, splits)
    with sticky_interrupts(), population_threads() if population else contextlib.nullcontext():
        return _run_worker(study, spec, splits, population, timeout, on_trial, ownerless_is_stale)


def _run_worker(study: optuna.Study, spec: TuneSpec, splits: Any, population: int, timeout: float | None,
                on_trial: Callable[[optuna.Study], None] | None, ownerless_is_stale: bool) -> int:
    objective = build_objective(spec, splits)
    journal = storage_journal(study._storage)
    deadline = None if timeout is None else time.monotonic() + timeout
    objective.deadline = deadline
    ran = 0
    fail_stale_trials(study, ownerless_is_stale=ownerless_is_stale)
    configure = _shaped_configure(objective)
    while not deadline_passed(deadline):
        raise_pending()
        fail_stale_trials(study)
        if population:  # several trials trained as one batched network (tuning/populations.py)
            trials, done = _take_trials(study, spec, journal, population, configure)
            if done or (not trials and spec.n_trials is None):
                break
            if not trials:
                time.sleep(POLL_SECONDS)
                continue
            more = lambda n, like: _take_trials(study, spec, journal, n, configure, like)[0]  # noqa: E731 - refills the population
            ran += len(_population_objective(objective, spec).run(study, trials, more, population, on_trial))
            continue
        trial, done = _take_trial(study, spec, journal)
        if done:
            break
        if trial is None:
            if spec.n_trials is None:
                break
            time.sleep(POLL_SECONDS)
            continue
        run_one(study, trial, objective)
        ran += 1
        if on_trial is not None:
            on_trial(study)
    return ran
