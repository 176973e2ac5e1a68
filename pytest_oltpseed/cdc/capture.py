"""Slots and publications: create, mark as oltpseed's, read (peek or consume), drop.

``create`` makes a publication for the domains' tables and a logical
replication slot (``pgoutput``, or ``test_decoding``) before the stream
starts; ``read`` takes the changes the slot kept, decoded into transactions.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Iterator, Sequence

import psycopg
from psycopg import sql

from pytest_oltpseed.cdc.pgoutput import Change, Decoder, Message, Transaction
from pytest_oltpseed.errors import OltpseedError, UsageError

SLOT = "oltpseed_cdc"
PUBLICATION = "oltpseed_cdc"
TAG = "oltpseed.stream"  # prefix of the stream's batch messages
PLUGINS = ("pgoutput", "test_decoding")


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


def create(
    conn: psycopg.Connection,
    tables: Sequence[str],
    *,
    slot: str = SLOT,
    publication: str = PUBLICATION,
    plugin: str = "pgoutput",
) -> str:
    """Publication (pgoutput only) then slot; returns the slot's start LSN.

    ``conn`` must be in autocommit: a slot cannot be made in a transaction
    that wrote. If the slot cannot be made, the publication is dropped again.
    """
    if plugin not in PLUGINS:
        raise UsageError(
            f"unknown --plugin {plugin!r}: expected pgoutput or test_decoding"
        )
    require_logical(conn)
    if _slot_exists(conn, slot):
        raise OltpseedError(
            f"replication slot {slot!r} already exists: verify it "
            "(oltpseed cdc verify) or drop it (oltpseed cdc stop)"
        )
    made_publication = False
    if plugin == "pgoutput" and not _publication_exists(conn, publication):
        conn.execute(
            sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
                sql.Identifier(publication),
                sql.SQL(", ").join(map(sql.Identifier, tables)),
            )
        )
        made_publication = True
    try:
        row = conn.execute(
            "SELECT lsn::text FROM pg_create_logical_replication_slot(%s, %s)",
            (slot, plugin),
        ).fetchone()
    except psycopg.Error:
        if made_publication:
            drop(conn, slot=None, publication=publication)
        raise
    assert row is not None
    return str(row[0])


def drop(
    conn: psycopg.Connection,
    *,
    slot: str | None = SLOT,
    publication: str | None = PUBLICATION,
) -> list[str]:
    """Drop the slot and the publication when they exist; what was dropped."""
    dropped = []
    if slot and _slot_exists(conn, slot):
        conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        dropped.append(f"slot {slot}")
    if publication and _publication_exists(conn, publication):
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


def read(
    conn: psycopg.Connection,
    *,
    slot: str = SLOT,
    publication: str = PUBLICATION,
    upto: str | None = None,
    consume: bool = True,
) -> list[Transaction]:
    """The transactions the slot holds (up to LSN ``upto``), decoded.

    ``consume`` advances the slot past them (``get``); otherwise they stay
    (``peek``). Messages are read in one pass, row by row.
    """
    verb = "get" if consume else "peek"
    if slot_plugin(conn, slot) == "test_decoding":
        query = (
            f"SELECT lsn::text, data FROM pg_logical_slot_{verb}_changes(%s, %s, NULL)"
        )
        with conn.cursor() as cur:
            return _test_decoding(cur.stream(query, (slot, upto)))
    query = (
        f"SELECT data FROM pg_logical_slot_{verb}_binary_changes(%s, %s, NULL, "
        "'proto_version', '1', 'publication_names', %s, 'messages', 'true')"
    )
    decoder = Decoder()
    found = []
    with conn.cursor() as cur:
        for (data,) in cur.stream(query, (slot, upto, publication)):
            done = decoder.feed(bytes(data))
            if done is not None:
                found.append(done)
    return found


_TD_ROW = re.compile(r"^table (?:[^.]+)\.(\S+): (INSERT|UPDATE|DELETE|TRUNCATE):(.*)$")
_TD_ID = re.compile(r"\bid\[[^\]]+\]:(\S+)")
_TD_MESSAGE = re.compile(
    r"^message: transactional: (\d) prefix: (.*?), sz: \d+ content:(.*)$", re.S
)


def _test_decoding(rows: Iterator[tuple[str, str]]) -> list[Transaction]:
    """test_decoding's text lines -> transactions (key: the ``id`` column)."""
    found: list[Transaction] = []
    open_: Transaction | None = None
    for lsn, line in rows:
        if line.startswith("BEGIN"):
            open_ = Transaction(xid=int(line.split()[1]))
        elif line.startswith("COMMIT") and open_ is not None:
            open_.lsn = lsn
            open_.changes = [
                Change(c.table, c.op, c.key, c.xid, lsn) for c in open_.changes
            ]
            found.append(open_)
            open_ = None
        elif (match := _TD_ROW.match(line)) and open_ is not None:
            table, op, rest = match.groups()
            # an UPDATE with an old key lists it first, then "new-tuple:"
            new = rest.split("new-tuple:")[-1]
            key = _TD_ID.search(new if op != "DELETE" else rest)
            value = key.group(1) if key else None
            open_.changes.append(Change(table, op.lower(), (value,), open_.xid))
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
    always dropped after it."""
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
