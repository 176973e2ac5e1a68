"""The pytest plugin as a downstream suite uses it (pytester, real subprocesses)."""

from __future__ import annotations

import socket

import psycopg
import pytest
from psycopg import sql

from pytest_oltpseed.server.embedded import ServerInfo, process_alive
from tests.conftest import scratch_database

pytestmark = pytest.mark.slow

SUITE = """
import psycopg
import pytest


def test_every_fixture(oltp_conn, oltp_profile, oltp_factories, oltp_database):
    counts = oltp_profile.counts
    assert oltp_conn.execute("SELECT count(*) FROM pacientes").fetchone()[0] == (
        counts["pacientes"])
    sale = oltp_factories.Sale.create()
    assert sale["total"] == sum(i["subtotal"] for i in sale["items"])
    patient = oltp_factories.Paciente.create()
    assert oltp_conn.execute("SELECT count(*) FROM pacientes WHERE id = %s",
                             (patient["id"],)).fetchone() == (1,)
    assert oltp_database.dbname.startswith("oltpseed_db_")


def test_a_deletes(oltp_conn):
    oltp_conn.execute("DELETE FROM internacoes")
    with oltp_conn.transaction():
        oltp_conn.execute("DELETE FROM exames")
    assert oltp_conn.execute("SELECT count(*) FROM exames").fetchone() == (0,)


def test_b_sees_everything_again(oltp_conn, oltp_profile):
    for table in ("internacoes", "exames"):
        found = oltp_conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        assert found == oltp_profile.count(table)
    assert oltp_conn.execute("SELECT count(*) FROM sales").fetchone()[0] == (
        oltp_profile.count("sales"))


def test_c_commits_in_its_own_database(oltp_database):
    with oltp_database.connect() as first:
        first.execute("DELETE FROM sale_items")
        first.execute("UPDATE sales SET total = 0")
        first.commit()
    with oltp_database.connect() as second:
        assert second.execute("SELECT count(*) FROM sale_items").fetchone() == (0,)


def test_d_commit_is_gone(oltp_database):
    with oltp_database.connect() as conn:
        assert conn.execute("SELECT count(*) FROM sale_items").fetchone()[0] > 0


@pytest.mark.seed_profile("MEDIUM")
def test_e_second_profile(oltp_conn, oltp_profile):
    assert oltp_profile.name == "MEDIUM"
    assert oltp_conn.execute("SELECT count(*) FROM pacientes").fetchone() == (2000,)


@pytest.mark.seed_profile("SMALL")
class TestMarkedClass:
    def test_small(self, oltp_conn):
        assert oltp_conn.execute("SELECT count(*) FROM pacientes").fetchone() == (
            200,)
"""


def test_downstream_suite(pytester: pytest.Pytester, clean_env: None) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess(
        "--seed-profile=SMALL", "--strict-markers", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines(
        ["oltpseed: profile=SMALL domain=all seed=0 server=ephemeral*"]
    )


def test_fixture_factory_module_scope(
    pytester: pytest.Pytester, clean_env: None
) -> None:
    pytester.makeconftest(
        "from pytest_oltpseed.plugin import oltp_database_factory\n"
        "hospital_db = oltp_database_factory('SMALL', domain='hospital', "
        "scope='module')\n"
    )
    pytester.makepyfile(
        "def test_one(hospital_db):\n"
        "    with hospital_db.connect() as c:\n"
        "        assert c.execute('SELECT count(*) FROM medicos').fetchone() == (20,)\n"
        "        assert c.execute(\"SELECT to_regclass('sales')\").fetchone() == "
        "(None,)\n"
        "def test_same_module_same_db(hospital_db):\n"
        "    assert hospital_db.dbname.startswith('oltpseed_db_')\n"
    )
    result = pytester.runpytest_subprocess("--seed-profile=MEDIUM")
    result.assert_outcomes(passed=2)


def test_bad_environment_spares_suites_without_fixtures(
    pytester: pytest.Pytester, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEED_SIZE", "HUGE")  # the application's own meaning
    pytester.makepyfile("def test_plain():\n    assert True\n")
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_commit_on_oltp_conn_is_refused(
    pytester: pytest.Pytester, clean_env: None
) -> None:
    pytester.makepyfile("def test_commit(oltp_conn):\n    oltp_conn.commit()\n")
    result = pytester.runpytest_subprocess(
        "--seed-profile=SMALL", "--seed-domain=hospital"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*commit() is not allowed*request oltp_database*"])


def test_xdist_two_workers(pytester: pytest.Pytester, clean_env: None) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess("-n", "2", "--seed-profile=SMALL")
    result.assert_outcomes(passed=7)


def test_seed_dsn_touches_only_its_databases(
    pytester: pytest.Pytester, clean_env: None, oltp_server: ServerInfo
) -> None:
    with scratch_database(oltp_server, "user") as user_dsn:
        with psycopg.connect(user_dsn) as conn:
            conn.execute("CREATE TABLE precious (x int)")
        host = socket.gethostname()[:20]
        stale = f"oltpseed_db_{host}_999999_1_dead"  # a crashed run's clone
        with psycopg.connect(oltp_server.dsn("postgres"), autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(stale)))
        pytester.makepyfile(test_suite=SUITE)
        seen = []
        for _ in range(2):  # the second run reuses the first run's templates
            result = pytester.runpytest_subprocess(
                "--seed-profile=SMALL", f"--seed-dsn={oltp_server.dsn('postgres')}"
            )
            result.assert_outcomes(passed=7)
            result.stdout.fnmatch_lines(["oltpseed: *server=--seed-dsn*"])
            with psycopg.connect(oltp_server.dsn("postgres")) as admin:
                names = {r[0] for r in admin.execute("SELECT datname FROM pg_database")}
            seen.append({n for n in names if n.startswith("oltpseed_tpl_")})
        assert user_dsn.rsplit("=", 1)[-1] in names
        assert stale not in names
        # this server is the session's, shared with the other xdist worker:
        # only clones of processes that still run (this session's) may remain
        assert not [
            n for n in names if n.startswith("oltpseed_db_") and not _running(n)
        ]
        assert seen[0] == seen[1]  # SMALL and MEDIUM, kept for the next run
        assert {n.split("_")[2] for n in seen[1]} >= {"small", "medium"}
        with psycopg.connect(user_dsn) as conn:
            assert conn.execute("SELECT count(*) FROM precious").fetchone() == (0,)


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--seed-profile=HUGE"], {}, "invalid --seed-profile='HUGE'"),
        ([], {"SEED_SIZE": "HUGE"}, "invalid SEED_SIZE='HUGE'"),
        (
            ["--seed-dsn=postgresql://postgres@127.0.0.1:1/x"],
            {},
            "*cannot reach the seed server*",
        ),
        ([], {"OLTPSEED_PG_BINDIR": "/nonexistent"}, "*apt-get install postgresql*"),
    ],
)
def test_errors_are_one_clear_line(
    pytester: pytest.Pytester,
    clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    expected: str,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    pytester.makepyfile("def test_one(oltp_conn):\n    pass\n")
    result = pytester.runpytest_subprocess(*args)
    assert result.ret != 0
    text = "\n".join(result.outlines + result.errlines)
    assert "Traceback" not in text
    assert expected.strip("*") in text


def _running(clone: str) -> bool:
    """Whether the process that made ``clone`` (``oltpseed_db_<host>_<pid>_...``)
    still runs."""
    host = socket.gethostname()[:20]
    pid = clone.removeprefix(f"oltpseed_db_{host}_").split("_", 1)[0]
    return pid.isdigit() and process_alive(int(pid))
