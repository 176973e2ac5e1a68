"""``oltpseed cdc preflight``: what a Debezium PostgreSQL connector needs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg


@dataclass(frozen=True)
class Check:
    """One requirement of a Debezium PostgreSQL connector; ``ok`` None = advice."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""


IDENTITY = {
    "d": ("DEFAULT", "the primary key of the old row"),
    "f": ("FULL", "the whole old row"),
    "i": ("INDEX", "the columns of the chosen unique index"),
    "n": ("NOTHING", "no old values: deletes cannot be told apart"),
}


def preflight(
    conn: psycopg.Connection,
    tables: Sequence[str],
    publication: str,
    *,
    creates: str = "",
) -> list[Check]:
    """What a Debezium connector needs from this server and these tables.

    ``creates``: when the publication is oltpseed's own, what makes it
    (``oltpseed cdc start``); a missing one's fix then says that, not a
    CREATE PUBLICATION, which would lack oltpseed's mark and make
    ``cdc start`` refuse it.
    """

    def value(query: str, *params: Any) -> Any:
        row = conn.execute(query, params).fetchone()
        return row[0] if row else None

    checks: list[Check] = []
    level = value("SHOW wal_level")
    checks.append(
        Check(
            "wal_level = logical",
            level == "logical",
            f"wal_level is {level}",
            "" if level == "logical" else
            "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL",
        )
    )  # fmt: skip
    slots = int(value("SHOW max_replication_slots"))
    used = int(value("SELECT count(*) FROM pg_replication_slots"))
    checks.append(
        Check(
            "a free replication slot",
            slots - used >= 1,
            f"{used} of max_replication_slots={slots} in use",
            "" if slots - used >= 1 else
            "drop unused slots (pg_drop_replication_slot) or raise "
            "max_replication_slots",
        )
    )  # fmt: skip
    senders = int(value("SHOW max_wal_senders"))
    active = int(value("SELECT count(*) FROM pg_stat_replication"))
    checks.append(
        Check(
            "a free WAL sender",
            senders - active >= 1,
            f"{active} of max_wal_senders={senders} in use",
            "" if senders - active >= 1 else "raise max_wal_senders and restart",
        )
    )  # fmt: skip
    role = value("SELECT current_user")
    can = value(
        "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user"
    )
    checks.append(
        Check(
            "REPLICATION privilege",
            bool(can),
            f"role {role} {'has' if can else 'lacks'} REPLICATION",
            "" if can else f'ALTER ROLE "{role}" WITH REPLICATION',
        )
    )
    rows = conn.execute(
        "SELECT t, c.relreplident, EXISTS (SELECT 1 FROM pg_index i "
        "WHERE i.indrelid = c.oid AND i.indisprimary) FROM unnest(%s::text[]) t "
        "JOIN pg_class c ON c.oid = to_regclass(t)",
        (list(tables),),
    ).fetchall()
    found = {r[0]: r for r in rows}
    missing = [t for t in tables if t not in found]
    no_key = [t for t in tables if t in found and not found[t][2]]
    checks.append(
        Check(
            "every table has a primary key",
            not missing and not no_key,
            f"{len(found)} tables checked"
            + (f"; not installed: {', '.join(missing)}" if missing else "")
            + (f"; without primary key: {', '.join(no_key)}" if no_key else ""),
            "oltpseed init-db" if missing else
            ("ALTER TABLE ... ADD PRIMARY KEY (...)" if no_key else ""),
        )
    )  # fmt: skip
    for table in tables:
        if table not in found:
            continue
        name, carries = IDENTITY.get(found[table][1], ("?", "unknown"))
        checks.append(
            Check(
                f"REPLICA IDENTITY of {table}",
                name != "NOTHING",
                f"{name}: update/delete events carry {carries}",
                "" if name != "NOTHING" else
                f"ALTER TABLE {table} REPLICA IDENTITY DEFAULT (FULL: old values)",
            )
        )  # fmt: skip
    covered = {
        r[0]
        for r in conn.execute(
            "SELECT CASE schemaname WHEN 'public' THEN tablename "
            "ELSE schemaname || '.' || tablename END "
            "FROM pg_publication_tables WHERE pubname = %s",
            (publication,),
        ).fetchall()
    }
    uncovered = [t for t in tables if t not in covered]
    quoted = ", ".join(tables)
    checks.append(
        Check(
            f"publication {publication} covers the tables",
            not uncovered,
            "all covered" if not uncovered else
            (f"{len(uncovered)} not covered: {', '.join(uncovered)}" if covered
             else f"no publication {publication} (or it is empty)"),
            "" if not uncovered else
            ((creates or f"CREATE PUBLICATION {publication} FOR TABLE {quoted}")
             if not covered
             else f"ALTER PUBLICATION {publication} ADD TABLE {', '.join(uncovered)}"),
        )
    )  # fmt: skip
    checks.append(
        Check(
            "connector plugin",
            None,
            "Debezium's default plugin.name is decoderbufs, which needs a server "
            "extension; pgoutput is built in",
            "plugin.name=pgoutput",
        )
    )
    return checks
