"""What a newcomer meets on a clean clone, as root and as a user: every
failure is one line on stderr with the contract's exit code, never a
traceback (docs: README "The CLI")."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import as_user, run_cli


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every account can enter (pytest's tmp_path is root's 0700)."""
    base = Path(tempfile.mkdtemp(prefix="oltpseed-newcomer-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_server_home_that_is_not_usable_is_one_line(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """``server.lock`` cannot be opened (a directory here: root is stopped by
    it too): every command that needs the server says so in one line."""
    home = tmp_path / "home"
    (home / "server.lock").mkdir(parents=True)
    env = {**cli_env, "OLTPSEED_HOME": str(home)}
    for args in (["counts"], ["server", "start"], ["server", "stop"]):
        result = run_cli(*args, env=env)
        assert result.returncode == 2, result.stderr
        line = _one_line(result.stderr)
        assert f"cannot use the server's directory {home} (OLTPSEED_HOME)" in line
        assert "server.lock: Is a directory" in line


def test_another_users_server_home_is_one_line(
    cli_env: dict[str, str], shared_dir: Path
) -> None:
    """A user whose OLTPSEED_HOME is root's server home (root started the
    server there): one line naming the variable, not a PermissionError."""
    prefix = as_user()
    if not prefix:
        pytest.skip("needs root, to make a home another account cannot use")
    home = shared_dir / "home"
    data = home / "pg" / "data"
    data.mkdir(parents=True)
    (data / "postmaster.pid").write_text("1\n")
    (home / "pg").chmod(0o700)  # as the server's own account keeps it
    (home / "server.json").write_text('{"port": 1, "datadir": "x"}')
    (home / "server.lock").write_text("")
    (shared_dir / "config").mkdir()
    env = {
        **cli_env,
        "OLTPSEED_HOME": str(home),
        "HOME": str(shared_dir),
        "LOG_DIR": str(shared_dir / "logs"),
        "OLTPSEED_CONFIG_DIR": str(shared_dir / "config"),
    }
    for args in (["counts"], ["server", "status"], ["server", "dsn"]):
        result = run_cli(*args, env=env, cwd=shared_dir, timeout=60, user=prefix)
        assert result.returncode == 2, result.stderr
        line = _one_line(result.stderr)
        assert "(OLTPSEED_HOME)" in line and "Permission denied" in line, line


def test_introspect_into_an_unwritable_out_is_one_line(
    database: str, cli_env: dict[str, str], tmp_path: Path, shared_dir: Path
) -> None:
    """``--out`` below a file (root too), and as a user a read-only directory:
    refused before the catalog is read, where it was a traceback at the end."""
    with psycopg.connect(database) as conn:
        conn.execute("CREATE TABLE shelf (id int PRIMARY KEY, label text)")
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_cli(
        "introspect", "--dsn", database, "--name", "shop",
        "--out", str(blocker / "domains"), env=cli_env,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert _one_line(result.stderr) == (
        f"oltpseed: error: cannot write --out {blocker / 'domains'}: "
        f"{blocker} is not a directory"
    )
    readonly = shared_dir / "readonly"
    readonly.mkdir(mode=0o555)
    (shared_dir / "config").mkdir()
    refused = run_cli(
        "introspect", "--dsn", database, "--name", "shop", "--out", str(readonly),
        env={**cli_env, "OLTPSEED_CONFIG_DIR": str(shared_dir / "config")},
        cwd=shared_dir, user=as_user(),
    )  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert _one_line(refused.stderr) == (
        f"oltpseed: error: cannot write --out {readonly}: {readonly} is not writable"
    )
    assert list(readonly.iterdir()) == []


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("999.1.1.1", ""),  # the resolver's words vary (no DNS, no name)
        ("192.0.2.1", "not an address of this machine"),  # TEST-NET-1
    ],
)
def test_ui_with_a_bad_host_is_bad_usage_in_one_line(
    cli_env: dict[str, str], tmp_path: Path, host: str, reason: str
) -> None:
    """Checked before the embedded server is asked for (it was started, the
    "not loopback" warning printed, then exit 1)."""
    pytest.importorskip("uvicorn")
    home = tmp_path / "home"
    result = run_cli("ui", "--host", host, env={**cli_env, "OLTPSEED_HOME": str(home)})
    assert result.returncode == 2, result.stderr
    line = _one_line(result.stderr)
    assert line.startswith(f"oltpseed: error: --host {host}: ") and reason in line
    assert not home.exists()  # no server was started for it


@pytest.mark.parametrize("port", ["99999", "0"])
def test_a_dsn_port_out_of_range_is_bad_input(
    cli_env: dict[str, str], port: str
) -> None:
    """A typo in a DSN is bad input (exit 2) before any connection, as a bad
    PG_PORT is; it reached libpq and exited 1."""
    dsn = f"postgresql://app:s3cret@127.0.0.1:{port}/shop"
    result = run_cli("counts", "--dsn", dsn, env=cli_env)
    assert result.returncode == 2, result.stderr
    line = _one_line(result.stderr)
    assert "with a port from 1 to 65535" in line and "s3cret" not in line


def test_an_account_without_a_home_is_one_line(
    cli_env: dict[str, str], shared_dir: Path
) -> None:
    """A container's ``--user 4321``: no passwd entry and no HOME. Finding the
    server's home raised RuntimeError from ``Path.home()``: a traceback."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to run as a uid with no passwd entry")
    uid = 4321
    prefix = as_user(uid)
    try:
        pwd.getpwuid(uid)
        pytest.skip(f"uid {uid} has a passwd entry here")
    except KeyError:
        pass
    (shared_dir / "config").mkdir()
    env = {k: v for k, v in cli_env.items() if k not in ("HOME", "XDG_DATA_HOME")}
    env |= {
        "OLTPSEED_CONFIG_DIR": str(shared_dir / "config"),
        "LOG_DIR": str(shared_dir / "logs"),
    }
    env.pop("OLTPSEED_HOME", None)
    shared_dir.chmod(0o777)
    for args in (["counts"], ["server", "status"], ["pause"]):
        result = run_cli(*args, env=env, cwd=shared_dir, timeout=60, user=prefix)
        assert result.returncode == 2, result.stderr
        line = _one_line(result.stderr)
        assert f"no home directory for uid {uid}" in line and "OLTPSEED_HOME" in line
    # with a home given, initdb itself refuses such an account: its reason is
    # in the one line (pg_ctl's own lines went to the terminal above it)
    home = shared_dir / "home"
    started = run_cli(
        "server", "start", env={**env, "OLTPSEED_HOME": str(home)},
        cwd=shared_dir, user=prefix,
    )  # fmt: skip
    assert started.returncode == 1, started.stderr
    line = _one_line(started.stderr)
    assert "PostgreSQL did not start" in line
    assert f"initdb: could not look up effective user ID {uid}" in line
