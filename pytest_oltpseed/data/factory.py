"""SQLFactory: factory_boy factories whose declarations are the only column definitions.

Each column of each table is declared once, as a :class:`Col` (a function of
a :class:`Gen` and the row built so far) or a :class:`Parent` (an FK). Two
paths use those declarations:

* factory_boy's ``build()``/``create()`` (``create`` inserts with
  ``INSERT ... RETURNING *`` and returns the row as a :class:`Row`);
* :meth:`SQLFactory.make_row`, which evaluates the same declarations directly,
  without factory_boy's per-object machinery, for bulk COPY.

Both draw from the same seeded random stream in the same order, so for one
seed they produce the same rows. Values come from pools built once per seed
from Faker pt_BR (Faker costs 5-15 us a call; a pool pick well under 1 us),
and unique identifiers from per-domain index sequences mapped bijectively onto
CPF/CNPJ/CRM (see :mod:`pytest_oltpseed.data.brazil`), so uniqueness never relies
on retrying.

The connection and the seed are bound with :func:`bind` (a context variable,
never a module global), which the plugin, the seeder and the stream all use.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import random
import tempfile
import unicodedata
from bisect import bisect
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cached_property, lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Any, ClassVar

import factory
import factory.random
import psycopg
from factory import enums
from psycopg import sql
from psycopg.rows import dict_row

from pytest_oltpseed.data import indices
from pytest_oltpseed.errors import OltpseedError
from pytest_oltpseed.profiles import DEFAULT_AS_OF

_current: contextvars.ContextVar[Context] = contextvars.ContextVar("oltpseed_context")
_FACTORIES: dict[str, dict[str, type[SQLFactory]]] = {}
"""table -> domain -> factory: two domains may name a table alike."""
ROW_CACHE = 20_000  # parent rows kept for lookups by id (LRU): bounded for long runs
PREFER_TRIES = 8  # extra picks for a preferred parent (Parent(prefer=...))
ID_BLOCK = 64  # ids taken from a table's sequence at once when allocating


class Row(dict[str, Any]):
    """A row: a dict of column -> value that also allows ``row.column``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class _Attrs:
    """Attribute view of a row being built, as factory_boy's resolver offers.

    A :class:`Row` would not do: ``row.items`` is ``dict.items``.
    """

    __slots__ = ("_row",)

    def __init__(self, row: Mapping[str, Any]) -> None:
        self._row = row

    def __getattr__(self, name: str) -> Any:
        try:
            return self._row[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(eq=False, slots=True)
class Ref:
    """A reference to a parent row; written as the parent's id.

    It keeps the parent's values at hand so children can follow its rules
    (an event never precedes its patient's ``data_cadastro``).
    """

    table: str
    row: Mapping[str, Any]

    @property
    def id(self) -> int:
        return int(self.row["id"])


def ref_id(value: Any) -> Any:
    """The id to write for an FK value given as a Ref, a row or an id."""
    if isinstance(value, Ref):
        return value.id
    if isinstance(value, Mapping):
        return value["id"]
    return value


@dataclass(frozen=True, slots=True)
class Statement:
    """One write as executed: enough to count it and to run it again unchanged.

    ``counts`` are the (table, operation) pairs it changes; ``rows`` is its
    row count when known in advance (an insert), else the cursor's says it.
    ``keys`` are the ids it inserts, when known in advance; otherwise the
    statement's ``RETURNING`` gives, per pair of ``counts``, one id column.
    """

    query: str
    params: Any
    counts: tuple[tuple[str, str], ...]
    rows: int | None = None
    keys: tuple[Any, ...] | None = None


@dataclass(frozen=True, slots=True)
class Returning:
    """The keys a write changed, from its ``RETURNING`` rows: column ``column``
    as the ``id``, or (``column`` None: a statement counted once) every
    returned column, so a composite key (or a table's chosen key columns
    when it has no primary key) is returned whole."""

    cursor: Any
    column: int | None


POOL_SIZES = (
    ("first_names", "first_name", 400),
    ("last_names", "last_name", 200),
    ("streets", "street_name", 800),
    ("bairros", "bairro", 300),
)
"""The Faker-built pools (name, Faker method, size), in the one order they are
drawn (see :class:`Pools`)."""
POOLS_FORMAT = 1  # bump when the pools' construction changes


class Pools:
    """Realistic pt_BR values drawn once from a seeded Faker, then picked from.

    The pools are drawn in one fixed order (:data:`POOL_SIZES`), all at once:
    drawn lazily, each pool's values depended on which pool a run touched
    first (retail's suppliers or hospital's doctors), so one table's rows
    depended on the other domains seeded before it in the same process.

    Making them costs ~0.1 s of Faker (its pt_BR locale, then ~1,700 calls):
    they are kept on disk under the oltpseed home (:func:`pools_cache`), keyed
    by Faker's version, the seed and :data:`POOLS_FORMAT`, and read back in
    well under a millisecond on the next start.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        values = _read_pools(seed)
        if values is None:
            values = self._draw()
            _write_pools(seed, values)
        self.first_names, self.last_names, self.streets, self.bairros = (
            values[name] for name, _, _ in POOL_SIZES
        )

    def _draw(self) -> dict[str, tuple[str, ...]]:
        from faker import Faker

        faker = Faker("pt_BR")
        faker.seed_instance(self.seed)
        return {
            name: _unique(getattr(faker, method), size)
            for name, method, size in POOL_SIZES
        }

    cities: tuple[tuple[str, str], ...] = (
        ("São Paulo", "SP"), ("Rio de Janeiro", "RJ"), ("Belo Horizonte", "MG"),
        ("Salvador", "BA"), ("Fortaleza", "CE"), ("Brasília", "DF"),
        ("Curitiba", "PR"), ("Recife", "PE"), ("Porto Alegre", "RS"),
        ("Manaus", "AM"), ("Belém", "PA"), ("Goiânia", "GO"), ("Campinas", "SP"),
        ("São Luís", "MA"), ("Maceió", "AL"), ("Natal", "RN"), ("Teresina", "PI"),
        ("João Pessoa", "PB"), ("Campo Grande", "MS"), ("Cuiabá", "MT"),
        ("Florianópolis", "SC"), ("Vitória", "ES"), ("Aracaju", "SE"),
        ("Porto Velho", "RO"), ("Macapá", "AP"), ("Boa Vista", "RR"),
        ("Rio Branco", "AC"), ("Palmas", "TO"), ("Guarulhos", "SP"),
        ("São Gonçalo", "RJ"), ("Duque de Caxias", "RJ"), ("Nova Iguaçu", "RJ"),
        ("Santo André", "SP"), ("Osasco", "SP"), ("Ribeirão Preto", "SP"),
        ("Sorocaba", "SP"), ("Uberlândia", "MG"), ("Contagem", "MG"),
        ("Juiz de Fora", "MG"), ("Joinville", "SC"), ("Londrina", "PR"),
        ("Caxias do Sul", "RS"), ("Feira de Santana", "BA"), ("Niterói", "RJ"),
        ("Santos", "SP"), ("Jaboatão dos Guararapes", "PE"), ("Olinda", "PE"),
        ("Campina Grande", "PB"), ("Maringá", "PR"), ("Blumenau", "SC"),
    )  # fmt: skip

    @cached_property
    def email_domains(self) -> tuple[str, ...]:
        return ("gmail.com", "hotmail.com", "outlook.com", "yahoo.com.br",
                "uol.com.br", "bol.com.br", "terra.com.br", "icloud.com")  # fmt: skip


def _unique(make: Callable[[], str], size: int) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for _ in range(size * 3):
        seen.setdefault(make(), None)
        if len(seen) >= size:
            break
    return tuple(seen)


def pools_cache() -> Path:
    """Where drawn pools are kept: ``$OLTPSEED_HOME/cache`` when the home is
    set, else the user's cache directory (``$XDG_CACHE_HOME/oltpseed``)."""
    home = os.environ.get("OLTPSEED_HOME")
    if home:
        return Path(home).expanduser() / "cache"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "oltpseed"


def _pools_file(seed: int) -> Path:
    import faker  # already loaded by factory_boy

    name = f"pools-faker{faker.VERSION}-v{POOLS_FORMAT}-seed{seed}.json"
    return pools_cache() / name


def _read_pools(seed: int) -> dict[str, tuple[str, ...]] | None:
    """The cached pools of ``seed``; None when absent or not as written."""
    try:
        data = json.loads(_pools_file(seed).read_text(encoding="utf-8"))
        values = {name: tuple(data[name]) for name, _, _ in POOL_SIZES}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    ok = all(
        0 < len(pool) <= size and all(type(v) is str for v in pool)
        for (_, _, size), pool in zip(POOL_SIZES, values.values(), strict=True)
    )
    return values if ok else None


def _write_pools(seed: int, values: dict[str, tuple[str, ...]]) -> None:
    """Keep the pools for the next start; a cache that cannot be written is
    only slower, never an error (renamed into place: readers never see half)."""
    target = _pools_file(seed)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".pools-")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(values, handle, ensure_ascii=False)
        os.replace(temp, target)
    except OSError:
        with contextlib.suppress(OSError, UnboundLocalError):
            os.unlink(temp)


