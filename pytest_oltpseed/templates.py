"""Seeded template databases and their clones: what the pytest fixtures stand on.

A template is seeded once per (profile, domains, seed, role) through the
seeding engine and cloned with ``CREATE DATABASE ... TEMPLATE``. The role is
part of the key because PostgreSQL lets only a database's owner (or a
superuser) copy it, and the tables inside stay owned by the role that built
them: on a shared server (``--seed-dsn``) each role builds, owns and clones
its own templates. The janitor creates and drops only databases whose names
it generated (``oltpseed_tpl_*`` and ``oltpseed_db_*``) and that its role
owns. A template finished by an earlier run is reused; one left half-built by
a crash is rebuilt; clones left by dead processes of this host are dropped.
Its comment records the exact row count of every table, which is what
``oltp_profile.counts`` reports.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from pytest_oltpseed import __version__, db, schema
from pytest_oltpseed.config import redact_text
from pytest_oltpseed.domains import Domain, tables_of
from pytest_oltpseed.errors import DatabaseUnavailable, OltpseedError
from pytest_oltpseed.profiles import Profile
from pytest_oltpseed.seeding import Seeder, plan
from pytest_oltpseed.server import process_alive

TEMPLATE_PREFIX = "oltpseed_tpl_"
CLONE_PREFIX = "oltpseed_db_"
READY = "oltpseed template: ready"
KEPT = "oltpseed clone: kept for"
FORMAT = 2  # bumped when what a template records changes (2: row counts)


@dataclass(frozen=True)
class Recipe:
    """What a template holds; its name changes whenever its content would."""

    profile: Profile
    domains: tuple[Domain, ...]
    seed: int

    def template(self, role: str) -> str:
        """The template's name for ``role`` (the role that builds and owns it)."""
        digest = hashlib.sha1(usedforsecurity=False)
        digest.update(
            f"{__version__}|{FORMAT}|{role}|{self.seed}|"
            f"{sorted(self.profile.counts.items())}".encode()
        )
        for path in schema.install_plan(self.domains):
            digest.update(path.read_bytes())
        domains = "_".join(d.name for d in self.domains)
        return (
            f"{TEMPLATE_PREFIX}{self.profile.name.lower()}_{domains}_"
            f"{self.seed}_{digest.hexdigest()[:10]}"
        )[:63]


@dataclass(frozen=True)
class Template:
    """A ready template: its name and the rows each of its tables holds."""

    name: str
    counts: dict[str, int]


@dataclass(frozen=True)
class TemplateInfo:
    """A template on the server, as ``oltpseed templates list`` shows it."""

    name: str
    owner: str
    size: int
    ready: bool
    mine: bool


