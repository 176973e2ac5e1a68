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

import psycopg
from runs import fresh_database, stream

from pytest_oltpseed import cdc
from pytest_oltpseed.domains import select, tables_of
from pytest_oltpseed.server import ephemeral_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    args = parser.parse_args()
    domains = select("all")
    tables = tables_of(domains)
    print("| plugin | events | changes | transactions | decode s | changes/s | ok |")
    print("|---|---:|---:|---:|---:|---:|---|")
    with ephemeral_server() as server:
        for plugin in cdc.PLUGINS:
            dsn = fresh_database(server, f"bench_cdc_{plugin}", "all", "MEDIUM")
            with psycopg.connect(dsn, autocommit=True) as conn:
                cdc.create(conn, tables, plugin=plugin)
                report = stream(
                    dsn, "--interval", "0", "--jitter-ms", "0",
                    "--max-events", str(args.events),
                )  # fmt: skip
                done = cdc.verify(conn, report, tables)
                cdc.drop(conn)
            print(
                f"| {plugin} | {report['events']['committed']:,} | "
                f"{done.changes:,} | {done.transactions:,} | {done.seconds:.2f} | "
                f"{done.rate:,.0f} | {done.verdict.ok} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
