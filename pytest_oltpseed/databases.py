"""What the fixtures hand to a test: a cloned database and an isolated connection.

Kept apart from the plugin (a thin shell) and light to import: the plugin
loads with every pytest run, whether or not a test uses it.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg

from pytest_oltpseed.config import conninfo_url, redact
from pytest_oltpseed.errors import OltpseedError


@dataclass(frozen=True)
class OltpDatabase:
    """A fresh database cloned from the seeded template, dropped after the test.

    ``dsn`` is a libpq conninfo and ``url`` a ``postgresql://`` URL (for
    SQLAlchemy); the repr masks the password so tracebacks never show it.
    """

    dsn: str = field(repr=False)
    dbname: str

    @property
    def url(self) -> str:
        return conninfo_url(self.dsn)

    def connect(self, **kwargs: Any) -> psycopg.Connection:
        return psycopg.connect(self.dsn, **kwargs)

    def __repr__(self) -> str:
        return f"OltpDatabase(dbname={self.dbname!r}, dsn={redact(self.dsn)!r})"


class IsolatedConnection(psycopg.Connection):
    """The oltp_conn connection: everything a test does is rolled back after it.

    Each test runs inside a transaction and a savepoint taken at its start.
    ``commit()`` would break that promise for the next test, so it fails with
    a message pointing at ``oltp_database``. ``rollback()`` rolls back to the
    test's savepoint: it discards what the test wrote so far (factory rows
    included), as a real rollback discards uncommitted work, while the test
    stays inside its transaction, so later statements are still undone after
    it. ``conn.transaction()`` blocks work (they become savepoints).
    """

    _SAVEPOINT = "oltpseed_test"
    _in_test = False

    def commit(self) -> None:
        raise OltpseedError(
            "oltp_conn rolls every test back, so commit() is not allowed; request "
            "oltp_database for a database of the test's own that may commit"
        )

    def rollback(self) -> None:
        if not self._in_test:
            super().rollback()
            return
        if self._num_transactions:
            super().rollback()  # psycopg's own error: rollback inside transaction()
        self.execute(f"ROLLBACK TO SAVEPOINT {self._SAVEPOINT}")

    def begin_test(self) -> None:
        """Open the test's transaction and its savepoint.

        Opening it now also makes a test's own ``conn.transaction()`` blocks
        savepoints instead of transactions that commit.
        """
        self.execute(f"SAVEPOINT {self._SAVEPOINT}")
        self._in_test = True

    def end_test(self) -> None:
        """Roll the whole test back."""
        self._in_test = False
        if not self.closed:
            super().rollback()


class Examples:
    """The ``oltp_examples`` fixture: a seeded connection per hypothesis example.

    ``@given`` tests may not use function-scoped fixtures (hypothesis' health
    check: the fixture would be shared by every example, so one example's rows
    would leak into the next). This fixture is session-scoped; each example
    opens ``with oltp_examples.connection() as conn:`` and everything it does
    is rolled back when the block ends.
    """

    def __init__(self, connect: Callable[[], IsolatedConnection], seed: int) -> None:
        self._connect = connect
        self.seed = seed

    @contextlib.contextmanager
    def connection(self) -> Iterator[IsolatedConnection]:
        """The seeded connection, in a transaction rolled back after the block."""
        conn = self._connect()
        conn.begin_test()
        try:
            yield conn
        finally:
            conn.end_test()

    @contextlib.contextmanager
    def factories(self) -> Iterator[types.SimpleNamespace]:
        """As ``oltp_factories``, bound to a connection rolled back after the block
        (the connection is ``.conn`` on what it yields)."""
        from pytest_oltpseed.factory import all_factories, bind

        with self.connection() as conn, bind(conn, seed=self.seed):
            yield types.SimpleNamespace(conn=conn, **all_factories())
