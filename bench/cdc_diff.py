"""`oltpseed cdc diff` cost: a changes file against a Debezium sink file.

Both files are written first (not timed): ``--changes`` row changes of a
stream's shape (hospital tables, 60% inserts, 38% updates, 2% deletes, 50
changes a transaction, updates on earlier keys) and, for them, the Debezium
change events a PostgreSQL connector publishes: rows of ~12 columns, a
tombstone after each delete, with the ``schema`` wrapper (the JSON
converter's default, ~2 kB a message) or without it (``schemas.enable=
false``). Then ``diff`` runs in process; figures: wall and CPU seconds
(the machine is shared: CPU time is the steadier figure), sink lines per CPU
second, peak resident memory, and the verdict (must be ok).

    .venv/bin/python bench/cdc_diff.py [--changes 200000]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from pathlib import Path

from pytest_oltpseed.cdc import diff as sink_diff

TABLES = ("pacientes", "consultas", "exames", "internacoes", "medicos")
FIELDS = [
    {"type": "int64", "optional": False, "field": "id"},
    *({"type": "string", "optional": True, "field": f"c{n}"} for n in range(9)),
    {"type": "int64", "optional": False, "name": "io.debezium.time.MicroTimestamp",
     "field": "created_at"},
    {"type": "int64", "optional": False, "name": "io.debezium.time.MicroTimestamp",
     "field": "updated_at"},
]  # fmt: skip
ROW = {"type": "struct", "optional": True, "fields": FIELDS}
SCHEMA = {
    "type": "struct", "optional": False, "name": "oltp.public.consultas.Envelope",
    "fields": [
        {**ROW, "name": "oltp.public.consultas.Value", "field": "before"},
        {**ROW, "name": "oltp.public.consultas.Value", "field": "after"},
        {"type": "struct", "optional": False, "field": "source",
         "name": "io.debezium.connector.postgresql.Source", "fields": [
            {"type": "string", "optional": False, "field": f}
            for f in ("version", "connector", "name", "db", "schema", "table")
         ] + [{"type": "int64", "optional": True, "field": f}
              for f in ("ts_ms", "txId", "lsn", "xmin")]},
        {"type": "string", "optional": False, "field": "op"},
        {"type": "int64", "optional": True, "field": "ts_ms"},
    ],
}  # fmt: skip


def write_files(folder: Path, count: int, wrapped: bool) -> tuple[Path, Path, int]:
    rng = random.Random(7)
    expected, actual = folder / "changes.jsonl", folder / "sink.jsonl"
    live: dict[str, list[int]] = {t: [] for t in TABLES}
    next_id = dict.fromkeys(TABLES, 1)
    lines = 0
    with expected.open("w") as want, actual.open("w") as got:
        for number in range(count):
            xid, lsn = 5000 + number // 50, 10**9 + number * 120
            table = rng.choice(TABLES)
            draw = rng.random()
            if draw < 0.60 or not live[table]:
                op, key = "insert", next_id[table]
                next_id[table] += 1
                live[table].append(key)
            elif draw < 0.98:
                op, key = "update", rng.choice(live[table])
            else:
                op = "delete"
                key = live[table].pop(rng.randrange(len(live[table])))
            want.write(
                f'{{"run": "bench", "batch": {xid - 4999}, "xid": {xid}, '
                f'"table": "{table}", "op": "{op}", "key": {{"id": {key}}}}}\n'
            )
            stamp = 1_764_900_000_000_000
            values = {f"c{n}": f"valor {rng.random():.6f}" for n in range(9)}
            row = {"id": key, **values,
                   "created_at": stamp, "updated_at": stamp}  # fmt: skip
            payload = {
                "before": row if op == "delete" else None,
                "after": None if op == "delete" else row,
                "source": {"version": "2.7.3.Final", "connector": "postgresql",
                           "name": "oltp", "ts_ms": 1_764_900_000_000, "db": "oltp",
                           "schema": "public", "table": table, "txId": xid,
                           "lsn": lsn, "xmin": None},
                "op": {"insert": "c", "update": "u", "delete": "d"}[op],
                "ts_ms": 1_764_900_000_100,
            }  # fmt: skip
            message = {"schema": SCHEMA, "payload": payload} if wrapped else payload
            got.write(json.dumps(message, separators=(",", ":")) + "\n")
            lines += 1
            if op == "delete":
                got.write("null\n")
                lines += 1
    return expected, actual, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=200_000)
    args = parser.parse_args()
    print("| sink form | changes | sink lines | MB | wall s | CPU s | lines/CPU s "
          "| peak RSS MB | ok |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for wrapped in (True, False):
        with tempfile.TemporaryDirectory() as folder:
            expected, actual, lines = write_files(Path(folder), args.changes, wrapped)
            size = actual.stat().st_size / 1e6
            began, cpu = time.perf_counter(), time.process_time()
            found = sink_diff.diff(expected, actual)
            seconds = time.perf_counter() - began
            cpu = time.process_time() - cpu
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            form = "schema + payload" if wrapped else "payload only"
            print(
                f"| {form} | {args.changes:,} | {lines:,} | {size:,.0f} | "
                f"{seconds:.2f} | {cpu:.2f} | {lines / cpu:,.0f} | {peak:,.0f} | "
                f"{found.ok} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
