"""``gradwise predict``: apply a saved model to a table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from ..errors import DataError, GradwiseError
from ..files import atomic_write, check_output_file, same_file
from ..reporting.tables import format_metric, stdout_console
from ._errors import handle_errors
from .options import emit_json, output_options

if TYPE_CHECKING:
    import pandas as pd

PREVIEW_ROWS = 10


@click.command("predict")
@click.option("--model", "model_dir", required=True, type=click.Path(path_type=Path), help="A bundle directory written by gradwise train or tune.")
@click.option("--data", required=True, help="Table to predict for (.csv, .tsv, .parquet, .npz or builtin:NAME).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write the predictions to this CSV file (a new file unless --overwrite; never the --data table).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
@click.option("--weight-column", default=None, help="Column of per-row weights (finite numbers >= 0) that the score on the table's own target is weighted by, as train and tune weight theirs.")
@output_options
@handle_errors
def command(model_dir: Path, data: str, out: Path | None, overwrite: bool, weight_column: str | None, as_json: bool) -> None:
    """Predict labels (with class probabilities) or values in the target's original units.

    If the table also holds the target column, the score on it is reported too.
    """
    from ..inference import predict_table  # here, not at the top: --help needs no torch

    if out is not None:
        check_predictions_path(out, data, overwrite)
    predictions, score = predict_table(model_dir, data, weight_column)
    if out is not None:
        atomic_write(out, lambda tmp: predictions.to_csv(tmp, index=False))
    if as_json:
        emit_json({"model": str(model_dir), "n_rows": len(predictions), "out": str(out) if out else None, "score": score, "predictions": predictions.to_dict(orient="records")})
        return
    _print_summary(predictions, score, out)


def check_predictions_path(out: Path, data: str, overwrite: bool) -> None:
    """Before any work: --out is a new .csv file we can write, and never the input table."""
    check_output_file(out)
    if out.suffix.lower() != ".csv":
        raise DataError(f"--out must be a .csv file, got '{out}'")
    if same_file(out, data):
        raise GradwiseError(f"--out '{out}' is the --data table itself; write the predictions to another file")
    if out.exists() and not overwrite:
        raise GradwiseError(f"--out '{out}' already exists; pass --overwrite to replace it, or choose another file")


def _print_summary(predictions: pd.DataFrame, score: dict[str, Any] | None, out: Path | None) -> None:
    console = stdout_console()
    table = Table(title=f"{len(predictions)} predictions" + ("" if out else f" (first {min(PREVIEW_ROWS, len(predictions))}; save all with --out FILE.csv)"), title_justify="left")
    for column in predictions.columns:
        table.add_column(str(column), justify="right")
    for row in predictions.head(PREVIEW_ROWS).itertuples(index=False):
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)
    if score:
        metrics = ", ".join(f"{k} {format_metric(k, v)}" for k, v in score.items() if k not in ("rows_scored", "weighted"))
        unknown = len(predictions) - score["rows_scored"]
        rows = f" ({score['rows_scored']} rows; {unknown} without a target value left out)" if unknown else ""
        weighted = " (weighted by --weight-column)" if score.get("weighted") else ""
        console.print(f"score on the table's own target{rows}{weighted}: {metrics}")
    if out:
        console.print(f"wrote {out}")
