"""What a running stream prints: per-table lines and pgbench ``-P`` style progress.

Per-table lines keep spec 002's form (``consultas: +50 (total=12340)``, with
``updated=``/``deleted=`` when there were some), at most once a second
(aggregated when batches are faster). Progress lines cover the window since
the previous one.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence

from pytest_oltpseed.stream.ledger import Histogram, Ledger

LINES_S = 1.0  # per-table lines at most this often


class Progress:
    def __init__(
        self, log: logging.Logger, tables: Sequence[str], every_s: float
    ) -> None:
        self.log, self.tables, self.every_s = log, list(tables), every_s
        self._changes: Counter[tuple[str, str]] = Counter()
        self._lines_at = self._progress_at = time.monotonic()
        self._window = (0, 0, 0)  # committed, skipped, reconnects at the last line
        self._latency, self._lag = Histogram(), Histogram()

    def committed(
        self,
        changes: Iterable[tuple[str, str, int]],
        latencies_ms: Iterable[float],
        lags_ms: Iterable[float],
    ) -> None:
        """A committed batch: its rows for the lines, its timings for the window."""
        for table, op, rows in changes:
            self._changes[(table, op)] += rows
        for value in latencies_ms:
            self._latency.add(value)
        for value in lags_ms:
            self._lag.add(value)

    def lines(self, totals: dict[str, int], *, force: bool = False) -> None:
        now = time.monotonic()
        if not self._changes or (not force and now - self._lines_at < LINES_S):
            return
        for table in self.tables:
            added, updated, deleted = (
                self._changes.get((table, op), 0)
                for op in ("insert", "update", "delete")
            )
            if not (added or updated or deleted):
                continue
            extra = "".join(
                f" {label}={n}"
                for label, n in (("updated", updated), ("deleted", deleted))
                if n
            )
            self.log.info(
                "%s: +%d (total=%d)%s", table, added, totals.get(table, 0), extra
            )
        self._changes.clear()
        self._lines_at = now

    def due(self) -> bool:
        return (
            bool(self.every_s) and time.monotonic() - self._progress_at >= self.every_s
        )

    def progress(self, ledger: Ledger) -> None:
        """The window's events/s, latency, lag, skipped events and reconnects."""
        now = time.monotonic()
        committed, skipped, reconnects = self._window
        span = max(now - self._progress_at, 1e-9)
        self.log.info(
            "progress: %.1f s, %.1f events/s, latency p50 %.1f ms p95 %.1f ms, "
            "lag %.1f ms, skipped %d, reconnects %d",
            ledger.duration(),
            (ledger.committed - committed) / span,
            self._latency.percentile(50),
            self._latency.percentile(95),
            self._lag.percentile(50),
            ledger.skipped - skipped,
            ledger.reconnects - reconnects,
        )
        self._window = (ledger.committed, ledger.skipped, ledger.reconnects)
        self._latency, self._lag = Histogram(), Histogram()
        self._progress_at = now
