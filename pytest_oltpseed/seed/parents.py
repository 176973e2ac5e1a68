"""Parent pools: a parent table's ids (and carried columns), loaded once per
stage and picked uniformly (spec 000 §4.1). Moved out of :mod:`.seeder`."""

from __future__ import annotations

import random
from array import array
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import sql

from pytest_oltpseed.data import columns
from pytest_oltpseed.data.factory import Ref, Row
from pytest_oltpseed.db import table_ident
from pytest_oltpseed.errors import OltpseedError

Picker = Callable[[Any], Ref]


POOL_PAGE = 50_000
_ID_SPAN = """
SELECT min(id), max(id), count(id), EXISTS (
    SELECT 1 FROM pg_index i
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
    WHERE i.indrelid = {name}::regclass AND i.indisunique AND i.indnatts = 1
    AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = 'id')
FROM {table}
"""
"""The ids' span and count, and whether they are unique (then a span as
long as the count is every id)."""
_MICROSECOND = timedelta(microseconds=1)


class ParentPool:
    """Ids and carried columns of a parent table: compact, picked uniformly."""

    def __init__(self, conn: psycopg.Connection, table: str, carry: Sequence[str]):
        self.table = table
        self.carry = tuple(carry)
        self.ids = array("q")
        self.values: dict[str, list[Any]] = {c: [] for c in self.carry}
        if not self.carry and self._contiguous(conn):
            pass  # a freshly seeded table: its ids are one range, none fetched
        else:
            self._fetch(conn)
        self._index: dict[int, int] | None = None
        self._id_array: Any = None
        self._seconds: dict[str, Any] = {}

    def _contiguous(self, conn: psycopg.Connection) -> bool:
        """Take the ids as ``range(min, max + 1)`` when they are exactly that
        (a table seeded in one go: its ``bigserial`` numbered it without a
        gap): one aggregate instead of every id through the wire (200,000
        patients: ~0.5 s of server and transfer under load)."""
        ident = table_ident(self.table)
        row = conn.execute(
            sql.SQL(_ID_SPAN).format(
                table=ident, name=sql.Literal(ident.as_string(conn))
            )
        ).fetchone()
        if not row or not row[3] or not row[2] or row[1] - row[0] + 1 != row[2]:
            return False
        self.ids = array("q", range(row[0], row[1] + 1))
        return True

    def _fetch(self, conn: psycopg.Connection) -> None:
        # Pages by id: a round trip per 50,000 rows, not a wait per row (what
        # ``cursor.stream`` costs), and memory bounded by a page.
        query = sql.SQL("SELECT {} FROM {} WHERE id > %s ORDER BY id LIMIT %s").format(
            sql.SQL(", ").join(map(sql.Identifier, ("id", *self.carry))),
            table_ident(self.table),
        )
        carried = [self.values[c] for c in self.carry]
        last = -(2**63)  # the smallest bigint (ids are integers: see ``ids``)
        with conn.cursor() as cur:
            while True:
                rows = cur.execute(query, (last, POOL_PAGE)).fetchall()
                if not rows:
                    break
                for row in rows:
                    self.ids.append(row[0])
                    for values, value in zip(carried, row[1:], strict=True):
                        values.append(value)
                last = rows[-1][0]
                if len(rows) < POOL_PAGE:
                    break

    def __len__(self) -> int:
        return len(self.ids)

    def ref(self, i: int) -> Ref:
        row = Row(id=self.ids[i])
        for column, values in self.values.items():
            row[column] = values[i]
        return Ref(self.table, row)

    def ref_for(self, parent_id: int) -> Ref:
        if self._index is None:
            self._index = {pid: i for i, pid in enumerate(self.ids)}
        return self.ref(self._index[parent_id])

    def id_array(self) -> Any:
        """The ids as a NumPy array (the column-wise path), built once."""
        if self._id_array is None:
            import numpy as np

            self._id_array = np.frombuffer(self.ids, dtype=np.int64)
        return self._id_array

    def seconds(self, column: str) -> Any:
        """A carried timestamp column as NumPy seconds since the epoch."""
        if column not in self._seconds:
            import numpy as np

            # Exact microseconds since the epoch, floored to seconds as
            # :func:`columns.to_seconds` does. (``np.array(values,
            # "datetime64[us]")`` gives the same in ~9x the time: 1 s for
            # 200,000 patients under load.)
            values = self.values[column]
            try:
                micros = np.fromiter(
                    ((v - columns.EPOCH) // _MICROSECOND for v in values),
                    dtype=np.int64,
                    count=len(values),
                )
            except TypeError:  # a NULL or a date: NumPy's own conversion
                moments = np.array(values, dtype="datetime64[us]")
                seconds = moments.astype(np.int64) // 1_000_000
                # a NULL (NaT) stays the vocabulary's NULL, not a far past
                self._seconds[column] = np.where(
                    np.isnat(moments), columns.NULL_TIME, seconds
                )
                return self._seconds[column]
            self._seconds[column] = micros // 1_000_000
        return self._seconds[column]

    def picker(self, rng: random.Random) -> Picker:
        if not self.ids:
            raise OltpseedError(
                f"{self.table} is empty: seed it first (its profile count is 0?)"
            )
        size, draw = len(self.ids), rng.random
        return lambda _row: self.ref(int(draw() * size))
