"""The generation context: connection, seed, "now", identifier indices, writes.

Bound with :func:`bind` (a context variable, never a module global), which the
plugin, the seeder and the stream all use; factory declarations read it with
:func:`current`.
"""

from __future__ import annotations

import contextlib
import contextvars
import random
import unicodedata
from bisect import bisect
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from itertools import accumulate
from typing import Any

import factory
import factory.random
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pytest_oltpseed.data import indices
from pytest_oltpseed.data.pools import pools
from pytest_oltpseed.data.rows import (
    Ref,
    Returning,
    Row,
    Statement,
    _insert_query,
    _insert_with_items_query,
    insert,
)
from pytest_oltpseed.db import table_ident
from pytest_oltpseed.errors import OltpseedError
from pytest_oltpseed.profiles import DEFAULT_AS_OF

_current: contextvars.ContextVar[Context] = contextvars.ContextVar("oltpseed_context")
ROW_CACHE = 20_000  # parent rows kept for lookups by id (LRU): bounded for long runs
ID_BLOCK = 64  # ids first taken from a table's sequence at once when allocating
ID_BLOCK_MAX = 2048  # ... doubling per refill up to this: a busy table (retail's
# items, ~1.5 rows an event) refilled 64 at a time cost the stream a round trip
# on the reservation connection every ~40 events


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
        offline: bool = False,
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
        # no database at all: parents are built in memory, never looked up
        self.offline = offline and conn is None
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
        self._id_block: dict[str, int] = {}
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
                sql.SQL("SELECT * FROM {} WHERE id = %s").format(table_ident(table)),
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

    def insert_with_items(
        self,
        table: str,
        values: Mapping[str, Any],
        child: str,
        rows: Sequence[Mapping[str, Any]],
    ) -> None:
        """Insert a header and its items in one statement (allocated ids: every
        row has its ``id`` from :meth:`new_id`; the items share their columns):
        a sale is one statement on the wire and in the server, not two."""
        query = _insert_with_items_query(
            table, tuple(values), child, tuple(rows[0]), len(rows)
        )
        params = [v for row in rows for v in row.values()]
        params.extend(values.values())
        ids = tuple(row["id"] for row in rows)
        counts = ((table, "insert"), (child, "insert"))
        each = ((1, (values["id"],)), (len(rows), ids))
        self.apply(Statement(query, params, counts, each=each))
        self.remember(table, values)
        for row in rows:
            self.remember(child, row)

    def new_id(self, table: str) -> int:
        """A primary key for a row of ``table`` (``allocate_ids``)."""
        return self._next_id(table)

    def _next_id(self, table: str) -> int:
        free = self._ids.get(table)
        if not free:
            # nextval ignores transactions: on the reservation connection it
            # is the same, and a pipelined batch need not stop to wait for it.
            conn = self.reserve_conn or self.conn
            assert conn is not None
            block = self._id_block[table] = min(
                ID_BLOCK_MAX, self._id_block.get(table, ID_BLOCK // 2) * 2
            )
            rows = conn.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) "
                "FROM generate_series(1, %s)",
                (table, block),
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
            if statement.each:  # a header and its items: counted and keyed apart
                rows, keys = statement.each[column]
            elif keys is None:
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
        ident = table_ident(table)
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
    Without a connection, rows are built in memory only (parents too), and
    identifiers count from ``index_base`` (0) in the block: the same seed
    gives the same rows.
    """
    if conn is None:
        options.setdefault("offline", True)
    context = Context(conn, **options)
    factory.random.reseed_random(context.seed)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


OFFLINE_INDEX = 12_000_000
"""First identifier index of rows built with no context bound: above the
seeder's (from 0) and the strategies' (10-11 million) ranges, so such a row
can later be inserted next to seeded data."""
_offline: list[Context] = []


def offline() -> Context:
    """The context of ``build()`` when none is bound: no database, parents built
    in memory, and identifier indices counted once for the whole process, so
    every row built this way has unique CPFs, CNPJs, codes (no server's
    sequences needed)."""
    if not _offline:
        _offline.append(Context(None, index_base=OFFLINE_INDEX, offline=True))
    return _offline[0]
