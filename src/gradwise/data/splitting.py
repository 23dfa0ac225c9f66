"""Reproducible train/validation/test splits, stratified for classification.

Encoders (imputation medians, category levels, date formats) are fitted on the training
rows only, so validation and test numbers are honest; the size of the encoded matrices is
checked against the memory budget before a single row is encoded.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import ConfigError
from .categorical import MAX_CATEGORIES
from .encoding import FeatureEncoder, TargetEncoder
from .loading import Table
from .memory import check_fits, parse_size
from .validation import note

DEFAULT_SPLIT = (0.7, 0.15, 0.15)
# Splits of tables up to this many rows keep their raw rows, so that cross-validation can
# fit each fold's encoder on that fold's training rows; bigger tables free them (and are
# not cross-validated by default).
KEEP_ROWS_UP_TO = 100_000


@dataclass
class SplitRows:
    """The raw table behind the parts and the row numbers of each part."""

    table: Table
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    max_categories: int = MAX_CATEGORIES


@dataclass
class Part:
    """One split: encoded features (float32), targets (int64 codes or float32 columns) and
    optional per-row weights (float32; None means every row counts once)."""

    X: np.ndarray
    y: np.ndarray
    w: np.ndarray | None = None

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
    rows: SplitRows | None = field(default=None, repr=False, compare=False)

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
        merged = Part(np.concatenate([self.train.X, self.val.X]), np.concatenate([self.train.y, self.val.y]), _merged_weights(self.train, self.val))
        empty = Part(self.val.X[:0], self.val.y[:0], None if self.val.w is None else self.val.w[:0])
        return replace(self, train=merged, val=empty, rows=None)


def _merged_weights(first: Part, second: Part) -> np.ndarray | None:
    """Both parts' weights in row order; a part without weights counts each row once."""
    if first.w is None and second.w is None:
        return None
    return np.concatenate([_weights_or_ones(first), _weights_or_ones(second)])


def _weights_or_ones(part: Part) -> np.ndarray:
    return part.w if part.w is not None else np.ones(len(part), dtype=np.float32)


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


def split_table(table: Table, split=DEFAULT_SPLIT, seed: int = 0, max_categories: int = MAX_CATEGORIES, max_memory: int | str | None = None) -> Splits:
    """Split ``table`` into encoded parts; the same ``seed`` always gives the same rows.

    ``max_categories`` caps the one-hot columns of each string column (see
    :mod:`gradwise.data.categorical`); ``max_memory`` (bytes, or a size such as ``"2G"``)
    bounds the encoded matrices, by default a share of the available memory (see
    :mod:`gradwise.data.memory`).

    >>> from gradwise.data import load_table
    >>> splits = split_table(load_table("builtin:iris"), (0.6, 0.2, 0.2), seed=0)
    >>> len(splits.train), len(splits.val), len(splits.test)
    (90, 30, 30)
    """
    fractions = parse_split(split)
    labels = table.target.iloc[:, 0].astype(str).to_numpy() if table.task == "classification" else None
    indices = _weighted_split_indices(table, fractions, seed, labels)
    return encode_split(table, *indices, seed=seed, fractions=fractions, max_categories=max_categories, max_memory=parse_size(max_memory))


