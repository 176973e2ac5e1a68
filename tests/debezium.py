"""Debezium-format sink files built from a real decode of the test server's WAL.

No Debezium runs here (no Docker, no network), so the tests make what its
PostgreSQL connector would have published: test_decoding's text for every
change (table, operation, full rows, the change's own LSN, the xid) turned
into change event envelopes as documented ("Debezium connector for
PostgreSQL", data change events): ``{"schema": ..., "payload": {"before",
"after", "source": {..., "table", "txId", "lsn"}, "op", "ts_ms"}}``, with a
tombstone after each delete and a primary-key update as a delete of the old
key plus a create of the new one. The same decode gives the changes file a
stream would have written, so a diff of the two is clean by construction and
every defect a test injects is the only one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

_ROW = re.compile(r"^table (\w+)\.(\w+): (INSERT|UPDATE|DELETE|TRUNCATE):(.*)$", re.S)
_COLUMN = re.compile(r"\"?(\w+)\"?\[(.+?)\]:('(?:[^']|'')*'|\S+)")  # "position"
_INTEGERS = {"bigint", "integer", "smallint"}


@dataclass
class Decoded:
    """One row change as test_decoding printed it."""

    table: str
    op: str
    xid: int
    lsn: int
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    old_key: dict[str, Any] | None = field(default=None)


def _value(kind: str, text: str) -> Any:
    if text == "null":
        return None
    if text == "unchanged-toast-datum":
        return "__debezium_unavailable_value"
    if text.startswith("'"):
        return text[1:-1].replace("''", "'")
    return int(text) if kind in _INTEGERS else text


def _columns(text: str) -> dict[str, Any]:
    return {m.group(1): _value(m.group(2), m.group(3)) for m in _COLUMN.finditer(text)}


def lsn_int(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def decode(conn: psycopg.Connection, slot: str) -> list[Decoded]:
    """Consume ``slot`` (test_decoding) into row changes, in commit order."""
    rows = conn.execute(
        "SELECT lsn::text, xid::text::bigint, data "
        "FROM pg_logical_slot_get_changes(%s, NULL, NULL)",
        (slot,),
    ).fetchall()
    found = []
    for lsn, xid, data in rows:
        match = _ROW.match(data)
        if not match:
            continue
        _schema, table, op, rest = match.groups()
        change = Decoded(table, op.lower(), int(xid), lsn_int(lsn))
        if op == "INSERT":
            change.after = _columns(rest)
        elif op == "UPDATE":
            old, _, new = rest.rpartition("new-tuple:")
            change.after = _columns(new)
            if "old-key:" in old:
                change.old_key = _columns(old.split("old-key:", 1)[1])
        elif op == "DELETE":
            change.before = _columns(rest)
        found.append(change)
    return found


def primary_keys(
    conn: psycopg.Connection, tables: Iterable[str]
) -> dict[str, list[str]]:
    """Table -> its primary-key columns (no entry for a table without one)."""
    rows = conn.execute(
        "SELECT c.relname, a.attname FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indrelid "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indisprimary AND c.relname = ANY(%s) ORDER BY c.relname, a.attnum",
        (list(tables),),
    ).fetchall()
    keys: dict[str, list[str]] = {}
    for table, column in rows:
        keys.setdefault(table, []).append(column)
    return keys


def changes_lines(
    decoded: Iterable[Decoded], keys: Mapping[str, list[str]], run: str = "r1"
) -> list[str]:
    """The changes file a stream would have written (one batch per xid); a
    key change is recorded under its new key."""
    lines, batches = [], {}  # type: ignore[var-annotated]
    for change in decoded:
        batch = batches.setdefault(change.xid, len(batches) + 1)
        row = change.after if change.after is not None else change.before or {}
        key = {c: row[c] for c in keys.get(change.table, [])} if row else {}
        lines.append(
            json.dumps(
                {
                    "run": run,
                    "batch": batch,
                    "xid": change.xid,
                    "table": change.table,
                    "op": change.op,
                    "key": key,
                }
            )
        )
    return lines


SCHEMA = {
    "type": "struct",
    "optional": False,
    "name": "oltp.public.Envelope",
    "fields": [
        {"type": "struct", "optional": True, "field": "before"},
        {"type": "struct", "optional": True, "field": "after"},
        {"type": "struct", "optional": False, "field": "source"},
        {"type": "string", "optional": False, "field": "op"},
        {"type": "int64", "optional": True, "field": "ts_ms"},
    ],
}


def envelope(
    change: Decoded,
    op: str,
    *,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    wrapped: bool = True,
) -> str:
    """One Debezium message value (with its ``schema`` unless ``wrapped`` is
    False: ``value.converter.schemas.enable=false``)."""
    payload = {
        "before": dict(before) if before is not None else None,
        "after": dict(after) if after is not None else None,
        "source": {
            "version": "2.7.3.Final", "connector": "postgresql", "name": "oltp",
            "ts_ms": 1_764_900_000_000, "snapshot": "false", "db": "oltp",
            "sequence": None, "schema": "public", "table": change.table,
            "txId": change.xid, "lsn": change.lsn, "xmin": None,
        },
        "op": op,
        "ts_ms": 1_764_900_000_123,
        "transaction": None,
    }  # fmt: skip
    return json.dumps({"schema": SCHEMA, "payload": payload} if wrapped else payload)


def sink_lines(
    decoded: Iterable[Decoded], keys: Mapping[str, list[str]], wrapped: bool = True
) -> list[str]:
    """What the connector would publish for these changes, tombstones included."""
    lines = []
    for change in decoded:
        table_key = keys.get(change.table, [])
        if change.op == "insert":
            lines.append(envelope(change, "c", after=change.after, wrapped=wrapped))
        elif (
            change.op == "update"
            and change.old_key
            and table_key
            and any(
                change.old_key.get(c) != (change.after or {}).get(c) for c in table_key
            )
        ):  # a primary-key change: delete of the old key, create of the new
            old = {c: change.old_key.get(c) for c in table_key}
            lines.append(envelope(change, "d", before=old, wrapped=wrapped))
            lines.append("null")
            lines.append(envelope(change, "c", after=change.after, wrapped=wrapped))
        elif change.op == "update":
            lines.append(
                envelope(change, "u", before=change.old_key, after=change.after,
                         wrapped=wrapped)
            )  # fmt: skip
        elif change.op == "delete":
            lines.append(envelope(change, "d", before=change.before, wrapped=wrapped))
            lines.append("null")
        else:
            lines.append(envelope(change, "t", wrapped=wrapped))
    return lines
