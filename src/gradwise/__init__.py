"""gradwise: train, diagnose and tune neural networks on tables, the way the textbook teaches.

>>> import gradwise
>>> splits = gradwise.split_table(gradwise.load_table("builtin:iris"), seed=0)
>>> result = gradwise.fit(gradwise.TrainConfig(epochs=20), splits)
>>> sorted(result.metrics)
['test', 'train', 'val']

Every public name is imported on first use (PEP 562): ``import gradwise`` and the command
line's ``gradwise --help`` do not wait for PyTorch (about 4 s to import on a small machine),
and the tuner's Optuna and the report's plotly load only for the code that uses them.
"""

from __future__ import annotations

from ._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> the submodule that defines it
_HOMES = {
    "TrainConfig": ".config",
    "ConfigError": ".errors", "DataError": ".errors", "GradwiseError": ".errors",
    **dict.fromkeys(("FeatureEncoder", "Normalizer", "Splits", "Table", "TargetEncoder", "load_table", "split_table"), ".data"),
    **dict.fromkeys(("Diagnosis", "Finding", "Fix", "GradientMonitor", "render_diagnosis", "run_chain"), ".diagnosis"),
    **dict.fromkeys(("GradwiseModel", "build_mlp", "load_bundle", "save_bundle"), ".models"),
    **dict.fromkeys(("GD", "Adam", "Momentum", "RMSprop", "build_optimizer", "make_schedule"), ".optim"),
    **dict.fromkeys(("EndEpoch", "EpochRecord", "FitResult", "StopTraining", "TrainState", "compare_optimizers", "fit"), ".training"),
    **dict.fromkeys(("tune", "TuneSpec", "TuneResult", "SearchSpace", "default_space", "load_space"), ".tuning"),
}
# gradwise.report.write(...): a submodule, loaded when first named like the others
_SUBMODULES = ("report",)

__all__ = sorted(_HOMES)

__getattr__, __dir__ = lazy_exports(__name__, _HOMES, _SUBMODULES)
