"""Shared test fixtures: a real server (the plugin's own), fresh databases, the CLI.

Every test that needs PostgreSQL gets it from ``oltp_server`` (an ephemeral
cluster started by this project, root-safe) and a database of its own.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pytest_oltpseed.server.embedded import ServerInfo, ephemeral_server

# Variables a developer's shell may carry that would steer the CLI under test.
_STEERING_PREFIXES = (
    "PG",
    "DATABASE_URL",
    "APP_ENV",
    "RENDER",
    "FORCE_SEED",
    "DRY_RUN",
    "SEED_",
    "LOG_",
    "OLTPSEED_",
    "STREAM_",
    "BATCH_SIZE",
    "MAX_JITTER_MS",
)


@contextlib.contextmanager
def scratch_database(server: ServerInfo, prefix: str = "t") -> Iterator[str]:
    """A new, empty database on ``server`` for the block; its conninfo."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield server.dsn(name)
    finally:
        with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
            )


@pytest.fixture(scope="session")
def oltp_server() -> Iterator[ServerInfo]:
    """A throwaway server per process (per xdist worker), not the plugin's one
    shared by every worker: many of these tests make server-wide objects
    (replication slots of `oltpseed cdc start`'s default name, roles, the
    sentinel of a database) and would meet across workers. The shared server
    itself is tested through pytester (tests/test_suite_scale.py)."""
    with ephemeral_server() as info:
        yield info


@pytest.fixture
def database(oltp_server: ServerInfo) -> Iterator[str]:
    """A new, empty database on the session's server; its conninfo."""
    with scratch_database(oltp_server) as dsn:
        yield dsn


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """An environment with no ambient configuration: only what a test sets."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_STEERING_PREFIXES)
    }
    (tmp_path / "config").mkdir()
    env["OLTPSEED_CONFIG_DIR"] = str(tmp_path / "config")
    env["LOG_DIR"] = str(tmp_path / "logs")
    return env


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ambient configuration for a pytester suite run in a subprocess."""
    for key in list(os.environ):
        if key.startswith(("SEED_", "PG", "DATABASE_URL", "APP_ENV", "OLTPSEED_")):
            monkeypatch.delenv(key)


@pytest.fixture
def server_home() -> Iterator[Path]:
    """A home for an embedded server that the unprivileged runner can reach.

    pytest's tmp_path sits under a 0700 directory of root's, which the account
    PostgreSQL runs as cannot enter, so this one is made directly in /tmp.
    """
    home = Path(tempfile.mkdtemp(prefix="oltpseed-home-"))
    yield home
    subprocess.run(
        [sys.executable, "-m", "pytest_oltpseed", "server", "stop"],
        env={**os.environ, "OLTPSEED_HOME": str(home)},
        capture_output=True,
        check=False,
    )
    subprocess.run(["rm", "-rf", str(home)], check=False)


def as_user(uid: int | None = None) -> list[str]:
    """A command prefix that runs as ``uid`` (default: ``nobody``) when we are
    root, who reads and writes anything: a permission is only tested as a
    user. Empty when we are not root; skips the test without ``setpriv``."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv is needed to drop root")
    gid = uid
    if uid is None:
        nobody = pwd.getpwnam("nobody")
        uid, gid = nobody.pw_uid, nobody.pw_gid
    return [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]


def run_cli(
    *args: str,
    env: dict[str, str],
    cwd: Path | None = None,
    timeout: float = 120,
    user: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pytest_oltpseed`` exactly as a user's shell would
    (``user``: a prefix from :func:`as_user`)."""
    return subprocess.run(
        [*user, sys.executable, "-m", "pytest_oltpseed", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_probe(
    probe: str, *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run ``probe`` (Python source that calls the CLI and reports what it
    loaded) in a fresh interpreter, with ``args`` as its ``sys.argv[1:]``."""
    return subprocess.run(
        [sys.executable, "-c", probe, *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def tables_in(conninfo: str) -> set[str]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {row[0] for row in rows}
