"""Private PostgreSQL clusters: the persistent embedded server and ephemeral ones.

Both are driven by pytest-postgresql's :class:`PostgreSQLExecutor` (pg_ctl
under mirakuru, in :mod:`.cluster`, imported only to start or stop a cluster)
rather than a process manager of our own. What this package adds is what that
executor lacks (pytest-postgresql issues #341 and #455):

* root safety: PostgreSQL refuses to run as root, so when the effective uid is
  0 every pg_ctl call goes through a root-owned wrapper that drops to an
  unprivileged system user (created if missing) owning only the cluster's data;
* a persistent mode: the embedded server keeps its data directory, survives the
  command that started it, and is found again by the next command;
* one server per data directory even when two ``start`` calls race (flock).

Clusters listen on 127.0.0.1 only, with ``trust`` authentication for the
``postgres`` superuser, ``wal_level=logical`` and replication slots enabled.
They hold throwaway test data: fsync is off (pytest-postgresql's ``-F``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pytest_oltpseed.config import conninfo_url
from pytest_oltpseed.errors import ServerError, UsageError

if TYPE_CHECKING:
    from pytest_oltpseed.server.cluster import ClusterExecutor

HOME_ENV = "OLTPSEED_HOME"
BINDIR_ENV = "OLTPSEED_PG_BINDIR"
RUN_AS_ENV = "OLTPSEED_RUN_AS"
DEFAULT_RUN_AS = "oltpseed"
HOST = "127.0.0.1"
SUPERUSER = "postgres"
DATABASE = "oltpseed"
POSTGRES_OPTIONS = (
    f"-c listen_addresses={HOST} -c wal_level=logical "
    "-c max_replication_slots=10 -c max_wal_senders=10"
)
_SEARCH_GLOBS = (
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/usr/local/pgsql/bin",
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
)
_INSTALL_HINT = (
    "PostgreSQL server binaries (pg_ctl, initdb, postgres) were not found; "
    "install them (Debian/Ubuntu: apt-get install postgresql; Fedora: dnf install "
    f"postgresql-server; macOS: brew install postgresql) or set {BINDIR_ENV}"
)


@dataclass(frozen=True)
class ServerInfo:
    """How to reach a running cluster: ours (``datadir`` set) or a user's.

    A user's server (``--seed-dsn``) keeps its whole connection string in
    ``conninfo`` (password, sslmode, ...), which the repr never shows.
    """

    port: int
    datadir: Path | None
    host: str = HOST
    user: str = SUPERUSER
    dbname: str = DATABASE
    conninfo: str = field(default="", repr=False)

    @classmethod
    def external(cls, conninfo: str) -> ServerInfo:
        """A server given by a URL or conninfo (its database, else ``postgres``)."""
        params = conninfo_to_dict(conninfo)
        port = str(params.get("port") or "5432").split(",")[0]
        return cls(
            port=int(port),
            datadir=None,
            host=str(params.get("host") or "localhost"),
            user=str(params.get("user") or ""),
            dbname=str(params.get("dbname") or "postgres"),
            conninfo=conninfo,
        )

    def dsn(self, dbname: str | None = None) -> str:
        if self.conninfo:
            return make_conninfo(self.conninfo, dbname=dbname or self.dbname)
        return make_conninfo(
            host=self.host,
            port=str(self.port),
            user=self.user,
            dbname=dbname or self.dbname,
        )

    @property
    def url(self) -> str:
        """A ``postgresql://`` URL of the default database (with any password)."""
        return conninfo_url(self.dsn())


def find_bindir() -> Path:
    """The directory holding pg_ctl: $OLTPSEED_PG_BINDIR, PATH, then usual places."""
    configured = os.environ.get(BINDIR_ENV)
    if configured:
        if (Path(configured) / "pg_ctl").is_file():
            return Path(configured)
        raise ServerError(f"{BINDIR_ENV}={configured} has no pg_ctl; {_INSTALL_HINT}")
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = [
        path
        for pattern in _SEARCH_GLOBS
        for path in Path("/").glob(pattern.lstrip("/"))
        if (path / "pg_ctl").is_file()
    ]
    if not candidates:
        raise ServerError(_INSTALL_HINT)
    return max(candidates, key=_version_key)


