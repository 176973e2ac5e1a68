"""Reconciliation: what the slot decoded, set against a stream report.

Every change of a batch the stream tagged (``pg_logical_emit_message`` with
its run id and batch number) must match the report per table and operation,
nothing else may touch the tables, and batches must arrive once each, in
commit order.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from pytest_oltpseed.cdc.capture import (
    PUBLICATION,
    SLOT,
    TAG,
    current_lsn,
    read,
    require_logical,
)
from pytest_oltpseed.cdc.changes import OPS
from pytest_oltpseed.cdc.pgoutput import Message, Transaction
from pytest_oltpseed.errors import UsageError


@dataclass(frozen=True)
class Line:
    """One table x operation: what the report says and what the WAL carried."""

    table: str
    op: str
    reported: int
    captured: int  # in the run's tagged transactions
    extra: int  # in transactions the run did not tag (out of band)

    @property
    def ok(self) -> bool:
        return self.reported == self.captured and not self.extra


@dataclass
class Verdict:
    run_id: str
    lines: list[Line]
    batches_reported: int
    batches_captured: int
    repeated: list[int] = field(default_factory=list)  # batch numbers seen twice
    out_of_order: list[int] = field(default_factory=list)
    other_transactions: list[int] = field(default_factory=list)  # their xids

    @property
    def ok(self) -> bool:
        return (
            all(line.ok for line in self.lines)
            and self.batches_reported == self.batches_captured
            and not self.repeated
            and not self.out_of_order
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "run_id": self.run_id,
            "batches": {
                "reported": self.batches_reported,
                "captured": self.batches_captured,
                "repeated": self.repeated,
                "out_of_order": self.out_of_order,
            },
            "tables": [
                {**line.__dict__, "ok": line.ok}
                for line in self.lines
                if line.reported or line.captured or line.extra
            ],
            "other_transactions": self.other_transactions[:100],
        }


def batch_tag(message: Message, run_id: str) -> int | None:
    """The stream batch number a message marks, when it is this run's tag."""
    if message.prefix != TAG:
        return None
    try:
        content = json.loads(message.content)
    except ValueError:
        return None
    return int(content["batch"]) if content.get("run") == run_id else None


def reconcile(
    transactions: Sequence[Transaction],
    report: Mapping[str, Any],
    tables: Sequence[str],
) -> Verdict:
    """Set decoded transactions against a stream report (see the module doc)."""
    try:
        run_id = str(report["run_id"])
        reported = {
            (table, op): int(ops.get(op, 0))
            for table, ops in report["tables"].items()
            for op in OPS
        }
        batches = int(report["batches"])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise UsageError(
            "the report lacks run_id, batches or tables: give the --report "
            "written by oltpseed stream"
        ) from None
    watched = set(tables) | {t for t, _ in reported}
    captured: Counter[tuple[str, str]] = Counter()
    extra: Counter[tuple[str, str]] = Counter()
    seen: list[int] = []
    others: list[int] = []
    for tx in transactions:
        numbers = [
            n for n in (batch_tag(m, run_id) for m in tx.messages) if n is not None
        ]
        mine = [c for c in tx.changes if c.table in watched]
        if numbers:
            seen.extend(numbers)
            captured.update((c.table, c.op) for c in mine)
        elif mine:
            others.append(tx.xid)
            extra.update((c.table, c.op) for c in mine)
    order = {table: i for i, table in enumerate(tables)}
    keys = sorted(
        set(reported) | set(captured) | set(extra),
        key=lambda k: (order.get(k[0], len(order)), k[0], OPS.index(k[1])),
    )
    counts = Counter(seen)
    return Verdict(
        run_id=run_id,
        lines=[
            Line(t, op, reported.get((t, op), 0), captured[(t, op)], extra[(t, op)])
            for t, op in keys
        ],
        batches_reported=batches,
        batches_captured=len(counts),
        repeated=sorted(n for n, times in counts.items() if times > 1),
        out_of_order=[b for a, b in itertools.pairwise(seen) if b <= a],
        other_transactions=others,
    )


@dataclass(frozen=True)
class Verification:
    verdict: Verdict
    transactions: int
    changes: int
    seconds: float  # reading, decoding and reconciling

    @property
    def rate(self) -> float:
        return self.changes / max(self.seconds, 1e-9)


def verify(
    conn: psycopg.Connection,
    report: Mapping[str, Any],
    tables: Sequence[str],
    *,
    slot: str = SLOT,
    publication: str = PUBLICATION,
    consume: bool = False,
) -> Verification:
    """Everything the slot holds up to now, decoded and set against ``report``.

    The slot is peeked (it keeps its changes) unless ``consume``.
    """
    require_logical(conn)
    started = time.perf_counter()
    transactions = read(
        conn,
        slot=slot,
        publication=publication,
        upto=current_lsn(conn),
        consume=consume,
    )
    verdict = reconcile(transactions, report, tables)
    return Verification(
        verdict,
        len(transactions),
        sum(len(tx.changes) for tx in transactions),
        time.perf_counter() - started,
    )
