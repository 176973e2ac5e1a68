"""Plugin correctness as a downstream suite meets it (issue 18), with pytester:
roles sharing a --seed-dsn server, oltp_server on that server, no password in
output, keywords that link or raise, insertable strategy rows, exact counts,
rollback() inside the test, template cleanup and SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from pytest_oltpseed.fixtures.janitor import Janitor, TemplateError
from pytest_oltpseed.server.embedded import ServerInfo, process_alive
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def role(
    server: ServerInfo, *, createdb: bool = True, password: str | None = None
) -> Iterator[str]:
    """A login role on ``server`` for the block; dropped with all it owns."""
    name = f"r_{uuid.uuid4().hex[:8]}"
    options = sql.SQL("LOGIN CREATEDB" if createdb else "LOGIN")
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} {} PASSWORD {}").format(
                sql.Identifier(name), options, sql.Literal(password)
            )
        )
    try:
        yield name
    finally:
        with psycopg.connect(server.dsn("postgres"), autocommit=True) as admin:
            owned = admin.execute(
                "SELECT datname FROM pg_database WHERE datdba = "
                "(SELECT oid FROM pg_roles WHERE rolname = %s)",
                (name,),
            ).fetchall()
            for (dbname,) in owned:
                admin.execute(
                    sql.SQL("DROP DATABASE {} WITH (FORCE)").format(
                        sql.Identifier(dbname)
                    )
                )
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def as_role(server: ServerInfo, name: str, password: str | None = None) -> str:
    return make_conninfo(
        host=server.host,
        port=str(server.port),
        user=name,
        password=password,
        dbname="postgres",
    )


def running(pid: int) -> bool:
    """Alive and not a zombie (a container's init may never reap the server)."""
    if not process_alive(pid):
        return False
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


OWNERSHIP_SUITE = """
import psycopg


def test_clone_and_tables_are_mine(oltp_database):
    with oltp_database.connect() as conn:
        me = conn.execute("SELECT current_user").fetchone()[0]
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database "
            "WHERE datname = current_database()"
        ).fetchone()[0]
        tables = conn.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        conn.execute("DELETE FROM exames")
        conn.commit()
    assert owner == me
    assert tables == [(me,)]


def test_conn(oltp_conn, oltp_profile):
    found = oltp_conn.execute("SELECT count(*) FROM pacientes").fetchone()[0]
    assert found == oltp_profile.counts["pacientes"]
"""


def test_two_roles_share_a_seed_dsn_server(
    pytester: pytest.Pytester,
    clean_env: None,
    oltp_server: ServerInfo,
    cli_env: dict[str, str],
) -> None:
    pytester.makepyfile(test_roles=OWNERSHIP_SUITE)
    with role(oltp_server) as first, role(oltp_server) as second:
        for name in (first, second, first):  # the third run reuses the template
            result = pytester.runpytest_subprocess(
                "--seed-profile=SMALL",
                "--seed-domain=hospital",
                f"--seed-dsn={as_role(oltp_server, name)}",
                "-p",
                "no:cacheprovider",
            )
            result.assert_outcomes(passed=2)
        janitor = Janitor.on(oltp_server.dsn("postgres"))
        owners = sorted(t.owner for t in janitor.templates() if t.owner != "postgres")
        assert owners == sorted([first, second])  # one template each

        # a template that is not the role's own: one line that names its owner
        theirs = next(t.name for t in janitor.templates() if t.owner == first)
        with pytest.raises(TemplateError, match=f"owned by '{first}'"):
            Janitor.on(as_role(oltp_server, second)).clone(theirs)

        # cleanup drops only the calling role's templates, and is guarded
        dsn = as_role(oltp_server, second)
        listed = run_cli("templates", "list", "--dsn", dsn, env=cli_env)
        assert listed.returncode == 0, listed.stderr
        assert theirs in listed.stdout and first in listed.stdout
        refused = run_cli(
            "templates", "drop", "--dsn", dsn, env={**cli_env, "APP_ENV": "PROD"}
        )
        assert refused.returncode == 3 and "refusing" in refused.stderr
        not_mine = run_cli("templates", "drop", theirs, "--dsn", dsn, env=cli_env)
        assert not_mine.returncode == 1
        assert f"not an oltpseed template owned by '{second}'" in not_mine.stderr
        dropped = run_cli("templates", "drop", "--dsn", dsn, env=cli_env)
        assert dropped.returncode == 0, dropped.stderr
        assert "dropped 1 template" in dropped.stdout
        left = {t.owner for t in janitor.templates() if t.owner != "postgres"}
        assert left == {first}


def test_role_without_createdb_gets_one_line(
    pytester: pytest.Pytester, clean_env: None, oltp_server: ServerInfo
) -> None:
    pytester.makepyfile("def test_one(oltp_conn):\n    pass\n")
    with role(oltp_server, createdb=False) as name:
        result = pytester.runpytest_subprocess(
            "--seed-profile=SMALL",
            "--seed-domain=hospital",
            f"--seed-dsn={as_role(oltp_server, name)}",
        )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [f"*role '{name}' may not create databases*ALTER ROLE {name} CREATEDB*"]
    )
    assert "Traceback" not in result.stdout.str()


