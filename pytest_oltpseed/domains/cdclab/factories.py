"""cdclab factories: rows shaped for the edge cases, not for business realism.

Values of the exotic types (uuid, jsonb, arrays, bytea, time, interval) are
produced in their PostgreSQL text form: psycopg sends a ``str`` untyped, so
the server casts it to the column's type, and the seeder's COPY text path
takes it as is. One definition serves both paths.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, timedelta
from decimal import Decimal
from typing import Any

from pytest_oltpseed.data.factory import Col, Context, Parent, Row, SQLFactory, insert

DOMAIN = "cdclab"
TOAST_CHARS = (9_000, 16_000)  # over 8 kB: always stored out of line
MOODS = ("calm", "busy", "degraded", "down")
TAGS = ("red", "green", "blue", "urgent", "archived", "pt-BR", "a,b", 'quote"d')
SHELVES = ("A1", "A2", "B1", "B2", "C1")
LOG_KINDS = ("login", "logout", "export", "import", "error")
NULL_SHARE = 0.15  # share of lab_types values left NULL


def large_text(
    g: Context, low: int = TOAST_CHARS[0], high: int = TOAST_CHARS[1]
) -> str:
    """Prose of ``low``-``high`` characters (well past the TOAST threshold)."""
    size = g.randint(low, high)
    words: list[str] = []
    length = 0
    names, streets = g.pools.last_names, g.pools.streets
    while length < size:
        word = g.choice(names) if g.rng.random() < 0.5 else g.choice(streets)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:size]


def large_json(g: Context) -> str:
    """A jsonb document of ~10 kB: a list of small objects."""
    items = [
        {"n": n, "city": g.choice(g.pools.cities)[0], "v": g.randint(0, 10**6)}
        for n in range(g.randint(220, 320))
    ]
    return json.dumps({"version": 1, "items": items}, ensure_ascii=False)


def maybe(g: Context, value: Any) -> Any:
    """``value``, or NULL for a share of rows (connectors' optional fields)."""
    return None if g.rng.random() < NULL_SHARE else value


def _uuid(g: Context) -> str:
    return str(uuid.UUID(int=g.rng.getrandbits(128), version=4))


def _amount(g: Context) -> str:
    whole = g.randint(-(10**15), 10**15)
    return str(Decimal(f"{whole}.{g.randint(0, 10**10 - 1):010d}"))


def _tags(g: Context) -> str:
    chosen = [g.choice(TAGS) for _ in range(g.randint(0, 4))]
    return "{" + ",".join(json.dumps(t) for t in chosen) + "}"


def _blob(g: Context) -> str:
    return "\\x" + g.rng.getrandbits(8 * 24).to_bytes(24, "big").hex()


def _span(g: Context) -> str:
    return str(timedelta(seconds=g.randint(0, 40 * 86_400))).replace(",", "")


def _code(g: Context) -> str:
    """A value of the ``lab_code`` domain (``ABC-1234``)."""
    return (
        "".join(g.choice("ABCDEFGH") for _ in range(3)) + f"-{g.randint(0, 9999):04d}"
    )


class LabDocument(SQLFactory):
    _table, _domain = "lab_documents", DOMAIN

    title = Col(lambda g, r: f"Documento {g.choice(g.pools.last_names)}")
    revision = Col(lambda g, r: 1)
    body = Col(lambda g, r: large_text(g))
    attrs = Col(lambda g, r: large_json(g))


class LabDocumentFull(LabDocument):
    _table = "lab_documents_full"


class LabType(SQLFactory):
    _table, _domain = "lab_types", DOMAIN

    amount = Col(lambda g, r: maybe(g, _amount(g)))
    happened_at = Col(
        lambda g, r: maybe(
            g, g.moment(g.as_of - timedelta(days=365), g.as_of).replace(tzinfo=UTC)
        )
    )
    local_at = Col(
        lambda g, r: maybe(g, g.moment(g.as_of - timedelta(days=30), g.as_of))
    )
    on_day = Col(
        lambda g, r: maybe(g, g.as_of.date() - timedelta(days=g.randint(0, 999)))
    )
    at_time = Col(
        lambda g, r: maybe(
            g, f"{g.randint(0, 23):02d}:{g.randint(0, 59):02d}:{g.randint(0, 59):02d}"
        )
    )
    span = Col(lambda g, r: maybe(g, _span(g)))
    ref = Col(lambda g, r: maybe(g, _uuid(g)))
    doc = Col(
        lambda g, r: maybe(
            g, json.dumps({"k": g.randint(0, 99), "ok": g.rng.random() < 0.5})
        )
    )
    tags = Col(lambda g, r: maybe(g, _tags(g)))
    blob = Col(lambda g, r: maybe(g, _blob(g)))
    mood = Col(lambda g, r: maybe(g, g.choice(MOODS)))
    code = Col(lambda g, r: maybe(g, _code(g)))
    note = Col(lambda g, r: maybe(g, f"nota {g.randint(1, 999)}"))


class LabAccount(SQLFactory):
    _table, _domain = "lab_accounts", DOMAIN

    holder = Col(lambda g, r: g.person_name())
    balance = Col(lambda g, r: Decimal(g.randint(0, 10**7)) / 100)


class LabEntry(SQLFactory):
    _table, _domain = "lab_entries", DOMAIN

    account_id = Parent("lab_accounts")
    amount = Col(lambda g, r: Decimal(g.randint(-(10**5), 10**5)) / 100)
    memo = Col(lambda g, r: maybe(g, f"lançamento {g.randint(1, 9999)}"))


def _position(g: Context) -> int:
    """The next slot position from its sequence (random when built offline)."""
    if g.conn is None:
        return g.randint(1, 2**31 - 1)
    row = g.conn.execute("SELECT nextval('lab_slots_position_seq')").fetchone()
    assert row is not None
    return int(row[0])


class _Keyless(SQLFactory):
    """A table whose rows have no ``id``: inserted as given, not kept for
    lookups by id (nothing refers to them); ``_key`` names the columns that
    identify a row in the ledger."""

    _key: tuple[str, ...] = ()

    @classmethod
    def _write(cls, ctx: Context, row: Row, standalone: bool) -> Row:
        assert ctx.conn is not None
        row.update(insert(ctx.conn, cls._table, cls.columns(row)))
        ctx.count(cls._table, "insert", 1, ({c: row[c] for c in cls._key},))
        return row


class LabSlot(_Keyless):
    """Composite key (shelf, position); positions come from their sequence."""

    _table, _domain = "lab_slots", DOMAIN
    _key = ("shelf", "position")

    shelf = Col(lambda g, r: g.choice(SHELVES))
    position = Col(lambda g, r: _position(g))
    item = Col(lambda g, r: f"item {g.choice(g.pools.last_names)}")
    quantity = Col(lambda g, r: g.randint(0, 500))


class LabLog(_Keyless):
    """No primary key: rows are told apart by ``event_id`` only by convention."""

    _table, _domain = "lab_log", DOMAIN
    _key = ("event_id",)

    event_id = Col(lambda g, r: _uuid(g))
    kind = Col(lambda g, r: g.choice(LOG_KINDS))
    detail = Col(
        lambda g, r: json.dumps({"ip": f"10.0.{g.randint(0, 255)}.{g.randint(1, 254)}"})
    )


class LabEvolving(SQLFactory):
    _table, _domain = "lab_evolving", DOMAIN

    label = Col(lambda g, r: f"v{g.randint(1, 999)}")


class LabBulk(SQLFactory):
    _table, _domain = "lab_bulk", DOMAIN

    load_no = Col(lambda g, r: 0)
    n = Col(lambda g, r: g.randint(1, 10**6))
