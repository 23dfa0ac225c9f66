"""A progress bar over epochs, shown only on a terminal."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class EpochProgress:
    """``with EpochProgress(n, enabled) as bar: bar.advance(record)``; a no-op when disabled."""

    def __init__(self, total: int, enabled: bool = True, console: Console | None = None) -> None:
        self.console = console or Console(file=sys.stderr)
        self.enabled = enabled and self.console.is_terminal
        self.total = total
        self._progress: Progress | None = None

    def __enter__(self) -> "EpochProgress":
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]epoch"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("", total=self.total)
        return self

    def advance(self, record: Any) -> None:
        if self._progress is None:
            return
        text = f"loss {record.train_loss:.4g}"
        if record.val_loss is not None:
            text += f"  val {record.val_loss:.4g}"
        self._progress.update(self._task, advance=1, description=text)

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()
