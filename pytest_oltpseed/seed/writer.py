"""COPY for one stage: straight into its table, or through a staging table
and ``ON CONFLICT DO NOTHING`` for idempotent tables. Moved out of :mod:`.seeder`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from pytest_oltpseed.data.factory import Parent, Ref, Row, SQLFactory, factory_for
from pytest_oltpseed.db import has_rows, table_ident
from pytest_oltpseed.seed.ids import next_values

if TYPE_CHECKING:
    from pytest_oltpseed.seed.seeder import Seeder, Stage, StageResult


def _rows(values: Iterable[Sequence[Any]]) -> Callable[[psycopg.Copy], None]:
    """A COPY feed writing ``values`` row by row (psycopg adapts each value)."""

    def feed(copy: psycopg.Copy) -> None:
        for value in values:
            copy.write_row(value)

    return feed


class _Writer:
    """COPY for one stage: straight in, or through staging for idempotent tables."""

    def __init__(
        self, conn: psycopg.Connection, stage: Stage, *, key: str | None = None
    ) -> None:
        """``key``: the key column the COPY text carries first (see
        :mod:`.ids`); otherwise its default fills it."""
        self.conn = conn
        self.stage = stage
        self.factory = stage.factory
        self.columns = self.factory.column_names()
        if key is not None:
            self.columns = [key, *self.columns]
        self.binary = False  # write_text's data is binary COPY (see .binary)
        self.items = [
            (name, items, factory_for(items.table))
            for name, items in self.factory._items()
        ]
        self.staging: sql.Identifier | None = None
        # An empty table cannot conflict with rows whose keys are unique by
        # construction: COPY straight in. Otherwise stage, then upsert.
        if stage.idempotent and has_rows(conn, table_ident(stage.table)):
            self.staging = sql.Identifier(f"oltpseed_stage_{stage.table}")
            conn.execute(
                sql.SQL(
                    "CREATE TEMP TABLE {s} ON COMMIT DROP AS SELECT {c} FROM {t} "
                    "WITH NO DATA"
                ).format(
                    s=self.staging,
                    c=self._cols(self.columns),
                    t=table_ident(stage.table),
                )
            )

    @staticmethod
    def _cols(names: Sequence[str]) -> sql.Composable:
        return sql.SQL(", ").join(map(sql.Identifier, names))

    def _copy(
        self,
        table: sql.Identifier,
        columns: Sequence[str],
        feed: Callable[[psycopg.Copy], object],
        binary: bool = False,
    ) -> None:
        statement = sql.SQL("COPY {} ({}) FROM STDIN{}").format(
            table,
            self._cols(columns),
            sql.SQL(" (FORMAT BINARY)" if binary else ""),
        )
        with self.conn.cursor() as cur, cur.copy(statement) as copy:
            feed(copy)

    def write(self, rows: list[Row], result: StageResult) -> None:
        """Land header rows (allocating ids when they have items), then items."""
        columns = list(self.columns)
        if self.items:
            ids = next_values(self.conn, self.stage.table, len(rows))
            for row, new_id in zip(rows, ids, strict=True):
                row["id"] = new_id
            columns = ["id", *columns]
        self._land(
            len(rows), result, _rows(self._values(rows, columns, self.factory)), columns
        )
        for name, items, child in self.items:
            child_columns = child.column_names()
            children = []
            for row in rows:
                for item in row[name]:
                    item[items.fk] = row["id"]
                    children.append(item)
            self._copy(
                table_ident(items.table),
                child_columns,
                _rows(self._values(children, child_columns, child)),
            )
            result.items[items.table] += len(children)

    def write_text(self, data: bytes, rows: int, result: StageResult) -> None:
        """Land ``rows`` rows given as COPY data (the chunked path): text, or
        binary when :attr:`binary` says so."""
        self._land(
            rows, result, lambda copy: copy.write(data), self.columns, self.binary
        )

    def _land(
        self,
        rows: int,
        result: StageResult,
        feed: Callable[[psycopg.Copy], object],
        columns: Sequence[str],
        binary: bool = False,
    ) -> None:
        """COPY into the table, or into staging then upsert; count what landed."""
        self._copy(self.staging or table_ident(self.stage.table), columns, feed, binary)
        if self.staging is None:
            result.written += rows
            return
        with self.conn.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "INSERT INTO {t} ({c}) SELECT {c} FROM {s} ON CONFLICT DO NOTHING"
                ).format(
                    t=table_ident(self.stage.table),
                    c=self._cols(columns),
                    s=self.staging,
                )
            )
            inserted = max(cur.rowcount, 0)
            cur.execute(sql.SQL("TRUNCATE {}").format(self.staging))
        result.written += inserted
        result.skipped += rows - inserted

    @staticmethod
    def _values(
        rows: list[Row], columns: Sequence[str], factory: type[SQLFactory]
    ) -> Iterator[list[Any]]:
        """Rows as COPY values; FK columns holding a Ref become the parent id."""
        parents = {n for n, kind, _ in factory._plan() if kind is Parent}
        refs = [i for i, c in enumerate(columns) if c in parents]
        for row in rows:
            values = [row[c] for c in columns]
            for i in refs:
                if type(values[i]) is Ref:
                    values[i] = values[i].row["id"]
            yield values


def pipeline(
    seeder: Seeder, stage: Stage, jobs: Iterable[tuple[int, Callable[[], object]]]
) -> None:
    """Run each ``(rows, copy)`` job of ``jobs`` on a writer thread while the
    generator makes the next one: the server ingests batch n as the client
    generates batch n+1. Progress is reported per job; a failed COPY raises
    here, and none is left running on the way out."""
    done = 0
    with ThreadPoolExecutor(1, thread_name_prefix="oltpseed-copy") as pool:
        pending: Future[object] | None = None
        try:
            for rows, copy in jobs:
                if pending:
                    pending.result()
                pending = pool.submit(copy)
                done += rows
                if seeder.progress:
                    seeder.progress(stage, done)
            if pending:
                pending.result()
        finally:
            if pending and not pending.done():
                wait([pending])
