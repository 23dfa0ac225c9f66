"""Which levels of a string column get a one-hot slot of their own (scikit-learn decides).

Rule, the same for every column (AutoGluon keeps about 100 levels one-hot as well):

- the :data:`MAX_CATEGORIES` - 1 most frequent levels of the training split keep a slot,
  provided they occur in at least :data:`MIN_LEVEL_ROWS` training rows (a level seen in two
  rows cannot be learned, only memorized);
- all other levels share one "other" slot, scikit-learn's infrequent bucket;
- a level first seen after training (validation, test or ``predict``) also goes to the
  "other" slot; when training had no rare levels there is no such slot and the row is all
  zeros in this column's block (scikit-learn's ``handle_unknown="infrequent_if_exist"``);
- a missing value is the level ``<missing>``, a category like any other.

Frequency-capped one-hot was chosen over learned embeddings (see benchmarks/real_tables.py):
a 4,000-level column costs 100 float32 columns, and the model stays an MLP that every
optimizer, the monitor and the tuner already handle.

Fitting uses :class:`sklearn.preprocessing.OneHotEncoder` on the training column; what it
learned (kept levels, whether an "other" slot exists) is stored as plain lists, so the
bundle is JSON. Transforming is an index lookup written straight into the float32 matrix:
no dense n x k float64 or boolean intermediate is ever built.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .defaults import MAX_CATEGORIES

MIN_LEVEL_ROWS = 5  # training rows a level needs for a slot of its own
MISSING_LEVEL = "<missing>"
OTHER_LEVEL = "<other>"


def as_levels(column: pd.Series) -> np.ndarray:
    """Values as strings (an object array), gaps as :data:`MISSING_LEVEL`."""
    strings = column.astype(object).where(column.notna(), MISSING_LEVEL).astype(str)
    return strings.to_numpy(dtype=object)


@dataclass
class Levels:
    """One column's one-hot layout: ``kept`` levels in order, then the "other" slot if any."""

    kept: list[str]
    other: bool

    @property
    def width(self) -> int:
        return len(self.kept) + int(self.other)

    def names(self, column: str) -> list[str]:
        return [f"{column}={level}" for level in self.kept] + ([f"{column}={OTHER_LEVEL}"] if self.other else [])

    def slots(self, column: pd.Series) -> np.ndarray:
        """Slot of each row in this column's block; -1 where the row stays all zeros."""
        slots = pd.Index(self.kept, dtype=object).get_indexer(as_levels(column))
        if self.other:
            slots[slots < 0] = len(self.kept)
        return slots


def fit_levels(column: pd.Series, max_categories: int = MAX_CATEGORIES, min_rows: int = MIN_LEVEL_ROWS) -> Levels:
    """Learn the layout of one training column with scikit-learn's infrequent-category rule."""
    from sklearn.preprocessing import OneHotEncoder

    encoder = OneHotEncoder(max_categories=max(2, max_categories), min_frequency=min_rows, handle_unknown="infrequent_if_exist", sparse_output=True, dtype=np.float32)
    encoder.fit(as_levels(column).reshape(-1, 1))
    infrequent = encoder.infrequent_categories_[0]
    rare = set() if infrequent is None else {str(level) for level in infrequent}
    kept = [str(level) for level in encoder.categories_[0] if str(level) not in rare]
    return Levels(kept, bool(rare))
