"""A Ctrl-C is never lost: one that CPython drops (raised inside a finalizer or a garbage
collector callback, printed as "Exception ignored") still ends the search."""

from __future__ import annotations

import gc
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
