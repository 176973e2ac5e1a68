"""Parent rows a context finds: behind an FK value (kept in a bounded LRU
cache), or picked at random among a table's rows. A part of
:class:`~pytest_oltpseed.data.context.Context`."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pytest_oltpseed.data.drawing import Drawing
from pytest_oltpseed.data.rows import Ref, Row
from pytest_oltpseed.db import table_ident
from pytest_oltpseed.errors import OltpseedError

ROW_CACHE = 20_000  # parent rows kept for lookups by id (LRU): bounded for long runs


class Lookups(Drawing):
    """Context's parent lookups (a mixin; state set by ``Context``)."""

    conn: psycopg.Connection | None
    _rows: OrderedDict[tuple[str, int], Mapping[str, Any]]
    _id_range: dict[str, tuple[int, int]]

    def parent(self, value: Any, table: str | None = None) -> Mapping[str, Any]:
        """The parent row behind an FK value (a Ref, a row, or an id to look up)."""
        if isinstance(value, Ref):
            return value.row
        if isinstance(value, Mapping):
            return value
        if table is None or self.conn is None:
            raise OltpseedError(
                f"cannot look up {table} id {value}: no connection bound"
            )
        key = (table, int(value))
        cached = self._rows.get(key)
        if cached is not None:
            self._rows.move_to_end(key)
            return cached
        with self.conn.cursor(row_factory=dict_row) as cur:
            found = cur.execute(
                sql.SQL("SELECT * FROM {} WHERE id = %s").format(table_ident(table)),
                (value,),
            ).fetchone()
        if found is None:
            raise OltpseedError(f"{table} has no row with id {value}")
        self.remember(table, Row(found))
        return self._rows[key]

    def remember(self, table: str, row: Mapping[str, Any]) -> None:
        """Keep ``row`` for lookups by id (least recently used rows go first).

        Rows of tables keyed otherwise (a generated domain's ``film_id``,
        composite keys) are not kept: nothing looks them up by id.
        """
        key = row.get("id")
        if not isinstance(key, int):
            return
        self._rows[(table, key)] = row
        if len(self._rows) > ROW_CACHE:
            self._rows.popitem(last=False)

    def pick(
        self,
        table: str,
        where: sql.Composable | None = None,
        params: Sequence[Any] = (),
    ) -> Row | None:
        """A random existing row of ``table`` (optionally filtered), or ``None``."""
        if self.conn is None:
            return None
        ident = table_ident(table)
        bounds = self._id_range.get(table)
        if bounds is None:
            found = self.conn.execute(
                sql.SQL("SELECT min(id), max(id) FROM {}").format(ident)
            ).fetchone()
            if not found or found[0] is None:
                return None
            bounds = self._id_range[table] = (int(found[0]), int(found[1]))
        start = self.randint(*bounds)
        condition = where if where is not None else sql.SQL("true")
        query = sql.SQL(
            "(SELECT * FROM {t} AS t WHERE id >= %s AND {c} ORDER BY id LIMIT 1) "
            "UNION ALL (SELECT * FROM {t} AS t WHERE id < %s AND {c} "
            "ORDER BY id LIMIT 1) LIMIT 1"
        ).format(t=ident, c=condition)
        with self.conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(query, (start, *params, start, *params)).fetchone()
        return Row(row) if row else None

    def forget_ids(self, table: str) -> None:
        """Drop the cached id range of ``table`` (after inserts or deletes)."""
        self._id_range.pop(table, None)
