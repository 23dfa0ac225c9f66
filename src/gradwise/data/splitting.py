"""Reproducible train/validation/test splits, stratified for classification.

Encoders are fitted on the training rows only, so validation and test numbers are honest.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import ConfigError
from .encoding import FeatureEncoder, TargetEncoder
from .loading import Table

DEFAULT_SPLIT = (0.7, 0.15, 0.15)


@dataclass
class Part:
    """One split: encoded features (float32) and targets (int64 codes or float32 columns)."""

    X: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.X)


@dataclass
class Splits:
    """The encoded train/validation/test parts plus what is needed to encode new rows."""

    train: Part
    val: Part
    test: Part
    task: str
    encoder: FeatureEncoder
    target: TargetEncoder
    name: str = ""
    seed: int = 0
    fractions: tuple[float, float, float] = field(default=DEFAULT_SPLIT)

    @property
    def n_features(self) -> int:
        return self.train.X.shape[1]

    @property
    def n_outputs(self) -> int:
        if self.task == "classification":
            return len(self.target.classes)
        return self.train.y.shape[1]

    @property
    def classes(self) -> list:
        return self.target.classes

    def merge_train_val(self) -> "Splits":
        """Training and validation rows together (for a final refit); validation left empty."""
        merged = Part(np.concatenate([self.train.X, self.val.X]), np.concatenate([self.train.y, self.val.y]))
        empty = Part(self.val.X[:0], self.val.y[:0])
        return replace(self, train=merged, val=empty)


def parse_split(value: str | tuple | list) -> tuple[float, float, float]:
    """'0.7,0.15,0.15' or a 3-sequence; fractions >= 0 that sum to 1 with train > 0."""
    try:
        parts = [float(p) for p in (value.split(",") if isinstance(value, str) else value)]
    except (TypeError, ValueError):
        raise ConfigError(f"--split must be three fractions like 0.7,0.15,0.15; got {value!r}") from None
    if len(parts) != 3 or any(not np.isfinite(p) or p < 0 for p in parts) or parts[0] <= 0:
        raise ConfigError(f"--split must be three non-negative fractions (train > 0) like 0.7,0.15,0.15; got {value!r}")
    if abs(sum(parts) - 1.0) > 1e-6:
        raise ConfigError(f"--split fractions must sum to 1, got {'+'.join(map(str, parts))} = {sum(parts):g}")
    return parts[0], parts[1], parts[2]


def split_table(table: Table, split=DEFAULT_SPLIT, seed: int = 0) -> Splits:
    """Split ``table`` into encoded parts; the same ``seed`` always gives the same rows.

    >>> from gradwise.data import load_table
    >>> splits = split_table(load_table("builtin:iris"), (0.6, 0.2, 0.2), seed=0)
    >>> len(splits.train), len(splits.val), len(splits.test)
    (90, 30, 30)
    """
    fractions = parse_split(split)
    labels = table.target.iloc[:, 0].astype(str).to_numpy() if table.task == "classification" else None
    train_idx, val_idx, test_idx = _split_indices(table.n_rows, fractions, seed, labels)
    encoder = FeatureEncoder().fit(table.features.iloc[train_idx])
    target = TargetEncoder.fit(table.target, table.task)

    def part(idx: np.ndarray) -> Part:
        return Part(encoder.transform(table.features.iloc[idx]), target.transform(table.target.iloc[idx]))

    return Splits(part(train_idx), part(val_idx), part(test_idx), table.task, encoder, target, table.name, seed, fractions)


def _split_indices(n: int, fractions, seed: int, labels: np.ndarray | None):
    rng = np.random.default_rng(seed)
    if labels is None:
        groups = [rng.permutation(n)]
    else:
        groups = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    chosen = ([], [], [])
    for group in groups:
        n_train, n_val = _sizes(len(group), fractions)
        chosen[0].append(group[:n_train])
        chosen[1].append(group[n_train : n_train + n_val])
        chosen[2].append(group[n_train + n_val :])
    # Shuffle across groups so that no split is ordered by class.
    return tuple(rng.permutation(np.concatenate(c)).astype(np.int64) for c in chosen)


def _sizes(n: int, fractions) -> tuple[int, int]:
    """Rows for train and validation out of ``n``; every group keeps at least one training row."""
    n_val = int(round(n * fractions[1]))
    n_test = int(round(n * fractions[2]))
    n_train = max(1, n - n_val - n_test)
    n_val = min(n_val, n - n_train)
    return n_train, n_val
