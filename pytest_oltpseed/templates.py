"""Seeded template databases and their clones: what the pytest fixtures stand on.

A template is seeded once per (profile, domains, seed) through the seeding
engine and cloned with ``CREATE DATABASE ... TEMPLATE``. The janitor creates
and drops only databases whose names it generated (``oltpseed_tpl_*`` and
``oltpseed_db_*``), so it is safe on a shared server (``--seed-dsn``). A
template finished by an earlier run is reused; one left half-built by a crash
is rebuilt; clones left by dead processes of this host are dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
from psycopg import sql

from pytest_oltpseed import __version__, schema
from pytest_oltpseed.domains import Domain
from pytest_oltpseed.errors import DatabaseUnavailable
from pytest_oltpseed.profiles import Profile
from pytest_oltpseed.seeding import Seeder, plan
from pytest_oltpseed.server import process_alive

TEMPLATE_PREFIX = "oltpseed_tpl_"
CLONE_PREFIX = "oltpseed_db_"
READY = "oltpseed template: ready"


@dataclass(frozen=True)
class Recipe:
    """What a template holds; its name changes whenever its content would."""

    profile: Profile
    domains: tuple[Domain, ...]
    seed: int

    @property
    def template(self) -> str:
        digest = hashlib.sha1(usedforsecurity=False)
        digest.update(
            f"{__version__}|{self.seed}|{sorted(self.profile.counts.items())}".encode()
        )
        for path in schema.install_plan(self.domains):
            digest.update(path.read_bytes())
        domains = "_".join(d.name for d in self.domains)
        return (
            f"{TEMPLATE_PREFIX}{self.profile.name.lower()}_{domains}_"
            f"{self.seed}_{digest.hexdigest()[:10]}"
        )[:63]


class Janitor:
    """Creates, seeds, clones and drops the databases the fixtures use."""

    def __init__(self, dsn: Callable[[str], str], workers: int = 0) -> None:
        self.dsn = dsn  # database name -> conninfo on the server
        self.workers = workers
        self._owner = f"{socket.gethostname()[:20]}_{os.getpid()}"
        self._count = 0

    @contextlib.contextmanager
    def _admin(self) -> Iterator[psycopg.Connection]:
        try:
            conn = psycopg.connect(self.dsn("postgres"), autocommit=True)
        except psycopg.OperationalError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc
            raise DatabaseUnavailable(
                f"cannot reach the seed server: {first}"
            ) from None
        with conn:
            yield conn

    def template(self, recipe: Recipe) -> str:
        """The ready template for ``recipe``, built now if needed (once per server)."""
        name = recipe.template
        with self._admin() as admin:
            admin.execute("SELECT pg_advisory_lock(hashtext(%s))", (name,))
            try:
                state = admin.execute(
                    "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                    "WHERE datname = %s",
                    (name,),
                ).fetchone()
                if state and state[0] == READY:
                    return name
                if state:  # left half-built by a crashed run
                    self._drop(admin, name)
                admin.execute(
                    sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
                )
                try:
                    with psycopg.connect(self.dsn(name)) as conn:
                        schema.install(conn, recipe.domains)
                        Seeder(conn, seed=recipe.seed, workers=self.workers).run(
                            plan(recipe.domains, recipe.profile)
                        )
                except BaseException:
                    self._drop(admin, name)
                    raise
                admin.execute(
                    sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                        sql.Identifier(name), sql.Literal(READY)
                    )
                )
                return name
            finally:
                admin.execute("SELECT pg_advisory_unlock(hashtext(%s))", (name,))

    def clone(self, template: str) -> str:
        """A new database copied from ``template``; its name."""
        self._count += 1
        name = f"{CLONE_PREFIX}{self._owner}_{self._count}_{uuid.uuid4().hex[:6]}"[:63]
        with self._admin() as admin:
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        return name

    def drop(self, name: str) -> None:
        with self._admin() as admin:
            self._drop(admin, name)

    @staticmethod
    def _drop(admin: psycopg.Connection, name: str) -> None:
        if not name.startswith((TEMPLATE_PREFIX, CLONE_PREFIX)):
            raise ValueError(f"refusing to drop {name!r}: not a database oltpseed made")
        # A logical slot left in a clone by a killed test (oltp_cdc) would
        # block the drop; the clone is ours, so are its slots.
        admin.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE database = %s AND NOT active",
            (name,),
        )
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )

    def sweep(self) -> list[str]:
        """Drop clones left on this host by processes that no longer run."""
        host = socket.gethostname()[:20]
        dropped = []
        with self._admin() as admin:
            names = [
                r[0]
                for r in admin.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE %s",
                    (f"{CLONE_PREFIX}{host}_%",),
                )
            ]
            for name in names:
                pid = name[len(CLONE_PREFIX) + len(host) + 1 :].split("_", 1)[0]
                if pid.isdigit() and not process_alive(int(pid)):
                    self._drop(admin, name)
                    dropped.append(name)
        return dropped
