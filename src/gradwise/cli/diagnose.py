"""``gradwise diagnose``: train briefly with the gradient monitor on and name what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ._errors import handle_errors
from .options import config_from_options, emit_json, output_options, splits_from_options, training_options
from .report import check_out_dir, publish, report_options

DIAGNOSE_EPOCHS = 20  # long enough for the loss curve to show a trend, short enough to be quick


def _epochs(options: dict[str, Any]) -> int:
    """The user's --epochs if given, else a brief run: a diagnosis needs a trend, not a model."""
    ctx = click.get_current_context()
    if ctx.get_parameter_source("epochs") == click.core.ParameterSource.DEFAULT:
        return DIAGNOSE_EPOCHS
    return options["epochs"]


@click.command("diagnose")
@training_options
@click.option("--every", type=click.IntRange(min=1), default=1, show_default=True, help="Observe every N-th step (1: every step).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Directory for report.html and report.json (what the report is built from).")
@report_options
@output_options
@handle_errors
def command(every: int, out: Path | None, as_json: bool, **options: Any) -> None:
    """Train briefly with the gradient monitor and report gradient flow and findings.

    Takes the same data, model and optimizer options as `gradwise train`; runs
    20 epochs unless --epochs is given. A run whose loss becomes NaN or inf is stopped
    early and diagnosed.

    \b
    Examples:
      gradwise diagnose --layers 10 --activation sigmoid --init normal   # vanishing gradients
      gradwise diagnose --optimizer gd --lr 10                           # diverging loss
      gradwise diagnose --data houses.csv --target price --normalize none --json
    """
    from ..diagnosis import GradientMonitor, render_diagnosis  # here: --help needs no torch
    from ..reporting.tables import stdout_console
    from ..training import fit

    check_out_dir(out)
    config = config_from_options(options, epochs=_epochs(options))
    splits = splits_from_options(options)
    monitor = GradientMonitor(every=every)
    result = fit(config, splits, callbacks=[monitor], progress=False)
    diagnosis = monitor.diagnose(config)
    publish(out, options, "diagnose_document", result, splits, options["data"], monitor, diagnosis)
    if as_json:
        emit_json({**diagnosis.to_dict(), "stop_reason": result.stop_reason, "metrics": result.metrics, "config": config.to_dict()})
        return
    console = stdout_console()
    console.print(f"Trained {result.epochs_run} epochs ({result.updates} updates): {result.stop_reason}", highlight=False)
    render_diagnosis(diagnosis, console)
