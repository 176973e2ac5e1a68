"""Seeding benchmark: this project vs the specs' design vs ``pgbench -i``.

One ephemeral server (started by the project), a fresh database per run, each
run in its own process so its peak RSS is its own. Prints rows, seconds,
rows/s and peak RSS for:

* ``oltpseed seed`` at each profile for each of ``--domains`` (both domains,
  ``all``, and hospital only by default; ``retail`` too on request),
  with the column-wise fast path (NumPy) and without it (``OLTPSEED_FAST=0``:
  the same rows, generated one at a time in pure Python);
* the specs' design on the same tables and volumes (``bench/spec_design.py``
  for the hospital, ``bench/spec_design_retail.py`` for retail): per-row
  Faker, psycopg2 ``execute_values``, commit per stage;
* ``pgbench -i`` at (about) the same total row count as ``all``, on the same
  server, as the server's own pace.

Then the ratios, all measured in this one run: oltpseed's time per row over
pgbench's, and the speed-up over the specs' design on the same hospital rows.

Shared machines are noisy (runs of the same thing differ by up to 20% here):
each run is repeated ``--repeat`` times and the best is kept, for every
contender alike. Small profiles mostly time interpreter start-up (~0.25 s of
imports: psycopg, factory_boy with Faker, Typer) and the fresh server's first
queries; ``--alone`` also times the seeding alone, in a process whose
imports are done and whose connection is open, beside the specs' design's
own timing of the same part (it starts its clock after its imports too).
Every contender starts from compiled bytecode (``PYTHONDONTWRITEBYTECODE``
is dropped), as an installed package does.

    .venv/bin/python bench/seed.py [--profiles SMALL,LARGE,STRESS] [--repeat 2]
        [--domains all,hospital,retail] [--spec-profiles LARGE]
        [--slow-profiles LARGE] [--no-spec] [--no-slow] [--baseline DIR]
        [--alone]

``--baseline DIR`` also times ``oltpseed seed`` (fast path) from the checkout
in DIR (its ``pytest_oltpseed`` and ``sql``, e.g. ``git archive main``
unpacked there), in the same run, to compare a change with what it replaces.
Each run also prints its client and server CPU seconds: on a shared machine
they hold where wall time swings 2-3x with the load.

``--generated`` measures something else: the built-in hospital and retail
domains next to a generated one (Pagila, from tests/data/pagila, through
``oltpseed introspect``), each seeded by ``oltpseed seed`` into a fresh
database whose schema is installed beforehand; rows/s and the ratio to
hospital, in one run:

    .venv/bin/python bench/seed.py --generated --profiles LARGE [--repeat 2]
"""

from __future__ import annotations

import argparse
import compileall
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql
from runs import fresh_database

from pytest_oltpseed.db import table_ident
from pytest_oltpseed.domains import select
from pytest_oltpseed.server.embedded import (
    ServerInfo,
    ephemeral_server,
    find_bindir,
)

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


def _measure(
    command: list[str], env: dict[str, str] | None = None, cwd: str | None = None
) -> Measured:
    """(seconds, peak RSS in MB, stdout, (client CPU s, server CPU s)) of one
    child process. On a shared machine CPU seconds hold where wall time
    swings 2-3x with the load."""
    server_before = _server_cpu()
    started = time.perf_counter()
    child = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
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
                sql.SQL("SELECT count(*) FROM {}").format(table_ident(t))
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


PAGILA = HERE.parent / "tests" / "data" / "pagila" / "pagila-schema.sql"


def _introspect_pagila(server: object, out: Path, env: dict[str, str]) -> None:
    """Pagila's schema file loaded into a scratch database, introspected into
    ``out/pagila`` (a --domain-path directory)."""
    source = fresh_database(server, "bench_pagila_src", None)  # type: ignore[arg-type]
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(PAGILA.read_text(encoding="utf-8"))  # type: ignore[arg-type]
    _measure(
        [sys.executable, "-m", "pytest_oltpseed", "introspect", "--dsn", source,
         "--name", "pagila", "--out", str(out)],
        env,
    )  # fmt: skip