@lru_cache(maxsize=8)
def pools(seed: int) -> Pools:
    """Pools are immutable once built: share them between contexts of one seed."""
    return Pools(seed)


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


class Context:
    """What a generation run shares: connection, seed, "now", index sequences.

    ``sequences="reserve"`` takes identifier indices from the key's
    PostgreSQL sequence (``oltpseed_<domain>_idx_<key>``, see
    :mod:`pytest_oltpseed.data.indices`), so factories, the stream and a
    previous seeding never hand out the same CPF twice; ``"local"`` counts
    from ``index_base`` in memory (the seeder, whose reruns must repeat their
    identifiers to stay idempotent, and generation without a database).

    ``allocate_ids`` takes primary keys from each table's sequence in blocks
    and inserts without ``RETURNING``, so a writer in pipeline mode never
    waits for a round trip per row (the stream). When ``ledger`` is a list,
    every write appends ``(table, op, rows)`` to it, ``rows`` being a count
    or the cursor whose ``rowcount`` says it once the results are in. When
    ``keyed`` is a list too (``stream --changes``), it gets, entry for entry,
    the ids of the rows each write changed: a tuple, or a :class:`Returning`
    whose rows hold them (see :func:`changed_keys`).
    """

    def __init__(
        self,
        conn: psycopg.Connection | None = None,
        *,
        seed: int = 0,
        as_of: datetime = DEFAULT_AS_OF,
        reuse_parents: bool = False,
        sequences: str = "reserve",
        index_base: int = 0,
        pool_seed: int | None = None,
        allocate_ids: bool = False,
        ledger: list[tuple[str, str, Any]] | None = None,
    ) -> None:
        if sequences not in ("reserve", "local"):
            raise ValueError(
                f"sequences must be 'reserve' or 'local', not {sequences!r}"
            )
        self.conn = conn
        self.seed = seed
        self.as_of = as_of
        self.reuse_parents = reuse_parents
        self.sequences = sequences if conn is not None else "local"
        self.rng = random.Random(seed)
        self.pools = pools(seed if pool_seed is None else pool_seed)
        self.index_base = index_base
        self.reserve_block = 1
        self._local: dict[tuple[str, str], int] = {}
        self._blocks: dict[tuple[str, str], list[int]] = {}
        self._id_range: dict[str, tuple[int, int]] = {}
        self._rows: OrderedDict[tuple[str, int], Mapping[str, Any]] = OrderedDict()
        self.allocate_ids = allocate_ids
        self._ids: dict[str, list[int]] = {}
        self.ledger = ledger
        self.keyed: list[Any] | None = None
        self.reserve_conn: psycopg.Connection | None = None
        # The writes of the current stream event, to replay them exactly.
        self.journal: list[Statement] | None = None
        # Derived state a domain may keep between writes (the stream's stock
        # tally); ``None`` means "always ask the database".
        self.state: dict[str, Any] | None = None

    # -- identifiers -----------------------------------------------------------
    def next_index(self, domain: str, key: str, *, fresh: bool = False) -> int:
        """The next unused index of ``key`` (e.g. ``pacientes.cpf``) in ``domain``.

        ``fresh`` keys (numbers that are not natural keys, such as invoice
        numbers) are always reserved from the database when one is bound, so
        even a seeder's rerun never repeats them.
        """
        if self.sequences == "local" and not (fresh and self.conn is not None):
            index = self._local.get((domain, key), self.index_base)
            self._local[(domain, key)] = index + 1
            return index
        block = self._blocks.get((domain, key))
        if not block:
            block = self._blocks[(domain, key)] = self._reserve(domain, key)
        return block.pop()

    def _reserve(self, domain: str, key: str) -> list[int]:
        """Take ``reserve_block`` indices at once from the key's sequence
        (:mod:`pytest_oltpseed.data.indices`), in the order to hand them out.

        ``nextval`` survives a rollback of the work that used it: an index
        that collided is never handed out again. A ``reserve_conn``
        (autocommit) keeps even a sequence's creation out of that work.
        """
        conn = self.reserve_conn or self.conn
        assert conn is not None
        return indices.reserve(conn, domain, key, self.reserve_block)[::-1]

    def note_index(self, key: tuple[str, str], next_index: int) -> None:
        """Record that indices below ``next_index`` of ``key`` were used elsewhere."""
        self._local[key] = max(self._local.get(key, 0), next_index)

    def local_indices(self) -> list[tuple[tuple[str, str], int]]:
        """((domain, key), next index) counted in memory so far."""
        return list(self._local.items())

    # -- parents -----------------------------------------------------------------
    def parent(self, value: Any, table: str | None = None) -> Mapping[str, Any]:
        """The parent row behind an FK value (a Ref, a row, or an id to look up)."""
        if isinstance(value, Ref):
            return value.row
        if isinstance(value, Mapping):
            return value
        if table is None or self.conn is None:
            raise OltpseedError(
                f"cannot look up {table} id {value}: no connection bound"
            )
        key = (table, int(value))
        cached = self._rows.get(key)
        if cached is not None:
            self._rows.move_to_end(key)
            return cached
        with self.conn.cursor(row_factory=dict_row) as cur:
            found = cur.execute(
                sql.SQL("SELECT * FROM {} WHERE id = %s").format(sql.Identifier(table)),
                (value,),
            ).fetchone()
        if found is None:
            raise OltpseedError(f"{table} has no row with id {value}")
        self.remember(table, Row(found))
        return self._rows[key]

    def remember(self, table: str, row: Mapping[str, Any]) -> None:
        """Keep ``row`` for lookups by id (least recently used rows go first).

        Rows of tables keyed otherwise (a generated domain's ``film_id``,
        composite keys) are not kept: nothing looks them up by id.
        """
        key = row.get("id")
        if not isinstance(key, int):
            return
        self._rows[(table, key)] = row
        if len(self._rows) > ROW_CACHE:
            self._rows.popitem(last=False)

    # -- writes ------------------------------------------------------------------
    def insert(self, table: str, values: Mapping[str, Any]) -> Mapping[str, Any]:
        """Insert one row; returns what to merge into it (at least its id)."""
        assert self.conn is not None
        written: Mapping[str, Any]
        if not self.allocate_ids:
            written = insert(self.conn, table, values)
            # a generated domain's table may be keyed otherwise (film_id, ...)
            key = (written["id"],) if "id" in written else tuple(written.values())
            self.count(table, "insert", 1, key)
        else:
            written = {"id": self._next_id(table), **values}
            query = _insert_query(table, tuple(written))
            self.apply(
                Statement(
                    query,
                    list(written.values()),
                    ((table, "insert"),),
                    1,
                    (written["id"],),
                )
            )
        self.remember(table, written)
        return written

    def insert_many(
        self, table: str, rows: Sequence[Mapping[str, Any]]
    ) -> list[Mapping[str, Any]]:
        """Insert rows of one table (a header's items); with allocated ids in one
        multi-row statement, otherwise one ``RETURNING`` insert each (the order
        of a multi-row ``RETURNING`` is not guaranteed)."""
        names = tuple(rows[0]) if rows else ()
        if (
            not self.allocate_ids
            or len(rows) < 2
            or any(tuple(r) != names for r in rows)
        ):
            return [self.insert(table, row) for row in rows]
        written: list[Mapping[str, Any]] = [
            {"id": self._next_id(table), **row} for row in rows
        ]
        query = _insert_query(table, ("id", *names), len(written))
        values = [v for row in written for v in row.values()]
        ids = tuple(row["id"] for row in written)
        self.apply(Statement(query, values, ((table, "insert"),), len(written), ids))
        for row in written:
            self.remember(table, row)
        return written

    def _next_id(self, table: str) -> int:
        free = self._ids.get(table)
        if not free:
            # nextval ignores transactions: on the reservation connection it
            # is the same, and a pipelined batch need not stop to wait for it.
            conn = self.reserve_conn or self.conn
            assert conn is not None
            rows = conn.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) "
                "FROM generate_series(1, %s)",
                (table, ID_BLOCK),
            ).fetchall()
            free = self._ids[table] = [int(r[0]) for r in reversed(rows)]
        return free.pop()

    def count(self, table: str, op: str, rows: Any, keys: Any = None) -> None:
        """Record a write for the ledger: a row count, or the cursor that knows
        it; and, when ``keyed``, which rows (see the class doc)."""
        if self.ledger is not None:
            self.ledger.append((table, op, rows))
            if self.keyed is not None:
                self.keyed.append(keys)

    def execute(
        self,
        table: str,
        op: str,
        query: str,
        params: Any = None,
        *,
        also: Sequence[tuple[str, str]] = (),
    ) -> psycopg.Cursor[Any]:
        """Run an UPDATE/DELETE of ``table`` and record its row count (and, for
        ``also``'s (table, op) pairs, the same count: a CTE deleting one item
        per header it updates).

        When the changed keys are kept (``keyed``), a statement without
        ``RETURNING`` gets ``RETURNING id``; one with ``also`` must return,
        itself, one id column per (table, op) pair, in order.
        """
        if self.keyed is not None and not also and "returning" not in query.lower():
            query = f"{query.rstrip()} RETURNING id"
        return self.apply(Statement(query, params, ((table, op), *also)))

    def apply(self, statement: Statement) -> psycopg.Cursor[Any]:
        """Execute a write, count it in the ledger, note it in the journal."""
        assert self.conn is not None
        cursor = self.conn.execute(statement.query, statement.params)  # type: ignore[arg-type]
        rows = cursor if statement.rows is None else statement.rows
        whole = len(statement.counts) == 1
        for column, (table, op) in enumerate(statement.counts):
            keys: tuple[Any, ...] | Returning | None = statement.keys
            if keys is None:
                keys = Returning(cursor, None if whole else column)
            self.count(table, op, rows, keys)
        if self.journal is not None:
            self.journal.append(statement)
        return cursor

    def pick(
        self,
        table: str,
        where: sql.Composable | None = None,
        params: Sequence[Any] = (),
    ) -> Row | None:
        """A random existing row of ``table`` (optionally filtered), or ``None``."""
        if self.conn is None:
            return None
        ident = sql.Identifier(table)
        bounds = self._id_range.get(table)
        if bounds is None:
            found = self.conn.execute(
                sql.SQL("SELECT min(id), max(id) FROM {}").format(ident)
            ).fetchone()
            if not found or found[0] is None:
                return None
            bounds = self._id_range[table] = (int(found[0]), int(found[1]))
        start = self.randint(*bounds)
        condition = where if where is not None else sql.SQL("true")
        query = sql.SQL(
            "(SELECT * FROM {t} AS t WHERE id >= %s AND {c} ORDER BY id LIMIT 1) "
            "UNION ALL (SELECT * FROM {t} AS t WHERE id < %s AND {c} "
            "ORDER BY id LIMIT 1) LIMIT 1"
        ).format(t=ident, c=condition)
        with self.conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(query, (start, *params, start, *params)).fetchone()
        return Row(row) if row else None

    def forget_ids(self, table: str) -> None:
        """Drop the cached id range of ``table`` (after inserts or deletes)."""
        self._id_range.pop(table, None)

    # -- value helpers shared by every domain ---------------------------------------
    # ``random.choice``/``randint`` cost ~0.6 us in pure Python; one C-level
    # ``random()`` and a multiplication draw the same uniform index in ~0.1 us.
    def choice(self, options: Sequence[Any]) -> Any:
        return options[int(self.rng.random() * len(options))]

    def randint(self, low: int, high: int) -> int:
        """Uniform integer in [low, high], like ``random.randint``."""
        return low + int(self.rng.random() * (high - low + 1))

    def person_name(self) -> str:
        p, pick = self.pools, self.choice
        return f"{pick(p.first_names)} {pick(p.last_names)} {pick(p.last_names)}"

    def address(self) -> str:
        p, pick = self.pools, self.choice
        city, uf = pick(p.cities)
        return (
            f"{pick(p.streets)}, {self.randint(1, 3999)} - "
            f"{pick(p.bairros)}, {city} - {uf}"
        )[:200]

    def email(self, name: str) -> str:
        parts = _ascii(name).lower().split()
        user = f"{parts[0]}.{parts[-1]}{self.randint(1, 999)}"
        return f"{user}@{self.choice(self.pools.email_domains)}"

    def moment(self, start: datetime, end: datetime) -> datetime:
        """A time uniformly in [start, end], whole seconds (stable round-trips)."""
        span = max(0, int((end - start).total_seconds()))
        return start + timedelta(seconds=self.randint(0, span))

    def day(self, start: date, end: date) -> date:
        return start + timedelta(days=self.randint(0, max(0, (end - start).days)))

    def weighted(self, choices: Mapping[str, float]) -> str:
        """``rng.choices(keys, weights)[0]``, same draw, without rebuilding lists."""
        keys, cumulative, total = _cumulative(choices)
        return keys[bisect(cumulative, self.rng.random() * total, 0, len(keys) - 1)]


