"""Wall time of a whole pytest suite on the plugin: serial against xdist.

Writes a suite of ``--tests`` tests (three in four use ``oltp_conn`` and run a
query; one in four commits in an ``oltp_database`` clone), then runs it in a
fresh pytest process with each ``-n`` of ``--workers`` and prints the wall
time. ``--base DIR`` runs the same suite a second time against another
checkout of the package (``git archive`` of an older commit), put first on
PYTHONPATH: today's code and the older one side by side in one run.

    .venv/bin/python bench/suite.py [--tests 200] [--workers 0,2,4]
        [--profile MEDIUM] [--base /tmp/oltpseed-base]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITE = """
import pytest

@pytest.mark.parametrize("i", range({conn}))
def test_conn(oltp_conn, i):
    oltp_conn.execute("DELETE FROM exames WHERE id %% 7 = %s", (i % 7,))
    assert oltp_conn.execute("SELECT count(*) FROM pacientes").fetchone()[0] > 0

@pytest.mark.parametrize("i", range({database}))
def test_database(oltp_database, i):
    with oltp_database.connect() as conn:
        conn.execute("DELETE FROM exames WHERE id %% 7 = %s", (i % 7,))
        conn.commit()
"""


def run(directory: Path, workers: int, profile: str, base: str | None) -> float:
    env = dict(os.environ)
    if base:
        env["PYTHONPATH"] = base
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += ["-p", "no:randomly", f"--seed-profile={profile}", "-n", str(workers)]
    started = time.perf_counter()
    result = subprocess.run(
        command, cwd=directory, env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"suite failed (-n {workers}):\n{result.stdout[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=200)
    parser.add_argument("--workers", default="0,2,4")
    parser.add_argument("--profile", default="MEDIUM")
    parser.add_argument("--base", help="an older checkout to compare with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="oltpseed-suite-") as tmp:
        directory = Path(tmp)
        database = args.tests // 4
        text = SUITE.format(conn=args.tests - database, database=database)
        (directory / "test_suite.py").write_text(text)
        for label, base in (("this checkout", None), ("base", args.base)):
            if label == "base" and not base:
                continue
            for workers in (int(n) for n in args.workers.split(",")):
                elapsed = run(directory, workers, args.profile, base)
                print(
                    f"{label:<14} {args.tests} tests {args.profile} -n {workers}: "
                    f"{elapsed:6.1f} s",
                    flush=True,
                )


if __name__ == "__main__":
    main()
