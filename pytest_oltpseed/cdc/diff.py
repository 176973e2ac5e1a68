"""``oltpseed cdc diff``: what a pipeline delivered, set against what was committed.

The expected side is a changes file (``stream --changes``); the actual side
is a pipeline's Debezium JSON output, one change event per line as a Kafka
console consumer or kcat prints the message values: the envelope with its
``schema``/``payload`` wrapper, or the bare payload (``schemas.enable=false``);
a ``key<TAB>value`` line (``print.key=true``) is read for its value.
Tombstones (``null``), transaction metadata and logical-message (``m``)
events carry no row change and are skipped; snapshot reads (``r``) are
counted apart, not compared (a changes file never holds a snapshot).

A change is identified by table, key, operation and transaction id
(Debezium's ``source.txId``, the changes file's ``xid``). Each expected
change must be delivered once:

* **missing** - committed, never delivered;
* **duplicated** - delivered again from another position in the WAL (a
  different ``source.lsn``): the pipeline produced it twice;
* **redelivered** - the same ``source.lsn`` delivered again, which
  at-least-once delivery allows (after a connector restart): listed apart,
  not a failure;
* **unexpected** - delivered, never committed by the stream;
* **reordered** - a key's changes delivered out of commit order (Kafka keeps
  order per key, so a consumer applying them would end in the wrong state).

A primary-key update reaches Debezium as a delete of the old key plus a
create of the new one, both from one WAL record (one ``source.lsn``); such a
pair counts as the expected update of either key in that transaction
(``key_changes``).

Keys are compared as text (integers, text and uuid keys compare as they
are; give numeric or temporal key columns ``decimal.handling.mode=string``
and ``time.precision.mode=connect`` or they will not match).
"""

from __future__ import annotations

import json
import re
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_oltpseed.cdc.changes import OPS, read_changes, short_xid
from pytest_oltpseed.errors import UsageError

DEBEZIUM_OPS = {"c": "insert", "u": "update", "d": "delete", "t": "truncate"}
SNAPSHOT = "r"
SKIPPED_OPS = {"m"}  # logical decoding messages: not row changes
KINDS = ("missing", "duplicated", "unexpected", "reordered", "redelivered")
FAILURES = ("missing", "duplicated", "unexpected", "reordered")
_PAYLOAD = re.compile(r'"payload"\s*:\s*')
_DECODER = json.JSONDecoder()
_VALUE_CAP = 200  # characters of a value kept in a key (no-PK tables: whole rows)

Key = tuple[tuple[str, Any], ...]


def norm(value: Any) -> Any:
    """A key value in the text form both sides share (``42`` and ``"42"`` match)."""
    if value is None or isinstance(value, str):
        return (
            value if value is None or len(value) <= _VALUE_CAP else value[:_VALUE_CAP]
        )
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)[:_VALUE_CAP]
    return str(value)


def key_of(columns: Mapping[str, Any]) -> Key:
    return tuple(sorted((name, norm(value)) for name, value in columns.items()))


@dataclass(frozen=True, slots=True)
class Delivered:
    """One Debezium change event, reduced to what the diff compares."""

    table: str
    op: str  # insert | update | delete | truncate | snapshot
    row: Mapping[str, Any]  # after (before for a delete); {} for a truncate
    xid: int | None
    lsn: int | str | None
    line: int


@dataclass(frozen=True)
class Example:
    """One difference, as the report lists it."""

    kind: str
    table: str
    op: str
    key: dict[str, Any]
    xid: int | None = None
    batch: int | None = None
    line: int | None = None  # in the sink file

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Tally:
    """One table x operation."""

    table: str
    op: str
    expected: int = 0
    delivered: int = 0
    missing: int = 0
    duplicated: int = 0
    unexpected: int = 0
    reordered: int = 0
    redelivered: int = 0

    @property
    def ok(self) -> bool:
        return not any(getattr(self, kind) for kind in FAILURES)


