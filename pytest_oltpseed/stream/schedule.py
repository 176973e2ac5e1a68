"""When each stream event is due: fixed cycles (``--interval``) or a rate (``--rate``).

Times are ``time.monotonic()`` seconds. Lateness is measured against the
schedule, never by sleeping after the work (pgbench ``-R``): a slow batch
makes the next events late (their lag), not the whole timeline longer.
"""

from __future__ import annotations

import random


class IntervalSchedule:
    """Cycles of ``size`` events every ``interval`` seconds +- ``jitter``.

    A cycle's events are all due at its start and run back to back. A cycle
    that starts late restarts the timeline from when it actually started,
    so a slow database gets back-to-back cycles, never a catch-up burst.
    The jitter is at most the interval: a step below zero would be clipped,
    so a wider one slowed the mean pace (``--interval 0`` with the default
    400 ms waited up to 400 ms on half of its cycles instead of running
    flat out).
    """

    rate = None

    def __init__(
        self, interval: float, jitter: float, size: int, rng: random.Random, now: float
    ) -> None:
        self.interval, self.jitter, self.size, self.rng = interval, jitter, size, rng
        self.start = self.anchor = now
        self.used = 0

    def peek(self, now: float) -> float:
        if self.used >= self.size:
            spread = min(self.jitter, self.interval)
            step = self.interval + self.rng.uniform(-spread, spread)
            self.start, self.used = self.anchor + step, 0
        return self.start

    def take(self, now: float) -> None:
        if self.used == 0:
            self.anchor = max(self.start, now)  # the next cycle counts from here
        self.used += 1

    def batch_over(self, in_batch: int, wait: float) -> bool:
        """One batch per cycle: over once :meth:`peek` has started the next one."""
        return in_batch >= self.size or (in_batch > 0 and self.used == 0)

    def rebase(self, now: float) -> None:
        self.start = self.anchor = now
        self.used = 0


class RateSchedule:
    """Event ``i`` due at ``t0 + i / rate``; batches close when full or idle.

    A batch is committed rather than held open while waiting more than
    ``hold`` seconds for the next event, so a low rate gives short
    transactions instead of one long one.
    """

    def __init__(self, rate: float, size: int, now: float, hold: float = 0.05) -> None:
        self.rate, self.size, self.hold = rate, size, hold
        self.rebase(now)

    def peek(self, now: float) -> float:
        return self.t0 + self.index / self.rate

    def take(self, now: float) -> None:
        self.index += 1

    def batch_over(self, in_batch: int, wait: float) -> bool:
        return in_batch >= self.size or (in_batch > 0 and wait > self.hold)

    def rebase(self, now: float) -> None:
        """Restart the timeline (after a pause or a reconnect: no burst to catch up)."""
        self.t0, self.index = now, 0


Schedule = IntervalSchedule | RateSchedule
