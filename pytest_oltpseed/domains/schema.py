"""Install and drop a domain's SQL objects, atomically and never anyone else's.

Every operation runs in one transaction under an advisory lock: two concurrent
``init-db`` runs cannot race on CREATE ... IF NOT EXISTS, and a failed reset
leaves the database exactly as it was.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg

from pytest_oltpseed.data import indices
from pytest_oltpseed.domains import Domain
from pytest_oltpseed.errors import OltpseedError

_LOCK = "SELECT pg_advisory_xact_lock(hashtext('pytest_oltpseed.domains.schema'))"


def install_plan(domains: Sequence[Domain]) -> list[Path]:
    return [path for domain in domains for path in domain.install_files()]


def reset_plan(domains: Sequence[Domain]) -> list[Path]:
    return [d.drop_file for d in reversed(domains)] + install_plan(domains)


def install(conn: psycopg.Connection, domains: Sequence[Domain]) -> list[Path]:
    """Create tables, triggers, indexes and lookups; harmless when already there.

    A database an earlier version installed keeps its identifier indices: they
    move from its bookkeeping table into sequences (see ``indices``).
    """

    def migrate(conn: psycopg.Connection) -> None:
        for domain in domains:
            indices.migrate_legacy(conn, domain.name)

    return _apply(conn, install_plan(domains), migrate)


def missing(conn: psycopg.Connection, domains: Sequence[Domain]) -> list[str]:
    """The objects the domains' install SQL creates that the database lacks.

    Read-only, so a role with DML rights only can ask. The expected objects
    come from the SQL files themselves (tables, indexes, sequences, triggers),
    so a domain or an object added later is covered without a second list.
    This is the one place that decides "is the schema there?": extend it when
    a domain gains objects its SQL files do not declare.
    """
    relations: list[str] = []
    triggers: list[tuple[str, str]] = []
    for domain in domains:
        for path in domain.install_files():
            text = path.read_text(encoding="utf-8")
            relations += _RELATION.findall(text)
            triggers += _TRIGGER.findall(text)
        # Every table the domain declares, also when its SQL creates it some
        # other way (a generated domain's captured DDL runs inside a DO block).
        relations += [t for t in domain.tables if t not in relations]
    with conn.transaction():
        return _absent(conn, relations, triggers)


def _absent(
    conn: psycopg.Connection, relations: list[str], triggers: list[tuple[str, str]]
) -> list[str]:
    absent = [
        row[0]
        for row in conn.execute(
            "SELECT r FROM unnest(%s::text[]) WITH ORDINALITY AS u(r, n) "
            "WHERE to_regclass(r) IS NULL ORDER BY n",
            (relations,),
        )
    ]
    if triggers:
        absent += [
            f"trigger {row[0]}"
            for row in conn.execute(
                "SELECT t FROM unnest(%s::text[], %s::text[]) "
                "WITH ORDINALITY AS u(t, rel, n) WHERE NOT EXISTS ("
                "SELECT 1 FROM pg_trigger g WHERE g.tgname = u.t "
                "AND g.tgrelid = to_regclass(u.rel)) ORDER BY n",
                ([t for t, _ in triggers], [r for _, r in triggers]),
            )
        ]
    return absent


def ensure(
    conn: psycopg.Connection,
    domains: Sequence[Domain],
    announce: Callable[[str], None],
) -> list[str]:
    """Install the domains' schema only when something is missing; say so.

    Running the DDL every time would need CREATE on the schema even when every
    table exists, which a least-privilege (DML-only) role does not have. Returns
    what was missing (empty: nothing was applied).
    """
    absent = missing(conn, domains)
    if absent:
        shown = ", ".join(absent[:6]) + (
            f" and {len(absent) - 6} more" if len(absent) > 6 else ""
        )
        announce(
            f"installing the {'/'.join(d.name for d in domains)} schema "
            f"(missing: {shown})"
        )
        install(conn, domains)
    return absent


_RELATION = re.compile(
    r"^\s*CREATE\s+(?:UNIQUE\s+)?(?:TABLE|INDEX|SEQUENCE)\s+IF\s+NOT\s+EXISTS"
    r"\s+([A-Za-z_][A-Za-z0-9_]*)",
    re.IGNORECASE | re.MULTILINE,
)
_TRIGGER = re.compile(
    r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?TRIGGER\s+([A-Za-z_][A-Za-z0-9_]*)"
    r"[^;]*?\bON\s+([A-Za-z_][A-Za-z0-9_.]*)",
    re.IGNORECASE | re.MULTILINE,
)


def reset(conn: psycopg.Connection, domains: Sequence[Domain]) -> list[Path]:
    """Drop the domains' own objects (their marked index sequences included)
    and install them again, in one transaction."""

    def drop_indices(conn: psycopg.Connection) -> None:
        for domain in domains:
            indices.drop_all(conn, domain.name)

    # first: the install files make the key sequences anew
    return _apply(conn, reset_plan(domains), before=drop_indices)


@dataclass(frozen=True)
class Operation:
    """A schema command: what it would apply, how it applies it, what it says."""

    plan: Callable[[Sequence[Domain]], list[Path]]
    apply: Callable[[psycopg.Connection, Sequence[Domain]], list[Path]]
    done: str


OPERATIONS = {
    "init-db": Operation(install_plan, install, "installed"),
    "reset": Operation(reset_plan, reset, "recreated"),
}


def _apply(
    conn: psycopg.Connection,
    files: list[Path],
    then: Callable[[psycopg.Connection], None] | None = None,
    *,
    before: Callable[[psycopg.Connection], None] | None = None,
) -> list[Path]:
    """Run ``before``, ``files``, then ``then``, in one transaction under the lock."""
    current: Path | None = None
    try:
        with conn.transaction():
            conn.execute(_LOCK)
            if before is not None:
                before(conn)
            for current in files:
                conn.execute(current.read_text(encoding="utf-8"))
            current = None
            if then is not None:
                then(conn)
    except psycopg.errors.DependentObjectsStillExist as exc:
        detail = exc.diag.message_detail or exc.diag.message_primary or str(exc)
        raise OltpseedError(
            f"nothing was changed: an object outside oltpseed depends on its tables "
            f"({detail.splitlines()[0]}); drop or alter that object first"
        ) from None
    except psycopg.DatabaseError as exc:
        where = f"{current.parent.name}/{current.name}" if current else "schema"
        raise OltpseedError(
            f"nothing was changed: {where} failed: {exc.diag.message_primary or exc}"
        ) from None
    return files
