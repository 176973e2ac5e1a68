"""``Factory.create_batch(n)`` through COPY: the seeder's fast path for one call.

factory_boy's ``create_batch`` runs ``create()`` n times: a round trip and
~100 us of factory_boy per row. Here the rows come from the same
declarations (:meth:`SQLFactory.make_row`, so no field is defined twice),
their ids are taken from the table's sequence in one statement, and they land
with one COPY per table (header, then items); the rows are read back, so the
caller gets what the database holds (defaults and triggers included).

Parents are picked among existing rows, as the seeder picks them (a table
with no rows gets a few made first, through this same path); a parent given
as a keyword (``paciente=row``) or through ``paciente__nome=...`` is used
as ``create()`` would use it. Factories with rules across rows (a stock
check before a sale item, a total kept after it, a pick restricted by SQL)
keep factory_boy's row-by-row path, which applies those rules.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql

from pytest_oltpseed.data.factory import (
    Context,
    FieldError,
    Parent,
    Ref,
    Row,
    SQLFactory,
    factory_for,
)
from pytest_oltpseed.db import table_ident
from pytest_oltpseed.seed.chunks import copy_text

EMPTY_PARENTS = 100  # rows made first in a parent table that has none


def has_rules(factory: type[SQLFactory]) -> bool:
    """Whether rows of ``factory`` need its per-row rules (the slow path)."""

    def overridden(each: type[SQLFactory], hook: str) -> bool:
        return getattr(each, hook).__func__ is not getattr(SQLFactory, hook).__func__

    if overridden(factory, "_before_insert") or overridden(factory, "_after_insert"):
        return True
    for _, items in factory._items():
        if overridden(factory_for(items.table), "_before_insert"):
            return True
    return any(
        isinstance(d, Parent) and d.where is not None
        for each in (factory, *(factory_for(i.table) for _, i in factory._items()))
        for _, d in each._declarations()
    )


def create_batch(
    factory: type[SQLFactory], ctx: Context, size: int, params: Mapping[str, Any]
) -> list[Row]:
    """``size`` new rows of ``factory`` (with ``params`` as in ``create()``)."""
    if size <= 0:
        return []
    if has_rules(factory):
        return [factory.create(**params) for _ in range(size)]
    conn = ctx.conn
    assert conn is not None
    overrides = factory.normalize(params)
    pickers = _pickers(factory, ctx, overrides, size)
    for value in overrides.values():  # an unsaved parent row given: saved once
        if isinstance(value, Ref) and value.table and "id" not in value.row:
            assert isinstance(value.row, Row)
            factory_for(value.table).write(ctx, value.row)
    saved = ctx.reserve_block
    ctx.reserve_block = max(saved, size)  # one reservation per identifier
    try:
        rows = _generate_and_land(factory, ctx, size, pickers, overrides)
    finally:
        ctx.reserve_block = saved
    ctx.count(factory._table, "insert", size)
    ctx.forget_ids(factory._table)
    for name, items in factory._items():
        children = []
        for row in rows:
            for item in row[name]:
                item[items.fk] = row["id"]
                children.append(item)
        child = factory_for(items.table)
        _land(conn, child, children)
        ctx.count(items.table, "insert", len(children))
        ctx.forget_ids(items.table)
    return _read_back(conn, factory, rows)


def _pickers(
    factory: type[SQLFactory], ctx: Context, overrides: Mapping[str, Any], size: int
) -> dict[str, Any]:
    """FK column -> picker among existing parents, for every parent not given."""
    from pytest_oltpseed.seed.seeder import ParentPool

    assert ctx.conn is not None
    given = {key.partition("__")[0] for key in overrides}
    pickers: dict[str, Any] = {}
    owners = [(factory, None)] + [
        (factory_for(items.table), items.fk) for _, items in factory._items()
    ]
    for each, header_fk in owners:
        for name, declaration in each._declarations():
            if not isinstance(declaration, Parent) or name == header_fk:
                continue
            if each is factory and name in given:
                continue
            pool = ParentPool(ctx.conn, declaration.table, declaration.carry)
            if not len(pool):
                parent = factory_for(declaration.table)
                create_batch(parent, ctx, min(size, EMPTY_PARENTS), {})
                pool = ParentPool(ctx.conn, declaration.table, declaration.carry)
            pickers[name] = pool.picker(random.Random(ctx.rng.random()))
    return pickers


def _generate_and_land(
    factory: type[SQLFactory],
    ctx: Context,
    size: int,
    pickers: dict[str, Any],
    overrides: Mapping[str, Any],
) -> list[Row]:
    """Make every row, then land them with one COPY.

    Making rows may use the connection (identifier reservations, a new parent
    per row for ``paciente__nome=...``), so no COPY is open meanwhile; a
    failure while making them writes nothing.
    """
    conn = ctx.conn
    assert conn is not None
    rows = [
        factory.make_row(ctx, pickers, create=True, overrides=overrides)
        for _ in range(size)
    ]
    _land(conn, factory, rows)
    return rows


def _ids(conn: psycopg.Connection, table: str, n: int) -> list[int]:
    """``n`` new ids from ``table``'s sequence, in one statement."""
    found = conn.execute(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
        (table, n),
    ).fetchall()
    return [int(r[0]) for r in found]


def _render(rows: list[Row], columns: Sequence[str]) -> bytes:
    """Rows as COPY text, as the seeder renders them."""
    try:
        lines = ["\t".join([copy_text(row[c]) for c in columns]) for row in rows]
    except TypeError as exc:  # a caller's value COPY text does not know
        raise FieldError(f"create_batch cannot write this value: {exc}") from None
    lines.append("")
    return "\n".join(lines).encode()


def _land(conn: psycopg.Connection, factory: type[SQLFactory], rows: list[Row]) -> None:
    """Give ``rows`` ids from the table's sequence, then COPY them in."""
    if not rows:
        return
    for row, new_id in zip(rows, _ids(conn, factory._table, len(rows)), strict=True):
        row["id"] = new_id
    columns = ["id", *factory.column_names()]
    data = _render(rows, columns)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        table_ident(factory._table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with conn.cursor() as cur, cur.copy(statement) as copy:
        copy.write(data)


def _read_back(
    conn: psycopg.Connection, factory: type[SQLFactory], rows: list[Row]
) -> list[Row]:
    """The rows as ``create()`` returns them: every column, FKs as ids, and
    what the database filled in (timestamps, other defaults) read back."""
    written = ["id", *factory.column_names()]
    filled = [
        r[0]
        for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass "
            "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (factory._table,),
        )
    ]
    missing = [c for c in filled if c not in written]
    stored: dict[int, tuple[Any, ...]] = {}
    if missing:
        query = sql.SQL("SELECT id, {} FROM {} WHERE id = ANY(%s)").format(
            sql.SQL(", ").join(map(sql.Identifier, missing)),
            table_ident(factory._table),
        )
        ids = [row["id"] for row in rows]
        stored = {r[0]: r[1:] for r in conn.execute(query, (ids,))}
    items = [name for name, _ in factory._items()]
    order = [*filled, *items]
    out = []
    for row in rows:
        values = {c: row[c] for c in written}
        for c, v in values.items():
            if type(v) is Ref:
                values[c] = v.row["id"]
        values.update(zip(missing, stored.get(row["id"], ()), strict=True))
        for name in items:
            values[name] = row[name]
        out.append(Row({c: values[c] for c in order}))
    return out
