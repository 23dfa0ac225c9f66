"""The live line of ``gradwise tune``: trials done, best so far, pruned and failed.

Shown with rich on a terminal (stderr), silent otherwise, so ``--json`` output and logs
stay clean.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import optuna

from .runner import count_trials


def status_line(study: optuna.Study, started: float, metric: str = "") -> str:
    from ..reporting.tables import format_metric

    counts = count_trials(study)
    try:
        best = f"{format_metric(metric, study.best_value)} (trial {study.best_trial.number})"
    except ValueError:
        best = "-"
    label = f"best validation {metric}" if metric else "best"
    return (
        f"trials done {counts.finished} (complete {counts.complete}, pruned {counts.pruned}), "
        f"failed {counts.failed}{f', cut and retried {counts.retried}' if counts.retried else ''}, running {counts.running} | {label} {best} | {time.monotonic() - started:.0f}s"
    )


class LiveDisplay:
    """``with LiveDisplay(enabled, metric) as show: ... show.update(study)``."""

    def __init__(self, enabled: bool | None = None, metric: str = "") -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.metric = metric
        self.started = time.monotonic()
        self._live: Any = None

    def __enter__(self) -> "LiveDisplay":
        if self.enabled:
            from rich.console import Console
            from rich.live import Live

            self._live = Live("starting...", console=Console(stderr=True), refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def update(self, study: optuna.Study) -> None:
        if self._live is not None:
            self._live.update(status_line(study, self.started, self.metric))

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None
