"""Change data capture without Debezium: a logical slot, a publication, a ledger check.

``create`` makes a publication for the domains' tables and a logical
replication slot (``pgoutput``, or ``test_decoding`` as a fallback) before the
stream starts; ``read`` takes the changes the slot kept, decoded into
transactions; ``reconcile`` sets them against a stream report: every change of
a batch the stream tagged (``pg_logical_emit_message`` with its run id and
batch number) must match the report per table and operation, nothing else may
touch the tables, and batches must arrive once each, in commit order.
``preflight`` lists what a Debezium PostgreSQL connector needs.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from pytest_oltpseed.errors import OltpseedError, UsageError
from pytest_oltpseed.pgoutput import Change, Decoder, Message, Transaction

SLOT = "oltpseed_cdc"
PUBLICATION = "oltpseed_cdc"
TAG = "oltpseed.stream"  # prefix of the stream's batch messages
PLUGINS = ("pgoutput", "test_decoding")
OPS = ("insert", "update", "delete", "truncate")


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
            # A partitioned table's changes under its own name, not a partition's
            sql.SQL(
                "CREATE PUBLICATION {} FOR TABLE {} "
                "WITH (publish_via_partition_root = true)"
            ).format(
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


# -- reconciliation ---------------------------------------------------------------
@dataclass(frozen=True)
class Line:
    """One table x operation: what the report says and what the WAL carried."""

    table: str
    op: str
    reported: int
    captured: int  # in the run's tagged transactions
    extra: int  # in transactions the run did not tag (out of band)

    @property
    def ok(self) -> bool:
        return self.reported == self.captured and not self.extra


@dataclass
class Verdict:
    run_id: str
    lines: list[Line]
    batches_reported: int
    batches_captured: int
    repeated: list[int] = field(default_factory=list)  # batch numbers seen twice
    out_of_order: list[int] = field(default_factory=list)
    other_transactions: list[int] = field(default_factory=list)  # their xids

    @property
    def ok(self) -> bool:
        return (
            all(line.ok for line in self.lines)
            and self.batches_reported == self.batches_captured
            and not self.repeated
            and not self.out_of_order
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "run_id": self.run_id,
            "batches": {
                "reported": self.batches_reported,
                "captured": self.batches_captured,
                "repeated": self.repeated,
                "out_of_order": self.out_of_order,
            },
            "tables": [
                {**line.__dict__, "ok": line.ok}
                for line in self.lines
                if line.reported or line.captured or line.extra
            ],
            "other_transactions": self.other_transactions[:100],
        }


def batch_tag(message: Message, run_id: str) -> int | None:
    """The stream batch number a message marks, when it is this run's tag."""
    if message.prefix != TAG:
        return None
    try:
        content = json.loads(message.content)
    except ValueError:
        return None
    return int(content["batch"]) if content.get("run") == run_id else None


def reconcile(
    transactions: Sequence[Transaction],
    report: Mapping[str, Any],
    tables: Sequence[str],
) -> Verdict:
    """Set decoded transactions against a stream report (see the module doc)."""
    try:
        run_id = str(report["run_id"])
        reported = {
            (table, op): int(ops.get(op, 0))
            for table, ops in report["tables"].items()
            for op in OPS
        }
        batches = int(report["batches"])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise UsageError(
            "the report lacks run_id, batches or tables: give the --report "
            "written by oltpseed stream"
        ) from None
    watched = set(tables) | {t for t, _ in reported}
    captured: Counter[tuple[str, str]] = Counter()
    extra: Counter[tuple[str, str]] = Counter()
    seen: list[int] = []
    others: list[int] = []
    for tx in transactions:
        numbers = [
            n for n in (batch_tag(m, run_id) for m in tx.messages) if n is not None
        ]
        mine = [c for c in tx.changes if c.table in watched]
        if numbers:
            seen.extend(numbers)
            captured.update((c.table, c.op) for c in mine)
        elif mine:
            others.append(tx.xid)
            extra.update((c.table, c.op) for c in mine)
    order = {table: i for i, table in enumerate(tables)}
    keys = sorted(
        set(reported) | set(captured) | set(extra),
        key=lambda k: (order.get(k[0], len(order)), k[0], OPS.index(k[1])),
    )
    counts = Counter(seen)
    return Verdict(
        run_id=run_id,
        lines=[
            Line(t, op, reported.get((t, op), 0), captured[(t, op)], extra[(t, op)])
            for t, op in keys
        ],
        batches_reported=batches,
        batches_captured=len(counts),
        repeated=sorted(n for n, times in counts.items() if times > 1),
        out_of_order=[b for a, b in itertools.pairwise(seen) if b <= a],
        other_transactions=others,
    )


@dataclass(frozen=True)
class Verification:
    verdict: Verdict
    transactions: int
    changes: int
    seconds: float  # reading, decoding and reconciling

    @property
    def rate(self) -> float:
        return self.changes / max(self.seconds, 1e-9)


def verify(
    conn: psycopg.Connection,
    report: Mapping[str, Any],
    tables: Sequence[str],
    *,
    slot: str = SLOT,
    publication: str = PUBLICATION,
) -> Verification:
    """Everything the slot holds up to now, decoded and set against ``report``."""
    require_logical(conn)
    started = time.perf_counter()
    transactions = read(
        conn, slot=slot, publication=publication, upto=current_lsn(conn)
    )
    verdict = reconcile(transactions, report, tables)
    return Verification(
        verdict,
        len(transactions),
        sum(len(tx.changes) for tx in transactions),
        time.perf_counter() - started,
    )


# -- preflight ----------------------------------------------------------------------
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
    conn: psycopg.Connection, tables: Sequence[str], publication: str
) -> list[Check]:
    """What a Debezium connector needs from this server and these tables."""

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
        "SELECT c.relname, c.relreplident, EXISTS (SELECT 1 FROM pg_index i "
        "WHERE i.indrelid = c.oid AND i.indisprimary) FROM pg_class c "
        "WHERE c.oid = ANY(SELECT to_regclass(t) FROM unnest(%s::text[]) t)",
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
            "SELECT tablename FROM pg_publication_tables WHERE pubname = %s",
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
            (f"CREATE PUBLICATION {publication} FOR TABLE {quoted}" if not covered
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