def generated_domains(
    server: object, profiles: list[str], env: dict[str, str], repeat: int
) -> None:
    """hospital, retail and the generated Pagila domain, side by side."""
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "domains"
        _introspect_pagila(server, out, env)
        os.environ["OLTPSEED_DOMAIN_PATH"] = str(out)  # for select() here
        env = {**env, "OLTPSEED_DOMAIN_PATH": str(out)}
        print(f"{'run':<34}{'rows':>11}{'seconds':>9}{'rows/s':>12}{'RSS MB':>8}")
        for profile in profiles:
            rate = {}
            for domain in ("hospital", "retail", "pagila"):
                seconds, rss, rows, _ = _oltpseed(
                    server, profile, domain, True, env, repeat
                )
                _line(f"oltpseed {profile} {domain}", rows, seconds, rss)
                rate[domain] = rows / seconds
            for domain in ("retail", "pagila"):
                print(
                    f"{'':<4}{profile} {domain}: "
                    f"{rate[domain] / rate['hospital']:.2f}x hospital's rows/s"
                )


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
        "--domains",
        default="all,hospital",
        help="oltpseed runs per profile: all, hospital, retail (comma-separated)",
    )
    parser.add_argument(
        "--spec-profiles", help="profiles with the specs' design runs (default: all)"
    )
    parser.add_argument(
        "--slow-profiles",
        help="profiles with runs without the fast path (default: all)",
    )
    parser.add_argument(
        "--alone",
        action="store_true",
        help="also time the seeding alone, imports paid, beside the specs' design",
    )
    parser.add_argument(
        "--generated",
        action="store_true",
        help="hospital, retail and a generated domain (Pagila) side by side",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="also time oltpseed from this checkout (PYTHONPATH) in the same run",
    )
    args = parser.parse_args()
    profiles = [p.strip().upper() for p in args.profiles.split(",")]
    domains = [d.strip() for d in args.domains.split(",")]
    spec_profiles = _names(args.spec_profiles, profiles)
    slow_profiles = _names(args.slow_profiles, profiles)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SEED_", "PG", "DATABASE_URL", "APP_ENV", "OLTPSEED_F"))
        and k != "PYTHONDONTWRITEBYTECODE"
    }
    # Every contender starts from compiled bytecode, as an installed package
    # (and the specs' script after its first run) does.
    for tree in (HERE.parent / "pytest_oltpseed", HERE, args.baseline):
        if tree:
            compileall.compile_dir(tree, quiet=1)
    env["LOG_DIR"] = str(Path(tempfile.gettempdir()) / "oltpseed-bench-logs")
    pgbench = find_bindir() / "pgbench"
    if args.generated:
        with ephemeral_server() as server:
            generated_domains(server, profiles, env, args.repeat)
        return
    with ephemeral_server() as server:
        if server.datadir:
            pid_file = Path(server.datadir) / "postmaster.pid"
            POSTMASTER.append(int(pid_file.read_text().split()[0]))
        print(
            f"{'run':<34}{'rows':>11}{'seconds':>9}{'rows/s':>12}{'RSS MB':>8}"
            f"{'cli CPU':>8}{'srv CPU':>8}"
        )
        for profile in profiles:
            slow = profile in slow_profiles and not args.no_slow
            spec = not args.no_spec and profile in spec_profiles
            _profile(server, profile, domains, slow, spec, args, env, pgbench)


def _profile(
    server: ServerInfo,
    profile: str,
    domains: list[str],
    slow: bool,
    spec: bool,
    args: argparse.Namespace,
    env: dict[str, str],
    pgbench: Path,
) -> None:
    """One profile's runs side by side, then its ratios."""
    rate: dict[str, float] = {}
    per_row: dict[str, float] = {}
    work: dict[str, float] = {}  # CPU seconds (client + server) a row
    all_rows = 0
    contenders = [
        (domain, fast, "")
        for domain in domains
        for fast in ((True, False) if slow else (True,))
    ]
    if args.baseline:
        contenders += [(domain, True, " base") for domain in domains]
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
    for domain in [d for d in domains if d in SPEC and spec]:
        best = None
        for _ in range(args.repeat):
            dsn = fresh_database(server, "bench", domain)
            seconds, rss, out, cpu = _measure(
                [sys.executable, str(HERE / SPEC[domain]), dsn, profile], env
            )
            if best is None or seconds < best[0]:
                best = (seconds, rss, int(out.split()[0]), cpu, float(out.split()[1]))
        assert best is not None
        seconds, rss, rows, cpu, design_alone = best
        rate[f"spec {domain}"] = rows / seconds
        work[f"spec {domain}"] = sum(cpu) / rows
        _line(f"specs' design {profile} {domain}", rows, seconds, rss, cpu)
        if domain == "hospital":
            best_cli = None
            for _ in range(args.repeat):
                dsn = fresh_database(server, "bench", domain)
                seconds, rss, out, cpu = _spec_cli(dsn, profile, env)
                if best_cli is None or seconds < best_cli[0]:
                    best_cli = (seconds, rss, int(out.split()[0]), cpu)
            assert best_cli is not None
            seconds, rss, rows, cpu = best_cli
            rate["spec-cli hospital"] = rows / seconds
            work["spec-cli hospital"] = sum(cpu) / rows
            _line(f"specs' design by its CLI {profile}", rows, seconds, rss, cpu)
        if args.alone:
            ours = min(
                _seeding_alone(server, profile, domain, env) for _ in range(args.repeat)
            )
            print(
                f"{'':<4}{profile} {domain}, seeding alone (imports and connection "
                f"paid): oltpseed {ours:.3f} s, the specs' design "
                f"{design_alone:.3f} s: {design_alone / ours:.1f}x"
            )
    if all_rows:
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
                    f"{'':<4}{profile} {label}: "
                    f"{per_row[label] / pg_per_row:.1f}x pgbench's time per row"
                )
    _ratios(profile, domains, rate, work)


