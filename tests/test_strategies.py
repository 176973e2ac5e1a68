"""Hypothesis properties: strategy rows pass the validators and fit the real schema;
mutated rows are caught."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_oltpseed import strategies, validators
from pytest_oltpseed.data import brazil
from pytest_oltpseed.data.factory import Context, Row, factory_for
from pytest_oltpseed.domains import default_domains, schema, select, tables_of
from pytest_oltpseed.server.embedded import ServerInfo
from tests.conftest import scratch_database

ALL_TABLES = tables_of(default_domains())
SETTINGS = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def schema_conn(oltp_server: ServerInfo) -> Iterator[psycopg.Connection]:
    with (
        scratch_database(oltp_server, "strategies") as dsn,
        psycopg.connect(dsn) as conn,
    ):
        schema.install(conn, select("all"))
        yield conn


@given(value=strategies.cpf())
def test_cpf_strategy(value: str) -> None:
    assert brazil.is_valid_cpf(value)


@given(value=strategies.cnpj())
def test_cnpj_strategy(value: str) -> None:
    assert brazil.is_valid_cnpj(value)


@given(value=strategies.crm())
def test_crm_strategy(value: str) -> None:
    assert brazil.is_valid_crm(value)


@given(value=strategies.sku())
def test_sku_strategy(value: str) -> None:
    assert brazil.is_valid_sku(value)


@given(value=strategies.phone())
def test_phone_strategy(value: str) -> None:
    assert brazil.is_valid_phone(value)


@pytest.mark.parametrize("table", ALL_TABLES)
def test_rows_pass_validators_and_insert(
    schema_conn: psycopg.Connection, table: str
) -> None:
    @SETTINGS
    @given(row=strategies.rows(table))
    def check(row: Row) -> None:
        assert validators.row_problems(table, row) == []
        with schema_conn.transaction(force_rollback=True):
            # identifiers of rows made while writing (restocking) stay clear
            # of the drawn ones: a disjoint index range
            writer = Context(schema_conn, sequences="local", index_base=50_000_000)
            factory_for(table).write(writer, row)
            found = schema_conn.execute(
                f"SELECT count(*) FROM {table} WHERE id = %s",
                (row["id"],),  # type: ignore[arg-type]
            ).fetchone()
            assert found == (1,)

    check()


@given(value=strategies.cpf(), delta=st.integers(1, 9))
def test_wrong_check_digit_is_rejected(value: str, delta: int) -> None:
    broken = value[:-1] + str((int(value[-1]) + delta) % 10)
    assert not brazil.is_valid_cpf(broken)


@SETTINGS
@given(row=strategies.rows("pacientes"), delta=st.integers(1, 9))
def test_patient_with_bad_cpf_is_flagged(row: Row, delta: int) -> None:
    row["cpf"] = row["cpf"][:-1] + str((int(row["cpf"][-1]) + delta) % 10)
    assert "pacientes.cpf has valid check digits" in validators.row_problems(
        "pacientes", row
    )


@SETTINGS
@given(row=strategies.rows("internacoes"), hours=st.integers(1, 24 * 30))
def test_discharge_before_admission_is_flagged(row: Row, hours: int) -> None:
    row["data_saida"] = row["data_entrada"] - timedelta(hours=hours)
    assert "internacoes.data_saida >= data_entrada" in validators.row_problems(
        "internacoes", row
    )


@SETTINGS
@given(
    row=strategies.rows("consultas"),
    status=st.text(min_size=1, max_size=20).filter(
        lambda s: s not in ("agendada", "realizada", "cancelada", "faltou")
    ),
)
def test_status_outside_domain_is_flagged(row: Row, status: str) -> None:
    row["status"] = status
    assert "consultas.status in the domain" in validators.row_problems("consultas", row)


@SETTINGS
@given(
    table=st.sampled_from(["consultas", "exames"]),
    data=st.data(),
    seconds=st.integers(1, 10**8),
)
def test_event_before_registration_is_flagged(
    table: str, data: st.DataObject, seconds: int
) -> None:
    row = data.draw(strategies.rows(table))
    cadastro = row["paciente_id"].row["data_cadastro"]
    row["data"] = cadastro - timedelta(seconds=seconds)
    assert f"{table}.data >= paciente.data_cadastro" in validators.row_problems(
        table, row
    )
