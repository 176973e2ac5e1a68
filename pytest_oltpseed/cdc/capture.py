"""Slots and publications: create, mark as oltpseed's, read (peek or consume), drop.

``create`` makes a publication for the domains' tables and a logical
replication slot (``pgoutput``, or ``test_decoding``) before the stream
starts; ``read`` takes the changes the slot kept, decoded into transactions.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql

from pytest_oltpseed.cdc.pgoutput import (
    Change,
    Decoder,
    Message,
    Transaction,
    qualified,
)
from pytest_oltpseed.db import table_ident
from pytest_oltpseed.errors import GuardrailRefused, OltpseedError, UsageError
from pytest_oltpseed.names import PUBLICATION as PUBLICATION
from pytest_oltpseed.names import SLOT as SLOT

TAG = "oltpseed.stream"  # prefix of the stream's batch messages
PLUGINS = ("pgoutput", "test_decoding")
MARK_PREFIX = "oltpseed: cdc capture,"
_MARKED = re.compile(r'^oltpseed: cdc capture, slot "(.*)" \(')


def require_logical(conn: psycopg.Connection) -> None:
    """One clear line when the server cannot decode its WAL (exit 1)."""
    row = conn.execute("SHOW wal_level").fetchone()
    level = row[0] if row else "?"
    if level != "logical":
        info = conn.info
        raise OltpseedError(
            f"wal_level is '{level}' on {info.host}:{info.port}; logical decoding "
            "needs wal_level=logical: run ALTER SYSTEM SET wal_level = logical; "
            "then restart PostgreSQL"
        )


def mark(slot: str) -> str:
    """The comment that makes a publication, and the slot it names, oltpseed's."""
    return f'{MARK_PREFIX} slot "{slot}" (oltpseed cdc stop drops both)'


def marked_slot(conn: psycopg.Connection, publication: str) -> str | None:
    """The slot a publication's oltpseed mark names; None when it bears none."""
    row = conn.execute(
        "SELECT obj_description(oid, 'pg_publication') FROM pg_publication "
        "WHERE pubname = %s",
        (publication,),
    ).fetchone()
    found = _MARKED.match(row[0] or "") if row else None
    return found.group(1) if found else None


def claim(conn: psycopg.Connection, slot: str, publication: str, action: str) -> None:
    """Refuse (exit 3) to ``action`` a slot or publication oltpseed did not make.

    oltpseed's publication carries :func:`mark` naming its slot; a slot is
    oltpseed's only when such a publication names it. Slots cannot carry a
    comment, so the publication vouches for both (with test_decoding too).
    """
    claimed = marked_slot(conn, publication)
    if _publication_exists(conn, publication) and claimed != slot:
        whose = (
            f"oltpseed made it for slot {claimed!r}"
            if claimed
            else "oltpseed did not create it (it lacks oltpseed's comment)"
        )
        raise GuardrailRefused(
            f"refused to {action} publication {publication!r}: {whose}"
        )
    if _slot_exists(conn, slot) and claimed != slot:
        raise GuardrailRefused(
            f"refused to {action} replication slot {slot!r}: oltpseed did not "
            f"create it (no publication marked for it); if it is unused, drop it "
            f"yourself: SELECT pg_drop_replication_slot('{slot}')"
        )


def create(
    conn: psycopg.Connection,
    tables: Sequence[str],
    *,
    slot: str = SLOT,
    publication: str = PUBLICATION,
    plugin: str = "pgoutput",
) -> str:
    """Publication (marked as oltpseed's) then slot; returns the slot's start LSN.

    ``conn`` must be in autocommit: a slot cannot be made in a transaction
    that wrote. If the slot cannot be made, the publication is dropped again.
    A publication someone else made is refused (exit 3), never reused.
    """
    if plugin not in PLUGINS:
        raise UsageError(
            f"unknown --plugin {plugin!r}: expected pgoutput or test_decoding"
        )
    require_logical(conn)
    claim(conn, slot, publication, "reuse")  # ours, left by a crash: fine
    if _slot_exists(conn, slot):
        raise OltpseedError(
            f"replication slot {slot!r} already exists: verify it "
            "(oltpseed cdc verify) or drop it (oltpseed cdc stop)"
        )
    made_publication = False
    if not _publication_exists(conn, publication):
        ident = sql.Identifier(publication)
        try:
            with conn.transaction():
                conn.execute(
                    # a partitioned table's changes under its own name
                    sql.SQL(
                        "CREATE PUBLICATION {} FOR TABLE {} "
                        "WITH (publish_via_partition_root = true)"
                    ).format(ident, sql.SQL(", ").join(map(table_ident, tables)))
                )
                conn.execute(
                    sql.SQL("COMMENT ON PUBLICATION {} IS {}").format(
                        ident, sql.Literal(mark(slot))
                    )
                )
        except psycopg.errors.InsufficientPrivilege as exc:
            raise OltpseedError(
                f"cannot create publication {publication!r}: "
                f"{exc.diag.message_primary} (it needs CREATE on the database and "
                "ownership of the tables)"
            ) from None
        made_publication = True
    try:
        row = conn.execute(
            "SELECT lsn::text FROM pg_create_logical_replication_slot(%s, %s)",
            (slot, plugin),
        ).fetchone()
    except psycopg.Error as exc:
        if made_publication:
            conn.execute(
                sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(publication))
            )
        if isinstance(exc, psycopg.errors.InsufficientPrivilege):
            role = conn.info.user
            raise OltpseedError(
                f"role {role!r} lacks the REPLICATION privilege a logical slot "
                f'needs: as a superuser, run ALTER ROLE "{role}" WITH REPLICATION'
            ) from None
        raise
    assert row is not None
    return str(row[0])


