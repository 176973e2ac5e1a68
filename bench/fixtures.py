"""Fixture overhead: what ``oltp_conn`` and ``oltp_database`` cost a test.

Uses the plugin's own machinery on an ephemeral server: a seeded template per
profile, then per "test" the work the fixtures do around it. Prints, per
profile: the template's seeding time once, ``oltp_conn``'s per-test cost (open
the transaction, roll it back), and an ``oltp_database`` clone + drop with
both ``CREATE DATABASE`` strategies (WAL_LOG, PostgreSQL 15's default, and
FILE_COPY, which the janitor uses). Then what ``oltp_database`` costs a test
(taking the clone plus handing it back) through the clone pool, at each
``--pool-sizes`` (0 is no pool: clone and drop inside the test), for tests
whose own work takes ``--work-ms``.

    .venv/bin/python bench/fixtures.py [--profiles SMALL,MEDIUM] [--rounds 30]
        [--pool-sizes 0,1,2,4] [--work-ms 200]
    .venv/bin/python bench/fixtures.py --batch 10000 [--batch-table consultas]
        [--runs 5]

``--batch N`` instead times ``create_batch(N)`` of one factory on a clone of
the MEDIUM template (rows/s), ``--runs`` times side by side with the row path
(``OLTPSEED_FAST=0``) and with ``create()`` called for a tenth of N.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import psycopg
from psycopg import sql

from pytest_oltpseed.data.factory import bind, factory_for
from pytest_oltpseed.domains import select
from pytest_oltpseed.fixtures.databases import IsolatedConnection
from pytest_oltpseed.fixtures.janitor import Janitor, Recipe
from pytest_oltpseed.fixtures.pool import ClonePool
from pytest_oltpseed.profiles import resolve
from pytest_oltpseed.server.embedded import ephemeral_server


def _ms(samples: list[float]) -> str:
    return (
        f"median {statistics.median(samples) * 1000:7.2f} ms  "
        f"p90 {sorted(samples)[int(len(samples) * 0.9)] * 1000:7.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", default="SMALL,MEDIUM")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--pool-sizes", default="0,1,2,4")
    parser.add_argument("--work-ms", type=float, default=200.0)
    parser.add_argument("--skip-strategies", action="store_true")
    parser.add_argument("--batch", type=int, default=0)
    parser.add_argument("--batch-table", default="consultas")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if args.batch:
        _batch(args)
        return
    with ephemeral_server() as server:
        janitor = Janitor(server.dsn)
        for name in args.profiles.split(","):
            profile = resolve(name.strip().upper())
            started = time.perf_counter()
            template = janitor.template(Recipe(profile, tuple(select("all")), 0)).name
            print(
                f"{profile.name}: template seeded once in "
                f"{time.perf_counter() - started:.2f} s"
            )
            work = janitor.clone(template)
            conn = IsolatedConnection.connect(server.dsn(work))
            samples = []
            for _ in range(args.rounds):
                t = time.perf_counter()
                conn.begin_test()  # the fixture opens the transaction
                conn.execute("DELETE FROM internacoes")  # a test's own work ...
                samples.append(time.perf_counter() - t)
                t2 = time.perf_counter()
                conn.end_test()  # ... and the fixture's teardown
                samples[-1] += time.perf_counter() - t2
            conn.close()
            janitor.drop(work)
            print(f"  oltp_conn per test (incl. a DELETE):   {_ms(samples)}")
            for size in (int(n) for n in args.pool_sizes.split(",")):
                print(f"  oltp_database a test, pool size {size}:  ", end="")
                print(_ms(_pooled(janitor, template, size, args)))
            for strategy in ("WAL_LOG", "FILE_COPY") * (not args.skip_strategies):
                samples = []
                with psycopg.connect(server.dsn("postgres"), autocommit=True) as admin:
                    for i in range(args.rounds):
                        clone = f"oltpseed_db_bench_{strategy.lower()}_{i}"
                        t = time.perf_counter()
                        admin.execute(
                            sql.SQL(
                                "CREATE DATABASE {} TEMPLATE {} STRATEGY {}"
                            ).format(
                                sql.Identifier(clone),
                                sql.Identifier(template),
                                sql.SQL(strategy),
                            )
                        )
                        samples.append(time.perf_counter() - t)
                        admin.execute(
                            sql.SQL("DROP DATABASE {}").format(sql.Identifier(clone))
                        )
                print(f"  oltp_database clone, {strategy:<9}:      {_ms(samples)}")


def _batch(args: argparse.Namespace) -> None:
    """create_batch(N) against create() one by one, on a seeded MEDIUM clone,
    ``--runs`` times side by side: the column-wise path, the row path
    (``OLTPSEED_FAST=0``) and ``create()`` for a tenth of N, each run rolled
    back so every run starts from the same database."""
    with ephemeral_server() as server:
        janitor = Janitor(server.dsn)
        template = janitor.template(Recipe(resolve("MEDIUM"), tuple(select("all")), 0))
        factory = factory_for(args.batch_table)
        n = max(1, args.batch // 10)
        rates: dict[str, list[float]] = {}
        print(f"load average {os.getloadavg()[0]:.2f} at start")
        with psycopg.connect(server.dsn(janitor.clone(template.name))) as conn:
            for run in range(args.runs):
                figures = []
                for label, fast in (("create_batch", "1"), ("row path", "0")):
                    os.environ["OLTPSEED_FAST"] = fast
                    with bind(conn, seed=run):
                        started = time.perf_counter()
                        rows = factory.create_batch(args.batch)
                        rate = len(rows) / (time.perf_counter() - started)
                    conn.rollback()
                    rates.setdefault(label, []).append(rate)
                    figures.append(f"{label} {rate:8,.0f}")
                os.environ.pop("OLTPSEED_FAST")
                with bind(conn, seed=run):
                    started = time.perf_counter()
                    for _ in range(n):
                        factory.create()
                    rate = n / (time.perf_counter() - started)
                conn.rollback()
                rates.setdefault("create()", []).append(rate)
                figures.append(f"create() x {n} {rate:6,.0f}")
                print(f"run {run + 1}: rows/s " + "  ".join(figures))
        print(f"load average {os.getloadavg()[0]:.2f} at end")
        for label, found in rates.items():
            median = statistics.median(found)
            print(
                f"{factory.__name__} {label:<12} median {median:8,.0f} rows/s"
                f"  (min {min(found):,.0f}, max {max(found):,.0f})"
            )


def _pooled(
    janitor: Janitor, template: str, size: int, args: argparse.Namespace
) -> list[float]:
    """Per test: take a clone, connect and do the test's work (a count, then
    sleep ``work_ms``), hand it back; only taking and handing back are timed."""
    pool = ClonePool(janitor, size)
    samples = []
    try:
        for _ in range(args.rounds):
            t = time.perf_counter()
            name = pool.take(template)
            taken = time.perf_counter() - t
            with psycopg.connect(janitor.dsn(name)) as conn:
                conn.execute("SELECT count(*) FROM pacientes").fetchone()
            time.sleep(args.work_ms / 1000)
            t = time.perf_counter()
            pool.give_back(name)
            samples.append(taken + time.perf_counter() - t)
    finally:
        pool.close()
    return samples


if __name__ == "__main__":
    main()