@dataclass
class Diff:
    """The outcome: per table and operation, examples of each difference."""

    tallies: dict[tuple[str, str], Tally] = field(default_factory=dict)
    examples: dict[str, list[Example]] = field(
        default_factory=lambda: {kind: [] for kind in KINDS}
    )
    snapshot: int = 0  # snapshot reads, not compared
    skipped: int = 0  # tombstones, transaction metadata, messages
    key_changes: int = 0
    expected_lines: int = 0
    actual_lines: int = 0
    limit: int = 10

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tallies.values())

    def tally(self, table: str, op: str) -> Tally:
        found = self.tallies.get((table, op))
        if found is None:
            found = self.tallies[(table, op)] = Tally(table, op)
        return found

    def note(self, example: Example) -> None:
        setattr(
            self.tally(example.table, example.op),
            example.kind,
            getattr(self.tally(example.table, example.op), example.kind) + 1,
        )
        listed = self.examples[example.kind]
        if len(listed) < self.limit:
            listed.append(example)

    def totals(self) -> dict[str, int]:
        return {
            kind: sum(getattr(t, kind) for t in self.tallies.values())
            for kind in ("expected", "delivered", *KINDS)
        }

    def as_dict(self) -> dict[str, Any]:
        order = {op: i for i, op in enumerate(OPS)}
        return {
            "ok": self.ok,
            "totals": self.totals(),
            "snapshot_reads": self.snapshot,
            "skipped_events": self.skipped,
            "key_changes": self.key_changes,
            "tables": [
                {**t.__dict__, "ok": t.ok}
                for _, t in sorted(
                    self.tallies.items(), key=lambda i: (i[0][0], order[i[0][1]])
                )
            ],
            "examples": {
                kind: [e.as_dict() for e in found]
                for kind, found in self.examples.items()
            },
        }


def read_sink(path: Path) -> Iterator[Delivered | None]:
    """The sink's change events in delivery order; ``None`` for a line that
    carries no row change. One clear line (exit 2) for anything else."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"cannot read --actual {path}: {exc.strerror or exc}"
        ) from None
    with handle:
        for number, line in enumerate(handle, 1):
            text = line.strip()
            if not text:
                continue
            try:
                yield _event(text, number)
            except (ValueError, TypeError, AttributeError, KeyError) as exc:
                if isinstance(exc, _Bad):
                    reason = str(exc)
                elif isinstance(exc, json.JSONDecodeError):
                    reason = "not valid JSON"
                else:  # a field of the wrong type (an op that is a list, ...)
                    reason = f"malformed event ({type(exc).__name__})"
                raise UsageError(
                    f"{path}:{number}: {reason} (expected a Debezium change event "
                    "per line)"
                ) from None


class _Bad(ValueError):
    """A line that is JSON but not a change event."""


def _payload(text: str) -> Any:
    """The event's payload, parsing only it when a schema precedes it (the
    schema is most of an enveloped message's bytes)."""
    if "\t" in text:  # key<TAB>value: JSON never holds a raw tab
        text = text.split("\t", 1)[1].strip()
    if text.startswith("{") and (found := _PAYLOAD.search(text)):
        try:
            value, end = _DECODER.raw_decode(text, found.end())
        except ValueError:
            value, end = None, -1
        if (
            end > 0
            and text[end:].strip() == "}"
            and (value is None or isinstance(value, dict))
        ):
            return value
    document = json.loads(text)
    if isinstance(document, dict) and "payload" in document and "op" not in document:
        return document["payload"]
    return document


def _event(text: str, number: int) -> Delivered | None:
    payload = _payload(text)
    if payload is None:
        return None  # a tombstone
    if not isinstance(payload, dict):
        raise _Bad("not a JSON object")
    if "op" not in payload:
        if "status" in payload and "id" in payload:
            return None  # transaction metadata (BEGIN/END)
        raise _Bad("no payload.op")
    code = payload["op"]
    if code in SKIPPED_OPS:
        return None
    if code != SNAPSHOT and code not in DEBEZIUM_OPS:
        raise _Bad(f"unknown op {code!r}")
    source = payload.get("source")
    if not isinstance(source, dict) or not source.get("table"):
        raise _Bad("no payload.source.table")
    row = payload.get("before" if code == "d" else "after") or {}
    if code != "t" and not isinstance(row, dict):
        raise _Bad("before/after is not an object")
    if code in "cud" and not row:
        raise _Bad(f"op {code!r} without {'before' if code == 'd' else 'after'}")
    xid = source.get("txId")
    return Delivered(
        str(source["table"]),
        "snapshot" if code == SNAPSHOT else DEBEZIUM_OPS[code],
        row if code != "t" else {},
        short_xid(xid) if xid is not None else None,
        source.get("lsn"),
        number,
    )