def drop(
    conn: psycopg.Connection,
    *,
    slot: str = SLOT,
    publication: str = PUBLICATION,
) -> list[str]:
    """Drop oltpseed's slot and publication when they exist; what was dropped.

    Someone else's slot or publication is refused (exit 3), nothing dropped.
    """
    claim(conn, slot, publication, "drop")
    dropped = []
    if _slot_exists(conn, slot):
        conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        dropped.append(f"slot {slot}")
    if _publication_exists(conn, publication):
        conn.execute(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(publication)))
        dropped.append(f"publication {publication}")
    return dropped


def slot_plugin(conn: psycopg.Connection, slot: str) -> str:
    row = conn.execute(
        "SELECT plugin FROM pg_replication_slots WHERE slot_name = %s", (slot,)
    ).fetchone()
    if row is None:
        raise OltpseedError(
            f"no replication slot {slot!r} here: create it before streaming "
            "(oltpseed cdc start)"
        )
    return str(row[0])


def primary_keys(conn: psycopg.Connection) -> dict[str, tuple[str, ...]]:
    """Table -> primary-key columns (in key order) of the visible tables."""
    rows = conn.execute(
        "SELECT n.nspname, c.relname, array_agg(a.attname::text ORDER BY k.n) "
        "FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, n) "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
        "WHERE i.indisprimary AND (pg_table_is_visible(c.oid) OR n.nspname NOT IN "
        "('pg_catalog', 'information_schema', 'pg_toast')) "
        "GROUP BY n.nspname, c.relname"
    ).fetchall()
    return {qualified(schema, name): tuple(cols) for schema, name, cols in rows}


def read(
    conn: psycopg.Connection,
    *,
    slot: str = SLOT,
    publication: str = PUBLICATION,
    upto: str | None = None,
    consume: bool = True,
) -> list[Transaction]:
    """The transactions the slot holds (up to LSN ``upto``), decoded.

    ``consume`` advances the slot past them (``get``; only oltpseed's own
    slot, else exit 3); otherwise they stay (``peek``). Messages are read in
    one pass, row by row.
    """
    if consume:
        claim(conn, slot, publication, "consume")
    verb = "get" if consume else "peek"
    if slot_plugin(conn, slot) == "test_decoding":
        query = (
            f"SELECT lsn::text, data FROM pg_logical_slot_{verb}_changes(%s, %s, NULL)"
        )
        keys = primary_keys(conn)
        with _rows(conn, query, (slot, upto)) as rows:
            return _test_decoding(rows, keys)
    query = (
        f"SELECT data FROM pg_logical_slot_{verb}_binary_changes(%s, %s, NULL, "
        "'proto_version', '1', 'publication_names', %s, 'messages', 'true')"
    )
    decoder = Decoder()
    found = []
    with _rows(conn, query, (slot, upto, publication), binary=True) as rows:
        for (data,) in rows:
            done = decoder.feed(bytes(data))
            if done is not None:
                found.append(done)
    return found


@contextlib.contextmanager
def _rows(
    conn: psycopg.Connection,
    query: str,
    params: tuple[Any, ...],
    *,
    binary: bool = False,
) -> Iterator[Iterator[Any]]:
    """The rows of ``query`` fetched in batches through a server-side cursor:
    memory stays flat and a round trip brings thousands of messages.
    ``binary`` results spare bytea its hex text form (twice the bytes, and
    a decoding on each side)."""
    cursor = conn.cursor(name="oltpseed_cdc_read", binary=binary)
    with conn.transaction(), cursor as cur:
        cur.itersize = 5000
        cur.execute(query, params)
        yield iter(cur)


