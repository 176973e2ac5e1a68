"""A context's writes: inserts (with ids the database numbers, or allocated in
blocks for pipelined writers), UPDATE/DELETE statements, and the ledger and
journal the stream keeps of them. A part of
:class:`~pytest_oltpseed.data.context.Context`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from pytest_oltpseed.data.lookups import Lookups
from pytest_oltpseed.data.rows import (
    Returning,
    Statement,
    _insert_query,
    _insert_with_items_query,
    insert,
)

ID_BLOCK = 64  # ids first taken from a table's sequence at once when allocating
ID_BLOCK_MAX = 2048  # ... doubling per refill up to this: a busy table (retail's
# items, ~1.5 rows an event) refilled 64 at a time cost the stream a round trip
# on the reservation connection every ~40 events


class Writing(Lookups):
    """Context's writes (a mixin; state set by ``Context``)."""

    allocate_ids: bool
    reserve_conn: psycopg.Connection | None
    _ids: dict[str, list[int]]
    _id_block: dict[str, int]
    ledger: list[tuple[str, str, Any]] | None
    keyed: list[Any] | None
    journal: list[Statement] | None

    def insert(self, table: str, values: Mapping[str, Any]) -> Mapping[str, Any]:
        """Insert one row; returns what to merge into it (at least its id)."""
        assert self.conn is not None
        written: Mapping[str, Any]
        if not self.allocate_ids:
            written = insert(self.conn, table, values)
            # a generated domain's table may be keyed otherwise (film_id, ...)
            key = (written["id"],) if "id" in written else tuple(written.values())
            self.count(table, "insert", 1, key)
        else:
            written = {"id": self._next_id(table), **values}
            query = _insert_query(table, tuple(written))
            self.apply(
                Statement(
                    query,
                    list(written.values()),
                    ((table, "insert"),),
                    1,
                    (written["id"],),
                )
            )
        self.remember(table, written)
        return written

    def insert_many(
        self, table: str, rows: Sequence[Mapping[str, Any]]
    ) -> list[Mapping[str, Any]]:
        """Insert rows of one table (a header's items); with allocated ids in one
        multi-row statement, otherwise one ``RETURNING`` insert each (the order
        of a multi-row ``RETURNING`` is not guaranteed)."""
        names = tuple(rows[0]) if rows else ()
        if (
            not self.allocate_ids
            or len(rows) < 2
            or any(tuple(r) != names for r in rows)
        ):
            return [self.insert(table, row) for row in rows]
        written: list[Mapping[str, Any]] = [
            {"id": self._next_id(table), **row} for row in rows
        ]
        query = _insert_query(table, ("id", *names), len(written))
        values = [v for row in written for v in row.values()]
        ids = tuple(row["id"] for row in written)
        self.apply(Statement(query, values, ((table, "insert"),), len(written), ids))
        for row in written:
            self.remember(table, row)
        return written

    def insert_with_items(
        self,
        table: str,
        values: Mapping[str, Any],
        child: str,
        rows: Sequence[Mapping[str, Any]],
    ) -> None:
        """Insert a header and its items in one statement (allocated ids: every
        row has its ``id`` from :meth:`new_id`; the items share their columns):
        a sale is one statement on the wire and in the server, not two."""
        query = _insert_with_items_query(
            table, tuple(values), child, tuple(rows[0]), len(rows)
        )
        params = [v for row in rows for v in row.values()]
        params.extend(values.values())
        ids = tuple(row["id"] for row in rows)
        counts = ((table, "insert"), (child, "insert"))
        each = ((1, (values["id"],)), (len(rows), ids))
        self.apply(Statement(query, params, counts, each=each))
        self.remember(table, values)
        for row in rows:
            self.remember(child, row)

    def new_id(self, table: str) -> int:
        """A primary key for a row of ``table`` (``allocate_ids``)."""
        return self._next_id(table)

    def _next_id(self, table: str) -> int:
        free = self._ids.get(table)
        if not free:
            # nextval ignores transactions: on the reservation connection it
            # is the same, and a pipelined batch need not stop to wait for it.
            conn = self.reserve_conn or self.conn
            assert conn is not None
            block = self._id_block[table] = min(
                ID_BLOCK_MAX, self._id_block.get(table, ID_BLOCK // 2) * 2
            )
            rows = conn.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) "
                "FROM generate_series(1, %s)",
                (table, block),
            ).fetchall()
            free = self._ids[table] = [int(r[0]) for r in reversed(rows)]
        return free.pop()

    def count(self, table: str, op: str, rows: Any, keys: Any = None) -> None:
        """Record a write for the ledger: a row count, or the cursor that knows
        it; and, when ``keyed``, which rows (see the class doc)."""
        if self.ledger is not None:
            self.ledger.append((table, op, rows))
            if self.keyed is not None:
                self.keyed.append(keys)

    def execute(
        self,
        table: str,
        op: str,
        query: str,
        params: Any = None,
        *,
        also: Sequence[tuple[str, str]] = (),
    ) -> psycopg.Cursor[Any]:
        """Run an UPDATE/DELETE of ``table`` and record its row count (and, for
        ``also``'s (table, op) pairs, the same count: a CTE deleting one item
        per header it updates).

        When the changed keys are kept (``keyed``), a statement without
        ``RETURNING`` gets ``RETURNING id``; one with ``also`` must return,
        itself, one id column per (table, op) pair, in order.
        """
        if self.keyed is not None and not also and "returning" not in query.lower():
            query = f"{query.rstrip()} RETURNING id"
        return self.apply(Statement(query, params, ((table, op), *also)))

    def apply(self, statement: Statement) -> psycopg.Cursor[Any]:
        """Execute a write, count it in the ledger, note it in the journal."""
        assert self.conn is not None
        cursor = self.conn.execute(statement.query, statement.params)  # type: ignore[arg-type]
        rows = cursor if statement.rows is None else statement.rows
        whole = len(statement.counts) == 1
        for column, (table, op) in enumerate(statement.counts):
            keys: tuple[Any, ...] | Returning | None = statement.keys
            if statement.each:  # a header and its items: counted and keyed apart
                rows, keys = statement.each[column]
            elif keys is None:
                keys = Returning(cursor, None if whole else column)
            self.count(table, op, rows, keys)
        if self.journal is not None:
            self.journal.append(statement)
        return cursor
