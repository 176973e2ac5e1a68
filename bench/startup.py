"""CLI start-up: wall time of commands that do no work, next to a bare Python.

Each command is a fresh ``python -m pytest_oltpseed ...`` process (what the
``oltpseed`` script runs), timed from spawn to exit; the figure is the median
of ``--runs`` runs, the commands interleaved so that a burst of load on the
shared machine hits all of them alike. ``python -c pass`` is the floor no
command can beat; ``over bare`` subtracts it (imports, building the commands,
printing).

``--tree DIR`` also times the package found in DIR (put first on
PYTHONPATH), e.g. an earlier commit unpacked with
``git archive COMMIT pytest_oltpseed | tar -x -C DIR``, so that two versions
are measured side by side in one run.

``--embedded`` adds ``oltpseed counts`` against a running embedded server
(no ``--dsn``: the command finds the server, as a user's does).

``--seed SMALL,MEDIUM`` adds the small seeds, whose time is mostly fixed
costs: ``oltpseed seed --profile P --domain D --dsn ...`` into a fresh
database (schema installed beforehand) of one throwaway server, for each tree,
next to the specs' design on the same rows (``bench/spec_design.py``), with
the client's CPU seconds (user + system, children included) besides the wall
time. ``x design`` is the specs' design's time over ours: above 1, ours is
faster.

    .venv/bin/python bench/startup.py [--runs 15] [--tree DIR ...]
        [--embedded] [--seed SMALL,MEDIUM [--domain hospital]]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import psycopg
from runs import fresh_database

from pytest_oltpseed.domains import schema, select
from pytest_oltpseed.server.embedded import (
    EmbeddedServer,
    ServerInfo,
    ephemeral_server,
)

COMMANDS = (["--help"], ["--version"], ["counts", "--help"])
CHECKOUT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
SPEC = {"hospital": "spec_design.py", "retail": "spec_design_retail.py"}


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one process, run from a neutral directory:
    ``-m`` puts the working directory first on sys.path, which would shadow
    the --tree being measured."""
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        child = subprocess.Popen(
            argv, env=env, cwd=tempfile.gettempdir(), stdout=subprocess.DEVNULL,
            stderr=errors,
        )  # fmt: skip
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            errors.seek(0)
            raise SystemExit(f"{' '.join(argv)} failed:\n{errors.read().decode()}")
    return wall, usage.ru_utime + usage.ru_stime


def _env(tree: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SEED_", "PG", "DATABASE_URL", "APP_ENV", "OLTPSEED_"))
    }
    env["COLUMNS"] = "100"
    env["LOG_DIR"] = str(Path(tempfile.gettempdir()) / "oltpseed-bench-logs")
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(tree.resolve()), os.environ.get("PYTHONPATH")])
    )
    return env


Case = tuple[str, list[str], dict[str, str]]


@contextlib.contextmanager
def embedded_home() -> Iterator[str]:
    """A started embedded server in a fresh home (reachable by root's runner)."""
    home = Path(tempfile.mkdtemp(prefix="oltpseed-bench-home-"))
    home.chmod(0o755)
    server = EmbeddedServer(home)
    try:
        info, _ = server.start()
        with psycopg.connect(info.dsn()) as conn:
            schema.install(conn, select("all"))
        yield str(home)
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument(
        "--tree",
        type=Path,
        action="append",
        default=[],
        help="Also time the pytest_oltpseed package under this directory.",
    )
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="Also time `oltpseed counts` against a running embedded server.",
    )
    parser.add_argument("--seed", help="Also time seeds at these profiles.")
    parser.add_argument("--domain", default="hospital", choices=sorted(SPEC))
    args = parser.parse_args()
    trees = [("this checkout", CHECKOUT)]
    trees += [(str(tree), tree) for tree in args.tree]
    cases: list[Case] = [
        ("python -c pass", [sys.executable, "-c", "pass"], dict(os.environ))
    ]
    for label, tree in trees:
        for command in COMMANDS:
            argv = [sys.executable, "-m", "pytest_oltpseed", *command]
            cases.append((f"{label}: oltpseed {' '.join(command)}", argv, _env(tree)))
    profiles = [p.strip().upper() for p in (args.seed or "").split(",") if p]
    with contextlib.ExitStack() as stack:
        if args.embedded:
            home = stack.enter_context(embedded_home())
            for label, tree in trees:
                argv = [sys.executable, "-m", "pytest_oltpseed", "counts", "--json"]
                env = {**_env(tree), "OLTPSEED_HOME": home}
                cases.append((f"{label}: oltpseed counts (embedded)", argv, env))
        seeds: list[SeedCase] = []
        if profiles:
            server = stack.enter_context(ephemeral_server())
            seeds = seed_cases(server, trees, profiles, args.domain)
        times = measure(cases, seeds, args.runs)
    report(times, args.runs, profiles, args.domain)


