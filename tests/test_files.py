"""Atomic writes: complete or absent, and with the mode an ordinary write would give."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gradwise.files import atomic_write, atomic_write_text


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_atomic_write_gets_the_mode_of_a_plain_write_not_0600(tmp_path, umask_022):
    plain = tmp_path / "plain.csv"
    plain.write_text("a\n")
    written = atomic_write_text(tmp_path / "trials.csv", "a\n")
    assert _mode(written) == _mode(plain) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.csv", "trials.csv"]  # no temporary left


def test_a_failed_atomic_write_leaves_neither_the_file_nor_its_temporary(tmp_path):
    def half(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise RuntimeError("cut")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "report.html", half)
    assert list(tmp_path.iterdir()) == []