_TD_ROW = re.compile(r"^table ([^.]+)\.(\S+): (INSERT|UPDATE|DELETE|TRUNCATE):(.*)$")
_TD_COLUMN = re.compile(r"(\S+?)\[([^\]]+)\]:('(?:[^']|'')*'|\S+)")
_TD_INTEGER = frozenset({"bigint", "integer", "smallint", "oid"})
_TD_MESSAGE = re.compile(
    r"^message: transactional: (\d) prefix: (.*?), sz: \d+ content:(.*)$", re.S
)


def _td_value(kind: str, text: str) -> Any:
    if text == "null":
        return None
    if kind in _TD_INTEGER:
        return int(text)
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1].replace("''", "'")
    return text


def _test_decoding(
    rows: Iterator[tuple[str, str]], keys: Mapping[str, tuple[str, ...]]
) -> list[Transaction]:
    """test_decoding's text lines -> transactions; keys typed like pgoutput's
    (a table without a primary key: every column it printed)."""
    found: list[Transaction] = []
    open_: Transaction | None = None
    for lsn, line in rows:
        if line.startswith("BEGIN"):
            open_ = Transaction(xid=int(line.split()[1]))
        elif line.startswith("COMMIT") and open_ is not None:
            open_.lsn = lsn
            open_.changes = [
                Change(c.table, c.op, c.key, c.xid, lsn, c.columns)
                for c in open_.changes
            ]
            found.append(open_)
            open_ = None
        elif (match := _TD_ROW.match(line)) and open_ is not None:
            schema, name, op, rest = match.groups()
            table = qualified(schema, name)
            if op == "TRUNCATE":
                open_.changes.append(Change(table, "truncate", (), open_.xid))
                continue
            # an UPDATE with an old key lists it first, then "new-tuple:"
            new = rest.split("new-tuple:")[-1] if op == "UPDATE" else rest
            columns = keys.get(table, ())
            values = {}
            for column in _TD_COLUMN.finditer(new):  # stop once the key is read
                name, kind, text = column.groups()
                name = name.strip('"')  # a keyword column prints quoted: "position"
                if not columns or name in columns:
                    values[name] = _td_value(kind, text)
                    if len(values) == len(columns):
                        break
            columns = columns or tuple(values)
            key = tuple(values.get(c) for c in columns)
            open_.changes.append(Change(table, op.lower(), key, open_.xid, "", columns))
        elif (match := _TD_MESSAGE.match(line)) and open_ is not None:
            flag, prefix, content = match.groups()
            open_.messages.append(Message(prefix, content.encode(), flag == "1"))
    return found


def _slot_exists(conn: psycopg.Connection, slot: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)
    ).fetchone()
    return row is not None


def _publication_exists(conn: psycopg.Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_publication WHERE pubname = %s", (name,)
    ).fetchone()
    return row is not None


def current_lsn(conn: psycopg.Connection) -> str:
    row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    return str(row[0])


@contextlib.contextmanager
def capturing(
    conn: psycopg.Connection,
    tables: Sequence[str],
    *,
    slot: str = SLOT,
    publication: str = PUBLICATION,
) -> Iterator[Captured]:
    """A slot and a publication for the block (``conn`` in autocommit),
    always dropped after it (they are oltpseed's: it made them)."""
    start = create(conn, tables, slot=slot, publication=publication)
    try:
        yield Captured(conn, slot, publication, start)
    finally:
        drop(conn, slot=slot, publication=publication)


class Captured:
    """Changes captured so far (the ``oltp_cdc`` fixture's object)."""

    def __init__(
        self, conn: psycopg.Connection, slot: str, publication: str, start: str = ""
    ) -> None:
        self._conn, self.slot, self.publication = conn, slot, publication
        self.start = start  # the LSN capture began at
        self._seen: list[Transaction] = []

    def transactions(self) -> list[Transaction]:
        """Every committed transaction captured so far (reading the new ones)."""
        self._seen += read(self._conn, slot=self.slot, publication=self.publication)
        return list(self._seen)

    def changes(self, table: str | None = None, op: str | None = None) -> list[Change]:
        """Row changes so far, in commit order, optionally of one table/operation."""
        return [
            c
            for tx in self.transactions()
            for c in tx.changes
            if (table is None or c.table == table) and (op is None or c.op == op)
        ]

    def counts(self) -> Counter[tuple[str, str]]:
        """(table, op) -> number of changes so far."""
        return Counter((c.table, c.op) for c in self.changes())


def retained_wal(conn: psycopg.Connection, slot: str) -> int | None:
    """Bytes of WAL the slot keeps on disk (None when there is no such slot):
    what a slot left behind costs, shown while a stream runs."""
    row = conn.execute(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint"
        " FROM pg_replication_slots WHERE slot_name = %s",
        (slot,),
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])
