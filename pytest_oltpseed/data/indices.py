"""Identifier reservations in PostgreSQL sequences, invisible to logical decoding.

Generated identifiers (CPF, CRM, CNPJ, invoice numbers, ...) are numbered by
an index per ``(domain, key)``; writers that share a database reserve their
indices here so no index is ever issued twice. A sequence per key
(``oltpseed_<domain>_idx_<key>``) does it: ``nextval`` is atomic, never rolled
back and durable across crashes and restarts (PostgreSQL logs a sequence
ahead of what it hands out), and sequence updates are not decoded by logical
replication, so a CDC client capturing every table sees none of oltpseed's
bookkeeping (a table did: its UPDATEs reached pgoutput and test_decoding).

Each sequence carries ``COMMENT ON SEQUENCE`` :data:`MARK`; ``reset`` drops
only the sequences that bear it.
"""

from __future__ import annotations

import contextlib
import re

import psycopg
from psycopg import errors, sql

MARK = "oltpseed: identifier index reservations (bookkeeping, not business data)"
_KEY = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)?$")


def sequence_name(domain: str, key: str) -> str:
    """``pacientes.cpf`` of ``hospital`` -> ``oltpseed_hospital_idx_pacientes_cpf``."""
    name = f"oltpseed_{domain}_idx_{key.replace('.', '__')}"
    if not _KEY.match(key) or len(name) > 63:
        raise ValueError(f"index key {key!r} of {domain!r} cannot name a sequence")
    return name


def legacy_table(domain: str) -> str:
    """The bookkeeping table earlier versions kept indices in."""
    return f"oltpseed_{domain}_sequences"


def ensure(conn: psycopg.Connection, domain: str, key: str) -> str:
    """The key's sequence name, the sequence created (and marked) when missing.

    Creation runs in a savepoint when ``conn`` is in a transaction; when two
    writers create the same sequence at once, the loser's CREATE fails on the
    catalog's unique index and it uses the winner's.
    """
    name = sequence_name(domain, key)
    if _exists(conn, name):
        return name
    ident = sql.Identifier(name)
    try:
        with conn.transaction():
            conn.execute(
                sql.SQL("CREATE SEQUENCE {} AS bigint MINVALUE 0 START 0").format(ident)
            )
            conn.execute(
                sql.SQL("COMMENT ON SEQUENCE {} IS {}").format(ident, sql.Literal(MARK))
            )
    except (errors.DuplicateTable, errors.UniqueViolation):
        pass  # created meanwhile by another writer
    return name


def reserve(conn: psycopg.Connection, domain: str, key: str, count: int) -> list[int]:
    """``count`` indices no other writer ever gets, ascending (not always
    contiguous: concurrent writers interleave).

    One round trip when the sequence exists: ``nextval`` of a missing one
    (``to_regclass`` NULL) is NULL, and only then is it created.
    """
    name = sequence_name(domain, key)
    for _ in range(2):
        rows = conn.execute(
            "SELECT nextval(to_regclass(%s)) FROM generate_series(1, %s)",
            (_quoted(name), count),
        ).fetchall()
        if rows and rows[0][0] is not None:
            return sorted(int(r[0]) for r in rows)
        ensure(conn, domain, key)
    raise AssertionError(f"sequence {name} vanished while reserving")


def bump(conn: psycopg.Connection, domain: str, key: str, next_free: int) -> None:
    """Make sure the sequence hands out nothing below ``next_free`` (indices a
    seeder numbered itself).

    ``setval`` is not atomic with a read, so the sequence is first locked
    against ``nextval`` (a no-op ALTER SEQUENCE takes SHARE ROW EXCLUSIVE until
    the transaction ends): it can only move forward, never back over an index
    a concurrent writer already holds.

    A role that does not own the sequence (a DML-only role: ALTER and setval
    are the owner's) advances it with ``nextval`` instead, which needs only
    USAGE and can only move forward too.

    Three statements when the caller is in a transaction (a seeding stage):
    ownership (which also says whether the sequence exists), the lock, the
    move. Outside one, a transaction of its own holds the lock.
    """
    name = sequence_name(domain, key)
    owns = _owns(conn, name)
    if owns is None:
        ensure(conn, domain, key)
        owns = _owns(conn, name)  # ours, unless another writer made it first
    ident = sql.Identifier(name)
    idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with conn.transaction() if idle else contextlib.nullcontext():
        if not owns:
            conn.execute(
                sql.SQL(
                    "SELECT count(nextval(to_regclass(%(r)s))) FROM generate_series("
                    "1, (SELECT %(n)s - last_value - is_called::int FROM {}))"
                ).format(ident),
                {"r": _quoted(name), "n": next_free},
            )
            return
        conn.execute(sql.SQL("ALTER SEQUENCE {} NO CYCLE").format(ident))
        conn.execute(
            sql.SQL(
                "SELECT setval(to_regclass(%(r)s), %(n)s, false) FROM {} "
                "WHERE last_value + is_called::int < %(n)s"
            ).format(ident),
            {"r": _quoted(name), "n": next_free},
        )


def _owns(conn: psycopg.Connection, name: str) -> bool | None:
    """Whether the current role owns (or is a member of the owner of) ``name``;
    ``None`` when there is no such sequence."""
    row = conn.execute(
        "SELECT pg_has_role(relowner, 'USAGE') FROM pg_class "
        "WHERE oid = to_regclass(%s)",
        (_quoted(name),),
    ).fetchone()
    return None if row is None else bool(row[0])


def next_free(conn: psycopg.Connection, domain: str, key: str) -> int | None:
    """The next index the key's sequence hands out (None: no sequence yet)."""
    name = sequence_name(domain, key)
    if not _exists(conn, name):
        return None
    row = conn.execute(
        sql.SQL("SELECT last_value + is_called::int FROM {}").format(
            sql.Identifier(name)
        )
    ).fetchone()
    assert row is not None
    return int(row[0])


def migrate_legacy(conn: psycopg.Connection, domain: str) -> int:
    """Move indices out of an earlier version's bookkeeping table into
    sequences, then drop the table; the number of keys moved."""
    table = legacy_table(domain)
    if not _exists(conn, table):
        return 0
    rows = conn.execute(
        sql.SQL("SELECT key, next_index FROM {}").format(sql.Identifier(table))
    ).fetchall()
    for key, index in rows:
        bump(conn, domain, str(key), int(index))
    conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))
    return len(rows)


def owned(conn: psycopg.Connection, domain: str) -> list[str]:
    """The domain's sequences that bear oltpseed's mark (visible schemas only)."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c WHERE c.relkind = 'S' "
        "AND pg_table_is_visible(c.oid) AND starts_with(c.relname, %s) "
        "AND obj_description(c.oid, 'pg_class') = %s ORDER BY 1",
        (f"oltpseed_{domain}_idx_", MARK),
    ).fetchall()
    return [str(r[0]) for r in rows]


def drop_all(conn: psycopg.Connection, domain: str) -> list[str]:
    """Drop the domain's marked sequences (``reset``); a user's stay."""
    names = owned(conn, domain)
    for name in names:
        conn.execute(sql.SQL("DROP SEQUENCE {}").format(sql.Identifier(name)))
    return names


def _exists(conn: psycopg.Connection, name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (_quoted(name),))
    found = row.fetchone()
    return bool(found and found[0])


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
