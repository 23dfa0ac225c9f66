"""Subnormal floats flushed to zero while gradwise trains on the CPU.

Why: Adam's gradient average V of a unit whose gradient is exactly zero (a dead ReLU, a
padded unit) shrinks by β1 every step, and after about 800 steps at β1 = 0.9 it is a
subnormal float (below 1.2e-38), which x86 CPUs process many times slower than normal
ones. Measured on a 50,000 x 32 table with 3x128 networks (benchmarks/population.py (b)):
from epoch 7 on, a population's epochs took 0.76-0.82 s instead of 0.48 s, and
``gradwise.fit`` 20 epochs took 4.49 s instead of 3.85 s. Flushing changes no number above
1.2e-38, far below float32's rounding of the losses and weights.

torch can set the CPU's flush-to-zero mode but not read it, so :func:`_flushing` reads it
from an operation whose exact result is subnormal. A setting the user made is kept.
The mode belongs to the calling thread: torch's intra-op worker threads keep theirs, which
is why populations (which train on several threads) also zero their running averages'
subnormal values themselves (``BatchedOptimizer.flush_subnormal_state``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def _flushing() -> bool:
    """Whether this thread flushes subnormal results to zero now."""
    return bool(torch.tensor([1e-30], dtype=torch.float32) * 1e-10 == 0)


@contextlib.contextmanager
def flushed_denormals() -> Iterator[None]:
    """Flush subnormals to zero inside the block; the earlier mode is restored after."""
    if _flushing() or not torch.set_flush_denormal(True):  # already on, or unsupported here
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
