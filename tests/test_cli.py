"""CLI behaviour a user meets first: help, version, counts, unreachable servers."""

from __future__ import annotations

import json

import psycopg

from pytest_oltpseed import __version__
from pytest_oltpseed.domains import schema, select
from tests.conftest import run_cli, run_probe


def test_help_lists_commands(cli_env: dict[str, str]) -> None:
    result = run_cli("--help", env=cli_env)
    assert result.returncode == 0
    for command in ("init-db", "reset", "counts", "server"):
        assert command in result.stdout
    server = run_cli("server", "--help", env=cli_env)
    for sub in ("start", "stop", "status", "dsn"):
        assert sub in server.stdout


def test_version(cli_env: dict[str, str]) -> None:
    result = run_cli("--version", env=cli_env)
    assert result.stdout.strip() == f"oltpseed {__version__}"


def test_unreachable_server_exit_1_one_line(cli_env: dict[str, str]) -> None:
    result = run_cli(
        "counts", "--dsn", "postgresql://postgres@127.0.0.1:1/nowhere", env=cli_env
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "127.0.0.1:1/nowhere" in lines[0] and "refused" in lines[0].lower()
    assert "Traceback" not in result.stderr


def test_unreachable_from_pg_variables(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "PG_HOST": "127.0.0.1", "PG_PORT": "1", "PG_PASSWORD": "s3cret"}
    result = run_cli("init-db", env=env)
    assert result.returncode == 1
    assert "127.0.0.1:1/hospital_oltp" in result.stderr
    assert "s3cret" not in result.stderr


def test_counts_json_and_table(database: str, cli_env: dict[str, str]) -> None:
    with psycopg.connect(database, autocommit=True) as conn:
        schema.install(conn, select("hospital"))
    as_json = run_cli("counts", "--json", "--dsn", database, env=cli_env)
    assert as_json.returncode == 0, as_json.stderr
    counts = json.loads(as_json.stdout)
    assert counts["convenios"] == 2 and counts["pacientes"] == 0
    assert counts["sales"] is None  # retail not installed
    table = run_cli("counts", "--domain", "hospital", "--dsn", database, env=cli_env)
    assert "convenios" in table.stdout and "sales" not in table.stdout


def test_python_dash_m_and_console_script_agree(cli_env: dict[str, str]) -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).parent / "oltpseed"
    assert script.is_file()
    direct = subprocess.run(
        [script, "--version"], capture_output=True, text=True, env=cli_env, check=False
    )
    assert direct.stdout == run_cli("--version", env=cli_env).stdout


HEAVY = (
    "psycopg",
    "faker",
    "numpy",
    "rich.progress",
    "pytest_oltpseed.cdc",
    "pytest_oltpseed.config",
    "pytest_oltpseed.domains",
    "pytest_oltpseed.seed",
    "pytest_oltpseed.server",
    "pytest_oltpseed.stream",
    "pytest_oltpseed.ui",
)


def test_help_and_version_load_no_core(cli_env: dict[str, str]) -> None:
    """``--help`` builds every command's signature: the command modules must
    import the core (psycopg, domains, stream, cdc, rich.progress) only when
    a command runs, or every invocation pays ~1 s of imports."""

    probe = (
        "import sys\n"
        "from pytest_oltpseed.cli import main\n"
        "sys.argv[0] = 'oltpseed'\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        f"heavy = {HEAVY!r}\n"
        "print(sorted(m for m in sys.modules if m in heavy), file=sys.stderr)\n"
    )
    for args in (["--help"], ["--version"], ["counts", "--help"],
                 ["cdc", "verify", "--help"], ["stream", "--help"]):  # fmt: skip
        done = run_probe(probe, *args, env=cli_env)
        assert done.stderr.strip().splitlines()[-1] == "[]", (args, done.stderr)
        assert done.stdout.strip(), args


SEED_NEEDS_NOT = (
    "mirakuru",
    "numpy",
    "pytest_postgresql",
    "rich.progress",
    "pytest_oltpseed.cdc",
    "pytest_oltpseed.domains.cdclab.factories",
    "pytest_oltpseed.domains.retail.factories",
    "pytest_oltpseed.stream",
    "pytest_oltpseed.ui",
    "pytest_oltpseed.validators",
)


def test_a_small_seed_loads_only_what_it_needs_and_exits_clean(
    database: str, cli_env: dict[str, str]
) -> None:
    """``seed --profile SMALL --domain hospital``, as a process: it imports no
    other domain's factories, no stream, cdc, validators, server tooling, NumPy
    or progress bars (no terminal); and it leaves nothing the interpreter's
    last collections would have had to finish, which the CLI skips
    (``gc.freeze``): no open connection, no running thread."""

    probe = (
        "import gc, sys, threading\n"
        "import psycopg\n"
        "from pytest_oltpseed.cli import main\n"
        "sys.argv[0] = 'oltpseed'\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "assert gc.get_freeze_count() > 0\n"
        "gc.unfreeze()\n"
        "gc.collect()\n"
        "open_conns = [o for o in gc.get_objects()\n"
        "              if isinstance(o, psycopg.Connection) and not o.closed]\n"
        "threads = [t.name for t in threading.enumerate()\n"
        "           if t is not threading.main_thread()]\n"
        f"unneeded = {SEED_NEEDS_NOT!r}\n"
        "loaded = sorted(m for m in sys.modules if m in unneeded)\n"
        "print(loaded, len(open_conns), threads, file=sys.stderr)\n"
    )
    args = ["seed", "--profile", "SMALL", "--domain", "hospital", "--dsn", database]
    done = run_probe(probe, *args, env=cli_env)
    assert done.stderr.strip().splitlines()[-1] == "[] 0 []", done.stderr
    assert "seeded SMALL" in done.stdout
    with psycopg.connect(database) as conn:
        row = conn.execute("SELECT count(*) FROM pacientes").fetchone()
    assert row == (200,)
