"""Per-key reconciliation: a changes file against what a CDC client received.

Counts per table and operation hide a lost change behind a duplicated one;
keys do not. Every expected change (a changes file line) is identified by
``(table, op, key, run, batch)``; what was received is set against it:

* **missing** - expected, received fewer times (or never);
* **duplicate** - expected, received more often than expected;
* **extra** - received, never expected (an untagged transaction, another
  batch than the one that committed it, a table the stream did not touch);
* **reordered** - for one key, a change received after a change of a batch
  that committed later (order is the file's commit order, not the WAL
  position: transactions of several connections interleave in the WAL).

A table with REPLICA IDENTITY FULL (or none, then FULL) has every column
flagged as its replica identity, so a decoded change's "key" is the whole
row; it is cut down to the changes file's key columns for that table (the
``id``, or the columns the stream's events return for a table without
primary key).

:func:`compare` takes the expected lines and the received changes as
iterables of :class:`Seen`, so other sources (a Debezium topic dump) can use it;
:func:`received` turns decoded transactions into them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_oltpseed.cdc.changes import OPS, Key, RowChange
from pytest_oltpseed.cdc.pgoutput import Change, Transaction

KINDS = ("missing", "duplicate", "extra", "reordered")


@dataclass(frozen=True, slots=True)
class Seen:
    """One change as received: ``batch`` is (run, batch) from the transaction's
    tag, None when untagged; ``key`` in :data:`~changes.Key` form."""

    table: str
    op: str
    key: Key
    batch: tuple[str, int] | None
    xid: int


@dataclass(frozen=True, slots=True)
class Issue:
    """A change that was missing, duplicated, extra or out of order."""

    kind: str
    table: str
    op: str
    key: dict[str, Any]
    batch: int | None
    xid: int | None
    times: int = 1  # how many missing or surplus copies

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "table": self.table,
            "op": self.op,
            "key": self.key,
            "batch": self.batch,
            "xid": self.xid,
            "times": self.times,
        }


@dataclass(frozen=True)
class KeyLine:
    """One table x operation, counted key by key."""

    table: str
    op: str
    expected: int
    seen: int  # expected changes received (each at most as often as expected)
    missing: int
    duplicate: int
    extra: int
    reordered: int

    @property
    def ok(self) -> bool:
        return not (self.missing or self.duplicate or self.extra or self.reordered)


@dataclass
class KeyVerdict:
    """The per-key outcome; ``issues`` keeps the first ``show`` of each kind."""

    lines: list[KeyLine]
    totals: dict[str, int]
    issues: dict[str, list[Issue]] = field(default_factory=dict)
    expected: int = 0
    received: int = 0

    @property
    def ok(self) -> bool:
        return not any(self.totals.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "expected": self.expected,
            "received": self.received,
            "totals": self.totals,
            "tables": [{**line.__dict__, "ok": line.ok} for line in self.lines],
            "first": {
                kind: [issue.as_dict() for issue in found]
                for kind, found in self.issues.items()
            },
        }


def compare(
    expected: Iterable[RowChange],
    received: Iterable[Seen],
    *,
    show: int = 10,
    order: Mapping[str, int] | None = None,
) -> KeyVerdict:
    """Set received changes against expected ones, key by key (module doc).

    ``order`` sorts the table lines (table -> position), unknown tables last.
    """
    Item = tuple[str, str, Key, tuple[str, int] | None]
    wanted: dict[Item, int] = {}
    xids: dict[tuple[str, int], int] = {}
    rank: dict[tuple[str, int], int] = {}
    per_op: Counter[tuple[str, str]] = Counter()
    columns: dict[str, frozenset[str]] = {}  # the changes file's key columns
    for line in expected:
        if line.op != "truncate" and line.table not in columns:
            columns[line.table] = frozenset(line.key)
        batch = (line.run, line.batch)
        if batch not in rank:
            rank[batch] = len(rank)
            xids[batch] = line.xid
        line_item: Item = (line.table, line.op, line.as_key(), batch)
        wanted[line_item] = wanted.get(line_item, 0) + 1
        per_op[(line.table, line.op)] += 1
    got: dict[Item, int] = {}
    got_xid: dict[tuple[str, int] | None, int] = {}
    last: dict[tuple[str, Key], int] = {}
    totals = dict.fromkeys(KINDS, 0)
    issues: dict[str, list[Issue]] = {kind: [] for kind in KINDS}
    counts: dict[str, Counter[tuple[str, str]]] = {k: Counter() for k in KINDS}
    received_n = 0
    for change in received:
        received_n += 1
        key = change.key
        named = columns.get(change.table)
        if named is not None and len(key) > len(named):
            key = tuple(pair for pair in key if pair[0] in named)  # a whole old row
        item: Item = (change.table, change.op, key, change.batch)
        got[item] = got.get(item, 0) + 1
        got_xid.setdefault(change.batch, change.xid)
        position = rank.get(change.batch) if change.batch is not None else None
        if position is None:
            continue
        where = (change.table, key)
        before = last.get(where, -1)
        if position < before:
            _note(issues, totals, counts, show, "reordered", item, change.xid, 1)
        else:
            last[where] = position
    for want, times in wanted.items():
        have = got.get(want, 0)
        if have < times:
            xid = xids.get(want[3]) if want[3] else None
            _note(issues, totals, counts, show, "missing", want, xid, times - have)
    for found, have in got.items():
        times = wanted.get(found, 0)
        if have > times:
            kind = "duplicate" if times else "extra"
            xid = got_xid.get(found[3])
            _note(issues, totals, counts, show, kind, found, xid, have - times)
    seen = Counter(per_op)
    seen.subtract(counts["missing"])  # received at least as often as expected
    places = order or {}
    names = sorted(
        set(per_op) | {k for c in counts.values() for k in c},
        key=lambda k: (places.get(k[0], len(places)), k[0], OPS.index(k[1])),
    )
    lines = [
        KeyLine(
            table,
            op,
            per_op[(table, op)],
            seen[(table, op)],
            *(counts[kind][(table, op)] for kind in KINDS),
        )
        for table, op in names
    ]
    return KeyVerdict(
        lines,
        totals,
        {k: v for k, v in issues.items() if v},
        sum(per_op.values()),
        received_n,
    )


def _note(
    issues: dict[str, list[Issue]],
    totals: dict[str, int],
    counts: dict[str, Counter[tuple[str, str]]],
    show: int,
    kind: str,
    item: tuple[str, str, Key, tuple[str, int] | None],
    xid: int | None,
    times: int,
) -> None:
    table, op, key, batch = item
    totals[kind] += times
    counts[kind][(table, op)] += times
    if len(issues[kind]) < show:
        number = batch[1] if batch is not None else None
        issues[kind].append(Issue(kind, table, op, dict(key), number, xid, times))


def key_of_change(change: Change) -> Key:
    """A decoded change's key in :data:`~changes.Key` form."""
    pairs = tuple(zip(change.columns, change.key, strict=True))
    return pairs if len(pairs) < 2 else tuple(sorted(pairs))


def tag_of(transaction: Transaction, prefix: str) -> tuple[str, int] | None:
    """(run, batch) of the stream's tag on a transaction, None when untagged."""
    for message in transaction.messages:
        if message.prefix != prefix:
            continue
        try:
            content = json.loads(message.content)
            return str(content["run"]), int(content["batch"])
        except (ValueError, KeyError, TypeError):
            continue
    return None


def received(
    transactions: Iterable[Transaction], watched: Collection[str], prefix: str
) -> Iterator[Seen]:
    """The changes of ``watched`` tables in decoded transactions, in commit order."""
    for tx in transactions:
        batch = tag_of(tx, prefix)
        for change in tx.changes:
            if change.table in watched:
                yield Seen(
                    change.table, change.op, key_of_change(change), batch, tx.xid
                )
