"""Everything a worker needs to join a study, stored in the study itself.

``gradwise tune`` writes a :class:`TuneSpec` into the study's user attribute ``gradwise``;
``gradwise worker --storage URL --study NAME`` on any machine reads it back, loads the same
table with the same split, and runs the same objective. ``--resume`` reads it too, so the
options need not be repeated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import optuna
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ..budget import MAX_ENSEMBLE, MAX_FOLDS, WORKERS_PER_CORE, max_workers
from ..config import MAX_SEED, TrainConfig
from ..errors import ConfigError
from ..validation import option_name, rule, validated
from .objective import DEFAULT_METRIC, METRICS, Objective
from .space import SearchSpace, default_space
from .strategies import PRUNERS, STRATEGIES, Budget, make_plan

SPEC_ATTR = "gradwise"
# Trials of a tuning run are shorter than a plain `gradwise train` (100 epochs, patience 15):
# the pruner needs a bounded resource, and early stopping ends most trials well before it.
TUNE_EPOCHS = 60
TUNE_PATIENCE = 10


MAX_POPULATION = 256  # trials trained together in one batched network (tuning/populations.py)
_OPTION = {"n_trials": "--trials", "split_seed": "--seed"}


def _not_one(folds: Any) -> Any:
    if folds == 1:
        raise ValueError("one fold is no cross-validation")
    return folds


class TuneSpecSchema(BaseModel):
    """The type and range of each tuning option (strict: "5" is not 5, True is not 1)."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False)

    strategy: Literal[STRATEGIES] = rule("one of " + ", ".join(STRATEGIES))
    pruner: Literal[PRUNERS] = rule("one of " + ", ".join(PRUNERS))
    metric: Literal[tuple(METRICS)] | None = rule("one of " + ", ".join(METRICS))
    n_trials: Annotated[int, Field(ge=1)] | None = rule("a positive integer")
    timeout: Annotated[float, Field(gt=0)] | None = rule("a positive, finite number of seconds")
    workers: Literal["auto"] | Annotated[int, Field(ge=1)] = rule("'auto' or a positive number of worker processes")
    seed: int = rule(f"an integer in [0, {MAX_SEED}]", "try --seed 0", ge=0, le=MAX_SEED)
    split_seed: int = rule(f"an integer in [0, {MAX_SEED}]", "try --seed 0", ge=0, le=MAX_SEED)
    cv: Literal["auto"] | Annotated[int, Field(ge=0, le=MAX_FOLDS), AfterValidator(_not_one)] = rule(
        f"'auto', 0 (off) or a number of folds in [2, {MAX_FOLDS}]")
    ensemble: Literal["auto"] | Annotated[int, Field(ge=1, le=MAX_ENSEMBLE)] = rule(
        f"'auto' or a number of networks in [1, {MAX_ENSEMBLE}]")
    population: Literal["auto", "off"] | Annotated[int, Field(ge=1, le=MAX_POPULATION)] = rule(
        f"'auto', 'off' or a number of trials per population in [1, {MAX_POPULATION}]")


