"""``oltpseed check``: clean on factory data; each broken row named with its rule."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest

from pytest_oltpseed.data.factory import bind, factory_for
from pytest_oltpseed.domains import default_domains, schema, select, tables_of
from tests.conftest import run_cli

ALL_TABLES = tables_of(default_domains())


@pytest.fixture
def seeded(database: str) -> Iterator[str]:
    with psycopg.connect(database) as conn:
        schema.install(conn, select("all"))
        with bind(conn, seed=31):
            for table in ALL_TABLES:
                factory_for(table).create_batch(3)
        conn.commit()
    yield database


def test_check_is_clean_on_factory_data(seeded: str, cli_env: dict[str, str]) -> None:
    result = run_cli("check", "--dsn", seeded, env=cli_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checked rules hold" in result.stdout


# (rule fragment, SQL that breaks exactly one row; constraints are dropped first
# where the schema itself would refuse the bad row)
BREAKS = [
    (
        "pacientes.cpf has valid check digits",
        "UPDATE pacientes SET cpf = '123.456.789-00' WHERE id = {id}",
        "pacientes",
    ),
    (
        "medicos.crm is CRM/UF 123456",
        "UPDATE medicos SET crm = 'CRM/XX 12' WHERE id = {id}",
        "medicos",
    ),
    (
        "convenios.cnpj has valid check digits",
        "UPDATE convenios SET cnpj = '11.222.333/0001-00' WHERE id = {id}",
        "convenios",
    ),
    (
        "consultas.status in the domain",
        "ALTER TABLE consultas DROP CONSTRAINT consultas_status_check; "
        "UPDATE consultas SET status = 'perdida' WHERE id = {id}",
        "consultas",
    ),
    (
        "consultas.data >= paciente.data_cadastro",
        "UPDATE consultas SET data = '1990-01-01' WHERE id = {id}",
        "consultas",
    ),
    (
        "exames.data >= paciente.data_cadastro",
        "UPDATE exames SET data = '1990-01-01' WHERE id = {id}",
        "exames",
    ),
    (
        "internacoes.data_saida >= data_entrada",
        "ALTER TABLE internacoes DROP CONSTRAINT internacoes_check; "
        "UPDATE internacoes SET data_saida = data_entrada - interval '1 day' "
        "WHERE id = {id}",
        "internacoes",
    ),
    (
        "internacoes closed after 3-10 days",
        "UPDATE internacoes SET data_saida = data_entrada + interval '30 days' "
        "WHERE id = {id}",
        "internacoes",
    ),
    (
        "clients.cpf_cnpj is a valid CPF or CNPJ",
        "UPDATE clients SET cpf_cnpj = '000.000.000-00' WHERE id = {id}",
        "clients",
    ),
    (
        "products.sku derives from the name",
        "UPDATE products SET name = name || ' X' WHERE id = {id}",
        "products",
    ),
    (
        "sales.total = sum of its items",
        "UPDATE sales SET total = total + 1 WHERE id = {id}",
        "sales",
    ),
    (
        "sale_items.subtotal = quantity x unit_price",
        "ALTER TABLE sale_items DROP CONSTRAINT sale_items_check; "
        "UPDATE sale_items SET subtotal = subtotal + 1 WHERE id = {id}",
        "sale_items",
    ),
    (
        "product_entries.total_cost = sum of its items",
        "UPDATE product_entries SET total_cost = total_cost + 5 WHERE id = {id}",
        "product_entries",
    ),
    (
        "a store never sells more of a product than it received",
        "UPDATE sale_items SET quantity = quantity + 100000, "
        "subtotal = (quantity + 100000) * unit_price WHERE id = {id}; "
        "UPDATE sales s SET total = (SELECT sum(subtotal) FROM sale_items "
        "WHERE sale_id = s.id)",
        "sale_items",
    ),
    (
        "orphans",
        "ALTER TABLE exames DISABLE TRIGGER ALL; "
        "UPDATE exames SET paciente_id = 999999 WHERE id = {id}",
        "exames",
    ),
]


@pytest.mark.parametrize(
    ("rule", "statement", "table"), BREAKS, ids=[b[0][:40] for b in BREAKS]
)
def test_each_broken_row_is_named(
    seeded: str, cli_env: dict[str, str], rule: str, statement: str, table: str
) -> None:
    with psycopg.connect(seeded, autocommit=True) as conn:
        row = conn.execute(f"SELECT max(id) FROM {table}").fetchone()  # type: ignore[arg-type]
        assert row is not None
        target = row[0]
        conn.execute(statement.format(id=target))  # type: ignore[arg-type]
    result = run_cli("check", "--json", "--dsn", seeded, env=cli_env)
    assert result.returncode == 1, result.stdout
    report = json.loads(result.stdout)
    assert report["ok"] is False
    broken = [r for r in report["rules"] if r["violations"]]
    assert len(broken) >= 1
    if rule == "orphans":
        names = [r["rule"] for r in broken]
        assert "exames.paciente_id -> pacientes (no orphans)" in names
        return
    match = [r for r in broken if r["rule"] == rule]
    assert match, [r["rule"] for r in broken]
    if table != "sale_items" or "subtotal" in rule:
        assert match[0]["example"] == str(target)
    else:  # stock rules name the sale that oversold
        assert match[0]["example"] is not None


def test_check_table_output_names_rule(seeded: str, cli_env: dict[str, str]) -> None:
    with psycopg.connect(seeded, autocommit=True) as conn:
        conn.execute("UPDATE sales SET total = total + 1 WHERE id = 1")
    result = run_cli("check", "--domain", "retail", "--dsn", seeded, env=cli_env)
    assert result.returncode == 1
    assert "sales.total = sum of its items" in result.stdout
    assert "rules violated" in result.stdout
