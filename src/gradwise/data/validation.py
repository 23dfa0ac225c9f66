"""Checks on a table's values: numeric columns, missing values, infinities, the task.

Row numbers in messages count data rows from 1, header excluded, as a spreadsheet user
would count them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from ..errors import DataError

# An object column is taken as numeric-with-typos when at least this share of its
# non-empty values parse as numbers; otherwise it is a categorical (string) feature.
NUMERIC_SHARE = 0.5
MAX_CLASSES_FOR_INTEGERS = 20
HINT = "clean them or pass --drop-invalid"


def is_categorical(column: pd.Series) -> bool:
    """String-like columns that are not mostly numbers are one-hot encoded."""
    if ptypes.is_bool_dtype(column) or ptypes.is_numeric_dtype(column):
        return False
    values = column.dropna()
    if len(values) == 0:
        return False
    parsed = pd.to_numeric(values, errors="coerce")
    return parsed.notna().mean() < NUMERIC_SHARE


def _numeric_values(column: pd.Series) -> np.ndarray:
    parsed = column if ptypes.is_numeric_dtype(column) else pd.to_numeric(column, errors="coerce")
    return parsed.to_numpy(dtype=np.float64, na_value=np.nan)


def _bad_numeric_rows(column: pd.Series) -> tuple[np.ndarray, str]:
    """The first kind of problem in a numeric column (non-numeric, NaN, inf) and its rows."""
    values = _numeric_values(column)
    not_numbers = column.notna().to_numpy() & np.isnan(values)
    if not_numbers.any():
        return not_numbers, "non-numeric"
    missing = np.isnan(values)
    if missing.any():
        return missing, "missing (NaN)"
    return np.isinf(values), "infinite"


def _problem(column: pd.Series) -> tuple[np.ndarray, str, np.ndarray]:
    """(rows of the first problem, its name, every invalid row) of one column."""
    if is_categorical(column):
        bad = column.isna().to_numpy()
        return bad, "missing", bad
    bad, what = _bad_numeric_rows(column)
    return bad, what, ~np.isfinite(_numeric_values(column))


def _describe(name: str, column: pd.Series, bad: np.ndarray, what: str) -> str:
    """One line naming the column, the count and the first offending row."""
    first = int(np.flatnonzero(bad)[0])
    shown = f": {column.iloc[first]!r}" if what == "non-numeric" else ""
    return f"column '{name}' has {int(bad.sum())} {what} values (first at row {first + 1}{shown}); {HINT}"


def invalid_rows(frame: pd.DataFrame, drop_invalid: bool, label: str = "") -> np.ndarray:
    """Rows to drop; raises on the first problem unless ``drop_invalid``."""
    drop = np.zeros(len(frame), dtype=bool)
    for name in frame.columns:
        bad, what, invalid = _problem(frame[name])
        if bad.any() and not drop_invalid:
            raise DataError(label + _describe(str(name), frame[name], bad, what))
        drop |= invalid
    return drop


def _to_numeric(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for name in out.columns:
        if not is_categorical(out[name]):
            out[name] = pd.to_numeric(out[name], errors="raise").astype(np.float64)
        else:
            out[name] = out[name].astype(str)
    return out


def check_features(features: pd.DataFrame, target: pd.DataFrame, drop_invalid: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reject (or drop) rows with non-numeric, NaN or inf feature values; convert types."""
    drop = invalid_rows(features, drop_invalid)
    kept = features.loc[~drop]
    if len(kept) == 0:
        raise DataError("no rows are left after dropping invalid values; clean the table")
    return _to_numeric(kept), target.loc[~drop]


def check_target(target: pd.DataFrame, drop_invalid: bool) -> pd.DataFrame:
    """The target may be categorical (labels) but never missing, and numeric ones finite."""
    drop = invalid_rows(target, drop_invalid, label="target ")
    kept = target.loc[~drop]
    if len(kept) == 0:
        raise DataError("no rows are left after dropping invalid target values; clean the table")
    return kept


def infer_task(target: pd.DataFrame, task: str | None) -> str:
    """Classification for labels (strings, bools, few distinct integers), else regression."""
    if task is not None:
        if task not in ("classification", "regression"):
            raise DataError(f"--task must be classification or regression, got {task!r}")
        if task == "regression":
            for name in target.columns:
                if is_categorical(target[name]):
                    raise DataError(f"--task regression needs a numeric target, but column '{name}' holds labels such as {target[name].iloc[0]!r}")
        return task
    if target.shape[1] > 1:
        return "regression"
    column = target.iloc[:, 0]
    if is_categorical(column) or ptypes.is_bool_dtype(column):
        return "classification"
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    integral = np.all(np.equal(np.mod(values, 1), 0))
    if integral and len(np.unique(values)) <= MAX_CLASSES_FOR_INTEGERS:
        return "classification"
    return "regression"
