"""``oltpseed server ...``: the embedded PostgreSQL server's life cycle.

Everything about the cluster (initdb, ports, root-safe start) lives in
:mod:`pytest_oltpseed.server.embedded`.
"""

from __future__ import annotations

import typer

from pytest_oltpseed.cli.options import out
from pytest_oltpseed.errors import ServerError


def server_start() -> None:
    """Start the embedded server, or reuse it when it already runs."""
    from pytest_oltpseed.server.embedded import EmbeddedServer

    info, started = EmbeddedServer().start()
    out.print(f"{'started' if started else 'already running'}: {info.url}")


def server_stop() -> None:
    """Stop the embedded server (its data is kept for the next start)."""
    from pytest_oltpseed.server.embedded import EmbeddedServer

    stopped = EmbeddedServer().stop()
    out.print("stopped" if stopped else "not running")


def server_status() -> None:
    """Say whether the embedded server runs (exit 0) or not (exit 1)."""
    from pytest_oltpseed.server.embedded import EmbeddedServer

    server = EmbeddedServer()
    info = server.status()
    if info is None:
        out.print(f"not running (data directory: {server.home})")
        raise typer.Exit(1)
    out.print(f"running: {info.url} (data directory: {info.datadir})")


def server_dsn() -> None:
    """Print the embedded server's URL, for DATABASE_URL or psql."""
    from pytest_oltpseed.server.embedded import EmbeddedServer

    info = EmbeddedServer().status()
    if info is None:
        raise ServerError("the embedded server is not running: oltpseed server start")
    out.print(info.url, soft_wrap=True)