def test_oltp_server_is_the_seed_dsn_server(
    pytester: pytest.Pytester, clean_env: None, oltp_server: ServerInfo
) -> None:
    pytester.makepyfile(
        f"""
import psycopg

def test_same_server(oltp_server, oltp_database):
    assert oltp_server.port == {oltp_server.port}
    assert oltp_server.datadir is None  # not a cluster of ours
    with psycopg.connect(oltp_server.dsn("postgres")) as conn:
        names = {{r[0] for r in conn.execute("SELECT datname FROM pg_database")}}
    assert oltp_database.dbname in names
"""
    )
    with role(oltp_server) as name:  # its template goes with the role
        result = pytester.runpytest_subprocess(
            "--seed-profile=SMALL",
            "--seed-domain=hospital",
            f"--seed-dsn={as_role(oltp_server, name)}",
        )
    result.assert_outcomes(passed=1)


SECRET = "Sekrit-pw-7731"
PASSWORD_SUITE = """
import psycopg


def test_url_connects(oltp_database):
    with psycopg.connect(oltp_database.url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (
            oltp_database.dbname,)
    assert oltp_database.url.startswith("postgresql://")


def test_fails_showing_everything(oltp_database, oltp_server):
    dsn = oltp_database
    assert oltp_database is None, (repr(oltp_database), repr(oltp_server))
"""


def test_no_password_in_output(
    pytester: pytest.Pytester,
    clean_env: None,
    oltp_server: ServerInfo,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytester.makepyfile(test_secret=PASSWORD_SUITE)
    with role(oltp_server, password=SECRET) as name:
        monkeypatch.setenv("OLTPSEED_DSN", as_role(oltp_server, name, SECRET))
        result = pytester.runpytest_subprocess(
            "--seed-profile=SMALL", "--seed-domain=hospital", "-l", "-vv"
        )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "oltpseed: *server=--seed-dsn (*password=****",
            "*OltpDatabase(dbname='oltpseed_db_*', dsn='*password=****'*",
        ]
    )
    assert SECRET not in result.stdout.str() + result.stderr.str()

    # an unreachable server's line names it without the password
    monkeypatch.setenv("OLTPSEED_DSN", f"postgresql://u:{SECRET}@127.0.0.1:1/x")
    failed = pytester.runpytest_subprocess("-k", "url")
    assert "cannot reach the seed server" in failed.stdout.str()
    assert SECRET not in failed.stdout.str() + failed.stderr.str()


