"""Real tables: gaps, many-level strings, dates, ID columns and the memory budget.

Reference tests compare the encoder with scikit-learn's SimpleImputer and OneHotEncoder on
the same rows; the rest check that training, the bundle and predict treat every kind of
column the same way.
"""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder

from gradwise import TrainConfig, fit, load_bundle, load_table, save_bundle, split_table
from gradwise.cli import main
from gradwise.data import DataWarning, FeatureEncoder
from gradwise.data.categorical import MIN_LEVEL_ROWS, as_levels
from gradwise.data.loading import Table, read_frame
from gradwise.data.memory import available_bytes, parse_size
from gradwise.inference import predict_table
from gradwise.tuning.folds import make_folds


# Children import gradwise's data modules under empty parent packages, without torch:
# seconds saved per child on a busy machine.
WITHOUT_TORCH = (
    "import importlib.util, sys, types\n"
    "root = importlib.util.find_spec('gradwise').submodule_search_locations[0]\n"
    "for name, path in (('gradwise', root), ('gradwise.data', root + '/data')):\n"
    "    sys.modules[name] = types.ModuleType(name); sys.modules[name].__path__ = [path]\n"
)


def _gappy(n=200, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.exponential(size=n), "c": rng.integers(0, 9, n).astype(float), "full": rng.normal(size=n)})
    for name, share in (("a", 0.1), ("b", 0.3), ("c", 0.05)):
        frame.loc[rng.random(n) < share, name] = np.nan
    return frame


