"""Checks on a table's values: numbers, gaps, infinities, the task.

Two kinds of bad cell are told apart:

- a **gap** (an empty cell, NaN, None) is normal in real tables and follows ``--missing``:
  ``impute`` (the default: the encoder fills it in, see :class:`~gradwise.data.FeatureEncoder`),
  ``drop`` (the row is dropped and the count printed) or ``error`` (stop at the first one);
- an **invalid** value (a word in a numeric column, inf, a number beyond float32's range) is
  an error unless ``--missing drop`` drops its row too.

A missing target is never imputed: its row is dropped (and counted) unless ``error``.
Row numbers in messages count data rows from 1, header excluded, as a spreadsheet user
would count them.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from ..errors import DataError
from .columns import NUMERIC_SHARE, is_categorical

__all__ = ["NUMERIC_SHARE", "is_categorical"]

MISSING_POLICIES = ("impute", "drop", "error")
MAX_CLASSES_FOR_INTEGERS = 20
FLOAT32_MAX = float(np.finfo(np.float32).max)
HINT = "clean them or pass --missing drop to drop those rows"
TOO_LARGE = "too large"  # for float32, the precision every model computes in


class DataWarning(UserWarning):
    """Something was done to the data that the user should know: rows dropped, columns left out, gaps imputed."""


def note(message: str) -> None:
    warnings.warn(message, DataWarning, stacklevel=3)


def resolve_missing(missing: str | None, drop_invalid: bool = False) -> str:
    """The --missing policy; ``drop_invalid`` (the old --drop-invalid) means ``drop``."""
    policy = "drop" if drop_invalid and missing in (None, "drop") else (missing or "impute")
    if drop_invalid and policy != "drop":
        raise DataError(f"--drop-invalid is --missing drop; it contradicts --missing {missing}")
    if policy not in MISSING_POLICIES:
        raise DataError(f"--missing must be one of {', '.join(MISSING_POLICIES)}; got {missing!r}")
    return policy


# -- numbers ------------------------------------------------------------------------------
def _parsed(column: pd.Series) -> np.ndarray:
    parsed = column if ptypes.is_numeric_dtype(column) else pd.to_numeric(column, errors="coerce")
    return parsed.to_numpy(dtype=np.float64, na_value=np.nan)


def _invalid_numbers(column: pd.Series, values: np.ndarray) -> tuple[np.ndarray, str]:
    """Rows of the first kind of invalid value (non-numeric, infinite, too large) and its name."""
    kinds = (
        (column.notna().to_numpy() & np.isnan(values), "non-numeric"),
        (np.isinf(values), "infinite"),
        (np.abs(np.nan_to_num(values, posinf=0, neginf=0)) > FLOAT32_MAX, TOO_LARGE),
    )
    for bad, what in kinds:
        if bad.any():
            return bad, what
    return kinds[0][0], ""


def _describe(name: str, column: pd.Series, bad: np.ndarray, what: str, hint: str) -> str:
    """One line naming the column, the count, the first offending row and the fix."""
    first = int(np.flatnonzero(bad)[0])
    value = column.iloc[first]
    shown = f": {value.item() if isinstance(value, np.generic) else value!r}" if what != "missing" else ""
    if what == TOO_LARGE:
        hint = f"float32 holds at most ±{FLOAT32_MAX:.1e}; rescale the column, or {hint}"
    return f"column '{name}' has {int(bad.sum())} {what} values (first at row {first + 1}{shown}); {hint}"


def numeric_values(column: pd.Series, name: str, hint: str = "the model reads it as a number; clean those cells") -> np.ndarray:
    """A numeric column as float64 with NaN in its gaps; invalid values raise."""
    values = _parsed(column)
    bad, what = _invalid_numbers(column, values)
    if bad.any():
        raise DataError(_describe(name, column, bad, what, hint))
    return values


WEIGHT_HINT = "row weights must be finite numbers >= 0 (0 leaves a row out); fix those cells"


def row_weights(column: pd.Series, name: str) -> np.ndarray:
    """A weight column as float64: every value a finite number >= 0 and not all 0, else one
    line naming the column, the count and the first bad row. Gaps are errors, never
    imputed or dropped: a guessed weight would silently change the objective."""
    values = _parsed(column)
    bad, what = _invalid_numbers(column, values)
    for rows, kind in ((column.isna().to_numpy(), "missing"), (bad, what), (values < 0, "negative")):
        if rows.any():
            raise DataError("weight " + _describe(name, column, rows, kind, WEIGHT_HINT))
    if not (values > 0).any():
        raise DataError(f"weight column '{name}' is 0 on every row; at least one row needs a positive weight")
    zero = int((values == 0).sum())
    if zero:  # said, since those rows then count in no split, fold or score
        note(f"left out {zero:,} of {len(values):,} rows whose weight '{name}' is 0")
    return values


def first_gap_message(name: str, column: pd.Series, gap: np.ndarray, hint: str) -> str:
    return _describe(name, column, gap, "missing", hint)


# -- rows of a whole table ----------------------------------------------------------------
def _column_problems(column: pd.Series) -> tuple[np.ndarray, np.ndarray, str]:
    """(gap rows, invalid rows, the invalid kind) of one column."""
    gap = column.isna().to_numpy()
    if is_categorical(column) or ptypes.is_datetime64_any_dtype(column):
        return gap, np.zeros(len(column), dtype=bool), ""
    values = _parsed(column)
    bad, what = _invalid_numbers(column, values)
    return gap, bad, what


def rows_to_drop(frame: pd.DataFrame, missing: str, label: str = "", gap_hint: str = "") -> tuple[np.ndarray, dict[str, int]]:
    """Rows ``missing`` drops, and per column how many; raises where it says to stop."""
    drop = np.zeros(len(frame), dtype=bool)
    counts: dict[str, int] = {}
    for name in frame.columns:
        gap, bad, what = _column_problems(frame[name])
        if bad.any() and missing != "drop":
            raise DataError(label + _describe(str(name), frame[name], bad, what, HINT))
        if gap.any() and missing == "error":
            raise DataError(label + _describe(str(name), frame[name], gap, "missing", gap_hint or "fill them in, or pass --missing impute (the default) or --missing drop"))
        dropped = bad | gap if missing == "drop" or label else bad
        if dropped.any():
            counts[str(name)] = int(dropped.sum())
        drop |= dropped
    return drop, counts


def _to_types(frame: pd.DataFrame) -> pd.DataFrame:
    """Numeric columns as float64, string columns as Python strings with gaps kept as NaN."""
    out = frame.copy()
    for name in out.columns:
        column = out[name]
        if ptypes.is_datetime64_any_dtype(column):
            continue
        if not is_categorical(column):
            out[name] = pd.to_numeric(column, errors="raise").astype(np.float64)
        else:
            out[name] = column.astype(object).where(column.isna(), column.astype(str))
    return out


def check_features(features: pd.DataFrame, target: pd.DataFrame, missing: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply ``missing`` to the feature rows (see the module docstring); convert types."""
    drop, counts = rows_to_drop(features, missing)
    kept = features.loc[~drop]
    if len(kept) == 0:
        raise DataError("no rows are left after dropping rows with missing or invalid values; clean the table or pass --missing impute")
    if drop.any():
        worst = max(counts, key=counts.get)
        note(f"dropped {int(drop.sum()):,} of {len(features):,} rows ({drop.mean():.0%}) with missing or invalid values, most of them in '{worst}' ({counts[worst]:,}); --missing impute keeps them")
    return _to_types(kept), target.loc[~drop]


def check_target(target: pd.DataFrame, missing: str) -> pd.DataFrame:
    """The target may be labels but never imputed: rows without one are dropped and counted."""
    drop, counts = rows_to_drop(target, missing, label="target ", gap_hint="drop those rows or pass --missing drop")
    kept = target.loc[~drop]
    if len(kept) == 0:
        raise DataError("no rows are left after dropping rows with a missing or invalid target; clean the table")
    if drop.any():
        names = ", ".join(f"'{name}'" for name in counts)
        note(f"dropped {int(drop.sum()):,} of {len(target):,} rows whose target {names} is missing")
    return kept


def check_numeric_targets(target: pd.DataFrame) -> None:
    """Several target columns mean regression, so every one of them must hold numbers."""
    if target.shape[1] < 2:
        return
    for name in target.columns:
        if is_categorical(target[name]):
            example = target[name].dropna().iloc[0]
            raise DataError(f"several target columns mean regression, so each must be numeric, but '{name}' holds labels such as {example!r}; give one target column to classify it")


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
