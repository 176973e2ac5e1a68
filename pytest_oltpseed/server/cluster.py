"""The cluster executor: pytest-postgresql's pg_ctl driver, made root-safe.

Apart from :mod:`.embedded` because of what it loads: pytest-postgresql,
mirakuru (whose exit hook scans every process on the machine) and their
dependencies. A command whose embedded server already runs finds it from its
``postmaster.pid`` and never imports this module; starting, stopping and the
throwaway test servers do.
"""

from __future__ import annotations

import subprocess

from mirakuru.base import ENV_UUID
from mirakuru.exceptions import ExecutorError
from pytest_postgresql.executors import PostgreSQLExecutor

from pytest_oltpseed.errors import ServerError
from pytest_oltpseed.server.embedded import (
    DATABASE,
    HOST,
    POSTGRES_OPTIONS,
    SUPERUSER,
    Layout,
    _reason,
    find_bindir,
)

__all__ = ["ClusterExecutor", "ExecutorError"]


class ClusterExecutor(PostgreSQLExecutor):
    """pytest-postgresql's executor, made root-safe and optionally persistent.

    ``persistent`` keeps an existing data directory (the stock executor wipes it
    at every start and on garbage collection).
    """

    @classmethod
    def for_layout(
        cls, layout: Layout, port: int, *, persistent: bool, options: str = ""
    ) -> ClusterExecutor:
        """Find the binaries and prepare the directories, then build the executor.

        Failing here, before the executor exists, keeps its ``__del__`` (which
        expects a complete object) from printing a traceback after our message.
        """
        executable = layout.prepare(find_bindir())
        return cls(layout, port, executable, persistent=persistent, options=options)

    def __init__(
        self,
        layout: Layout,
        port: int,
        executable: str,
        *,
        persistent: bool,
        options: str = "",
    ) -> None:
        self._persistent = persistent
        self.layout = layout
        super().__init__(
            executable=executable,
            host=HOST,
            port=port,
            datadir=str(layout.datadir),
            unixsocketdir=str(layout.socketdir),
            logfile=str(layout.logfile),
            startparams="-w",
            dbname=DATABASE,
            user=SUPERUSER,
            postgres_options=f"{POSTGRES_OPTIONS} {options}".strip(),
            timeout=60,
        )

    @property
    def envvars(self) -> dict[str, str]:
        # mirakuru marks children with "<pid>:<uuid>" and, when *any* Python
        # process that imported it exits, SIGKILLs every process whose mark
        # merely contains that process's pid as a substring: a short-lived CLI
        # or xdist worker could kill another session's server. Ours carry no
        # mark; the persistent one must outlive us anyway, and ephemeral ones
        # are stopped by their context manager or swept by the next session.
        envs = super().envvars
        envs.pop(ENV_UUID, None)
        return envs

    def init_directory(self) -> None:
        if (self.layout.datadir / "PG_VERSION").exists():
            self._directory_initialised = True
            return
        super().init_directory()

    def clean_directory(self) -> None:
        if not self._persistent:
            super().clean_directory()

    def start_cluster(self) -> None:
        """Start, turning every failure into one line that points at the log."""
        try:
            self.start()
            # mirakuru calls the server up once its port is open, which happens
            # before PostgreSQL accepts connections ("the database system is
            # starting up"); pg_ctl -w exits only once it does.
            code = self.process.wait(timeout=self._timeout) if self.process else 0
        except (ExecutorError, subprocess.SubprocessError, OSError) as exc:
            raise ServerError(
                f"PostgreSQL did not start on {HOST}:{self.port}: {_reason(exc)}; "
                f"see {self.layout.logfile}"
            ) from None
        if code != 0:
            raise ServerError(
                f"PostgreSQL did not start on {HOST}:{self.port} (pg_ctl exit "
                f"{code}); see {self.layout.logfile}"
            )
        if self._persistent:
            self._clear_process()  # the server outlives this process
