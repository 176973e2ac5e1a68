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
from typing import Any, NamedTuple

from pytest_oltpseed.cdc.changes import OPS, Key, RowChange
from pytest_oltpseed.cdc.pgoutput import Change, Transaction

KINDS = ("missing", "duplicate", "extra", "reordered")


class Seen(NamedTuple):
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
    # run -> kind -> changes: whose batch each difference belongs to (None:
    # an untagged transaction), for ``cdc verify``'s per-shard breakdown
    by_run: dict[str | None, Counter[str]] = field(default_factory=dict)

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
    # An item is (table, op, key, where): ``where`` is the batch's rank in
    # commit order for a batch of the file, else the received tag itself.
    Item = tuple[str, str, Key, Any]
    balance: dict[Item, int] = {}  # expected minus received
    batches: list[tuple[str, int]] = []
    xids: list[int] = []
    rank: dict[tuple[str, int], int] = {}
    ops: dict[tuple[str, str], int] = {}
    batch: tuple[str, int] = ("", -1)
    where = -1
    columns: dict[str, frozenset[str]] = {}  # the changes file's key columns
    for run, number, xid, table, op, mapping in expected:
        if op != "truncate" and table not in columns:
            columns[table] = frozenset(mapping)
        if number != batch[1] or run != batch[0]:
            batch = (run, number)
            where = rank.setdefault(batch, len(rank))
            if where == len(batches):
                batches.append(batch)
                xids.append(xid)
        pairs = (
            tuple(mapping.items())
            if len(mapping) < 2
            else tuple(sorted(mapping.items()))
        )
        line_item: Item = (table, op, pairs, where)
        balance[line_item] = balance.get(line_item, 0) + 1
        ops[(table, op)] = ops.get((table, op), 0) + 1
    per_op = Counter(ops)
    extra: dict[Item, int] = {}
    extra_xid: dict[Any, int] = {}
    last: dict[tuple[str, Key], int] = {}
    totals = dict.fromkeys(KINDS, 0)
    issues: dict[str, list[Issue]] = {kind: [] for kind in KINDS}
    counts: dict[str, Counter[tuple[str, str]]] = {k: Counter() for k in KINDS}
    by_run: dict[str | None, Counter[str]] = {}
    received_n = 0
    previous: Any = ()
    position: Any = None
    for table, op, key, tag, xid in received:
        received_n += 1
        named = columns.get(table)
        if named is not None and len(key) > len(named):
            key = tuple(pair for pair in key if pair[0] in named)  # a whole old row
        if tag != previous:
            previous = tag
            position = rank.get(tag, tag) if tag is not None else None
        item: Item = (table, op, key, position)
        left = balance.get(item)
        if left is None:
            extra[item] = extra.get(item, 0) + 1
            extra_xid.setdefault(position, xid)
            continue
        balance[item] = left - 1
        here = (table, key)
        if position < last.get(here, -1):
            _note(issues, totals, counts, show, "reordered", item, xid, 1,
                  batches, by_run)  # fmt: skip
        else:
            last[here] = position
    at: int | None
    for want, left in balance.items():
        if left:
            kind = "missing" if left > 0 else "duplicate"
            at = xids[want[3]]
            _note(
                issues, totals, counts, show, kind, want, at, abs(left), batches,
                by_run,
            )  # fmt: skip
    for found, times in extra.items():
        at = extra_xid.get(found[3])
        _note(issues, totals, counts, show, "extra", found, at, times, batches, by_run)
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
        by_run,
    )


def _note(
    issues: dict[str, list[Issue]],
    totals: dict[str, int],
    counts: dict[str, Counter[tuple[str, str]]],
    show: int,
    kind: str,
    item: tuple[str, str, Key, Any],
    xid: int | None,
    times: int,
    batches: list[tuple[str, int]],
    by_run: dict[str | None, Counter[str]],
) -> None:
    table, op, key, where = item
    totals[kind] += times
    counts[kind][(table, op)] += times
    run: str | None
    number: int | None
    if isinstance(where, int):
        run, number = batches[where]
    else:  # a tag the file does not know, or untagged
        run, number = where if where is not None else (None, None)
    by_run.setdefault(run, Counter())[kind] += times
    if len(issues[kind]) < show:
        issues[kind].append(Issue(kind, table, op, dict(key), number, xid, times))


def key_of_change(change: Change) -> Key:
    """A decoded change's key in :data:`~changes.Key` form."""
    columns = change.columns
    if len(columns) == 1:
        return ((columns[0], change.key[0]),)
    return tuple(sorted(zip(columns, change.key, strict=True)))


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
        xid = tx.xid
        for change in tx.changes:
            if change.table in watched:
                yield Seen(change.table, change.op, key_of_change(change), batch, xid)
