"""Where ``create_batch``'s rows meet their table, whatever its key.

COPY returns nothing, so what the server would fill in is taken up front:
every column the factory does not write whose default differs per row (a
serial's or an identity's sequence, ``uuid_generate_v4()``) is evaluated
for the whole batch in one statement and written by the COPY, so the rows
carry their keys (``id``, ``film_id``, ``salesorderid``, a composite key)
before they land. Defaults fixed for the transaction (``now()``, constants)
are evaluated once and left to the server.

What only the server knows afterwards (a BEFORE INSERT trigger's changes,
generated columns, a value written in another type's text form: a generated
domain's ``timestamptz``, ``jsonb`` or array columns travel as text) is read
back by the table's primary key; a table with no primary key has such values
cast by the server instead (the same input function COPY used). Only a table
with neither a primary key nor a way to know its rows without one (a
trigger, a generated column) keeps the row-by-row path (:func:`findable`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from pytest_oltpseed.db import table_ident
from pytest_oltpseed.errors import OltpseedError

CATALOG = """
SELECT a.attname,
       CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END,
       format_type(a.atttypid, a.atttypmod),
       pg_get_serial_sequence(a.attrelid::regclass::text, a.attname),
       a.attgenerated <> '',
       array_position(p.conkey, a.attnum),
       EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = a.attrelid
               AND NOT g.tgisinternal AND g.tgtype & 7 = 7)
FROM pg_attribute a
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
LEFT JOIN pg_constraint p ON p.conrelid = a.attrelid AND p.contype = 'p'
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
"""Per column of a table: its default (``None`` for none or a generated
column), type, sequence (a serial's or an identity's), whether it is
generated, its place in the primary key, and whether a BEFORE INSERT row
trigger (``tgtype`` bits ROW | BEFORE | INSERT) may change what was written."""

STABLE_DEFAULT = re.compile(
    r"^(now\(\)|CURRENT_TIMESTAMP|CURRENT_DATE|LOCALTIMESTAMP|"
    r"transaction_timestamp\(\)|true|false|-?[0-9.]+|'[^']*'(::[a-z ]+)?)"
    r"(::[a-z ]+)?$"
)
"""A default that is the same for every row of one transaction: a constant,
or the transaction's start time (``now()`` is fixed for the transaction)."""


@dataclass(frozen=True)
class Shape:
    """What the catalog says of a table, for one batch."""

    table: str
    names: tuple[str, ...]  # every column, in the table's order
    defaults: Mapping[str, str]  # column -> default expression
    types: Mapping[str, str]  # column -> its type, as format_type writes it
    sequences: Mapping[str, str]  # column -> its sequence (serial, identity)
    generated: frozenset[str]
    key: tuple[str, ...]  # the primary key's columns (none: empty)
    triggered: bool

    def taken(self, written: Sequence[str], *, every: bool = False) -> list[str]:
        """Columns not written whose value differs per row: taken up front;
        ``every`` default too (an autocommit connection: the COPY runs in
        another transaction than a later ``now()`` would)."""
        return [
            c
            for c in self.names
            if c not in written
            and (
                c in self.sequences
                or (
                    c in self.defaults
                    and (every or not STABLE_DEFAULT.match(self.defaults[c]))
                )
            )
        ]

    def stable(self, written: Sequence[str]) -> list[str]:
        """Columns not written whose default is the same for every row."""
        return [
            c
            for c in self.names
            if c not in written
            and c not in self.sequences
            and STABLE_DEFAULT.match(self.defaults.get(c, ""))
        ]


def shape(conn: psycopg.Connection, table: str) -> Shape:
    catalog = conn.execute(CATALOG, (table_ident(table).as_string(conn),)).fetchall()
    key = sorted((place, name) for name, *_, place, _ in catalog if place)
    return Shape(
        table,
        tuple(r[0] for r in catalog),
        {r[0]: r[1] for r in catalog if r[1] is not None},
        {r[0]: r[2] for r in catalog},
        {r[0]: r[3] for r in catalog if r[3] is not None},
        frozenset(r[0] for r in catalog if r[4]),
        tuple(name for _, name in key),
        bool(catalog) and catalog[0][6],
    )


def findable(shape: Shape) -> bool:
    """Whether a batch's rows can be known after COPY: by the primary key, or
    (none) because nothing but the written values and defaults make them."""
    return bool(shape.key) or not (shape.triggered or shape.generated)


