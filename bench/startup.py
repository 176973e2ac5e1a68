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

    .venv/bin/python bench/startup.py [--runs 15] [--tree DIR ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = (["--help"], ["--version"], ["counts", "--help"])
CHECKOUT = Path(__file__).resolve().parents[1]


def timed(argv: list[str], env: dict[str, str]) -> float:
    # run from a neutral directory: ``-m`` puts the working directory first on
    # sys.path, which would shadow the --tree being measured
    started = time.perf_counter()
    subprocess.run(
        argv,
        env=env,
        cwd=tempfile.gettempdir(),
        stdout=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - started


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
    args = parser.parse_args()
    trees = [("this checkout", CHECKOUT)]
    trees += [(str(tree), tree) for tree in args.tree]
    cases: list[tuple[str, list[str], dict[str, str]]] = [
        ("python -c pass", [sys.executable, "-c", "pass"], dict(os.environ))
    ]
    for label, tree in trees:
        env = dict(os.environ, COLUMNS="100")
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(tree.resolve()), env.get("PYTHONPATH")])
        )
        for command in COMMANDS:
            argv = [sys.executable, "-m", "pytest_oltpseed", *command]
            cases.append((f"{label}: oltpseed {' '.join(command)}", argv, env))
    times: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    for _ in range(args.runs):
        for name, argv, env in cases:
            times[name].append(timed(argv, env))
    floor = statistics.median(times["python -c pass"])
    load = os.getloadavg()[0]
    print(f"median of {args.runs} runs; load average {load:.2f} at the end")
    print(f"{'command':<48} {'wall s':>8} {'over bare':>9}")
    for name, found in times.items():
        median = statistics.median(found)
        print(f"{name:<48} {median:>8.3f} {median - floor:>9.3f}")


if __name__ == "__main__":
    main()
