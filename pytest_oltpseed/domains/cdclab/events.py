"""cdclab stream events: each one produces a change shape pipelines get wrong.

Every write goes through the context (``ctx.insert``, ``ctx.execute``,
``ctx.apply``), so it lands in the ledger like the business domains'
changes; statements name the keys they touch in ``RETURNING``. Two events
have no weight by default and run on demand with ``stream --every``:
``bulk_load`` (one transaction of :data:`BULK_ROWS` inserts) and, when wanted
more often than its rare weight, ``bulk_truncate``.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, timedelta
from datetime import time as clock
from decimal import Decimal
from typing import Any

from psycopg.types.json import Jsonb

from pytest_oltpseed.data.factory import Statement
from pytest_oltpseed.domains.cdclab.factories import (
    LOG_KINDS,
    MOODS,
    SHELVES,
    TAGS,
    LabAccount,
    LabDocument,
    LabDocumentFull,
    LabEntry,
    LabEvolving,
    LabType,
    large_json,
    large_text,
)
from pytest_oltpseed.stream.events import Event, NotApplicable, StreamContext

DOCUMENTS = ("lab_documents", "lab_documents_full")
BULK_ROWS = 100_000
EVOLVE_GAP_S = 30.0  # a column added stays at least this long, and so on
MAX_ATTNUM = 1_400  # PostgreSQL allows 1,600 columns, dropped ones included
EXTRA = "extra"  # the column that comes and goes


def _document_factory(table: str) -> Any:
    return LabDocument if table == "lab_documents" else LabDocumentFull


def doc_insert(ctx: StreamContext) -> None:
    """A document with a >8 kB body and a ~10 kB jsonb, both out of line."""
    factory = _document_factory(ctx.choice(DOCUMENTS))
    factory.write(ctx, factory.make_row(ctx, create=True))


def doc_touch(ctx: StreamContext) -> None:
    """Title and revision change, the TOASTed body and attrs do not: the
    update carries them as "unchanged" (Debezium's unavailable value)."""
    table = ctx.choice(DOCUMENTS)
    found = ctx.take(table, (), "true")
    ctx.execute(
        table,
        "update",
        f"UPDATE {table} SET revision = revision + 1, title = %s "
        "WHERE id = %s RETURNING id",
        (f"Documento rev. {ctx.randint(2, 999)}", found["id"]),
    )


def doc_rewrite(ctx: StreamContext) -> None:
    """The large values themselves change (a new TOAST value)."""
    table = ctx.choice(DOCUMENTS)
    found = ctx.take(table, (), "true")
    ctx.execute(
        table,
        "update",
        f"UPDATE {table} SET body = %s, attrs = %s, revision = revision + 1 "
        "WHERE id = %s RETURNING id",
        (large_text(ctx), large_json(ctx), found["id"]),
    )


def doc_delete(ctx: StreamContext) -> None:
    """A document deleted: with FULL identity the old row, body included."""
    table = ctx.choice(DOCUMENTS)
    found = ctx.take(table, (), "true")
    ctx.execute(
        table,
        "delete",
        f"DELETE FROM {table} WHERE id = %s RETURNING id",
        (found["id"],),
    )


def types_insert(ctx: StreamContext) -> None:
    """A row of every converted type, some of them NULL."""
    LabType.write(ctx, LabType.make_row(ctx, create=True))


def _typed_value(ctx: StreamContext, column: str) -> Any:
    """A new value of ``column`` as a Python object (psycopg's own adapters)."""
    if ctx.rng.random() < 0.1:
        return None
    now = ctx.as_of.replace(tzinfo=UTC)
    values = {
        "amount": lambda: Decimal(ctx.randint(-(10**12), 10**12)) / 10**10,
        "happened_at": lambda: now - timedelta(microseconds=ctx.randint(0, 10**12)),
        "local_at": lambda: ctx.as_of - timedelta(seconds=ctx.randint(0, 10**6)),
        "on_day": lambda: ctx.as_of.date() + timedelta(days=ctx.randint(-400, 400)),
        "at_time": lambda: clock(ctx.randint(0, 23), ctx.randint(0, 59), 0, 123456),
        "span": lambda: timedelta(minutes=ctx.randint(-10_000, 10_000)),
        "ref": lambda: uuid.UUID(int=ctx.rng.getrandbits(128), version=4),
        "doc": lambda: Jsonb({"k": ctx.randint(0, 99), "nested": {"a": [1, None]}}),
        "tags": lambda: [ctx.choice(TAGS) for _ in range(ctx.randint(0, 3))],
        "blob": lambda: ctx.rng.getrandbits(256).to_bytes(32, "big"),
        "mood": lambda: ctx.choice(MOODS),
        "note": lambda: f"nota {ctx.randint(1, 999)}",
    }
    return values[column]()


TYPED = ("amount", "happened_at", "local_at", "on_day", "at_time", "span", "ref",
         "doc", "tags", "blob", "mood", "note")  # fmt: skip


def types_update(ctx: StreamContext) -> None:
    """Two to four typed columns get new values (or NULL)."""
    found = ctx.take("lab_types", (), "true")
    columns = sorted({ctx.choice(TYPED) for _ in range(ctx.randint(2, 4))})
    sets = ", ".join(f"{c} = %s" for c in columns)
    casts = [_typed_value(ctx, c) for c in columns]
    ctx.execute(
        "lab_types",
        "update",
        f"UPDATE lab_types SET {sets} WHERE id = %s RETURNING id",
        (*casts, found["id"]),
    )


def account_open(ctx: StreamContext) -> None:
    """An account with 1-4 entries (the children a key change cascades to)."""
    account = LabAccount.write(ctx, LabAccount.make_row(ctx, create=True))
    for _ in range(ctx.randint(1, 4)):
        row = LabEntry.make_row(
            ctx, create=True, overrides={"account_id": account["id"]}
        )
        LabEntry.write(ctx, row)


def entry_add(ctx: StreamContext) -> None:
    """An entry on an existing account."""
    LabEntry.write(ctx, LabEntry.make_row(ctx, create=True))


def account_rekey(ctx: StreamContext) -> None:
    """The primary key of an account changes; ON UPDATE CASCADE rewrites its
    entries' account_id in the same statement, and each cascaded row is a
    change of its own in the WAL, so it is counted too: the second statement
    reads the entries under the new key when this very change (its random
    token) moved the account there. The key flips sign: the sequence only
    issues positive ids and never one twice, so -id (and back) cannot collide."""
    found = ctx.take("lab_accounts", (), "true")
    new, token = -int(found["id"]), ctx.rng.getrandbits(63)
    ctx.execute(
        "lab_accounts",
        "update",
        "UPDATE lab_accounts SET id = %s, rekey_token = %s WHERE id = %s RETURNING id",
        (new, token, found["id"]),
    )
    ctx.apply(  # not a write itself: it counts (and keys) the cascade's rows
        Statement(
            "SELECT e.id FROM lab_entries e JOIN lab_accounts a "
            "ON a.id = e.account_id WHERE a.id = %s AND a.rekey_token = %s",
            (new, token),
            (("lab_entries", "update"),),
        )
    )


RECENT = 10  # update and delete events pick among the newest rows


def _recent(table: str, order: str) -> str:
    """The k-th newest row of ``table`` (``%s`` = k), or the oldest of fewer
    than k: counting at most RECENT + 1 rows keeps it cheap on a big table."""
    return (
        f"(SELECT {{key}} FROM {table} ORDER BY {order} LIMIT 1 OFFSET "
        f"GREATEST(0, LEAST(%s, (SELECT count(*) FROM (SELECT 1 FROM {table} "
        f"LIMIT {RECENT + 1}) n) - 1)))"
    )


SLOT_PICK = "(shelf, position) = " + _recent("lab_slots", "position DESC").format(
    key="shelf, position"
)


def slot_insert(ctx: StreamContext) -> None:
    """A row keyed by (shelf, position)."""
    ctx.execute(
        "lab_slots",
        "insert",
        "INSERT INTO lab_slots (shelf, position, item, quantity) VALUES "
        "(%s, nextval('lab_slots_position_seq'), %s, %s) RETURNING shelf, position",
        (ctx.choice(SHELVES), f"item {ctx.choice(ctx.pools.last_names)}",
         ctx.randint(0, 500)),
    )  # fmt: skip


def slot_update(ctx: StreamContext) -> None:
    """A composite-key row's quantity changes (one of the latest)."""
    ctx.execute(
        "lab_slots",
        "update",
        f"UPDATE lab_slots SET quantity = %s WHERE {SLOT_PICK} "
        "RETURNING shelf, position",
        (ctx.randint(0, 500), ctx.randint(0, RECENT)),
    )


def slot_delete(ctx: StreamContext) -> None:
    ctx.execute(
        "lab_slots",
        "delete",
        f"DELETE FROM lab_slots WHERE {SLOT_PICK} RETURNING shelf, position",
        (ctx.randint(0, RECENT),),
    )


LOG_PICK = "event_id = " + _recent("lab_log", "logged_at DESC, event_id").format(
    key="event_id"
)


def log_append(ctx: StreamContext) -> None:
    """A row of a table without a primary key."""
    ctx.execute(
        "lab_log",
        "insert",
        "INSERT INTO lab_log (event_id, kind, detail) VALUES (%s, %s, %s) "
        "RETURNING event_id",
        (
            uuid.UUID(int=ctx.rng.getrandbits(128), version=4),
            ctx.choice(LOG_KINDS),
            Jsonb({"seq": ctx.randint(1, 10**6)}),
        ),
    )


def log_update(ctx: StreamContext) -> None:
    """An update with REPLICA IDENTITY FULL: the old row is the only key."""
    ctx.execute(
        "lab_log",
        "update",
        f"UPDATE lab_log SET kind = %s WHERE {LOG_PICK} RETURNING event_id",
        (ctx.choice(LOG_KINDS), ctx.randint(0, RECENT)),
    )


def log_delete(ctx: StreamContext) -> None:
    ctx.execute(
        "lab_log",
        "delete",
        f"DELETE FROM lab_log WHERE {LOG_PICK} RETURNING event_id",
        (ctx.randint(0, RECENT),),
    )


def _evolving_shape(ctx: StreamContext) -> tuple[int, bool]:
    """(highest column number, whether ``extra`` exists now), from the catalog
    inside the batch (so a column added earlier in it is seen)."""
    state = ctx.state
    if state is not None and "cdclab.shape" in state:
        return state["cdclab.shape"]  # type: ignore[no-any-return]
    assert ctx.conn is not None
    row = ctx.conn.execute(
        "SELECT max(attnum), coalesce(bool_or(attname = %s AND NOT attisdropped), "
        "false) FROM pg_attribute WHERE attrelid = 'lab_evolving'::regclass "
        "AND attnum > 0",
        (EXTRA,),
    ).fetchone()
    assert row is not None
    shape = (int(row[0]), bool(row[1]))
    if state is not None:
        state["cdclab.shape"] = shape
    return shape


def evolve(ctx: StreamContext) -> None:
    """ALTER TABLE mid-stream: add ``extra`` (later events write it), or drop
    it again. Not more often than every :data:`EVOLVE_GAP_S` seconds of a
    run, and never past :data:`MAX_ATTNUM` (dropped columns still count
    towards PostgreSQL's 1,600)."""
    state = ctx.state if ctx.state is not None else {}
    last = state.get("cdclab.evolved_at")
    if last is not None and time.monotonic() - last < EVOLVE_GAP_S:
        raise NotApplicable
    attnum, present = _evolving_shape(ctx)
    if not present and attnum >= MAX_ATTNUM:
        raise NotApplicable
    assert ctx.conn is not None
    verb = "DROP COLUMN" if present else "ADD COLUMN"
    kind = "" if present else " TEXT"
    ctx.apply(Statement(f"ALTER TABLE lab_evolving {verb} {EXTRA}{kind}", None, ()))
    state["cdclab.shape"] = (attnum + (0 if present else 1), not present)
    state["cdclab.evolved_at"] = time.monotonic()


def evolving_write(ctx: StreamContext) -> None:
    """A new row, or an update of one; ``extra`` is written while it exists."""
    present = _evolving_shape(ctx)[1]
    extra = {EXTRA: f"x{ctx.randint(1, 999)}"} if present else {}
    if ctx.rng.random() < 0.5:
        row = LabEvolving.make_row(ctx, create=True)
        ctx.insert("lab_evolving", {**LabEvolving.columns(row), **extra})
        return
    found = ctx.take("lab_evolving", (), "true")
    sets = ", ".join(f"{c} = %s" for c in ("label", *extra))
    ctx.execute(
        "lab_evolving",
        "update",
        f"UPDATE lab_evolving SET {sets} WHERE id = %s RETURNING id",
        (f"v{ctx.randint(1, 999)}", *extra.values(), found["id"]),
    )


def bulk_load(ctx: StreamContext) -> None:
    """One statement of :data:`BULK_ROWS` inserts: a transaction large enough
    to spill out of logical_decoding_work_mem and to stress a consumer."""
    ctx.apply(
        Statement(
            "INSERT INTO lab_bulk (load_no, n) SELECT %s, g "
            "FROM generate_series(1, %s) g RETURNING id",
            (ctx.randint(1, 10**6), BULK_ROWS),
            (("lab_bulk", "insert"),),
            BULK_ROWS,
        )
    )


def bulk_truncate(ctx: StreamContext) -> None:
    """TRUNCATE: one change for the table, no keys, no old rows."""
    ctx.apply(
        Statement("TRUNCATE lab_bulk", None, (("lab_bulk", "truncate"),), 1, ({},))
    )


EVENTS = (
    Event("doc_insert", 10, doc_insert, DOCUMENTS, "document with >8 kB TOASTed body"),
    Event("doc_touch", 30, doc_touch, DOCUMENTS,
          "title changed, TOASTed columns unchanged"),
    Event("doc_rewrite", 5, doc_rewrite, DOCUMENTS, "TOASTed body rewritten"),
    Event("doc_delete", 2, doc_delete, DOCUMENTS, "document deleted"),
    Event("types_insert", 15, types_insert, ("lab_types",),
          "row of numeric, timestamptz, uuid, jsonb, arrays, bytea, enum..."),
    Event("types_update", 15, types_update, ("lab_types",),
          "typed columns changed or set NULL"),
    Event("account_open", 6, account_open, ("lab_accounts", "lab_entries"),
          "account with 1-4 entries"),
    Event("entry_add", 10, entry_add, ("lab_entries",), "entry on an account"),
    Event("account_rekey", 3, account_rekey, ("lab_accounts", "lab_entries"),
          "primary key changed, cascading to entries"),
    Event("slot_insert", 8, slot_insert, ("lab_slots",), "composite-key row"),
    Event("slot_update", 8, slot_update, ("lab_slots",), "composite-key row changed"),
    Event("slot_delete", 2, slot_delete, ("lab_slots",), "composite-key row deleted"),
    Event("log_append", 10, log_append, ("lab_log",), "row of a table without PK"),
    Event("log_update", 3, log_update, ("lab_log",), "no-PK row changed (FULL)"),
    Event("log_delete", 1, log_delete, ("lab_log",), "no-PK row deleted (FULL)"),
    Event("evolve", 1, evolve, ("lab_evolving",),
          "ALTER TABLE ADD/DROP COLUMN (at most every 30 s)"),
    Event("evolving_write", 8, evolving_write, ("lab_evolving",),
          "row written, with the added column while it exists"),
    Event("bulk_load", 0, bulk_load, ("lab_bulk",),
          "100,000 inserts in one transaction (--every bulk_load:N)"),
    Event("bulk_truncate", 1, bulk_truncate, ("lab_bulk",), "TRUNCATE lab_bulk"),
)  # fmt: skip
