"""What generated domains run on: parent keys, stage hooks, stream events.

A domain written by ``oltpseed introspect`` declares one ``Col`` per written
column, each a generator of :mod:`pytest_oltpseed.introspect.vocabulary`
(the column vocabulary of every domain); those generators read parent keys
and identifier indices through this module. Values are ``str``, ``int``,
``Decimal``, ``bool``, ``date``/``datetime`` or ``None``: arrays, JSON,
UUIDs, enums and tsvectors travel as PostgreSQL's own text forms, so the
seeder's COPY text (column-wise or a row at a time, in worker processes or
not) carries every column, and ``INSERT`` lets the server cast them.

Foreign keys are not ``Parent`` declarations (those assume a parent ``id``):
an FK's columns take one parent key tuple, picked uniformly among the
parent's keys. The seeder loads those keys once per stage
(:class:`LoadParents`, the domain's stage hook) before it forks workers;
factories bound to a connection (``oltp_factories``, the stream) load them on
first use, and create a parent when there is none.

A stream reads keys on its autocommit reservation connection, so it only
ever learns *committed* keys: a key read inside an open batch could be a row
that the batch then rolls back (a soft error replays the batch from its
journal, where the server hands out new serials), and a child written with
it would be an orphan wherever no FK stops it (Pagila's later payment
partitions have none). For the same reason a stream never makes a parent on
demand: with no committed parent the event is not applicable yet.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from psycopg import sql

from pytest_oltpseed.data.factory import Context, Ref, Row, factory_for
from pytest_oltpseed.db import table_ident
from pytest_oltpseed.errors import OltpseedError

Key = tuple[Any, ...]
_STAGE_KEYS: dict[tuple[str, tuple[str, ...]], list[Key]] = {}
"""Parent keys loaded by the running seeding stages (inherited by their workers).

