"""Hospital rules for ``oltpseed check`` and the row validators (spec 002)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pytest_oltpseed.data import brazil
from pytest_oltpseed.domains.hospital.factories import (
    MAX_CONVENIOS,
    OPEN_STAY,
    STATUS_CONSULTA,
    STAY_MAX,
    STAY_MIN,
    TIPOS_CONVENIO,
    TIPOS_EXAME,
)
from pytest_oltpseed.validators import QueryRule, RowRule, Rule, ShareRule, optional

CADASTRO = ("paciente_id.data_cadastro",)


def _on_or_after_cadastro(column: str) -> Any:
    return lambda r: r[column] >= r["paciente_id.data_cadastro"]


def _stay_ok(r: Any) -> bool:
    if r["data_saida"] is None:
        return True
    return STAY_MIN <= r["data_saida"] - r["data_entrada"] <= STAY_MAX


def _born_before_cadastro(r: Any) -> bool:
    born = r["nascimento"]
    return datetime(born.year, born.month, born.day) <= r["data_cadastro"]


_TOTAL = sum(STATUS_CONSULTA.values())

RULES: list[Rule] = [
    RowRule(
        "pacientes.cpf has valid check digits",
        "pacientes",
        lambda r: brazil.is_valid_cpf(r["cpf"]),
    ),
    RowRule(
        "pacientes.telefone is a Brazilian number",
        "pacientes",
        optional(brazil.is_valid_phone, "telefone"),
    ),
    RowRule(
        "pacientes.nascimento <= data_cadastro", "pacientes", _born_before_cadastro
    ),
    RowRule(
        "medicos.crm is CRM/UF 123456",
        "medicos",
        lambda r: brazil.is_valid_crm(r["crm"]),
    ),
    RowRule(
        "medicos.telefone is a Brazilian number",
        "medicos",
        optional(brazil.is_valid_phone, "telefone"),
    ),
    RowRule(
        "convenios.cnpj has valid check digits",
        "convenios",
        lambda r: brazil.is_valid_cnpj(r["cnpj"]),
    ),
    RowRule(
        "convenios.tipo in publico|privado|empresarial",
        "convenios",
        lambda r: r["tipo"] in TIPOS_CONVENIO,
    ),
    RowRule(
        "consultas.status in the domain",
        "consultas",
        lambda r: r["status"] in STATUS_CONSULTA,
    ),
    RowRule(
        "consultas.data >= paciente.data_cadastro",
        "consultas",
        _on_or_after_cadastro("data"),
        CADASTRO,
    ),
    RowRule(
        "exames.tipo_exame is a known exam",
        "exames",
        lambda r: r["tipo_exame"] in TIPOS_EXAME,
    ),
    RowRule(
        "exames.data >= paciente.data_cadastro",
        "exames",
        _on_or_after_cadastro("data"),
        CADASTRO,
    ),
    RowRule(
        "internacoes.data_entrada >= paciente.data_cadastro",
        "internacoes",
        _on_or_after_cadastro("data_entrada"),
        CADASTRO,
    ),
    RowRule(
        "internacoes.data_saida >= data_entrada",
        "internacoes",
        lambda r: r["data_saida"] is None or r["data_saida"] >= r["data_entrada"],
    ),
    RowRule("internacoes closed after 3-10 days", "internacoes", _stay_ok),
    QueryRule(
        f"pacientes hold at most {MAX_CONVENIOS} convenios",
        "pacientes_convenios",
        "SELECT paciente_id FROM pacientes_convenios GROUP BY paciente_id "
        f"HAVING count(*) > {MAX_CONVENIOS} ORDER BY paciente_id",
    ),
    *[
        ShareRule(
            f"consultas '{status}' share",
            "consultas",
            f"status = '{status}'",
            weight / _TOTAL,
        )
        for status, weight in STATUS_CONSULTA.items()
    ],
    ShareRule(
        "internacoes still open (20-30%)",
        "internacoes",
        "data_saida IS NULL",
        OPEN_STAY,
        tolerance=0.05,
    ),
]
"""Every hospital rule, in report order."""
