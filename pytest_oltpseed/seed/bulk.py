"""``Factory.create_batch(n)`` through COPY: the seeder's fast path for one call.

factory_boy's ``create_batch`` runs ``create()`` n times: a round trip and
~100 us of factory_boy per row. Here the rows come from the same
declarations (:meth:`SQLFactory.make_row`, so no field is defined twice),
their keys (and every other per-row default) are taken up front from the
table's own sequences in one statement, whatever the key is called or made
of (:mod:`~pytest_oltpseed.seed.landing`: ``id``, ``film_id``, a composite
or identity key, a schema-qualified table), and they land with one COPY per
table (header, then items); what only the server knows is read back by the
primary key, so the caller gets what the database holds (defaults and
triggers included). Any factory works, a generated domain's too.

A table whose columns are all column generators (``consultas``, ``exames``,
``internacoes``) is made a column at a time with NumPy, as the seeder's fast
path makes a chunk, once the batch is large enough to repay NumPy
(:func:`columnwise`); keywords keep the row path.

Parents are picked among existing rows, as the seeder picks them (a table
with no rows gets a few made first, through this same path); a parent given
as a keyword (``paciente=row``) or through ``paciente__nome=...`` is used
as ``create()`` would use it. Factories with rules across rows (a stock
check before a sale item, a total kept after it, a pick restricted by SQL)
keep factory_boy's row-by-row path, which applies those rules; so does a
table whose rows could not be found again after a COPY (no primary key, and
a trigger or a generated column: :func:`landing.findable`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql

from pytest_oltpseed.data import columns
from pytest_oltpseed.data.factory import (
    Context,
    FieldError,
    Parent,
    Ref,
    Row,
    SQLFactory,
    factory_for,
    ref_id,
)
from pytest_oltpseed.db import table_ident
from pytest_oltpseed.seed import chunks, landing
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
    """``size`` new rows of ``factory`` (with ``params`` as in ``create()``),
    all or none: the headers, their items and the read-back run in one
    transaction (a savepoint inside the caller's), so a failure leaves no
    header without its items, on an autocommit connection too."""
    if size <= 0:
        return []
    conn = ctx.conn
    assert conn is not None
    with conn.transaction():
        return _create_batch(factory, ctx, conn, size, params)


def _create_batch(
    factory: type[SQLFactory],
    ctx: Context,
    conn: psycopg.Connection[Any],
    size: int,
    params: Mapping[str, Any],
) -> list[Row]:
    shape = landing.shape(conn, factory._table)
    if has_rules(factory) or not landing.findable(shape):
        return [factory.create(**params) for _ in range(size)]
    overrides = factory.normalize(params)
    pickers, pools = _pickers(factory, ctx, overrides, size)
    if not overrides and columnwise(factory, size):
        made = _columns(factory, ctx, size, pools, shape)
        ctx.count(factory._table, "insert", size)
        ctx.forget_ids(factory._table)
        return _read_back(conn, factory, shape, made=made)
    for value in overrides.values():  # an unsaved parent row given: saved once
        if isinstance(value, Ref) and value.table and "id" not in value.row:
            assert isinstance(value.row, Row)
            factory_for(value.table).write(ctx, value.row)
    saved = ctx.reserve_block
    ctx.reserve_block = max(saved, size)  # one reservation per identifier
    try:
        rows = _generate_and_land(factory, ctx, size, pickers, overrides, shape)
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
    return _read_back(conn, factory, shape, rows)


def _pickers(
    factory: type[SQLFactory], ctx: Context, overrides: Mapping[str, Any], size: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """FK column -> picker among existing parents, for every parent not given;
    and FK column -> the parents' pool it picks from."""
    from pytest_oltpseed.seed.parents import ParentPool

    assert ctx.conn is not None
    given = {key.partition("__")[0] for key in overrides}
    pickers: dict[str, Any] = {}
    pools: dict[str, Any] = {}
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
            pools[name] = pool
    return pickers, pools


def columnwise(factory: type[SQLFactory], size: int) -> bool:
    """Whether a batch is made a column at a time (NumPy): a table whose
    columns are all :class:`~pytest_oltpseed.data.columns.Gen` declarations
    (the seeder's column-wise tables), no items, no identifier index to
    reserve, and enough rows to repay NumPy (``columns.fast_enabled``)."""
    if factory._items() or not chunks.columnar(factory._table):
        return False
    gens = [d.fn for _, kind, d in factory._plan() if kind is not Parent]
    if any(_indexed(gen) or getattr(gen, "seeding_only", False) for gen in gens):
        return False  # a generated domain's keys are loaded by a seeding stage
    return columns.fast_enabled(size)


def _indexed(gen: Any) -> bool:
    """Whether a generator (or one nested in it) takes identifier indices."""
    if isinstance(gen, columns.Indexed):
        return True
    nested = [*getattr(gen, "parts", ()), *getattr(gen, "cases", {}).values()]
    nested += [getattr(gen, a, None) for a in ("then", "other", "default")]
    return any(_indexed(g) for g in nested if isinstance(g, columns.Gen))


_PYTHON = {
    "timestamp": "datetime64[s]",  # NULL_TIME is NaT: None
    "date": "datetime64[D]",
    "interval": "timedelta64[s]",
}


def _columns(
    factory: type[SQLFactory],
    ctx: Context,
    size: int,
    pools: Mapping[str, Any],
    shape: landing.Shape,
) -> dict[str, list[Any]]:
    """The batch generated column-wise, as the seeder's NumPy path makes a
    chunk (the same declarations' ``many``), landed with one COPY; the rows
    come back as Python values, a list per column (what the server filled
    per row included). The streams are keyed by a draw from the context's
    generator: the same seed gives the same batch."""
    conn = ctx.conn
    assert conn is not None
    salt = ctx.rng.getrandbits(64)
    excluded = set(factory._meta.exclude)  # type: ignore[attr-defined]
    frame = columns.Frame(ctx.as_of, size, ctx.pools)
    names, texts, values = [], [], []
    for name, kind, declaration in factory._plan():
        if kind is Parent:
            pool = pools[name]
            key = columns.stream_key(salt, name, 0)
            index = columns.picks(columns.uniforms(key, 0, size), len(pool))
            frame.columns[name], frame.parents[name] = index, pool
            array, gen_kind = pool.id_array()[index], "int"
        else:
            gen = declaration.fn
            us = [
                columns.uniforms(columns.stream_key(salt, name, j), 0, size)
                for j in range(gen.draws)
            ]
            array = frame.columns[name] = gen.many(frame, us)
            gen_kind = gen.kind
        if name in excluded:
            continue
        names.append(name)
        texts.append(columns.column_text(gen_kind, array))
        values.append(_python(gen_kind, array))
    taken = shape.taken(names, every=conn.autocommit)
    filled, filled_texts = landing.take(conn, shape, taken, size)
    for name in reversed(taken):
        names.insert(0, name)
        values.insert(0, filled[name])
        given = filled_texts.get(name, filled[name])
        texts.insert(0, [copy_text(v) for v in given])
    lines = list(map("\t".join, zip(*texts, strict=True)))
    lines.append("")
    _copy(conn, factory._table, names, "\n".join(lines).encode())
    return dict(zip(names, values, strict=True))


def _python(kind: str, array: Any) -> list[Any]:
    """A column array as the Python values its rows hold (NaT: None)."""
    if kind == "money":  # whole cents
        return [None if v is None else columns.to_money(v) for v in array.tolist()]
    target = _PYTHON.get(kind)
    return (array.astype(target) if target else array).tolist()  # type: ignore[no-any-return]


def _generate_and_land(
    factory: type[SQLFactory],
    ctx: Context,
    size: int,
    pickers: dict[str, Any],
    overrides: Mapping[str, Any],
    shape: landing.Shape,
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
    _land(conn, factory, rows, shape)
    return rows


def _render(
    rows: list[Row], columns: Sequence[str], texts: Mapping[str, list[str]]
) -> bytes:
    """Rows as COPY text, as the seeder renders them (``texts``: a column's
    text forms where its values have none of their own, a uuid)."""
    try:
        cells = [
            [copy_text(v) for v in texts[c]]
            if c in texts
            else [copy_text(row[c]) for row in rows]
            for c in columns
        ]
    except TypeError as exc:  # a caller's value COPY text does not know
        raise FieldError(f"create_batch cannot write this value: {exc}") from None
    lines = list(map("\t".join, zip(*cells, strict=True)))
    lines.append("")
    return "\n".join(lines).encode()


def _land(
    conn: psycopg.Connection,
    factory: type[SQLFactory],
    rows: list[Row],
    shape: landing.Shape | None = None,
) -> None:
    """Give ``rows`` what the server would fill per row (their keys, from the
    table's sequences, whatever the columns are called), then COPY them in."""
    if not rows:
        return
    shape = shape or landing.shape(conn, factory._table)
    written = factory.column_names()
    taken = shape.taken(written, every=conn.autocommit)
    values, texts = landing.take(conn, shape, taken, len(rows))
    for column in taken:
        for row, value in zip(rows, values[column], strict=True):
            row[column] = value
    names = [*taken, *written]
    _copy(conn, factory._table, names, _render(rows, names, texts))


def _copy(conn: psycopg.Connection, table: str, names: list[str], data: bytes) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        table_ident(table), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    with conn.cursor() as cur, cur.copy(statement) as copy:
        copy.write(data)


def _read_back(
    conn: psycopg.Connection,
    factory: type[SQLFactory],
    shape: landing.Shape,
    rows: list[Row] | None = None,
    made: Mapping[str, list[Any]] | None = None,
) -> list[Row]:
    """The rows as ``create()`` returns them: every column of the table, FKs
    as ids, what the server filled in (taken up front, or a default fixed for
    the transaction evaluated once), and what only it knows read back by the
    key (see :mod:`pytest_oltpseed.seed.landing`); then the header's items.

    ``made`` gives the rows column by column instead (the column-wise path),
    so no row is built twice."""
    if made is not None:
        columns = dict(made)
    else:
        assert rows
        columns = {}
        for name in shape.names:
            if name not in rows[0]:
                continue
            values = [row[name] for row in rows]
            if any(type(v) is Ref for v in values):
                values = [ref_id(v) for v in values]
            columns[name] = values
    n = len(next(iter(columns.values())))
    known = list(columns)
    if shape.triggered:  # a BEFORE INSERT trigger may change any column
        unsure = [c for c in shape.names if c not in shape.key]
    else:
        unsure = [c for c in known if not landing.as_read(shape.types[c], columns[c])]
        unsure += [c for c in shape.names if c in shape.generated]
    columns.update(landing.read(conn, shape, columns, unsure, n))
    once = landing.stable(
        conn, shape, [c for c in shape.stable(known) if c not in unsure]
    )
    for name in shape.names:
        if name not in columns:
            columns[name] = [once.get(name)] * n
    items = [name for name, _ in factory._items()]
    order = [*shape.names, *items]
    lists = [columns[c] for c in shape.names]
    lists += [[row[name] for row in rows or ()] for name in items]
    return [Row(zip(order, values, strict=True)) for values in zip(*lists, strict=True)]
