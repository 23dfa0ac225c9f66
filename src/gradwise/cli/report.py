"""``gradwise report RUN_DIR``: write a run's report.html again from what the run saved,
and the ``--report/--no-report`` and ``--plots DIR`` options of train, diagnose, compare and tune."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import click

from ._errors import handle_errors


def _plots_dir(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Refuse a --plots directory that cannot be created now, not after training."""
    from ..errors import GradwiseError
    from ..files import check_output_dir

    if value is not None:
        try:
            check_output_dir(value, "--plots")
        except GradwiseError as error:
            raise click.BadParameter(str(error).removeprefix("--plots "), ctx, param) from None
    return value


PLOTS_HELP = "Also write the report's figures as PNG files into this directory (no browser needed)."


def report_options(function: Callable) -> Callable:
    """--report/--no-report and --plots DIR, read by :func:`publish`."""
    function = click.option("--plots", type=click.Path(path_type=Path, file_okay=False), default=None, callback=_plots_dir, help=PLOTS_HELP)(function)
    return click.option("--report/--no-report", "report", default=True, show_default=True,
                        help="Write report.html (one self-contained page; open it in any browser) and report.json into the output directory.")(function)


def publish(out: Path | None, options: dict[str, Any], builder: str, *args: Any, study: Any = None) -> Path | None:
    """Write the run's report.json and report.html into ``out`` (unless --no-report) and the
    PNGs into --plots. ``builder`` names the function of :mod:`gradwise.reporting.runs` that
    makes the report document from ``args``; it runs (and plotly loads) only when needed."""
    from ..reporting import runs
    from ..reporting.api import save_run, write_document_report

    report, plots = options.get("report", True) and out is not None, options.get("plots")
    if not report and plots is None:
        return None
    document = getattr(runs, builder)(*args)
    if isinstance(document, tuple):  # a tune's document comes with its study
        document, study = document
    if report:
        path = save_run(out, document, study, plots)
        click.echo(f"report: {path} (open it in a browser; it needs no network)", err=True)
        return path
    write_document_report(document, None, study, plots)
    return None


@click.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--storage", default=None, help="Where the tuning study lives, when report.json cannot say (a database URL with a password).")
@click.option("--plots", type=click.Path(path_type=Path, file_okay=False), default=None, callback=_plots_dir, help=PLOTS_HELP)
@handle_errors
def command(run_dir: Path, storage: str | None, plots: Path | None) -> None:
    """Write RUN_DIR/report.html again from what a train, diagnose, compare or tune run saved.

    \b
    Examples:
      gradwise report model/                 # after gradwise train --out model/
      gradwise report runs/tune-digits --plots figures/
    """
    from ..reporting.api import rebuild

    path = rebuild(run_dir, storage, plots)
    click.echo(f"report: {path} (open it in a browser; it needs no network)")
    sys.stdout.flush()



def check_out_dir(out: Path | None) -> None:
    """Fail before any training when --out names a file or holds a report.html or
    report.json that gradwise did not write."""
    if out is None:
        return
    from ..errors import GradwiseError
    from ..reporting.document import DOCUMENT_NAME, REPORT_NAME, FORMAT
    from ..reporting.page import GENERATOR

    if out.exists() and not out.is_dir():
        raise GradwiseError(f"--out '{out}' exists and is a file; give a directory for report.html")
    from ..files import check_output_dir

    check_output_dir(out)  # not under a regular file, and writable (H9a, issue 9)
    for name, mark in ((REPORT_NAME, GENERATOR), (DOCUMENT_NAME, f'"format": "{FORMAT}"')):
        path = out / name
        if path.is_file() and mark not in path.read_text(errors="replace")[:4096]:
            raise GradwiseError(f"'{path}' exists and was not written by gradwise; move it away or choose another --out")
