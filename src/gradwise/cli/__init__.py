"""The ``gradwise`` command line: a thin layer over the Python API.

Commands are imported only when run, so ``gradwise --help`` answers at once and a command's
heavy imports (Optuna, for instance) cost nothing to the others.
"""

from __future__ import annotations

import importlib
import sys

import click

# command name -> (module under gradwise.cli, one-line help shown by `gradwise --help`)
COMMANDS = {
    "train": ("train", "Train an MLP on a table and save the model."),
    "predict": ("predict", "Predict with a saved model, in original units or labels."),
    "tune": ("tune", "Tune hyperparameters in the document's order of importance."),
    "worker": ("worker", "Join a tuning study stored in PostgreSQL and run its trials."),
    "compare": ("compare", "Train with each optimizer and gradient-descent variant side by side."),
    "diagnose": ("diagnose", "Train briefly with the gradient monitor and name what is wrong."),
    "chain": ("chain", "Show the document's single-neuron chain: vanishing and exploding gradients."),
    "report": ("report", "Write a run's self-contained report.html again from what it saved."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module = importlib.import_module(f"gradwise.cli.{COMMANDS[name][0]}")
        return module.command

    def main(self, args=None, prog_name=None, **extra):  # type: ignore[override]
        """Usage errors, like every other user error, are one line and exit code 2."""
        try:
            result = super().main(args, prog_name, standalone_mode=False, **extra)
        except click.ClickException as error:
            hint = f" (see {error.ctx.command_path} --help)" if getattr(error, "ctx", None) else ""
            click.echo(f"gradwise: error: {error.format_message()}{hint}", err=True)
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("gradwise: interrupted", err=True)
            sys.exit(130)
        sys.exit(result if isinstance(result, int) else 0)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="gradwise")
def main() -> None:
    """Train, diagnose and tune neural networks on tabular data.

    \b
    Start with:   gradwise tune                      (tunes an MLP on builtin:digits)
    Your table:   gradwise train --data my.csv --target price --out model/
    """