NO_OP_SUITE = """
import pytest
from hypothesis import HealthCheck, given, settings

from pytest_oltpseed import strategies
from pytest_oltpseed.data.factory import Ref, bind, factory_for

pytestmark = pytest.mark.seed_profile("SMALL")


def count(conn, table):
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_parent_given_is_linked(oltp_conn, oltp_factories):
    f = oltp_factories
    patient = f.Paciente.create()
    before = count(oltp_conn, "pacientes")
    made = [
        f.Consulta.create(paciente=patient),
        f.Consulta.create(paciente_id=patient),
        f.Exame.create(paciente=patient["id"]),
        f.Internacao.create(paciente=Ref("pacientes", patient)),
        f.Exame.create(paciente={"id": patient["id"]}),  # looked up by id
    ]
    assert [m["paciente_id"] for m in made] == [patient["id"]] * 5
    assert all("paciente" not in m for m in made)
    assert count(oltp_conn, "pacientes") == before
    unsaved = f.Paciente.build()
    linked = f.Consulta.create(paciente=unsaved)
    assert linked["paciente_id"] == unsaved["id"]
    assert count(oltp_conn, "pacientes") == before + 1


def test_unknown_keyword_names_valid_fields(oltp_factories):
    with pytest.raises(TypeError, match="Consulta has no field 'stauts'.*status"):
        oltp_factories.Consulta.create(stauts="realizada")
    with pytest.raises(TypeError, match="Paciente has no field 'nmoe'.*nome"):
        oltp_factories.Consulta.create(paciente__nmoe="Ana")
    with pytest.raises(TypeError, match="Sale has no field 'itens'"):
        oltp_factories.Sale.build(itens=[])


def test_parent_fields_both_spellings(oltp_conn, oltp_factories):
    first = oltp_factories.Consulta.create(paciente__nome="Ana Teste")
    second = oltp_factories.Consulta.create(paciente_id__nome="Bia Teste")
    names = [
        oltp_conn.execute(
            "SELECT nome FROM pacientes WHERE id = %s", (c["paciente_id"],)
        ).fetchone()[0]
        for c in (first, second)
    ]
    assert names == ["Ana Teste", "Bia Teste"]
    sale = oltp_factories.Sale.create(client__name="Loja Teste")
    assert oltp_conn.execute(
        "SELECT name FROM clients WHERE id = %s", (sale["client_id"],)
    ).fetchone() == ("Loja Teste",)
    with pytest.raises(TypeError, match="Paciente.nome is not a parent"):
        oltp_factories.Consulta.create(paciente__nome__x="Ana")


@pytest.mark.seed_profile(name="SMALL")  # the run's profile is MEDIUM
def test_marker_keyword(oltp_profile):
    assert oltp_profile.name == "SMALL"


@pytest.mark.parametrize(
    "table", ["pacientes", "medicos", "consultas", "suppliers", "products", "clients"]
)
def test_strategy_rows_insert_next_to_seeded_data(oltp_conn, table):
    @settings(
        max_examples=5,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(row=strategies.rows(table))
    def check(row):
        with oltp_conn.transaction(force_rollback=True):
            with bind(oltp_conn) as ctx:
                factory_for(table).write(ctx, row)

    check()
"""


def test_no_ops_link_or_raise(pytester: pytest.Pytester, clean_env: None) -> None:
    pytester.makepyfile(test_no_ops=NO_OP_SUITE)
    result = pytester.runpytest_subprocess(
        "--seed-profile=MEDIUM", "-p", "no:randomly", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=10)


@pytest.mark.parametrize(
    "marker",
    ["seed_profile()", 'seed_profile("SMALL", "LARGE")', 'seed_profile(nam="SMALL")'],
)
def test_malformed_marker_is_a_usage_error(
    pytester: pytest.Pytester, clean_env: None, marker: str
) -> None:
    pytester.makepyfile(
        f"import pytest\n\n@pytest.mark.{marker}\ndef test_one():\n    pass\n"
    )
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ['ERROR: oltpseed: *test_one: seed_profile marker: *seed_profile(name="LARGE")']
    )
    assert "Traceback" not in result.stderr.str()
    # under xdist a worker cannot stop the run: the test fails with that line
    spread = pytester.runpytest_subprocess("-n", "2")
    spread.assert_outcomes(errors=1)
    spread.stdout.fnmatch_lines(["*oltpseed: *test_one: seed_profile marker: *"])
    assert "INTERNALERROR" not in spread.stdout.str()


