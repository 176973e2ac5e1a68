"""What generated domains call: value generators, parent keys, unique values.

A domain written by ``oltpseed introspect`` is plain Python that declares one
``Col`` per written column; each calls one of these functions with the
generation context ``g`` (its seeded random stream, ``as_of``, connection).
Values are ``str``, ``int``, ``Decimal``, ``bool``, ``date``/``datetime`` or
``None``: arrays, JSON, UUIDs, enums and tsvectors travel as PostgreSQL's own
text forms, so the seeder's COPY text path (and its worker processes) carries
every column, and ``INSERT`` lets the server cast them.

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

import json
import weakref
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from psycopg import sql

from pytest_oltpseed.data.factory import Context, Ref, Row, factory_for
from pytest_oltpseed.db import table_ident
from pytest_oltpseed.errors import OltpseedError

Key = tuple[Any, ...]
_STAGE_KEYS: dict[tuple[str, tuple[str, ...]], list[Key]] = {}
"""Parent keys loaded by the running seeding stage (inherited by its workers)."""
_CONTEXT_KEYS: weakref.WeakKeyDictionary[Context, dict[Any, list[Key]]] = (
    weakref.WeakKeyDictionary()
)
_CONTEXT_TAKEN: weakref.WeakKeyDictionary[Context, dict[Any, set[Key]]] = (
    weakref.WeakKeyDictionary()
)
"""The combinations a table of FK columns holds, per bound context."""
WORDS = (
    "alpha", "amber", "anchor", "aurora", "bamboo", "beacon", "breeze", "canyon",
    "cedar", "comet", "coral", "delta", "ember", "falcon", "fjord", "garnet",
    "harbor", "indigo", "jasper", "lagoon", "maple", "meadow", "nimbus", "oasis",
    "onyx", "orchid", "pebble", "prairie", "quartz", "raven", "river", "saffron",
    "sierra", "summit", "tundra", "velvet", "willow", "zephyr",
)  # fmt: skip
TLDS = ("com", "com.br", "net", "org", "io")
COUNTRIES = ("Brasil", "Portugal", "Argentina", "Chile", "Uruguai", "Paraguai",
             "Peru", "Colômbia", "México")  # fmt: skip


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
        _STAGE_KEYS.clear()
        for table, columns in self.parents:
            _STAGE_KEYS[(table, columns)] = load_keys(seeder.conn, table, columns)
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
    if g.conn is None and g.offline and (table, columns) not in _STAGE_KEYS:
        return [_built(g, table, columns)]
    if g.conn is None:
        keys = _STAGE_KEYS.get((table, columns))
        if keys is None:
            raise OltpseedError(f"keys of {table} were not loaded for this stage")
        return keys
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


def parent(
    g: Context, table: str, columns: tuple[str, ...], null_share: float = 0.0
) -> Key | None:
    """One parent key, uniformly; ``None`` (all FK columns NULL) at ``null_share``."""
    if null_share and g.rng.random() < null_share:
        return None
    keys = parent_keys(g, table, columns)
    if not keys:
        raise OltpseedError(
            f"{table} is empty: seed it first (its profile count is 0?)"
        )
    return keys[int(g.rng.random() * len(keys))]


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
            raise OltpseedError(
                f"{key}: more rows than distinct combinations of "
                + ", ".join(t for t, _ in parents)
            )
        flat = tuple(value for parent in chosen for value in parent)
        if taken is None or flat not in taken:
            if taken is not None:
                taken.add(flat)
            return tuple(chosen)


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


# -- values -----------------------------------------------------------------------
def maybe(g: Context, share: float, value: Any) -> Any:
    """``None`` at ``share`` for a nullable column (evaluated lazily by callers)."""
    return None if g.rng.random() < share else value


def fit(text: str, length: int | None) -> str:
    return text if length is None else text[:length]


def words(g: Context, low: int = 1, high: int = 4, length: int | None = None) -> str:
    n = g.randint(low, high)
    return fit(" ".join(g.choice(WORDS) for _ in range(n)).capitalize(), length)


def text(g: Context, length: int | None = None) -> str:
    return words(g, 2, 6, length)


def code(g: Context, length: int | None = None) -> str:
    """Short uppercase code (char(n) fields, SKUs, states)."""
    size = min(length or 6, 6)
    return "".join(chr(65 + g.randint(0, 25)) for _ in range(size))


def first_name(g: Context, length: int | None = None) -> str:
    return fit(g.choice(g.pools.first_names), length)


def last_name(g: Context, length: int | None = None) -> str:
    return fit(g.choice(g.pools.last_names), length)


def full_name(g: Context, length: int | None = None) -> str:
    return fit(g.person_name(), length)


def email(g: Context, length: int | None = None) -> str:
    user = f"{g.choice(WORDS)}.{g.choice(WORDS)}{g.randint(1, 9999)}"
    return fit(f"{user}@{g.choice(g.pools.email_domains)}", length)


def phone(g: Context, length: int | None = None) -> str:
    return fit(f"+55 {g.randint(11, 99)} 9{g.randint(1000, 9999)}-"
               f"{g.randint(1000, 9999)}", length)  # fmt: skip


def city(g: Context, length: int | None = None) -> str:
    return fit(g.choice(g.pools.cities)[0], length)


def state(g: Context, length: int | None = None) -> str:
    return fit(g.choice(g.pools.cities)[1], length)


def country(g: Context, length: int | None = None) -> str:
    return fit(g.choice(COUNTRIES), length)


def street(g: Context, length: int | None = None) -> str:
    return fit(f"{g.choice(g.pools.streets)}, {g.randint(1, 3999)}", length)


def district(g: Context, length: int | None = None) -> str:
    return fit(g.choice(g.pools.bairros), length)


def postal_code(g: Context, length: int | None = None) -> str:
    return fit(f"{g.randint(10000, 99999)}-{g.randint(0, 999):03d}", length)


def url(g: Context, length: int | None = None) -> str:
    return fit(f"https://{g.choice(WORDS)}.{g.choice(TLDS)}/{g.choice(WORDS)}", length)


def integer(g: Context, low: int = 0, high: int = 1000) -> int:
    return g.randint(low, high)


def number(
    g: Context, low: float, high: float, scale: int | None = 2
) -> Decimal | float:
    """A numeric in [low, high] with ``scale`` digits (``None``: a float)."""
    value = g.rng.uniform(low, high)
    if scale is None:
        return value
    quantum = Decimal(1).scaleb(-scale)
    fitted = Decimal(str(value)).quantize(quantum)
    return min(max(fitted, Decimal(str(low))), Decimal(str(high)))


def boolean(g: Context, true_share: float = 0.5) -> bool:
    return g.rng.random() < true_share


HISTORY = timedelta(days=730)


def moment(
    g: Context,
    ranges: Sequence[tuple[datetime, datetime]] = (),
    *,
    future: bool = False,
) -> datetime:
    """A time in the last two years before ``as_of`` (or the next 60 days), or
    inside one of ``ranges`` (a partitioned table's bounds, end excluded)."""
    if ranges:
        start, end = ranges[int(g.rng.random() * len(ranges))]
        return g.moment(start, end - timedelta(seconds=1))
    if future:
        return g.moment(g.as_of, g.as_of + timedelta(days=60))
    return g.moment(g.as_of - HISTORY, g.as_of)


def day(g: Context, ranges: Sequence[tuple[datetime, datetime]] = ()) -> date:
    return moment(g, ranges).date()


def birth_date(g: Context) -> date:
    today = g.as_of.date()
    return g.day(today - timedelta(days=90 * 365), today - timedelta(days=18 * 365))


def clock(g: Context) -> time:
    return time(g.randint(0, 23), g.randint(0, 59), g.randint(0, 59))


def interval(g: Context) -> str:
    return f"{g.randint(0, 30)} days {g.randint(0, 23)} hours"


def uuid(g: Context) -> str:
    """A version-4 UUID from the seeded stream (same seed, same UUIDs)."""
    bits = g.rng.getrandbits(128)
    bits = (bits & ~(0xF << 76)) | (4 << 76)
    bits = (bits & ~(0x3 << 62)) | (0x2 << 62)
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def document(g: Context) -> str:
    """A small JSON object (json/jsonb columns)."""
    return json.dumps(
        {"source": "oltpseed", "tag": g.choice(WORDS), "score": g.randint(0, 100)}
    )


def tsvector(g: Context) -> str:
    return " ".join(f"'{g.choice(WORDS)}':{i}" for i in range(1, g.randint(2, 5) + 1))


def inet(g: Context) -> str:
    return f"10.{g.randint(0, 255)}.{g.randint(0, 255)}.{g.randint(1, 254)}"


def bytes_(g: Context) -> str:
    return "\\x" + "".join(f"{g.randint(0, 255):02x}" for _ in range(8))


def label(g: Context, labels: Sequence[Any]) -> Any:
    return labels[int(g.rng.random() * len(labels))]


def array(g: Context, make: Any, low: int = 0, high: int = 3) -> str:
    """A PostgreSQL array literal of ``make(g)`` values (distinct, quoted)."""
    values: dict[str, None] = {}
    for _ in range(g.randint(low, high)):
        values.setdefault(str(make(g)), None)
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"


# -- unique by construction ------------------------------------------------------------
def unique_int(g: Context, domain: str, key: str, low: int = 1) -> int:
    return low + g.next_index(domain, key)


def unique_text(
    g: Context, domain: str, key: str, length: int | None, make: Any = None
) -> str:
    """A readable value made unique by its index suffix (never by retrying)."""
    n = g.next_index(domain, key)
    suffix = f"-{n:x}"
    if length is not None and len(suffix) > length:
        return _packed(n, length, key)
    head = str(make(g)) if make else g.choice(WORDS)
    if length is not None:
        head = head[: max(0, length - len(suffix))]
    if "@" in head:  # an e-mail stays one: the suffix goes before the domain
        user, _, host = head.partition("@")
        return fit(f"{user}{suffix}@{host}", length)
    return f"{head}{suffix}"


_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _packed(n: int, length: int, key: str) -> str:
    """``n`` in base 36, ``length`` characters, for a short key (``char(3)``)
    once ``-<hex>`` no longer fits: it has no ``-``, so it never equals a
    value of the readable form."""
    if n >= 36**length:
        raise OltpseedError(
            f"{key}: more than {36**length:,} unique values do not fit in "
            f"{length} characters (lower the profile's count)"
        )
    digits = ""
    for _ in range(length):
        n, digit = divmod(n, 36)
        digits = _DIGITS[digit] + digits
    return digits


def unique_moment(
    g: Context,
    domain: str,
    key: str,
    ranges: Sequence[tuple[datetime, datetime]] = (),
) -> datetime:
    """Distinct times, one second apart from a start inside the allowed range."""
    start = ranges[0][0] if ranges else g.as_of - HISTORY
    return start + timedelta(seconds=g.next_index(domain, key))


def unique_uuid(g: Context, domain: str, key: str) -> str:
    n = g.next_index(domain, key)
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def optional_parent(
    g: Context, table: str, columns: tuple[str, ...], null_share: float = 0.0
) -> Key | None:
    """A parent key, or ``None`` while the parent has no rows yet: a
    self-reference (the first rows are roots) or an FK that closes a cycle."""
    if null_share and g.rng.random() < null_share:
        return None
    if g.conn is None:
        keys = _STAGE_KEYS.get((table, columns)) or []
    else:
        keys = _CONTEXT_KEYS.setdefault(g, {}).get((table, columns)) or []
        if not keys:
            keys = load_keys(_key_conn(g), table, columns)
            _CONTEXT_KEYS[g][(table, columns)] = keys
    return keys[int(g.rng.random() * len(keys))] if keys else None


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


def after(g: Context, early: Any, strict: bool, make: Any) -> Any:
    """A value at or after ``early`` (an end date after its start: ``CHECK
    (enddate >= startdate)``), up to 30 days later; with ``early`` NULL, the
    column's own generator ``make``."""
    if early is None:
        return make(g)
    if isinstance(early, datetime):
        step = timedelta(seconds=g.randint(1 if strict else 0, 30 * 86400))
        return early + step
    if isinstance(early, date):
        return early + timedelta(days=g.randint(1 if strict else 0, 30))
    if isinstance(early, Decimal | int | float):
        return early + g.randint(1 if strict else 0, 100)
    return make(g)
