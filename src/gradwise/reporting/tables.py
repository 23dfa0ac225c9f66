"""Tables of a training run's results."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


PIPE_WIDTH = 140  # columns for tables written to a pipe or a file


def stdout_console() -> Console:
    """A console for stdout. A terminal keeps its own width; a pipe or a file (where rich
    would assume 80 columns and cut wide tables into "0.0…") gets PIPE_WIDTH."""
    console = Console()
    return console if console.is_terminal else Console(width=max(console.width, PIPE_WIDTH))


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# Accuracy and R² read best at a fixed precision: "1.0000" and "0.9500", not "1" and "0.95".
FIXED_METRICS = ("accuracy", "r2")


def format_metric(name: str, value: Any) -> str:
    """A metric's value as tables and summaries print it."""
    if name in FIXED_METRICS and isinstance(value, float):
        return f"{value:.4f}"
    return _fmt(value)


def metrics_table(metrics: dict[str, dict[str, float]], title: str = "metrics") -> Table:
    """One row per split (train, val, test), one column per metric."""
    names: list[str] = []
    for values in metrics.values():
        names += [n for n in values if n not in names]
    table = Table(title=title, title_justify="left")
    table.add_column("split")
    for name in names:
        table.add_column(name, justify="right")
    for split, values in metrics.items():
        if values:
            table.add_row(split, *(format_metric(n, values.get(n)) for n in names))
    return table


def render_fit(result: Any, console: Console, model_dir: str | None = None) -> None:
    """Print a FitResult: metrics per split, how training ended, where the model went."""
    units = " (RMSE in the target's units)" if result.task == "regression" else ""
    console.print(metrics_table(result.metrics, title=f"{result.task} results{units}"))
    console.print(f"{result.epochs_run} epochs, {result.updates} updates, {result.seconds:.1f}s; {result.stop_reason}")
    if model_dir:
        console.print(f"model saved to [bold]{model_dir}[/bold]; predict with: gradwise predict --model {model_dir} --data FILE")