@dataclass(frozen=True)
class TuneSpec:
    """The data, the space and the rules of one study."""

    data: str = "builtin:digits"
    target: str | None = None
    task: str | None = None
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    split_seed: int = 0
    drop_invalid: bool = False
    # How the table is read and encoded (see gradwise.data): gaps, ID columns kept, the
    # one-hot cap per string column, and the memory budget of the encoded table.
    missing: str | None = None
    keep_columns: tuple[str, ...] = ()
    max_categories: int = 100
    max_memory: str | None = None
    # A column of per-row weights (taken out of the features): trials, their CV folds and the
    # final model weight the loss and every score by it. Stored here, so workers weight too.
    weight_column: str | None = None
    space: dict[str, Any] = field(default_factory=lambda: default_space("adam").to_dict())
    base: dict[str, Any] = field(default_factory=dict)  # TrainConfig values every trial shares
    strategy: str = "staged"
    pruner: str = "hyperband"
    metric: str | None = None  # None: accuracy for classification, rmse for regression
    n_trials: int | None = None
    timeout: float | None = 120.0
    # Local worker processes: "auto" (resolved by prepare(), see runner.local_workers: one
    # per free core when trials train in populations, else one) or a number.
    workers: Any = "auto"
    seed: int = 0
    monitor: bool = True
    # Score each trial by k-fold cross-validation over train + val: "auto" (5 folds below
    # 2,000 rows, where one validation split is too small to select on), 0 (off) or k.
    cv: Any = "auto"
    # The final model: the mean of this many networks of the best configuration, trained
    # from different seeds: "auto" (5 below 2,000 rows, where the seed alone moves the test
    # error most; else 1) or k >= 1.
    ensemble: Any = "auto"
    # Trials trained together as one batched network (tuning/populations.py): "auto",
    # "off" (one trial at a time) or a number of trials per population.
    population: Any = "auto"

    def __post_init__(self) -> None:
        values = {name: getattr(self, name) for name in TuneSpecSchema.model_fields}
        validated(TuneSpecSchema, values, lambda name: _OPTION.get(name, option_name(name)))
        # The options every trial shares, and the space's defaults, checked now: before a
        # study exists, not when the first trial is built.
        self.base_config()

    def check_budget(self) -> None:
        """Checks of the budget this machine's run can spend (not a remote worker's: they
        read the spec too, on machines of their own size)."""
        if self.n_trials is None and self.timeout is None:
            raise ConfigError("tuning needs a budget: pass --trials N, --timeout SECONDS, or both")
        if self.workers != "auto" and self.workers > max_workers():
            raise ConfigError(f"--workers must be 'auto' or a number of workers in [1, {max_workers()}] on this machine ({WORKERS_PER_CORE} per CPU core), got {self.workers}")

    @property
    def budget(self) -> Budget:
        # "auto" is resolved before a study runs (session.prepare); a plan built before that
        # (to check the objective against the data) counts one worker.
        return Budget(self.n_trials, self.timeout, 1 if self.workers == "auto" else self.workers)

    def search_space(self) -> SearchSpace:
        return SearchSpace.from_dict(self.space)

    def base_config(self) -> TrainConfig:
        values = {"epochs": TUNE_EPOCHS, "patience": TUNE_PATIENCE, "seed": self.seed, **self.base}
        return TrainConfig.from_dict(values).replace(**self.search_space().defaults())

    def metric_for(self, task: str) -> str:
        return self.metric or DEFAULT_METRIC[task]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["split"] = list(self.split)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TuneSpec":
        values = dict(values)
        values["split"] = tuple(values.get("split", (0.7, 0.15, 0.15)))
        values["keep_columns"] = tuple(values.get("keep_columns", ()))
        return cls(**values)


def load_splits(spec: TuneSpec) -> Any:
    """The table of the spec, split the same way on every machine."""
    from ..data import load_table, split_table

    table = load_table(spec.data, target=spec.target, task=spec.task, drop_invalid=spec.drop_invalid, missing=spec.missing, keep_columns=spec.keep_columns, weight=spec.weight_column)
    return split_table(table, spec.split, seed=spec.split_seed, max_categories=spec.max_categories, max_memory=spec.max_memory)


def build_objective(spec: TuneSpec, splits: Any) -> Objective:
    from .folds import make_folds, resolve_folds

    plan = make_plan(spec.strategy, spec.budget)
    k = resolve_folds(spec.cv, len(splits.train) + len(splits.val))
    folds = make_folds(splits, k, seed=spec.split_seed) if k else None
    return Objective(splits, spec.search_space(), plan, spec.metric_for(splits.task), spec.base_config(), monitor=spec.monitor, folds=folds)


def read_spec(study: optuna.Study) -> TuneSpec:
    values = study.user_attrs.get(SPEC_ATTR)
    if values is None:
        raise ConfigError(f"study {study.study_name!r} was not created by gradwise tune (it has no '{SPEC_ATTR}' attribute); start it with gradwise tune --storage URL --study {study.study_name}")
    return TuneSpec.from_dict(values)