_CUMULATIVE: dict[int, tuple[Mapping[str, float], list[str], list[float], float]] = {}


def _cumulative(choices: Mapping[str, float]) -> tuple[list[str], list[float], float]:
    entry = _CUMULATIVE.get(id(choices))
    if entry is None or entry[0] is not choices:
        cumulative = list(accumulate(choices.values()))
        entry = (choices, list(choices), cumulative, cumulative[-1] + 0.0)
        _CUMULATIVE[id(choices)] = entry
    return entry[1], entry[2], entry[3]


def current() -> Context:
    """The context bound by :func:`bind` (or the plugin); a clear error if none."""
    try:
        return _current.get()
    except LookupError:
        raise OltpseedError(
            "no data context bound: wrap factory calls in "
            "`with pytest_oltpseed.data.factory.bind(conn):` or use the oltp_factories "
            "fixture"
        ) from None


@contextlib.contextmanager
def bind(conn: psycopg.Connection | None = None, **options: Any) -> Iterator[Context]:
    """Bind a connection and a seed for factory calls inside the ``with`` block.

    Also reseeds factory_boy's own random generator, so a user's
    ``factory.Faker``/``factory.fuzzy`` declarations follow the same seed.
    """
    context = Context(conn, **options)
    factory.random.reseed_random(context.seed)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


