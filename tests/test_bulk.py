"""``create_batch``: COPY-speed rows that keep every rule of ``create()``."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.rows import dict_row

from pytest_oltpseed import validators
from pytest_oltpseed.data.factory import factory_for
from pytest_oltpseed.domains import select, tables_of
from pytest_oltpseed.seed.bulk import has_rules

ALL_TABLES = tables_of(select("all"))  # the seeded domains (not opt-in ones)
pytestmark = pytest.mark.seed_profile("SMALL")


@pytest.mark.parametrize("table", ALL_TABLES)
def test_every_factory_batches_rows_that_pass_check(
    oltp_conn: psycopg.Connection, oltp_factories: object, table: str
) -> None:
    rows = factory_for(table).create_batch(40)
    assert len(rows) == 40
    assert all(row["created_at"] is not None for row in rows)  # read back
    stored = oltp_conn.execute(
        f"SELECT count(*) FROM {table} WHERE id = ANY(%s)", ([r["id"] for r in rows],)
    ).fetchone()
    assert stored == (40,)
    failures = [
        f for f in validators.check_database(oltp_conn, select("all")) if not f.ok
    ]
    assert failures == []


def test_consulta_batch_is_bulk_and_valid(
    oltp_conn: psycopg.Connection, oltp_factories: object
) -> None:
    consulta = factory_for("consultas")
    assert not has_rules(consulta)  # the COPY path, not create() n times
    rows = consulta.create_batch(3000)
    pacientes = {row["paciente_id"] for row in rows}
    assert len(pacientes) > 50  # parents picked among the seeded ones
    failures = [
        f for f in validators.check_database(oltp_conn, select("hospital")) if not f.ok
    ]
    assert failures == []


def test_batch_honours_keywords_and_parent_fields(
    oltp_conn: psycopg.Connection, oltp_factories: object
) -> None:
    factories = oltp_factories
    ana = factories.Paciente.create(nome="Ana Souza")  # type: ignore[attr-defined]
    rows = factories.Consulta.create_batch(  # type: ignore[attr-defined]
        5, paciente=ana, status="cancelada"
    )
    assert {(r.paciente_id, r.status) for r in rows} == {(ana.id, "cancelada")}
    rows = factories.Exame.create_batch(3, paciente__nome="Bia")  # type: ignore[attr-defined]
    names = oltp_conn.execute(
        "SELECT DISTINCT p.nome FROM exames e JOIN pacientes p ON p.id = e.paciente_id "
        "WHERE e.id = ANY(%s)",
        ([r.id for r in rows],),
    ).fetchall()
    assert names == [("Bia",)]


def test_batch_with_items_attaches_them(
    oltp_conn: psycopg.Connection, oltp_factories: object
) -> None:
    entries = oltp_factories.ProductEntry.create_batch(20)  # type: ignore[attr-defined]
    for entry in entries:
        stored = oltp_conn.execute(
            "SELECT count(*), sum(quantity * unit_cost) FROM product_entry_items "
            "WHERE entry_id = %s",
            (entry.id,),
        ).fetchone()
        assert stored == (len(entry["items"]), entry.total_cost)


COLUMNAR = ["consultas", "exames", "internacoes"]


@pytest.mark.parametrize("table", COLUMNAR)
def test_column_wise_batch_returns_what_the_database_holds(
    oltp_conn: psycopg.Connection,
    oltp_factories: object,
    monkeypatch: pytest.MonkeyPatch,
    table: str,
) -> None:
    """Tables of Gen columns are made a column at a time (NumPy) once the batch
    is large enough; the rows returned equal the stored ones, column for
    column, and pass check."""
    pytest.importorskip("numpy")
    from pytest_oltpseed.data import columns
    from pytest_oltpseed.seed.bulk import columnwise

    monkeypatch.setattr(columns, "FAST_AT", 100)
    factory = factory_for(table)
    assert columnwise(factory, 600)
    rows = factory.create_batch(600)
    with oltp_conn.cursor(row_factory=dict_row) as cur:
        stored = cur.execute(
            f"SELECT * FROM {table} WHERE id = ANY(%s) ORDER BY id",  # type: ignore[arg-type]
            ([r["id"] for r in rows],),
        ).fetchall()
    assert [dict(r) for r in sorted(rows, key=lambda r: r["id"])] == stored
    assert len({r["paciente_id"] for r in rows}) > 50  # picked among many
    failures = [
        f for f in validators.check_database(oltp_conn, select("hospital")) if not f.ok
    ]
    assert failures == []


def test_a_before_insert_trigger_is_read_back(
    oltp_conn: psycopg.Connection,
    oltp_factories: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """created_at is not read back when it is now() (fixed for the
    transaction); a trigger that changes rows makes the batch read them."""
    from pytest_oltpseed.data import columns

    monkeypatch.setattr(columns, "FAST_AT", 100)
    oltp_conn.execute(
        "CREATE FUNCTION t_mark() RETURNS trigger AS $$ BEGIN "
        "NEW.resultado := 'marcado'; RETURN NEW; END $$ LANGUAGE plpgsql"
    )
    plain = factory_for("exames").create_batch(200)
    now = oltp_conn.execute("SELECT now()::timestamp").fetchone()[0]  # type: ignore[index]
    assert {r["created_at"] for r in plain} == {now}
    oltp_conn.execute(
        "CREATE TRIGGER t_mark BEFORE INSERT ON exames "
        "FOR EACH ROW EXECUTE FUNCTION t_mark()"
    )
    for size in (200, 20):  # the column-wise path and the row path
        marked = factory_for("exames").create_batch(size)
        assert {r["resultado"] for r in marked} == {"marcado"}