class Janitor:
    """Creates, seeds, clones and drops the databases the fixtures use."""

    def __init__(self, dsn: Callable[[str], str], workers: int = 0) -> None:
        self.dsn = dsn  # database name -> conninfo on the server
        self.workers = workers
        self._owner = f"{socket.gethostname()[:20]}_{os.getpid()}"
        self._count = 0
        self._role: str | None = None

    @classmethod
    def on(cls, conninfo: str) -> Janitor:
        """A janitor for the server ``conninfo`` points at (any of its databases)."""
        return cls(lambda dbname: make_conninfo(conninfo, dbname=dbname))

    @contextlib.contextmanager
    def _admin(self) -> Iterator[psycopg.Connection]:
        try:
            conn = psycopg.connect(self.dsn("postgres"), autocommit=True)
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(
                f"cannot reach the seed server: {redact_text(db.first_line(exc))}"
            ) from None
        with conn:
            if self._role is None:
                found = conn.execute("SELECT current_user").fetchone()
                self._role = str(found[0]) if found else ""
            yield conn

    @property
    def role(self) -> str:
        """The role the janitor works as (``current_user`` on the server)."""
        if self._role is None:
            with self._admin():
                pass
        assert self._role is not None
        return self._role

    def template(self, recipe: Recipe) -> Template:
        """The ready template for ``recipe``, built now if needed (once per server
        and role)."""
        name = recipe.template(self.role)
        with self._admin() as admin:
            admin.execute("SELECT pg_advisory_lock(hashtext(%s))", (name,))
            try:
                state = admin.execute(
                    "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                    "WHERE datname = %s",
                    (name,),
                ).fetchone()
                counts = _ready_counts(state[0] if state else None)
                if counts is not None:
                    return Template(name, counts)
                if state:  # left half-built by a crashed run
                    self._drop(admin, name)
                self._create(admin, name)
                try:
                    with psycopg.connect(self.dsn(name)) as conn:
                        schema.install(conn, recipe.domains)
                        Seeder(conn, seed=recipe.seed, workers=self.workers).run(
                            plan(recipe.domains, recipe.profile)
                        )
                        found = db.table_counts(conn, tables_of(recipe.domains))
                    counts = {t: int(n or 0) for t, n in found.items()}
                except BaseException:
                    self._drop(admin, name)
                    raise
                admin.execute(
                    sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                        sql.Identifier(name),
                        sql.Literal(f"{READY} {json.dumps(counts)}"),
                    )
                )
                return Template(name, counts)
            finally:
                admin.execute("SELECT pg_advisory_unlock(hashtext(%s))", (name,))

    def clone(self, template: str) -> str:
        """A new database copied from ``template``; its name."""
        self._count += 1
        name = f"{CLONE_PREFIX}{self._owner}_{self._count}_{uuid.uuid4().hex[:6]}"[:63]
        with self._admin() as admin:
            self._create(admin, name, template)
        return name

    def _create(
        self, admin: psycopg.Connection, name: str, template: str | None = None
    ) -> None:
        """CREATE DATABASE (a copy of ``template``); a refusal becomes one line
        naming the role and the template's owner."""
        query = (
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(name), sql.Identifier(template)
            )
            if template
            else sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        )
        try:
            admin.execute(query)
        except psycopg.errors.InsufficientPrivilege:
            if template is None:
                raise TemplateError(
                    f"role {self.role!r} may not create databases on the seed "
                    f"server: ALTER ROLE {self.role} CREATEDB (or use another role)"
                ) from None
            found = admin.execute(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                (template,),
            ).fetchone()
            owner = found[0] if found else "another role"
            raise TemplateError(
                f"role {self.role!r} may not copy template {template} owned by "
                f"{owner!r}: run as {owner!r}, or drop it (oltpseed templates drop)"
            ) from None

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

    def keep(self, name: str, note: str) -> None:
        """Mark clone ``name`` as kept for inspection (``--seed-keep-failed``):
        the next sweep drops it only when not asked to keep kept clones."""
        with self._admin() as admin:
            admin.execute(
                sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                    sql.Identifier(name), sql.Literal(f"{KEPT} {note}")
                )
            )

    def sweep(self, *, keep_kept: bool = False) -> list[str]:
        """Drop this role's clones left on this host by processes that no longer
        run (another role's are not ours to drop); with ``keep_kept``, spare the
        clones an earlier session kept for inspection."""
        host = socket.gethostname()[:20]
        dropped = []
        with self._admin() as admin:
            rows = admin.execute(
                "SELECT datname, shobj_description(oid, 'pg_database') "
                "FROM pg_database WHERE datname LIKE %s "
                "AND datdba = (SELECT oid FROM pg_roles "
                "WHERE rolname = current_user)",
                (f"{CLONE_PREFIX}{host}_%",),
            ).fetchall()
            for name, comment in rows:
                if keep_kept and (comment or "").startswith(KEPT):
                    continue
                pid = name[len(CLONE_PREFIX) + len(host) + 1 :].split("_", 1)[0]
                if pid.isdigit() and not process_alive(int(pid)):
                    self._drop(admin, name)
                    dropped.append(name)
        return dropped

    def templates(self) -> list[TemplateInfo]:
        """Every oltpseed template on the server, whoever owns it."""
        with self._admin() as admin:
            rows = admin.execute(
                "SELECT datname, pg_get_userbyid(datdba), "
                "pg_database_size(oid), shobj_description(oid, 'pg_database'), "
                "pg_get_userbyid(datdba) = current_user FROM pg_database "
                "WHERE starts_with(datname, %s) ORDER BY datname",
                (TEMPLATE_PREFIX,),
            ).fetchall()
        return [
            TemplateInfo(
                name, owner, int(size), (comment or "").startswith(READY), bool(mine)
            )
            for name, owner, size, comment, mine in rows
        ]

    def drop_templates(
        self, names: Sequence[str] = (), *, dry_run: bool = False
    ) -> list[str]:
        """Drop this role's oltpseed templates (only ``names`` when given); with
        ``dry_run`` only say which.

        A name that is not an oltpseed template of this role is refused before
        anything is dropped.
        """
        mine = {t.name for t in self.templates() if t.mine}
        unknown = [n for n in names if n not in mine]
        if unknown:
            raise TemplateError(
                f"{unknown[0]} is not an oltpseed template owned by {self.role!r}; "
                "see: oltpseed templates list"
            )
        chosen = sorted(names or mine)
        if dry_run:
            return chosen
        with self._admin() as admin:
            for name in chosen:
                self._drop(admin, name)
        return chosen


class TemplateError(OltpseedError):
    """A template or clone the server refused to create, copy or drop."""


def _ready_counts(comment: str | None) -> dict[str, int] | None:
    """The row counts a ready template recorded; ``None`` if it is not ready."""
    if not comment or not comment.startswith(READY + " "):
        return None
    try:
        counts = json.loads(comment[len(READY) + 1 :])
    except ValueError:
        return None
    return {str(t): int(n) for t, n in counts.items()}
