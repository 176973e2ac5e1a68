"""``create_batch``: COPY-speed rows that keep every rule of ``create()``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from pytest_oltpseed import validators
from pytest_oltpseed.data.factory import SQLFactory, factory_for
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


EDGES = """
CREATE SCHEMA "Edge";
CREATE TABLE "Edge"."Item" (
  item_no int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  code uuid NOT NULL DEFAULT gen_random_uuid(), name text NOT NULL,
  tag char(4), doc jsonb, added timestamptz NOT NULL DEFAULT now(),
  size int GENERATED ALWAYS AS (length(name)) STORED);
CREATE TABLE edge_pair (a int, b text, qty int NOT NULL, PRIMARY KEY (a, b));
CREATE TABLE edge_log (at timestamptz NOT NULL DEFAULT clock_timestamp(),
                       n int, doc jsonb);
CREATE TABLE edge_marked (note text, mark text);
CREATE FUNCTION edge_mark() RETURNS trigger AS $$ BEGIN
  NEW.mark := 'marked'; RETURN NEW; END $$ LANGUAGE plpgsql;
CREATE TRIGGER edge_mark BEFORE INSERT ON edge_marked
  FOR EACH ROW EXECUTE FUNCTION edge_mark();
"""


@pytest.fixture
def edge_factories() -> Iterator[dict[str, type[SQLFactory]]]:
    """Factories of tables keyed in every way but ``id`` (registered for the
    test only)."""
    from pytest_oltpseed.data import registry
    from pytest_oltpseed.data.factory import Col

    class EdgeItem(SQLFactory):  # identity key, a uuid default, a schema
        _table, _domain = "Edge.Item", "edge"
        name = Col(lambda g, r: f"item {g.rng.randrange(10**6)}")
        tag = Col(lambda g, r: "ab")  # char(4): read back padded
        doc = Col(lambda g, r: '{"k": 1}')  # jsonb given as text

    class EdgePair(SQLFactory):  # a composite key the factory writes
        _table, _domain = "edge_pair", "edge"
        a = Col(lambda g, r: g.rng.randrange(10**9))
        b = Col(lambda g, r: "x")
        qty = Col(lambda g, r: 3)

    class EdgeLog(SQLFactory):  # no primary key: a per-row default
        _table, _domain = "edge_log", "edge"
        n = Col(lambda g, r: g.rng.randrange(100))
        doc = Col(lambda g, r: '{"k": 2}')

    class EdgeMarked(SQLFactory):  # no key and a trigger: found by no one
        _table, _domain = "edge_marked", "edge"
        note = Col(lambda g, r: "n")

    made = [EdgeItem, EdgePair, EdgeLog, EdgeMarked]
    try:
        yield {f._table: f for f in made}
    finally:
        for each in made:
            registry._FACTORIES.pop(each._table, None)


def test_batches_of_tables_keyed_otherwise(
    oltp_conn: psycopg.Connection,
    oltp_factories: object,
    edge_factories: dict[str, type[SQLFactory]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Keys taken up front from an identity (``GENERATED ALWAYS``), a
    per-row default, a composite key the factory writes, a schema-qualified
    name: one COPY each, and the rows returned equal what SELECT reads (the
    padded ``char``, the parsed ``jsonb``, the generated column). A table
    with no key has its values cast by the server; one with no key and a
    trigger keeps the row path."""
    from pytest_oltpseed.seed import bulk

    oltp_conn.execute(EDGES)
    copied: list[str] = []
    real_copy = bulk._copy

    def copy(conn: psycopg.Connection, table: str, *args: Any) -> None:
        copied.append(table)
        real_copy(conn, table, *args)

    monkeypatch.setattr(bulk, "_copy", copy)

    def stored(query: str) -> list[dict[str, Any]]:
        with oltp_conn.cursor(row_factory=dict_row) as cur:
            return [dict(r) for r in cur.execute(query)]  # type: ignore[call-overload]

    items = edge_factories["Edge.Item"].create_batch(40)
    assert [dict(r) for r in items] == stored(
        'SELECT * FROM "Edge"."Item" ORDER BY item_no'
    )
    assert {(r.tag, r.doc["k"]) for r in items} == {("ab  ", 1)}
    assert len({r.code for r in items}) == 40
    assert all(r.size == len(r.name) for r in items)
    pairs = edge_factories["edge_pair"].create_batch(30)
    assert sorted(map(dict, pairs), key=lambda r: r["a"]) == stored(
        "SELECT * FROM edge_pair ORDER BY a"
    )
    logs = edge_factories["edge_log"].create_batch(30)
    assert len({r.at for r in logs}) > 1  # clock_timestamp(): one per row
    assert sorted(map(dict, logs), key=lambda r: (r["at"], r["n"])) == stored(
        "SELECT * FROM edge_log ORDER BY at, n"
    )
    assert copied == ["Edge.Item", "edge_pair", "edge_log"]
    marked = edge_factories["edge_marked"].create_batch(5)
    assert {r.mark for r in marked} == {"marked"}
    assert copied == ["Edge.Item", "edge_pair", "edge_log"]  # row by row


def test_autocommit_batch_returns_the_stored_defaults(database: str) -> None:
    """On an autocommit connection the COPY is a transaction of its own, so a
    ``now()`` evaluated afterwards is another time: such defaults are taken
    up front and written, and the rows returned are the stored ones."""
    from pytest_oltpseed.data.factory import bind
    from pytest_oltpseed.domains import schema

    with psycopg.connect(database) as conn:
        schema.install(conn, select("hospital"))
        conn.commit()
    with psycopg.connect(database, autocommit=True) as conn, bind(conn, seed=3):
        rows = factory_for("pacientes").create_batch(20)
        with conn.cursor(row_factory=dict_row) as cur:
            stored = cur.execute(
                "SELECT * FROM pacientes WHERE id = ANY(%s) ORDER BY id",
                ([r["id"] for r in rows],),
            ).fetchall()
    assert [dict(r) for r in sorted(rows, key=lambda r: r["id"])] == stored


def test_a_failed_batch_on_autocommit_leaves_nothing(database: str) -> None:
    """Headers and items land in one transaction: when the items fail (a CHECK
    no item meets), no header is left without them, on an autocommit
    connection where each COPY would otherwise commit on its own."""
    from pytest_oltpseed.data.factory import bind
    from pytest_oltpseed.domains import schema

    with psycopg.connect(database) as conn:
        schema.install(conn, select("retail"))
        conn.commit()
    with psycopg.connect(database, autocommit=True) as conn, bind(conn, seed=4):
        factory_for("sales").create_batch(3)  # parents made, and a clean batch
        before = conn.execute("SELECT count(*) FROM sales").fetchone()
        conn.execute(
            "ALTER TABLE sale_items ADD CONSTRAINT no_more CHECK (quantity < 0) "
            "NOT VALID"
        )
        with pytest.raises(psycopg.errors.CheckViolation):
            factory_for("sales").create_batch(40)
        after = conn.execute("SELECT count(*) FROM sales").fetchone()
    assert before == after == (3,)
