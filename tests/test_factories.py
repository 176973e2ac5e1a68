"""Factories against a real database: FK-consistent rows, data rules, determinism."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest

from pytest_oltpseed import validators
from pytest_oltpseed.data.factory import Context, Ref, bind, factory_for
from pytest_oltpseed.domains import default_domains, schema, select, tables_of
from pytest_oltpseed.domains.hospital import factories as h
from pytest_oltpseed.domains.retail import factories as r
from pytest_oltpseed.errors import OltpseedError
from pytest_oltpseed.server.embedded import ServerInfo
from tests.conftest import scratch_database

ALL_TABLES = tables_of(default_domains())


@pytest.fixture
def conn(database: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database) as connection:
        schema.install(connection, select("all"))
        yield connection


def _clean(conn: psycopg.Connection) -> None:
    failures = [f for f in validators.check_database(conn, select("all")) if not f.ok]
    assert failures == []


@pytest.mark.parametrize("table", ALL_TABLES)
def test_every_factory_creates_fk_consistent_rows(
    conn: psycopg.Connection, table: str
) -> None:
    with bind(conn, seed=1):
        rows = [factory_for(table).create() for _ in range(3)]
    for row in rows:
        assert isinstance(row["id"], int)
        assert validators.row_problems(table, row) == []
    _clean(conn)


def test_children_follow_their_patient(conn: psycopg.Connection) -> None:
    with bind(conn, seed=2):
        patient = h.Paciente.create()
        consultas = h.Consulta.create_batch(30, paciente_id=Ref("pacientes", patient))
        for consulta in consultas:
            assert consulta["paciente_id"] == patient["id"]
            assert consulta["data"] >= patient["data_cadastro"]
        by_id = h.Exame.create(paciente_id=patient["id"])  # a bare id works too
        assert by_id["data"] >= patient["data_cadastro"]


def test_at_most_three_convenios_per_patient(conn: psycopg.Connection) -> None:
    with bind(conn, seed=3, reuse_parents=True):
        h.Convenio.create_batch(6)
        patient = h.Paciente.create()
        for _ in range(3):
            h.PacienteConvenio.create(paciente_id=patient["id"])
        h.PacienteConvenio.create_batch(20)  # picks patients with room only
    held = conn.execute(
        "SELECT max(n) FROM (SELECT count(*) n FROM pacientes_convenios "
        "GROUP BY paciente_id) x"
    ).fetchone()
    assert held == (3,)
    _clean(conn)


def test_sale_items_stock_and_totals(conn: psycopg.Connection) -> None:
    with bind(conn, seed=4):
        sales = r.Sale.create_batch(15)
        extra = r.SaleItem.create(sale_id=sales[0]["id"])
    for sale in sales:
        assert 1 <= len(sale["items"]) <= 5
        assert sale["total"] == sum(i["subtotal"] for i in sale["items"])
    total = conn.execute(
        "SELECT total FROM sales WHERE id = %s", (sales[0]["id"],)
    ).fetchone()
    assert total == (sales[0]["total"] + extra["subtotal"],)
    _clean(conn)


def test_reuse_mode_picks_existing_parents(conn: psycopg.Connection) -> None:
    with bind(conn, seed=5):
        h.Paciente.create_batch(5)
        h.Medico.create_batch(2)
    with bind(conn, seed=6, reuse_parents=True):
        h.Consulta.create_batch(20)
    counts = conn.execute(
        "SELECT (SELECT count(*) FROM pacientes), (SELECT count(*) FROM medicos)"
    ).fetchone()
    assert counts == (5, 2)
    _clean(conn)


def test_identifiers_never_collide_across_contexts(conn: psycopg.Connection) -> None:
    for seed in (0, 0, 7):  # same seed twice: sequences continue, no UNIQUE error
        with bind(conn, seed=seed):
            h.Paciente.create_batch(5)
            r.Client.create_batch(5)
            h.Medico.create_batch(2)
    unique = conn.execute(
        "SELECT count(DISTINCT cpf), count(*) FROM pacientes"
    ).fetchone()
    assert unique == (15, 15)


def test_rules_of_the_generated_mix(conn: psycopg.Connection) -> None:
    with bind(conn, seed=8, reuse_parents=True):
        h.Paciente.create_batch(40)
        h.Medico.create_batch(5)
        h.Consulta.create_batch(600)
        h.Internacao.create_batch(400)
    findings = {f.rule: f for f in validators.check_database(conn, select("hospital"))}
    assert findings["consultas 'agendada' share"].checked
    assert all(f.ok for f in findings.values()), [
        f for f in findings.values() if not f.ok
    ]
    stays = conn.execute(
        "SELECT count(*) FILTER (WHERE data_saida IS NULL)::float / count(*), "
        "min(data_saida - data_entrada), max(data_saida - data_entrada) "
        "FROM internacoes"
    ).fetchone()
    assert stays is not None
    assert 0.2 <= stays[0] <= 0.3
    assert stays[1].days >= 3 and stays[2].days <= 10


def _dump(conn: psycopg.Connection) -> dict[str, list[tuple]]:
    dump = {}
    for table in ALL_TABLES:
        columns = [
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE "
                "table_name = %s AND column_name NOT IN ('created_at', 'updated_at') "
                "ORDER BY ordinal_position",
                (table,),
            )
        ]
        query = f"SELECT {', '.join(columns)} FROM {table} ORDER BY id"
        dump[table] = conn.execute(query).fetchall()  # type: ignore[arg-type]
    return dump


def _populate(conn: psycopg.Connection, seed: int) -> dict[str, list[tuple]]:
    with bind(conn, seed=seed):
        for table in ALL_TABLES:
            factory_for(table).create_batch(2)
    return _dump(conn)


def _fresh_dump(server: ServerInfo, seed: int) -> dict[str, list[tuple]]:
    with scratch_database(server, "det") as dsn, psycopg.connect(dsn) as conn:
        schema.install(conn, select("all"))
        return _populate(conn, seed)


def test_same_seed_same_rows_different_seed_different(oltp_server: ServerInfo) -> None:
    first = _fresh_dump(oltp_server, seed=11)
    assert first == _fresh_dump(oltp_server, seed=11)
    other = _fresh_dump(oltp_server, seed=12)
    assert other["pacientes"] != first["pacientes"]
    assert other["sales"] != first["sales"]


def _plain(value: object) -> object:
    """Refs and rows as comparable plain data (a child's Ref to its header elided)."""
    if isinstance(value, Ref):
        return ("ref", value.table, _plain(value.row)) if value.table else "header"
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def test_build_path_and_bulk_path_agree() -> None:
    """factory_boy's build() and the bulk path use one definition: same rows."""
    for table in ALL_TABLES:
        factory = factory_for(table)
        with bind(None, seed=21):
            built = factory.build()
        direct = factory.make_row(Context(None, seed=21))
        assert _plain(built) == _plain({k: v for k, v in direct.items() if k in built})


def test_create_without_binding_is_a_clear_error() -> None:
    with pytest.raises(OltpseedError, match="no data context bound"):
        h.Paciente.create()


def test_money_is_decimal_and_sku_matches(conn: psycopg.Connection) -> None:
    with bind(conn, seed=9):
        product = r.Product.create()
    assert isinstance(product["price"], Decimal) and product["price"] > product["cost"]
    assert validators.row_problems("products", product) == []
