"""Both schemas against a real server: CDC rules, idempotency, reset boundaries."""

from __future__ import annotations

import psycopg
import pytest

from pytest_oltpseed.domains import default_domains, registry, schema, select
from pytest_oltpseed.errors import OltpseedError
from tests.conftest import run_cli, tables_in

ALL_TABLES = {t for d in default_domains() for t in d.tables}
OWN_TABLES = ALL_TABLES  # no bookkeeping table: indices live in sequences


def test_seventeen_tables_in_two_default_domains() -> None:
    assert {d.name for d in default_domains()} == {"hospital", "retail"}
    assert {d.name for d in select("all")} == {"hospital", "retail"}
    assert len(ALL_TABLES) == 17


def test_init_db_twice_is_harmless(database: str, cli_env: dict[str, str]) -> None:
    for _ in range(2):
        result = run_cli("init-db", "--dsn", database, env=cli_env)
        assert result.returncode == 0, result.stderr
    assert tables_in(database) >= ALL_TABLES
    with psycopg.connect(database) as conn:
        lookups = conn.execute("SELECT count(*) FROM convenios").fetchone()
    assert lookups == (2,)


def test_one_domain_only(database: str, cli_env: dict[str, str]) -> None:
    result = run_cli("init-db", "--domain", "retail", "--dsn", database, env=cli_env)
    assert result.returncode == 0, result.stderr
    retail = registry()["retail"]
    assert tables_in(database) == set(retail.tables)


def test_cdc_rules_on_every_table(database: str) -> None:
    with psycopg.connect(database) as conn:
        schema.install(conn, select("all"))
        for table in sorted(ALL_TABLES):
            pk = conn.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod), "
                "pg_get_serial_sequence(%s, a.attname) IS NOT NULL "
                "FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass "
                "AND i.indisprimary",
                (table, table),
            ).fetchall()
            assert pk == [("id", "bigint", True)], table
            columns = {
                row[0]
                for row in conn.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = %s AND is_nullable = 'NO'",
                    (table,),
                )
            }
            assert {"created_at", "updated_at"} <= columns, table
            trigger = conn.execute(
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass "
                "AND tgname = %s",
                (table, f"{table}_updated_at"),
            ).fetchone()
            assert trigger == (1,), table
        fks = conn.execute(
            "SELECT conrelid::regclass::text, confupdtype, confdeltype, conkey "
            "FROM pg_constraint WHERE contype = 'f'"
        ).fetchall()
        assert len(fks) == 16
        for table, on_update, on_delete, _ in fks:
            assert (on_update, on_delete) == ("c", "r"), table
        # Every FK column leads some index (lookups and deletes stay cheap).
        for table, _, _, key in fks:
            indexed = conn.execute(
                "SELECT count(*) FROM pg_index WHERE indrelid = %s::regclass "
                "AND indkey[0] = %s",
                (table, key[0]),
            ).fetchone()
            assert indexed and indexed[0] >= 1, (table, key)


def test_no_duplicate_indexes(database: str) -> None:
    with psycopg.connect(database) as conn:
        schema.install(conn, select("all"))
        duplicates = conn.execute(
            "SELECT indrelid::regclass, indkey::text, count(*) FROM pg_index "
            "WHERE indrelid::regclass::text = ANY(%s) "
            "GROUP BY 1, 2 HAVING count(*) > 1",
            (sorted(ALL_TABLES),),
        ).fetchall()
    assert duplicates == []


def test_updated_at_trigger_fires(database: str) -> None:
    with psycopg.connect(database, autocommit=True) as conn:
        schema.install(conn, select("hospital"))
        conn.execute(
            "UPDATE convenios SET updated_at = '2000-01-01' WHERE nome = 'SUS'"
        )
        row = conn.execute(
            "SELECT updated_at > '2020-01-01' FROM convenios WHERE nome = 'SUS'"
        ).fetchone()
    assert row == (True,)


def test_reset_keeps_user_table_and_empties_ours(
    database: str, cli_env: dict[str, str]
) -> None:
    with psycopg.connect(database, autocommit=True) as conn:
        schema.install(conn, select("all"))
        conn.execute("CREATE TABLE my_notes (id int primary key, note text)")
        conn.execute("INSERT INTO my_notes VALUES (1, 'keep me')")
        conn.execute(
            "CREATE TRIGGER my_notes_touch BEFORE UPDATE ON my_notes "
            "FOR EACH ROW EXECUTE FUNCTION set_updated_at()"
        )
        conn.execute(
            "INSERT INTO medicos (nome, crm, especialidade) "
            "VALUES ('Dra. Ana', 'CRM/SP 123456', 'Cardiologia')"
        )
    result = run_cli("reset", "--schema-only", "--dsn", database, env=cli_env)
    assert result.returncode == 0, result.stderr
    assert tables_in(database) == OWN_TABLES | {"my_notes"}
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT note FROM my_notes").fetchall() == [("keep me",)]
        assert conn.execute("SELECT count(*) FROM medicos").fetchone() == (0,)
        # the user's trigger still has its function
        assert conn.execute(
            "SELECT count(*) FROM pg_proc WHERE proname = 'set_updated_at'"
        ).fetchone() == (1,)


def test_reset_of_one_domain_leaves_the_other(database: str) -> None:
    with psycopg.connect(database, autocommit=True) as conn:
        schema.install(conn, select("all"))
        conn.execute(
            "INSERT INTO stores (code, name, city, state, opened_at) "
            "VALUES ('L001', 'Loja Centro', 'Recife', 'PE', '2020-01-01')"
        )
        schema.reset(conn, select("hospital"))
        assert conn.execute("SELECT count(*) FROM stores").fetchone() == (1,)
        conn.execute("UPDATE stores SET name = 'Loja Boa Vista'")  # trigger works


def test_dependent_user_object_stops_reset_and_nothing_changes(database: str) -> None:
    with psycopg.connect(database, autocommit=True) as conn:
        schema.install(conn, select("all"))
        conn.execute(
            "INSERT INTO medicos (nome, crm, especialidade) "
            "VALUES ('Dr. Rui', 'CRM/RJ 654321', 'Pediatria')"
        )
        conn.execute(
            "CREATE TABLE my_shifts (id int primary key, "
            "medico_id bigint REFERENCES medicos(id))"
        )
        with pytest.raises(OltpseedError, match=r"nothing was changed.*my_shifts"):
            schema.reset(conn, select("all"))
        assert conn.execute("SELECT count(*) FROM medicos").fetchone() == (1,)
    assert tables_in(database) == OWN_TABLES | {"my_shifts"}


def test_drop_removes_function_only_when_unused(database: str) -> None:
    with psycopg.connect(database, autocommit=True) as conn:
        schema.install(conn, select("all"))
        for domain in select("all"):
            conn.execute(domain.drop_file.read_text())
        assert tables_in(database) == set()
        assert conn.execute(
            "SELECT count(*) FROM pg_proc WHERE proname = 'set_updated_at'"
        ).fetchone() == (0,)
