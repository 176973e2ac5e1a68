"""Guardrails: refusals write nothing, forced writes proceed, dry runs write nothing."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli, tables_in

PRODUCTION_LIKE = [
    {"APP_ENV": "PROD"},
    {"APP_ENV": "staging"},
    {"APP_ENV": "RENDER"},
    {"RENDER": "true"},
]


@pytest.mark.parametrize("command", ["init-db", "reset", "seed"])
@pytest.mark.parametrize("production", PRODUCTION_LIKE)
def test_refused_writes_nothing(
    database: str, cli_env: dict[str, str], command: str, production: dict[str, str]
) -> None:
    result = run_cli(command, "--dsn", database, env={**cli_env, **production})
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "production-like" in lines[0]
    assert "FORCE_SEED=true" in lines[0] and "--force" in lines[0]
    assert tables_in(database) == set()


def test_forced_by_flag_or_variable(database: str, cli_env: dict[str, str]) -> None:
    env = {**cli_env, "APP_ENV": "PROD"}
    by_flag = run_cli(
        "init-db", "--domain", "hospital", "--force", "--dsn", database, env=env
    )
    assert by_flag.returncode == 0, by_flag.stderr
    assert "medicos" in tables_in(database)
    by_var = run_cli("reset", "--dsn", database, env={**env, "FORCE_SEED": "true"})
    assert by_var.returncode == 0, by_var.stderr
    assert "sales" in tables_in(database)


@pytest.mark.parametrize("how", ["flag", "variable"])
@pytest.mark.parametrize("command", ["init-db", "reset", "seed"])
def test_dry_run_writes_nothing(
    database: str, cli_env: dict[str, str], command: str, how: str
) -> None:
    args = [command, "--dsn", database] + (["--dry-run"] if how == "flag" else [])
    env = {**cli_env, "DRY_RUN": "true"} if how == "variable" else cli_env
    result = run_cli(*args, env=env)
    assert result.returncode == 0, result.stderr
    assert "dry run" in result.stdout and "nothing was written" in result.stdout
    if command != "seed":
        assert "hospital/01_schema.sql" in result.stdout
    else:
        assert "pacientes" in result.stdout and "2,000" in result.stdout
    assert tables_in(database) == set()


def test_dry_run_in_production_shows_plan(
    database: str, cli_env: dict[str, str]
) -> None:
    result = run_cli(
        "reset", "--dry-run", "--dsn", database, env={**cli_env, "APP_ENV": "PROD"}
    )
    assert result.returncode == 0
    assert "hospital/99_drop_all.sql" in result.stdout
    assert tables_in(database) == set()