# -- declarations ---------------------------------------------------------------
class Col(factory.declarations.BaseDeclaration):
    """A column: ``fn(ctx, row)`` where ``row`` holds the columns declared above."""

    def __init__(self, fn: Callable[[Context, Any], Any]) -> None:
        super().__init__()
        self.fn = fn

    def evaluate(self, instance: Any, step: Any, extra: Any) -> Any:
        return self.fn(current(), instance)


class Parent(factory.declarations.BaseDeclaration):
    """An FK column. Evaluates to a :class:`Ref` to an existing or new parent.

    A parent is picked among existing rows when the context reuses parents or
    the declaration ``prefer_existing`` (few, shared rows such as convênios);
    otherwise, and when none qualifies, the parent's factory creates one
    (persisted first, so the child is FK-consistent). ``where(ctx, row)``
    may restrict the pick with SQL over alias ``t``. ``carry`` names the
    parent columns the child's rules read, which the bulk path fetches.
    """

    def __init__(
        self,
        table: str,
        *,
        carry: Sequence[str] = (),
        prefer_existing: bool = False,
        where: Callable[[Context, Any], tuple[sql.Composable, Sequence[Any]]]
        | None = None,
        prefer: Callable[[Context, Any, Mapping[str, Any]], bool] | None = None,
    ) -> None:
        super().__init__()
        self.table = table
        self.carry = tuple(carry)
        self.prefer_existing = prefer_existing
        self.where = where
        self.prefer = prefer

    def resolve(
        self,
        ctx: Context,
        row: Any,
        create: bool,
        fields: Mapping[str, Any] | None = None,
    ) -> Ref:
        """A Ref to the parent; ``fields`` (``paciente__nome="Ana"``) make a
        new parent with those values instead of picking an existing one."""
        parent = factory_for(self.table)
        if fields:
            overrides = parent.normalize(fields)
            made = parent.make_row(ctx, create=create, overrides=overrides)
            if create:
                parent.write(ctx, made)
            return Ref(self.table, made)
        if create and (self.prefer_existing or ctx.reuse_parents):
            condition, params = self.where(ctx, row) if self.where else (None, ())
            picked = ctx.pick(self.table, condition, params)
            # ``prefer(ctx, row, parent)``: a few more picks (in memory) for a
            # parent it likes better, e.g. a product the store has on its shelf.
            for _ in range(PREFER_TRIES if self.prefer and picked else 0):
                if self.prefer(ctx, row, picked):  # type: ignore[misc, arg-type]
                    break
                picked = ctx.pick(self.table, condition, params) or picked
            if picked is not None:
                return Ref(self.table, picked)
        made = parent.make_row(ctx, create=create)
        if create:
            parent.write(ctx, made)
        return Ref(self.table, made)

    def evaluate(self, instance: Any, step: Any, extra: Any) -> Any:
        create = step.builder.strategy == enums.CREATE_STRATEGY
        return self.resolve(current(), instance, create, dict(extra or {}))


