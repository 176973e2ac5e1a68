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
from psycopg.rows import dict_row

from pytest_oltpseed.factory import (
    Context,
    Parent,
    Ref,
    Row,
    SQLFactory,
    factory_for,
    ref_id,
)

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
    saved = ctx.reserve_block
    ctx.reserve_block = max(saved, size)  # one reservation per identifier
    try:
        rows = [
            factory.make_row(ctx, pickers, create=True, overrides=overrides)
            for _ in range(size)
        ]
    finally:
        ctx.reserve_block = saved
    for value in overrides.values():  # an unsaved parent row given: saved once
        if isinstance(value, Ref) and value.table and "id" not in value.row:
            assert isinstance(value.row, Row)
            factory_for(value.table).write(ctx, value.row)
    _land(conn, factory, rows)
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
    from pytest_oltpseed.seeding import ParentPool

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


def _land(conn: psycopg.Connection, factory: type[SQLFactory], rows: list[Row]) -> None:
    """Give ``rows`` ids from the table's sequence, then COPY them in."""
    if not rows:
        return
    found = conn.execute(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
        (factory._table, len(rows)),
    ).fetchall()
    for row, (new_id,) in zip(rows, found, strict=True):
        row["id"] = int(new_id)
    columns: Sequence[str] = ["id", *factory.column_names()]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(factory._table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            copy.write_row([ref_id(row[c]) for c in columns])


def _read_back(
    conn: psycopg.Connection, factory: type[SQLFactory], rows: list[Row]
) -> list[Row]:
    """The rows as the database holds them, in creation order, items attached."""
    query = sql.SQL("SELECT * FROM {} WHERE id = ANY(%s) ORDER BY id").format(
        sql.Identifier(factory._table)
    )
    with conn.cursor(row_factory=dict_row) as cur:
        found = cur.execute(query, ([r["id"] for r in rows],))
        stored = {r["id"]: Row(r) for r in found}
    out = []
    for row in rows:
        written = stored[row["id"]]
        for name, _ in factory._items():
            written[name] = row[name]
        out.append(written)
    return out
