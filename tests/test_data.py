"""Loading tables, inferring the task, one-hot encoding and reproducible splits."""

import numpy as np
import pandas as pd
import pytest

from gradwise import DataError, load_table, split_table
from gradwise.data import BUILTINS, DataWarning, parse_split
from gradwise.errors import ConfigError


def _frame(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "size": rng.normal(size=n),
        "color": rng.choice(["red", "green", "blue"], size=n),
        "label": rng.choice(["yes", "no"], size=n),
    })


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".npz"])
def test_every_file_format_loads_the_same_numbers(tmp_path, suffix):
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 3, size=40)
    frame = pd.DataFrame(X, columns=["x0", "x1", "x2"]).assign(y=y)
    path = tmp_path / f"table{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif suffix == ".parquet":
        frame.to_parquet(path)
    else:
        np.savez(path, X=X, y=y)
    table = load_table(path)
    assert table.task == "classification"
    np.testing.assert_allclose(table.features.to_numpy(), X, rtol=1e-12)
    np.testing.assert_array_equal(table.target.iloc[:, 0].to_numpy(), y)


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtins_know_their_target_and_task(name):
    table = load_table(f"builtin:{name}")
    assert table.task == BUILTINS[name][1]
    assert table.target_names == ["target"] and "target" not in table.features.columns


def test_target_defaults_to_last_column_and_can_be_named(tmp_path):
    path = tmp_path / "t.csv"
    _frame().to_csv(path, index=False)
    assert load_table(path).target_names == ["label"]
    assert load_table(path, target="size").task == "regression"


def test_task_inference_rules():
    n = 100
    base = pd.DataFrame({"x": np.arange(n, dtype=float)})
    cases = {
        "classification": [np.array(["a", "b"] * 50), np.arange(n) % 2 == 0, np.arange(n) % 5],
        "regression": [np.linspace(0, 1, n), np.arange(n) * 3],
    }
    for task, targets in cases.items():
        for values in targets:
            from gradwise.data.validation import infer_task
            assert infer_task(base.assign(y=values)[["y"]], None) == task, values[:5]


def test_several_regression_targets(tmp_path):
    frame = pd.DataFrame({"x": np.arange(30.0), "a": np.arange(30.0) * 2, "b": np.arange(30.0) ** 2})
    path = tmp_path / "multi.csv"
    frame.to_csv(path, index=False)
    table = load_table(path, target="a,b")
    splits = split_table(table)
    assert table.task == "regression" and splits.n_outputs == 2 and splits.train.y.shape[1] == 2


def test_one_hot_levels_come_from_the_training_split_and_rare_ones_share_the_other_slot():
    frame = _frame(200)
    frame.loc[0, "color"] = "purple"  # a single row: too rare for a slot of its own
    splits = split_table(load_table_from(frame), (0.5, 0.25, 0.25), seed=3)
    assert splits.encoder.categories["color"] == ["blue", "green", "red"]
    assert "color=purple" not in splits.encoder.feature_names
    in_train = "purple" in set(frame.loc[_train_rows(splits, frame), "color"])
    # The "other" slot exists only when training saw a rare level.
    assert ("color=<other>" in splits.encoder.feature_names) == in_train
    assert splits.n_features == 1 + len(splits.encoder.categories["color"]) + int(in_train)
    # Every encoded one-hot row has at most one 1.
    onehot = splits.test.X[:, 1:]
    assert set(np.unique(onehot)) <= {0.0, 1.0} and (onehot.sum(axis=1) <= 1).all()


def load_table_from(frame):
    from gradwise.data.loading import Table
    return Table(frame.drop(columns=["label"]), frame[["label"]], "classification", "frame")


def _train_rows(splits, frame):
    # Recover which rows went to training by matching the numeric column.
    return frame.index[np.isin(frame["size"].to_numpy().astype(np.float32), splits.train.X[:, 0])]


