"""Stream latency at a fixed rate on a big database (issue 11: p95 870 ms at
``--rate 1000`` on STRESS).

Runs ``oltpseed stream --rate R --duration S --progress 5`` as a user would,
on a STRESS database (``--dsn`` one already seeded, or a fresh database of an
ephemeral server seeded in process first, about 45 s), and prints the run's
latency (event due -> its batch's COMMIT acknowledged) and lag (due ->
started) from its ``--report``, plus the worst 5-second window from its
progress lines. Run it for more than 60 s: what used to happen once a minute
(a COUNT(*) of every table, every parent sample and the stock tally drawn
again together) is then inside the run.

    .venv/bin/python bench/stream_latency.py [--dsn DSN] [--rate 1000]
        [--seconds 65] [--domain all]

To measure another checkout with the same command, put its root first on
PYTHONPATH (the stream runs as ``python -m pytest_oltpseed``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from runs import STEERING, fresh_database

from pytest_oltpseed.server.embedded import ephemeral_server

WINDOW = re.compile(r"progress: ([\d.]+) s, ([\d.]+) events/s, .* p95 ([\d.]+) ms")


def run(dsn: str, rate: int, seconds: int, domain: str) -> tuple[dict[str, Any], str]:
    with tempfile.TemporaryDirectory() as work:
        report = Path(work) / "report.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith(STEERING)}
        env["LOG_DIR"] = str(Path(work) / "logs")
        done = subprocess.run(
            [sys.executable, "-m", "pytest_oltpseed", "stream", "--dsn", dsn,
             "--domain", domain, "--rate", str(rate), "--duration", str(seconds),
             "--progress", "5", "--report", str(report)],
            env=env, capture_output=True, text=True, check=False, cwd=work,
        )  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"stream failed: {done.stderr.strip()[-500:]}")
        return dict(json.loads(report.read_text())), done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="a database already seeded at STRESS")
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=65)
    parser.add_argument("--domain", default="all")
    args = parser.parse_args()
    if args.dsn:
        document, log = run(args.dsn, args.rate, args.seconds, args.domain)
    else:
        with ephemeral_server() as server:
            dsn = fresh_database(server, "bench_latency", args.domain, "STRESS")
            document, log = run(dsn, args.rate, args.seconds, args.domain)
    windows = [
        (float(t), float(rate), float(p95)) for t, rate, p95 in WINDOW.findall(log)
    ]
    latency, lag = document["latency_ms"], document["lag_ms"]
    worst = max(windows, key=lambda w: w[2]) if windows else (0.0, 0.0, 0.0)
    print(
        "| run | events/s | latency p50/p95/p99/max ms | lag p50/p99 ms "
        "| worst 5 s window p95 ms |\n|---|---:|---:|---:|---:|"
    )
    print(
        f"| --rate {args.rate} for {args.seconds}s, {args.domain} "
        f"| {document['events_per_s']:,.1f} "
        f"| {latency['p50']:.1f} / {latency['p95']:.1f} / {latency['p99']:.1f} / "
        f"{latency['max']:.1f} | {lag['p50']:.1f} / {lag['p99']:.1f} "
        f"| {worst[2]:.1f} (at {worst[0]:.0f} s) |"
    )
    print("windows (s, events/s, p95 ms):", windows)


if __name__ == "__main__":
    main()