class Items(factory.declarations.BaseDeclaration):
    """A header's child rows (a sale's items), generated with it, written after it.

    Children come from the child table's own factory declarations; their FK
    to the header is a :class:`Ref` to the header's values named in
    ``header`` (so an item can see its sale's store and time) and becomes the
    header's id once it is inserted. Children repeating the value of the
    child factory's ``_distinct`` column (a product already in the sale) are
    dropped, so UNIQUE (header, product) holds.
    """

    def __init__(
        self, table: str, fk: str, low: int, high: int, header: Sequence[str] = ()
    ) -> None:
        super().__init__()
        self.table, self.fk, self.low, self.high = table, fk, low, high
        self.header = tuple(header)

    def make(
        self,
        ctx: Context,
        head: Row,
        create: bool,
        parents: Mapping[str, Callable[[Any], Ref]] | None = None,
    ) -> list[Row]:
        child = factory_for(self.table)
        items: list[Row] = []
        seen: set[object] = set()
        for _ in range(ctx.randint(self.low, self.high)):
            item = child.make_row(
                ctx, parents, create=create, overrides={self.fk: Ref("", head)}
            )
            if child._distinct:
                key = _identity(item[child._distinct])
                if key in seen:
                    continue
                seen.add(key)
            items.append(item)
        return items

    def evaluate(self, instance: Any, step: Any, extra: Any) -> Any:
        # factory_boy resolves lazily: snapshot the header fields children read
        head = Row({name: getattr(instance, name) for name in self.header})
        create = step.builder.strategy == enums.CREATE_STRATEGY
        return self.make(current(), head, create)


