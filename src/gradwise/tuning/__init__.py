"""Hyperparameter search in the document's order of importance (EQUATIONS.md section 4).

- :mod:`~gradwise.tuning.space`: the parameters, their ranges and importance tiers;
  :mod:`~gradwise.tuning.space_file` changes them from a --space file.
- :mod:`~gradwise.tuning.objective`: ``objective(trial)`` trains one configuration and
  reports/prunes each epoch; :mod:`~gradwise.tuning.folds`: k-fold scores for small tables.
- :mod:`~gradwise.tuning.strategies`: staged, joint and random search on Optuna samplers.
- :mod:`~gradwise.tuning.storage`: journal file or PostgreSQL, heartbeats, stale-trial retry.
- :mod:`~gradwise.tuning.runner` / :mod:`~gradwise.tuning.workers`: the trial loop, local
  worker processes; :mod:`~gradwise.tuning.session`: ``tune()``; :mod:`~gradwise.tuning.result`.
"""

from .folds import make_folds, resolve_folds
from .objective import METRICS, Objective, PruningCallback, mean_curve_best
from .result import TuneResult, choose_final, finalize, importance_table, interim_result
from .runner import Counts, count_trials, run_worker
from .session import TuneInterrupted, tune
from .space import TIERS, Param, SearchSpace, default_space
from .space_file import load_space
from .spec import TuneSpec, build_objective, load_splits
from .storage import fail_stale_trials, open_storage
from .strategies import STAGE_SHARES, STRATEGIES, Budget, make_pruner, make_sampler, staged_plan

__all__ = [
    "METRICS",
    "STAGE_SHARES",
    "STRATEGIES",
    "TIERS",
    "Budget",
    "Counts",
    "Objective",
    "Param",
    "PruningCallback",
    "SearchSpace",
    "TuneInterrupted",
    "TuneResult",
    "TuneSpec",
    "build_objective",
    "choose_final",
    "count_trials",
    "default_space",
    "fail_stale_trials",
    "finalize",
    "importance_table",
    "interim_result",
    "load_space",
    "load_splits",
    "make_folds",
    "make_pruner",
    "make_sampler",
    "mean_curve_best",
    "open_storage",
    "resolve_folds",
    "run_worker",
    "staged_plan",
    "tune",
]
