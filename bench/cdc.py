"""CDC verification cost: decoding the WAL of a stream run and reconciling it.

On a MEDIUM database of an ephemeral server: a slot and a publication, then
``oltpseed stream`` (the CLI) for ``--events`` events flat out, then the
slot's changes read and decoded in process, for each plugin:

* pgoutput (binary protocol 1, our decoder) and test_decoding (text lines);
* figures: changes decoded per second, transactions, and the reconciliation's
  verdict (must be ok).

    .venv/bin/python bench/cdc.py [--events 30000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import psycopg

from pytest_oltpseed import cdc, schema
from pytest_oltpseed.domains import select
from pytest_oltpseed.profiles import resolve
from pytest_oltpseed.seeding import Seeder, plan
from pytest_oltpseed.server import ephemeral_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    args = parser.parse_args()
    domains = select("all")
    tables = [t for d in domains for t in d.tables]
    print("| plugin | events | changes | transactions | decode s | changes/s | ok |")
    print("|---|---:|---:|---:|---:|---:|---|")
    with ephemeral_server() as server:
        for plugin in cdc.PLUGINS:
            name = f"bench_cdc_{plugin}"
            with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")
            dsn = server.dsn(name)
            with psycopg.connect(dsn) as conn:
                schema.install(conn, domains)
                Seeder(conn).run(plan(domains, resolve("MEDIUM")))
            with psycopg.connect(dsn, autocommit=True) as conn:
                cdc.create(conn, tables, plugin=plugin)
                report = _stream(dsn, args.events)
                done = cdc.verify(conn, report, tables)
                cdc.drop(conn)
            print(
                f"| {plugin} | {report['events']['committed']:,} | "
                f"{done.changes:,} | {done.transactions:,} | {done.seconds:.2f} | "
                f"{done.rate:,.0f} | {done.verdict.ok} |",
                flush=True,
            )


def _stream(dsn: str, events: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as work:
        report = Path(work) / "report.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LOG_DIR"] = str(Path(work) / "logs")
        done = subprocess.run(
            [sys.executable, "-m", "pytest_oltpseed", "stream", "--dsn", dsn,
             "--interval", "0", "--jitter-ms", "0", "--max-events", str(events),
             "--progress", "0", "--report", str(report)],
            env=env, capture_output=True, text=True, check=False, cwd=work,
        )  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"stream failed: {done.stderr.strip()}")
        return dict(json.loads(report.read_text()))


if __name__ == "__main__":
    main()
