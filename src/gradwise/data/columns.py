"""What kind of column each one is: numeric, categorical (strings), date/time, or an ID.

Decided once from the table, so that loading, encoding and prediction agree:

- **date/time**: a datetime dtype, or strings of which nearly all (:data:`DATE_SHARE`) parse
  as dates; they become numbers (year, month, ... and a timestamp), never thousands of
  one-hot strings.
- **ID-like**: a string column whose values are nearly all distinct (:data:`ID_SHARE`), or
  an integer column that counts rows (all distinct and consecutive). Such a column tells a
  model nothing about new rows, and one-hot encoded it would be as wide as the table, so it
  is left out unless the user names it in ``--keep-columns``.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

# An object column is taken as numeric-with-typos when at least this share of its
# non-empty values parse as numbers; otherwise it is a categorical (string) feature.
NUMERIC_SHARE = 0.5
DATE_SHARE = 0.95  # share of sampled non-empty strings that must parse as dates
DATE_SAMPLE = 500  # strings looked at to decide; parsing every row happens once, later
KIND_SAMPLE = 20_000  # values looked at to tell numbers-with-typos from strings
ID_SHARE = 0.95  # distinct share of non-empty values above which a string column is an ID
ID_MIN_ROWS = 20  # below this many rows nothing is called an ID (every small column is distinct)
_DIGIT = re.compile(r"\d")


def is_categorical(column: pd.Series) -> bool:
    """String-like columns that are not mostly numbers (and not dates) are categorical."""
    if ptypes.is_bool_dtype(column) or ptypes.is_numeric_dtype(column) or ptypes.is_datetime64_any_dtype(column):
        return False
    values = _evenly(column.dropna(), KIND_SAMPLE)
    if len(values) == 0:
        return False
    parsed = pd.to_numeric(values, errors="coerce")
    return parsed.notna().mean() < NUMERIC_SHARE


def _evenly(values: pd.Series, most: int) -> pd.Series:
    """At most ``most`` values at evenly spaced positions: the same rows on every call."""
    if len(values) <= most:
        return values
    return values.iloc[np.linspace(0, len(values) - 1, most).astype(int)]


def guess_date_format(values: pd.Series) -> str | None:
    """strftime format of the first value, as pandas guesses it (None: none found)."""
    from pandas.tseries.api import guess_datetime_format

    first = values.dropna()
    return guess_datetime_format(str(first.iloc[0])) if len(first) else None


def parse_dates(column: pd.Series, date_format: str | None) -> pd.Series:
    """Datetimes in UTC (naive ones read as UTC); unparseable and empty values are NaT."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas warns when it falls back to per-element parsing
        return pd.to_datetime(column, format=date_format, errors="coerce", utc=True)


def looks_like_dates(column: pd.Series) -> bool:
    """A datetime dtype, or strings that nearly all parse as dates (judged on a sample)."""
    if ptypes.is_datetime64_any_dtype(column):
        return True
    if ptypes.is_numeric_dtype(column) or ptypes.is_bool_dtype(column):
        return False
    values = column.dropna()
    if len(values) == 0:
        return False
    sample = _evenly(values, DATE_SAMPLE).astype(str)
    if sample.map(lambda text: bool(_DIGIT.search(text))).mean() < DATE_SHARE:
        return False  # 'May' or 'Monday' alone are labels, not dates
    return parse_dates(sample, guess_date_format(sample)).notna().mean() >= DATE_SHARE


def is_row_counter(column: pd.Series) -> bool:
    """Integers, all distinct, filling a consecutive range: 1..n, 0..n-1, 1001..1000+n."""
    if not ptypes.is_numeric_dtype(column) or ptypes.is_bool_dtype(column) or column.isna().any():
        return False
    values = column.to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(values)) or not np.all(np.mod(values, 1) == 0):
        return False
    return bool(values.max() - values.min() == len(values) - 1 and len(np.unique(values)) == len(values))


def is_id_like(column: pd.Series) -> bool:
    """A row counter, or a string column whose values are nearly all distinct."""
    if len(column) < ID_MIN_ROWS:
        return False
    if is_row_counter(column):
        return True
    if not is_categorical(column) or looks_like_dates(column):
        return False
    values = column.dropna()
    return len(values) >= ID_MIN_ROWS and values.nunique() >= ID_SHARE * len(values)


def id_like_columns(features: pd.DataFrame, keep: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Columns to leave out as IDs, except those the user keeps."""
    return [str(name) for name in features.columns if str(name) not in keep and is_id_like(features[name])]
