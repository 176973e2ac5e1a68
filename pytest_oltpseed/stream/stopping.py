"""Stopping a stream: SIGINT/SIGTERM and sleeps that notice them at once.

The first signal asks for a stop (the current event finishes, the completed
part of the batch is committed); a second one aborts (:class:`AbortSignal`,
the open batch rolled back). Every wait of the stream goes through
:meth:`Stop.sleep`, cut in naps, so a stop is never delayed by a backoff.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from pytest_oltpseed.stream.faults import AbortSignal

NAP_S = 0.05  # sleeps are cut in naps so a signal is noticed at once


class Stop:
    """Whether a stop was asked for (the signal's number), and naps that end
    as soon as one is."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def sleep(self, seconds: float) -> bool:
        """Sleep in naps; True as soon as a stop was asked for."""
        end = time.monotonic() + seconds
        while self.signal is None:
            left = end - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, NAP_S))
        return True

    @contextlib.contextmanager
    def handling(self) -> Iterator[None]:
        """Catch SIGINT/SIGTERM during the block (main thread only: a stream
        run in a thread, as tests do, leaves signals to its owner)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self.signal is not None:
                raise AbortSignal()
            self.signal = signum

        with stop_signals(handler):
            yield


@contextlib.contextmanager
def stop_signals(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """``handler`` for SIGINT and SIGTERM during the block, the previous
    handlers restored after it (the one stream and the client pool share it)."""
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
