"""The validation layer: every option and --space value checked before any work.

Table-driven cases for issue 9's validation and work-cap defects use test_bad_input's
contract (exit 2, one ``gradwise: error:`` line naming the value given, no traceback, the
directory byte-for-byte as before); a Hypothesis pass then throws arbitrary values at the
options of ``train`` and ``tune`` and at the --space schema.
"""

import json
import resource
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradwise.budget import MAX_CHAIN_DEPTH, MAX_CHAIN_LAYERS, max_workers
from gradwise.cli import main
from gradwise.config import TrainConfig
from gradwise.errors import ConfigError
from gradwise.tuning import load_space
from test_bad_input import assert_refused, write

TUNE = ["tune", "--data", "builtin:iris", "--trials", "1", "--epochs", "1", "--cv", "0", "--ensemble", "1", "--no-report"]


def space(p, name, text):
    return ["--out", p / "out", "--space", write(p, name, text)]


# name -> (args(tmp_path), words the one line must hold: the value given, and the rule)
TUNE_CASES = {
    "space: params is a number": (lambda p: space(p, "s.toml", "params = 5\n"), "--space params must be a table of parameters such as [params.lr] low = 1e-3, got 5"),
    "space: fixed is a string": (lambda p: space(p, "s.toml", 'fixed = "abc"\n'), "--space fixed must be a table of training options such as [fixed] epochs = 40, got 'abc'"),
    "space: a string for low": (lambda p: space(p, "s.toml", '[params.lr]\nlow = "x"\nhigh = 0.1\n'), "--space params.lr.low must be a finite number, got 'x'"),
    "space: a string for high": (lambda p: space(p, "s.toml", '[params.hidden]\nlow = 8\nhigh = "big"\n'), "--space params.hidden.high must be a finite number, got 'big'"),
    "space: a string in fixed": (lambda p: space(p, "s.toml", '[fixed]\nepochs = "abc"\n'), "--space fixed.epochs must be a positive integer, got 'abc'"),
    "space: hidden up to 1e9": (lambda p: space(p, "s.toml", "[params.hidden]\nlow = 8\nhigh = 1e9\n"), "--space params.hidden.high must be an integer in [1, 100000], got 1000000000"),
    "space: fixing a bad value": (lambda p: space(p, "s.toml", '[params.hidden]\nvalue = "abc"\n'), "--space params.hidden.value must be an integer in [1, 100000], got 'abc'"),
    "space: a bad choice": (lambda p: space(p, "s.toml", '[params.activation]\ntype = "categorical"\nchoices = ["relu", "swish"]\n'), "--space params.activation.choices item must be one of sigmoid"),
    "space: fractional int range": (lambda p: space(p, "s.toml", "[params.layers]\nlow = 1.5\nhigh = 3\n"), "needs whole-number low and high, got low=1.5"),
    "space: a boolean for a number": (lambda p: space(p, "s.json", json.dumps({"params": {"lr": {"low": True, "high": 0.1}}})), "--space params.lr.low must be a finite number, got True"),
    "space: YAML's 1e-4 is text": (lambda p: space(p, "s.yaml", "params:\n  lr:\n    low: 1e-4\n    high: 0.1\n"), "got '1e-4'; write a number without quotes"),
    "space: YAML parse error": (lambda p: space(p, "s.yaml", "params:\n  lr: [1,\n  low: 3\n"), "could not be parsed: expected ',' or ']', but got '<stream end>' at line 4, column 1"),
    "seed -1": (lambda p: ["--out", p / "out", "--seed", "-1"], "'--seed': -1 is not in the range 0<=x<=4294967295"),
    "workers 1000": (lambda p: ["--out", p / "out", "--workers", "1000"], f"'--workers': 1000 is not in the range 1<=x<={max_workers()}"),
    "workers many": (lambda p: ["--out", p / "out", "--workers", "many"], "'--workers': 'many' is neither 'auto' nor an integer"),
    "ensemble 1000": (lambda p: ["--out", p / "out", "--ensemble", "1000"], "--ensemble must be 'auto' or a number of networks in [1, 20], got 1000"),
    "cv 1000": (lambda p: ["--out", p / "out", "--cv", "1000"], "--cv must be 'auto', 0 (off) or a number of folds in [2, 20], got 1000"),
    "cv 1": (lambda p: ["--out", p / "out", "--cv", "1"], "--cv must be 'auto', 0 (off) or a number of folds in [2, 20], got 1"),
    "timeout inf": (lambda p: ["--out", p / "out", "--timeout", "inf"], "--timeout must be a positive, finite number of seconds, got inf"),
    "timeout nan": (lambda p: ["--out", p / "out", "--timeout", "nan"], "--timeout must be a positive, finite number of seconds, got nan"),
    "trials 0": (lambda p: ["--out", p / "out", "--trials", "0"], "'--trials': 0 is not in the range x>=1"),
    "negative patience": (lambda p: ["--out", p / "out", "--patience", "-3"], "--patience must be a positive integer (0 on the command line disables it), got -3"),
}

