"""Row generation speed: the bulk path vs factory_boy vs the spec's per-row Faker.

Prints rows/s per hospital table for:
  make_row  - the factories' declarations evaluated directly (the seeder's path)
  build     - the same factories through factory_boy's build()
  spec      - spec 002's data_gen style: one Faker call per field per row
No database is involved: this isolates generation, the part that is Python.

    .venv/bin/python bench/generate.py [ROWS]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import datetime

from faker import Faker

from pytest_oltpseed.data.factory import Context, Ref, Row, bind, factory_for

TABLES = ("pacientes", "medicos", "consultas", "exames", "internacoes")


def _rate(n: int, make: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(n):
        make()
    return n / (time.perf_counter() - start)


def _spec_row(fake: Faker, table: str) -> dict[str, object]:
    """What spec 002's data_gen.py would do: Faker for every field."""
    if table == "pacientes":
        return {
            "nome": fake.name(),
            "nascimento": fake.date_of_birth(),
            "cpf": fake.cpf(),
            "telefone": fake.phone_number(),
            "endereco": fake.address(),
            "data_cadastro": fake.date_time(),
        }
    if table == "medicos":
        return {
            "nome": fake.name(),
            "crm": f"CRM/{fake.estado_sigla()} {fake.random_number(6)}",
            "especialidade": fake.job(),
            "telefone": fake.phone_number(),
        }
    return {
        "paciente_id": fake.random_int(1, 2000),
        "data": fake.date_time(),
        "motivo": fake.sentence(),
        "status": fake.random_element(("agendada", "realizada", "cancelada", "faltou")),
    }


def main(n: int) -> None:
    patient = Row(id=1, data_cadastro=datetime(2024, 5, 1))
    doctor = Row(id=1)
    parents = {
        "paciente_id": lambda _row: Ref("pacientes", patient),
        "medico_id": lambda _row: Ref("medicos", doctor),
    }
    fake = Faker("pt_BR")
    fake.seed_instance(0)
    print(f"rows/s over {n} rows per table (no database)")
    print(f"{'table':<14}{'make_row':>12}{'build':>12}{'spec Faker':>12}")
    for table in TABLES:
        factory = factory_for(table)
        ctx = Context(None, seed=0)
        ctx.pools.first_names, ctx.pools.streets  # noqa: B018 - build pools first
        bulk = _rate(n, lambda f=factory, c=ctx: f.make_row(c, parents))
        fks = {
            k: v(None) for k, v in parents.items() if k in dict(factory._declarations())
        }
        with bind(None, seed=0):
            built = _rate(n // 4, lambda f=factory, o=fks: f.build(**o))
        spec = _rate(n // 4, lambda t=table: _spec_row(fake, t))
        print(f"{table:<14}{bulk:>12,.0f}{built:>12,.0f}{spec:>12,.0f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