def test_split_is_reproducible_disjoint_and_stratified():
    table = load_table("builtin:breast_cancer")
    a, b = split_table(table, seed=7), split_table(table, seed=7)
    np.testing.assert_array_equal(a.train.X, b.train.X)
    c = split_table(table, seed=8)
    assert not np.array_equal(a.train.X, c.train.X)
    assert len(a.train) + len(a.val) + len(a.test) == table.n_rows
    overall = np.mean(table.target.iloc[:, 0] == "malignant")
    for part in (a.train, a.val, a.test):
        share = np.mean(part.y == a.classes.index("malignant"))
        assert abs(share - overall) < 0.02


def test_merge_train_val_keeps_every_row():
    splits = split_table(load_table("builtin:iris"))
    merged = splits.merge_train_val()
    assert len(merged.train) == len(splits.train) + len(splits.val) and len(merged.val) == 0
    assert len(merged.test) == len(splits.test)


@pytest.mark.parametrize("bad", ["0.5,0.5", "0.7,0.2,0.2", "a,b,c", "0,0.5,0.5", "-0.1,0.6,0.5"])
def test_bad_split_fractions_are_rejected(bad):
    with pytest.raises(ConfigError, match="--split"):
        parse_split(bad)


def test_non_numeric_values_name_column_count_and_first_row(tmp_path):
    frame = pd.DataFrame({"price": ["1.5", "2", "?", "4", "x", "6"] * 3, "y": [0, 1] * 9})
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"column 'price' has 6 non-numeric values \(first at row 3: '\?'\); clean them or pass --missing drop"):
        load_table(path)
    with pytest.warns(UserWarning, match="dropped 6 of 18 rows"):
        table = load_table(path, drop_invalid=True)
    assert table.n_rows == 12
    with pytest.warns(UserWarning, match="dropped 6 of 18 rows"):
        assert load_table(path, missing="drop").n_rows == 12


def test_a_mistyped_target_column_is_named_back_as_the_near_miss(tmp_path):
    from gradwise.errors import DataError

    path = tmp_path / "cars.csv"
    pd.DataFrame({"Name": ["a", "b"] * 10, "Miles_per_Gallon": range(20), "Weight": range(20)}).to_csv(path, index=False)
    for typed, meant in (("name", "'Name'"), ("Miles_per_Galon", "'Miles_per_Gallon'")):
        with pytest.raises(DataError, match=f"target column '{typed}' not found; did you mean {meant}\\?"):
            load_table(path, target=typed)
    with pytest.raises(DataError, match="not found; the columns are: Name, Miles_per_Gallon, Weight$"):
        load_table(path, target="price")


