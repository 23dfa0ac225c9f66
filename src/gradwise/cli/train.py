"""``gradwise train``: fit an MLP on a table and save it as a bundle."""

from __future__ import annotations

import contextlib
import importlib
from pathlib import Path
from typing import Any

import click

from .. import files
from ..errors import GradwiseError
from ._errors import handle_errors
from .options import config_from_options, emit_json, output_options, splits_from_options, training_options, weight_option
from .report import publish, report_options


@click.command("train")
@training_options
@weight_option
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Directory to save the model bundle in (one that holds no earlier run, unless --overwrite).")
@click.option("--overwrite", is_flag=True, help="Replace the model or run already in --out.")
@click.option("--monitor", is_flag=True, help="Watch gradient flow during training and report a diagnosis.")
@report_options
@output_options
@handle_errors
def command(out: Path | None, overwrite: bool, monitor: bool, as_json: bool, **options: Any) -> None:
    """Train an MLP on a table with the chosen optimizer and gradient-descent variant.

    \b
    Examples:
      gradwise train                                   # builtin:digits, Adam, mini-batches of 64
      gradwise train --data builtin:diabetes --optimizer momentum --lr 0.05
      gradwise train --data houses.csv --target price --batch-size full --out model/
      gradwise train --data visits.csv --target bought --weight-column visits
    """
    from ..models import save_bundle  # here, not at the top: --help needs no torch
    from ..reporting import render_fit
    from ..reporting.tables import stdout_console
    from ..training.baseline import against_a_constant
    from ..training import fit

    check_output_dir(out, overwrite)
    config = config_from_options(options)
    splits = splits_from_options(options)
    monitors = [_new_monitor()] if monitor else []
    # --out is held from its check to the last file, so a tune or train started meanwhile on
    # the same folder is refused instead of mixing its files with this run's.
    with files.claim_output_dir(out) if out is not None else contextlib.nullcontext():
        check_output_dir(out, overwrite)  # again, now that no other run can write there
        result = fit(config, splits, callbacks=monitors, progress=not as_json)
        refuse_diverged(result, out)
        if out is not None:
            save_bundle(result.model, out, config, result.metrics, {"data": options["data"], "stop_reason": result.stop_reason})
            if overwrite and not options.get("report", True):
                _remove_stale_reports(out)
        diagnosis = monitors[0].diagnose() if monitors else None
        publish(out, options, "train_document", result, splits, options["data"], monitors[0] if monitors else None, diagnosis)
    baseline, warning = against_a_constant(result.metrics.get("test", {}), splits)
    if as_json:
        document = {**result.to_dict(), "model_path": str(out) if out else None, "constant_baseline": {"test": baseline}, "warnings": [warning] if warning else []}
        if diagnosis is not None:
            document["diagnosis"] = diagnosis.to_dict()
        emit_json(document)
        return
    console = stdout_console()
    render_fit(result, console, str(out) if out else None)
    if warning:
        console.print(f"[yellow]warning: {warning}[/yellow]")
    if diagnosis is not None:
        importlib.import_module("gradwise.diagnosis").render_diagnosis(diagnosis, console)


def _remove_stale_reports(out: Path) -> None:
    """--overwrite --no-report: the earlier run's report (only one gradwise wrote) would
    describe a model that is no longer there."""
    for name in files.REPORT_FILES:
        if files.written_by_gradwise(out / name):
            (out / name).unlink()


def check_output_dir(out: Path | None, overwrite: bool = False) -> None:
    """Fail before training, not after, when the output directory cannot be used."""
    if out is None:
        return
    files.check_output_dir(out)
    used = files.previous_run(out)
    if used and not overwrite:
        raise GradwiseError(f"--out '{out}' already holds a run ({', '.join(used)}); pass --overwrite to replace it, or choose another --out")


def refuse_diverged(result: Any, out: Path | None) -> None:
    """A diverged run is not a model: say so (exit 2) and save nothing."""
    from ..models.bundle import DivergedError, diverged

    reason = diverged(result.model, result.metrics)
    if reason:
        saved = f"no model was saved to {out}" if out is not None else "there is no model"
        detail = result.stop_reason.split(":")[0] if result.diverged else reason
        raise DivergedError(f"training diverged ({detail}): {saved}; lower the learning rate (--lr) or clip gradients (--clip-grad 1)")


def _new_monitor():
    try:
        diagnosis = importlib.import_module("gradwise.diagnosis")
    except ImportError as error:  # pragma: no cover - the diagnosis package ships with gradwise
        raise GradwiseError(f"--monitor is unavailable: {error}") from None
    return diagnosis.GradientMonitor()
