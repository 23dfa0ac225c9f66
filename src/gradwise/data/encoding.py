"""Turn a table's columns into numbers: features, label codes, target columns.

Encoders are learned on the training split only and are plain data (lists, strings,
numbers), so they are saved as JSON inside a model bundle, never pickled. What each kind of
column becomes is written in :class:`FeatureEncoder`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from .categorical import MAX_CATEGORIES, Levels, fit_levels
from .columns import is_categorical, looks_like_dates
from .dates import DateColumn
from .validation import MISSING_POLICIES, DataWarning, first_gap_message, numeric_values


@dataclass
class FeatureEncoder:
    """Every input column becomes float32 columns; fitted on the training rows only.

    - **numeric**: passes through; a gap takes the training median, and every column that
      had a gap in training also gets a 0/1 ``<col>_missing`` column (at the end, as
      scikit-learn's ``SimpleImputer(strategy="median", add_indicator=True)`` puts them);
    - **string**: one-hot over the frequent levels plus an "other" slot (see
      :mod:`gradwise.data.categorical`); a gap is the level ``<missing>``;
    - **date/time**: year, month, day, day of week, hour, timestamp (see
      :mod:`gradwise.data.dates`); a gap or an unreadable date is imputed like a number;
    - **left out**: ID-like columns named in ``left_out`` are ignored.

    A gap in a column that had none in training is imputed too and counted in a
    :class:`~gradwise.data.validation.DataWarning`; a model trained with
    ``missing="error"`` refuses it instead.
    """

    # Learned by fit (columns and categories first: FeatureEncoder(columns, {}) is a pass-through).
    columns: list[str] = field(default_factory=list)
    categories: dict[str, list[str]] = field(default_factory=dict)  # kept levels per string column
    other: list[str] = field(default_factory=list)  # string columns with an "other" slot
    dates: dict[str, DateColumn] = field(default_factory=dict)
    medians: dict[str, list[float]] = field(default_factory=dict)  # per numeric or date column
    indicators: list[str] = field(default_factory=list)  # columns that had a gap in training
    # Chosen by the user.
    missing: str = "impute"
    max_categories: int = MAX_CATEGORIES
    left_out: list[str] = field(default_factory=list)

    def fit(self, features: pd.DataFrame) -> "FeatureEncoder":
        if self.missing not in MISSING_POLICIES:
            raise DataError(f"--missing must be one of {', '.join(MISSING_POLICIES)}; got {self.missing!r}")
        self.columns = [str(c) for c in features.columns if str(c) not in self.left_out]
        self.categories, self.other, self.dates, self.medians, self.indicators = {}, [], {}, {}, []
        for name in self.columns:
            self._fit_column(name, features[name])
        return self

    def _fit_column(self, name: str, column: pd.Series) -> None:
        if looks_like_dates(column):
            self.dates[name] = DateColumn.fit(column)
            values, gap = self.dates[name].expand(column)
        elif is_categorical(column):
            levels = fit_levels(column, self.max_categories)
            self.categories[name] = levels.kept
            if levels.other:
                self.other.append(name)
            return
        else:
            values = numeric_values(column, name)[:, None]
            gap = np.isnan(values[:, 0])
        self.medians[name] = [_median(values[:, j]) for j in range(values.shape[1])]
        if gap.any():
            self.indicators.append(name)

    # -- layout ---------------------------------------------------------------------------
    def levels(self, name: str) -> Levels:
        return Levels(self.categories[name], name in self.other)

    def widths(self) -> dict[str, int]:
        """Encoded columns per input column (its ``_missing`` indicator included)."""
        return {name: self._width(name) + int(name in self.indicators) for name in self.columns}

    def _width(self, name: str) -> int:
        if name in self.categories:
            return self.levels(name).width
        return len(self.dates[name].parts) if name in self.dates else 1

    @property
    def n_features(self) -> int:
        return sum(self.widths().values())

    @property
    def feature_names(self) -> list[str]:
        names: list[str] = []
        for name in self.columns:
            if name in self.categories:
                names += self.levels(name).names(name)
            else:
                names += self.dates[name].names(name) if name in self.dates else [name]
        return names + [f"{name}_missing" for name in self.indicators]

    # -- applying -------------------------------------------------------------------------
    def transform(self, features: pd.DataFrame) -> np.ndarray:
        """Encoded rows, float32, written block by block into one preallocated matrix."""
        absent = [c for c in self.columns if c not in features.columns]
        if absent:
            raise DataError(f"column '{absent[0]}' is missing; the model was trained on columns {self.columns}")
        out = np.zeros((len(features), self.n_features), dtype=np.float32)
        start, indicator_at, unexpected = 0, sum(self._width(n) for n in self.columns), {}
        for name in self.columns:
            gap = self._encode_into(out, start, name, features[name])
            start += self._width(name)
            if name in self.indicators:
                out[:, indicator_at + self.indicators.index(name)] = gap
            elif gap is not None and gap.any():
                unexpected[name] = gap
        self._report_unexpected(unexpected, features)
        return out

    def _encode_into(self, out: np.ndarray, start: int, name: str, column: pd.Series) -> np.ndarray | None:
        """Fill this column's block; return its gap rows (None for string columns)."""
        if name in self.categories:
            slots = self.levels(name).slots(column)
            rows = np.flatnonzero(slots >= 0)
            out[rows, start + slots[rows]] = 1.0
            return None
        if name in self.dates:
            values, gap = self.dates[name].expand(column)
        else:
            values = numeric_values(column, name)[:, None]
            gap = np.isnan(values[:, 0])
        medians = self.medians.get(name, [np.nan] * values.shape[1])
        for j in range(values.shape[1]):
            out[:, start + j] = np.where(gap, medians[j], values[:, j]) if gap.any() else values[:, j]
        return gap

    def _report_unexpected(self, unexpected: dict[str, np.ndarray], features: pd.DataFrame) -> None:
        """Gaps in columns that had none in training: refuse (missing="error") or impute and warn."""
        if not unexpected:
            return
        if self.missing == "error" or any(name not in self.medians for name in unexpected):
            name, gap = next(iter(unexpected.items()))
            raise DataError(first_gap_message(name, features[name], gap, "this model was trained to refuse gaps; fill them in, or train it again without --missing error"))
        counts = ", ".join(f"'{name}' ({int(gap.sum())})" for name, gap in unexpected.items())
        warnings.warn(f"imputed the training median for gaps in columns that had none in training: {counts}", DataWarning, stacklevel=3)

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": self.columns, "categories": self.categories, "other": self.other,
            "dates": {name: date.to_dict() for name, date in self.dates.items()}, "medians": self.medians,
            "indicators": self.indicators, "missing": self.missing, "max_categories": self.max_categories, "left_out": self.left_out,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FeatureEncoder":
        """Read :meth:`to_dict`; bundles from before imputation existed load as ``missing="error"``."""
        return cls(
            missing=str(data.get("missing", "error")), max_categories=int(data.get("max_categories", MAX_CATEGORIES)),
            left_out=[str(c) for c in data.get("left_out", [])], columns=[str(c) for c in data["columns"]],
            categories={str(k): [str(v) for v in levels] for k, levels in data["categories"].items()},
            other=[str(c) for c in data.get("other", [])],
            dates={str(k): DateColumn.from_dict(v) for k, v in data.get("dates", {}).items()},
            medians={str(k): [float(v) for v in values] for k, values in data.get("medians", {}).items()},
            indicators=[str(c) for c in data.get("indicators", [])],
        )


def _median(values: np.ndarray) -> float:
    """The median of the non-missing values (0 for a column with none: nothing to go on)."""
    present = values[~np.isnan(values)]
    return float(np.median(present)) if len(present) else 0.0


@dataclass
class TargetEncoder:
    """Class labels to integer codes (classification) or target columns to floats."""

    task: str
    names: list[str]
    classes: list[Any] = field(default_factory=list)  # original labels, JSON-safe

    @classmethod
    def fit(cls, target: pd.DataFrame, task: str) -> "TargetEncoder":
        names = [str(c) for c in target.columns]
        if task != "classification":
            return cls(task, names)
        values = target.iloc[:, 0]
        classes = sorted(values.unique().tolist(), key=lambda v: (str(type(v)), v))
        return cls(task, names, [_json_safe(v) for v in classes])

    def transform(self, target: pd.DataFrame) -> np.ndarray:
        if self.task != "classification":
            return target.to_numpy(dtype=np.float32)
        lookup = {str(c): i for i, c in enumerate(self.classes)}
        labels = target.iloc[:, 0].map(lambda v: lookup.get(str(_json_safe(v)), -1)).to_numpy(dtype=np.int64)
        return labels

    def inverse(self, codes: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes, dtype=object)[codes]

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "names": self.names, "classes": self.classes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TargetEncoder":
        return cls(data["task"], list(data["names"]), list(data["classes"]))


def _json_safe(value: Any) -> Any:
    """NumPy scalars to Python ones, so labels survive a JSON round trip."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
