"""Date and time columns become numbers: calendar parts and a continuous timestamp.

A date-time column with 7,000 distinct values one-hot encoded is 7,000 columns that say
nothing about a date not seen before; as numbers it is six columns that do. The parts:
year, month, day, day of week (Monday = 0), hour (only when the training rows have a time
of day), and the timestamp in days since 1970-01-01 UTC (so trends over time are one
column). The parse format is guessed once on the training rows and stored, so ``predict``
reads the strings exactly as training did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from .columns import guess_date_format, parse_dates

EPOCH = pd.Timestamp("1970-01-01", tz="UTC")
CALENDAR = ("year", "month", "day", "dayofweek")
ATTRIBUTES = {"dayofweek": "day_of_week"}  # part name -> pandas .dt attribute


@dataclass
class DateColumn:
    """How to read one date column (``format``) and which parts it yields."""

    format: str | None = None
    parts: list[str] = field(default_factory=lambda: [*CALENDAR, "timestamp"])

    @classmethod
    def fit(cls, column: pd.Series) -> "DateColumn":
        date_format = None if ptypes.is_datetime64_any_dtype(column) else guess_date_format(column)
        stamps = parse_dates(column, date_format)
        has_time = bool((stamps.dropna().dt.hour != 0).any() or (stamps.dropna().dt.minute != 0).any())
        return cls(date_format, [*CALENDAR, *(["hour"] if has_time else []), "timestamp"])

    def expand(self, column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """(rows x parts float64 array with NaN in gaps, the rows that were missing or unreadable)."""
        stamps = parse_dates(column, None if ptypes.is_datetime64_any_dtype(column) else self.format)
        gap = stamps.isna().to_numpy()
        out = np.empty((len(column), len(self.parts)), dtype=np.float64)
        for j, part in enumerate(self.parts):
            out[:, j] = _part(stamps, part)
        out[gap] = np.nan
        return out, gap

    def names(self, column: str) -> list[str]:
        return [f"{column}_{part}" for part in self.parts]

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "parts": list(self.parts)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DateColumn":
        return cls(data.get("format"), [str(p) for p in data["parts"]])


def _part(stamps: pd.Series, part: str) -> np.ndarray:
    if part == "timestamp":
        days = (stamps - EPOCH) / pd.Timedelta(days=1)
        return days.to_numpy(dtype=np.float64, na_value=np.nan)
    return getattr(stamps.dt, ATTRIBUTES.get(part, part)).to_numpy(dtype=np.float64, na_value=np.nan)