class _Expected:
    """The changes file indexed per (table, key): compact parallel arrays."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, Key], list[int]] = {}
        self.ops = array("b")
        self.xids = array("q")
        self.batches = array("q")
        self.matched = bytearray()
        self.columns: dict[str, tuple[str, ...]] = {}  # key columns per table

    def add(
        self, table: str, op: str, key: Mapping[str, Any], xid: int, batch: int
    ) -> None:
        index = len(self.ops)
        self.ops.append(OPS.index(op))
        self.xids.append(xid)
        self.batches.append(batch)
        self.matched.append(0)
        if op != "truncate" and table not in self.columns:
            self.columns[table] = tuple(sorted(key))  # () for a table without PK
        self.by_key.setdefault((table, key_of(key)), []).append(index)

    def find(self, table: str, key: Key, op: str, xid: int | None) -> tuple[int, bool]:
        """The first unmatched expected change with this identity (-1 if none),
        and whether the identity exists at all (matched or not)."""
        entries = self.by_key.get((table, key))
        if not entries:
            return -1, False
        code, seen = OPS.index(op), False
        for index in entries:
            if self.ops[index] == code and (xid is None or self.xids[index] == xid):
                seen = True
                if not self.matched[index]:
                    return index, True
        return -1, seen


def diff(expected: Path, actual: Path, *, limit: int = 10) -> Diff:
    """Set a sink file of Debezium events against a changes file (module doc)."""
    result = Diff(limit=limit)
    want = _Expected()
    for change in read_changes(expected, flag="--expected"):
        want.add(change.table, change.op, change.key, short_xid(change.xid),
                 change.batch)  # fmt: skip
        result.tally(change.table, change.op).expected += 1
    result.expected_lines = len(want.ops)
    seen_lsn: dict[str, set[Any]] = {}  # table -> (lsn, op) delivered
    last: dict[tuple[str, Key], int] = {}  # a key's latest matched position
    strays: list[tuple[Delivered, Key]] = []  # unmatched creates and deletes
    for event in read_sink(actual):
        result.actual_lines += 1
        if event is None:
            result.skipped += 1
            continue
        if event.op == "snapshot":
            result.snapshot += 1
            continue
        key = _key(event, want.columns.get(event.table))
        result.tally(event.table, event.op).delivered += 1
        if event.lsn is not None:  # a WAL record: one change (two for a key change)
            identity = (event.lsn, event.op)
            seen = seen_lsn.setdefault(event.table, set())
            if identity in seen:
                result.note(_example("redelivered", event, key))
                continue
            seen.add(identity)
        index, known = want.find(event.table, key, event.op, event.xid)
        if index >= 0:
            _match(want, result, last, event, key, index)
        elif known:
            result.note(_example("duplicated", event, key))
        elif event.op in ("insert", "delete"):
            strays.append((event, key))
        else:
            result.note(_example("unexpected", event, key))
    _pair_key_changes(want, result, last, strays)
    for (table, key), entries in want.by_key.items():
        for index in entries:
            if not want.matched[index]:
                result.note(
                    Example("missing", table, OPS[want.ops[index]], dict(key),
                            want.xids[index], want.batches[index])
                )  # fmt: skip
    return result


def _match(
    want: _Expected,
    result: Diff,
    last: dict[tuple[str, Key], int],
    event: Delivered,
    key: Key,
    index: int,
) -> None:
    want.matched[index] = 1
    where = (event.table, key)
    if last.get(where, -1) > index:
        result.note(_example("reordered", event, key, want.batches[index]))
    last[where] = max(last.get(where, -1), index)


def _pair_key_changes(
    want: _Expected,
    result: Diff,
    last: dict[tuple[str, Key], int],
    strays: list[tuple[Delivered, Key]],
) -> None:
    """Creates and deletes that match no expected change: a delete and a
    create from the same WAL record (one ``source.lsn``) are one primary-key
    update, Debezium's form of it; it is the expected update of the new key
    (or of the old one) in that transaction."""
    records: dict[tuple[str, Any], list[int]] = {}
    for number, (event, _key) in enumerate(strays):
        if event.lsn is not None:
            records.setdefault((event.table, event.lsn), []).append(number)
    used = bytearray(len(strays))
    for numbers in records.values():
        if len(numbers) != 2:
            continue
        pair = sorted((strays[n] for n in numbers), key=lambda s: s[0].op)
        (removed, old), (created, new) = pair  # "delete" sorts before "insert"
        if (removed.op, created.op) != ("delete", "insert"):
            continue
        for key in (new, old):
            index, _known = want.find(created.table, key, "update", created.xid)
            if index >= 0:
                used[numbers[0]] = used[numbers[1]] = 1
                result.key_changes += 1
                _match(want, result, last, created, new, index)
                break
    for number, (event, key) in enumerate(strays):
        if not used[number]:
            result.note(_example("unexpected", event, key))


def _key(event: Delivered, columns: tuple[str, ...] | None) -> Key:
    """The event's key: the changes file's key columns for its table (none
    for a table without primary key), else ``id``, else the whole row (a
    table the stream never changed)."""
    row = event.row
    if not row:
        return ()
    if columns is None:
        columns = ("id",) if "id" in row else tuple(row)
    return tuple(sorted((c, norm(row.get(c))) for c in columns))


def _example(
    kind: str, event: Delivered, key: Key, batch: int | None = None
) -> Example:
    return Example(kind, event.table, event.op, dict(key), event.xid, batch, event.line)