def take(
    conn: psycopg.Connection, shape: Shape, columns: Sequence[str], n: int
) -> tuple[dict[str, list[Any]], dict[str, list[str]]]:
    """``n`` values of each of ``columns`` (see :meth:`Shape.taken`), as the
    server would have filled them: from its sequence in one statement (only
    the range travels back when nobody took values meanwhile, the usual
    case), other defaults in one statement for all. Also their COPY text
    where it is not the value's own (a uuid)."""
    values: dict[str, list[Any]] = {}
    texts: dict[str, list[str]] = {}
    others = []
    for column in columns:
        sequence = shape.sequences.get(column)
        if sequence is None:
            others.append(column)
            continue
        low, high, ids = conn.execute(
            "WITH taken AS (SELECT nextval(%s::regclass) AS v "
            "FROM generate_series(1, %s)) "
            "SELECT min(v), max(v), CASE WHEN max(v) - min(v) + 1 <> count(*) "
            "THEN array_agg(v ORDER BY v) END FROM taken",
            (sequence, n),
        ).fetchone()  # type: ignore[misc]
        values[column] = list(ids) if ids is not None else list(range(low, high + 1))
    if others:
        each = [
            sql.SQL("({})::{}").format(
                sql.SQL(shape.defaults[c]),  # type: ignore[arg-type]
                sql.SQL(shape.types[c]),  # type: ignore[arg-type]
            )
            for c in others
        ]
        fields = [sql.Identifier(f"v{i}") for i in range(len(others))]
        query = sql.SQL(
            "SELECT {} FROM (SELECT {} FROM generate_series(1, %s) OFFSET 0) s"
        ).format(
            sql.SQL(", ").join(sql.SQL("{0}, {0}::text").format(f) for f in fields),
            sql.SQL(", ").join(
                sql.SQL("{} AS {}").format(e, f)
                for e, f in zip(each, fields, strict=True)
            ),
        )
        rows = conn.execute(query, (n,)).fetchall()
        for i, column in enumerate(others):
            values[column] = [r[2 * i] for r in rows]
            texts[column] = [r[2 * i + 1] for r in rows]
    return values, texts


def stable(
    conn: psycopg.Connection, shape: Shape, columns: Sequence[str]
) -> dict[str, Any]:
    """The value of each default fixed for the transaction, evaluated once."""
    if not columns:
        return {}
    once = sql.SQL("SELECT {}").format(
        sql.SQL(", ").join(
            sql.SQL(f"({shape.defaults[c]})::{shape.types[c]}")  # type: ignore[misc]
            for c in columns
        )
    )
    return dict(zip(columns, conn.execute(once).fetchone() or (), strict=True))


_LOADED: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "bigint": (int,),
    "smallint": (int,),
    "text": (str,),
    "boolean": (bool,),
    "date": (date,),
    "timestamp without time zone": (datetime,),
    "time without time zone": (time,),
    "interval": (timedelta,),
    "double precision": (float, int),
}
"""Column types whose values, written as these Python types, are read back
as equal values (what ``SELECT`` would give)."""
_NUMERIC = re.compile(r"^numeric(?:\(\d+,(\d+)\))?$")


def as_read(kind: str, values: Sequence[Any]) -> bool:
    """Whether ``values`` (one column of a batch) equal what the server holds
    once written to a column of type ``kind``: a text of a ``jsonb``, a
    ``char(3)`` padded, a naive time in a ``timestamptz``, a Decimal past a
    numeric's scale are not."""
    types = {type(v) for v in values} - {type(None)}
    if not types:
        return True
    if kind.startswith("character varying"):
        kind = "text"
    numeric = _NUMERIC.match(kind)
    if numeric:
        if not types <= {int, Decimal}:
            return False
        scale = numeric.group(1)
        return scale is None or all(
            -v.as_tuple().exponent <= int(scale)  # type: ignore[operator]
            for v in values
            if type(v) is Decimal
        )
    if not types <= set(_LOADED.get(kind, ())):
        return False
    if kind == "timestamp without time zone":
        return all(v.tzinfo is None for v in values if v is not None)
    return True


def read(
    conn: psycopg.Connection,
    shape: Shape,
    columns: Mapping[str, list[Any]],
    unsure: Sequence[str],
    n: int,
) -> dict[str, list[Any]]:
    """The ``unsure`` columns of the batch as the table holds them, row for
    row: found by the primary key (its values in ``columns``), or, with
    none, the written values cast by the server to the columns' types."""
    if not unsure:
        return {}
    key = shape.key
    keyed = bool(key)
    given = key if keyed else unsure
    arrays = sql.SQL(", ").join(
        sql.SQL("%s::{}[]").format(sql.SQL(shape.types[c]))  # type: ignore[arg-type]
        for c in given
    )
    names = [sql.Identifier(f"k{i}") for i in range(len(given))]
    if keyed:
        query = sql.SQL(
            "SELECT k.n, {} FROM unnest({}) WITH ORDINALITY AS k({}, n) "
            "JOIN {} t ON ({}) = ({})"
        ).format(
            sql.SQL(", ").join(sql.Identifier("t", c) for c in unsure),
            arrays,
            sql.SQL(", ").join(names),
            table_ident(shape.table),
            sql.SQL(", ").join(sql.Identifier("t", c) for c in key),
            sql.SQL(", ").join(sql.Identifier("k", f"k{i}") for i in range(len(key))),
        )
    else:
        query = sql.SQL(
            "SELECT k.n, {} FROM unnest({}) WITH ORDINALITY AS k({}, n)"
        ).format(sql.SQL(", ").join(names), arrays, sql.SQL(", ").join(names))
    found = conn.execute(query, [columns[c] for c in given]).fetchall()
    if len(found) != n:
        raise OltpseedError(
            f"{shape.table}: {n - len(found)} rows of the batch were not found "
            "again by their primary key (a trigger changed it?)"
        )
    out: dict[str, list[Any]] = {c: [None] * n for c in unsure}
    for row in found:
        at = row[0] - 1
        for i, column in enumerate(unsure, 1):
            out[column][at] = row[i]
    return out
