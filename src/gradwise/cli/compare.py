"""``gradwise compare``: every optimizer and gradient-descent variant on the same problem.

The runs and their measures (final losses, epochs and updates to a target loss, oscillation,
zig-zag) are :func:`gradwise.training.comparison.compare_optimizers`; this module parses the
options, checks them before any training, and prints the table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ..config import TrainConfig
from ..errors import ConfigError
from ..reporting.tables import stdout_console
from ._errors import handle_errors
from .options import config_from_options, emit_json, output_options, splits_from_options, training_options
from .report import check_out_dir, publish, report_options

DEFAULT_OPTIMIZERS = "gd,momentum,rmsprop,adam"
DEFAULT_BATCH_SIZES = "full,1,64"
DEFAULT_EPOCHS = 30  # when --epochs is not given: stochastic GD on the default table is slow
# Learning rates that suit each optimizer on normalized inputs, used when --lr is not given:
# one shared rate would leave GD crawling at Adam's 1e-3 or Adam thrashing at GD's 0.1.
DEFAULT_LRS = {"gd": 0.1, "momentum": 0.1, "rmsprop": 1e-3, "adam": 1e-3}

# torch, the optimizers and the training loop are imported by the functions that train, not
# here: `gradwise compare --help` needs none of them, and torch alone takes seconds.


def parse_optimizers(text: str, shared_lr: float | None) -> list[tuple[str, float]]:
    """'gd=0.1,adam' -> [('gd', 0.1), ('adam', <--lr or the default for adam>)]."""
    runs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, lr_text = item.partition("=")
        name = name.strip() if name.strip().lower().startswith("torch:") else name.strip().lower()
        if lr_text:
            try:
                lr = float(lr_text)
            except ValueError:
                raise ConfigError(f"--optimizers item {item!r}: {lr_text!r} is not a learning rate; write NAME or NAME=LR, e.g. gd=0.1") from None
        else:
            lr = shared_lr if shared_lr is not None else DEFAULT_LRS.get(name, TrainConfig.lr)
        runs.append((name, lr))
    if not runs:
        raise ConfigError(f"--optimizers is empty; give a comma-separated list such as {DEFAULT_OPTIMIZERS}")
    return runs


def parse_batch_sizes(text: str) -> list[int | str]:
    sizes = [part.strip() for part in text.split(",") if part.strip()]
    if not sizes:
        raise ConfigError(f"--batch-sizes is empty; give a comma-separated list such as {DEFAULT_BATCH_SIZES}")
    return sizes


def _fmt(value: Any, spec: str = ".4g") -> str:
    if value is None:
        return "—"
    return format(value, spec) if isinstance(value, float) else str(value)


def render(runs: list[dict[str, Any]], target: float | None, title: str, console: Console) -> None:
    table = Table(title=title, caption=f"→target: to reach training loss {_fmt(target)}; "
                  "oscillation: share of the epoch loss curve's movement that went up; "
                  "zig-zag: share of consecutive updates that point against each other")
    for column in ("optimizer", "lr", "variant", "train loss", "val loss", "epochs→target", "updates→target", "seconds", "oscillation", "zig-zag"):
        text = column in ("optimizer", "variant")
        table.add_column(column, justify="left" if text else "right", no_wrap=text)
    for r in runs:
        table.add_row(r["optimizer"], _fmt(r["lr"], "g"), r["variant"], _fmt(r["final_train_loss"]), _fmt(r["final_val_loss"]),
                      _fmt(r["epochs_to_target"]), _fmt(r["updates_to_target"]), _fmt(r["seconds"], ".2f"), _fmt(r["oscillation"], ".2f"),
                      _fmt(r["zigzag"], ".2f"))
    console.print(table)
    for r in runs:
        if not r["stop_reason"].startswith("completed"):
            console.print(f"[dim]{r['optimizer']} / {r['variant']}: {r['stop_reason']}[/dim]")


def _check_optimizers(base: TrainConfig, runs: list[tuple[str, float]]) -> None:
    """Fail on a bad name or rate before any training starts."""
    import torch

    from ..optim import build_optimizer

    probe = [torch.nn.Parameter(torch.zeros(1))]
    for name, lr in runs:
        try:
            build_optimizer(base.replace(optimizer=name, lr=lr), probe)
        except ConfigError as error:  # name the option the user actually wrote
            message = str(error).replace("--optimizer ", "", 1)
            raise ConfigError(f"--optimizers item {name!r}: {message}") from None


@click.command("compare")
@training_options
@click.option("--optimizers", default=DEFAULT_OPTIMIZERS, show_default=True,
              help="Comma-separated NAME or NAME=LR (gd, momentum, rmsprop, adam, torch:NAME). Without =LR: --lr if given, "
                   f"else {', '.join(f'{k} {v:g}' for k, v in DEFAULT_LRS.items())}.")
@click.option("--batch-sizes", default=DEFAULT_BATCH_SIZES, show_default=True,
              help="Comma-separated gradient-descent variants: full (batch), 1 (stochastic), B (mini-batch).")
@click.option("--target-loss", type=float, default=None, help="Training loss to reach; default: the median final training loss.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Directory for report.html and report.json (the runs with their curves).")
@report_options
@output_options
@click.pass_context
@handle_errors
def command(ctx: click.Context, optimizers: str, batch_sizes: str, target_loss: float | None, out: Path | None, as_json: bool, **options: Any) -> None:
    """Train the same model with each optimizer and gradient-descent variant, side by side.

    Every run starts from the same weights on the same split and batch order. Without
    --epochs each run is 30 epochs long (not 100), since stochastic GD is slow.

    \b
    Examples:
      gradwise compare                                   # builtin:digits, 4 optimizers x 3 variants, 30 epochs
      gradwise compare --data builtin:iris --optimizers gd=0.5,momentum=0.5,adam=0.01 --batch-sizes full,16
      gradwise compare --lr 0.01 --batch-sizes 32 --json  # one shared rate; JSON with the loss curves
    """
    from ..training.comparison import compare_optimizers

    explicit = lambda name: ctx.get_parameter_source(name) not in (click.core.ParameterSource.DEFAULT, None)  # noqa: E731
    if not explicit("epochs"):
        options["epochs"] = DEFAULT_EPOCHS
    check_out_dir(out)
    base = config_from_options(options)
    runs = parse_optimizers(optimizers, options["lr"] if explicit("lr") else None)
    sizes = parse_batch_sizes(batch_sizes)
    _check_optimizers(base, runs)
    for size in sizes:
        base.replace(batch_size=size)  # validates each batch size before training
    splits = splits_from_options(options)
    curves = as_json or (out is not None and options["report"]) or options["plots"] is not None
    comparison = compare_optimizers(base, splits, runs, sizes, target_loss, curves)
    target, results = comparison["target_loss"], comparison["runs"]
    document = {"data": options["data"], "seed": base.seed, "epochs": base.epochs, "target_loss": target, "config": base.to_dict(), "runs": results}
    publish(out, options, "compare_document", document, splits, options["data"])
    if as_json:
        emit_json(document)
        return
    render(results, target, f"{options['data']}: {len(splits.train)} training rows, seed {base.seed}", stdout_console())
