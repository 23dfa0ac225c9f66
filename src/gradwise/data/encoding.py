"""Turn a table's columns into numbers: one-hot features, label codes, target columns.

Encoders are learned on the training split only and are plain data (lists of strings), so
they are saved as JSON inside a model bundle, never pickled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from .validation import is_categorical


@dataclass
class FeatureEncoder:
    """Numeric columns pass through; string columns become one 0/1 column per category.

    A category first seen after fitting (in validation, test or prediction data) encodes
    as all zeros: the model has no evidence about it either way.
    """

    columns: list[str] = field(default_factory=list)
    categories: dict[str, list[str]] = field(default_factory=dict)

    def fit(self, features: pd.DataFrame) -> "FeatureEncoder":
        self.columns = [str(c) for c in features.columns]
        self.categories = {
            str(c): sorted(features[c].astype(str).unique().tolist())
            for c in features.columns
            if is_categorical(features[c])
        }
        return self

    @property
    def feature_names(self) -> list[str]:
        names: list[str] = []
        for column in self.columns:
            if column in self.categories:
                names += [f"{column}={value}" for value in self.categories[column]]
            else:
                names.append(column)
        return names

    def transform(self, features: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.columns if c not in features.columns]
        if missing:
            raise DataError(f"column '{missing[0]}' is missing; the model was trained on columns {self.columns}")
        blocks = [self._encode(features[column], column) for column in self.columns]
        return np.concatenate(blocks, axis=1).astype(np.float32)

    def _encode(self, column: pd.Series, name: str) -> np.ndarray:
        if name in self.categories:
            values = column.astype(str).to_numpy()
            return (values[:, None] == np.asarray(self.categories[name])[None, :]).astype(np.float32)
        numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        if not np.all(np.isfinite(numbers)):
            raise DataError(f"column '{name}' must be numeric and finite, as in training; found {int((~np.isfinite(numbers)).sum())} invalid values")
        return numbers[:, None]

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "categories": self.categories}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FeatureEncoder":
        return cls(list(data["columns"]), {k: list(v) for k, v in data["categories"].items()})


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
