"""``Factory.create_batch(n)`` through COPY: the seeder's fast path for one call.

factory_boy's ``create_batch`` runs ``create()`` n times: a round trip and
~100 us of factory_boy per row. Here the rows come from the same
declarations (:meth:`SQLFactory.make_row`, so no field is defined twice),
their ids are taken from the table's sequence in one statement, and they land
with one COPY per table (header, then items); the rows are read back, so the
caller gets what the database holds (defaults and triggers included).

A table whose columns are all column generators (``consultas``, ``exames``,
``internacoes``) is made a column at a time with NumPy, as the seeder's fast
path makes a chunk, once the batch is large enough to repay NumPy
(:func:`columnwise`); keywords keep the row path.

Parents are picked among existing rows, as the seeder picks them (a table
with no rows gets a few made first, through this same path); a parent given
as a keyword (``paciente=row``) or through ``paciente__nome=...`` is used
as ``create()`` would use it. Factories with rules across rows (a stock
check before a sale item, a total kept after it, a pick restricted by SQL)
keep factory_boy's row-by-row path, which applies those rules.
"""

from __future__ import annotations

import collections
import random
import re
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
)
from pytest_oltpseed.db import table_ident
from pytest_oltpseed.seed import chunks
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
    pickers, pools = _pickers(factory, ctx, overrides, size)
    if not overrides and columnwise(factory, size):
        made = _columns(factory, ctx, size, pools)
        ctx.count(factory._table, "insert", size)
        ctx.forget_ids(factory._table)
        return _read_back(conn, factory, [], made)
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
) -> tuple[dict[str, Any], dict[str, Any]]:
    """FK column -> picker among existing parents, for every parent not given;
    and FK column -> the parents' pool it picks from."""
    from pytest_oltpseed.seed.seeder import ParentPool

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
    factory: type[SQLFactory], ctx: Context, size: int, pools: Mapping[str, Any]
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The batch generated column-wise, as the seeder's NumPy path makes a
    chunk (the same declarations' ``many``), landed with one COPY; the rows
    come back as Python values (column names, one tuple a row). The streams
    are keyed by a draw from the context's generator: the same seed gives the
    same batch."""
    conn = ctx.conn
    assert conn is not None
    salt = ctx.rng.getrandbits(64)
    excluded = set(factory._meta.exclude)  # type: ignore[attr-defined]
    frame = columns.Frame(ctx.as_of, size, ctx.pools)
    names, texts, values = ["id"], [], []
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
        target = _PYTHON.get(gen_kind)
        values.append((array.astype(target) if target else array).tolist())
    ids = _ids(conn, factory._table, size)
    texts.insert(0, [str(i) for i in ids])
    values.insert(0, ids)
    lines = list(map("\t".join, zip(*texts, strict=True)))
    lines.append("")
    _copy(conn, factory._table, names, "\n".join(lines).encode())
    return names, list(zip(*values, strict=True))


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
    """``n`` new ids from ``table``'s sequence, in one statement.

    Only their range travels back when it has no gap (nobody else took ids
    meanwhile: the usual case), not 10,000 rows of one value each.
    """
    low, high, ids = conn.execute(
        "WITH taken AS (SELECT nextval(pg_get_serial_sequence(%s, 'id')) AS id "
        "FROM generate_series(1, %s)) "
        "SELECT min(id), max(id), CASE WHEN max(id) - min(id) + 1 <> count(*) "
        "THEN array_agg(id ORDER BY id) END FROM taken",
        (table, n),
    ).fetchone()  # type: ignore[misc]
    return list(ids) if ids is not None else list(range(low, high + 1))


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
    names = ["id", *factory.column_names()]
    _copy(conn, factory._table, names, _render(rows, names))


def _copy(conn: psycopg.Connection, table: str, names: list[str], data: bytes) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        table_ident(table), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    with conn.cursor() as cur, cur.copy(statement) as copy:
        copy.write(data)


STABLE_DEFAULT = re.compile(
    r"^(now\(\)|CURRENT_TIMESTAMP|CURRENT_DATE|LOCALTIMESTAMP|"
    r"transaction_timestamp\(\)|true|false|-?[0-9.]+|'[^']*'(::[a-z ]+)?)"
    r"(::[a-z ]+)?$"
)
"""A default that is the same for every row of one transaction: a constant,
or the transaction's start time (``now()`` is fixed for the transaction)."""

CATALOG = """
SELECT a.attname,
       CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END,
       format_type(a.atttypid, a.atttypmod),
       EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = a.attrelid
               AND NOT g.tgisinternal AND g.tgtype & 7 = 7)
FROM pg_attribute a
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
"""Per column of a table: its default as an expression of the column's type
(``None`` for none or a generated column), and whether a BEFORE INSERT row
trigger (``tgtype`` bits ROW | BEFORE | INSERT) may change what was written."""


def _read_back(
    conn: psycopg.Connection,
    factory: type[SQLFactory],
    rows: list[Row],
    made: tuple[list[str], list[tuple[Any, ...]]] | None = None,
) -> list[Row]:
    """The rows as ``create()`` returns them: every column, FKs as ids, and
    what the database filled in (timestamps, other defaults): evaluated once
    when it is the same for the whole transaction (``now()``), read back
    otherwise, every column when a BEFORE INSERT trigger may change rows.

    ``made`` gives the rows as (column names, value tuples) instead (the
    column-wise path), so no row is built twice."""
    written = ["id", *factory.column_names()]
    catalog = conn.execute(CATALOG, (factory._table,)).fetchall()
    filled = [name for name, _, _, _ in catalog]
    missing = [c for c in filled if c not in written]
    defaults = {name: (expr, kind) for name, expr, kind, _ in catalog}
    triggered = bool(catalog) and catalog[0][3]
    if triggered:  # a BEFORE INSERT trigger may change any column: read all
        written, missing = ["id"], [c for c in filled if c != "id"]
    stored: Mapping[int, tuple[Any, ...]] = collections.defaultdict(tuple)
    if (
        missing
        and not triggered
        and all(STABLE_DEFAULT.match(defaults[c][0] or "") for c in missing)
    ):
        # every unwritten column took a default fixed for the transaction
        # (now(): created_at, updated_at) and no trigger changed the rows:
        # one evaluation gives every row's values, no read of 10,000 rows
        once = sql.SQL("SELECT {}").format(
            sql.SQL(", ").join(
                sql.SQL(f"({defaults[c][0]})::{defaults[c][1]}")  # type: ignore[misc]
                for c in missing
            )
        )
        same = conn.execute(once).fetchone() or ()
        stored = collections.defaultdict(lambda: same)
    elif missing:
        query = sql.SQL("SELECT id, {} FROM {} WHERE id = ANY(%s)").format(
            sql.SQL(", ").join(map(sql.Identifier, missing)),
            table_ident(factory._table),
        )
        ids = [row[0] for row in made[1]] if made else [row["id"] for row in rows]
        stored = {r[0]: r[1:] for r in conn.execute(query, (ids,))}
    items = [name for name, _ in factory._items()]
    order = [*filled, *items]
    # per row, only list work: values in (written, missing, items) order,
    # FKs given as a Ref written as its id, then placed in the table's order
    given = [*written, *missing, *items]
    place = [given.index(c) for c in order]
    fks = [i for i, c in enumerate(written) if rows and type(rows[0][c]) is Ref]
    out = []
    if made is not None:  # value tuples in made's column order; no items
        names, tuples = made
        pick = [names.index(c) for c in written]
        for made_row in tuples:
            values = [made_row[i] for i in pick]
            values += stored[values[0]]
            out.append(Row(zip(order, [values[i] for i in place], strict=True)))
        return out
    for row in rows:
        values = [row[c] for c in written]
        for i in fks:
            if type(values[i]) is Ref:
                values[i] = values[i].row["id"]
        values += stored[row["id"]]
        values += [row[name] for name in items]
        out.append(Row(zip(order, [values[i] for i in place], strict=True)))
    return out