class FieldError(OltpseedError, TypeError):
    """A factory was called with a keyword it does not declare."""


def _parent_value(table: str, value: Any) -> Any:
    """An FK value as the factories keep it: a Ref for a row, the id otherwise.

    A factory's own row (a :class:`Row`) is kept whole; another mapping with
    an id is taken for that id and looked up when a rule needs the parent's
    values (it may hold only some columns); one without an id is a new row.
    """
    if isinstance(value, Ref) or value is None:
        return value
    if isinstance(value, Mapping):
        if "id" in value and not isinstance(value, Row):
            return _parent_value(table, value["id"])
        return Ref(table, value if isinstance(value, Row) else Row(value))
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(
            f"a {table} parent must be a row, a Ref or an id, not {value!r}"
        )
    return value


def _identity(value: Any) -> object:
    if isinstance(value, Ref):
        return value.row.get("id") or id(value.row)
    return ref_id(value)


def factory_for(table: str) -> type[SQLFactory]:
    """The factory of ``table`` (domains' factory modules load on first need).

    When several registered domains have a table of that name, the one among
    the domains in use (:func:`pytest_oltpseed.domains.active`) decides.
    """
    from pytest_oltpseed.domains import active, registry

    if table not in _FACTORIES:
        for domain in registry().values():
            domain.load_factories()
    found = _FACTORIES.get(table, {})
    if len(found) == 1:
        return next(iter(found.values()))
    chosen = [f for name, f in found.items() if name in active()]
    if len(chosen) == 1:
        return chosen[0]
    if not found:
        raise OltpseedError(f"no factory for table {table!r}")
    raise OltpseedError(
        f"table {table!r} belongs to domains {', '.join(sorted(found))}: "
        "select one of them with --domain"
    )


def all_factories() -> dict[str, type[SQLFactory]]:
    """Every domain's factories by class name (``Paciente``, ``Sale``, ...);
    on a clash of names, the factory of a domain in use wins."""
    from pytest_oltpseed.domains import active, registry

    for domain in registry().values():
        domain.load_factories()
    every = [f for by_domain in _FACTORIES.values() for f in by_domain.values()]
    mine = active()
    ordered = sorted(every, key=lambda f: f._domain in mine)
    return {f.__name__: f for f in ordered}


