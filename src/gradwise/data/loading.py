"""Read a user's table (CSV, TSV, Parquet, NPZ or a scikit-learn built-in) and check it.

Everything that can be wrong with a table is caught here, once, with a message that names
the column, the count and the first offending row, so nothing downstream sees inf or words
where numbers belong. Gaps follow the ``missing`` policy (see :mod:`gradwise.data.validation`)
and ID-like columns are set aside (see :mod:`gradwise.data.columns`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from .columns import id_like_columns
from .defaults import DEFAULT_SOURCE
from .memory import check_readable
from .validation import check_features, check_numeric_targets, check_target, infer_task, note, resolve_missing, row_weights

BUILTINS = {
    # name: (scikit-learn loader, task)
    "iris": ("load_iris", "classification"),
    "wine": ("load_wine", "classification"),
    "breast_cancer": ("load_breast_cancer", "classification"),
    "digits": ("load_digits", "classification"),
    "diabetes": ("load_diabetes", "regression"),
}
FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet", ".npz": "npz"}


@dataclass
class Table:
    """A checked table: numeric, string or date features, one or more target columns.

    ``missing`` is the policy the table was loaded with (the encoder imputes under
    ``impute``); ``left_out`` names the ID-like columns that were set aside; ``weights``
    holds each row's weight (float64) when the table was loaded with a weight column.
    """

    features: pd.DataFrame
    target: pd.DataFrame
    task: str
    name: str
    missing: str = "impute"
    left_out: list[str] = field(default_factory=list)
    weights: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return len(self.features)

    @property
    def target_names(self) -> list[str]:
        return [str(c) for c in self.target.columns]


def load_table(
    source: str | Path = DEFAULT_SOURCE,
    target: str | list[str] | None = None,
    task: str | None = None,
    drop_invalid: bool = False,
    missing: str | None = None,
    keep_columns: str | list[str] | tuple[str, ...] = (),
    weight: str | None = None,
) -> Table:
    """Load ``source`` and split it into features and target.

    ``target`` names the target column (or a list, or a comma-separated string, for several
    regression targets); by default the last column, or the built-in dataset's own target.
    ``task`` is inferred unless given ('classification' or 'regression').

    ``missing`` says what happens to gaps: ``"impute"`` (the default; the encoder fills them
    in), ``"drop"`` (drop those rows, as does ``drop_invalid``) or ``"error"``. Rows without a
    target are dropped unless ``"error"``. ID-like columns (see :mod:`gradwise.data.columns`)
    are left out with a :class:`~gradwise.data.validation.DataWarning` unless named in
    ``keep_columns``.

    ``weight`` names a column of per-row weights (finite, >= 0, not all 0): it is taken out
    of the features, and training weights each row's loss by it (``Part.w``, see
    :func:`gradwise.fit`); rows of weight 0 change nothing (:func:`gradwise.split_table` puts
    them in no part).

    >>> table = load_table("builtin:iris")
    >>> table.task, table.features.shape
    ('classification', (150, 4))
    """
    policy = resolve_missing(missing, drop_invalid)
    frame, default_target = read_frame(source)
    frame, weights = _take_weights(frame, weight, target)
    target_columns = _target_columns(frame, target, default_target)
    features = frame.drop(columns=target_columns)
    if features.shape[1] == 0:
        raise DataError(f"table {source} has no feature columns besides the target {target_columns}")
    features, left_out = _leave_out_ids(features, _names(keep_columns))
    target_frame = frame[target_columns]
    check_numeric_targets(target_frame)
    features, target_frame = check_features(features, target_frame, policy)
    target_frame = check_target(target_frame, policy)
    features = features.loc[target_frame.index]
    resolved_task = infer_task(target_frame, task)
    _check_task_fits(target_frame, resolved_task)
    kept_weights = _kept_weights(weights, target_frame.index, weight)
    return Table(features.reset_index(drop=True), target_frame.reset_index(drop=True), resolved_task, str(source), policy, left_out, kept_weights)


def _take_weights(frame: pd.DataFrame, weight: str | None, target) -> tuple[pd.DataFrame, pd.Series | None]:
    """The frame without its weight column, and that column's checked values (by row label).

    Checked on every row as read, so a bad weight's row number is the file's."""
    if weight is None:
        return frame, None
    if weight not in frame.columns:
        raise DataError(f"weight column '{weight}' not found; {_closest_columns(weight, frame.columns)}")
    if weight in _names(target):
        raise DataError(f"column '{weight}' cannot be both the target and the weight column; give --weight-column another column")
    return frame.drop(columns=[weight]), pd.Series(row_weights(frame[weight], weight), index=frame.index)


def _kept_weights(weights: pd.Series | None, rows: pd.Index, name: str | None) -> np.ndarray | None:
    """The weights of the rows that survived the gap and target checks."""
    if weights is None:
        return None
    kept = weights.loc[rows].to_numpy()
    if not (kept > 0).any():
        raise DataError(f"weight column '{name}' is 0 on every row left after dropping rows with gaps; at least one row needs a positive weight")
    return kept


def _names(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    if not value:
        return []
    return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else [str(v) for v in value]


def _leave_out_ids(features: pd.DataFrame, keep: list[str]) -> tuple[pd.DataFrame, list[str]]:
    unknown = [name for name in keep if name not in features.columns]
    if unknown:
        raise DataError(f"--keep-columns names '{unknown[0]}', which is not a feature column; the columns are: {', '.join(map(str, features.columns[:20]))}")
    ids = id_like_columns(features, keep)
    if len(ids) == features.shape[1]:
        return features, []  # nothing else to learn from: keep them rather than train on nothing
    if ids:
        note(f"left out ID-like column{'s' if len(ids) > 1 else ''} {', '.join(repr(c) for c in ids)} (nearly every value distinct, or a row counter); --keep-columns {','.join(ids)} keeps them")
    return features.drop(columns=ids), ids


def read_frame(source: str | Path) -> tuple[pd.DataFrame, list[str] | None]:
    """Read ``source`` into a DataFrame; also return the built-in's target columns, if any."""
    text = str(source)
    if text.startswith("builtin:"):
        return _read_builtin(text.split(":", 1)[1])
    path = Path(text)
    if not path.exists():
        raise DataError(f"data file '{path}' does not exist; give a .csv, .tsv, .parquet or .npz path, or builtin:NAME ({', '.join(BUILTINS)})")
    if path.is_dir():
        raise DataError(f"data path '{path}' is a directory; give a .csv, .tsv, .parquet or .npz file")
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"unknown data format '{path.suffix or path.name}'; use .csv, .tsv, .parquet or .npz")
    check_readable(path, kind)
    frame = _read_file(path, kind)
    if len(frame) == 0 or frame.shape[1] == 0:
        raise DataError(f"table '{path}' is empty: it has {len(frame)} rows and {frame.shape[1]} columns")
    frame.columns = [str(c) for c in frame.columns]
    return frame, None


