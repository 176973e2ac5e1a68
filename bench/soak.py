"""Soak: ``oltpseed stream --rate R --clients N`` for many minutes, watched.

Not a test (it runs for half an hour): a bench that answers whether a long
concurrent stream stays flat and exact. Every ``--sample`` seconds it reads
the resident memory (``VmRSS``) of the stream's parent process and of every
client process, and the merged ``--report`` the parent refreshes every second
(events committed, lag and latency p99 so far, worst client). At the end:

* memory: every process's RSS over the last 10 minutes within 10% of its RSS
  at minute 10 (shorter runs: the last half against the middle);
* lag p99 (event started - event due, whole run, worst client) under 100 ms;
* report == database == WAL: the report's inserts - deletes equal every
  table's COUNT(*) change, and ``oltpseed cdc verify --report`` over a slot
  made before the run finds exactly the reported changes per table and
  operation, every batch once and in order, nothing out of band.

    .venv/bin/python bench/soak.py [--minutes 30] [--rate 2000] [--clients 4]
        [--domain all] [--profile MEDIUM] [--dsn URL]

Without ``--dsn`` it runs on a fresh database of an ephemeral server of its
own; with one, on that database as it is (the stream installs a missing
schema), through a slot of its own name that it drops at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from runs import STEERING, fresh_database

from pytest_oltpseed import db
from pytest_oltpseed.domains import select, tables_of
from pytest_oltpseed.server.embedded import ephemeral_server

SLOT = "oltpseed_soak"
LAG_P99_MS = 100.0
RSS_TOLERANCE = 0.10


@dataclass
class Sample:
    at_s: float
    committed: int
    lag_p99: float
    latency_p99: float
    rss_kb: dict[str, int]  # "parent", "client 0", ...
    load: float


@dataclass
class Soak:
    samples: list[Sample] = field(default_factory=list)


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def read_report(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_oltpseed", *args],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip


def counts(dsn: str, tables: list[str]) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return {t: n or 0 for t, n in db.table_counts(conn, tables).items()}


@contextmanager
def target(args: argparse.Namespace) -> Iterator[str]:
    if args.dsn:
        yield args.dsn
        return
    with ephemeral_server() as server:
        yield fresh_database(server, "soak", args.domain, args.profile)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--domain", default="all")
    parser.add_argument("--profile", default="MEDIUM")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--sample", type=float, default=10.0, help="seconds")
    parser.add_argument("--dsn", help="Soak this database instead of a fresh one.")
    args = parser.parse_args()
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        dsn = stack.enter_context(target(args))
        return soak(args, dsn, work)


def soak(args: argparse.Namespace, dsn: str, work: Path) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith(STEERING)}
    env["LOG_DIR"] = str(work / "logs")
    domain = ["--domain", args.domain]
    tables = tables_of(select(args.domain))
    started = cli("cdc", "start", "--dsn", dsn, "--slot", SLOT, *domain, env=env)
    if started.returncode != 0:
        print(f"cdc start failed: {started.stderr.strip()}", file=sys.stderr)
        return 1
    before = counts(dsn, tables)
    report = work / "report.json"
    seconds = args.minutes * 60
    print(
        f"soak: --rate {args.rate:g} --clients {args.clients} --domain "
        f"{args.domain} for {args.minutes:g} min, batch {args.batch_size}, "
        f"sample every {args.sample:g} s; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    stream = subprocess.Popen(
        [sys.executable, "-m", "pytest_oltpseed", "stream", "--dsn", dsn, *domain,
         "--rate", str(args.rate), "--clients", str(args.clients),
         "--duration", str(seconds), "--batch-size", str(args.batch_size),
         "--progress", "0", "--report", str(report)],
        env=env, stdout=subprocess.DEVNULL, stderr=(work / "stderr").open("w"),
    )  # fmt: skip
    soaked = watch(stream, report, args.sample)
    code = stream.wait()
    document = read_report(report) or {}
    after = counts(dsn, tables)
    verified = cli(
        "cdc", "verify", "--dsn", dsn, "--slot", SLOT, "--report", str(report),
        "--json", *domain, env=env,
    )  # fmt: skip
    cli("cdc", "stop", "--dsn", dsn, "--slot", SLOT, *domain, env=env)
    print_minutes(soaked.samples)
    stderr = (work / "stderr").read_text()
    return verdict(args, soaked, code, document, before, after, verified, stderr)


def watch(stream: subprocess.Popen[bytes], report: Path, every: float) -> Soak:
    """Sample until the stream exits; a line per minute as it goes."""
    soaked = Soak()
    began = time.monotonic()
    next_at = began + every
    shown = 0
    while stream.poll() is None:
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at += every
        document = read_report(report)
        if document is None or stream.poll() is not None:
            continue
        rss = {"parent": rss_kb(stream.pid) or 0}
        for index, pid in enumerate(children(stream.pid)):
            rss[f"client {index}"] = rss_kb(pid) or 0
        soaked.samples.append(
            Sample(
                at_s=time.monotonic() - began,
                committed=int(document["events"]["committed"]),
                lag_p99=float(document.get("lag_ms", {}).get("p99", 0.0)),
                latency_p99=float(document.get("latency_ms", {}).get("p99", 0.0)),
                rss_kb=rss,
                load=os.getloadavg()[0],
            )
        )
        sample = soaked.samples[-1]
        if sample.at_s // 60 > shown:  # a line a minute, for a log tailed live
            shown = int(sample.at_s // 60)
            rss = sum(sample.rss_kb.values()) / 1024
            print(
                f"{shown} min: {sample.committed:,} events, lag p99 "
                f"{sample.lag_p99:.1f} ms, RSS {rss:.0f} MB in "
                f"{len(sample.rss_kb)} processes, load {sample.load:.2f}",
                flush=True,
            )
    return soaked


def by_minute(samples: list[Sample]) -> list[Sample]:
    """The last sample of each whole minute."""
    minutes: dict[int, Sample] = {}
    for sample in samples:
        minutes[int(sample.at_s // 60)] = sample
    return [minutes[m] for m in sorted(minutes)]


def print_minutes(samples: list[Sample]) -> None:
    if not samples:
        return
    names = list(samples[-1].rss_kb)
    print(
        "\n| minute | events/s | lag p99 ms (so far) | latency p99 ms (so far) "
        "| load 1m | " + " | ".join(f"RSS {n} MB" for n in names) + " |"
    )
    print("|---:" * (5 + len(names)) + "|")
    previous: Sample | None = None
    for sample in by_minute(samples):
        span = sample.at_s - (previous.at_s if previous else 0.0)
        done = sample.committed - (previous.committed if previous else 0)
        rss = " | ".join(f"{sample.rss_kb.get(n, 0) / 1024:.1f}" for n in names)
        print(
            f"| {int(sample.at_s // 60) + 1} | {done / max(span, 1e-9):,.0f} | "
            f"{sample.lag_p99:.1f} | {sample.latency_p99:.1f} | "
            f"{sample.load:.2f} | {rss} |"
        )
        previous = sample


def flat_memory(samples: list[Sample], minutes: float) -> tuple[bool, list[str]]:
    """Every process's RSS in the last window within 10% of the reference:
    minute 10 and the last 10 minutes (the middle and the last half when the
    run is shorter than 20 minutes)."""
    reference_s = min(600.0, minutes * 30)
    window_s = min(600.0, minutes * 60 - reference_s)
    end = samples[-1].at_s
    reference = min(samples, key=lambda s: abs(s.at_s - reference_s))
    window = [s for s in samples if s.at_s >= end - window_s]
    ok, lines = True, []
    for name, base in reference.rss_kb.items():
        values = [s.rss_kb[name] for s in window if s.rss_kb.get(name)]
        if not values or not base:
            ok = False
            lines.append(f"{name}: no samples")
            continue
        worst = max(abs(v - base) / base for v in values)
        ok &= worst <= RSS_TOLERANCE
        lines.append(
            f"{name}: {base / 1024:.1f} MB at {reference.at_s / 60:.1f} min, "
            f"{min(values) / 1024:.1f}-{max(values) / 1024:.1f} MB over the last "
            f"{window_s / 60:.0f} min ({worst * 100:+.1f}% worst)"
        )
    return ok, lines


def verdict(
    args: argparse.Namespace,
    soaked: Soak,
    code: int,
    document: dict[str, Any],
    before: dict[str, int],
    after: dict[str, int],
    verified: subprocess.CompletedProcess[str],
    stderr: str,
) -> int:
    results: list[tuple[str, bool, str]] = []
    events = document.get("events", {})
    results.append(
        (
            "stream exit",
            code == 0 and document.get("exit") == "completed",
            f"exit code {code}, {document.get('exit')}, {events.get('committed', 0):,}"
            f" events at {document.get('events_per_s', 0):,.1f}/s, reconnects "
            f"{document.get('reconnects')}, retried batches "
            f"{document.get('retried_batches')}, skipped {events.get('skipped')}",
        )
    )
    if soaked.samples:
        ok, lines = flat_memory(soaked.samples, args.minutes)
        results.append(("RSS flat", ok, "; ".join(lines)))
    lag = document.get("lag_ms", {})
    results.append(
        (
            "lag p99 < 100 ms",
            float(lag.get("p99", 1e9)) < LAG_P99_MS,
            f"lag p50/p95/p99/max {lag.get('p50')}/{lag.get('p95')}/"
            f"{lag.get('p99')}/{lag.get('max')} ms (worst client); latency "
            f"p99 {document.get('latency_ms', {}).get('p99')} ms",
        )
    )
    wrong = [
        f"{t} {after[t] - before[t]:+d} vs {ops['insert'] - ops['delete']:+d}"
        for t, ops in document.get("tables", {}).items()
        if after[t] - before[t] != ops["insert"] - ops["delete"]
    ]
    rows = sum(sum(ops.values()) for ops in document.get("tables", {}).values())
    results.append(
        (
            "report == database",
            bool(document) and not wrong,
            "; ".join(wrong) or f"{len(after)} tables, {rows:,} row changes",
        )
    )
    try:
        wal = json.loads(verified.stdout)
    except ValueError:
        wal = {}
    results.append(
        (
            "report == WAL (cdc verify)",
            verified.returncode == 0 and bool(wal.get("ok")),
            f"exit {verified.returncode}, "
            f"{wal.get('batches', {}).get('captured', 0):,} batches captured of "
            f"{wal.get('batches', {}).get('reported', 0):,} reported, "
            f"{sum(t['captured'] for t in wal.get('tables', [])):,} row changes"
            + (f"; {verified.stderr.strip()}" if verified.returncode else ""),
        )
    )
    print()
    for name, ok, detail in results:
        print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}")
    if code != 0:
        print("stream stderr (last lines):", *stderr.splitlines()[-5:], sep="\n  ")
    passed = all(ok for _, ok, _ in results)
    print(f"\nsoak {'PASSED' if passed else 'FAILED'}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