Never cleared while seeding: stages run at once on lanes (threads), and one
stage's start must not drop the keys another is picking from. Each stage
reloads its own parents' entries; a parent table is complete before any
stage that references it starts, so a reload holds the same keys."""
_CONTEXT_KEYS: weakref.WeakKeyDictionary[Context, dict[Any, list[Key]]] = (
    weakref.WeakKeyDictionary()
)
_CONTEXT_TAKEN: weakref.WeakKeyDictionary[Context, dict[Any, set[Key]]] = (
    weakref.WeakKeyDictionary()
)
"""The combinations a table of FK columns holds, per bound context."""


def _keys(table: str, columns: Sequence[str], rows: Any) -> list[Key]:
    return sorted((tuple(r) for r in rows), key=lambda k: tuple(map(str, k)))


def load_keys(conn: Any, table: str, columns: Sequence[str]) -> list[Key]:
    """Every key of ``table`` (its FK target columns), in a stable order."""
    query = sql.SQL("SELECT DISTINCT {} FROM {} WHERE {}").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        table_ident(table),
        sql.SQL(" AND ").join(
            sql.SQL("{} IS NOT NULL").format(sql.Identifier(c)) for c in columns
        ),
    )
    return _keys(table, columns, conn.execute(query).fetchall())


Fixup = tuple[str, tuple[str, ...], tuple[str, ...]]
"""(child table, its FK columns, this table's key columns): an FK that closes
a cycle, written NULL by the child's stage, filled once this table has rows."""


class LoadParents:
    """Stage hook of every generated table: load its parents' keys, then let
    the seeder generate rows in chunks (in workers for large stages); after
    the rows, fill the FKs of earlier tables that point here (a cycle)."""

    def __init__(
        self,
        parents: Sequence[tuple[str, tuple[str, ...]]],
        fixups: Sequence[Fixup] = (),
    ) -> None:
        self.parents = tuple(parents)
        self.fixups = tuple(fixups)

    def finish(self, seeder: Any, stage: Any) -> None:
        """``UPDATE`` the NULL FKs that close a cycle, deterministically: the
        child rows in key order take this table's keys in a fixed stride."""
        for child, columns, key in self.fixups:
            keys = load_keys(seeder.conn, stage.table, key)
            if not keys:
                continue
            rows = seeder.conn.execute(
                sql.SQL("SELECT ctid::text FROM {} WHERE {} ORDER BY ctid").format(
                    table_ident(child),
                    sql.SQL(" AND ").join(
                        sql.SQL("{} IS NULL").format(sql.Identifier(c)) for c in columns
                    ),
                )
            ).fetchall()
            update = sql.SQL(
                "UPDATE {} SET ({}) = ROW({}) WHERE ctid = %s::tid"
            ).format(
                table_ident(child),
                sql.SQL(", ").join(map(sql.Identifier, columns)),
                sql.SQL(", ").join(sql.Placeholder() * len(columns)),
            )
            with seeder.conn.cursor() as cur:
                cur.executemany(
                    update,
                    [
                        (*keys[(n * 7919) % len(keys)], ctid)
                        for n, (ctid,) in enumerate(rows)
                    ],
                )

    def plan(self, seeder: Any, stage: Any) -> tuple[dict[str, Any], int]:
        _STAGE_KEYS.update(
            {
                (table, columns): load_keys(seeder.conn, table, columns)
                for table, columns in self.parents
            }
        )
        return {}, stage.count


class BuiltKey(tuple[Any, ...]):
    """The key of a parent built in memory (``build()`` with no database):
    its values where the parent's own columns hold them, and the built row,
    for a key the database would assign (a serial)."""

    table: str
    row: Row

    @classmethod
    def of(cls, table: str, columns: tuple[str, ...], row: Row) -> BuiltKey:
        key = cls(row.get(c) for c in columns)
        key.table, key.row = table, row
        return key


def _built(g: Context, table: str, columns: tuple[str, ...]) -> BuiltKey:
    """A new parent of ``table``, built (not inserted), as its key."""
    return BuiltKey.of(table, columns, factory_for(table).make_row(g))


def _key_conn(g: Context) -> Any:
    """Where a bound context reads keys: a stream's autocommit reservation
    connection (committed rows only, see the module doc), else its own."""
    return g.reserve_conn or g.conn


def parent_keys(g: Context, table: str, columns: tuple[str, ...]) -> list[Key]:
    """The keys a row of a child picks its parent from: the stage's (seeding),
    a new parent built in memory (no database: ``build()``, strategies), or
    the committed keys read once through a bound connection."""
    if g.conn is None and g.offline:
        return [_built(g, table, columns)]
    if g.conn is None:
        return stage_keys(table, columns)
    cached = _CONTEXT_KEYS.setdefault(g, {})
    keys = cached.get((table, columns))
    if not keys:
        keys = cached[(table, columns)] = load_keys(_key_conn(g), table, columns)
    if not keys and g.reserve_conn is not None:
        from pytest_oltpseed.stream.events import NotApplicable

        raise NotApplicable  # a stream: only once a parent row is committed
    if not keys:  # a parent made on demand, as Parent() does for built-in domains
        parent = factory_for(table)
        made = parent.write(g, parent.make_row(g, create=True))
        keys.append(tuple(made[c] for c in columns))
    return keys


def combination(
    g: Context,
    domain: str,
    key: str,
    parents: Sequence[tuple[str, tuple[str, ...]]],
    child: tuple[str, tuple[str, ...]] | None = None,
) -> tuple[Key, ...]:
    """Distinct parent keys for a UNIQUE made only of FK columns (film_actor):
    the n-th row takes the n-th combination in mixed radix, so rows are unique
    by construction while n stays below the product of the parents' counts.

    A bound context (the stream, ``oltp_factories``) sees other parent counts
    than the seeder did, so its n-th combination may be one the seed wrote:
    it reads the ``child`` table's combinations once and passes over those
    (known in advance, not found by a failed insert); a stream with every
    combination taken draws another event."""
    if g.conn is None and g.offline:  # new parents: a new combination
        g.next_index(domain, key)
        return tuple(_built(g, table, columns) for table, columns in parents)
    taken = _taken(g, child) if child is not None and g.conn is not None else None
    while True:
        n = g.next_index(domain, key)
        chosen = []
        for table, columns in parents:
            keys = parent_keys(g, table, columns)
            chosen.append(keys[n % len(keys)])
            n //= len(keys)
        if n and g.reserve_conn is not None:
            from pytest_oltpseed.stream.events import NotApplicable

            raise NotApplicable  # a stream: every pair is taken, insert others
        if n:
            raise too_many(key, parents)
        flat = tuple(value for parent in chosen for value in parent)
        if taken is None or flat not in taken:
            if taken is not None:
                taken.add(flat)
            return tuple(chosen)


def too_many(key: str, parents: Sequence[tuple[str, tuple[str, ...]]]) -> OltpseedError:
    return OltpseedError(
        f"{key}: more rows than distinct combinations of "
        + ", ".join(t for t, _ in parents)
    )


def _taken(g: Context, child: tuple[str, tuple[str, ...]]) -> set[Key]:
    """The combinations ``child`` holds (its FK columns' values), read once."""
    cached = _CONTEXT_TAKEN.setdefault(g, {})
    found = cached.get(child)
    if found is None:
        table, columns = child
        found = cached[child] = set(load_keys(_key_conn(g), table, columns))
    return found


def at(key: Key | None, i: int) -> Any:
    """Column ``i`` of a parent key; of a built parent whose key the database
    would assign, a :class:`Ref` to that row (as built-in domains' FKs)."""
    if key is None:
        return None
    if key[i] is None and isinstance(key, BuiltKey):
        return Ref(key.table, key.row)
    return key[i]


def optional_keys(g: Context, table: str, columns: tuple[str, ...]) -> list[Key]:
    """The keys of a parent that may have no rows yet (a self-reference: the
    first rows are roots; an FK that closes a cycle): empty rather than an
    error, and never a parent made on demand."""
    if g.conn is None:
        return _STAGE_KEYS.get((table, columns)) or []
    cached = _CONTEXT_KEYS.setdefault(g, {})
    keys = cached.get((table, columns))
    if not keys:
        keys = cached[(table, columns)] = load_keys(_key_conn(g), table, columns)
    return keys


def stage_keys(
    table: str, columns: tuple[str, ...], optional: bool = False
) -> list[Key]:
    """The keys the running seeding stage loaded (:class:`LoadParents`): what
    a column-wise chunk picks from, as one row does through :func:`parent_keys`."""
    keys = _STAGE_KEYS.get((table, columns))
    if keys is None:
        if optional:
            return []
        raise OltpseedError(f"keys of {table} were not loaded for this stage")
    return keys


# -- stream events ---------------------------------------------------------------------
class _Nothing:
    """The row seen by a column generator during an update: none of its columns
    is needed (updated columns are never FK or unique ones)."""

    def __getattr__(self, name: str) -> Any:
        return None


def _where(key: Sequence[str]) -> sql.Composable:
    return sql.SQL(" AND ").join(
        sql.SQL("{} = %s").format(sql.Identifier(c)) for c in key
    )


def _returning(key: Sequence[str]) -> sql.Composable:
    """``RETURNING`` the row's key (all of it when composite; every column when
    the table has none), which names the changed rows in ``--changes``."""
    if not key:
        return sql.SQL(" RETURNING *")
    return sql.SQL(" RETURNING {}").format(sql.SQL(", ").join(map(sql.Identifier, key)))


def insert(ctx: Any, factory: Any, key: Sequence[str] = ()) -> None:
    """A new row of ``factory``'s table, parents picked among existing ones."""
    row = factory.make_row(ctx, create=True)
    values = factory.columns(row)
    table = table_ident(factory._table)
    if values:
        query = sql.SQL("INSERT INTO {} ({}) VALUES ({}){}").format(
            table,
            sql.SQL(", ").join(map(sql.Identifier, values)),
            sql.SQL(", ").join(sql.Placeholder() * len(values)),
            _returning(key),
        )
    else:
        query = sql.SQL("INSERT INTO {} DEFAULT VALUES{}").format(
            table, _returning(key)
        )
    ctx.execute(
        factory._table, "insert", query.as_string(ctx.conn), list(values.values())
    )


def update(
    ctx: Any, factory: Any, key: tuple[str, ...], columns: Sequence[str]
) -> None:
    """One non-key column of an existing row gets a new value from its generator."""
    from pytest_oltpseed.stream.events import NotApplicable

    keys = parent_keys_or_none(ctx, factory._table, key)
    if not keys:
        raise NotApplicable
    chosen = keys[int(ctx.rng.random() * len(keys))]
    column = columns[int(ctx.rng.random() * len(columns))]
    declaration = dict(factory._declarations())[column]
    value = declaration.fn(ctx, _Nothing())
    query = sql.SQL("UPDATE {} SET {} = %s WHERE {}{}").format(
        table_ident(factory._table),
        sql.Identifier(column),
        _where(key),
        _returning(key),
    )
    ctx.execute(factory._table, "update", query.as_string(ctx.conn), [value, *chosen])


def delete(ctx: Any, table: str, key: tuple[str, ...]) -> None:
    """A row that no FK references (the table is nobody's parent) goes away."""
    from pytest_oltpseed.stream.events import NotApplicable

    keys = parent_keys_or_none(ctx, table, key)
    if not keys:
        raise NotApplicable
    chosen = keys.pop(int(ctx.rng.random() * len(keys)))
    query = sql.SQL("DELETE FROM {} WHERE {}{}").format(
        table_ident(table), _where(key), _returning(key)
    )
    ctx.execute(table, "delete", query.as_string(ctx.conn), list(chosen))


def parent_keys_or_none(ctx: Any, table: str, key: tuple[str, ...]) -> list[Key]:
    """The keys of ``table`` cached on the stream's context (loaded once)."""
    cached = _CONTEXT_KEYS.setdefault(ctx, {})
    if (table, key) not in cached:
        cached[(table, key)] = load_keys(_key_conn(ctx), table, key)
    return cached[(table, key)]
