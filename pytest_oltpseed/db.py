"""Connections: resolve the target, connect, report failures in one line."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql

from pytest_oltpseed.config import Settings, describe
from pytest_oltpseed.errors import DatabaseUnavailable


def table_ident(table: str) -> sql.Identifier:
    """A domain table's identifier. A generated domain over several schemas
    (or one other than ``public``) names its tables ``schema.table``; that
    becomes a qualified identifier, while a bare name still resolves through
    ``search_path`` as the built-in domains expect."""
    schema, dot, name = table.partition(".")
    return sql.Identifier(schema, name) if dot else sql.Identifier(table)


def regclass_names(conn: psycopg.Connection[Any], tables: Sequence[str]) -> list[str]:
    """``tables`` as text that ``::regclass`` reads back as the same tables:
    quoted where a name needs it (a bare ``Order`` would fold to ``order``)."""
    return [table_ident(t).as_string(conn) for t in tables]


def has_rows(conn: psycopg.Connection[Any], table: sql.Composable) -> bool:
    """Whether ``table`` has a row (the scan stops at the first one)."""
    row = conn.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(table)
    ).fetchone()
    return bool(row and row[0])


def resolve_conninfo(settings: Settings, announce: Callable[[str], None]) -> str:
    """The configured conninfo; with none configured, the embedded server's.

    The embedded server is started if needed, and ``announce`` gets one line
    saying so: a user should never wonder which database was written.
    """
    if settings.connection.conninfo is not None:
        if settings.connection.note:
            announce(settings.connection.note)
        return settings.connection.conninfo
    # imported here: a --dsn run never pays for the server's process tooling
    from pytest_oltpseed.server.embedded import EmbeddedServer

    info, started = EmbeddedServer().start()
    verb = "started" if started else "using"
    announce(
        f"no connection configured (--dsn, DATABASE_URL, PG_*): {verb} the "
        f"embedded server {info.url} (stop it with: oltpseed server stop)"
    )
    return info.dsn()


def connect(
    conninfo: str, settings: Settings, *, autocommit: bool = False
) -> psycopg.Connection:
    """Connect with the timeout, application name and search_path of the settings."""
    try:
        conn = psycopg.connect(
            conninfo,
            autocommit=True,
            connect_timeout=settings.connect_timeout,
            application_name=settings.application_name,
            options=f"-c search_path={settings.search_path}",
        )
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {describe(conninfo)}: {first_line(exc)}"
        ) from None
    # spec 002: validate the connection before any work. In autocommit, so it
    # is one round trip (not BEGIN, SELECT, ROLLBACK) and leaves no
    # transaction open; the caller's mode is set afterwards, client side.
    conn.execute("SELECT 1")
    conn.autocommit = autocommit
    return conn


@contextlib.contextmanager
def session(
    settings: Settings, announce: Callable[[str], None], *, autocommit: bool = False
) -> Iterator[psycopg.Connection]:
    """Resolve, connect and close: the one way commands open their connection."""
    with connect(
        resolve_conninfo(settings, announce), settings, autocommit=autocommit
    ) as conn:
        yield conn


def first_line(exc: BaseException) -> str:
    """A driver error reduced to its first meaningful line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def present_tables(conn: psycopg.Connection, tables: Sequence[str]) -> set[str]:
    """Which of ``tables`` exist in the connection's search_path."""
    rows = conn.execute(
        "SELECT t FROM unnest(%s::text[]) AS t WHERE to_regclass(t) IS NOT NULL",
        (list(tables),),
    ).fetchall()
    return {row[0] for row in rows}


def table_counts(
    conn: psycopg.Connection, tables: Sequence[str]
) -> dict[str, int | None]:
    """Exact row counts; ``None`` for a table that is not installed.

    Two round trips whatever the number of tables (which exist, then one
    ``SELECT`` of a count per table), all counted in one snapshot.
    """
    present = present_tables(conn, tables)
    counted = [table for table in tables if table in present]
    found: dict[str, int] = {}
    if counted:
        query = sql.SQL("SELECT {}").format(
            sql.SQL(", ").join(
                sql.SQL("(SELECT count(*) FROM {})").format(table_ident(table))
                for table in counted
            )
        )
        row = conn.execute(query).fetchone()
        assert row is not None
        found = dict(zip(counted, map(int, row), strict=True))
    return {table: found.get(table) for table in tables}
