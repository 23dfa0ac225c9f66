"""Learning-rate decay: pure functions of the epoch, checked against values worked by hand."""

import math
import pickle

import pytest

from gradwise.errors import ConfigError
from gradwise.optim import make_schedule

# (spec, base lr, epochs, {epoch: lr worked out by hand})
HAND = [
    (None, 0.1, 10, {0: 0.1, 5: 0.1, 99: 0.1}),
    ("none", 0.1, 10, {0: 0.1, 7: 0.1}),
    ("inverse_time:0.1", 0.1, 10, {0: 0.1, 1: 0.1 / 1.1, 10: 0.05, 30: 0.025}),
    ("inverse_time:1", 1.0, 10, {0: 1.0, 1: 0.5, 3: 0.25}),
    ("exponential:0.95", 0.1, 10, {0: 0.1, 1: 0.095, 2: 0.09025, 3: 0.0857375}),
    ("exponential:0.5", 1.0, 10, {0: 1.0, 1: 0.5, 4: 0.0625}),
    ("step:10:0.5", 0.1, 100, {0: 0.1, 9: 0.1, 10: 0.05, 19: 0.05, 20: 0.025, 35: 0.0125}),
    ("step:1:0.1", 1.0, 10, {0: 1.0, 1: 0.1, 2: 0.01}),
    ("cosine", 0.1, 10, {0: 0.1, 5: 0.05, 10: 0.0}),
    ("cosine", 1.0, 4, {1: (1 + math.sqrt(0.5)) / 2, 2: 0.5, 3: (1 - math.sqrt(0.5)) / 2}),
    (" Exponential:0.9 ", 2.0, 5, {2: 1.62}),
]


@pytest.mark.parametrize("spec, lr, epochs, expected", HAND)
def test_schedule_matches_values_worked_by_hand(spec, lr, epochs, expected):
    schedule = make_schedule(spec, lr, epochs)
    for epoch, value in expected.items():
        assert schedule(epoch) == pytest.approx(value, rel=1e-12, abs=1e-15), (spec, epoch)


def test_schedule_is_pure_and_picklable():
    schedule = make_schedule("step:3:0.5", 0.2, 10)
    values = [schedule(e) for e in (7, 0, 7, 3)]
    assert values == [0.05, 0.2, 0.05, 0.1]
    assert pickle.loads(pickle.dumps(schedule))(7) == 0.05


def test_cosine_never_goes_below_zero_after_the_last_epoch():
    assert make_schedule("cosine", 0.1, 10)(15) == pytest.approx(0.0, abs=1e-15)


BAD = [
    ("linear:0.1", "unknown decay 'linear'"),
    ("exponential", "exponential takes 1 value(s), got 0"),
    ("exponential:1.5", "K must be in (0, 1]"),
    ("exponential:abc", "'abc' is not a number"),
    ("inverse_time:-1", "K must be >= 0"),
    ("step:10", "step takes 2 value(s), got 1"),
    ("step:0:0.5", "EVERY must be a positive integer"),
    ("step:2.5:0.5", "EVERY must be a positive integer"),
    ("step:10:0", "GAMMA must be in (0, 1]"),
    ("cosine:3", "cosine takes 0 value(s), got 1"),
    (5, "--lr-decay must be text"),
]


@pytest.mark.parametrize("spec, fragment", BAD)
def test_malformed_spec_raises_config_error_with_expected_syntax(spec, fragment):
    with pytest.raises(ConfigError) as caught:
        make_schedule(spec, 0.1, 10)
    message = str(caught.value)
    assert fragment in message and "step:EVERY:GAMMA" in message
