"""The score of a model that learned nothing, to tell a useless model from a weak one.

On a tiny or uninformative table a network can train without error and still predict worse
than a constant: Vega's la_riots (63 rows) trained to a test R² of -5.8 and looked like any
other run. The constant is what the training rows alone suggest: their mean target
(regression) or their most frequent class (classification), scored on the test split.
With row weights (``Part.w``) the mean, the majority and the test score are weighted, as
the model's own test score is.
"""

from __future__ import annotations

import numpy as np

from ..data import Splits


def constant_baseline(splits: Splits) -> dict[str, float] | None:
    """Test-split score of always predicting the training mean or majority class (None
    without training or test rows)."""
    if len(splits.train) == 0 or len(splits.test) == 0:
        return None
    train_w, test_w = splits.train.w, splits.test.w  # None: np.average is the plain mean
    if splits.task == "classification":
        majority = np.bincount(splits.train.y.astype(np.int64), weights=train_w).argmax()
        return {"accuracy": float(np.average(splits.test.y == majority, weights=test_w))}
    mean = np.average(splits.train.y.astype(np.float64), axis=0, weights=train_w)
    squares = (splits.test.y.astype(np.float64) - mean) ** 2
    return {"rmse": float(np.sqrt(np.average(squares, weights=None if test_w is None else np.broadcast_to(test_w[:, None], squares.shape))))}


def against_a_constant(test_metrics: dict[str, float], splits: Splits) -> tuple[dict[str, float] | None, str | None]:
    """The constant's test score and the warning when ``test_metrics`` do no better (or None)."""
    baseline = constant_baseline(splits)
    return baseline, no_better_than_constant(test_metrics, baseline, len(splits.train))


def no_better_than_constant(test_metrics: dict[str, float], baseline: dict[str, float] | None, n_train: int) -> str | None:
    """A one-line warning when the model's test score does not beat the constant's."""
    if not baseline:
        return None
    (name, constant), = baseline.items()
    value = test_metrics.get(name)
    if value is None or not np.isfinite(value):
        return None
    worse = value <= constant if name == "accuracy" else value >= constant
    if not worse:
        return None
    what = "the most frequent training class" if name == "accuracy" else "the training rows' mean"
    return (f"the model is no better than always predicting {what}: test {name} {value:.4g} against {constant:.4g}; "
            f"with {n_train} training rows there may be too little to learn from, or the features may not carry the target")
