"""Predict with a saved bundle on a raw table, as ``gradwise predict`` does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .data.loading import read_frame
from .errors import DataError
from .models import GradwiseModel, load_bundle


def predict_table(model_dir: str | Path, source: str, weight: str | None = None) -> tuple[pd.DataFrame, dict[str, float] | None]:
    """Predictions for every row of ``source``, and the score when it holds the target too;
    ``weight`` names a column of row weights that the score is weighted by (as training
    weights its metrics with ``--weight-column``)."""
    model, _ = load_bundle(model_dir)
    frame, _ = read_frame(source)
    weights = _weights(frame, weight)
    features = _feature_frame(model, frame)
    predictions = model.predict(features)
    return predictions, _score(model, frame, predictions, weights)


def _weights(frame: pd.DataFrame, name: str | None) -> np.ndarray | None:
    """The checked weight column (finite, >= 0, not all 0), or None without one."""
    if name is None:
        return None
    from .data.loading import _take_weights

    return _take_weights(frame, name, None)[1].to_numpy()  # the frame keeps the column: it may be a feature too


def _feature_frame(model: GradwiseModel, frame: pd.DataFrame) -> pd.DataFrame:
    columns = model.encoder.columns
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"column '{missing[0]}' is missing from the table; the model needs columns {columns}")
    # The encoder checks the values: gaps are imputed as in training, words in numeric
    # columns and infinities raise naming the column, the count and the first row.
    return frame[columns]


def _score(model: GradwiseModel, frame: pd.DataFrame, predictions: pd.DataFrame, weights: np.ndarray | None = None) -> dict[str, float] | None:
    """The metric on the rows whose target is known, with how many rows that was; weighted
    by ``weights`` when given (rows of weight 0 then count for nothing).

    A real table often has gaps in its target (Vega's cars lacks 8 of 406 mileages): those
    rows are predicted like any other but left out of the score, instead of one gap turning
    the whole score into nothing.
    """
    names = model.target.names
    if not all(n in frame.columns for n in names):
        return None
    truth = frame[names]
    if model.task == "classification":
        known = truth.iloc[:, 0].notna().to_numpy()
        expected = truth.iloc[:, 0].map(str).to_numpy()
        per_row = (predictions[names[0]].map(str).to_numpy() == expected).astype(np.float64)
        metric = "accuracy"
    else:
        values = pd.DataFrame({n: pd.to_numeric(truth[n], errors="coerce") for n in names}).to_numpy(dtype=np.float64)
        known = np.isfinite(values).all(axis=1)
        errors = predictions[names].to_numpy(dtype=np.float64) - np.where(np.isfinite(values), values, 0.0)
        per_row = np.mean(errors**2, axis=1)
        metric = "rmse"
    w = np.ones(len(frame)) if weights is None else weights
    if not (known & (w > 0)).any():
        return None
    mean = float(np.sum(per_row[known] * w[known]) / np.sum(w[known]))
    score = {metric: mean if metric == "accuracy" else float(np.sqrt(mean)), "rows_scored": int(known.sum())}
    if weights is not None:
        score["weighted"] = True
    return score
