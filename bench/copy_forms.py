"""Server CPU a row of COPY into a ``consultas``-shaped table, by form.

The same 400,000 generated rows are copied into a fresh table on one
ephemeral server, each form twice; printed: the backend's CPU microseconds
a row during the COPY, after it (building the primary key when it was
dropped) and in all, and the wall seconds. Forms: text COPY with the key
from the column's default (``nextval``) or given, with the primary key kept
up to date or built after the load (what the seeder does for an empty
table's keys, see docs/seeding.md), and binary COPY the same two ways.

    .venv/bin/python bench/copy_forms.py [--rows 400000]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg

from pytest_oltpseed.server.embedded import ephemeral_server

TABLE = """DROP TABLE IF EXISTS c; CREATE TABLE c (
  id BIGSERIAL PRIMARY KEY, paciente_id BIGINT NOT NULL, medico_id BIGINT NOT NULL,
  data TIMESTAMP NOT NULL, motivo VARCHAR(200) NOT NULL,
  status VARCHAR(20) NOT NULL
         CHECK (status IN ('agendada','realizada','cancelada','faltou')),
  created_at TIMESTAMP NOT NULL DEFAULT now(),
  updated_at TIMESTAMP NOT NULL DEFAULT now())"""
COLUMNS = "paciente_id, medico_id, data, motivo, status"
TYPES = ["int8", "int8", "int8", "timestamp", "varchar", "varchar"]


def _rows(n: int) -> list[tuple[Any, ...]]:
    rng = random.Random(1)
    base = datetime(2020, 1, 1)
    reasons = [f"motivo {i} de consulta de rotina" for i in range(50)]
    status = ["agendada", "realizada", "cancelada", "faltou"]
    return [
        (i + 1, rng.randint(1, 200_000), rng.randint(1, 20_000),
         base + timedelta(seconds=rng.randint(0, 10**8)), rng.choice(reasons),
         rng.choice(status))
        for i in range(n)
    ]  # fmt: skip


def _text(rows: Sequence[tuple[Any, ...]], with_id: bool) -> bytes:
    skip = 0 if with_id else 1
    return "".join(
        "\t".join(str(v) for v in row[skip:]) + "\n" for row in rows
    ).encode()


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _form(
    conn: psycopg.Connection,
    label: str,
    rows: Sequence[tuple[Any, ...]],
    *,
    with_id: bool,
    key_after: bool,
    binary: bool,
    text: bytes,
) -> None:
    conn.execute(TABLE)  # type: ignore[arg-type]
    conn.commit()
    pid = conn.info.backend_pid
    columns = f"id, {COLUMNS}" if with_id else COLUMNS
    started, cpu_start = time.perf_counter(), _cpu(pid)
    with conn.transaction():
        if key_after:
            conn.execute("ALTER TABLE c DROP CONSTRAINT c_pkey")
        statement = f"COPY c ({columns}) FROM STDIN"
        if binary:
            statement += " (FORMAT BINARY)"
        with conn.cursor().copy(statement) as copy:  # type: ignore[arg-type]
            if binary:
                copy.set_types(TYPES)
                for row in rows:
                    copy.write_row(row)
            else:
                for at in range(0, len(text), 1 << 20):
                    copy.write(text[at : at + (1 << 20)])
        cpu_copied = _cpu(pid)
        if key_after:
            conn.execute("ALTER TABLE c ADD CONSTRAINT c_pkey PRIMARY KEY (id)")
    cpu_end, n = _cpu(pid), len(rows)
    copy_us, after_us = (
        1e6 * (cpu_copied - cpu_start) / n,
        1e6 * (cpu_end - cpu_copied) / n,
    )
    print(
        f"{label:<34}{copy_us:>7.2f}{after_us:>7.2f}{copy_us + after_us:>7.2f}"
        f"{time.perf_counter() - started:>8.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400_000)
    args = parser.parse_args()
    rows = _rows(args.rows)
    texts = {True: _text(rows, True), False: _text(rows, False)}
    forms = [
        ("text, nextval, key kept", False, False, False),
        ("text, id given, key kept", True, False, False),
        ("text, nextval, key after", False, True, False),
        ("text, id given, key after", True, True, False),
        ("binary, id given, key kept", True, False, True),
        ("binary, id given, key after", True, True, True),
    ]
    print(f"{'form':<34}{'copy':>7}{'after':>7}{'total':>7}{'wall s':>8}")
    print(f"{'':<34}{'(server CPU us a row)':>21}")
    with ephemeral_server() as server, psycopg.connect(server.dsn("postgres")) as conn:
        for _ in range(2):
            for label, with_id, key_after, binary in forms:
                _form(
                    conn, label, rows, with_id=with_id, key_after=key_after,
                    binary=binary, text=texts[with_id],
                )  # fmt: skip


if __name__ == "__main__":
    main()
