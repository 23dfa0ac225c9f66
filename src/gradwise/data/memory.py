"""The memory budget of the encoded table: refuse, with one line, what would not fit.

Before any row is encoded, the size of the float32 matrices is estimated from the fitted
encoder's width. Training holds each matrix about three times over (the encoded array, the
torch copy, and its normalized version; the normalizer works in row chunks so its float64
arithmetic adds little), so the estimate is rows x columns x 4 bytes x :data:`COPIES`. It
must fit in ``--max-memory`` when given, else in :data:`AVAILABLE_SHARE` of the memory the
system reports available (and under an address-space limit such as ``ulimit -v``).
"""

from __future__ import annotations

import re
import resource
from pathlib import Path

from ..errors import ConfigError, DataError

COPIES = 3
# Memory per byte on disk while pandas reads a file (measured: a 317 MB flights CSV peaked at
# 1.3 GB above the interpreter's baseline); Parquet is compressed, so more per byte.
READ_FACTOR = {"csv": 5, "tsv": 5, "npz": 2, "parquet": 10}
AVAILABLE_SHARE = 0.8  # leave room for the table itself, torch and the network
_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str | int | float | None) -> int | None:
    """'2G', '512MB', '1.5GiB' or a number of bytes; None stays None."""
    if text is None or isinstance(text, (int, float)):
        return None if text is None else int(text)
    match = _SIZE.match(str(text))
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS or float(match.group(1)) <= 0:
        raise ConfigError(f"--max-memory must be a positive size such as 2G, 512MB or 1.5GiB; got {text!r}")
    return int(float(match.group(1)) * _UNITS[unit])


def format_size(n_bytes: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= size:
            return f"{n_bytes / size:.1f} {unit}"
    return f"{int(n_bytes)} B"


def available_bytes() -> int:
    """Memory this process can still take: the system's available memory, capped by RLIMIT_AS."""
    available = _meminfo_available()
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        available = min(available, max(0, soft - _address_space_used()))
    return int(available)


def _meminfo_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def _address_space_used() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    except OSError:
        return 0


def check_fits(n_rows: int, widths: dict[str, int], max_memory: int | None, max_categories: int) -> None:
    """Raise one line naming the widest columns and the fix when the matrices would not fit."""
    n_columns = sum(widths.values())
    needed = n_rows * n_columns * 4 * COPIES
    limit, source = (max_memory, "--max-memory") if max_memory is not None else (int(available_bytes() * AVAILABLE_SHARE), "available memory")
    if needed <= limit:
        return
    widest = sorted(widths.items(), key=lambda item: -item[1])[:3]
    named = ", ".join(f"'{name}' ({width} columns)" for name, width in widest)
    raise DataError(
        f"the encoded table would need about {format_size(needed)} ({n_rows:,} rows x {n_columns} float32 columns, x{COPIES} while training), "
        f"more than the {format_size(limit)} of {source}; the widest inputs are {named}: "
        f"lower --max-categories (now {max_categories}), train on a sample of the rows, or raise --max-memory"
    )


def check_readable(path: Path, kind: str) -> None:
    """Refuse, before reading, a file whose table could not fit in the available memory."""
    needed = path.stat().st_size * READ_FACTOR.get(kind, 5)
    available = available_bytes()
    if needed > available:
        raise DataError(
            f"table '{path}' is {format_size(path.stat().st_size)} on disk; reading it needs about {format_size(needed)}, "
            f"more than the {format_size(available)} of available memory; train on a sample of its rows or on a machine with more memory"
        )
