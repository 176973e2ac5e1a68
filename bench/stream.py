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
    .venv/bin/python bench/stream.py --only clients [--events 8000] [--seconds 5]

``--only clients``: events/s and row changes/s of ``--clients 1, 2, 4`` per
domain (``--interval 0``, fresh MEDIUM database each), next to ``pgbench -N
-c C -j C -T SECONDS`` at the same client counts on a ``pgbench -i -s 4``
database of the same server, in the same run.
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
        help="With --only changes: the domain(s) to run (default: each and all).",
    )
    args = parser.parse_args()
    if args.only == "changes":
        changes_cost(args.events, args.repeat, args.domain or DOMAINS)
        return
    if args.only == "clients":
        clients_scaling(
            args.events, args.seconds, args.domain or ["hospital", "retail"]
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


def clients_scaling(events: int, seconds: int, domains: list[str]) -> None:
    """``--clients 1, 2, 4`` per domain beside ``pgbench -N -c`` (same run),
    with the CPU each event cost the clients (Python; the CLI's start-up, a
    one-event run's, left out) and the server: on 2 cores, events/s is at
    most 2 / (client + server CPU seconds per event)."""
    print(
        "| run | clients | events | events/s | row changes/s | vs 1 client "
        "| client CPU ms/event | server CPU ms/event | cores busy |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    with ephemeral_server() as server:
        for domain in domains:
            one = 0.0
            dsn = fresh_database(server, f"bench_c0_{domain}", domain, "MEDIUM")
            start_up = _client_cpu()  # start-up and warm-up, left out below
            stream(dsn, "--domain", domain, "--max-events", "1", "--interval", "0")
            start_up = _client_cpu() - start_up
            for clients in CLIENTS:
                dsn = fresh_database(
                    server, f"bench_c{clients}_{domain}", domain, "MEDIUM"
                )
                cpu, backends, began = _client_cpu(), _server_cpu(server), time.time()
                document = stream(
                    dsn, "--domain", domain, "--interval", "0", "--jitter-ms", "0",
                    "--batch-size", "50", "--max-events", str(events),
                    "--clients", str(clients),
                )  # fmt: skip
                wall = time.time() - began
                time.sleep(0.5)  # the backends exit after the stream
                cpu = _client_cpu() - cpu - start_up
                backends = _server_cpu(server) - backends
                rate = float(document["events_per_s"])
                committed = document["events"]["committed"]
                rows = sum(sum(ops.values()) for ops in document["tables"].values())
                one = one or rate
                per = 1000 / max(committed, 1)
                print(
                    f"| oltpseed stream, {domain} | {clients} | {committed:,} | "
                    f"{rate:,.0f} | {rate * rows / max(committed, 1):,.0f} | "
                    f"{rate / one:.2f}x | {cpu * per:.3f} | {backends * per:.3f} | "
                    f"{(cpu + backends) / wall:.2f} |",
                    flush=True,
                )
        pgbench = str(find_bindir() / "pgbench")
        fresh_database(server, "bench_pgbench", None)
        target = server.dsn("bench_pgbench")
        subprocess.run(
            [pgbench, "-i", "-q", "-s", "4", "-d", target],
            check=True, capture_output=True,
        )  # fmt: skip
        one = 0.0
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for clients in CLIENTS:
            done = subprocess.run(
                [pgbench, "-N", "-c", str(clients), "-j", str(clients),
                 "-T", str(seconds), "-d", target],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            found = re.search(r"tps = ([\d.]+)", done.stdout)
            tps = float(found.group(1)) if found else 0.0
            one = one or tps
            print(
                f"| pgbench -N (3 row changes/tx), scale 4 | {clients} | - | "
                f"{tps:,.0f} tx/s | {tps * 3:,.0f} | {tps / one:.2f}x | - | - | - |",
                flush=True,
            )


if __name__ == "__main__":
    main()