def _version_key(path: Path) -> tuple[int, ...]:
    digits = "".join(c if c.isdigit() else " " for c in str(path)).split()
    return tuple(int(d) for d in digits)


def run_as_account() -> pwd.struct_passwd | None:
    """The account PostgreSQL runs as when we are root; ``None`` when we are not.

    The account is ``$OLTPSEED_RUN_AS`` (default ``oltpseed``); the default one
    is created as a locked system user the first time it is needed.
    """
    if os.geteuid() != 0:
        return None
    name = os.environ.get(RUN_AS_ENV) or DEFAULT_RUN_AS
    with contextlib.suppress(KeyError):
        return _checked_account(pwd.getpwnam(name))
    if name != DEFAULT_RUN_AS:
        raise ServerError(f"{RUN_AS_ENV}={name}: no such user")
    useradd = shutil.which("useradd")
    if useradd is None:
        raise ServerError(
            f"running as root, PostgreSQL needs an unprivileged user and useradd "
            f"is missing: create a user and set {RUN_AS_ENV} to its name"
        )
    result = subprocess.run(
        [
            useradd,
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            "--comment",
            "pytest-oltpseed PostgreSQL runner",
            name,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:  # a concurrent start may have created it first: that is fine too
        return _checked_account(pwd.getpwnam(name))
    except KeyError:
        reason = result.stderr.strip() or f"exit {result.returncode}"
        raise ServerError(f"cannot create the system user {name!r}: {reason}") from None


def _checked_account(account: pwd.struct_passwd) -> pwd.struct_passwd:
    if account.pw_uid == 0:
        raise ServerError(
            f"{RUN_AS_ENV}={account.pw_name} is root; PostgreSQL refuses it"
        )
    return account


@dataclass(frozen=True)
class Layout:
    """Where a cluster's files live.

    ``base`` and ``base/bin`` belong to the invoking user; only ``base/pg``
    (data, socket, log) belongs to the account that runs PostgreSQL, so that
    account can never rewrite the wrapper that root executes.
    """

    base: Path
    account: pwd.struct_passwd | None

    @property
    def pg_root(self) -> Path:
        return self.base / "pg"

    @property
    def datadir(self) -> Path:
        return self.pg_root / "data"

    @property
    def socketdir(self) -> Path:
        return self.pg_root / "run"

    @property
    def logfile(self) -> Path:
        return self.pg_root / "postgresql.log"

    def prepare(self, bindir: Path) -> str:
        """Create the directories with the right owners; return the pg_ctl to run."""
        self.base.mkdir(parents=True, exist_ok=True)
        self.socketdir.mkdir(parents=True, exist_ok=True)
        pg_ctl = bindir / "pg_ctl"
        if self.account is None:
            return str(pg_ctl)
        self.base.chmod(self.base.stat().st_mode | 0o711)
        uid, gid = self.account.pw_uid, self.account.pw_gid
        for path in (self.pg_root, self.socketdir):
            os.chown(path, uid, gid)
            path.chmod(0o700)
        if self.datadir.exists():
            os.chown(self.datadir, uid, gid)
        self._check_reachable()
        wrapper = self.base / "bin" / "pg_ctl"
        wrapper.parent.mkdir(mode=0o755, exist_ok=True)
        text = (
            "#!/bin/sh\n"
            "# Written by pytest-oltpseed: PostgreSQL refuses to run as root, so\n"
            "# pg_ctl and the server it starts run as an unprivileged user.\n"
            "cd / || exit 1\n"
            f"exec {_setpriv()} --reuid={uid} --regid={gid} --init-groups "
            f'"{pg_ctl}" "$@"\n'
        )
        if not wrapper.exists() or wrapper.read_text() != text:
            tmp = wrapper.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.chmod(0o755)
            tmp.replace(wrapper)
        return str(wrapper)

    def _check_reachable(self) -> None:
        assert self.account is not None
        result = subprocess.run(
            [
                _setpriv(),
                f"--reuid={self.account.pw_uid}",
                f"--regid={self.account.pw_gid}",
                "--init-groups",
                "/bin/sh",
                "-c",
                'test -w "$1"',
                "sh",
                str(self.pg_root),
            ],
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            raise ServerError(
                f"{self.pg_root} is not reachable by {self.account.pw_name!r}, the "
                "unprivileged user that runs PostgreSQL for root: choose a "
                f"directory whose parents it can enter (set {HOME_ENV})"
            )


def _setpriv() -> str:
    found = shutil.which("setpriv") or shutil.which("setpriv", path="/usr/bin:/bin")
    if not found:
        raise ServerError(
            "running as root needs setpriv (Debian: apt-get install util-linux)"
        )
    return found


def _reason(exc: BaseException) -> str:
    output = getattr(exc, "output", None) or getattr(exc, "stderr", None)
    if isinstance(output, bytes):
        output = output.decode(errors="replace")
    text = (output or str(exc)).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def default_home() -> Path:
    """The per-user state directory of the embedded server."""
    if os.environ.get(HOME_ENV):
        home = Path(os.environ[HOME_ENV]).expanduser().resolve()
        if home.exists() and not home.is_dir():
            raise UsageError(f"{HOME_ENV}={home} is not a directory")
        return home
    if os.geteuid() == 0:
        return Path("/var/lib/oltpseed")
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "oltpseed"


class EmbeddedServer:
    """The persistent private cluster behind ``oltpseed server ...``."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = home or default_home()
        self.state_file = self.home / "server.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"cannot create the server's directory {self.home} "
                f"({HOME_ENV}): {exc.strerror or exc}"
            ) from None
        with (self.home / "server.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _saved_port(self) -> int | None:
        try:
            return int(json.loads(self.state_file.read_text())["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _executor(self, port: int) -> ClusterExecutor:
        from pytest_oltpseed.server.cluster import ClusterExecutor

        return ClusterExecutor.for_layout(
            Layout(self.home, run_as_account()), port, persistent=True
        )

    def status(self) -> ServerInfo | None:
        """The running server, or ``None``; never starts anything.

        A server whose ``postmaster.pid`` says it is ready is taken at its
        word, as ``pg_ctl status`` would: asking pg_ctl costs every command
        two processes (three through root's wrapper) and the executor's
        imports. Anything less certain still goes to ``pg_ctl status``.
        """
        port = self._saved_port()
        datadir = self.home / "pg" / "data"
        if port is None or not (datadir / "postmaster.pid").exists():
            return None
        if not (ready_postmaster(datadir, port) or self._executor(port).running()):
            return None
        return ServerInfo(port=port, datadir=datadir)

    def start(self) -> tuple[ServerInfo, bool]:
        """Start the server unless it runs; returns (info, started_now)."""
        with self._locked():
            running = self.status()
            if running is not None:
                return running, False
            saved = self._saved_port()
            port = saved if saved and _port_free(saved) else free_port()
            executor = self._executor(port)
            executor.start_cluster()
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({"port": port, "datadir": str(executor.datadir)}))
            tmp.replace(self.state_file)
            info = ServerInfo(port=port, datadir=self.home / "pg" / "data")
            ensure_database(info, DATABASE)
            return info, True

    def stop(self) -> bool:
        """Stop the server; ``False`` when it was not running."""
        from pytest_oltpseed.server.cluster import ExecutorError

        with self._locked():
            info = self.status()
            if info is None:
                return False
            executor = self._executor(info.port)
            try:
                executor.stop()
            except (ExecutorError, subprocess.CalledProcessError, OSError) as exc:
                raise ServerError(
                    f"could not stop PostgreSQL: {_reason(exc)}"
                ) from None
            return True


def free_port() -> int:
    import port_for

    return int(port_for.select_random())


def ready_postmaster(datadir: Path, port: int) -> bool:
    """Whether ``datadir``'s postmaster.pid names a live server that is
    ready on ``port`` (pg_ctl status's own test: the pid answers signal 0).

    ``False`` means "not sure", never "stopped": the file may be stale,
    another user's, or the server still starting.
    """
    try:
        lines = (datadir / "postmaster.pid").read_text().splitlines()
        pid, listening, state = int(lines[0]), int(lines[3]), lines[7].strip()
    except (OSError, ValueError, IndexError):
        return False
    if pid <= 0 or listening != port or state != "ready":
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _port_free(port: int) -> bool:
    """Whether PostgreSQL could listen on ``port`` again.

    Bound the way PostgreSQL binds (SO_REUSEADDR), so a port our stopped
    server left in TIME_WAIT counts as free, as it is to PostgreSQL.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def ensure_database(info: ServerInfo, dbname: str) -> None:
    """Create ``dbname`` on the cluster if it does not exist yet."""
    with psycopg.connect(info.dsn("postgres"), autocommit=True) as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)
        ).fetchone()
        if not found:
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(
                    sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname))
                )


@contextlib.contextmanager
def ephemeral_server(
    base: Path | None = None, options: str = "", *, keep_kept: bool = False
) -> Iterator[ServerInfo]:
    """A throwaway cluster for a test session: started now, removed on exit,
    unless :func:`mark_kept` was called (it then runs on until the next
    session's sweep; ``keep_kept`` spares such servers of earlier sessions).

    ``options`` are more ``-c name=value`` server settings (they win over ours).
    """
    from pytest_oltpseed.server.cluster import ClusterExecutor, ExecutorError

    sweep_ephemeral(base, keep_kept=keep_kept)
    root = Path(tempfile.mkdtemp(prefix=EPHEMERAL_PREFIX, dir=base))
    (root / OWNER_FILE).write_text(str(os.getpid()))
    executor = ClusterExecutor.for_layout(
        Layout(root, run_as_account()), free_port(), persistent=False, options=options
    )

    def remove() -> None:
        if (root / KEPT_FILE).exists():
            executor._clear_process()  # runs on for inspection; swept later
            return
        with contextlib.suppress(ExecutorError, subprocess.SubprocessError, OSError):
            executor.stop()
        shutil.rmtree(root, ignore_errors=True)

    try:
        with removed_on_sigterm(remove):
            executor.start_cluster()
            info = ServerInfo(port=executor.port, datadir=Path(executor.datadir))
            ensure_database(info, DATABASE)
            yield info
    finally:
        remove()


@contextlib.contextmanager
def removed_on_sigterm(remove: Callable[[], None]) -> Iterator[None]:
    """While the block runs, SIGTERM (what CI timeouts send) first runs
    ``remove``, then does what it did before (by default, ends the process).

    Without this a killed session leaves its server running until the next
    session's sweep. Only the main thread may set signal handlers; elsewhere
    the sweep remains the safety net.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, frame: types.FrameType | None) -> None:
        signal.signal(signal.SIGTERM, previous or signal.SIG_DFL)
        remove()
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is handler:
            signal.signal(signal.SIGTERM, previous or signal.SIG_DFL)


EPHEMERAL_PREFIX = "oltpseed-"
OWNER_FILE = "owner.pid"


KEPT_FILE = "kept"


def mark_kept(info: ServerInfo) -> None:
    """Leave this throwaway server running after its session: it holds a
    database kept for inspection (``--seed-keep-failed``)."""
    if info.datadir is not None:
        (info.datadir.parent.parent / KEPT_FILE).touch()


def sweep_ephemeral(base: Path | None = None, *, keep_kept: bool = False) -> list[Path]:
    """Stop and remove ephemeral clusters whose owning process died (killed runs,
    and servers left running with kept databases unless ``keep_kept``)."""
    removed = []
    for root in Path(base or tempfile.gettempdir()).glob(f"{EPHEMERAL_PREFIX}*"):
        if keep_kept and (root / KEPT_FILE).exists():
            continue
        try:
            owner = int((root / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if process_alive(owner):
            continue
        remove_cluster(root, mode="immediate")
        removed.append(root)
    return removed


def remove_cluster(root: Path, mode: str = "fast") -> None:
    """Stop the cluster laid out under ``root`` (if it runs) and delete ``root``.

    Goes through pg_ctl (the root-safe wrapper when there is one), so any
    process may stop a cluster another process of the session started.
    """
    pg_ctl = root / "bin" / "pg_ctl"
    if (root / "pg" / "data" / "postmaster.pid").exists():
        with contextlib.suppress(OSError, subprocess.SubprocessError, ServerError):
            command = str(pg_ctl) if pg_ctl.exists() else str(find_bindir() / "pg_ctl")
            subprocess.run(
                [command, "stop", "-D", str(root / "pg" / "data"), "-m", mode],
                capture_output=True,
                check=False,
                timeout=60,
            )
    shutil.rmtree(root, ignore_errors=True)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
