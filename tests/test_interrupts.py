"""A Ctrl-C is never lost: one that CPython drops (raised inside a finalizer or a garbage
collector callback, printed as "Exception ignored") still ends the search."""

from __future__ import annotations

import gc
import math
import os
import signal
import sys
import time

import pytest

from gradwise.tuning import TuneSpec, tune


@pytest.mark.parametrize("population", ["off", 4])
def test_a_ctrl_c_that_a_gc_callback_swallowed_still_ends_the_search(tmp_path, population):
    started, dropped = time.monotonic(), []

    def ctrl_c_inside_a_collection(phase, info):
        if phase == "start" and not dropped and time.monotonic() > started + 3:
            dropped.append(None)
            os.kill(os.getpid(), signal.SIGINT)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:  # Python runs the handler here; its KeyboardInterrupt is dropped
                pass

    unraisable, seen = sys.unraisablehook, []
    sys.unraisablehook = lambda record: seen.append(record.exc_type)
    gc.callbacks.append(ctrl_c_inside_a_collection)
    spec = TuneSpec(data="builtin:iris", n_trials=None, timeout=40, cv=0, population=population, workers=1, base={"epochs": 30})
    try:
        with pytest.raises(KeyboardInterrupt):
            tune(spec, tmp_path / "run", retrain=False)
        elapsed = time.monotonic() - started
    finally:
        gc.callbacks.remove(ctrl_c_inside_a_collection)
        sys.unraisablehook = unraisable
    assert dropped and KeyboardInterrupt in seen  # CPython did drop the first one
    assert elapsed < 30  # the search ended then, not at its 40-s --timeout


def test_a_swallowed_ctrl_c_ends_a_population_within_its_step(monkeypatch):
    # An epoch of a large table takes minutes: the mark a swallowed SIGINT left must end the
    # population after the step it came in, not at the epoch's end.
    import optuna

    from gradwise.training.population import PopulationTrainer
    from gradwise.tuning import interrupts
    from gradwise.tuning.runner import create_study, load_study, run_worker
    from gradwise.tuning.spec import load_splits

    spec = TuneSpec(data="builtin:digits", n_trials=4, timeout=None, cv=0, population=4, workers=1, base={"epochs": 3, "device": "cpu"})
    splits = load_splits(spec)
    storage = optuna.storages.InMemoryStorage()
    create_study(spec, storage, "s", splits.task)
    study, spec = load_study(storage, "s", spec, worker_seed=0)
    steps, step = [], PopulationTrainer._step

    def step_then_mark(self, *args, **kwargs):
        step(self, *args, **kwargs)
        steps.append(math.ceil(len(splits.train) / max(self.batch_sizes)))  # the steps of this epoch
        if len(steps) == 1:
            interrupts._pending.set()  # what _on_sigint leaves when its KeyboardInterrupt is dropped

    monkeypatch.setattr(PopulationTrainer, "_step", step_then_mark)
    with pytest.raises(KeyboardInterrupt):
        run_worker(study, spec, splits, timeout=None)
    assert len(steps) == 1 and steps[0] > 10  # one step of an epoch of many
    assert not interrupts._pending.is_set()  # the mark is cleared once the search has ended
