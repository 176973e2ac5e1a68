"""Helpers for the stream tests: seeded databases, a running stream, a faulty proxy."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg

from pytest_oltpseed import db
from pytest_oltpseed.domains import schema, select, tables_of
from pytest_oltpseed.profiles import resolve
from pytest_oltpseed.seed.seeder import Seeder, plan


def seed(dsn: str, profile: str = "SMALL", domain: str = "all") -> None:
    """Install and seed ``domain`` at ``profile`` (in process: quick)."""
    with psycopg.connect(dsn) as conn:
        schema.install(conn, select(domain))
        Seeder(conn).run(plan(select(domain), resolve(profile)))


def counts(dsn: str, domain: str = "all") -> dict[str, int]:
    tables = tables_of(select(domain))
    with psycopg.connect(dsn) as conn:
        return {t: n or 0 for t, n in db.table_counts(conn, tables).items()}


def assert_reconciled(
    before: dict[str, int], after: dict[str, int], report: dict[str, Any]
) -> None:
    """Every table's row-count change equals the report's inserts - deletes."""
    for table, ops in report["tables"].items():
        assert after[table] - before[table] == ops["insert"] - ops["delete"], table


def stream_env(cli_env: dict[str, str], **extra: str) -> dict[str, str]:
    """A quick-reconnecting stream environment with its own application name."""
    return {
        **cli_env,
        "STREAM_RECONNECT_BASE_SECONDS": "0.2",
        "STREAM_RECONNECT_MAX_SECONDS": "1",
        "STREAM_RECONNECT_ATTEMPTS": "20",
        "PG_APPLICATION_NAME": f"oltpseed-test-{os.getpid()}-{time.monotonic_ns()}",
        **extra,
    }


def start_stream(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest_oltpseed", "stream", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_report(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def wait_for(check: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            if check():
                return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or check}")


def committed_in(path: Path) -> int:
    """Events committed so far, from the report the stream refreshes."""
    return int(read_report(path)["events"]["committed"])


def terminate_backends(dsn: str, application_name: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name,),
        ).fetchall()
    return len(rows)


COMMIT_DONE = b"C\x00\x00\x00\x0bCOMMIT\x00"  # CommandComplete "COMMIT"


class AckDropper:
    """A TCP proxy to PostgreSQL that, once armed, forwards a COMMIT to the
    server and then cuts the connection instead of relaying its answer:
    the transaction is committed, the client never hears so."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed = False
        self.dropped = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            pair = (client, server)
            threading.Thread(
                target=self._pump, args=(client, server, pair, False), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(server, client, pair, True), daemon=True
            ).start()

    def _pump(
        self,
        source: socket.socket,
        sink: socket.socket,
        pair: tuple[socket.socket, socket.socket],
        from_server: bool,
    ) -> None:
        try:
            while data := source.recv(65536):
                if from_server and COMMIT_DONE in data:
                    with self._lock:
                        drop, self.armed = self.armed, False
                        self.dropped += drop
                    if drop:
                        break
                sink.sendall(data)
        except OSError:
            pass
        for end in pair:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                end.close()

    def close(self) -> None:
        self.listener.close()


@contextlib.contextmanager
def ack_dropper(host: str, port: int) -> Iterator[AckDropper]:
    proxy = AckDropper(host, port)
    try:
        yield proxy
    finally:
        proxy.close()


def restart_server(datadir: Path, down_s: float = 2.0) -> None:
    """Stop a test's own cluster (fast: open transactions roll back, clients are
    cut off), keep it down ``down_s``, start it again with the options it ran
    with (``postmaster.opts``), waiting until it accepts connections.

    Goes through the layout's root-safe ``pg_ctl`` wrapper when there is one,
    as :func:`~pytest_oltpseed.server.embedded.remove_cluster` does."""
    wrapper = datadir.parent.parent / "bin" / "pg_ctl"
    pg_ctl = str(wrapper) if wrapper.exists() else "pg_ctl"
    argv = shlex.split((datadir / "postmaster.opts").read_text())[1:]
    while "-D" in argv:  # pg_ctl passes its own -D
        at = argv.index("-D")
        del argv[at : at + 2]
    log = datadir.parent / "postgresql.log"
    subprocess.run(
        [pg_ctl, "stop", "-D", str(datadir), "-m", "fast", "-w"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    time.sleep(down_s)
    subprocess.run(
        [pg_ctl, "start", "-D", str(datadir), "-w", "-l", str(log),
         "-o", shlex.join(argv)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
