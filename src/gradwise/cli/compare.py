"""``gradwise compare``: every optimizer and gradient-descent variant on the same problem.

Each run starts from the same initial weights (the same --seed), sees the same split and
the same batch order, and differs only in the optimizer, its learning rate and the batch
size. The table makes the document's section 3 visible: plain GD crawls or zig-zags,
momentum damps the oscillation, RMSprop and Adam scale each direction's step.

Measures, per run:
- final train / val loss: evaluated on the whole split at the end (best weights restored).
- epochs / updates to target: the first epoch whose mean training loss is at or below the
  target loss (--target-loss; default the median of the runs' final training losses, so
  the faster half reach it), and the optimizer steps taken by then.
- oscillation: of all the movement of the per-epoch training loss curve, the share that
  went up: Σ max(0, ℓ[e+1] − ℓ[e]) / Σ |ℓ[e+1] − ℓ[e]|. 0 is a steady descent, 0.5 as
  much up as down. Per epoch rather than per update, because a mini-batch's loss also
  moves with the examples it happens to hold, which would hide what the optimizer does.
- zig-zag: the share of consecutive updates whose directions disagree (Δθ_t · Δθ_t-1 < 0):
  the path itself. Gradient descent keeps undoing part of its last step (most of all on
  single examples); momentum's averaged step V keeps going the same way.
"""

from __future__ import annotations

import math
from pathlib import Path
import statistics
from typing import TYPE_CHECKING, Any

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
MAX_CURVE_POINTS = 2000

if TYPE_CHECKING:
    import torch

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


def variant_name(batch_size: int | str, n_train: int) -> str:
    """The document's name for the gradient-descent variant a batch size gives."""
    if batch_size == "full" or int(batch_size) >= n_train:
        return "batch"
    return "stochastic" if int(batch_size) == 1 else f"mini-batch {batch_size}"


def oscillation(losses: list[float]) -> float | None:
    """Share of the curve's total movement that went up (0 steady descent, 0.5 pure noise)."""
    steps = [b - a for a, b in zip(losses, losses[1:]) if math.isfinite(a) and math.isfinite(b)]
    moved = sum(abs(d) for d in steps)
    return sum(d for d in steps if d > 0) / moved if moved > 0 else None


def to_target(history: list, target: float) -> tuple[int | None, int | None]:
    """(epoch, updates) when the epoch's training loss first reached ``target``."""
    for record in history:
        if math.isfinite(record.train_loss) and record.train_loss <= target:
            return record.epoch, record.updates
    return None, None


class UpdateLosses:
    """Callback that keeps the training loss of every update."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_after_backward(self, state: Any, loss: torch.Tensor) -> None:
        self.losses.append(float(loss.detach()))


class StepReversals:
    """Callback that counts consecutive updates pointing against each other (cosine < 0).

    This is the zig-zag of the document's section 3: plain gradient descent, and more so
    its noisy stochastic form, keeps undoing part of its last step; momentum averages the
    steps, so consecutive ones agree. Counted on the device, read once at the end.
    """

    def on_train_start(self, state: Any) -> None:
        import torch

        self._params = [p for p in state.model.parameters() if p.requires_grad]
        self._before = self._flat()
        self._last: torch.Tensor | None = None
        self._reversals = torch.zeros((), device=self._before.device)
        self.pairs = 0

    def _flat(self) -> torch.Tensor:
        import torch

        with torch.no_grad():
            return torch.cat([p.detach().reshape(-1) for p in self._params])

    def on_step_end(self, state: Any) -> None:
        import torch

        after = self._flat()
        step = after - self._before
        if self._last is not None:
            self._reversals += torch.dot(step, self._last) < 0
            self.pairs += 1
        self._before, self._last = after, step

    def share(self) -> float | None:
        """Share of consecutive update pairs that reversed direction (None with < 2 updates)."""
        return float(self._reversals) / self.pairs if self.pairs else None


def thin(values: list[float], limit: int = MAX_CURVE_POINTS) -> tuple[list[float], int]:
    """Every k-th value so at most ``limit`` remain, and k."""
    stride = max(1, math.ceil(len(values) / limit))
    return values[::stride], stride


def run_one(base: TrainConfig, splits, optimizer: str, lr: float, batch_size: int | str) -> dict[str, Any]:
    from ..training import fit

    config = base.replace(optimizer=optimizer, lr=lr, batch_size=batch_size)
    recorder, reversals = UpdateLosses(), StepReversals()
    result = fit(config, splits, callbacks=[recorder, reversals])
    return {
        "optimizer": optimizer,
        "lr": lr,
        "batch_size": config.batch_size,
        "variant": variant_name(config.batch_size, len(splits.train)),
        "final_train_loss": result.metrics["train"].get("loss"),
        "final_val_loss": result.metrics["val"].get("loss"),
        "epochs_run": result.epochs_run,
        "updates": result.updates,
        "seconds": result.seconds,
        "oscillation": oscillation([record.train_loss for record in result.history]),
        "zigzag": reversals.share(),
        "stop_reason": result.stop_reason,
        "_history": result.history,
        "_update_losses": recorder.losses,
    }


def default_target(runs: list[dict[str, Any]]) -> float | None:
    finals = [r["final_train_loss"] for r in runs if r["final_train_loss"] is not None and math.isfinite(r["final_train_loss"])]
    return statistics.median(finals) if finals else None


def finish(run: dict[str, Any], target: float | None, with_curves: bool) -> dict[str, Any]:
    history, losses = run.pop("_history"), run.pop("_update_losses")
    run["epochs_to_target"], run["updates_to_target"] = to_target(history, target) if target is not None else (None, None)
    if with_curves:
        thinned, stride = thin(losses)
        run["curves"] = {
            "epoch_train_loss": [r.train_loss for r in history],
            "epoch_val_loss": [r.val_loss for r in history],
            "lr": [r.lr for r in history],
            "update_loss": thinned,
            "update_loss_stride": stride,
        }
    return run


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
    from ..training import fit

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
    # One untimed full-batch epoch first, so the first run's time does not include the
    # process's one-off start-up costs (lazy imports, thread pools, allocator growth).
    fit(base.replace(epochs=1, batch_size="full", patience=None), splits)
    results = [run_one(base, splits, name, lr, size) for name, lr in runs for size in sizes]
    target = target_loss if target_loss is not None else default_target(results)
    curves = as_json or (out is not None and options["report"]) or options["plots"] is not None
    results = [finish(r, target, curves) for r in results]
    document = {"data": options["data"], "seed": base.seed, "epochs": base.epochs, "target_loss": target, "config": base.to_dict(), "runs": results}
    publish(out, options, "compare_document", document, splits, options["data"])
    if as_json:
        emit_json(document)
        return
    render(results, target, f"{options['data']}: {len(splits.train)} training rows, seed {base.seed}", stdout_console())
