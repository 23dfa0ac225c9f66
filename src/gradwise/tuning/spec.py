"""Everything a worker needs to join a study, stored in the study itself.

``gradwise tune`` writes a :class:`TuneSpec` into the study's user attribute ``gradwise``;
``gradwise worker --storage URL --study NAME`` on any machine reads it back, loads the same
table with the same split, and runs the same objective. ``--resume`` reads it too, so the
options need not be repeated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import optuna

from ..config import TrainConfig
from ..errors import ConfigError
from .objective import DEFAULT_METRIC, METRICS, Objective
from .space import SearchSpace, default_space
from .strategies import PRUNERS, STRATEGIES, Budget, make_plan

SPEC_ATTR = "gradwise"
# Trials of a tuning run are shorter than a plain `gradwise train` (100 epochs, patience 15):
# the pruner needs a bounded resource, and early stopping ends most trials well before it.
TUNE_EPOCHS = 60
TUNE_PATIENCE = 10


@dataclass(frozen=True)
class TuneSpec:
    """The data, the space and the rules of one study."""

    data: str = "builtin:digits"
    target: str | None = None
    task: str | None = None
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    split_seed: int = 0
    drop_invalid: bool = False
    space: dict[str, Any] = field(default_factory=lambda: default_space("adam").to_dict())
    base: dict[str, Any] = field(default_factory=dict)  # TrainConfig values every trial shares
    strategy: str = "staged"
    pruner: str = "hyperband"
    metric: str | None = None  # None: accuracy for classification, rmse for regression
    n_trials: int | None = None
    timeout: float | None = 120.0
    workers: int = 1
    seed: int = 0
    monitor: bool = True
    # Score each trial by k-fold cross-validation over train + val: "auto" (5 folds below
    # 2,000 rows, where one validation split is too small to select on), 0 (off) or k.
    cv: Any = "auto"
    # The final model: the mean of this many networks of the best configuration, trained
    # from different seeds: "auto" (5 below 2,000 rows, where the seed alone moves the test
    # error most; else 1) or k >= 1.
    ensemble: Any = "auto"

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"--strategy must be one of {', '.join(STRATEGIES)}; got {self.strategy!r}")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"--pruner must be one of {', '.join(PRUNERS)}; got {self.pruner!r}")
        if self.metric is not None and self.metric not in METRICS:
            raise ConfigError(f"--metric must be one of {', '.join(METRICS)}; got {self.metric!r}")
        if self.n_trials is not None and self.n_trials < 1:
            raise ConfigError(f"--trials must be a positive integer, got {self.n_trials!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise ConfigError(f"--timeout must be a positive number of seconds, got {self.timeout!r}")
        if not (self.cv == "auto" or (isinstance(self.cv, int) and (self.cv == 0 or self.cv >= 2))):
            raise ConfigError(f"--cv must be 'auto', 0 (off) or a number of folds >= 2; got {self.cv!r}")
        if not (self.ensemble == "auto" or (isinstance(self.ensemble, int) and not isinstance(self.ensemble, bool) and self.ensemble >= 1)):
            raise ConfigError(f"--ensemble must be 'auto' or a number of networks >= 1; got {self.ensemble!r}")
        if self.workers < 1:
            raise ConfigError(f"--workers must be a positive integer, got {self.workers!r}")

    def check_budget(self) -> None:
        if self.n_trials is None and self.timeout is None:
            raise ConfigError("tuning needs a budget: pass --trials N, --timeout SECONDS, or both")

    @property
    def budget(self) -> Budget:
        return Budget(self.n_trials, self.timeout, self.workers)

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
        return cls(**values)


def load_splits(spec: TuneSpec) -> Any:
    """The table of the spec, split the same way on every machine."""
    from ..data import load_table, split_table

    table = load_table(spec.data, target=spec.target, task=spec.task, drop_invalid=spec.drop_invalid)
    return split_table(table, spec.split, seed=spec.split_seed)


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
