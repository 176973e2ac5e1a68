"""Pause sentinels: how ``oltpseed pause`` reaches running streams from anywhere.

A stream watches the sentinel of the database it writes into, a file under
the oltpseed home (``$OLTPSEED_HOME/paused/<system identifier>-<oid>``). The
server's system identifier (unique per cluster) and the database's oid name
the target whatever the host name, port alias or working directory used to
reach it, so ``oltpseed pause`` run from any directory with the same
connection settings pauses every stream into that database, and only those.
An explicit pause file (``--pause-file``, ``STREAM_PAUSE_FILE``) is watched
as well, for scripts that pause without a connection.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import psycopg

from pytest_oltpseed.errors import OltpseedError
from pytest_oltpseed.server.embedded import default_home

FOLDER = "paused"


def database_key(conn: psycopg.Connection) -> str:
    """``<system identifier>-<database oid>`` of the connection's database.

    Where ``pg_control_system()`` is not granted (some managed services),
    ``<host>-<port>-<database name>`` as connected instead."""
    try:
        row = conn.execute(
            "SELECT (SELECT system_identifier FROM pg_control_system()), oid "
            "FROM pg_database WHERE datname = current_database()"
        ).fetchone()
    except psycopg.errors.InsufficientPrivilege:
        row = None
    if not conn.autocommit:
        conn.rollback()
    if row is None:
        info = conn.info
        return "-".join(
            str(p).replace("/", "_") for p in (info.host, info.port, info.dbname)
        )
    return f"{row[0]}-{row[1]}"


def database_sentinel(conn: psycopg.Connection, home: Path | None = None) -> Path:
    """The pause sentinel of the connection's database."""
    return (home or default_home()) / FOLDER / database_key(conn)


def watched(
    conn: psycopg.Connection, explicit: Path | None, home: Path | None = None
) -> list[Path]:
    """Every sentinel a stream into ``conn``'s database obeys."""
    paths = [database_sentinel(conn, home)]
    if explicit is not None:
        paths.append(explicit)
    return paths


def pause(path: Path) -> bool:
    """Create the pause sentinel; False when it already existed."""
    if path.exists():
        return False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"paused at {datetime.now().isoformat(timespec='seconds')}\n")
    except OSError as exc:
        raise OltpseedError(
            f"cannot create the pause sentinel {path}: {exc.strerror or exc}"
        ) from None
    return True


def resume(path: Path) -> bool:
    """Remove the pause sentinel; False when there was none."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise OltpseedError(
            f"cannot remove the pause sentinel {path}: {exc.strerror or exc}"
        ) from None
    return True