def _mixed(n=240, seed=0):
    """Every kind of column: gaps, a string with rare levels and gaps, a date, two IDs."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "row": np.arange(1, n + 1),
        "name": [f"passenger {i}" for i in range(n)],
        "size": rng.normal(size=n),
        "color": rng.choice(["red", "green", "blue", "teal", "rare1", "rare2"], n, p=[0.3, 0.3, 0.3, 0.08, 0.01, 0.01]),
        "when": (pd.Timestamp("2021-03-01") + pd.to_timedelta(rng.integers(0, 400 * 24, n), unit="h")).strftime("%Y-%m-%d %H:%M"),
    })
    frame.loc[rng.random(n) < 0.15, "size"] = np.nan
    frame.loc[rng.random(n) < 0.1, "color"] = None
    frame["label"] = np.where(frame["size"].fillna(2) > 0.3, "yes", "no")
    return frame


def test_numeric_imputation_matches_sklearn_simple_imputer_with_indicators():
    train, new = _gappy(200, 0), _gappy(80, 1)
    reference = SimpleImputer(strategy="median", add_indicator=True).fit(train)
    encoder = FeatureEncoder().fit(train)
    assert encoder.indicators == ["a", "b", "c"]  # 'full' had no gap: no indicator
    assert encoder.feature_names[-3:] == ["a_missing", "b_missing", "c_missing"]
    np.testing.assert_allclose(encoder.transform(train), reference.transform(train), rtol=1e-6)
    new.loc[3, "full"] = np.nan  # a gap where training had none: imputed, no indicator, a warning
    with pytest.warns(DataWarning, match=r"'full' \(1\)"):
        encoded = encoder.transform(new)
    expected = reference.transform(new.fillna({"full": np.median(train["full"])}))
    np.testing.assert_allclose(encoded, expected, rtol=1e-6)
    assert encoded.dtype == np.float32


def test_one_hot_matches_sklearn_with_infrequent_bucket_and_unknown_levels():
    rng = np.random.default_rng(0)
    levels = [f"L{i}" for i in range(300)]
    train = pd.DataFrame({"tail": rng.choice(levels, 3000, p=np.arange(300, 0, -1) / np.arange(300, 0, -1).sum())})
    train.loc[::50, "tail"] = None
    new = pd.DataFrame({"tail": ["L0", "never-seen", None, "L299", "L5"]})
    encoder = FeatureEncoder(max_categories=40).fit(train)
    reference = OneHotEncoder(max_categories=40, min_frequency=MIN_LEVEL_ROWS, handle_unknown="infrequent_if_exist", dtype=np.float32)
    reference.fit(as_levels(train["tail"]).reshape(-1, 1))
    assert encoder.n_features == 40 and "tail=<missing>" in encoder.feature_names
    for frame in (train, new):
        np.testing.assert_array_equal(encoder.transform(frame), reference.transform(as_levels(frame["tail"]).reshape(-1, 1)).toarray())
    assert encoder.transform(new)[1, -1] == 1.0  # the unseen level lands in the "other" slot


def test_dates_become_calendar_parts_and_a_timestamp():
    # Nearly all rows parse (one unreadable string in 41), so the column is a date column.
    frame = pd.DataFrame({"when": ["2024-02-29 13:45:00", "2023-12-31 00:00:00", "not a date", None] + ["2022-06-01 09:00:00"] * 37})
    encoder = FeatureEncoder().fit(frame)
    assert encoder.feature_names == ["when_year", "when_month", "when_day", "when_dayofweek", "when_hour", "when_timestamp", "when_missing"]
    row = encoder.transform(frame.head(1))[0]
    stamp = pd.Timestamp("2024-02-29 13:45:00")
    np.testing.assert_allclose(row[:6], [2024, 2, 29, 3, 13, (stamp - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)], rtol=1e-7)
    assert encoder.transform(frame.iloc[[2]])[0, -1] == 1.0  # unreadable counts as a gap


def test_id_like_columns_are_left_out_with_a_note_unless_kept(tmp_path):
    path = tmp_path / "t.csv"
    _mixed().to_csv(path, index=False)
    with pytest.warns(DataWarning, match=r"left out ID-like columns 'row', 'name'.*--keep-columns row,name keeps them"):
        table = load_table(path)
    assert table.left_out == ["row", "name"] and "row" not in table.features
    with pytest.warns(DataWarning, match="left out ID-like column 'name'"):
        kept = load_table(path, keep_columns="row")
    assert kept.left_out == ["name"] and "row" in kept.features


def test_missing_targets_are_dropped_and_counted_never_imputed(tmp_path):
    frame = _gappy(50)
    frame["y"] = np.arange(50.0)
    frame.loc[[3, 7, 9], "y"] = np.nan
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    with pytest.warns(DataWarning, match="dropped 3 of 50 rows whose target 'y' is missing"):
        table = load_table(path)
    assert table.n_rows == 47 and table.features["a"].isna().any()  # feature gaps stay for the encoder
    with pytest.warns(DataWarning) as notes:
        assert load_table(path, missing="drop").n_rows < 47
    assert "--missing impute keeps them" in str(notes[0].message) and "whose target 'y' is missing" in str(notes[1].message)


def test_predict_scores_the_rows_whose_target_is_known(tmp_path):
    """Cars-like tables lack some targets: predict still scores the others (it said nothing)."""
    frame = _gappy(80)
    frame["y"] = 2.0 * frame["full"] + 1.0
    frame["label"] = np.where(frame["full"] > 0, "up", "down")
    for target, drop in (("y", "label"), ("label", "y")):
        path = tmp_path / f"{target}.csv"
        frame.drop(columns=drop).to_csv(path, index=False)
        splits = split_table(load_table(path, target=target), seed=0)
        result = fit(TrainConfig(epochs=2, seed=0), splits)
        save_bundle(result.model, tmp_path / target, result.config)
        gappy = frame.drop(columns=drop)
        gappy.loc[[1, 4, 6], target] = np.nan
        gappy.to_csv(tmp_path / f"new-{target}.csv", index=False)
        predictions, score = predict_table(tmp_path / target, str(tmp_path / f"new-{target}.csv"))
        known = gappy[target].notna().to_numpy()
        assert len(predictions) == 80 and score["rows_scored"] == 77
        if target == "y":
            errors = predictions["y"].to_numpy()[known] - gappy["y"].to_numpy()[known]
            assert score["rmse"] == pytest.approx(np.sqrt(np.mean(errors**2)))
        else:
            assert score["accuracy"] == pytest.approx(np.mean(predictions["label"].to_numpy()[known] == gappy["label"].to_numpy()[known]))
    shown = CliRunner().invoke(main, ["predict", "--model", str(tmp_path / "y"), "--data", str(tmp_path / "new-y.csv")])
    assert shown.exit_code == 0 and "77 rows; 3 without a target value left out" in shown.output


def test_predict_encodes_gaps_unseen_levels_dates_and_ids_exactly_as_training(tmp_path):
    frame = _mixed()
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    with pytest.warns(DataWarning):
        table = load_table(path)
    splits = split_table(table, seed=0)
    result = fit(TrainConfig(epochs=3, seed=0), splits)
    save_bundle(result.model, tmp_path / "m", result.config, result.metrics)
    model, meta = load_bundle(tmp_path / "m")
    assert model.encoder.to_dict() == splits.encoder.to_dict()
    assert meta["model"]["encoder"]["left_out"] == ["row", "name"]
    # The raw test rows, read back from a CSV as predict reads them, encode to the same matrix.
    test_rows = pd.read_csv(path).drop(columns="label").iloc[splits.rows.test]  # no row was dropped
    np.testing.assert_array_equal(model.encoder.transform(test_rows), splits.test.X)
    # Unseen level, gap, unreadable date and no ID columns at all: still one row each.
    new = pd.DataFrame({"size": [np.nan, 0.5], "color": ["violet", None], "when": ["2030-01-01 08:00", "??"]})
    new.to_csv(tmp_path / "new.csv", index=False)
    with pytest.warns(DataWarning, match=r"'when' \(1\)"):  # 'size' had gaps in training: no note
        predictions, score = predict_table(tmp_path / "m", str(tmp_path / "new.csv"))
    assert len(predictions) == 2 and score is None


def test_bundle_holds_the_preprocessing_as_json_without_pickle(tmp_path):
    splits = split_table(_table_of(_mixed()), seed=0)
    result = fit(TrainConfig(epochs=1), splits)
    save_bundle(result.model, tmp_path / "m", result.config)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["gradwise.json", "model.safetensors"]
    stored = json.loads((tmp_path / "m" / "gradwise.json").read_text())["model"]["encoder"]
    assert stored["dates"]["when"] == {"format": "%Y-%m-%d %H:%M", "parts": ["year", "month", "day", "dayofweek", "hour", "timestamp"]}
    assert stored["indicators"] == ["size"] and "<missing>" in stored["categories"]["color"]
    assert FeatureEncoder.from_dict(stored).to_dict() == stored


def _table_of(frame):
    from gradwise.data.validation import check_features

    features, target = check_features(frame.drop(columns=["label", "row", "name"]), frame[["label"]], "impute")
    return Table(features, target, "classification", "frame", "impute", ["row", "name"])


def test_bundles_from_before_imputation_still_load_and_refuse_gaps():
    old = FeatureEncoder.from_dict({"columns": ["x", "c"], "categories": {"c": ["a", "b"]}})
    assert old.missing == "error"
    np.testing.assert_array_equal(old.transform(pd.DataFrame({"x": [2.0], "c": ["b"]})), [[2.0, 0.0, 1.0]])
    with pytest.raises(Exception, match="column 'x' has 1 missing values"):
        old.transform(pd.DataFrame({"x": [np.nan], "c": ["zzz"]}))


def test_cv_folds_fit_their_own_imputers_and_levels():
    frame = _gappy(300)
    frame["y"] = frame["full"] * 2
    splits = split_table(Table(frame.drop(columns="y"), frame[["y"]], "regression", "gappy"), seed=0)
    folds = make_folds(splits, 4, seed=0)
    merged = np.concatenate([splits.rows.train, splits.rows.val])
    medians = set()
    for fold in folds:
        train_rows = frame.iloc[np.setdiff1d(merged, _val_rows(fold, frame, merged))]
        assert fold.encoder.medians["b"] == [pytest.approx(train_rows["b"].median())]
        medians.add(fold.encoder.medians["b"][0])
        assert len(fold.train) + len(fold.val) == len(merged) and len(fold.test) == len(splits.test)
    assert len(medians) == 4 and splits.encoder.medians["b"][0] not in medians


def _val_rows(fold, frame, merged):
    full = frame["full"].to_numpy(dtype=np.float32)
    return [r for r in merged if full[r] in set(fold.val.X[:, 3].tolist())]


def test_memory_guard_stops_before_encoding_with_one_line_and_writes_nothing(tmp_path):
    rng = np.random.default_rng(0)
    n = 3000
    frame = pd.DataFrame({"tail": rng.choice([f"N{i}" for i in range(400)], n), "x": rng.normal(size=n), "y": rng.integers(0, 2, n)})
    frame.to_csv(tmp_path / "t.csv", index=False)
    out = tmp_path / "model"
    result = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "t.csv"), "--max-memory", "1MB", "--out", str(out)])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.stderr
    assert "more than the 1.0 MB of --max-memory; the widest inputs are 'tail' (100 columns), 'x' (1 columns)" in lines[0]
    assert "lower --max-categories (now 100)" in lines[0] and not out.exists()
    ok = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "t.csv"), "--max-memory", "1MB", "--max-categories", "8", "--epochs", "1"])
    assert ok.exit_code == 0, ok.stderr


def test_memory_budget_reads_sizes_and_respects_an_address_space_limit():
    assert parse_size("2G") == 2_000_000_000 and parse_size("1.5GiB") == 1.5 * 2**30 and parse_size("512MB") == 512_000_000
    code = (
        WITHOUT_TORCH + "import resource\n"
        "resource.setrlimit(resource.RLIMIT_AS, (3 << 30, resource.RLIM_INFINITY))\n"
        "from gradwise.data.memory import available_bytes; print(available_bytes(), 'torch' in sys.modules)"
    )
    limited, torch_loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert 0 <= int(limited) < 3 << 30 and torch_loaded == "False" and available_bytes() > 0


def test_a_file_too_big_to_read_is_refused_before_reading(tmp_path):
    path = tmp_path / "big.csv"
    pd.DataFrame({"x": np.arange(200_000.0), "y": np.arange(200_000) % 2}).to_csv(path, index=False)
    # A child whose address space ends 4 MB past what it uses: a 3 MB CSV needs about 15 MB.
    code = (
        WITHOUT_TORCH + "import resource\n"
        "from gradwise.data.loading import read_frame\n"
        "from gradwise.data.memory import _address_space_used\n"
        "resource.setrlimit(resource.RLIMIT_AS, (_address_space_used() + (4 << 20), resource.RLIM_INFINITY))\n"
        "try:\n"
        f"    read_frame({str(path)!r})\n"
        "except Exception as error:\n"
        "    print(type(error).__name__, error)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.startswith("DataError table ") and "reading it needs about" in done.stdout, done.stdout + done.stderr
    assert read_frame(path)[0].shape == (200_000, 2)  # with the machine's memory it reads


def test_predict_weights_its_score_by_a_weight_column_as_sklearn_does(tmp_path, cli):
    from sklearn.metrics import accuracy_score, mean_squared_error

    frame = _gappy(80)
    frame["y"] = 2.0 * frame["full"] + 1.0
    frame["label"] = np.where(frame["full"] > 0, "up", "down")
    frame["w"] = np.random.default_rng(1).uniform(0.0, 3.0, len(frame))
    for target, drop in (("y", "label"), ("label", "y")):
        path = tmp_path / f"{target}.csv"
        frame.drop(columns=[drop, "w"]).to_csv(path, index=False)
        result = fit(TrainConfig(epochs=2, seed=0), split_table(load_table(path, target=target), seed=0))
        save_bundle(result.model, tmp_path / target, result.config)
        table = frame.drop(columns=drop)
        table.loc[[1, 4, 6], target] = np.nan
        table.to_csv(tmp_path / f"new-{target}.csv", index=False)
        predictions, score = predict_table(tmp_path / target, str(tmp_path / f"new-{target}.csv"), weight="w")
        known = table[target].notna().to_numpy()
        w = table["w"].to_numpy()[known]
        if target == "y":
            expected = np.sqrt(mean_squared_error(table["y"][known], predictions["y"][known], sample_weight=w))
            assert score["rmse"] == pytest.approx(expected)
        else:
            assert score["accuracy"] == pytest.approx(accuracy_score(table["label"][known], predictions["label"][known], sample_weight=w))
        assert score["weighted"] and score["rows_scored"] == 77
        unweighted = predict_table(tmp_path / target, str(tmp_path / f"new-{target}.csv"))[1]
        assert "weighted" not in unweighted and unweighted != score
    missing = cli("predict", "--model", tmp_path / "y", "--data", tmp_path / "new-y.csv", "--weight-column", "W")
    assert missing.code == 2 and missing.stderr.count("\n") == 1 and "did you mean 'w'" in missing.stderr, missing.stderr
    shown = cli("predict", "--model", tmp_path / "y", "--data", tmp_path / "new-y.csv", "--weight-column", "w")
    assert shown.code == 0 and "(weighted by --weight-column)" in shown.stdout, shown.stderr
