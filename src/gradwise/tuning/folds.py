"""k-fold cross-validation over training + validation rows, for small tables.

Why: on a small table the validation split is a few dozen rows (diabetes: 66), and the
best of 30 trials on it is mostly the luckiest draw of that noise — on diabetes the
"best" trial's test RMSE was worse than the untuned defaults'. Averaging each trial's
score over k folds of train + val ranks configurations on every labelled row instead of
one small slice. It costs k fits per trial, which is affordable exactly when the table is
small; above :data:`CV_ROW_LIMIT` rows the single validation split is precise enough.

The test rows are never part of a fold. Each fold fits its own encoder (imputation medians,
category levels, date formats) on that fold's training rows, so a held-out fold is as
unseen as the test split is; the network's own input normalizer is refitted on each fold's
training rows by :func:`gradwise.fit`. (Splits of a table too big to keep its raw rows, see
:data:`gradwise.data.splitting.KEEP_ROWS_UP_TO`, keep the training split's encoder.)
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ..errors import ConfigError

CV_ROW_LIMIT = 2000  # train + val rows below which "auto" cross-validates
CV_FOLDS = 5


def resolve_folds(cv: Any, n_rows: int) -> int:
    """Folds to use: ``"auto"`` → 5 below :data:`CV_ROW_LIMIT` rows, else 0 (off); an int as given."""
    if cv in (None, "auto"):
        return CV_FOLDS if n_rows < CV_ROW_LIMIT else 0
    try:
        folds = int(cv)
    except (TypeError, ValueError):
        raise ConfigError(f"--cv must be 'auto', 0 (off) or a number of folds >= 2; got {cv!r}") from None
    if folds == 1 or folds < 0:
        raise ConfigError(f"--cv must be 'auto', 0 (off) or a number of folds >= 2; got {cv!r}")
    if folds > n_rows:
        raise ConfigError(f"--cv {folds}: more folds than the {n_rows} training + validation rows; use fewer folds")
    return folds


ENSEMBLE_MEMBERS = 5  # networks in the final model of a small table (--ensemble auto)


def resolve_members(ensemble: Any, n_rows: int) -> int:
    """Networks in the final model: ``"auto"`` → 5 below :data:`CV_ROW_LIMIT` rows, else 1.

    Small tables are where one network's test error depends most on its initialization
    (diabetes, default configuration, 3 splits x 5 seeds: single networks 56.06 mean test
    RMSE, the mean of 5 networks 53.46).
    """
    return (ENSEMBLE_MEMBERS if n_rows < CV_ROW_LIMIT else 1) if ensemble in (None, "auto") else int(ensemble)


def make_folds(splits: Any, folds: int, seed: int = 0) -> list[Any]:
    """``folds`` Splits whose train/val parts partition train + val; the test part is unchanged.

    Classification folds are stratified (each class dealt round-robin over the folds), so a
    rare class is not missing from any fold's validation rows. Rows of weight 0 (which
    :func:`gradwise.split_table` already leaves out of every part) are in no fold's rows,
    so the folds are those of the splits without them.
    """
    merged = splits.merge_train_val().train
    assignment = _fold_of_each_row(merged, splits.task, folds, seed)
    out = []
    for k in range(folds):
        held, trains = assignment == k, (assignment >= 0) & (assignment != k)
        if splits.rows is not None:
            out.append(_refit_fold(splits, trains, held))
            continue
        out.append(replace(splits, train=_rows_of(merged, trains), val=_rows_of(merged, held)))
    return out


def _fold_of_each_row(merged: Any, task: str, folds: int, seed: int) -> np.ndarray:
    """Each row's held-out fold; -1 for rows of weight 0, which are in no fold at all (in
    training they would take places in mini-batches and batch-norm statistics while
    counting nothing in the loss; in a fold's validation score they would be 0/0)."""
    rng = np.random.default_rng(seed)
    rows = np.arange(len(merged)) if merged.w is None else np.flatnonzero(merged.w > 0)
    if task == "classification":
        labels = np.asarray(merged.y).reshape(len(merged), -1)[rows, 0]
        order = np.concatenate([rows[rng.permutation(np.flatnonzero(labels == c))] for c in np.unique(labels)])
    else:
        order = rows[rng.permutation(len(rows))]
    assignment = np.full(len(merged), -1, dtype=np.int64)
    assignment[order] = np.arange(len(order)) % folds
    return assignment


def _rows_of(part: Any, rows: np.ndarray) -> Any:
    return type(part)(part.X[rows], part.y[rows], None if part.w is None else part.w[rows])


def _refit_fold(splits: Any, trains: np.ndarray, held: np.ndarray) -> Any:
    """A fold encoded from the raw rows by an encoder fitted on its own training rows."""
    from ..data import encode_split

    rows = splits.rows
    merged = np.concatenate([rows.train, rows.val])  # the row order of merge_train_val
    fold = encode_split(rows.table, merged[trains], merged[held], rows.test, splits.seed, splits.fractions, rows.max_categories)
    return replace(fold, rows=None)
