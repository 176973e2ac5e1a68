"""Fixtures at suite scale: one server and one template per xdist session,
the clone pool, kept failed databases."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

# A downstream conftest that counts, across every process of the session,
# how many clusters start and how many templates are seeded (one line each).
COUNTING_CONFTEST = """
import os
from pytest_oltpseed import seeding, server

_LOG = {log!r}

def _note(what):
    with open(_LOG, "a") as handle:
        handle.write(f"{{what}} {{os.getpid()}}\\n")

_start = server.ClusterExecutor.start_cluster
_run = seeding.Seeder.run

def start_cluster(self):
    _note("server")
    return _start(self)

def run(self, *args, **kwargs):
    _note("template")
    return _run(self, *args, **kwargs)

server.ClusterExecutor.start_cluster = start_cluster
seeding.Seeder.run = run
"""

SUITE = """
import os
import pytest

def _where(oltp_server):
    with open({seen!r}, "a") as handle:
        handle.write(f"{{oltp_server.port}} {{os.getpid()}}\\n")

@pytest.mark.parametrize("i", range(8))
def test_small(oltp_server, oltp_database, oltp_profile, i):
    _where(oltp_server)
    assert oltp_profile.name == "SMALL"
    with oltp_database.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pacientes").fetchone()[0] == 200

@pytest.mark.seed_profile("MEDIUM")
@pytest.mark.parametrize("i", range(4))
def test_medium(oltp_server, oltp_conn, oltp_profile, i):
    _where(oltp_server)
    assert oltp_conn.execute("SELECT count(*) FROM pacientes").fetchone()[0] == 2000
"""


def _lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()]


def test_xdist_session_shares_one_server_and_each_template(
    pytester: pytest.Pytester, clean_env: None
) -> None:
    log, seen = pytester.path / "events.log", pytester.path / "seen.log"
    pytester.makeconftest(COUNTING_CONFTEST.format(log=str(log)))
    pytester.makepyfile(test_suite=SUITE.format(seen=str(seen)))
    result = pytester.runpytest_subprocess(
        "-n", "4", "--seed-profile=SMALL", "--seed-domain=hospital"
    )
    result.assert_outcomes(passed=12)
    events = _lines(log)
    assert [e for e, _ in events].count("server") == 1
    assert [e for e, _ in events].count("template") == 2  # SMALL and MEDIUM
    ports = {port for port, _ in _lines(seen)}
    workers = {pid for _, pid in _lines(seen)}
    assert len(ports) == 1
    assert len(workers) > 1
    (port,) = ports  # the controller stopped it after the last worker
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(f"host=127.0.0.1 port={port} user=postgres", connect_timeout=3)
