"""Stream throughput, rate accuracy and latency, as a user runs ``oltpseed stream``.

Each run is the CLI in its own process on a fresh database of one ephemeral
server, seeded at MEDIUM in-process first. Two measurements:

* maximum events/s: ``--interval 0 --jitter-ms 0 --batch-size 50`` for
  ``--max-events`` events, per domain and for both (best of ``--repeat``);
* rate accuracy: ``--rate 1000 --duration 20`` (target: within 2%);
* the cost of ``--changes`` (one JSON line per committed row change): the
  same maximum-rate run without and with it, alternated on fresh databases,
  best of ``--repeat`` each (target: under 10% of throughput).

Figures come from the ``--report`` each run writes (events/s over the time
spent streaming, latency = COMMIT acknowledged - event due, lag = event
started - event due).

    .venv/bin/python bench/stream.py [--events 30000] [--repeat 2] [--seconds 20]
    .venv/bin/python bench/stream.py --only changes [--events 20000] [--repeat 3]
        [--domain all]
    .venv/bin/python bench/stream.py --only clients [--events 40000] [--seconds 5]
        [--domain retail] [--code main=/tmp/main-code]

``--only clients``: events/s and row changes/s of ``--clients 1, 2, 4`` per
domain (``--interval 0``, each run on a freshly seeded MEDIUM database),
with the marginal CPU an event costs the clients and the server, next to
``pgbench -N -c C -j C -T SECONDS`` at the same client counts on a
``pgbench -i -s 4`` database of the same server, in the same run. With
``--code LABEL=DIR`` another version of the code runs too, alternated with
this one run by run.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from runs import fresh_database, stream

from pytest_oltpseed.server.embedded import ephemeral_server, find_bindir


def _row(label: str, document: dict[str, Any]) -> str:
    latency, lag = document["latency_ms"], document["lag_ms"]
    rows = sum(sum(ops.values()) for ops in document["tables"].values())
    committed = document["events"]["committed"]
    return (
        f"| {label} | {committed:,} | "
        f"{document['events_per_s']:,.0f} | {rows / committed:.1f} | "
        f"{latency['p50']:.1f} / {latency['p95']:.1f} / {latency['p99']:.1f} | "
        f"{lag['p50']:.1f} / {lag['p99']:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument(
        "--only",
        choices=("changes", "clients"),
        help="Run only the --changes comparison, or only the --clients scaling.",
    )
    parser.add_argument(
        "--domain",
        action="append",
        help="With --only changes or clients: the domain(s) to run.",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=50,
        help="With --only clients: events a transaction (the stream's default 50).",
    )
    parser.add_argument(
        "--code",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="With --only clients: also run the code in DIR (put first on "
        "PYTHONPATH, e.g. `git archive main pytest_oltpseed | tar -x -C DIR`), "
        "alternated with this checkout's run by run.",
    )
    args = parser.parse_args()
    if args.only == "changes":
        changes_cost(args.events, args.repeat, args.domain or DOMAINS)
        return
    if args.only == "clients":
        code: dict[str, Path | None] = {"this": None}
        for given in args.code:
            label, _, folder = given.partition("=")
            code[label] = Path(folder).resolve()
        clients_scaling(
            args.events,
            args.seconds,
            args.domain or ["hospital", "retail"],
            code,
            args.batch_size,
        )
        return
    header = (
        "| run | events | events/s | rows/event | latency p50/p95/p99 ms "
        "| lag p50/p99 ms |\n|---|---:|---:|---:|---:|---:|"
    )
    print(header)
    with ephemeral_server() as server:
        for domain in ("hospital", "retail", "all"):
            best: dict[str, Any] | None = None
            for attempt in range(args.repeat):
                dsn = fresh_database(
                    server, f"bench_{domain}_{attempt}", domain, "MEDIUM"
                )
                document = stream(
                    dsn, "--domain", domain, "--interval", "0", "--jitter-ms", "0",
                    "--batch-size", "50", "--max-events", str(args.events),
                )  # fmt: skip
                if best is None or document["events_per_s"] > best["events_per_s"]:
                    best = document
            assert best is not None
            print(_row(f"max, batch 50, {domain}", best), flush=True)
        for domain in ("hospital", "all"):
            dsn = fresh_database(server, f"bench_rate_{domain}", domain, "MEDIUM")
            document = stream(
                dsn, "--domain", domain, "--rate", str(args.rate), "--duration",
                str(args.seconds), "--batch-size", "50",
            )  # fmt: skip
            achieved = document["events_per_s"]
            error = (achieved - args.rate) / args.rate * 100
            print(
                _row(f"--rate {args.rate} for {args.seconds}s, {domain}", document)
                + f" achieved {achieved:,.1f}/s ({error:+.2f}%)",
                flush=True,
            )


DOMAINS = ["hospital", "retail", "all"]


def changes_cost(events: int, repeat: int, domains: list[str]) -> None:
    """Max-rate runs without and with ``--changes``, alternated, best of each."""
    print(
        "| domain | events | events/s without | events/s with --changes "
        "| changes lines | cost |\n|---|---:|---:|---:|---:|---:|"
    )
    with ephemeral_server() as server, tempfile.TemporaryDirectory() as work:
        for domain in domains:
            best: dict[bool, dict[str, Any]] = {}
            for attempt in range(repeat):
                for with_changes in (False, True):
                    name = f"bench_changes_{domain}_{attempt}_{int(with_changes)}"
                    dsn = fresh_database(server, name, domain, "MEDIUM")
                    extra = []
                    if with_changes:
                        extra = ["--changes", str(Path(work) / f"{name}.jsonl")]
                    document = stream(
                        dsn, "--domain", domain, "--interval", "0",
                        "--jitter-ms", "0", "--batch-size", "50",
                        "--max-events", str(events), *extra,
                    )  # fmt: skip
                    kept = best.get(with_changes)
                    if kept is None or document["events_per_s"] > kept["events_per_s"]:
                        best[with_changes] = document
            plain, written = best[False]["events_per_s"], best[True]["events_per_s"]
            print(
                f"| {domain} | {events:,} | {plain:,.0f} | {written:,.0f} | "
                f"{best[True]['changes']['lines']:,} | "
                f"{(plain - written) / plain * 100:+.1f}% |",
                flush=True,
            )


CLIENTS = (1, 2, 4)


def _server_cpu(server: Any) -> float:
    """CPU seconds of the server's exited backends (the postmaster's reaped
    children): a stream's connections close when it ends, so the difference
    around a run is what its backends used."""
    pid = int((server.datadir / "postmaster.pid").read_text().split()[0])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def _client_cpu() -> float:
    """CPU seconds of this process's waited-for descendants: the CLI and the
    client processes it forked and joined."""
    times = os.times()
    return times.children_user + times.children_system


def _fresh(server: Any, domain: str) -> str:
    """A freshly seeded MEDIUM database for one run (the previous run's
    dropped), then a CHECKPOINT, so no run inherits another's dirty buffers.
    Not a clone of one seeded database: on a ``CREATE DATABASE ... TEMPLATE``
    copy a retail event cost the server 0.44 ms of CPU against 0.15 on a
    freshly seeded one (two rounds each, same code), which no user sees."""
    dsn = fresh_database(server, "bench_run", domain, "MEDIUM")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    return dsn


def _measured(
    server: Any, dsn: str, env: dict[str, str], *args: str
) -> tuple[dict[str, Any], float, float, float]:
    """A stream run's report, client and server CPU seconds and wall time."""
    cpu, backends, began = _client_cpu(), _server_cpu(server), time.time()
    document = stream(dsn, *args, env=env)
    wall = time.time() - began
    time.sleep(0.5)  # the backends exit after the stream
    return document, _client_cpu() - cpu, _server_cpu(server) - backends, wall


