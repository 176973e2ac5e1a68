"""The specs' own seeding design, rebuilt faithfully as the benchmark's baseline.

Spec 002's ``seed.py``/``data_gen.py`` and spec 000's ``db_utils.fast_insert``:
one Faker call per field per row (pt_BR), uniqueness of CPF/CRM/CNPJ by an
in-memory set and retry, parent ids fetched from the database before dependent
tables, psycopg2 ``execute_values`` with ``page_size`` = batch size, one commit
per table (stage). Hospital tables only, at the volumes of a profile.

    python bench/spec_design.py DSN PROFILE    (prints: rows seconds)
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg2
from faker import Faker
from psycopg2.extras import execute_values

STATUS = ["agendada", "realizada", "cancelada", "faltou"]
EXAMES = ["hemograma", "raio-x", "tomografia", "ultrassom", "PCR", "ECG"]


def main(dsn: str, profile_name: str) -> None:
    from pytest_oltpseed.profiles import resolve  # the volumes (not the design's)

    profile = resolve(profile_name)
    conn = psycopg2.connect(dsn)
    started = time.perf_counter()
    rows = seed_tables(conn, profile.count, profile.batch_size)
    conn.close()
    print(rows, f"{time.perf_counter() - started:.3f}")


def seed_tables(
    conn: Any, count: Callable[[str], int], batch: int, *, per_batch: bool = False
) -> int:
    """Every hospital table at ``count(table)`` rows; the rows written.

    ``per_batch``: a commit per batch of ``batch`` rows, as spec 002's
    ``seed.py`` says (``spec_design_cli.py``); otherwise one per table."""
    fake = Faker("pt_BR")
    Faker.seed(0)
    random.seed(0)
    cur = conn.cursor()
    rows = 0

    def insert(table: str, columns: str, values: list[tuple]) -> None:
        nonlocal rows
        statement = f"INSERT INTO {table} ({columns}) VALUES %s"
        for at in range(0, len(values), batch) if per_batch else (0,):
            part = values[at : at + batch] if per_batch else values
            execute_values(cur, statement, part, page_size=batch)
            conn.commit()
        rows += len(values)

    crms: set[str] = set()
    medicos = []
    while len(medicos) < count("medicos"):
        crm = f"CRM/{fake.estado_sigla()} {fake.random_number(digits=6, fix_len=True)}"
        if crm in crms:
            continue
        crms.add(crm)
        medicos.append((fake.name(), crm, fake.job()[:80], fake.phone_number()))
    insert("medicos", "nome, crm, especialidade, telefone", medicos)

    cnpjs: set[str] = set()
    convenios = []
    while len(convenios) < count("convenios"):
        cnpj = fake.cnpj()
        if cnpj in cnpjs:
            continue
        cnpjs.add(cnpj)
        convenios.append(
            (
                fake.company()[:120],
                cnpj,
                random.choice(["publico", "privado", "empresarial"]),
                random.choice(["ambulatorial", "hospitalar", "integral"]),
            )
        )
    insert("convenios", "nome, cnpj, tipo, cobertura", convenios)

    cpfs: set[str] = set()
    pacientes = []
    while len(pacientes) < count("pacientes"):
        cpf = fake.cpf()
        if cpf in cpfs:
            continue
        cpfs.add(cpf)
        pacientes.append(
            (
                fake.name(),
                fake.date_of_birth(maximum_age=95),
                cpf,
                fake.phone_number(),
                fake.address().replace("\n", ", ")[:200],
                fake.date_time_between(start_date="-2y", end_date="now"),
            )
        )
    insert(
        "pacientes",
        "nome, nascimento, cpf, telefone, endereco, data_cadastro",
        pacientes,
    )
    del pacientes

    cur.execute("SELECT id, data_cadastro FROM pacientes")
    patients = cur.fetchall()
    cur.execute("SELECT id FROM medicos")
    doctors = [r[0] for r in cur.fetchall()]
    cur.execute("SELECT id FROM convenios")
    plans = [r[0] for r in cur.fetchall()]

    pairs: set[tuple[int, int]] = set()
    links = []
    while len(links) < count("pacientes_convenios"):
        pair = (random.choice(patients)[0], random.choice(plans))
        if pair in pairs:
            continue
        pairs.add(pair)
        links.append(
            (
                *pair,
                fake.bothify("################"),
                fake.date_between(start_date="today", end_date="+3y"),
            )
        )
    insert(
        "pacientes_convenios",
        "paciente_id, convenio_id, numero_carteira, validade",
        links,
    )

    def after(cadastro: object) -> object:
        return fake.date_time_between(start_date=cadastro, end_date="now")

    consultas = []
    for _ in range(count("consultas")):
        pid, cadastro = random.choice(patients)
        consultas.append(
            (
                pid,
                random.choice(doctors),
                after(cadastro),
                fake.sentence(nb_words=4)[:200],
                random.choices(STATUS, weights=[55, 35, 5, 5])[0],
            )
        )
    insert("consultas", "paciente_id, medico_id, data, motivo, status", consultas)
    del consultas

    exames = []
    for _ in range(count("exames")):
        pid, cadastro = random.choice(patients)
        exames.append(
            (
                pid,
                random.choice(EXAMES),
                after(cadastro),
                fake.sentence(nb_words=3)[:200],
            )
        )
    insert("exames", "paciente_id, tipo_exame, data, resultado", exames)
    del exames

    internacoes = []
    for _ in range(count("internacoes")):
        pid, cadastro = random.choice(patients)
        entrada = after(cadastro)
        saida = (
            None
            if random.random() < 0.25
            else entrada + timedelta(days=random.randint(3, 10))
        )
        internacoes.append(
            (
                pid,
                entrada,
                saida,
                fake.sentence(nb_words=3)[:200],
                str(fake.random_int(100, 999)),
            )
        )
    insert(
        "internacoes",
        "paciente_id, data_entrada, data_saida, motivo, quarto",
        internacoes,
    )
    return rows


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
