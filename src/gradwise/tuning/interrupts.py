"""Ctrl-C that a search never loses.

CPython raises KeyboardInterrupt wherever the main thread happens to be when SIGINT arrives.
If that is inside a finalizer (a ``__del__``, a weakref callback that the garbage collector
runs in the middle of a training step), the exception is printed as "Exception ignored in"
and dropped, and the search carries on as if nothing happened: a CI run saw `tune` exit 0
after SIGINT. While :func:`sticky_interrupts` is active, SIGINT also leaves a mark, and the
tuner raises KeyboardInterrupt again at the next step, epoch or trial boundary
(:func:`raise_pending`), so the interrupt ends the search within a step whatever swallowed
it first.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

_pending = threading.Event()


def _on_sigint(signum: int, frame: Any) -> None:
    _pending.set()
    raise KeyboardInterrupt


@contextlib.contextmanager
def sticky_interrupts() -> Iterator[None]:
    """Mark every SIGINT while the block runs. Only in the main thread, and only over
    Python's default handler: a handler of the caller's own is left alone."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _pending.clear()


def raise_pending() -> None:
    """Raise KeyboardInterrupt if a SIGINT came while the block ran (even one swallowed)."""
    if _pending.is_set():
        raise KeyboardInterrupt


class InterruptCheck:
    """A training callback: :func:`raise_pending` after every step (an epoch on a large table
    can take minutes) and at the end of every epoch."""

    def on_step_end(self, state: Any) -> None:
        raise_pending()

    def on_epoch_end(self, state: Any, record: Any) -> None:
        raise_pending()
