"""``gradwise tune``: search the document's hyperparameters in order of importance."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from ..reporting.tables import format_metric, stdout_console
from ..budget import MAX_ENSEMBLE, MAX_FOLDS, WORKERS_PER_CORE, max_workers
from ._errors import handle_errors
from .options import AutoOrInt, data_options, emit_json, output_options, weight_option
from .report import check_out_dir, publish, report_options
from .worker import STORAGE_ENV

STRATEGY_HELP = "staged: α first, then β/hidden/batch size around it, then layers/decay with the rest searched near the best (10/30/60% of the budget); joint: TPE over everything; random."


@click.command("tune")
@data_options
@weight_option
@click.option("--trials", "n_trials", type=click.IntRange(min=1), default=None, help="Finished trials the study should reach (counted over all workers and resumed runs).")
@click.option("--timeout", type=float, default=None, help="Seconds of searching for this run; a trial still running then is stopped within its training step, its epoch ending there (complete, with its best epoch so far, when no trial has completed yet). Default: 120 when --trials is not given.")
@click.option("--strategy", type=click.Choice(["staged", "joint", "random"]), default="staged", show_default=True, help=STRATEGY_HELP)
@click.option("--optimizer", "family", type=click.Choice(["gd", "momentum", "rmsprop", "adam"]), default=None, help="Optimizer family whose space is searched (default: the --space file's, else adam).")
@click.option("--space", "space_file", type=click.Path(path_type=Path), default=None, help="TOML, JSON or YAML file that narrows, widens, fixes or adds parameters.")
@click.option("--pruner", type=click.Choice(["hyperband", "halving", "median", "none"]), default="hyperband", show_default=True, help="Stops unpromising trials early from their per-epoch validation metric: Hyperband, successive halving, the median rule, or none.")
@click.option("--metric", type=click.Choice(["accuracy", "rmse", "r2", "loss"]), default=None, help="Validation metric to optimize. Default: accuracy (classification), rmse (regression).")
@click.option("--cv", default="auto", show_default=True, help=f"Score trials by k-fold cross-validation over train+val: auto (5 folds under 2,000 rows), 0 (off) or k (at most {MAX_FOLDS}).")
@click.option("--ensemble", default="auto", show_default=True, help=f"Networks averaged in the final model, each from its own seed: auto (5 under 2,000 rows, else 1) or k (at most {MAX_ENSEMBLE}).")
@click.option("--epochs", type=int, default=60, show_default=True, help="Most epochs per trial (the pruner's resource).")
@click.option("--patience", type=int, default=10, show_default=True, help="Early stopping per trial; 0 disables it.")
@click.option("--activation", default=None, help="Hidden activation for every trial (default relu).")
@click.option("--normalize", default=None, help="Input normalization for every trial: minmax, standard or none (default minmax).")
@click.option("--batch-norm/--no-batch-norm", "batch_norm", default=None, help="Batch normalization after each hidden Linear layer, in every trial and the final model (default: off, or what the --space file says; a file that says otherwise is refused).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or auto.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Output directory: study journal, trials.csv, model/. Default: runs/tune-<data>.")
@click.option("--storage", default=None, envvar=STORAGE_ENV, show_envvar=True, help=f"postgresql://user@host/db (or any SQLAlchemy URL) to share the study across machines. Read from {STORAGE_ENV} when not given, so a password need not appear in the process list (`ps`); --storage wins over it.")
@click.option("--study", "study_name", default=None, help="Study name. Default: gradwise-<data>.")
@click.option("--workers", type=AutoOrInt(1, max_workers()), default="auto", show_default=True, help=f"Local worker processes (each runs `gradwise worker`): auto (one per idle core when trials train in populations, else 1) or N, at most {WORKERS_PER_CORE} per CPU core ({max_workers()} here), since more only queue for the same cores.")
@click.option("--resume", is_flag=True, help="Continue the study in --out/--storage; every finished trial is kept.")
@click.option("--overwrite", is_flag=True, help="Replace the earlier run in --out (its study.journal, trials.csv, model/ and report); it is put back if this run ends without a result. Without it, an --out that holds another run is refused.")
@click.option("--threads", type=click.IntRange(0, 1024), default=0, show_default=True, help="torch threads per worker; 0: one for trials trained one at a time (small models run fastest on one), and for populations the cores that other processes leave idle when the search starts.")
@click.option("--heartbeat", "heartbeat_interval", type=click.IntRange(1, 3600), default=10, show_default=True, help="Seconds between heartbeats of a running trial (PostgreSQL storage).")
@click.option("--population", default="auto", show_default=True, help="Train several trials and their CV folds at once as one batched network: auto (8 trials per population up to 20,000 training rows), off (one trial at a time) or K trials.")
@click.option("--no-monitor", is_flag=True, help="Do not watch gradients (no immediate pruning on exploding gradients).")
@report_options
@output_options
@handle_errors
def command(as_json: bool, out: Path | None, storage: str | None, study_name: str | None, resume: bool, overwrite: bool, threads: int, heartbeat_interval: int, **options: Any) -> None:
    """Tune an MLP's hyperparameters on a table and keep the best model.

    \b
    Examples:
      gradwise tune                                        # builtin:digits, about two minutes
      gradwise tune --data builtin:breast_cancer --trials 30
      gradwise tune --data houses.csv --target price --space space.toml --timeout 600
      gradwise tune --storage postgresql://me@db/optuna --study houses --workers 4
      gradwise worker --storage postgresql://me@db/optuna --study houses   # on another machine
    """
    from ..tuning import tune
    from ..tuning.session import EarlierRunRestored, default_study_name

    spec = spec_from_options(options, resume)
    out = out or Path("runs") / default_study_name(spec).replace("gradwise-", "tune-", 1)
    if options["report"]:
        check_out_dir(out)  # a report.html of the user's would stop the run only at its end
    try:
        result = tune(spec, out, storage, study_name, resume, display=None if not as_json else False, heartbeat_interval=heartbeat_interval, threads=threads, overwrite=overwrite,
                      claims=resume_claims(options, spec) if resume else None)
    except EarlierRunRestored:
        click.echo(f"gradwise: interrupted; the earlier run in {out} is back as it was, and this run left nothing there", err=True)
        sys.exit(130)
    except KeyboardInterrupt as stop:
        interrupted(stop, out, storage, study_name, options)
    publish(out, options, "tune_document", result, options["data"], storage, out)
    if as_json:
        emit_json(result.to_dict())
        return
    render_result(result)


def interrupted(stop: KeyboardInterrupt, out: Path, storage: str | None, study_name: str | None, options: dict[str, Any]) -> NoReturn:
    """After a Ctrl-C: the report of the search so far, when trials finished (the library
    raised TuneInterrupted, having listed them in trials.csv), then how to continue."""
    from ..tuning import TuneInterrupted
    from ..tuning.storage import _redact

    shown = _redact(storage) if storage else None  # the password stays off the terminal and logs
    given = shown if click.get_current_context().get_parameter_source("storage") != click.core.ParameterSource.ENVIRONMENT else None
    resume = resume_command(out, given, study_name, options["data"])
    if isinstance(stop, TuneInterrupted):
        report_so_far(stop, out, storage, options, resume)
    click.echo(f"gradwise: interrupted; finished trials are kept in {shown or out} (listed in {out / 'trials.csv'}). Continue with: {resume}", err=True)
    sys.exit(130)


def resume_command(out: Path, storage: str | None, study_name: str | None, data: str) -> str:
    """The command that continues this study. --data only where it names the study: the
    default study name comes from it, and a resume reads everything else from the study."""
    from ..data.defaults import DEFAULT_SOURCE

    words = ["gradwise", "tune", "--out", str(out)]
    if study_name:
        words += ["--study", study_name]
    elif data != DEFAULT_SOURCE:
        words += ["--data", data]
    if storage:
        words += ["--storage", storage]
    return shlex.join([*words, "--resume"])


def report_so_far(stop: Any, out: Path, storage: str | None, options: dict[str, Any], resume: str) -> None:
    """report.html and report.json of the interrupted search (each written whole or not at
    all). Neither a second Ctrl-C nor a report that cannot be written may hide the way on."""
    from ..errors import GradwiseError
    from ..tuning import interim_result

    try:
        publish(out, options, "tune_document", interim_result(stop.study, stop.spec, out), options["data"], storage, out, resume)
    except KeyboardInterrupt:
        click.echo("gradwise: interrupted again; no report of the search so far was written", err=True)
    except (GradwiseError, OSError) as error:  # a foreign report.html, a full disk: the study itself is safe
        click.echo(f"gradwise: note: no report of the search so far: {error}", err=True)


def spec_from_options(options: dict[str, Any], resume: bool = False):
    from ..tuning import TuneSpec, load_space
    from ..data import parse_split

    if options["n_trials"] is None and options["timeout"] is None and not resume:
        options["timeout"] = 120.0
    base = {"epochs": options["epochs"], "patience": options["patience"] or None, "device": options["device"]}
    base.update({k: options[k] for k in ("activation", "normalize", "batch_norm") if options[k] is not None})
    space = load_space(options["space_file"], options["family"])
    for name in given_training_options(options):
        check_flag_against_space(name, base[name], space)
    return TuneSpec(
        data=options["data"], target=options["target"], task=options["task"], split=parse_split(options["split"]),
        split_seed=options["seed"], drop_invalid=options["drop_invalid"], space=space.to_dict(), base=base,
        missing=options["missing"], keep_columns=tuple(c.strip() for c in (options["keep_columns"] or "").split(",") if c.strip()),
        max_categories=options["max_categories"], max_memory=options["max_memory"], weight_column=options["weight_column"],
        strategy=options["strategy"], pruner=options["pruner"], metric=options["metric"], n_trials=options["n_trials"],
        timeout=options["timeout"], workers=options["workers"], seed=options["seed"], monitor=not options["no_monitor"],
        cv=_cv(options["cv"]), ensemble=_cv(options["ensemble"]), population=_cv(options["population"]),
    )


# Training options every trial shares, which a --space file's [fixed] values (or a parameter
# it searches) would replace without a word (TuneSpec.base_config applies the space last).
SHARED_OPTIONS = ("activation", "normalize", "batch_norm", "epochs", "patience", "device")


def given_training_options(options: dict[str, Any]) -> list[str]:
    """The SHARED_OPTIONS the command line or the environment supplied (not their defaults)."""
    context = click.get_current_context(silent=True)
    given_by = (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)
    return [name for name in SHARED_OPTIONS if context is not None and context.get_parameter_source(name) in given_by]


def check_flag_against_space(name: str, value: Any, space: Any) -> None:
    """Refuse a training option that a --space file contradicts (it searches that parameter,
    or fixes another value).

    Why not let one win: the space's values replace the options every trial shares
    (TuneSpec.base_config), so the flag would be dropped without a word, and nothing says
    which of the two the user meant. A file that agrees with the flag is fine."""
    from ..errors import ConfigError

    flag = _flag_text(name, value)
    param = space.params.get(name)
    if param is not None and param.enabled:
        raise ConfigError(f"{flag} fixes {name} for every trial, but the --space file searches params.{name}; drop the flag or that parameter")
    fixed = space.fixed.get(name, param.default if param is not None else value)
    if fixed != value:
        raise ConfigError(f"{flag} contradicts the --space file, which fixes {name} = {json.dumps(fixed)}; drop one of the two")


# Options that shape a study (beside the shared training options), by the spec field each sets.
# --trials, --timeout, --workers and --threads may change on --resume: they are this run's budget.
STUDY_OPTIONS = {"strategy": "strategy", "pruner": "pruner", "metric": "metric", "cv": "cv", "ensemble": "ensemble",
                 "population": "population", "split": "split", "seed": "seed",
                 "weight_column": "weight_column", "space_file": "space", "family": "space"}
# The two options that set the space, as the user writes them (their parameters are named otherwise).
SPACE_FLAGS = {"space_file": "--space", "family": "--optimizer"}


def resume_claims(options: dict[str, Any], spec: Any) -> dict[str, tuple[str, Any]]:
    """What this ``--resume`` was told on purpose, for session.check_claims: spec field
    (or base.NAME) -> (the option as written, its value in this run's spec)."""
    context = click.get_current_context(silent=True)
    if context is None:
        return {}
    claims = {f"base.{name}": (_flag_text(name, spec.base.get(name)), spec.base.get(name)) for name in given_training_options(options)}
    for option, field_name in STUDY_OPTIONS.items():
        if context.get_parameter_source(option) == click.core.ParameterSource.COMMANDLINE:
            shown = SPACE_FLAGS.get(option) or _flag_text(option, options[option])
            claims[field_name] = (shown, getattr(spec, field_name))
    return claims


def _flag_text(name: str, value: Any) -> str:
    """How the user wrote it: --batch-norm / --no-batch-norm, --patience 0, --epochs 30."""
    option = name.replace("_", "-")
    if isinstance(value, bool):
        return f"--{'' if value else 'no-'}{option}"
    return f"--{option} {0 if value is None else value}"


def _cv(value: str) -> Any:
    """'auto' or an integer (--cv, --ensemble); anything else is left for TuneSpec to refuse."""
    try:
        return int(value)
    except ValueError:
        return value


def render_result(result: Any) -> None:
    from rich.table import Table

    console = stdout_console()
    data = result.to_dict()
    t = data["trials"]
    retried = f" ({t['retried']} more cut by an interrupt or a lost worker, and run again)" if t["retried"] else ""
    console.print(f"[bold]study {data['study']}[/bold]: {t['complete']} complete, {t['pruned']} pruned, {t['failed']} failed{retried}")
    best = data["best"]
    untuned = format_metric(data["metric"], data["untuned_val"])
    console.print(f"best validation {data['metric']}: {format_metric(data['metric'], best['value'])} (trial {best['trial']}; untuned defaults: {untuned})")
    from ..tuning.result import MIN_IMPORTANCE_TRIALS

    table = Table("hyperparameter", "best value", "document", "empirical importance", title="Best configuration and importance")
    config = best["config"] or {}
    for row in data["importance"]:
        share = "-" if row["empirical"] is None else f"{row['empirical']:.3f}"
        table.add_row(row["param"], _short(config.get(row["param"])), row["document"] + ("" if row["searched"] else " (off)"), share)
    console.print(table)
    basis = next((row.get("basis") for row in data["importance"] if row.get("basis")), None)
    if basis:
        console.print(f"empirical importance ({data['importance'][0]['method']}) over the {basis}")
    elif t["complete"] < MIN_IMPORTANCE_TRIALS:
        console.print(f"empirical importance needs at least {MIN_IMPORTANCE_TRIALS} complete trials (this study has {t['complete']}): give more --trials or --timeout")
    final = data["final"]
    if final:
        test = ", ".join(f"{k} {format_metric(k, v)}" for k, v in final["test"].items())
        members = final.get("members", 1)
        networks = f"the mean of {members} networks from different seeds, each" if members > 1 else "one network,"
        console.print(f"final model: {final['chosen']}; {networks} trained {final['epochs']} epochs max with early stopping{_time_limited(final)}; test: {test}")
        if final.get("warning"):
            console.print(f"[yellow]warning: {final['warning']}[/yellow]")
    for name, path in data["files"].items():
        console.print(f"{name}: {path}")


def _time_limited(final: dict[str, Any]) -> str:
    """'; stopped by its time limit ...' when the final training ran out of time."""
    from ..tuning.final import MIN_FINAL_SECONDS

    if not str(final.get("stop_reason", "")).startswith("time limit"):
        return ""
    return (f"; stopped by its time limit ({final['time_limit']:.0f} s: as long as the search, at least {MIN_FINAL_SECONDS:.0f} s)"
            f" after {final['epochs_trained']} epochs, its best weights kept")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
