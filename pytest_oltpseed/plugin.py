"""pytest plugin (entry point ``pytest11``): fixtures over the same core as the CLI.

Importing this module starts nothing: a server starts only when a test asks
for a fixture that needs one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_oltpseed.errors import OltpseedError
from pytest_oltpseed.server import ServerInfo, ephemeral_server


@pytest.fixture(scope="session")
def oltp_server() -> Iterator[ServerInfo]:
    """A throwaway PostgreSQL cluster for the session, root-safe, removed at the end.

    It listens on a free loopback port with ``wal_level=logical``; connect with
    ``oltp_server.dsn()`` (database ``oltpseed``) or ``oltp_server.dsn("other")``.
    """
    try:
        with ephemeral_server() as info:
            yield info
    except OltpseedError as exc:
        pytest.fail(f"oltpseed: {exc}", pytrace=False)
