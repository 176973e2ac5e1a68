"""The embedded server through the CLI, as the user runs it (root-safe)."""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
from pathlib import Path

import psycopg
import pytest

from tests.conftest import run_cli, run_probe

URL = re.compile(r"postgresql://postgres@127\.0\.0\.1:(\d+)/oltpseed")


def _env(cli_env: dict[str, str], home: Path) -> dict[str, str]:
    return {**cli_env, "OLTPSEED_HOME": str(home)}


def test_start_status_dsn_stop_and_reuse(
    cli_env: dict[str, str], server_home: Path
) -> None:
    env = _env(cli_env, server_home)
    status = run_cli("server", "status", env=env)
    assert status.returncode == 1 and "not running" in status.stdout

    started = run_cli("server", "start", env=env)
    assert started.returncode == 0, started.stderr
    assert started.stdout.startswith("started: ")
    match = URL.search(started.stdout)
    assert match is not None
    url = match.group(0)

    again = run_cli("server", "start", env=env)
    assert again.stdout.strip() == f"already running: {url}"
    assert run_cli("server", "dsn", env=env).stdout.strip() == url
    status = run_cli("server", "status", env=env)
    assert status.returncode == 0 and url in status.stdout

    with psycopg.connect(url) as conn:
        assert conn.execute("SHOW wal_level").fetchone() == ("logical",)
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        slots = conn.execute("SHOW max_replication_slots").fetchone()
        assert slots is not None and int(slots[0]) > 0
        conn.execute("CREATE TABLE kept (x int)")
        conn.commit()
    if os.geteuid() == 0:
        # PostgreSQL refuses root: the data belongs to the unprivileged runner.
        datadir = server_home / "pg" / "data"
        assert datadir.stat().st_uid != 0
        assert (server_home / "bin" / "pg_ctl").stat().st_uid == 0

    stopped = run_cli("server", "stop", env=env)
    assert stopped.stdout.strip() == "stopped"
    assert run_cli("server", "stop", env=env).stdout.strip() == "not running"
    dsn = run_cli("server", "dsn", env=env)
    assert dsn.returncode == 1 and "not running" in dsn.stderr

    # Restart: same data directory, data kept, same port when it is free.
    restarted = run_cli("server", "start", env=env)
    assert restarted.returncode == 0, restarted.stderr
    assert url in restarted.stdout
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (0,)


def test_concurrent_starts_give_one_server(
    cli_env: dict[str, str], server_home: Path
) -> None:
    env = _env(cli_env, server_home)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(
            pool.map(lambda _: run_cli("server", "start", env=env), range(3))
        )
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    urls = {URL.search(r.stdout).group(0) for r in results}  # type: ignore[union-attr]
    assert len(urls) == 1
    assert sum(r.stdout.startswith("started") for r in results) == 1
    state = json.loads((server_home / "server.json").read_text())
    assert str(state["port"]) in urls.pop()


def test_commands_use_embedded_server_and_say_so(
    cli_env: dict[str, str], server_home: Path
) -> None:
    env = _env(cli_env, server_home)
    first = run_cli("init-db", env=env)
    assert first.returncode == 0, first.stderr
    notes = [line for line in first.stderr.splitlines() if "embedded server" in line]
    assert len(notes) == 1 and "started the embedded server" in notes[0]
    counts = run_cli("counts", "--json", env=env)
    assert counts.returncode == 0, counts.stderr
    assert json.loads(counts.stdout)["convenios"] == 2
    assert "using the embedded server" in counts.stderr


def test_missing_binaries_one_line_exit_1(
    cli_env: dict[str, str], server_home: Path
) -> None:
    env = {**_env(cli_env, server_home), "OLTPSEED_PG_BINDIR": "/nonexistent/bin"}
    result = run_cli("server", "start", env=env)
    assert result.returncode == 1
    assert "apt-get install postgresql" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="only root needs a reachable home")
