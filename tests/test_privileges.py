"""Least privilege: a role with DML rights only seeds, streams and checks.

An application or CDC role usually has SELECT/INSERT/UPDATE/DELETE on the
tables and no CREATE on the schema (PostgreSQL 15's default for PUBLIC). The
schema is applied only when something is missing, and said so in one line.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pytest_oltpseed.domains import schema, select
from pytest_oltpseed.server.embedded import ServerInfo
from tests.conftest import run_cli


@pytest.fixture
def dml_role(oltp_server: ServerInfo, database: str) -> Iterator[str]:
    """The database with the schema installed by its owner; a DML-only role's DSN."""
    role = f"dml_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database, autocommit=True) as conn:
        schema.install(conn, select("all"))
        ident = sql.Identifier(role)
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident))
        for grant in (
            "GRANT USAGE ON SCHEMA public TO {}",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}",
            "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}",
        ):
            conn.execute(sql.SQL(grant).format(ident))
        creatable = conn.execute(
            "SELECT has_schema_privilege(%s, 'public', 'CREATE')", (role,)
        ).fetchone()
        assert creatable == (False,)
    try:
        yield make_conninfo(database, user=role)
    finally:
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        dbname = conninfo_to_dict(database)["dbname"]
        with psycopg.connect(oltp_server.dsn("postgres"), autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE usename = %s AND datname = %s",
                (role, dbname),
            )
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_dml_only_role_seeds_streams_and_checks(
    dml_role: str, cli_env: dict[str, str]
) -> None:
    # 20,000 consultas: a stage large enough to defer FKs and indexes, which
    # only the tables' owner may do; this role must seed without it.
    env = {**cli_env, "SEED_CONSULTAS": "20000"}
    seeded = run_cli(
        "seed", "--profile", "CUSTOM", "--domain", "hospital", "--dsn", dml_role,
        env=env,
    )  # fmt: skip
    assert seeded.returncode == 0, seeded.stderr
    assert "installing" not in seeded.stderr
    seeded_retail = run_cli(
        "seed", "--profile", "SMALL", "--domain", "retail", "--dsn", dml_role,
        env=cli_env,
    )  # fmt: skip
    assert seeded_retail.returncode == 0, seeded_retail.stderr
    streamed = run_cli(
        "stream", "--max-events", "200", "--interval", "0", "--progress", "0",
        "--seed-random", "3", "--dsn", dml_role, env=cli_env,
    )  # fmt: skip
    assert streamed.returncode == 0, streamed.stderr
    assert "installing" not in streamed.stderr
    assert "200 events committed" in streamed.stdout
    checked = run_cli("check", "--dsn", dml_role, env=cli_env)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_stream_announces_the_schema_it_installs(
    database: str, cli_env: dict[str, str]
) -> None:
    result = run_cli(
        "stream", "--domain", "retail", "--max-events", "10", "--interval", "0",
        "--progress", "0", "--dsn", database, env=cli_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    announced = [line for line in result.stderr.splitlines() if "installing" in line]
    assert len(announced) == 1, result.stderr
    assert "retail schema" in announced[0] and "suppliers" in announced[0]
    with psycopg.connect(database) as conn:
        assert schema.missing(conn, select("retail")) == []
        # Only what is missing counts: an index dropped by hand is named.
        conn.execute("DROP INDEX idx_sales_store")
        conn.commit()
        assert schema.missing(conn, select("retail")) == ["idx_sales_store"]