def encode_split(table: Table, train_idx: np.ndarray, val_idx: np.ndarray, test_idx: np.ndarray, seed: int = 0, fractions=DEFAULT_SPLIT, max_categories: int = MAX_CATEGORIES, max_memory: int | None = None) -> Splits:
    """Fit the encoder on the ``train_idx`` rows, check the budget, encode all three parts.

    With row weights the encoder is fitted on the training rows of positive weight only:
    a weight-0 row must not add a category level or move an imputed median. (The rows
    :func:`split_table` picks hold none; a caller's own ``train_idx`` may.)"""
    fit_idx = train_idx if table.weights is None else train_idx[table.weights[train_idx] > 0]
    encoder = FeatureEncoder(missing=table.missing, max_categories=max_categories, left_out=list(table.left_out)).fit(table.features.iloc[fit_idx])
    check_fits(len(train_idx) + len(val_idx) + len(test_idx), encoder.widths(), max_memory, max_categories)
    target = TargetEncoder.fit(table.target, table.task)

    def part(idx: np.ndarray) -> Part:
        weights = None if table.weights is None else table.weights[idx].astype(np.float32)
        return Part(encoder.transform(table.features.iloc[idx]), target.transform(table.target.iloc[idx]), weights)

    n_split = len(train_idx) + len(val_idx) + len(test_idx)  # not table.n_rows: weight-0 rows are in no part
    rows = SplitRows(table, train_idx, val_idx, test_idx, max_categories) if n_split <= KEEP_ROWS_UP_TO else None
    return Splits(part(train_idx), part(val_idx), part(test_idx), table.task, encoder, target, table.name, seed, fractions, rows)


def _weighted_split_indices(table: Table, fractions, seed: int, labels: np.ndarray | None):
    """Train/val/test rows; rows of weight 0 are in none of them.

    The rows of positive weight are split as a table without the weight-0 rows would be,
    so a run on the table equals a run on it without them. In training a weight-0 row
    would count nothing in the loss yet still take a place in a mini-batch, change the
    steps per epoch and enter batch-norm statistics; held out, it would add nothing to a
    score (and a part of only such rows would score 0/0)."""
    if table.weights is None:
        return _split_indices(table.n_rows, fractions, seed, labels, table.target_names[0])
    positive = np.flatnonzero(table.weights > 0)
    train, val, test = _split_indices(len(positive), fractions, seed, None if labels is None else labels[positive], table.target_names[0])
    return positive[train], positive[val], positive[test]


def _split_indices(n: int, fractions, seed: int, labels: np.ndarray | None, target_name: str = "target"):
    rng = np.random.default_rng(seed)
    if labels is None:
        groups = [rng.permutation(n)]
    else:
        groups = _class_groups(labels, fractions, rng, target_name)
    chosen = ([], [], [])
    for group in groups:
        n_train, n_val = _sizes(len(group), fractions)
        chosen[0].append(group[:n_train])
        chosen[1].append(group[n_train : n_train + n_val])
        chosen[2].append(group[n_train + n_val :])
    # Shuffle across groups so that no split is ordered by class.
    return tuple(rng.permutation(np.concatenate(c)).astype(np.int64) for c in chosen)


def _class_groups(labels: np.ndarray, fractions, rng: np.random.Generator, target_name: str) -> list[np.ndarray]:
    """One group per class; classes too small to give validation or test a row are pooled.

    Without pooling, a table of 6,000 rows and 5,000 classes put every row in training and
    reported empty validation and test metrics.
    """
    _, codes = np.unique(labels, return_inverse=True)
    order = np.argsort(codes, kind="stable")  # rows grouped by class, in O(n log n)
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    groups = [rng.permutation(rows) for rows in np.split(order, bounds)]
    small = [g for g in groups if _too_small(len(g), fractions)]
    if not small:
        return groups
    pooled = rng.permutation(np.concatenate(small))
    note(f"{len(small):,} of the {len(groups):,} classes of '{target_name}' have too few rows to stratify; their {len(pooled):,} rows are split at random, so validation and test hold classes training may not have seen (if '{target_name}' is a quantity, pass --task regression)")
    return [g for g in groups if not _too_small(len(g), fractions)] + [pooled]


def _too_small(n: int, fractions) -> bool:
    n_train, n_val = _sizes(n, fractions)
    gives_val = n_val > 0 or fractions[1] == 0
    gives_test = n - n_train - n_val > 0 or fractions[2] == 0
    return not (gives_val and gives_test)


def _sizes(n: int, fractions) -> tuple[int, int]:
    """Rows for train and validation out of ``n``; every group keeps at least one training row."""
    n_val = int(round(n * fractions[1]))
    n_test = int(round(n * fractions[2]))
    n_train = max(1, n - n_val - n_test)
    n_val = min(n_val, n - n_train)
    return n_train, n_val
