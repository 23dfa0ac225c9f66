"""Options shared by train, diagnose, compare and tune, and the helpers that read them.

Every option maps onto a :class:`~gradwise.TrainConfig` field or a data-loading argument,
so the command line and the Python API cannot drift apart.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, Callable

import click

from ..config import ACTIVATIONS, DEVICES, INITS, MAX_SEED, NORMALIZERS, TrainConfig
from ..data.defaults import DEFAULT_SOURCE, MAX_CATEGORIES
from ..files import jsonable

if TYPE_CHECKING:
    from ..data import Splits

# torch and the data layer (pandas) are imported where a command runs, not here: every
# command's options are built from this module, and its --help needs neither.

_DEFAULTS = TrainConfig()


class AutoOrInt(click.ParamType):
    """'auto', or an integer in [low, high] (click words the out-of-range error)."""

    name = "auto|integer"

    def __init__(self, low: int, high: int) -> None:
        self.range = click.IntRange(low, high)

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if value == "auto":
            return value
        if not isinstance(value, int):
            try:
                int(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is neither 'auto' nor an integer", param, ctx)
        return self.range.convert(value, param, ctx)


def _stack(*decorators: Callable) -> Callable:
    def apply(function: Callable) -> Callable:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


data_options = _stack(
    click.option("--data", default=DEFAULT_SOURCE, show_default=True, help="Table: .csv, .tsv, .parquet or .npz path, or builtin:iris|wine|breast_cancer|digits|diabetes."),
    click.option("--target", default=None, help="Target column (comma-separated for several regression targets). Default: the last column."),
    click.option("--task", type=click.Choice(["classification", "regression"]), default=None, help="Force the task instead of inferring it from the target."),
    click.option("--split", default="0.7,0.15,0.15", show_default=True, help="Train,validation,test fractions (stratified for classification)."),
    click.option("--seed", type=click.IntRange(0, MAX_SEED), default=0, show_default=True, help="Seed for the split, the initial weights and the batch order."),
    click.option("--missing", type=click.Choice(["impute", "drop", "error"]), default=None, help="Gaps in features: impute (median plus a <col>_missing column; a string gap is its own category), drop the rows, or error. Rows without a target are always dropped, except with error.  [default: impute]"),
    click.option("--drop-invalid", is_flag=True, help="Same as --missing drop: drop rows with missing, infinite or non-numeric values."),
    click.option("--keep-columns", default=None, help="Comma-separated columns to use even though they look like IDs (left out by default, with a note)."),
    click.option("--max-categories", type=click.IntRange(2, 100_000), default=MAX_CATEGORIES, show_default=True, help="One-hot columns per string column: its most frequent levels, the rest share an 'other' column."),
    click.option("--max-memory", default=None, help="Largest size for the encoded table, such as 2G or 500MB (default: most of the available memory). A table that would not fit stops before encoding."),
)

# train and tune only (not diagnose or compare): the commands whose scores are read as results.
weight_option = click.option(
    "--weight-column", default=None,
    help="Column of per-row weights (finite numbers >= 0), taken out of the features: each batch's loss is the weighted mean sum(w*loss)/sum(w), "
         "and the validation loss and every reported metric (test included) are weighted by it. Rows of weight 0 are left out of every split, as if not in the table.",
)

model_options = _stack(
    click.option("--normalize", type=click.Choice(NORMALIZERS), default=_DEFAULTS.normalize, show_default=True, help="Input (and regression target) normalization."),
    click.option("--layers", type=int, default=_DEFAULTS.layers, show_default=True, help="Hidden layers."),
    click.option("--hidden", type=int, default=_DEFAULTS.hidden, show_default=True, help="Units per hidden layer."),
    click.option("--activation", type=click.Choice(ACTIVATIONS), default=_DEFAULTS.activation, show_default=True),
    click.option("--init", type=click.Choice(INITS), default=_DEFAULTS.init, show_default=True, help="Weight init; 'normal' is N(0, 1), the document's standard approach."),
    click.option("--batch-norm/--no-batch-norm", default=False, show_default=True, help="Batch normalization after each hidden Linear layer."),
    click.option("--dropout", type=float, default=_DEFAULTS.dropout, show_default=True),
)

optim_options = _stack(
    click.option("--optimizer", default=_DEFAULTS.optimizer, show_default=True, help="gd | momentum | rmsprop | adam, or any torch.optim class as torch:NAME (e.g. torch:AdamW)."),
    click.option("--lr", type=float, default=_DEFAULTS.lr, show_default=True, help="Learning rate α."),
    click.option("--beta", type=float, default=_DEFAULTS.beta, show_default=True, help="β of momentum and RMSprop."),
    click.option("--beta1", type=float, default=_DEFAULTS.beta1, show_default=True, help="Adam's β1."),
    click.option("--beta2", type=float, default=_DEFAULTS.beta2, show_default=True, help="Adam's β2."),
    click.option("--eps", type=float, default=_DEFAULTS.eps, show_default=True, help="ε of RMSprop and Adam."),
    click.option("--lr-decay", default=None, help="inverse_time:K | exponential:K | step:EVERY:GAMMA | cosine."),
    click.option("--weight-decay", type=float, default=_DEFAULTS.weight_decay, show_default=True, help="L2 penalty added to the gradient."),
    click.option("--clip-grad", type=float, default=None, help="Clip the global gradient norm at this value."),
)

loop_options = _stack(
    click.option("--batch-size", default=str(_DEFAULTS.batch_size), show_default=True, help="'full' (batch GD), 1 (stochastic GD) or B (mini-batch GD)."),
    click.option("--epochs", type=int, default=_DEFAULTS.epochs, show_default=True),
    click.option("--patience", type=int, default=_DEFAULTS.patience, show_default=True, help="Early stopping after this many epochs without a better validation loss; 0 disables it."),
    click.option("--device", type=click.Choice(DEVICES), default=_DEFAULTS.device, show_default=True),
    click.option("--threads", type=click.IntRange(0, 1024), default=0, show_default=True, help="CPU threads for torch; 0 picks 1 for small models (faster, and robust on a busy machine), torch's default otherwise."),
)

output_options = _stack(
    click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON document on stdout instead of tables."),
)

training_options = _stack(data_options, model_options, optim_options, loop_options)

_CONFIG_FIELDS = {
    "normalize", "layers", "hidden", "activation", "init", "batch_norm", "dropout", "optimizer", "lr", "beta",
    "beta1", "beta2", "eps", "lr_decay", "weight_decay", "clip_grad", "batch_size", "epochs", "patience", "seed", "device",
}


def config_from_options(options: dict[str, Any], **overrides: Any) -> TrainConfig:
    """Build the TrainConfig from parsed options (unknown keys are ignored)."""
    values = {k: v for k, v in options.items() if k in _CONFIG_FIELDS}
    if values.get("patience") == 0:
        values["patience"] = None
    values.update(overrides)
    config = TrainConfig(**values)
    set_threads(options.get("threads", 0), config)
    return config


# Below this much work per step (examples x hidden units), a second CPU thread costs more in
# hand-offs than it saves, and on a loaded machine spinning threads can slow a step tenfold.
SMALL_STEP_WORK = 1 << 16


def set_threads(threads: int, config: TrainConfig) -> None:
    """Set torch's CPU thread count: ``threads`` if given, else 1 for small steps."""
    import torch

    if threads:
        torch.set_num_threads(threads)
        return
    batch = config.batch_size if isinstance(config.batch_size, int) else 1 << 20
    if batch * config.hidden <= SMALL_STEP_WORK:
        torch.set_num_threads(1)


def splits_from_options(options: dict[str, Any]) -> Splits:
    """Load, check and split the table the options name."""
    from ..data import load_table, split_table

    table = load_table(options["data"], options.get("target"), options.get("task"), options.get("drop_invalid", False), options.get("missing"), options.get("keep_columns") or (), options.get("weight_column"))
    return split_table(table, options.get("split", "0.7,0.15,0.15"), options.get("seed", 0), options.get("max_categories", MAX_CATEGORIES), options.get("max_memory"))


def emit_json(document: Any) -> None:
    """Print one JSON document on stdout."""
    sys.stdout.write(json.dumps(jsonable(document), indent=2, allow_nan=False) + "\n")
    sys.stdout.flush()
