"""Fixtures at suite scale: one server and one template per xdist session,
the clone pool, kept failed databases."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg
import pytest

from pytest_oltpseed.server.embedded import ServerInfo, process_alive

# A downstream conftest that counts, across every process of the session,
# how many clusters start and how many templates are seeded (one line each).
COUNTING_CONFTEST = """
import os
from pytest_oltpseed.seed import seeder
from pytest_oltpseed.server import cluster

_LOG = {log!r}

def _note(what):
    with open(_LOG, "a") as handle:
        handle.write(f"{{what}} {{os.getpid()}}\\n")

_start = cluster.ClusterExecutor.start_cluster
_run = seeder.Seeder.run

def start_cluster(self):
    _note("server")
    return _start(self)

def run(self, *args, **kwargs):
    _note("template")
    return _run(self, *args, **kwargs)

cluster.ClusterExecutor.start_cluster = start_cluster
seeder.Seeder.run = run
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


POOL_SUITE = """
import os
import pytest

@pytest.mark.parametrize("i", range(6))
def test_commits_in_a_clone_of_its_own(oltp_database, i):
    with oltp_database.connect() as conn:
        assert conn.execute("SELECT count(*) FROM medicos").fetchone()[0] == 20
        conn.execute("DELETE FROM exames")
        conn.commit()
    with open({names!r}, "a") as handle:
        handle.write(f"{{oltp_database.dbname}} {{os.getpid()}}\\n")
"""

# Which clones the pool's thread made, per process; and, once a process's
# first test has started that thread, a wait before each test until the pool
# holds a ready clone: the clone that test is given must be one of those.
POOL_CONFTEST = """
import os
import threading
import time

import pytest
from pytest_oltpseed.fixtures import janitor, pool

_MADE = {made!r}
_POOLS = []
_clone, _take = janitor.Janitor.clone, pool.ClonePool.take


def clone(self, template):
    name = _clone(self, template)
    if threading.current_thread().name == "oltpseed-clone-pool":
        with open(_MADE, "a") as handle:
            handle.write(f"{{name}} {{os.getpid()}}\\n")
    return name


def take(self, template):
    _POOLS.append(self)
    return _take(self, template)


janitor.Janitor.clone, pool.ClonePool.take = clone, take


@pytest.fixture(autouse=True)
def _a_ready_clone():
    deadline = time.monotonic() + 60
    while _POOLS and not any(_POOLS[-1]._ready.values()):
        assert time.monotonic() < deadline, "the pool made no clone"
        time.sleep(0.05)
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]])
def test_pool_hands_out_fresh_clones_and_drops_them(
    pytester: pytest.Pytester, clean_env: None, oltp_server: ServerInfo, workers
) -> None:
    names, made = pytester.path / "names.log", pytester.path / "made.log"
    pytester.makeconftest(POOL_CONFTEST.format(made=str(made)))
    pytester.makepyfile(test_pool=POOL_SUITE.format(names=str(names)))
    result = pytester.runpytest_subprocess(
        *workers,
        "--seed-profile=SMALL",
        "--seed-domain=hospital",
        "--seed-pool-size=3",
        f"--seed-dsn={oltp_server.dsn('postgres')}",
    )
    result.assert_outcomes(passed=6)
    used = _lines(names)
    assert len({name for name, _ in used}) == 6  # every test its own clone
    by_process: dict[str, list[str]] = {}
    for name, pid in used:
        by_process.setdefault(pid, []).append(name)
    pooled = {name for name, _ in _lines(made)}
    assert len(by_process) == (2 if workers else 1)
    for names_used in by_process.values():  # after its first test, from the pool
        assert set(names_used[1:]) <= pooled
    assert _clones(oltp_server) == {}  # the spares and the used clones are gone


def test_pool_size_is_checked(pytester: pytest.Pytester, clean_env: None) -> None:
    pytester.makepyfile("def test_one():\n    pass\n")
    result = pytester.runpytest_subprocess("--seed-pool-size=-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*invalid --seed-pool-size='-1'*"])


FAILING = """
def test_fails(oltp_database):
    with oltp_database.connect() as conn:
        conn.execute("CREATE TABLE evidence (x int)")
        conn.commit()
    assert False, "look at the database"

def test_passes(oltp_database):
    pass
