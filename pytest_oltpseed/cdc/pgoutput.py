"""A decoder for PostgreSQL's ``pgoutput`` logical replication messages (protocol 1).

What ``pg_logical_slot_get_binary_changes(..., 'proto_version', '1',
'publication_names', ..., 'messages', 'true')`` returns, one message a row,
turned into transactions of row changes ("Logical Replication Message Formats"
in the PostgreSQL documentation). A change's key is its replica identity
columns (the primary key here): integer columns as ``int``, the others in
PostgreSQL's text format (what the changes file holds, see ``changes``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, NamedTuple

OPS = {"I": "insert", "U": "update", "D": "delete"}
INTEGER_TYPES = frozenset({20, 21, 23, 26})  # int8, int2, int4, oid


def lsn_text(value: int) -> str:
    """An LSN as PostgreSQL prints it (``16/B374D848``)."""
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


class Change(NamedTuple):
    """One row change as a CDC client receives it (a named tuple: a
    verification builds millions)."""

    table: str
    op: str  # insert | update | delete | truncate
    key: tuple[Any, ...]  # typed: (2,) for id 2
    xid: int
    lsn: str = ""  # the commit's LSN
    columns: tuple[str, ...] = ()  # the key's column names

    @property
    def key_map(self) -> dict[str, Any]:
        """Key column -> value, as a changes file line's ``key``."""
        return dict(zip(self.columns, self.key, strict=True))


@dataclass(frozen=True, slots=True)
class Message:
    """A ``pg_logical_emit_message`` record (the stream tags its batches)."""

    prefix: str
    content: bytes
    transactional: bool


@dataclass(slots=True)
class Transaction:
    xid: int
    lsn: str = ""
    changes: list[Change] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Relation:
    schema: str
    name: str
    columns: tuple[str, ...]
    key: tuple[int, ...]  # positions of the replica identity columns
    integer: tuple[bool, ...]  # per key column: an integer type
    key_columns: tuple[str, ...] = ()
    positions: dict[int, int] = field(default_factory=dict)  # column -> key index

    @property
    def table(self) -> str:
        """The name a domain gives it: bare in ``public``, else ``schema.name``
        (a generated domain over other schemas, see ``db.table_ident``)."""
        return qualified(self.schema, self.name)


def qualified(schema: str, name: str) -> str:
    return name if schema == "public" else f"{schema}.{name}"


class DecodeError(ValueError):
    """A message this decoder does not understand (another protocol version?)."""


class _Reader:
    __slots__ = ("at", "data")

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return int(value)

    def byte(self) -> str:
        self.at += 1
        return chr(self.data[self.at - 1])

    def string(self) -> str:
        end = self.data.index(b"\0", self.at)
        text = self.data[self.at : end].decode()
        self.at = end + 1
        return text

    def raw(self, size: int) -> bytes:
        self.at += size
        return self.data[self.at - size : self.at]


_ROW = {ord(k): op for k, op in OPS.items()}  # message byte -> operation
_UPDATE = ord("U")
_U32 = struct.Struct("!I").unpack_from
_I32 = struct.Struct("!i").unpack_from
_I16 = struct.Struct("!h").unpack_from
_VALUE = frozenset(b"tb")  # text or binary value follows (else null/unchanged)


def _skip_tuple(data: bytes, at: int) -> int:
    """The position after a TupleData."""
    (count,) = _I16(data, at)
    at += 2
    for _ in range(count):
        kind = data[at]
        at += 1
        if kind in _VALUE:
            at += 4 + _I32(data, at)[0]
    return at


def _key(data: bytes, at: int, relation: Relation) -> tuple[Any, ...]:
    """The replica identity values of a TupleData, typed (ints as ``int``)."""
    wanted = relation.positions
    values: list[Any] = [None] * len(wanted)
    (count,) = _I16(data, at)
    at += 2
    for position in range(count):
        kind = data[at]
        at += 1
        if kind in _VALUE:
            (size,) = _I32(data, at)
            at += 4
            slot = wanted.get(position)
            if slot is not None:
                text = data[at : at + size].decode()
                values[slot] = int(text) if relation.integer[slot] else text
            at += size
    return tuple(values)


