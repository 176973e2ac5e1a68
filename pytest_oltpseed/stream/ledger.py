"""The stream's ledger: what was committed, and the report built from it.

Only committed work is counted (rows actually changed, per table and
operation), so the report reconciles with the database and with what a CDC
client receives. Latencies go to a log-bucketed histogram: constant memory
for a run of any length, percentiles within 1%.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_oltpseed.errors import UsageError

OPS = ("insert", "update", "delete")
TRUNCATE = "truncate"  # reported only for tables that were truncated
_GROWTH = math.log(1.01)  # bucket width: 1% relative precision


class Histogram:
    """Counts of values (milliseconds) in 1%-wide logarithmic buckets."""

    def __init__(self) -> None:
        self.buckets: Counter[int] = Counter()
        self.count = 0
        self.max = 0.0

    def add(self, value_ms: float, times: int = 1) -> None:
        value = max(value_ms, 0.001)
        self.buckets[int(math.log(value * 1000) / _GROWTH)] += times
        self.count += times
        self.max = max(self.max, value_ms)

    def merge(self, other: Histogram) -> None:
        self.buckets.update(other.buckets)
        self.count += other.count
        self.max = max(self.max, other.max)

    def percentile(self, p: float) -> float:
        """The value below which ``p`` percent of the values fall (0 if empty)."""
        if not self.count:
            return 0.0
        rank = math.ceil(self.count * p / 100)
        seen = 0
        for bucket in sorted(self.buckets):
            seen += self.buckets[bucket]
            if seen >= rank:
                return min(math.exp((bucket + 0.5) * _GROWTH) / 1000, self.max)
        return self.max

    def summary(self) -> dict[str, float]:
        return {f"p{p}": round(self.percentile(p), 3) for p in (50, 95, 99)} | {
            "max": round(self.max, 3)
        }


@dataclass
class Ledger:
    """Committed counts of a stream run, plus what went wrong on the way."""

    tables: list[str]
    run_id: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: float = field(default_factory=time.monotonic)
    changes: Counter[tuple[str, str]] = field(default_factory=Counter)
    committed: int = 0
    skipped: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    skipped_by_type: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0
    lost_batches: int = 0
    lost_events: int = 0
    retried: int = 0  # batch replays after a deadlock or serialization failure
    settled: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    paused_s: float = 0.0
    setup_s: float = 0.0
    latency: Histogram = field(default_factory=Histogram)
    lag: Histogram = field(default_factory=Histogram)
    exit: str = "running"
    error: str = ""
    ended: float | None = None

    @property
    def attempted(self) -> int:
        """Events that ended: committed or skipped (lost ones are retried anew)."""
        return self.committed + self.skipped

    def record_batch(
        self,
        changes: Iterable[tuple[str, str, int]],
        events: Iterable[str],
        latencies_ms: Iterable[float],
    ) -> None:
        """A batch whose COMMIT was acknowledged (or settled as committed)."""
        for table, op, rows in changes:
            self.changes[(table, op)] += rows
        for name in events:
            self.by_type[name] += 1
            self.committed += 1
        for value in latencies_ms:
            self.latency.add(value)
        self.batches += 1

    def _table_ops(self, table: str) -> dict[str, int]:
        ops = {op: self.changes[(table, op)] for op in OPS}
        if self.changes[(table, TRUNCATE)]:
            ops[TRUNCATE] = self.changes[(table, TRUNCATE)]
        return ops

    def skip(self, name: str) -> None:
        self.skipped += 1
        self.skipped_by_type[name] += 1

    def duration(self) -> float:
        end = self.ended if self.ended is not None else time.monotonic()
        return end - self.started

    def report(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The ``--report`` document (shape fixed by the issue; extra keys added).

        ``duration_s`` is the whole run; ``events_per_s`` is over the time
        spent streaming (without connecting/installing, ``setup_s``, and
        without pauses, ``paused_s``).
        """
        duration = self.duration()
        active = max(duration - self.setup_s - self.paused_s, 1e-9)
        return {
            "tables": {t: self._table_ops(t) for t in self.tables},
            "events": {
                "committed": self.committed,
                "skipped": self.skipped,
                "by_type": dict(sorted(self.by_type.items())),
                "skipped_by_type": dict(sorted(self.skipped_by_type.items())),
            },
            "reconnects": self.reconnects,
            "duration_s": round(duration, 3),
            "events_per_s": round(self.committed / active, 2),
            "latency_ms": self.latency.summary(),
            "lag_ms": self.lag.summary(),
            "batches": self.batches,
            "lost": {"batches": self.lost_batches, "events": self.lost_events},
            "retried_batches": self.retried,
            "settled_commits": dict(self.settled),
            "paused_s": round(self.paused_s, 3),
            "setup_s": round(self.setup_s, 3),
            "run_id": self.run_id,
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "exit": self.exit,
            "error": self.error,
            **(extra or {}),
        }


def write_report(path: Path, document: Mapping[str, Any]) -> None:
    """Write atomically (temp file + rename): a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def check_outputs(outputs: Mapping[str, Path | None]) -> None:
    """Refuse, before anything is written, an output file that cannot be written.

    ``outputs`` maps a flag (``--report``) to its path (None: not asked for).
    A run whose ledger cannot be saved must not stream and exit 0: the file
    is the product for a CDC user. The check creates nothing it keeps: it
    probes the nearest existing directory with a temporary file, which is how
    the file is later written (temp file + rename), so root on a read-only or
    virtual file system (``/proc``) is caught as well as a missing permission.
    """
    for flag, path in outputs.items():
        if path is None:
            continue
        problem = _unwritable(path)
        if problem:
            raise UsageError(f"cannot write {flag} {path}: {problem}")


def _unwritable(path: Path) -> str:
    """Why ``path`` cannot be written as a file ('' when it can)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        return exc.strerror or str(exc)
    if mode is not None and stat.S_ISDIR(mode):
        return "it is a directory (give a file name)"
    if mode is not None and not stat.S_ISREG(mode):
        return "it exists and is not a regular file"
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # write_report creates the missing directories
    if not folder.is_dir():
        return f"{folder} is not a directory"
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}."):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"{folder} is not writable ({reason})"
        return f"cannot create a file in {folder} ({reason})"
    return ""