def _ratios(
    profile: str,
    domains: list[str],
    rate: dict[str, float],
    work: dict[str, float],
) -> None:
    """Speed-ups over the specs' design, the slow path and the baseline."""
    for label in rate:
        domain = label.split()[0]
        if f"spec {domain}" in rate and not label.startswith("spec"):
            print(
                f"{'':<4}{profile} {label}: "
                f"{rate[label] / rate[f'spec {domain}']:.1f}x the specs' design, "
                f"{work[f'spec {domain}'] / work[label]:.1f}x less CPU a row"
            )
        if f"spec-cli {domain}" in rate and not label.startswith("spec"):
            print(
                f"{'':<4}{profile} {label}: "
                f"{rate[label] / rate[f'spec-cli {domain}']:.1f}x the specs' design "
                "run by its CLI"
            )
    for domain in domains:
        if f"{domain} slow" in rate:
            print(
                f"{'':<4}{profile} {domain} fast path: "
                f"{rate[f'{domain} fast'] / rate[f'{domain} slow']:.2f}x "
                "without it"
            )
        if f"{domain} fast base" in rate:
            print(
                f"{'':<4}{profile} {domain} fast: "
                f"{rate[f'{domain} fast'] / rate[f'{domain} fast base']:.2f}x "
                "the baseline"
            )


_ALONE = """
import sys, time, psycopg
from pytest_oltpseed.config import load_settings
from pytest_oltpseed.domains import select
from pytest_oltpseed.seed.seeder import Seeder, plan
settings = load_settings(dsn=sys.argv[1], seed_size=sys.argv[2])
stages = plan(select(sys.argv[3]), settings.profile)
with psycopg.connect(sys.argv[1]) as conn:
    started = time.perf_counter()
    Seeder(conn, workers=settings.seed_workers).run(stages)
    print(time.perf_counter() - started)
"""
"""Seeding timed inside a process whose imports are done and whose connection
is open, as the specs' design times itself (after Faker and psycopg2 are
loaded): what a test suite's fixtures pay, where pytest already imported it all."""


def _spec_cli(dsn: str, profile: str, env: dict[str, str]) -> Measured:
    """The specs' design run as spec 002 runs it (``spec_design_cli.py``):
    from a directory with its ``config/.env`` and ``config/settings.toml``."""
    from psycopg.conninfo import conninfo_to_dict
    from spec_design_cli import SETTINGS, config

    from pytest_oltpseed.profiles import resolve

    parts = conninfo_to_dict(dsn)
    volumes = resolve(profile)
    tables = [t for d in select("hospital") for t in d.tables]
    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "config").mkdir()
        (Path(work) / "config" / ".env").write_text(
            config(
                {k: str(parts[k]) for k in ("host", "port", "user") if k in parts}
                | {"database": str(parts["dbname"])},
                {t: volumes.count(t) for t in tables},
                volumes.batch_size,
            )
        )
        (Path(work) / "config" / "settings.toml").write_text(SETTINGS)
        return _measure(
            [sys.executable, str(HERE / "spec_design_cli.py"), "seed"], env, cwd=work
        )


def _seeding_alone(server: ServerInfo, profile: str, domain: str, env: dict) -> float:
    dsn = fresh_database(server, "bench", domain)
    _, _, out, _ = _measure([sys.executable, "-c", _ALONE, dsn, profile, domain], env)
    return float(out.split()[-1])


SPEC = {"hospital": "spec_design.py", "retail": "spec_design_retail.py"}
"""The specs' design per domain: spec 002's for the hospital, spec 000's for
retail (each on its own tables and volumes)."""


def _names(text: str | None, default: list[str]) -> list[str]:
    return [p.strip().upper() for p in text.split(",")] if text else default


if __name__ == "__main__":
    main()
