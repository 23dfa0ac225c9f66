"""gradwise: train, diagnose and tune neural networks on tables, the way the textbook teaches.

>>> import gradwise
>>> splits = gradwise.split_table(gradwise.load_table("builtin:iris"), seed=0)
>>> result = gradwise.fit(gradwise.TrainConfig(epochs=20), splits)
>>> sorted(result.metrics)
['test', 'train', 'val']
"""

from .config import TrainConfig
from .data import FeatureEncoder, Normalizer, Splits, Table, TargetEncoder, load_table, split_table
from .diagnosis import Diagnosis, Finding, Fix, GradientMonitor, render_diagnosis, run_chain
from .errors import ConfigError, DataError, GradwiseError
from .models import GradwiseModel, build_mlp, load_bundle, save_bundle
from .optim import GD, Adam, Momentum, RMSprop, build_optimizer, make_schedule
from .training import EpochRecord, FitResult, StopTraining, TrainState, fit

# The tuner pulls in Optuna; load it only when one of its names is used.
_TUNING_NAMES = ("tune", "TuneSpec", "TuneResult", "SearchSpace", "default_space", "load_space")


def __getattr__(name: str):
    if name in _TUNING_NAMES:
        from . import tuning

        return getattr(tuning, name)
    if name == "report":  # gradwise.report.write(...): plotly and jinja2 load only when asked for
        import importlib

        return importlib.import_module(".report", __name__)
    raise AttributeError(f"module 'gradwise' has no attribute {name!r}")

__version__ = "0.1.0"

__all__ = [
    *_TUNING_NAMES,
    "Adam",
    "ConfigError",
    "Diagnosis",
    "Finding",
    "GD",
    "GradientMonitor",
    "Momentum",
    "RMSprop",
    "build_optimizer",
    "make_schedule",
    "run_chain",
    "DataError",
    "Diagnosis",
    "EpochRecord",
    "FeatureEncoder",
    "Finding",
    "Fix",
    "FitResult",
    "GradientMonitor",
    "GradwiseError",
    "GradwiseModel",
    "Normalizer",
    "Splits",
    "StopTraining",
    "Table",
    "TargetEncoder",
    "TrainConfig",
    "TrainState",
    "build_mlp",
    "fit",
    "load_bundle",
    "load_table",
    "render_diagnosis",
    "run_chain",
    "save_bundle",
    "split_table",
]
