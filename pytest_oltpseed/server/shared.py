"""One throwaway server for a whole pytest session, xdist workers included.

Without it every xdist worker started a cluster of its own and seeded its own
templates, so ``-n 2`` was slower than no ``-n`` at all. Here the controller
(the process xdist starts workers from) only names a directory and hands it
to every worker; the first worker that needs a server starts it there, under
a file lock, and the others find it. Templates are then built once per server
(the janitor's advisory lock), so workers only clone.

The controller outlives every worker, so it stops the server and removes the
directory when the session ends (or on SIGTERM). The directory records the
controller's pid as its owner: a killed session's server is swept by the next
session, exactly as a lone throwaway server is.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_oltpseed.errors import ServerError
from pytest_oltpseed.server.cluster import ClusterExecutor
from pytest_oltpseed.server.embedded import (
    DATABASE,
    EPHEMERAL_PREFIX,
    KEPT_FILE,
    OWNER_FILE,
    Layout,
    ServerInfo,
    ensure_database,
    free_port,
    process_alive,
    remove_cluster,
    run_as_account,
    sweep_ephemeral,
)

_INPUT_KEY = "oltpseed_shared_server"
_STATE = "server.json"


@dataclass(frozen=True)
class SharedServer:
    """Where the session's server lives and which process owns it."""

    root: Path
    owner: int

    @classmethod
    def plan(cls, base: Path | None = None) -> SharedServer:
        """A new, not yet created, directory for this session (the caller owns it)."""
        name = f"{EPHEMERAL_PREFIX}shared-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        return cls(Path(base or tempfile.gettempdir()) / name, os.getpid())

    def to_input(self) -> dict[str, Any]:
        """What a worker needs (xdist's ``workerinput`` carries it)."""
        return {_INPUT_KEY: {"root": str(self.root), "owner": self.owner}}

    @classmethod
    def from_input(cls, workerinput: Mapping[str, Any]) -> SharedServer | None:
        given = workerinput.get(_INPUT_KEY)
        if not given:
            return None
        return cls(Path(given["root"]), int(given["owner"]))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(mode=0o700, exist_ok=True)
        owner = self.root / OWNER_FILE
        if not owner.exists():
            owner.write_text(str(self.owner))
        with (self.root / "shared.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def acquire(self, *, keep_kept: bool = False) -> ServerInfo:
        """The session's server: started now by the first caller, found by the rest."""
        if not process_alive(self.owner):
            raise ServerError("the pytest session that owns the shared server ended")
        with self._locked():
            state = self.root / _STATE
            datadir = self.root / "pg" / "data"
            if state.exists():
                if not (datadir / "postmaster.pid").exists():
                    raise ServerError(
                        f"the session's PostgreSQL server stopped; see "
                        f"{self.root / 'pg' / 'postgresql.log'}"
                    )
                port = int(json.loads(state.read_text())["port"])
                return ServerInfo(port=port, datadir=datadir)
            sweep_ephemeral(self.root.parent, keep_kept=keep_kept)
            # persistent: the server outlives the worker that started it; the
            # controller stops it (remove) when the whole session ends.
            executor = ClusterExecutor.for_layout(
                Layout(self.root, run_as_account()), free_port(), persistent=True
            )
            executor.start_cluster()
            info = ServerInfo(port=executor.port, datadir=datadir)
            ensure_database(info, DATABASE)
            tmp = state.with_suffix(".tmp")
            tmp.write_text(json.dumps({"port": executor.port}))
            tmp.replace(state)
            return info

    def remove(self) -> None:
        """Stop the server (if one was started) and delete its directory, unless
        a worker kept a failed test's database on it (the next session's sweep
        removes it then)."""
        if self.root.exists() and not (self.root / KEPT_FILE).exists():
            remove_cluster(self.root)