def weighted_table(path, zero_rows: int = 0, flip: bool = True):
    """60 rows of two float features, a string and a label, weights in [0.5, 2); then
    ``zero_rows`` more rows of weight 0 whose labels are flipped (when ``flip``) and whose
    colour, 'green', no other row has."""
    def rows(n, rng):
        x1, x2 = rng.normal(size=n), rng.normal(size=n)
        label = np.where(x1 + 0.5 * x2 > 0, "yes", "no")
        return pd.DataFrame({"x1": x1, "x2": x2, "colour": ["red", "blue"] * (n // 2) + ["red"] * (n % 2), "w": rng.uniform(0.5, 2.0, size=n), "label": label})

    frame = rows(60, np.random.default_rng(0))
    if zero_rows:
        extra = rows(zero_rows, np.random.default_rng(1)).assign(w=0.0, colour="green")
        if flip:
            extra["label"] = np.where(extra["label"] == "yes", "no", "yes")
        frame = pd.concat([frame, extra], ignore_index=True)
    frame.to_csv(path, index=False)
    return frame


def test_a_weight_column_leaves_the_features_and_weights_every_split(tmp_path):
    frame = weighted_table(tmp_path / "t.csv")
    table = load_table(tmp_path / "t.csv", target="label", weight="w")
    assert "w" not in table.features.columns and table.target_names == ["label"]
    np.testing.assert_array_equal(table.weights, frame["w"].to_numpy())
    splits = split_table(table, seed=0)
    for name in ("train", "val", "test"):
        part, rows = getattr(splits, name), getattr(splits.rows, name)  # rows: the table's row numbers
        assert part.w.dtype == np.float32
        np.testing.assert_array_equal(part.w, frame["w"].to_numpy(np.float32)[rows])
    assert load_table(tmp_path / "t.csv", target="label").weights is None  # without the option, w is a feature
    assert "w" in load_table(tmp_path / "t.csv", target="label").features.columns


def test_weight_0_rows_are_in_no_part_and_the_parts_equal_the_split_without_them(tmp_path):
    """Weight-0 rows are in no part (train included), the parts are exactly those of the
    table without them, and the encoder gets no category level from them (the 'green'
    only they have)."""
    weighted_table(tmp_path / "with.csv", zero_rows=12)
    weighted_table(tmp_path / "without.csv")
    with pytest.warns(DataWarning, match="left out 12 of 72 rows whose weight 'w' is 0"):  # said, not silent
        with_zeros = split_table(load_table(tmp_path / "with.csv", target="label", weight="w"), seed=3)
    without = split_table(load_table(tmp_path / "without.csv", target="label", weight="w"), seed=3)
    weightless = np.arange(60, 72)  # weighted_table appends the 12 weight-0 rows after the 60
    for name in ("train", "val", "test"):
        assert not np.isin(getattr(with_zeros.rows, name), weightless).any(), name
        assert (getattr(with_zeros, name).w > 0).all(), name
        np.testing.assert_array_equal(getattr(with_zeros.rows, name), getattr(without.rows, name))  # the same row numbers
        for attr in ("X", "y", "w"):
            np.testing.assert_array_equal(getattr(getattr(with_zeros, name), attr), getattr(getattr(without, name), attr), err_msg=f"{name}.{attr}")
    assert with_zeros.n_features == without.n_features  # no 'green' one-hot column


@pytest.mark.parametrize("cell,message", [
    (-1.0, r"weight column 'w' has 1 negative values \(first at row 4: -1.0\); row weights must be finite numbers >= 0"),
    ("heavy", r"weight column 'w' has 1 non-numeric values \(first at row 4: 'heavy'\)"),
    (None, r"weight column 'w' has 1 missing values \(first at row 4\)"),
    ("inf", r"weight column 'w' has 1 infinite values \(first at row 4: inf\)"),
])
def test_bad_weights_name_the_column_the_count_and_the_first_row(tmp_path, cell, message):
    frame = weighted_table(tmp_path / "t.csv")
    frame["w"] = frame["w"].astype(object)
    frame.loc[3, "w"] = cell
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=message):
        load_table(tmp_path / "bad.csv", target="label", weight="w")


def test_weight_columns_that_cannot_weigh_are_refused(tmp_path):
    frame = weighted_table(tmp_path / "t.csv")
    with pytest.raises(DataError, match=r"weight column 'W' not found; did you mean 'w'\?"):
        load_table(tmp_path / "t.csv", target="label", weight="W")
    with pytest.raises(DataError, match="cannot be both the target and the weight column"):
        load_table(tmp_path / "t.csv", target="w", weight="w")
    frame.assign(w=0.0).to_csv(tmp_path / "zero.csv", index=False)
    with pytest.raises(DataError, match="weight column 'w' is 0 on every row"):
        load_table(tmp_path / "zero.csv", target="label", weight="w")


def test_weights_follow_their_rows_when_rows_are_dropped(tmp_path):
    """Rows without a target (and, under --missing drop, with gaps) leave with their weights."""
    frame = weighted_table(tmp_path / "t.csv")
    frame.loc[[2, 5], "label"] = None
    frame.loc[9, "x1"] = None
    frame.to_csv(tmp_path / "gaps.csv", index=False)
    with pytest.warns(UserWarning, match="dropped"):
        table = load_table(tmp_path / "gaps.csv", target="label", weight="w", missing="drop")
    np.testing.assert_array_equal(table.weights, frame["w"].drop(index=[2, 5, 9]).to_numpy())