"""


def _clones(server: ServerInfo) -> dict[str, str]:
    """Clones left by finished runs (the server is this session's, shared with
    the other xdist worker, whose own clones belong to running processes)."""
    with psycopg.connect(server.dsn("postgres")) as admin:
        return {
            name: comment or ""
            for name, comment in admin.execute(
                "SELECT datname, shobj_description(oid, 'pg_database') "
                "FROM pg_database WHERE datname LIKE 'oltpseed_db_%'"
            )
            if not _running(name)
        }


def test_keep_failed_keeps_the_clone_until_the_next_session(
    pytester: pytest.Pytester, clean_env: None, oltp_server: ServerInfo
) -> None:
    pytester.makepyfile(test_keep=FAILING)
    common = [
        "--seed-profile=SMALL",
        "--seed-domain=hospital",
        f"--seed-dsn={oltp_server.dsn('postgres')}",
        "-p",
        "no:randomly",
    ]
    result = pytester.runpytest_subprocess("--seed-keep-failed", *common)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*oltpseed: kept database*", "oltpseed_db_*: *"])
    kept = _clones(oltp_server)
    assert len(kept) == 1
    (name,) = kept
    assert "test_keep.py::test_fails" in kept[name]
    assert name in result.stdout.str()
    with psycopg.connect(oltp_server.dsn(name)) as conn:  # the state it failed in
        assert conn.execute("SELECT count(*) FROM evidence").fetchone() == (0,)
    # asked again: the earlier kept clone stays, and the new failure is kept too
    result = pytester.runpytest_subprocess("--seed-keep-failed", *common)
    result.assert_outcomes(passed=1, failed=1)
    assert name in _clones(oltp_server)
    assert len(_clones(oltp_server)) == 2
    # not asked: the next session drops them, and keeps nothing of its own
    result = pytester.runpytest_subprocess(*common)
    result.assert_outcomes(passed=1, failed=1)
    assert "kept database" not in result.stdout.str()
    assert _clones(oltp_server) == {}


def test_keep_failed_leaves_the_throwaway_server_until_the_next_session(
    pytester: pytest.Pytester, clean_env: None
) -> None:
    dsn_file = pytester.path / "dsn.txt"
    pytester.makepyfile(
        test_keep=f"""
def test_fails(oltp_database):
    open({str(dsn_file)!r}, "w").write(oltp_database.dsn)
    assert False
"""
    )
    result = pytester.runpytest_subprocess(
        "--seed-keep-failed", "--seed-profile=SMALL", "--seed-domain=hospital"
    )
    result.assert_outcomes(failed=1)
    dsn = dsn_file.read_text()
    with psycopg.connect(dsn) as conn:  # still there after the session
        assert conn.execute("SELECT count(*) FROM medicos").fetchone() == (20,)
    pytester.makepyfile(test_keep="def test_plain(oltp_server):\n    pass\n")
    result = pytester.runpytest_subprocess("--seed-profile=SMALL")
    result.assert_outcomes(passed=1)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=3)


HYPOTHESIS_SUITE = """
from hypothesis import given, settings, strategies as st

@settings(max_examples=15, deadline=None)
@given(st.integers(min_value=1, max_value=5))
def test_each_example_sees_the_seeded_state(oltp_examples, n):
    with oltp_examples.factories() as f:
        assert f.conn.execute("SELECT count(*) FROM medicos").fetchone()[0] == 20
        f.Medico.create_batch(n)
        assert f.conn.execute("SELECT count(*) FROM medicos").fetchone()[0] == 20 + n

@settings(max_examples=5, deadline=None)
@given(st.text(max_size=5))
def test_plain_connection(oltp_examples, text):
    with oltp_examples.connection() as conn:
        conn.execute("DELETE FROM consultas")
        assert conn.execute("SELECT %s::text", (text,)).fetchone() == (text,)
    with oltp_examples.connection() as conn:
        assert conn.execute("SELECT count(*) FROM consultas").fetchone()[0] == 400
"""


def test_hypothesis_examples_with_the_health_check_on(
    pytester: pytest.Pytester, clean_env: None
) -> None:
    pytester.makepyfile(test_given=HYPOTHESIS_SUITE)
    result = pytester.runpytest_subprocess(
        "--seed-profile=SMALL", "--seed-domain=hospital", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=2)
    assert "HealthCheck" not in result.stdout.str()


def _running(clone: str) -> bool:
    """Whether the process that made ``clone`` (``oltpseed_db_<host>_<pid>_...``)
    still runs."""
    host = socket.gethostname()[:20]
    pid = clone.removeprefix(f"oltpseed_db_{host}_").split("_", 1)[0]
    return pid.isdigit() and process_alive(int(pid))