class SQLFactory(factory.Factory):
    """Base factory: ``create()`` inserts the row and returns it with its id.

    Subclasses set ``_table`` and ``_domain``; columns listed in
    ``Meta.exclude`` are computed but not written (helpers), and
    :class:`Items` columns are written as child rows after the header.
    Hooks ``_before_insert``/``_after_insert`` keep cross-row rules (stock,
    totals) in the domain that owns them.
    """

    _table: ClassVar[str] = ""
    _domain: ClassVar[str] = ""
    _distinct: ClassVar[str | None] = None  # column unique within a header
    _natural_key: ClassVar[tuple[str, ...]] = ()  # UNIQUE columns: seeding upserts

    class Meta:
        model = Row
        abstract = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls._table:
            _FACTORIES.setdefault(cls._table, {})[cls._domain] = cls

    @classmethod
    def _generate(cls, strategy: Any, params: dict[str, Any]) -> Any:
        """factory_boy's entry for build/create/batches: keywords checked first.

        factory_boy keeps an unknown keyword as an extra attribute, so a
        misspelt ``stauts=`` or a parent passed as ``paciente=`` would be
        silently ignored; here the first raises and the second links.
        """
        return super()._generate(strategy, cls.normalize(params))

    @classmethod
    def _fields(cls) -> dict[str, Any]:
        """Keyword name -> declaration: every declared column, helper or items
        (computed once per class)."""
        cached = cls.__dict__.get("_fields_cache")
        if cached is None:
            cached = dict(cls._declarations()) | dict(cls._meta.parameters)
            cls._fields_cache = cached  # type: ignore[attr-defined]
        return cached

    @classmethod
    def _aliases(cls) -> dict[str, str]:
        """``paciente`` -> ``paciente_id``: an FK column also answers to its
        name without ``_id``, where that name is not a field of its own."""
        cached = cls.__dict__.get("_aliases_cache")
        if cached is None:
            fields = cls._fields()
            cached = {
                name.removesuffix("_id"): name
                for name, declaration in fields.items()
                if isinstance(declaration, Parent)
                and name.endswith("_id")
                and name.removesuffix("_id") not in fields
            }
            cls._aliases_cache = cached  # type: ignore[attr-defined]
        return cached

    @classmethod
    def valid_fields(cls) -> str:
        """The keywords this factory accepts, for error messages."""
        aliases = {column: alias for alias, column in cls._aliases().items()}
        return ", ".join(
            f"{name} (or {aliases[name]})" if name in aliases else name
            for name in sorted(cls._fields())
        )

    @classmethod
    def check_fields(cls, fields: Mapping[str, Any]) -> None:
        """Raise :class:`FieldError` naming the valid fields if one is unknown."""
        known = cls._fields()
        aliases = cls._aliases()
        for key in fields:
            root, nested, _ = key.partition("__")
            if root not in known and root not in aliases:
                raise FieldError(
                    f"{cls.__name__} has no field {root!r}: valid fields are "
                    f"{cls.valid_fields()}"
                )
            if nested and not isinstance(known[aliases.get(root, root)], Parent):
                raise FieldError(
                    f"{cls.__name__}.{root} is not a parent: {key}= sets a field "
                    "of a parent row (an FK field such as paciente_id)"
                )

    @classmethod
    def normalize(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """Check keywords, resolve FK aliases, and make a parent given as a row
        a :class:`Ref` (an unsaved one is inserted before the child)."""
        cls.check_fields(params)
        aliases = cls._aliases()
        fields = cls._fields()
        out: dict[str, Any] = {}
        for key, value in params.items():
            root, _, rest = key.partition("__")
            name = aliases.get(root, root)
            full = f"{name}__{rest}" if rest else name
            if full in out:
                raise FieldError(
                    f"{cls.__name__}: {name} given twice (as {root!r} and {name!r})"
                )
            declaration = fields[name]
            if not rest and isinstance(declaration, Parent):
                value = _parent_value(declaration.table, value)
            out[full] = value
        return out

    @classmethod
    def create_batch(cls, size: int, **kwargs: Any) -> list[Row]:
        """``size`` rows inserted with COPY (see :mod:`pytest_oltpseed.seed.bulk`):
        the same rows ``create()`` would make, FK-consistent, at bulk speed."""
        ctx = current()
        if ctx.conn is None:
            raise OltpseedError(f"{cls.__name__}: writing needs a bound connection")
        from pytest_oltpseed.seed.bulk import create_batch

        return create_batch(cls, ctx, size, kwargs)

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Row:
        return cls.write(current(), Row(kwargs))

    @classmethod
    def write(cls, ctx: Context, row: Row, *, standalone: bool = True) -> Row:
        """Insert ``row`` (made by this factory): unsaved parents first, items after.

        ``row`` is updated in place with what the database returned (id,
        defaults), so :class:`Ref` values pointing at it see the id.
        """
        if ctx.conn is None:
            raise OltpseedError(f"{cls.__name__}: writing needs a bound connection")
        token = _current.set(ctx)  # hooks may call other factories: same context
        try:
            return cls._write(ctx, row, standalone)
        finally:
            _current.reset(token)

    @classmethod
    def _write(cls, ctx: Context, row: Row, standalone: bool) -> Row:
        cls._prepare(ctx, row)
        row.update(ctx.insert(cls._table, cls.columns(row)))
        ctx.forget_ids(cls._table)
        for name, items in cls._items():
            child = factory_for(items.table)
            batch = []
            for given in row[name]:
                item = given if isinstance(given, Row) else Row(given)
                item[items.fk] = row["id"]
                child._prepare(ctx, item)
                batch.append(item)
            values = [child.columns(item) for item in batch]
            for item, written in zip(
                batch, ctx.insert_many(child._table, values), strict=True
            ):
                item.update(written)
            ctx.forget_ids(child._table)
            row[name] = batch
        if standalone:
            cls._after_insert(ctx, row)
        return row

    @classmethod
    def _prepare(cls, ctx: Context, row: Row) -> None:
        """Before inserting ``row``: its unsaved parents, then the domain's hook.

        Items of one header are all prepared before they are inserted together;
        their hooks never depend on each other (an item's product is unique in
        its header, see ``_distinct``).
        """
        for value in list(row.values()):
            if isinstance(value, Ref) and value.table and "id" not in value.row:
                assert isinstance(value.row, Row)
                factory_for(value.table).write(ctx, value.row)
        cls._before_insert(ctx, row)

    @classmethod
    def _declarations(cls) -> list[tuple[str, Any]]:
        """(name, declaration) in declaration order, computed once per class."""
        cached = cls.__dict__.get("_declaration_cache")
        if cached is None:
            declarations = cls._meta.pre_declarations
            cached = [(n, declarations[n].declaration) for n in declarations.sorted()]
            cls._declaration_cache = cached  # type: ignore[attr-defined]
        return cached

    @classmethod
    def column_names(cls) -> list[str]:
        """The columns this factory writes, in declaration order."""
        excluded = set(cls._meta.exclude)  # type: ignore[attr-defined]
        return [
            n
            for n, d in cls._declarations()
            if n not in excluded and not isinstance(d, Items)
        ]

    @classmethod
    def _items(cls) -> list[tuple[str, Items]]:
        return [(n, d) for n, d in cls._declarations() if isinstance(d, Items)]

    @classmethod
    def _before_insert(cls, ctx: Context, row: Row) -> None:
        """Hook: make the database ready for this row (e.g. stock for a sale)."""

    @classmethod
    def _after_insert(cls, ctx: Context, row: Row) -> None:
        """Hook, when the row is created on its own (not as a header's item):
        keep what depends on it right (e.g. the sale's total)."""

    @classmethod
    def columns(cls, row: Mapping[str, Any]) -> dict[str, Any]:
        """The values to write: the written columns present in ``row``, FKs as ids."""
        return {k: ref_id(row[k]) for k in cls.column_names() if k in row}

    @classmethod
    def make_row(
        cls,
        ctx: Context,
        parents: Mapping[str, Callable[[Any], Ref]] | None = None,
        *,
        create: bool = False,
        overrides: Mapping[str, Any] | None = None,
    ) -> Row:
        """Evaluate the declarations directly (no factory_boy step): the bulk path.

        ``parents`` maps an FK column to a picker ``pick(row) -> Ref`` (the
        seeder picks among ids it fetched; ``row`` is the row so far), also
        for the children of :class:`Items`; other Parent columns are created
        when ``create`` (persisted first) and built otherwise. ``overrides``
        win over declarations; a ``parent__field`` key sets a field of a new
        parent (keys already checked by :meth:`normalize`).
        """
        row = Row()
        view = _Attrs(row)
        overrides = overrides or {}
        parents = parents or {}
        nested: dict[str, dict[str, Any]] = {}
        for key in overrides if any("__" in k for k in overrides) else ():
            root, _, rest = key.partition("__")
            if rest:
                nested.setdefault(root, {})[rest] = overrides[key]
        for name, kind, declaration in cls._plan():
            if name in overrides:
                row[name] = overrides[name]
            elif kind is Col:
                row[name] = declaration.fn(ctx, view)
            elif kind is Parent:
                pick = parents.get(name)
                row[name] = (
                    pick(view)
                    if pick
                    else declaration.resolve(ctx, view, create, nested.get(name))
                )
            else:
                row[name] = declaration.make(ctx, row, create, parents)
        return row

    @classmethod
    def _plan(cls) -> list[tuple[str, type, Any]]:
        """(name, declaration kind, declaration): make_row's loop, checked once."""
        cached = cls.__dict__.get("_plan_cache")
        if cached is None:
            cached = []
            for name, declaration in cls._declarations():
                kind = next(
                    (k for k in (Col, Parent, Items) if isinstance(declaration, k)),
                    None,
                )
                if kind is None:
                    raise OltpseedError(
                        f"{cls.__name__}.{name}: only Col, Parent and Items are "
                        "supported by the bulk path"
                    )
                cached.append((name, kind, declaration))
            cls._plan_cache = cached  # type: ignore[attr-defined]
        return cached


@lru_cache(maxsize=512)
def _insert_query(table: str, names: tuple[str, ...], rows: int = 1) -> str:
    """Composed once, kept as text: psycopg caches the parsing of text queries
    (not of ``Composed`` ones), which saves ~80 us an insert."""
    one = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(names)))
    query = sql.SQL("INSERT INTO {} ({}) VALUES {}").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, names)),
        sql.SQL(", ").join([one] * rows),
    )
    return query.as_string(None)


