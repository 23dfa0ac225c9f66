"""What scikit-learn users pass (arrays, DataFrames, sparse matrices) as float32 rows.

DataFrames with string columns are encoded by gradwise's data room (its
:class:`~gradwise.data.FeatureEncoder`), never by code of our own, so the estimators
encode exactly as ``gradwise train`` does. :func:`fit_table_encoder` and
:func:`encode_table` are the only two places that touch that API.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from scipy import sparse
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import train_test_split

from ..data import FeatureEncoder
from ..errors import DataError, GradwiseError

# The training loop keeps the whole table on the device as one dense float32 tensor, so a
# sparse matrix is densified once for training; past this size it is refused instead.
MAX_DENSE_BYTES = 2 << 30
FLOAT32_MAX = float(np.finfo(np.float32).max)


def is_table(X) -> bool:
    """A DataFrame with a non-numeric column: its strings need the data room's encoding."""
    if not isinstance(X, pd.DataFrame):
        return False
    return not all(ptypes.is_numeric_dtype(dtype) or ptypes.is_bool_dtype(dtype) for dtype in X.dtypes)


def fit_table_encoder(frame: pd.DataFrame) -> FeatureEncoder:
    """Learn the encoding of ``frame``'s columns (categories from these rows only)."""
    return FeatureEncoder().fit(_string_columns(frame))


def encode_table(encoder: FeatureEncoder, frame: pd.DataFrame) -> np.ndarray:
    return encoder.transform(_string_columns(frame))


def numeric_encoder(n_features: int, names=None) -> FeatureEncoder:
    """The pass-through encoder a model of numeric columns carries (it names the columns)."""
    columns = [str(n) for n in names] if names is not None else [f"x{i}" for i in range(n_features)]
    return FeatureEncoder(columns=columns)


def _string_columns(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(columns=str)


def dense_float32(X, name: str = "X") -> np.ndarray:
    """``X`` as a dense float32 array; sparse input is densified if it fits the cap."""
    if sparse.issparse(X):
        needed = X.shape[0] * X.shape[1] * 4
        if needed > MAX_DENSE_BYTES:
            raise DataError(
                f"sparse {name} of shape {X.shape} would take {needed / 2**30:.1f} GiB as the dense float32 "
                f"table gradwise trains on (limit {MAX_DENSE_BYTES / 2**30:.0f} GiB); reduce the columns, "
                "e.g. OneHotEncoder(max_categories=...) or min_frequency=..."
            )
        X = X.toarray()
    return to_float32(np.asarray(X), name)


def to_float32(X: np.ndarray, name: str = "X") -> np.ndarray:
    """Cast to float32, refusing values float32 cannot hold (they would become inf)."""
    if X.size and np.abs(X).max() > FLOAT32_MAX:
        raise DataError(f"{name} holds values beyond float32's range (|x| > {FLOAT32_MAX:.3g}); rescale them (e.g. a log) first")
    return X.astype(np.float32, copy=False)


def hold_out(n_rows: int, fraction: float, seed: int, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows): ``fraction`` of the rows held out, stratified if possible.

    With too few rows to hold any out (or ``fraction`` 0) every row trains.
    """
    rows = np.arange(n_rows)
    n_val = int(np.ceil(fraction * n_rows))
    if n_val < 1 or n_val >= n_rows:
        return rows, rows[:0]
    try:
        train, val = train_test_split(rows, test_size=n_val, random_state=seed, stratify=labels)
    except ValueError:  # a class with one row, or fewer validation rows than classes
        train, val = train_test_split(rows, test_size=n_val, random_state=seed)
    return np.sort(train), np.sort(val)


def hold_out_weighted(weights: np.ndarray, fraction: float, seed: int, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`hold_out` among the rows of positive weight; weight-0 rows are in neither part.

    So a fit with weight-0 rows trains on and holds out the rows a fit without them would
    (and weights of all ones hold out exactly the rows no weights do). In training they
    would count nothing in the loss yet fill places in mini-batches and batch-norm
    statistics; held out, they would add nothing to the validation score.
    """
    positive = np.flatnonzero(weights > 0)
    train, val = hold_out(len(positive), fraction, seed, None if labels is None else labels[positive])
    return positive[train], positive[val]


def data_errors(check):
    """scikit-learn's input checks raise ValueError; re-raise them as gradwise's DataError.

    DataError is a ValueError too, with the same message, so scikit-learn's estimator
    checks still recognize it, and gradwise users catch one GradwiseError everywhere.
    """

    @functools.wraps(check)
    def wrapper(*args, **kwargs):
        try:
            return check(*args, **kwargs)
        except (NotFittedError, GradwiseError):
            raise
        except ValueError as error:
            raise DataError(str(error)) from None

    return wrapper