class Decoder:
    """Feed messages in order; complete transactions come out at their Commit."""

    def __init__(self) -> None:
        self.relations: dict[int, Relation] = {}
        self.open: Transaction | None = None
        self.loose: list[Message] = []  # non-transactional messages

    def feed(self, data: bytes) -> Transaction | None:
        first = data[0]
        if first in _ROW:  # the bulk of the messages: straight to the key
            self._row(first, data)
            return None
        reader = _Reader(data)
        kind = reader.byte()
        if kind == "B":
            final = lsn_text(reader.take("!Q"))  # the commit's LSN, known up front
            reader.take("!q")  # commit time
            self.open = Transaction(xid=reader.take("!I"), lsn=final)
        elif kind == "C":
            reader.take("!b")  # flags
            commit = lsn_text(reader.take("!Q"))
            done, self.open = self.open, None
            if done is None:
                raise DecodeError("Commit without Begin")
            if commit != done.lsn:  # never seen: Begin announces the commit LSN
                done.changes = [
                    Change(c.table, c.op, c.key, c.xid, commit, c.columns)
                    for c in done.changes
                ]
            done.lsn = commit
            return done
        elif kind == "R":
            self._relation(reader)
        elif kind == "T":
            self._truncate(reader)
        elif kind == "M":
            flags = reader.take("!b")
            reader.take("!Q")  # LSN
            prefix = reader.string()
            message = Message(prefix, reader.raw(reader.take("!i")), bool(flags & 1))
            (self.open.messages if self.open else self.loose).append(message)
        elif kind not in "YO":  # type and origin messages carry nothing we count
            raise DecodeError(f"unknown pgoutput message {kind!r}")
        return None

    def _relation(self, reader: _Reader) -> None:
        oid = reader.take("!I")
        schema, name = reader.string(), reader.string()
        reader.byte()  # replica identity setting
        columns, key, integer = [], [], []
        for position in range(reader.take("!h")):
            flags = reader.take("!b")
            columns.append(reader.string())
            kind = reader.take("!I")  # type
            reader.take("!i")  # typmod
            if flags & 1:
                key.append(position)
                integer.append(kind in INTEGER_TYPES)
        self.relations[oid] = Relation(
            schema or "pg_catalog",
            name,
            tuple(columns),
            tuple(key),
            tuple(integer),
            tuple(columns[i] for i in key),
            {position: i for i, position in enumerate(key)},
        )

    def _row(self, kind: int, data: bytes) -> None:
        """Only the key columns are decoded: the rest is skipped by length."""
        relation = self.relations[_U32(data, 1)[0]]
        at = 6  # kind, relation oid, tuple marker
        if kind == _UPDATE and data[5] in b"KO":  # old key or row first, then the new
            at = _skip_tuple(data, at) + 1
        key = _key(data, at, relation)
        if self.open is None:
            raise DecodeError("row change outside a transaction")
        self.open.changes.append(
            Change(
                relation.table,
                _ROW[kind],
                key,
                self.open.xid,
                self.open.lsn,
                relation.key_columns,
            )
        )

    def _truncate(self, reader: _Reader) -> None:
        count = reader.take("!i")
        reader.take("!b")  # options
        for _ in range(count):
            relation = self.relations.get(reader.take("!I"))
            name = relation.table if relation else "?"
            self._add(Change(name, "truncate", (), self._xid()))

    def _xid(self) -> int:
        if self.open is None:
            raise DecodeError("row change outside a transaction")
        return self.open.xid

    def _add(self, change: Change) -> None:
        assert self.open is not None
        self.open.changes.append(change)