def insert(conn: psycopg.Connection, table: str, values: Mapping[str, Any]) -> Row:
    """``INSERT ... RETURNING *`` of one row; identifiers quoted with psycopg.sql."""
    names = list(values)
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING *").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, names)),
        sql.SQL(", ").join(sql.Placeholder() * len(names)),
    )
    with conn.cursor(row_factory=dict_row) as cur:
        found = cur.execute(query, [values[n] for n in names]).fetchone()
    assert found is not None
    return Row(found)


def changed_keys(
    ledger: Sequence[tuple[str, str, Any]], keyed: Sequence[Any]
) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(table, op, [key, ...]) per write of a batch, in statement order, from a
    context's ``ledger`` and ``keyed`` once the results are in. A key is
    ``{"id": ...}``, the returned key columns (a composite key), or a mapping
    given as is (``{}`` for a TRUNCATE)."""
    fetched: dict[int, list[Any]] = {}
    found = []
    for (table, op, _rows), keys in zip(ledger, keyed, strict=True):
        if isinstance(keys, Returning):
            cursor = keys.cursor
            if id(cursor) not in fetched:  # one cursor can serve several pairs
                fetched[id(cursor)] = cursor.fetchall() if cursor.description else []
            rows = fetched[id(cursor)]
            if keys.column is not None:
                values: list[Any] = [row[keys.column] for row in rows]
            else:
                names = [c.name for c in cursor.description or ()]
                if names == ["id"]:
                    values = [row[0] for row in rows]
                else:
                    values = [dict(zip(names, row, strict=True)) for row in rows]
        else:
            values = list(keys or ())
        found.append(
            (table, op, [v if isinstance(v, dict) else {"id": v} for v in values])
        )
    return found
