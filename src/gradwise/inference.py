"""Predict with a saved bundle on a raw table, as ``gradwise predict`` does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .data.loading import read_frame
from .errors import DataError
from .models import GradwiseModel, load_bundle


def predict_table(model_dir: str | Path, source: str) -> tuple[pd.DataFrame, dict[str, float] | None]:
    """Predictions for every row of ``source``, and the score when it holds the target too."""
    model, _ = load_bundle(model_dir)
    frame, _ = read_frame(source)
    features = _feature_frame(model, frame)
    predictions = model.predict(features)
    return predictions, _score(model, frame, predictions)


def _feature_frame(model: GradwiseModel, frame: pd.DataFrame) -> pd.DataFrame:
    columns = model.encoder.columns
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"column '{missing[0]}' is missing from the table; the model needs columns {columns}")
    # The encoder checks the values: gaps are imputed as in training, words in numeric
    # columns and infinities raise naming the column, the count and the first row.
    return frame[columns]


def _score(model: GradwiseModel, frame: pd.DataFrame, predictions: pd.DataFrame) -> dict[str, float] | None:
    """The metric on the rows whose target is known, with how many rows that was.

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
        if not known.any():
            return None
        expected = truth.iloc[:, 0].map(str).to_numpy()[known]
        return {"accuracy": float(np.mean(predictions[names[0]].map(str).to_numpy()[known] == expected)), "rows_scored": int(known.sum())}
    values = pd.DataFrame({n: pd.to_numeric(truth[n], errors="coerce") for n in names}).to_numpy(dtype=np.float64)
    known = np.isfinite(values).all(axis=1)
    if not known.any():
        return None
    errors = predictions[names].to_numpy(dtype=np.float64)[known] - values[known]
    return {"rmse": float(np.sqrt(np.mean(errors**2))), "rows_scored": int(known.sum())}
