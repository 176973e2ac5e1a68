"""What the factories hand around: rows, references to parent rows, writes.

A :class:`Row` is a plain dict (psycopg's ``dict_row`` shape) that also reads
as attributes; a :class:`Ref` keeps a parent's values at hand so a child can
follow its rules; :class:`Statement` and :class:`Returning` describe a write
as the stream's ledger and journal need it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pytest_oltpseed.db import table_ident


class Row(dict[str, Any]):
    """A row: a dict of column -> value that also allows ``row.column``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class _Attrs:
    """Attribute view of a row being built, as factory_boy's resolver offers.

    A :class:`Row` would not do: ``row.items`` is ``dict.items``.
    """

    __slots__ = ("_row",)

    def __init__(self, row: Mapping[str, Any]) -> None:
        self._row = row

    def __getattr__(self, name: str) -> Any:
        try:
            return self._row[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(eq=False, slots=True)
class Ref:
    """A reference to a parent row; written as the parent's id.

    It keeps the parent's values at hand so children can follow its rules
    (an event never precedes its patient's ``data_cadastro``).
    """

    table: str
    row: Mapping[str, Any]

    @property
    def id(self) -> int:
        return int(self.row["id"])


def ref_id(value: Any) -> Any:
    """The id to write for an FK value given as a Ref, a row or an id."""
    if isinstance(value, Ref):
        return value.id
    if isinstance(value, Mapping):
        return value["id"]
    return value


@dataclass(frozen=True, slots=True)
class Statement:
    """One write as executed: enough to count it and to run it again unchanged.

    ``counts`` are the (table, operation) pairs it changes; ``rows`` is its
    row count when known in advance (an insert), else the cursor's says it.
    ``keys`` are the ids it inserts, when known in advance; otherwise the
    statement's ``RETURNING`` gives, per pair of ``counts``, one id column.
    """

    query: str
    params: Any
    counts: tuple[tuple[str, str], ...]
    rows: int | None = None
    keys: tuple[Any, ...] | None = None
    # (rows, keys) per pair of ``counts`` when they differ: a header and its
    # items inserted by one statement (see :func:`_insert_with_items_query`)
    each: tuple[tuple[int, tuple[Any, ...]], ...] = ()


@dataclass(frozen=True, slots=True)
class Returning:
    """The keys a write changed, from its ``RETURNING`` rows: column ``column``
    as the ``id``, or (``column`` None: a statement counted once) every
    returned column, so a composite key (or a table's chosen key columns
    when it has no primary key) is returned whole."""

    cursor: Any
    column: int | None


@lru_cache(maxsize=512)
def _insert_query(table: str, names: tuple[str, ...], rows: int = 1) -> str:
    """Composed once, kept as text: psycopg caches the parsing of text queries
    (not of ``Composed`` ones), which saves ~80 us an insert."""
    one = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(names)))
    query = sql.SQL("INSERT INTO {} ({}) VALUES {}").format(
        table_ident(table),
        sql.SQL(", ").join(map(sql.Identifier, names)),
        sql.SQL(", ").join([one] * rows),
    )
    return query.as_string(None)


@lru_cache(maxsize=512)
def _insert_with_items_query(
    table: str,
    names: tuple[str, ...],
    child: str,
    child_names: tuple[str, ...],
    rows: int,
) -> str:
    """A header and its ``rows`` items in one statement: the items' INSERT in a
    data-modifying CTE, the header's as the main statement (parameters: the
    items' first). PostgreSQL runs a CTE nobody reads after the main
    statement, so the header still precedes its items in the WAL, and the
    items' foreign key to it is checked at the statement's end."""
    items = _insert_query(child, child_names, rows)
    return f"WITH items AS ({items}) {_insert_query(table, names)}"


def insert(conn: psycopg.Connection, table: str, values: Mapping[str, Any]) -> Row:
    """``INSERT ... RETURNING *`` of one row; identifiers quoted with psycopg.sql."""
    names = list(values)
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING *").format(
        table_ident(table),
        sql.SQL(", ").join(map(sql.Identifier, names)),
        sql.SQL(", ").join(sql.Placeholder() * len(names)),
    )
    with conn.cursor(row_factory=dict_row) as cur:
        found = cur.execute(query, [values[n] for n in names]).fetchone()
    assert found is not None
    return Row(found)


def changed_keys(
    ledger: Sequence[tuple[str, str, Any]], keyed: Sequence[Any]
) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(table, op, [key, ...]) per write of a batch, in statement order, from a
    context's ``ledger`` and ``keyed`` once the results are in. A key is
    ``{"id": ...}``, the returned key columns (a composite key), or a mapping
    given as is (``{}`` for a TRUNCATE)."""
    fetched: dict[int, list[Any]] = {}
    found = []
    for (table, op, _rows), keys in zip(ledger, keyed, strict=True):
        if isinstance(keys, Returning):
            cursor = keys.cursor
            if id(cursor) not in fetched:  # one cursor can serve several pairs
                fetched[id(cursor)] = cursor.fetchall() if cursor.description else []
            rows = fetched[id(cursor)]
            if keys.column is not None:
                values: list[Any] = [row[keys.column] for row in rows]
            else:
                names = [c.name for c in cursor.description or ()]
                if names == ["id"]:
                    values = [row[0] for row in rows]
                else:
                    values = [dict(zip(names, row, strict=True)) for row in rows]
        else:
            values = list(keys or ())
        found.append(
            (table, op, [v if isinstance(v, dict) else {"id": v} for v in values])
        )
    return found
