"""What a new user meets from the outside (issue 11): one line, the right exit
code, whole output off a terminal, and no gate that passes on nothing."""

from __future__ import annotations

import psycopg

from pytest_oltpseed import schema
from pytest_oltpseed.domains import select
from pytest_oltpseed.factory import bind, factory_for
from tests.conftest import run_cli


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def test_check_fails_on_an_empty_database(
    database: str, cli_env: dict[str, str]
) -> None:
    result = run_cli("check", "--dsn", database, env=cli_env)
    assert result.returncode == 1, result.stdout
    assert "nothing to check" in _one_line(result.stderr)
    assert "rules hold" not in result.stdout
    as_json = run_cli("check", "--json", "--dsn", database, env=cli_env)
    assert as_json.returncode == 1 and '"ok": true' not in as_json.stdout


def test_check_fails_on_installed_but_empty_tables(
    database: str, cli_env: dict[str, str]
) -> None:
    with psycopg.connect(database) as conn:
        schema.install(conn, select("hospital"))  # lookups only: 2 convenios
    result = run_cli("check", "--domain", "hospital", "--dsn", database, env=cli_env)
    assert result.returncode == 1, result.stdout
    line = _one_line(result.stderr)
    assert "hospital" in line and "empty" in line


def test_check_all_skips_an_absent_domain_but_checks_the_other(
    database: str, cli_env: dict[str, str]
) -> None:
    with psycopg.connect(database) as conn:
        schema.install(conn, select("hospital"))
        with bind(conn, seed=5):
            for table in select("hospital")[0].tables:
                factory_for(table).create_batch(3)
        conn.commit()
    result = run_cli("check", "--dsn", database, env=cli_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "retail: not installed" in _one_line(result.stderr)
    named = run_cli("check", "--domain", "retail", "--dsn", database, env=cli_env)
    assert named.returncode == 1
    assert "retail tables are not installed" in _one_line(named.stderr)
