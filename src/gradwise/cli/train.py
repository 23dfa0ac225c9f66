"""``gradwise train``: fit an MLP on a table and save it as a bundle."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import click

from ..errors import GradwiseError
from ..models import save_bundle
from ..reporting import render_fit
from ..reporting.tables import stdout_console
from ..training import fit
from ._errors import handle_errors
from .options import config_from_options, emit_json, output_options, splits_from_options, training_options


@click.command("train")
@training_options
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Directory to save the model bundle in.")
@click.option("--monitor", is_flag=True, help="Watch gradient flow during training and report a diagnosis.")
@output_options
@handle_errors
def command(out: Path | None, monitor: bool, as_json: bool, **options: Any) -> None:
    """Train an MLP on a table with the chosen optimizer and gradient-descent variant.

    \b
    Examples:
      gradwise train                                   # builtin:digits, Adam, mini-batches of 64
      gradwise train --data builtin:diabetes --optimizer momentum --lr 0.05
      gradwise train --data houses.csv --target price --batch-size full --out model/
    """
    check_output_dir(out)
    config = config_from_options(options)
    splits = splits_from_options(options)
    monitors = [_new_monitor()] if monitor else []
    result = fit(config, splits, callbacks=monitors, progress=not as_json)
    if out is not None:
        save_bundle(result.model, out, config, result.metrics, {"data": options["data"], "stop_reason": result.stop_reason})
    diagnosis = monitors[0].diagnose() if monitors else None
    if as_json:
        document = {**result.to_dict(), "model_path": str(out) if out else None}
        if diagnosis is not None:
            document["diagnosis"] = diagnosis.to_dict()
        emit_json(document)
        return
    console = stdout_console()
    render_fit(result, console, str(out) if out else None)
    if diagnosis is not None:
        importlib.import_module("gradwise.diagnosis").render_diagnosis(diagnosis, console)


def check_output_dir(out: Path | None) -> None:
    """Fail before training, not after, when the output directory cannot be used."""
    if out is None:
        return
    if out.exists() and not out.is_dir():
        raise GradwiseError(f"--out '{out}' exists and is a file; give a directory path for the model bundle")


def _new_monitor():
    try:
        diagnosis = importlib.import_module("gradwise.diagnosis")
    except ImportError as error:  # pragma: no cover - the diagnosis package ships with gradwise
        raise GradwiseError(f"--monitor is unavailable: {error}") from None
    return diagnosis.GradientMonitor()