def test_home_unreachable_by_runner_is_explained(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    home = tmp_path / "home"  # under pytest's 0700 root-owned directory
    result = run_cli("server", "start", env=_env(cli_env, home))
    assert result.returncode == 1
    assert "not reachable" in result.stderr and "OLTPSEED_HOME" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_killed_sessions_cluster_is_swept(tmp_path: Path) -> None:
    """An ephemeral cluster whose owner was SIGKILLed is stopped and removed."""
    import subprocess
    import sys
    import tempfile

    from pytest_oltpseed.server.embedded import sweep_ephemeral

    base = Path(tempfile.mkdtemp(prefix="sweep-"))
    base.chmod(0o755)
    script = (
        "import os, pathlib, sys\n"
        "from pytest_oltpseed.server.embedded import ephemeral_server\n"
        f"context = ephemeral_server(pathlib.Path({str(base)!r}))\n"
        "info = context.__enter__()\n"
        "print(info.port, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    port = int(child.stdout.strip())
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    with psycopg.connect(dsn) as conn:  # the orphan still runs
        assert conn.execute("SELECT 1").fetchone() == (1,)
    removed = sweep_ephemeral(base)
    assert len(removed) == 1 and not removed[0].exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=3)
    base.rmdir()


SERVER_TOOLING = ("mirakuru", "port_for", "psutil", "pytest_postgresql")


def test_a_running_server_is_found_without_its_tooling(
    cli_env: dict[str, str], server_home: Path
) -> None:
    """A command finds a running embedded server from its postmaster.pid: no
    ``pg_ctl status`` processes, no pytest-postgresql/mirakuru imports (nor
    mirakuru's scan of every process at exit). ``server stop`` still works
    after such a look-up."""

    env = _env(cli_env, server_home)
    assert run_cli("init-db", env=env).returncode == 0
    probe = (
        "import sys\n"
        "from pytest_oltpseed.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        f"tooling = {SERVER_TOOLING!r}\n"
        "print(sorted(m for m in sys.modules if m in tooling), file=sys.stderr)\n"
    )
    said = {}
    for args in (["counts", "--json"], ["server", "status"]):
        done = run_probe(probe, *args, env=env)
        assert done.stderr.strip().splitlines()[-1] == "[]", (args, done.stderr)
        said[args[0]] = done.stdout
    assert json.loads(said["counts"])["convenios"] == 2
    assert URL.search(said["server"]) is not None
    assert run_cli("server", "stop", env=env).stdout.strip() == "stopped"
    assert run_cli("server", "status", env=env).returncode == 1


def test_postmaster_pid_is_trusted_only_when_certain(tmp_path: Path) -> None:
    """``ready_postmaster`` says yes only for a live pid, ready, on the saved
    port; anything else falls back to ``pg_ctl status``."""
    from pytest_oltpseed.server.embedded import ready_postmaster

    def pid_file(pid: int, port: int, state: str) -> Path:
        lines = [str(pid), str(tmp_path), "1796503010", str(port), "/run", "*"]
        lines += ["  5604950    229404", f"{state:<8}"]
        (tmp_path / "postmaster.pid").write_text("\n".join(lines) + "\n")
        return tmp_path

    alive = os.getpid()
    assert ready_postmaster(pid_file(alive, 5432, "ready"), 5432)
    assert not ready_postmaster(pid_file(alive, 5432, "ready"), 5433)
    assert not ready_postmaster(pid_file(alive, 5432, "starting"), 5432)
    dead = _dead_pid()
    assert not ready_postmaster(pid_file(dead, 5432, "ready"), 5432)
    (tmp_path / "postmaster.pid").write_text(f"{alive}\n")  # torn write
    assert not ready_postmaster(tmp_path, 5432)
    (tmp_path / "postmaster.pid").unlink()
    assert not ready_postmaster(tmp_path, 5432)


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    import subprocess

    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid
