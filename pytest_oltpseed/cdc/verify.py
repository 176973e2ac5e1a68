"""Reconciliation: what the slot decoded, set against a stream report and/or
its changes file.

With the report: every change of a batch the stream tagged
(``pg_logical_emit_message`` with its run id and batch number) must match the
report per table and operation, nothing else may touch the tables, and
batches must arrive once each, in commit order. With the changes file: the
same, key by key (:mod:`~pytest_oltpseed.cdc.keys`).
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
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
from pytest_oltpseed.cdc.changes import OPS, read_changes
from pytest_oltpseed.cdc.keys import KeyVerdict, compare, received
from pytest_oltpseed.cdc.pgoutput import Message, Transaction
from pytest_oltpseed.cdc.shards import ShardLine, breakdown
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
    tag = run_tag(message, {run_id})
    return tag[1] if tag is not None else None


def run_tag(message: Message, runs: Collection[str]) -> tuple[str, int] | None:
    """(run, batch) a message marks, when it is the tag of one of ``runs``."""
    if message.prefix != TAG:
        return None
    try:
        content = json.loads(message.content)
    except ValueError:
        return None
    run = content.get("run")
    return (run, int(content["batch"])) if run in runs else None


def runs_of(report: Mapping[str, Any]) -> dict[str, int]:
    """Run id -> batches of a report: a merged report (``stream --clients``,
    ``report merge``) lists its parts' runs in ``runs``, a plain one is one run."""
    runs = report.get("runs")
    if isinstance(runs, Mapping):
        return {str(run): int(n) for run, n in runs.items()}
    return {str(report["run_id"]): int(report.get("batches", 0))}


def parse_report(
    report: Mapping[str, Any],
) -> tuple[str, dict[tuple[str, str], int], int]:
    """(run id, (table, op) -> rows, batches) of a stream report; one line
    (exit 2) when it is not one."""
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
    return run_id, reported, batches


def reconcile(
    transactions: Sequence[Transaction],
    report: Mapping[str, Any],
    tables: Sequence[str],
) -> Verdict:
    """Set decoded transactions against a stream report (see the module doc)."""
    run_id, reported, batches = parse_report(report)
    runs = runs_of(report)
    watched = set(tables) | {t for t, _ in reported}
    captured: Counter[tuple[str, str]] = Counter()
    extra: Counter[tuple[str, str]] = Counter()
    seen: list[tuple[str, int]] = []
    others: list[int] = []
    for tx in transactions:
        numbers = [n for n in (run_tag(m, runs) for m in tx.messages) if n is not None]
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
        repeated=sorted(n for (_, n), times in counts.items() if times > 1),
        out_of_order=[  # batches of one run (one connection) commit in order
            b[1]
            for run in runs
            for a, b in itertools.pairwise(t for t in seen if t[0] == run)
            if b[1] <= a[1]
        ],
        other_transactions=others,
    )


@dataclass(frozen=True)
class Verification:
    verdict: Verdict | None  # counts against the report (when one was given)
    transactions: int
    changes: int
    seconds: float  # reading the changes file, reading, decoding, reconciling
    keys: KeyVerdict | None = None  # key by key against the changes file
    shards: list[ShardLine] | None = None  # per shard, for merged shard runs

    @property
    def rate(self) -> float:
        return self.changes / max(self.seconds, 1e-9)

    @property
    def ok(self) -> bool:
        return (self.verdict is None or self.verdict.ok) and (
            self.keys is None or self.keys.ok
        )


def verify(
    conn: psycopg.Connection,
    report: Mapping[str, Any] | None,
    tables: Sequence[str],
    *,
    slot: str = SLOT,
    publication: str = PUBLICATION,
    consume: bool = False,
    changes: Path | None = None,
    show: int = 10,
) -> Verification:
    """Everything the slot holds up to now, decoded and set against ``report``
    (per table and operation) and ``changes`` (key by key; the first ``show``
    differences of each kind are kept).

    Both inputs are checked before the slot is read, so a bad one leaves the
    slot untouched. The slot is peeked (it keeps its changes) unless ``consume``.
    """
    if report is None and changes is None:
        raise UsageError("nothing to verify against: give --report, --changes or both")
    run_ids = set(runs_of(report)) if report is not None else None
    started = time.perf_counter()
    expected = list(read_changes(changes)) if changes is not None else None
    if expected is not None and run_ids is not None:
        runs = {line.run for line in expected}
        if runs - run_ids:
            named = (
                f"run {next(iter(run_ids))}: give the files of one run"
                if len(run_ids) == 1
                else f"runs {', '.join(sorted(run_ids))}: give the merged files "
                "of one merged run"
            )
            raise UsageError(
                f"--changes {changes} holds run(s) {', '.join(sorted(runs))}, "
                f"the report {named}"
            )
    require_logical(conn)
    transactions = read(
        conn,
        slot=slot,
        publication=publication,
        upto=current_lsn(conn),
        consume=consume,
    )
    verdict = reconcile(transactions, report, tables) if report is not None else None
    keys = None
    watched = (
        set(tables) | {t for t, _ in parse_report(report)[1]} if report else set(tables)
    )
    if expected is not None:
        watched |= {line.table for line in expected}
        keys = compare(
            expected,
            received(transactions, watched, TAG),
            show=show,
            order={table: i for i, table in enumerate(tables)},
        )
    shards = breakdown(
        transactions, watched, TAG, report=report,
        runs=runs_of(report) if report is not None else None,
        expected=expected, keys=keys,
    )  # fmt: skip
    return Verification(
        verdict,
        len(transactions),
        sum(len(tx.changes) for tx in transactions),
        time.perf_counter() - started,
        keys,
        shards,
    )
