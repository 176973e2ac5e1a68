"""Seeding benchmark: this project vs the specs' design vs ``pgbench -i``.

One ephemeral server (started by the project), a fresh database per run, each
run in its own process so its peak RSS is its own. Prints rows, seconds,
rows/s and peak RSS for:

* ``oltpseed seed`` at each profile, both domains (``all``) and hospital only,
  with the column-wise fast path (NumPy) and without it (``OLTPSEED_FAST=0``:
  the same rows, generated one at a time in pure Python);
* the specs' design (``bench/spec_design.py``) on the same hospital tables and
  volumes: per-row Faker, psycopg2 ``execute_values``, commit per stage;
* ``pgbench -i`` at (about) the same total row count as ``all``, on the same
  server, as the server's own pace.

Then the ratios, all measured in this one run: oltpseed's time per row over
pgbench's, and the speed-up over the specs' design on the same hospital rows.

Shared machines are noisy (runs of the same thing differ by up to 20% here):
each run is repeated ``--repeat`` times and the best is kept, for every
contender alike. Small profiles mostly time interpreter start-up (~0.4 s of
imports) and the fresh server's first queries.

    .venv/bin/python bench/seed.py [--profiles SMALL,LARGE,STRESS] [--repeat 2]
        [--no-spec] [--no-slow] [--baseline DIR]

``--baseline DIR`` also times ``oltpseed seed`` (fast path) from the checkout
in DIR (its ``pytest_oltpseed`` and ``sql``, e.g. ``git archive main``
unpacked there), in the same run, to compare a change with what it replaces.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql
from runs import fresh_database

from pytest_oltpseed.domains import select
from pytest_oltpseed.server.embedded import ephemeral_server, find_bindir

HERE = Path(__file__).resolve().parent


POSTMASTER: list[int] = []  # the ephemeral server's postmaster pid, once known


def _server_cpu() -> float:
    """CPU seconds of the server's exited backends (the postmaster's reaped
    children): a run's delta is what the server worked for it, whatever else
    the machine runs (autovacuum after a run may add a little)."""
    if not POSTMASTER:
        return 0.0
    with open(f"/proc/{POSTMASTER[0]}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


Measured = tuple[float, float, str, tuple[float, float]]


def _measure(command: list[str], env: dict[str, str] | None = None) -> Measured:
    """(seconds, peak RSS in MB, stdout, (client CPU s, server CPU s)) of one
    child process. On a shared machine CPU seconds hold where wall time
    swings 2-3x with the load."""
    server_before = _server_cpu()
    started = time.perf_counter()
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    time.sleep(0.05)  # the postmaster reaps the run's backends
    cpu = (usage.ru_utime + usage.ru_stime, _server_cpu() - server_before)
    out = child.stdout.read() if child.stdout else ""
    err = child.stderr.read() if child.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{err}")
    return seconds, usage.ru_maxrss / 1024, out, cpu


def _rows(dsn: str, domain: str) -> int:
    tables = [t for d in select(domain) for t in d.tables]
    with psycopg.connect(dsn) as conn:
        return sum(
            conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t))
            ).fetchone()[0]
            for t in tables
        )  # type: ignore[index]


def _line(
    label: str,
    rows: int,
    seconds: float,
    rss: float | None,
    cpu: tuple[float, float] | None = None,
) -> None:
    rss_text = f"{rss:8.0f}" if rss is not None else "       -"
    cpu_text = f"{cpu[0]:8.2f}{cpu[1]:8.2f}" if cpu else ""
    print(
        f"{label:<34}{rows:>11,}{seconds:>9.2f}{rows / seconds:>12,.0f}{rss_text}"
        f"{cpu_text}"
    )


def _oltpseed(
    server: object,
    profile: str,
    domain: str,
    fast: bool,
    env: dict[str, str],
    repeat: int,
) -> tuple[float, float, int, tuple[float, float]]:
    """Best (seconds, RSS MB, rows, CPU) of ``oltpseed seed`` over ``repeat``
    runs."""
    best = None
    for _ in range(repeat):
        # the schema is installed beforehand, as for the specs' design
        dsn = fresh_database(server, "bench", domain)
        seconds, rss, _, cpu = _measure(
            [sys.executable, "-m", "pytest_oltpseed", "seed", "--profile", profile,
             "--domain", domain, "--dsn", dsn],
            {**env, "OLTPSEED_FAST": "1" if fast else "0"},
        )  # fmt: skip
        if best is None or seconds < best[0]:
            best = (seconds, rss, _rows(dsn, domain), cpu)
    assert best is not None
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", default="SMALL,MEDIUM,LARGE")
    parser.add_argument(
        "--no-spec", action="store_true", help="skip the specs' design (slow at STRESS)"
    )
    parser.add_argument(
        "--no-slow", action="store_true", help="skip oltpseed without the fast path"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per measurement; best is kept"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="also time oltpseed from this checkout (PYTHONPATH) in the same run",
    )
    args = parser.parse_args()
    profiles = [p.strip().upper() for p in args.profiles.split(",")]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SEED_", "PG", "DATABASE_URL", "APP_ENV", "OLTPSEED_F"))
    }
    env["LOG_DIR"] = str(Path(tempfile.gettempdir()) / "oltpseed-bench-logs")
    pgbench = find_bindir() / "pgbench"
    with ephemeral_server() as server:
        if server.datadir:
            pid_file = Path(server.datadir) / "postmaster.pid"
            POSTMASTER.append(int(pid_file.read_text().split()[0]))
        print(
            f"{'run':<34}{'rows':>11}{'seconds':>9}{'rows/s':>12}{'RSS MB':>8}"
            f"{'cli CPU':>8}{'srv CPU':>8}"
        )
        for profile in profiles:
            rate: dict[str, float] = {}
            per_row: dict[str, float] = {}
            work: dict[str, float] = {}  # CPU seconds (client + server) a row
            contenders = [
                (domain, fast, "")
                for domain in ("all", "hospital")
                for fast in ((True, False) if not args.no_slow else (True,))
            ]
            if args.baseline:
                contenders += [("all", True, " base"), ("hospital", True, " base")]
            for domain, fast, base in contenders:
                label = f"{domain} {'fast' if fast else 'slow'}{base}"
                run_env = dict(env)
                if base:
                    run_env["PYTHONPATH"] = str(args.baseline.resolve())
                seconds, rss, rows, cpu = _oltpseed(
                    server, profile, domain, fast, run_env, args.repeat
                )
                _line(f"oltpseed {profile} {label}", rows, seconds, rss, cpu)
                rate[label] = rows / seconds
                per_row[label] = seconds / rows
                work[label] = sum(cpu) / rows
                if label == "all fast":
                    all_rows = rows
            if not args.no_spec:
                best = None
                for _ in range(args.repeat):
                    dsn = fresh_database(server, "bench", "hospital")
                    seconds, rss, out, cpu = _measure(
                        [sys.executable, str(HERE / "spec_design.py"), dsn, profile],
                        env,
                    )
                    if best is None or seconds < best[0]:
                        best = (seconds, rss, int(out.split()[0]), cpu)
                assert best is not None
                seconds, rss, rows, cpu = best
                rate["spec"] = rows / seconds
                work["spec"] = sum(cpu) / rows
                _line(f"specs' design {profile} hospital", rows, seconds, rss, cpu)
            scale = max(1, round(all_rows / 100_000))
            fresh_database(server, "bench", None)
            seconds, _, _, cpu = _measure(
                [str(pgbench), "-i", "-q", "-s", str(scale), "-d", server.dsn("bench")]
            )
            pg_rows = scale * 100_000 + scale * 111  # accounts, tellers, branches
            _line(f"pgbench -i -s {scale}", pg_rows, seconds, None, cpu)
            pg_per_row = seconds / pg_rows
            for label in per_row:
                if label.startswith("all"):
                    print(
                        f"{'':<4}{profile} {label}: {per_row[label] / pg_per_row:.1f}x "
                        "pgbench's time per row"
                    )
            if "spec" in rate:
                for label in rate:
                    if label.startswith("hospital"):
                        print(
                            f"{'':<4}{profile} {label}: "
                            f"{rate[label] / rate['spec']:.1f}x the specs' design"
                        )
            if "spec" in work:
                for label in work:
                    if label.startswith("hospital"):
                        print(
                            f"{'':<4}{profile} {label}: "
                            f"{work['spec'] / work[label]:.1f}x less CPU a row "
                            "than the specs' design"
                        )
            for domain in ("all", "hospital"):
                if f"{domain} fast base" in rate:
                    print(
                        f"{'':<4}{profile} {domain} fast: "
                        f"{rate[f'{domain} fast'] / rate[f'{domain} fast base']:.2f}x "
                        "the baseline"
                    )
            if "all slow" in rate:
                print(
                    f"{'':<4}{profile} fast path: "
                    f"{rate['all fast'] / rate['all slow']:.2f}x without it"
                )


if __name__ == "__main__":
    main()
