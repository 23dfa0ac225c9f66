"""The final model of ``gradwise tune``: the chosen configuration trained once more, tested once.

It trains the way ``gradwise train`` trains (training rows, early stopping on the validation
rows, at least ``train``'s 100 epochs and patience 15). Why not a refit on train + val for
the best trial's epoch count: with no validation rows left, a fixed epoch count is a guess,
and on diabetes it left some initializations badly under- or over-trained (one refit's test
RMSE 63 where the same configuration early-stopped gave 52); early stopping adapts to each
run. Nor does a cross-fitted ensemble (network k trained on train + val less fold k,
early-stopped on fold k) do better: diabetes, default configuration, split seeds 0-4, mean
test RMSE 55.12 against 54.49 here (worse on all five), breast_cancer accuracy 0.9721
against 0.9744.

**Bounded in time.** The final training stops in the step that passes its time limit (that
epoch ends there and is evaluated), keeping its best weights so far: at most as long as the
search ran, and at least :data:`MIN_FINAL_SECONDS`. Without it a short search on a large table was followed by an
unbounded one: ``--timeout 40`` on ggplot2's diamonds (53,940 rows, this 2-core CPU) searched
40 s, then trained the final network 100 epochs for another 3.5 minutes.

**Ensembles train as one population.** On small tables (``--ensemble auto``) the final model
is the mean of several networks of the configuration, each from its own seed. They share
their rows and every shape, so they train together in one :class:`PopulationTrainer`, each
network the one ``fit`` would train from its seed (the population's equality contract),
unless the configuration has no batched form or the stacked copies would not fit in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import TrainConfig
from .folds import resolve_members
from .spec import TuneSpec

MODEL_DIR = "model"
# The final training's time limit is never below this, so a quick search (a few --trials on a
# small table) still gets its final model fully trained.
MIN_FINAL_SECONDS = 60.0


def final_time_limit(search_seconds: float | None) -> float | None:
    """Seconds the final training may take after a search of ``search_seconds`` (None: no limit)."""
    return None if search_seconds is None else max(search_seconds, MIN_FINAL_SECONDS)


def retrain_best(best: dict[str, Any], splits: Any, out_dir: Path, spec: TuneSpec, progress: bool = False,
                 time_limit: float | None = None) -> dict[str, Any]:
    """Train the chosen configuration as ``gradwise train`` would, test it once, save the bundle.

    ``time_limit`` (seconds) bounds the training (see the module's docs); ``progress`` shows
    an epoch bar on a terminal (a large table's final training takes a while)."""
    from ..models import MeanOfNets, save_bundle
    from ..training.baseline import against_a_constant
    from ..training.loop import split_metrics

    config = TrainConfig.from_dict(best["config"])
    plain = TrainConfig()
    patience = None if config.patience is None else max(config.patience, plain.patience or 0)
    config = config.replace(epochs=max(config.epochs, plain.epochs), patience=patience)
    members = resolve_members(spec.ensemble, len(splits.train) + len(splits.val))
    configs = [config.replace(seed=config.seed + i) for i in range(members)]
    runs = train_networks(configs, splits, progress, time_limit)
    model, metrics = runs[0].model, runs[0].metrics
    if members > 1:
        model.net = MeanOfNets([run.model.net for run in runs])
        metrics = split_metrics(model, splits)
    extra = {"tuning": {"best_trial": best["trial"], "val": best["value"], "data": spec.data, "members": members}}
    directory = save_bundle(model, out_dir / MODEL_DIR, config, metrics=metrics, extra=extra)
    final = {"epochs": config.epochs, "members": members, "train": metrics.get("train", {}), "test": metrics.get("test", {}),
             "bundle": str(directory), "stop_reason": runs[0].stop_reason, "time_limit": time_limit,
             "epochs_trained": max(len(run.history) for run in runs),
             "seconds": max(run.seconds for run in runs)}
    if members > 1:
        final["member_test"] = [run.metrics.get("test", {}) for run in runs]
    final["constant_baseline"], warning = against_a_constant(final["test"], splits)
    if warning:
        final["warning"] = warning
    return final


def train_networks(configs: list[TrainConfig], splits: Any, progress: bool, time_limit: float | None) -> list[Any]:
    """One FitResult per configuration: in one population when that can run, else one by one."""
    if len(configs) > 1 and _population_fits(configs, splits):
        return _train_population(configs, splits, progress, time_limit)
    return [_fit_one(config, splits, i, len(configs), progress, time_limit) for i, config in enumerate(configs)]


def _population_fits(configs: list[TrainConfig], splits: Any) -> bool:
    from ..training.population import can_batch
    from .objective import memory_reason

    # When the stacked networks would not fit, one at a time may (fit checks it, and says so if not).
    return can_batch(configs[0]) is None and memory_reason(configs[0], splits, len(configs)) is None


def _train_population(configs: list[TrainConfig], splits: Any, progress: bool, time_limit: float | None) -> list[Any]:
    from ..training.callbacks import TimeLimit
    from ..training.population import Member, PopulationTrainer
    from ..training.progress import EpochProgress

    _say(progress, f"training the final model ({len(configs)} networks together)")
    limit = None if time_limit is None else TimeLimit(time_limit)
    trainer = PopulationTrainer([Member(config, splits) for config in configs])
    with EpochProgress(configs[0].epochs, progress) as bar:
        def on_epoch(records: dict, _: Any) -> dict[int, str]:
            bar.advance(records[min(records)])
            if limit is None or not limit.reached():
                return {}
            return {member: limit.reason(record.epoch) for member, record in records.items()}

        results = trainer.run(on_epoch, cut_epoch=None if limit is None else limit.reached)
    return [result.fit_result() for result in results]  # in the members' order


def _fit_one(config: TrainConfig, splits: Any, index: int, members: int, progress: bool, time_limit: float | None) -> Any:
    from ..training.callbacks import TimeLimit
    from ..training.loop import fit

    _say(progress, "training the final model" + (f" (network {index + 1} of {members})" if members > 1 else ""))
    # Each network of an ensemble trained one by one gets an equal share of the limit.
    callbacks = [] if time_limit is None else [TimeLimit(time_limit / members)]
    return fit(config, splits, callbacks=callbacks, progress=progress)


def _say(progress: bool, text: str) -> None:
    if progress:
        from rich.console import Console

        Console(stderr=True).print(text)
