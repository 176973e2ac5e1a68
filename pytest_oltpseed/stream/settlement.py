"""A batch's end: its transaction id, its COMMIT, and what a commit feeds.

The transaction id is read just before COMMIT (with wal_level=logical the
batch is tagged in the WAL as well), so a COMMIT whose acknowledgement was
lost is settled after reconnecting (:meth:`~.link.Link.settle`). Only a
committed batch reaches the ledger, the changes file, the progress lines and
the totals: the report counts exactly the committed batches.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pytest_oltpseed.cdc.capture import TAG
from pytest_oltpseed.cdc.changes import short_xid
from pytest_oltpseed.data.factory import Statement, changed_keys
from pytest_oltpseed.stream.faults import CRITICAL, retryable

if TYPE_CHECKING:
    from pytest_oltpseed.stream.runner import Streamer


@dataclass
class Planned:
    """An event of the open batch: when it was due and started, and what it
    wrote (``journal``) and learnt (``actions``) once ``complete``."""

    due: float
    started: float
    name: str = ""
    journal: list[Statement] = field(default_factory=list)
    actions: list[Callable[[], None]] = field(default_factory=list)
    complete: bool = False


class Settlement:
    """Commits a stream's batches and feeds what they changed onwards."""

    def __init__(self, run: Streamer) -> None:
        self.run = run
        self.number = 0  # batches written (their tag in the WAL)

    def xid(self) -> str:
        """The batch's transaction id (to settle a lost COMMIT), read just before
        COMMIT; with wal_level=logical the batch is also tagged in the WAL with
        the run id and its number, so ``oltpseed cdc verify`` can trace it."""
        assert self.run.conn is not None
        self.number += 1
        if not self.run.tagged:
            row = self.run.conn.execute("SELECT pg_current_xact_id()::text").fetchone()
        else:
            tag = json.dumps({"run": self.run.ledger.run_id, "batch": self.number})
            row = self.run.conn.execute(
                "SELECT pg_current_xact_id()::text, "
                "pg_logical_emit_message(true, %s, %s)",
                (TAG, tag),
            ).fetchone()
        assert row is not None
        return str(row[0])

    def commit(self, xid: str, plan: list[Planned]) -> None:
        conn, ctx = self.run.conn, self.run.ctx
        assert conn is not None and ctx is not None
        assert ctx.ledger is not None
        changes = [
            (t, op, n if isinstance(n, int) else max(n.rowcount, 0))
            for t, op, n in ctx.ledger
        ]
        keys = None if ctx.keyed is None else changed_keys(ctx.ledger, ctx.keyed)
        settled = False
        at = (
            time.time_ns() if self.run.options.stamped else None
        )  # orders clients' files
        try:
            conn.commit()
            committed = True
        except CRITICAL as exc:
            if retryable(exc):  # the server answered: rolled back, replay it
                raise
            committed, settled = self.run.link.settle(xid, exc), True
        acked = time.monotonic()
        if not committed:
            self.run.ledger.lost_batches += 1
            self.run.ledger.lost_events += len(plan)
            ctx.rolled_back()
            return
        ctx.committed()
        self.run.ledger.record_batch(
            changes, (p.name for p in plan), ((acked - p.due) * 1000 for p in plan)
        )
        if self.run.changes is not None and keys is not None:  # committed: write it
            self.run.changes.write_batch(
                self.run.ledger.run_id, self.number, short_xid(xid), keys, at
            )
        lags = [max(0.0, p.started - p.due) * 1000 for p in plan]
        for lag in lags:
            self.run.ledger.lag.add(lag)
        self.run.output.committed(changes, ((acked - p.due) * 1000 for p in plan), lags)
        self.run.counts.committed(changes, settled=settled)