COUNTS_SUITE = """
from pytest_oltpseed.domains import select, tables_of


def test_counts_are_the_database(oltp_conn, oltp_profile, pytestconfig):
    domain = pytestconfig.getoption("seed_domain")
    tables = tables_of(select(domain))
    found = {
        t: oltp_conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in tables
    }
    assert oltp_profile.counts == found
    assert all(oltp_profile.count(t) == found[t] for t in tables)
"""


@pytest.mark.parametrize("domain", ["hospital", "retail"])
def test_counts_equal_count_star(
    pytester: pytest.Pytester,
    clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
    domain: str,
) -> None:
    monkeypatch.setenv("SEED_PACIENTES", "5")  # ignored: the profile is SMALL
    pytester.makepyfile(test_counts=COUNTS_SUITE)
    result = pytester.runpytest_subprocess(
        "--seed-profile=SMALL", f"--seed-domain={domain}"
    )
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        ["*OltpseedWarning: SEED_PACIENTES ignored*only with SEED_SIZE=CUSTOM*"]
    )


ROLLBACK_SUITE = """
import psycopg
import pytest


def count(conn, table):
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_a_rollback_stays_in_the_test(oltp_conn, oltp_factories, oltp_profile):
    oltp_conn.execute("DELETE FROM exames")
    made = oltp_factories.Paciente.create()
    oltp_conn.rollback()  # back to the test's start, factory rows included
    assert count(oltp_conn, "exames") == oltp_profile.count("exames")
    assert count(oltp_conn, "pacientes") == oltp_profile.count("pacientes")
    # code under test that fails, rolls back and goes on
    cpf = oltp_conn.execute("SELECT cpf FROM pacientes LIMIT 1").fetchone()[0]
    with pytest.raises(psycopg.errors.UniqueViolation):
        oltp_factories.Paciente.create(cpf=cpf)
    oltp_conn.rollback()
    with oltp_conn.transaction():  # still a savepoint, not a commit
        oltp_conn.execute("DELETE FROM internacoes")
    with oltp_conn.transaction():
        with pytest.raises(psycopg.ProgrammingError, match="rollback"):
            oltp_conn.rollback()


def test_b_nothing_leaked(oltp_conn, oltp_profile):
    for table in ("internacoes", "exames", "pacientes"):
        assert count(oltp_conn, table) == oltp_profile.count(table)
"""


def test_rollback_returns_to_the_tests_savepoint(
    pytester: pytest.Pytester, clean_env: None
) -> None:
    pytester.makepyfile(test_rollback=ROLLBACK_SUITE)
    result = pytester.runpytest_subprocess(
        "--seed-profile=SMALL", "--seed-domain=hospital", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=2)


def test_sigterm_stops_the_throwaway_server(
    pytester: pytest.Pytester, clean_env: None
) -> None:
    ready = pytester.path / "server.txt"
    pytester.makepyfile(
        f"""
import time
from pathlib import Path

def test_waits(oltp_server):
    pid = (oltp_server.datadir / "postmaster.pid").read_text().split()[0]
    Path({str(ready)!r}).write_text(f"{{pid}} {{oltp_server.datadir}}")
    time.sleep(120)
"""
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[0]
            time.sleep(0.1)
        pid_text, datadir = ready.read_text().split(" ", 1)
        server_pid = int(pid_text)
        assert running(server_pid)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGTERM
    deadline = time.monotonic() + 10
    while running(server_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(server_pid)
    assert not Path(datadir).exists()
    assert not os.path.exists(Path(datadir).parent.parent)