SeedCase = tuple[str, Callable[[], list[str]], dict[str, str]]


def seed_cases(
    server: ServerInfo, trees: list[tuple[str, Path]], profiles: list[str], domain: str
) -> list[SeedCase]:
    """(name, argv on a fresh database, env) of each seed to time."""

    def ours(profile: str) -> list[str]:
        dsn = fresh_database(server, "bench_startup", domain)
        return [sys.executable, "-m", "pytest_oltpseed", "seed", "--profile",
                profile, "--domain", domain, "--dsn", dsn]  # fmt: skip

    def design(profile: str) -> list[str]:
        dsn = fresh_database(server, "bench_startup", domain)
        return [sys.executable, str(HERE / SPEC[domain]), dsn, profile]

    cases: list[SeedCase] = []
    for profile in profiles:
        for label, tree in trees:
            name = f"{profile} {label}: oltpseed seed"
            cases.append((name, partial(ours, profile), _env(tree)))
        cases.append(
            (f"{profile} specs' design", partial(design, profile), _env(CHECKOUT))
        )
    return cases


def measure(
    cases: list[Case], seeds: list[SeedCase], runs: int
) -> dict[str, list[tuple[float, float]]]:
    """Every case once per run, interleaved; (wall, CPU) lists by name."""
    times: dict[str, list[tuple[float, float]]] = {}
    for _ in range(runs):
        for name, argv, env in cases:
            times.setdefault(name, []).append(timed(argv, env))
        for name, command, env in seeds:
            argv = command()  # the fresh database is made before the clock starts
            times.setdefault(name, []).append(timed(argv, env))
    return times


def report(
    times: dict[str, list[tuple[float, float]]],
    runs: int,
    profiles: list[str],
    domain: str,
) -> None:
    floor = statistics.median(w for w, _ in times["python -c pass"])
    load = os.getloadavg()[0]
    print(f"median of {runs} runs; load average {load:.2f} at the end")
    print(f"{'command':<52} {'wall s':>8} {'over bare':>9} {'CPU s':>7}")
    for name, found in times.items():
        if name.split()[0] in profiles:
            continue
        wall = statistics.median(w for w, _ in found)
        cpu = statistics.median(c for _, c in found)
        print(f"{name:<52} {wall:>8.3f} {wall - floor:>9.3f} {cpu:>7.3f}")
    if not profiles:
        return
    print(f"\nseeds, --domain {domain} (x design: the specs' design's time over ours)")
    print(f"{'run':<52} {'wall s':>8} {'CPU s':>7} {'x design':>9} {'x CPU':>6}")
    for profile in profiles:
        mine = {k: v for k, v in times.items() if k.split()[0] == profile}
        design = mine[f"{profile} specs' design"]
        design_wall = statistics.median(w for w, _ in design)
        design_cpu = statistics.median(c for _, c in design)
        for name, found in mine.items():
            wall = statistics.median(w for w, _ in found)
            cpu = statistics.median(c for _, c in found)
            print(
                f"{name:<52} {wall:>8.3f} {cpu:>7.3f} "
                f"{design_wall / wall:>9.2f} {design_cpu / cpu:>6.2f}"
            )


if __name__ == "__main__":
    main()
