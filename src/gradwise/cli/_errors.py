"""Turn user mistakes into one clear line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import functools
import sys
import warnings
from typing import Any, Callable

import click

from ..errors import GradwiseError

EXIT_USAGE = 2


def fail(message: str) -> None:
    """Print ``gradwise: error: message`` on stderr and exit with code 2."""
    click.echo(f"gradwise: error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _show_note(message, category, filename, lineno, file=None, line=None) -> None:
    """What the data layer did to the table (rows dropped, columns left out) is one stderr line."""
    from ..data import DataWarning

    if issubclass(category, DataWarning):
        click.echo(f"gradwise: note: {message}", err=True)
    else:
        click.echo(warnings.formatwarning(message, category, filename, lineno, line).rstrip(), err=True)


def handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a command body so a GradwiseError ends it with one line and exit 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_note
                return command(*args, **kwargs)
        except GradwiseError as error:
            fail(str(error))
        except KeyboardInterrupt:
            click.echo("gradwise: interrupted", err=True)
            sys.exit(130)

    return wrapper
