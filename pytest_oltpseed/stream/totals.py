"""The row totals a stream shows: counted, then kept up by its own commits.

COUNT(*) of the tables at the start and after a reconnect (other writers'
rows included); each committed batch adds its inserts and removes its
deletes; every so often a background recount (:class:`Recount`) replaces the
figures. They are for the progress lines and the summary, never the ledger.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import psycopg

from pytest_oltpseed.db import table_counts


class Recount:
    """The periodic COUNT(*) of the tables, on a connection of its own in a
    thread: on a big database it takes a good part of a second, which a batch
    must not wait for (it was a latency spike every minute). Our own commits
    made while it counted are added on top (the totals are for display)."""

    def __init__(
        self, connect: Callable[[], psycopg.Connection], tables: Sequence[str]
    ) -> None:
        self.connect, self.tables = connect, list(tables)
        self.thread: threading.Thread | None = None
        self.counts: dict[str, int] | None = None
        self.base: Counter[str] = Counter()

    def start(self, own: Counter[str]) -> None:
        if self.thread is not None and self.thread.is_alive():
            return
        self.base, self.counts = Counter(own), None
        self.thread = threading.Thread(
            target=self._count, name="oltpseed-recount", daemon=True
        )
        self.thread.start()

    def _count(self) -> None:
        with contextlib.suppress(Exception):  # the stream's own errors say more
            conn = self.connect()
            try:
                conn.autocommit = True  # no COMMIT of ours on the wire
                counts = table_counts(conn, self.tables)
            finally:
                conn.close()
            self.counts = {t: n or 0 for t, n in counts.items()}

    def take(self, own: Counter[str]) -> dict[str, int] | None:
        """The fresh totals once counted (then None until the next count)."""
        if self.counts is None or (self.thread and self.thread.is_alive()):
            return None
        counts, self.counts = self.counts, None
        return {t: n + own[t] - self.base[t] for t, n in counts.items()}


class Totals:
    """Rows per table now (``current``) and what our own commits added."""

    def __init__(
        self, connect: Callable[[], psycopg.Connection], tables: Sequence[str]
    ) -> None:
        self.tables = list(tables)
        self.current: dict[str, int] = {}
        self.own: Counter[str] = Counter()  # rows added by our commits, per table
        self.recount = Recount(connect, self.tables)

    def resync(self, conn: psycopg.Connection) -> None:
        """COUNT(*) of every table at once, on the stream's connection."""
        counts = table_counts(conn, self.tables)
        conn.rollback()
        self.current = {t: n or 0 for t, n in counts.items()}

    def committed(
        self, changes: Iterable[tuple[str, str, int]], *, settled: bool
    ) -> None:
        """A committed batch's row changes on top of the totals."""
        for table, op, rows in changes:
            if op == "truncate":  # the table is empty now, whatever it held
                self.own[table] -= self.current.get(table, 0)
                self.current[table] = 0
            elif op != "update" and not settled:  # a settled batch: in the resync
                delta = rows if op == "insert" else -rows
                self.current[table] = self.current.get(table, 0) + delta
                self.own[table] += delta

    def start_recount(self) -> None:
        self.recount.start(self.own)

    def take_recount(self) -> None:
        """The background recount's figures, once it has finished."""
        fresh = self.recount.take(self.own)
        if fresh is not None:
            self.current = fresh
