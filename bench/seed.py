"""Seeding benchmark: this project vs the specs' design vs ``pgbench -i``.

One ephemeral server (started by the project), a fresh database per run, each
run in its own process so its peak RSS is its own. Prints rows, seconds,
rows/s and peak RSS for:

* ``oltpseed seed`` at each profile, both domains (``all``) and hospital only;
* the specs' design (``bench/spec_design.py``) on the same hospital tables and
  volumes: per-row Faker, psycopg2 ``execute_values``, commit per stage;
* ``pgbench -i`` (narrow rows, server-side generation) as the ceiling.

Shared machines are noisy (runs of the same thing differ by up to 20% here):
each run is repeated ``--repeat`` times and the best is kept, for every
contender alike. Small profiles mostly time interpreter start-up (~0.4 s of
imports) and the fresh server's first queries.

    .venv/bin/python bench/seed.py [--profiles SMALL,LARGE,STRESS] [--repeat 2]
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
from pytest_oltpseed.server import ephemeral_server, find_bindir

HERE = Path(__file__).resolve().parent


def _measure(
    command: list[str], env: dict[str, str] | None = None
) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, stdout) of one child process."""
    started = time.perf_counter()
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    out = child.stdout.read() if child.stdout else ""
    err = child.stderr.read() if child.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{err}")
    return seconds, usage.ru_maxrss / 1024, out


def _rows(dsn: str, domain: str) -> int:
    tables = [t for d in select(domain) for t in d.tables]
    with psycopg.connect(dsn) as conn:
        return sum(
            conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t))
            ).fetchone()[0]
            for t in tables
        )  # type: ignore[index]


def _line(label: str, rows: int, seconds: float, rss: float | None) -> None:
    rss_text = f"{rss:8.0f}" if rss is not None else "       -"
    print(f"{label:<34}{rows:>11,}{seconds:>9.2f}{rows / seconds:>12,.0f}{rss_text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", default="SMALL,MEDIUM,LARGE,STRESS")
    parser.add_argument(
        "--no-spec", action="store_true", help="skip the specs' design (slow at STRESS)"
    )
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs per measurement; best is kept"
    )
    args = parser.parse_args()
    profiles = [p.strip().upper() for p in args.profiles.split(",")]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SEED_", "PG", "DATABASE_URL", "APP_ENV"))
    }
    env["LOG_DIR"] = str(Path(tempfile.gettempdir()) / "oltpseed-bench-logs")
    with ephemeral_server() as server:
        print(f"{'run':<34}{'rows':>11}{'seconds':>9}{'rows/s':>12}{'RSS MB':>8}")
        spec_rate: dict[str, float] = {}
        for profile in profiles:
            for domain in ("all", "hospital"):
                best = None
                for _ in range(args.repeat):
                    dsn = fresh_database(server, "bench", None)
                    seconds, rss, _ = _measure(
                        [
                            sys.executable,
                            "-m",
                            "pytest_oltpseed",
                            "seed",
                            "--profile",
                            profile,
                            "--domain",
                            domain,
                            "--dsn",
                            dsn,
                        ],
                        env,
                    )
                    if best is None or seconds < best[0]:
                        best = (seconds, rss, _rows(dsn, domain))
                assert best is not None
                seconds, rss, rows = best
                _line(f"oltpseed {profile} {domain}", rows, seconds, rss)
                if domain == "hospital":
                    ours = rows / seconds
            if not args.no_spec:
                best = None
                for _ in range(args.repeat):
                    dsn = fresh_database(server, "bench", "hospital")
                    seconds, rss, out = _measure(
                        [sys.executable, str(HERE / "spec_design.py"), dsn, profile],
                        env,
                    )
                    if best is None or seconds < best[0]:
                        best = (seconds, rss, int(out.split()[0]))
                assert best is not None
                seconds, rss, rows = best
                spec_rate[profile] = rows / seconds
                _line(f"specs' design {profile} hospital", rows, seconds, rss)
                print(
                    f"{'':<34}speed-up on the same rows: "
                    f"{ours / spec_rate[profile]:.1f}x"
                )
        pgbench = find_bindir() / "pgbench"
        dsn = fresh_database(server, "bench", None)
        scale = 10
        seconds, _, _ = _measure(
            [str(pgbench), "-i", "-q", "-s", str(scale), "-d", server.dsn("bench")]
        )
        _line(f"pgbench -i -s {scale} (ceiling)", scale * 100_000, seconds, None)


if __name__ == "__main__":
    main()