TRAIN_CASES = {
    "seed -1": (["--seed", "-1"], "'--seed': -1 is not in the range 0<=x<=4294967295"),
    "lr nan": (["--lr", "nan"], "--lr must be a positive number, got nan; try 1e-3"),
    "dropout inf": (["--dropout", "inf"], "--dropout must be a number in [0, 1), got inf"),
    "layers 101": (["--layers", "101"], "--layers must be an integer in [0, 100], got 101"),
    "hidden above the range": (["--hidden", "100001"], "--hidden must be an integer in [1, 100000], got 100001"),
    "negative patience": (["--patience", "-1"], "--patience must be a positive integer (0 on the command line disables it), got -1"),
    "negative clip": (["--clip-grad", "-1"], "--clip-grad must be a positive number, got -1.0"),
}

CHAIN_CASES = {
    "depth 100000000": (["--depth", "100000000"], f"'--depth': 100000000 is not in the range 1<=x<={MAX_CHAIN_DEPTH}"),
    "layers 100000000": (["--layers", "100000000"], f"'--layers': 100000000 is not in the range 1<=x<={MAX_CHAIN_LAYERS}"),
    "too many weights": (["--weights", ",".join(["0.5"] * (MAX_CHAIN_LAYERS + 1))], f"a chain has at most {MAX_CHAIN_LAYERS:,}"),
}


@pytest.mark.parametrize("case", sorted(TUNE_CASES))
def test_tune_refuses_bad_values_naming_them_before_any_work(tmp_path, case):
    make_args, message = TUNE_CASES[case]
    assert_refused(tmp_path, [*TUNE, *make_args(tmp_path)], message)


@pytest.mark.parametrize("case", sorted(TRAIN_CASES))
def test_train_refuses_bad_values_naming_them(tmp_path, case):
    args, message = TRAIN_CASES[case]
    assert_refused(tmp_path, ["train", "--data", "builtin:iris", "--epochs", "1", "--out", tmp_path / "model", *args], message)


@pytest.mark.parametrize("case", sorted(CHAIN_CASES))
def test_chain_length_and_depth_are_capped(tmp_path, case):
    args, message = CHAIN_CASES[case]
    assert_refused(tmp_path, ["chain", *args], message)


def test_caps_are_documented_in_help():
    tune_help = " ".join(CliRunner().invoke(main, ["tune", "--help"]).output.split())
    assert f"({max_workers()} here)" in tune_help and "k (at most 20)" in tune_help
    chain_help = " ".join(CliRunner().invoke(main, ["chain", "--help"]).output.split())
    assert f"at most {MAX_CHAIN_LAYERS:,}" in chain_help and f"N at most {MAX_CHAIN_DEPTH}" in chain_help


def test_a_new_space_parameter_starts_from_the_training_default_not_none(tmp_path):
    path = write(tmp_path, "s.toml", '[params.dropout]\ntype = "float"\nlow = 0.0\nhigh = 0.5\n')
    assert load_space(path).params["dropout"].default == TrainConfig().dropout


def test_train_config_is_strict_about_types():
    for changes in ({"hidden": "64"}, {"layers": True}, {"lr": "0.1"}, {"batch_norm": 1}, {"seed": 2**32}):
        with pytest.raises(ConfigError, match=f"--{next(iter(changes)).replace('_', '-')} must be"):
            TrainConfig(**changes)
    assert TrainConfig(batch_size="32").batch_size == 32 and TrainConfig(lr=1).lr == 1  # documented spellings


# -- the property-based pass: any value runs, or ends with exit 2 and one line --------------

def _ints(low, high, extremes=(-1, 0, 2**31, 10**12)):
    return st.one_of(st.integers(low, high), st.sampled_from(extremes)).map(str)


_NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(1e-6, 1.0)).map(repr)
_TEXT = st.text(alphabet="abcfilnuxz0123456789.:,-_ ", max_size=12)
TRAIN_OPTIONS = {
    "--lr": _NUMBERS, "--dropout": _NUMBERS, "--beta": _NUMBERS, "--eps": _NUMBERS, "--clip-grad": _NUMBERS, "--weight-decay": _NUMBERS,
    # Wide networks are the budget's job; here they would only cost time, so widths stay small
    # apart from values just outside the range.
    "--hidden": _ints(1, 32, (-1, 0, 100_001, 10**9)), "--layers": _ints(0, 3, (-1, 101, 10**6)),
    "--batch-size": st.one_of(_ints(1, 64), st.sampled_from(["full", "half", "", "1.5", "-3"]), _TEXT),
    "--patience": _ints(0, 5), "--seed": _ints(0, 2**32 - 1, (-1, 2**32)), "--threads": _ints(0, 2, (-1, 1025)),
    "--lr-decay": st.one_of(st.sampled_from(["cosine", "exponential:0.9", "step:1:0.5", "inverse_time:0.1", "step:0:0.5", "exponential:", "x"]), _TEXT),
    "--optimizer": st.one_of(st.sampled_from(["gd", "momentum", "rmsprop", "adam", "torch:SGD", "torch:Nope", "torch:", ""]), _TEXT),
    "--split": st.one_of(st.sampled_from(["0.7,0.15,0.15", "0.5,0.5,0", "1,0,0", "0.7,0.2,0.2", "-1,1,1"]), _TEXT),
    "--normalize": st.sampled_from(["minmax", "standard", "none", "zscore"]),
}
TUNE_OPTIONS = {
    "--trials": _ints(-1, 1), "--timeout": _NUMBERS, "--epochs": _ints(-1, 1), "--patience": _ints(-1, 2),
    "--cv": st.one_of(st.sampled_from(["auto", "0", "1", "2", "21", "-1", "x", "2.5"])),
    "--ensemble": st.sampled_from(["auto", "0", "1", "21", "x"]),
    "--workers": st.one_of(_ints(1, 1, (-1, 0, 1000)), st.sampled_from(["auto", "x", "2.5"])), "--seed": _ints(0, 9, (-1, 2**32)),
    "--activation": st.sampled_from(["relu", "tanh", "swish", ""]), "--normalize": st.sampled_from(["minmax", "none", "zscore"]),
    "--strategy": st.sampled_from(["random", "joint", "greedy"]), "--metric": st.sampled_from(["accuracy", "loss", "f1"]),
}


def _chosen(options):
    """Some of ``options`` (each a strategy of command-line text), as an argument list."""
    names = st.lists(st.sampled_from(sorted(options)), min_size=1, max_size=4, unique=True)
    return names.flatmap(lambda chosen: st.tuples(*[options[n] for n in chosen]).map(lambda values: [a for pair in zip(chosen, values) for a in pair]))


@pytest.fixture
def address_space_limit():
    """This process may take at most 4 GB more address space while the test runs, so a value
    that slipped past the memory budget fails with MemoryError instead of taking the machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    used = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (used + 4 * 2**30, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def assert_runs_or_one_line(result):
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 2), (result.exit_code, result.output[-2000:])
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("gradwise: error: "), result.stderr


PROPERTY = settings(max_examples=15, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@PROPERTY
@given(args=_chosen(TRAIN_OPTIONS))
def test_any_train_option_value_runs_or_is_one_line(args, address_space_limit):
    result = CliRunner().invoke(main, ["train", "--data", "builtin:iris", "--epochs", "1", *args], catch_exceptions=False)
    assert_runs_or_one_line(result)


@settings(PROPERTY, max_examples=8)
@given(args=_chosen(TUNE_OPTIONS))
def test_any_tune_option_value_runs_or_is_one_line(args, tmp_path_factory, address_space_limit):
    out = tmp_path_factory.mktemp("tune") / "out"
    base = ["tune", "--data", "builtin:iris", "--trials", "1", "--epochs", "1", "--cv", "0", "--ensemble", "1", "--population", "off", "--no-report", "--json", "--out", out]
    result = CliRunner().invoke(main, [str(a) for a in [*base, *args]], catch_exceptions=False)
    assert_runs_or_one_line(result)
    if result.exit_code == 2:
        assert not out.exists()


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**10), st.floats(), st.text(max_size=6), st.lists(st.integers(0, 3), max_size=3), st.dictionaries(st.sampled_from(["low", "x"]), st.integers(0, 3), max_size=2))
_PARAM = st.dictionaries(st.sampled_from(["type", "low", "high", "log", "choices", "default", "tier", "transform", "enabled", "value"]), _VALUES, max_size=4)
_DOCUMENT = st.fixed_dictionaries({}, optional={
    "optimizer": st.one_of(st.sampled_from(["adam", "momentum", "sgd"]), _VALUES),
    "fixed": st.one_of(st.dictionaries(st.sampled_from(["epochs", "hidden", "lr", "batch_size", "momentum"]), _VALUES, max_size=3), _VALUES),
    "params": st.one_of(st.dictionaries(st.sampled_from(["lr", "hidden", "layers", "dropout", "beta2", "lr_decay", "activation"]), st.one_of(_PARAM, _VALUES), max_size=3), _VALUES),
})


@settings(max_examples=80, deadline=None, derandomize=True, database=None)
@given(document=_DOCUMENT)
def test_any_space_document_loads_or_is_one_config_error(document):
    from gradwise.tuning.space_file import apply_overrides

    try:
        space = apply_overrides(document)
    except ConfigError as error:
        assert "\n" not in str(error)
        return
    # What loads must hand every trial valid training options: the defaults, and both ends.
    TrainConfig().replace(**space.defaults())
    for param in space.searched():
        if param.kind != "categorical":
            for end in (param.low, param.high):
                TrainConfig().replace(**{**space.defaults(), param.name: _config_value(param, end)})


def _config_value(param, raw):
    from gradwise.tuning.space import to_config_value

    return to_config_value(param, int(raw) if param.kind == "int" else raw)