def _read_builtin(name: str) -> tuple[pd.DataFrame, list[str]]:
    if name not in BUILTINS:
        raise DataError(f"unknown built-in dataset '{name}'; choose one of {', '.join(BUILTINS)}")
    import sklearn.datasets

    loader, task = BUILTINS[name]
    bunch = getattr(sklearn.datasets, loader)(as_frame=True)
    frame = bunch.frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    if task == "classification":
        # Labels read better as names ('setosa') than as codes (0).
        names = np.asarray(bunch.target_names).astype(str)
        frame["target"] = names[frame["target"].to_numpy()]
    return frame, ["target"]


def _read_file(path: Path, kind: str) -> pd.DataFrame:
    try:
        if kind == "csv":
            return pd.read_csv(path, skipinitialspace=True)
        if kind == "tsv":
            return pd.read_csv(path, sep="\t")
        if kind == "parquet":
            return pd.read_parquet(path)
        return _read_npz(path)
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"table '{path}' is empty: it has no header and no rows") from None
    except Exception as error:  # parser errors come in many types; all mean a malformed file
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"cannot read '{path}' as {kind}: {first_line}") from None


def _read_npz(path: Path) -> pd.DataFrame:
    """NPZ either holds 'X' (2-D) and optional 'y', or one 1-D array per column."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    if "X" in arrays:
        X = np.asarray(arrays["X"])
        if X.ndim != 2:
            raise DataError(f"'{path}': array 'X' must be 2-D (rows x features), got shape {X.shape}")
        frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
        if "y" in arrays:
            y = np.asarray(arrays["y"])
            if len(y) != len(frame):
                raise DataError(f"'{path}': 'X' has {len(frame)} rows but 'y' has {len(y)}")
            if y.ndim == 1:
                frame["y"] = y
            else:
                for j in range(y.shape[1]):
                    frame[f"y{j}"] = y[:, j]
        return frame
    lengths = {key: len(np.atleast_1d(a)) for key, a in arrays.items()}
    if not arrays or len(set(lengths.values())) != 1 or any(np.ndim(a) != 1 for a in arrays.values()):
        raise DataError(f"'{path}' must hold arrays 'X' and 'y', or 1-D arrays of equal length (one per column); found {lengths}")
    return pd.DataFrame(arrays)


def _target_columns(frame: pd.DataFrame, target, default: list[str] | None) -> list[str]:
    if target is None:
        return default if default is not None else [str(frame.columns[-1])]
    names = [t.strip() for t in target.split(",")] if isinstance(target, str) else [str(t) for t in target]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"--target names column '{repeated[0]}' more than once; give each target column once")
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise DataError(f"target column '{missing[0]}' not found; {_closest_columns(missing[0], frame.columns)}")
    return names


def _closest_columns(name: str, columns: pd.Index) -> str:
    """'did you mean ...?' for a near miss (case, a typo), else the first columns: a wide
    table's 500 names would bury the one the user meant."""
    import difflib

    labels = [str(c) for c in columns]
    by_case = [c for c in labels if c.lower() == name.lower()]
    near = by_case or difflib.get_close_matches(name, labels, n=3, cutoff=0.75)
    if near:
        return "did you mean " + " or ".join(f"'{c}'" for c in near) + "?"
    return "the columns are: " + ", ".join(labels[:20]) + (" ..." if len(labels) > 20 else "")


def _check_task_fits(target: pd.DataFrame, task: str) -> None:
    if task == "classification":
        if target.shape[1] != 1:
            raise DataError(f"classification takes one target column, got {target.shape[1]}: {list(target.columns)}; pass --task regression for several numeric targets")
        classes = target.iloc[:, 0].unique()
        if len(classes) < 2:
            raise DataError(f"target '{target.columns[0]}' has a single class ({classes[0]!r}); classification needs at least two")
