"""What the benchmarks share: a fresh database, and ``oltpseed stream`` run as
a user runs it, returning its ``--report``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pytest_oltpseed.domains import schema, select
from pytest_oltpseed.profiles import resolve
from pytest_oltpseed.seed.seeder import Seeder, plan
from pytest_oltpseed.server.embedded import ServerInfo

# Variables of the caller's shell that would steer the CLI elsewhere.
STEERING = ("PG", "DATABASE_URL", "STREAM_", "BATCH_SIZE")


def fresh_database(
    server: ServerInfo, name: str, domain: str | None, profile: str | None = None
) -> str:
    """An empty database ``name`` (dropped first), with ``domain``'s schema and,
    given a ``profile``, seeded at it in process; its conninfo."""
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as admin:
        ident = sql.Identifier(name)
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(ident))
    if domain:
        with psycopg.connect(server.dsn(name)) as conn:
            schema.install(conn, select(domain))
            if profile:
                Seeder(conn).run(plan(select(domain), resolve(profile)))
    return server.dsn(name)


def stream(dsn: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``oltpseed stream --dsn DSN ARGS`` in its own process; its report.

    ``env``: the process's environment instead of this one's (another
    checkout's code first on PYTHONPATH)."""
    with tempfile.TemporaryDirectory() as work:
        report = Path(work) / "report.json"
        given = os.environ if env is None else env
        env = {k: v for k, v in given.items() if not k.startswith(STEERING)}
        env["LOG_DIR"] = str(Path(work) / "logs")
        done = subprocess.run(
            [sys.executable, "-m", "pytest_oltpseed", "stream", "--dsn", dsn,
             "--progress", "0", "--report", str(report), *args],
            env=env, capture_output=True, text=True, check=False, cwd=work,
        )  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"stream failed: {done.stderr.strip()}")
        return dict(json.loads(report.read_text()))
