"""A stream run's knobs and names: options, run ids, shards, per-stream seeds.

Data only (no connection, no clock), shared by the one-connection runner, the
client pool (:mod:`~pytest_oltpseed.stream.workers`) and the CLI's dry run.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pytest_oltpseed.config import StreamSettings
from pytest_oltpseed.errors import UsageError
from pytest_oltpseed.profiles import DEFAULT_AS_OF


@dataclass(frozen=True)
class StreamOptions:
    """A run's knobs: the settings' ``[stream]`` values with the flags on top."""

    interval: float = 2.0
    jitter_ms: int = 400
    batch_size: int = 50
    rate: float | None = None
    duration: float | None = None
    max_events: int | None = None
    report: Path | None = None
    changes: Path | None = None
    progress_s: float = 10.0
    pause_file: Path | None = None  # watched besides the database's own sentinel
    pause_home: Path | None = None  # where that one lives (None: the oltpseed home)
    reconnect_base: float = 1.0
    reconnect_max: float = 30.0
    reconnect_attempts: int = 6
    fail_fast: bool = True
    seed: int = 0
    pool_seed: int = 0
    floor: datetime = DEFAULT_AS_OF
    every: tuple[tuple[str, int], ...] = ()  # (event, N): once every N batches
    clients: int = 1  # concurrent worker processes (workers.py)
    shard: tuple[int, int] | None = None  # (i, K): one of K independent streams

    @property
    def stamped(self) -> bool:
        """Changes lines carry their commit time: the file will be merged."""
        return self.clients > 1 or self.shard is not None

    @classmethod
    def from_settings(cls, stream: StreamSettings, **flags: Any) -> StreamOptions:
        base = cls(
            interval=stream.interval_seconds,
            jitter_ms=stream.max_jitter_ms,
            batch_size=stream.batch_size,
            progress_s=stream.progress_seconds,
            pause_file=stream.pause_file,
            reconnect_base=stream.reconnect_base_seconds,
            reconnect_max=stream.reconnect_max_seconds,
            reconnect_attempts=stream.reconnect_attempts,
            fail_fast=stream.fail_fast_on_critical,
            clients=stream.clients,
        )
        given = {k: v for k, v in flags.items() if v is not None}
        return cls(**{**asdict(base), **given})

    def outputs(self) -> dict[str, Path | None]:
        """The files the run replaces whole, by flag (for
        :func:`~.ledger.check_outputs`). ``--changes`` is not one: it is
        appended to as batches commit, so a FIFO or ``/dev/stdout`` is fine,
        and :meth:`ChangesWriter.open` (when the streamer is made, before any
        write) refuses a path it cannot open."""
        return {"--report": self.report}

    def pace(self) -> str:
        """The pace in words, for the run's first log line."""
        if self.rate:
            return f"{self.rate:g} events/s in batches of up to {self.batch_size}"
        return (
            f"{self.batch_size} events every {self.interval:g}s "
            f"+- {self.applied_jitter_ms()}ms"
        )

    def applied_jitter_ms(self) -> int:
        """The jitter the schedule applies: at most the interval."""
        return min(self.jitter_ms, round(self.interval * 1000))

    def describe(self) -> dict[str, Any]:
        shown = asdict(self)
        for key in ("report", "changes", "pause_file", "pause_home", "floor"):
            shown[key] = str(shown[key]) if shown[key] is not None else None
        shown["shard"] = shard_label(self.shard) if self.shard else None
        return shown


def new_run_id(shard: tuple[int, int] | None = None) -> str:
    """A run id; a shard's says which shard it is (``3f9c2a1b-s1of4``), so
    ``cdc verify`` on merged files attributes each transaction to its shard."""
    base = uuid.uuid4().hex[: 8 if shard else 12]
    return f"{base}-s{shard[0]}of{shard[1]}" if shard else base


def shard_label(shard: tuple[int, int]) -> str:
    return f"{shard[0]}/{shard[1]}"


def parse_shard(text: str) -> tuple[int, int]:
    """``i/K`` (0 <= i < K) -> (i, K); one line (exit 2) otherwise."""
    head, _, tail = text.partition("/")
    try:
        index, count = int(head), int(tail)
    except ValueError:
        index, count = -1, 0
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"--shard {text!r}: expected i/K with 0 <= i < K, e.g. 0/4")
    return index, count


def stream_seed(seed: int, shard: tuple[int, int] | None, client: int) -> int:
    """The random seed of one stream of a run: independent per shard and client
    (a hash, not seed+i: neighbouring seeds of two runs must not overlap), and
    ``seed`` itself for a plain run (a seed repeats a one-client run)."""
    if shard is None and client == 0:
        return seed
    text = f"{seed}/{shard[0] if shard else 0}/{shard[1] if shard else 1}/{client}"
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest())
