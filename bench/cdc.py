"""CDC verification cost: decoding the WAL of a stream run and reconciling it.

On a MEDIUM database of an ephemeral server: a slot and a publication, then
``oltpseed stream`` (the CLI) for ``--events`` events flat out, then the
slot's changes read and decoded in process, for each plugin:

* pgoutput (binary protocol 1, our decoder) and test_decoding (text lines);
* figures: changes decoded per second, transactions, and the verdict (must be
  ok), for the verification per table x op against the report (``counts``)
  and key by key against the stream's ``--changes`` file as well (``keys``:
  reading the file, peeking and decoding the slot, both reconciliations),
  side by side on the same slot (it is peeked, so both read the same WAL);
  ``changes/CPU s`` divides by this process's CPU time (the server's
  decoding of the WAL is apart), steadier than wall time on a shared machine.
  Target (DESIGN.md): per-key verification at 40,000 changes/s or more.

    .venv/bin/python bench/cdc.py [--events 30000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import psycopg
from runs import fresh_database, stream

from pytest_oltpseed import cdc
from pytest_oltpseed.domains import select, tables_of
from pytest_oltpseed.server.embedded import ephemeral_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    args = parser.parse_args()
    domains = select("all")
    tables = tables_of(domains)
    print(
        "| plugin | verification | events | changes | transactions | s "
        "| changes/s | changes/CPU s | ok |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    with ephemeral_server() as server, tempfile.TemporaryDirectory() as work:
        for plugin in cdc.PLUGINS:
            dsn = fresh_database(server, f"bench_cdc_{plugin}", "all", "MEDIUM")
            changes = Path(work) / f"{plugin}.jsonl"
            with psycopg.connect(dsn, autocommit=True) as conn:
                cdc.create(conn, tables, plugin=plugin)
                report = stream(
                    dsn, "--interval", "0", "--jitter-ms", "0",
                    "--max-events", str(args.events), "--changes", str(changes),
                )  # fmt: skip
                for label, given in (("counts", None), ("keys", changes)) * 2:
                    cpu = time.process_time()
                    done = cdc.verify(conn, report, tables, changes=given)
                    cpu = time.process_time() - cpu
                    print(
                        f"| {plugin} | {label} | {report['events']['committed']:,} | "
                        f"{done.changes:,} | {done.transactions:,} | "
                        f"{done.seconds:.2f} | {done.rate:,.0f} | "
                        f"{done.changes / cpu:,.0f} | {done.ok} |",
                        flush=True,
                    )
                cdc.drop(conn)


if __name__ == "__main__":
    main()