def clients_scaling(
    events: int,
    seconds: int,
    domains: list[str],
    code: dict[str, Path | None],
    batch_size: int = 50,
) -> None:
    """``--clients 1, 2, 4`` per domain beside ``pgbench -N -c`` (same run),
    for each version of the code in ``code`` (label -> a directory put first
    on PYTHONPATH, None for this checkout), alternated run by run, each on a
    freshly seeded MEDIUM database.

    CPU per event is marginal: a run of one event per client on the same
    database first (the CLI's start-up, the clients' connections and warm-up,
    their backends'), subtracted from the full run's. ``cores streaming`` is
    events/s times that CPU: the cores the clients and their backends kept
    busy while streaming (2.00 is this machine saturated); ``start-up CPU``
    is the one-event run's, clients and server together."""
    print(
        "| code | run | clients | events | events/s | events/s by wall "
        "| row changes/s | vs 1 client "
        "| client CPU ms/event | server CPU ms/event | cores streaming "
        "| start-up CPU s | replays |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    base_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # autovacuum off: it analyses the tables a stream grows at a random
    # moment of some runs and not others, and its workers' CPU would count as
    # the stream's server CPU
    with ephemeral_server(options="-c autovacuum=off") as server:
        for domain in domains:
            one: dict[str, float] = {}
            for turn, clients in enumerate(CLIENTS):
                versions = list(code.items())  # who goes first alternates
                for label, path in versions[turn % 2 :] + versions[: turn % 2]:
                    env = dict(base_env)
                    if path is not None:
                        env["PYTHONPATH"] = str(path)
                    dsn = _fresh(server, domain)
                    common = ("--domain", domain, "--interval", "0",
                              "--jitter-ms", "0", "--batch-size", str(batch_size),
                              "--clients", str(clients))  # fmt: skip
                    _, cpu0, back0, wall0 = _measured(
                        server, dsn, env, *common, "--max-events", str(clients)
                    )
                    document, cpu, backends, wall = _measured(
                        server, dsn, env, *common, "--max-events", str(events)
                    )
                    rate = float(document["events_per_s"])
                    committed = document["events"]["committed"]
                    rows = sum(sum(ops.values()) for ops in document["tables"].values())
                    one.setdefault(label, rate)
                    per = 1000 / max(committed - clients, 1)
                    client_ms, server_ms = (cpu - cpu0) * per, (backends - back0) * per
                    # the report adds the clients' rates, each over its own
                    # streaming time; clients that did not overlap would add
                    # up to more than the run achieved: events over the wall
                    # time net of the one-event run's says what it did
                    by_wall = (committed - clients) / max(wall - wall0, 1e-9)
                    print(
                        f"| {label} | oltpseed stream, {domain} | {clients} | "
                        f"{committed:,} | {rate:,.0f} | {by_wall:,.0f} | "
                        f"{rate * rows / max(committed, 1):,.0f} | "
                        f"{rate / one[label]:.2f}x | {client_ms:.3f} | "
                        f"{server_ms:.3f} | "
                        f"{rate * (client_ms + server_ms) / 1000:.2f} | "
                        f"{cpu0 + back0:.2f} | {document['retried_batches']} |",
                        flush=True,
                    )
        pgbench = str(find_bindir() / "pgbench")
        fresh_database(server, "bench_pgbench", None)
        target = server.dsn("bench_pgbench")
        subprocess.run(
            [pgbench, "-i", "-q", "-s", "4", "-d", target],
            check=True, capture_output=True,
        )  # fmt: skip
        first = 0.0
        for clients in CLIENTS:
            done = subprocess.run(
                [pgbench, "-N", "-c", str(clients), "-j", str(clients),
                 "-T", str(seconds), "-d", target],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            found = re.search(r"tps = ([\d.]+)", done.stdout)
            tps = float(found.group(1)) if found else 0.0
            first = first or tps
            print(
                f"| - | pgbench -N (3 row changes/tx), scale 4 | {clients} | - | "
                f"{tps:,.0f} tx/s | - | {tps * 3:,.0f} | {tps / first:.2f}x "
                "| - | - | - | - | - |",
                flush=True,
            )
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
