"""Stream events: what one business event writes, and the caches that make it cheap.

An event is data declared by its domain (``domains/<name>/events.py``): a
name, a default weight and a function of a :class:`StreamContext` that writes
through the factories or :meth:`~pytest_oltpseed.data.factory.Context.execute`,
so every changed row lands in the context's ledger. Events find their rows in
in-memory caches (spec 002 item 4: existing ids cached, refreshed, a deleted
parent re-selected) rather than with a query per row, which lets the stream
queue a whole batch in pipeline mode without waiting on the server per event.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pytest_oltpseed.config import StreamSettings, Value, parse_weights
from pytest_oltpseed.data.factory import Context, Row
from pytest_oltpseed.db import table_ident
from pytest_oltpseed.domains import Domain, registry
from pytest_oltpseed.errors import UsageError

CACHE_ROWS = 2_000  # parent rows sampled per table for FK picks
CACHE_TTL = 60.0  # seconds before a parent sample is drawn again
CANDIDATES = 500  # rows fetched at once for update/delete events
EMPTY_RETRY = 5.0  # seconds before looking again for candidates that were missing


class NotApplicable(Exception):
    """Nothing is eligible for this event right now: the stream draws another."""


@dataclass(frozen=True)
class Event:
    """One kind of business event; ``tables`` are those it may change.

    ``late``: the event updates a few hot rows every client touches (a price,
    a plan's coverage). Concurrent streams run it last in its batch, so its
    row lock is held for the COMMIT rather than for the whole batch, and the
    other clients' batches wait milliseconds rather than time out and replay.
    """

    name: str
    weight: int
    run: Callable[[StreamContext], None]
    tables: tuple[str, ...]
    description: str
    domain: str = ""
    late: bool = False


def domain_events(domain: Domain) -> list[Event]:
    """The events a domain declares in ``<domain>/events.py`` (``EVENTS``)."""
    module = domain.load_events()
    return [replace(event, domain=domain.name) for event in module.EVENTS]


def domain_warmers(domain: Domain) -> list[Callable[[StreamContext], None]]:
    """What a domain loads before a stream's clock starts (``WARM``, optional)."""
    return list(getattr(domain.load_events(), "WARM", ()))


@dataclass(frozen=True)
class Mix:
    """The weighted events of a run (weight 0 events left out)."""

    events: tuple[Event, ...]
    _cumulative: tuple[float, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        total, running = 0.0, []
        for event in self.events:
            total += event.weight
            running.append(total)
        object.__setattr__(self, "_cumulative", tuple(running))

    def draw(self, rng: Any, exclude: Iterable[str] = ()) -> Event | None:
        """A weighted pick; ``exclude`` names events found not applicable."""
        skip = set(exclude)
        if not skip:
            target = rng.random() * self._cumulative[-1]
            for event, bound in zip(self.events, self._cumulative, strict=True):
                if target < bound:
                    return event
            return self.events[-1]
        left = [e for e in self.events if e.name not in skip]
        return Mix(tuple(left)).draw(rng) if left else None

    def shares(self) -> dict[str, float]:
        total = self._cumulative[-1]
        return {e.name: e.weight / total for e in self.events}


def resolve_mix(
    domains: Sequence[Domain], *layers: tuple[Mapping[str, int], str]
) -> Mix:
    """Default weights overridden by each ``(weights, source)`` layer in turn.

    Names are checked against every domain's events (a settings file may
    weigh retail events while a run streams only hospital); an unknown name
    is a usage error naming its source and the known names.
    """
    every = {e.name: e for d in registry().values() for e in domain_events(d)}
    chosen = {e.name: e for d in domains for e in domain_events(d)}
    for weights, source in layers:
        for name, weight in weights.items():
            if name not in every:
                raise UsageError(
                    f"unknown event {name!r} in {source}: expected one of "
                    + ", ".join(sorted(every))
                )
            if name in chosen:
                chosen[name] = replace(chosen[name], weight=weight)
    events = tuple(e for e in chosen.values() if e.weight > 0)
    if not events:
        raise UsageError(
            "every event weight is 0 for --domain "
            + ",".join(d.name for d in domains)
            + ": give at least one event a weight > 0"
        )
    return Mix(events)


def configured_mix(
    domains: Sequence[Domain], settings: StreamSettings, flag: str | None = None
) -> Mix:
    """The domains' defaults, then ``[stream.weights]``/``STREAM_WEIGHTS``, then
    ``--weights`` (``flag``), name by name."""
    layers = []
    if settings.weights:
        layers.append((settings.weights, settings.weights_source))
    if flag is not None:
        given = parse_weights(Value(flag, "--weights", "command line"))
        layers.append((given, "--weights"))
    return resolve_mix(domains, *layers)


def parse_every(values: Sequence[str]) -> tuple[tuple[str, int], ...]:
    """``--every EVENT:N`` values -> ((event, N), ...); a usage error otherwise."""
    parsed = []
    for value in values:
        name, _, number = value.partition(":")
        try:
            every = int(number)
        except ValueError:
            every = 0
        if not name.strip() or every < 1:
            raise UsageError(
                f"bad --every {value!r}: expected EVENT:N with N >= 1 "
                "(e.g. bulk_load:20)"
            )
        parsed.append((name.strip(), every))
    return tuple(parsed)


def resolve_every(
    domains: Sequence[Domain], every: Sequence[tuple[str, int]]
) -> tuple[tuple[Event, int], ...]:
    """The events ``--every`` names, weightless ones included (``bulk_load``):
    each runs once every N batches on top of the mix."""
    known = {e.name: e for d in domains for e in domain_events(d)}
    found = []
    for name, number in every:
        if name not in known:
            raise UsageError(
                f"unknown event {name!r} in --every: expected one of "
                + ", ".join(sorted(known))
            )
        found.append((known[name], number))
    return tuple(found)


class RowCache:
    """A random sample of a table's rows, for FK picks without a query each.

    A tenth of it is drawn again every :data:`CACHE_TTL` seconds (so rows
    others add or delete come and go, without a whole new sample at once: a
    new set of products would mean a wave of restocks, and a big load a
    latency spike), and all of it after a foreign-key violation (a parent
    deleted by someone else is then re-selected); rows the stream itself
    committed join the sample. With a ``condition`` (SQL over the table's
    columns, ``%s`` for ``params``) only rows meeting it are sampled, e.g.
    patients registered long enough ago for a backdated admission.
    """

    def __init__(
        self, table: str, size: int = CACHE_ROWS, condition: str = "true"
    ) -> None:
        self.table, self.size, self.condition = table, size, condition
        self.rows: list[Mapping[str, Any]] = []
        self.loaded_at = -CACHE_TTL
        self.stale = True  # the whole sample must be drawn (again)
        self.by_id: bool | None = None  # has an ``id`` column to sample by
        # 45-75 s by name: the samples loaded together at the start are
        # refreshed at different times, not all in one batch a minute later.
        self.ttl = CACHE_TTL * (0.75 + (zlib.crc32(table.encode()) % 50) / 100)

    def pick(
        self, ctx: StreamContext, params: Sequence[Any] = ()
    ) -> Mapping[str, Any] | None:
        due = time.monotonic() - self.loaded_at > self.ttl
        if self.stale or not self.rows or (due and len(self.rows) < self.size):
            self.load(ctx, params)  # (a table smaller than the sample: cheap)
        elif due:
            for row in self._draw(ctx, params, max(1, self.size // 10)):
                self.add(row, ctx.rng)
            self.loaded_at = time.monotonic()
        if not self.rows:
            return None
        return self.rows[int(ctx.rng.random() * len(self.rows))]

    def load(self, ctx: StreamContext, params: Sequence[Any] = ()) -> None:
        self.rows = self._draw(ctx, params, self.size)
        self.loaded_at, self.stale = time.monotonic(), False

    def _draw(
        self, ctx: StreamContext, params: Sequence[Any], size: int
    ) -> list[Mapping[str, Any]]:
        """Sample by random ids between min(id) and max(id) (two index probes,
        never a COUNT(*) or a scan: this runs inside a batch, on big tables
        too); a small or sparse table is read whole (up to ``size`` rows)."""
        assert ctx.conn is not None
        ident = table_ident(self.table)
        where = sql.SQL(self.condition)  # type: ignore[arg-type]
        if self.by_id is None:
            self.by_id = _has_id(ctx.conn, self.table)
        if not self.by_id:  # no id to probe (a composite key, no key): a scan
            with ctx.conn.cursor(row_factory=dict_row) as cur:
                rows = cur.execute(
                    sql.SQL(
                        "SELECT * FROM {} WHERE ({}) ORDER BY random() LIMIT %s"
                    ).format(ident, where),
                    (*params, size),
                ).fetchall()
            return [Row(r) for r in rows]
        bounds = ctx.conn.execute(
            sql.SQL("SELECT min(id), max(id) FROM {}").format(ident)
        ).fetchone()
        low, high = bounds if bounds else (None, None)
        found: list[dict[str, Any]] = []
        with ctx.conn.cursor(row_factory=dict_row) as cur:
            if low is not None and high - low >= size * 2:
                ids = [ctx.randint(int(low), int(high)) for _ in range(size * 2)]
                found = cur.execute(
                    sql.SQL(
                        "SELECT * FROM {} WHERE id = ANY(%s) AND ({}) LIMIT %s"
                    ).format(ident, where),
                    (ids, *params, size),
                ).fetchall()
            if low is not None and len(found) < max(1, size // 20):
                # Few hits: rows meeting it from a random point on (index ranges).
                start = ctx.randint(int(low), int(high))
                found = cur.execute(
                    sql.SQL(
                        "(SELECT * FROM {t} WHERE id >= %s AND ({w}) ORDER BY id "
                        "LIMIT %s) UNION ALL (SELECT * FROM {t} WHERE id < %s "
                        "AND ({w}) ORDER BY id LIMIT %s)"
                    ).format(t=ident, w=where),
                    (start, *params, size, start, *params, size),
                ).fetchall()[:size]
        return [Row(r) for r in found]

    def add(self, row: Mapping[str, Any], rng: Any) -> None:
        if len(self.rows) < self.size:
            self.rows.append(row)
        else:
            self.rows[int(rng.random() * self.size)] = row

    def expire(self) -> None:
        self.stale = True


def _has_id(conn: psycopg.Connection, table: str) -> bool:
    """Whether ``table`` has an ``id`` column (the built-in domains' key)."""
    row = conn.execute(
        "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) "
        "AND attname = 'id' AND NOT attisdropped",
        (table_ident(table).as_string(conn),),
    ).fetchone()
    return row is not None


@dataclass
class Candidates:
    """Rows eligible for an update or delete event (open stays, pending exams).

    Fetched :data:`CANDIDATES` at a time from a random point of the table, and
    each handed out once; an event re-checks eligibility in its own WHERE, so
    a row changed meanwhile by someone else is simply not touched.
    """

    table: str
    columns: tuple[str, ...]
    condition: str  # SQL over the table's columns; %s placeholders for params
    rows: list[Mapping[str, Any]] = field(default_factory=list)
    empty_until: float = 0.0

    def take(
        self, ctx: StreamContext, params: Sequence[Any]
    ) -> Mapping[str, Any] | None:
        if not self.rows and time.monotonic() >= self.empty_until:
            self.load(ctx, params)
            if not self.rows:
                self.empty_until = time.monotonic() + EMPTY_RETRY
        if not self.rows:
            return None
        index = int(ctx.rng.random() * len(self.rows))
        self.rows[index], self.rows[-1] = self.rows[-1], self.rows[index]
        return self.rows.pop()

    def load(self, ctx: StreamContext, params: Sequence[Any]) -> None:
        assert ctx.conn is not None
        ident = table_ident(self.table)
        bounds = ctx.conn.execute(
            sql.SQL("SELECT min(id), max(id) FROM {}").format(ident)
        ).fetchone()
        if not bounds or bounds[0] is None:
            self.rows = []
            return
        start = ctx.randint(int(bounds[0]), int(bounds[1]))
        cols = sql.SQL(", ").join(map(sql.Identifier, ("id", *self.columns)))
        part = "(SELECT {c} FROM {t} WHERE id {op} %s AND ({w}) ORDER BY id LIMIT {n})"
        query = sql.SQL(" UNION ALL ").join(
            sql.SQL(part).format(
                c=cols,
                t=ident,
                op=sql.SQL(op),
                w=sql.SQL(self.condition),  # type: ignore[arg-type]
                n=sql.Literal(CANDIDATES),
            )
            for op in (">=", "<")
        )
        with ctx.conn.cursor(row_factory=dict_row) as cur:
            found = cur.execute(query, (start, *params, start, *params)).fetchall()
        self.rows = [Row(r) for r in found[:CANDIDATES]]

    def add(self, row: Mapping[str, Any]) -> None:
        if len(self.rows) < CANDIDATES:
            self.rows.append(row)


class StreamContext(Context):
    """The stream's :class:`Context`: cached parents, candidates, a moving "now".

    Writes are recorded in ``ledger`` and take their ids from the tables'
    sequences (no ``RETURNING`` round trip). What an event learns about new
    rows (a new patient to pick later) is queued with :meth:`after_commit`
    and only applied once the batch is committed.
    """

    def __init__(
        self,
        conn: psycopg.Connection,
        *,
        reserve_conn: psycopg.Connection,
        seed: int,
        pool_seed: int,
        floor: datetime,
    ) -> None:
        super().__init__(
            conn,
            seed=seed,
            pool_seed=pool_seed,
            reuse_parents=True,
            sequences="reserve",
            allocate_ids=True,
            ledger=[],
        )
        self.reserve_block = 100
        self.reserve_conn = reserve_conn  # autocommit: reservations outlive rollbacks
        self.state = {}
        self.floor = floor
        self.caches: dict[str, RowCache] = {}
        self.candidates: dict[str, Candidates] = {}
        self._on_commit: list[Callable[[], None]] = []
        self.tick()

    def tick(self) -> None:
        """Move "now" to the wall clock (naive UTC), never before the data's as-of."""
        now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        self.as_of = max(now, self.floor)

    # -- parents -------------------------------------------------------------------
    def cache(self, table: str) -> RowCache:
        if table not in self.caches:
            self.caches[table] = RowCache(table)
        return self.caches[table]

    def pick(
        self,
        table: str,
        where: sql.Composable | None = None,
        params: Sequence[Any] = (),
    ) -> Row | None:
        if where is not None:
            return super().pick(table, where, params)
        found = self.cache(table).pick(self)
        return found if found is None or isinstance(found, Row) else Row(found)

    def warm(self, tables: Sequence[str]) -> None:
        """Draw every table's parent sample now (before the stream's clock)."""
        for table in tables:
            self.cache(table).load(self)

    def sample(
        self, table: str, condition: str, params: Sequence[Any] = ()
    ) -> Row | None:
        """A random row of ``table`` meeting ``condition``, from a sample of such
        rows drawn like the parent caches (``params`` are read at each draw);
        None when no row meets it. Rows the stream inserts do not join it."""
        key = f"{table}:{condition}"
        if key not in self.caches:
            self.caches[key] = RowCache(table, condition=condition)
        found = self.caches[key].pick(self, params)
        return found if found is None or isinstance(found, Row) else Row(found)

    def insert(self, table: str, values: Mapping[str, Any]) -> Mapping[str, Any]:
        written = super().insert(table, values)
        if table in self.caches:
            cache = self.caches[table]
            self.after_commit(lambda: cache.add(Row(written), self.rng))
        return written

    def insert_with_items(
        self,
        table: str,
        values: Mapping[str, Any],
        child: str,
        rows: Sequence[Mapping[str, Any]],
    ) -> None:
        super().insert_with_items(table, values, child, rows)
        if table in self.caches:  # the header joins its sample, as an insert's row
            cache = self.caches[table]
            self.after_commit(lambda: cache.add(Row(values), self.rng))

    # -- candidates ----------------------------------------------------------------
    def take(
        self,
        table: str,
        columns: Sequence[str],
        condition: str,
        params: Sequence[Any] = (),
    ) -> Mapping[str, Any]:
        """One row of ``table`` meeting ``condition``, each handed out once;
        :class:`NotApplicable` when there is none (the stream draws again)."""
        key = f"{table}:{condition}:{','.join(columns)}"
        pool = self.candidates.get(key)
        if pool is None:
            pool = self.candidates[key] = Candidates(table, tuple(columns), condition)
        found = pool.take(self, params)
        if found is None:
            raise NotApplicable
        return found

    def existing(self, table: str) -> Row:
        """A cached row of ``table`` to update; :class:`NotApplicable` if empty."""
        found = self.pick(table)
        if found is None:
            raise NotApplicable
        return found

    def offer(
        self, table: str, columns: Sequence[str], condition: str, row: Mapping[str, Any]
    ) -> None:
        """After commit, make a new row a candidate (a new pending exam); the
        caller vouches that ``row`` meets ``condition``."""
        key = f"{table}:{condition}:{','.join(columns)}"
        pool = self.candidates.get(key)
        if pool is not None:
            self.after_commit(lambda: pool.add(row))

    # -- batch boundaries ----------------------------------------------------------
    def after_commit(self, action: Callable[[], None]) -> None:
        self._on_commit.append(action)

    def checkpoint(self) -> tuple[int, int]:
        """Where the ledger stands before an event (see :meth:`undo`)."""
        assert self.ledger is not None
        return len(self.ledger), len(self._on_commit)

    def actions_since(self, mark: tuple[int, int]) -> list[Callable[[], None]]:
        """What an event queued for after the commit (to queue it again on replay)."""
        return self._on_commit[mark[1] :]

    def undo(self, mark: tuple[int, int]) -> None:
        """Forget an event rolled back to its savepoint; keep the batch's others."""
        assert self.ledger is not None
        del self.ledger[mark[0] :]
        if self.keyed is not None:
            del self.keyed[mark[0] :]
        del self._on_commit[mark[1] :]
        self.forget()

    def committed(self) -> None:
        for action in self._on_commit:
            action()
        self._on_commit.clear()
        assert self.ledger is not None
        self.ledger.clear()
        if self.keyed is not None:
            self.keyed.clear()

    def rolled_back(self) -> None:
        """Forget what the rolled-back work taught us; keep allocated ids (unused)."""
        self._on_commit.clear()
        assert self.ledger is not None
        self.ledger.clear()
        if self.keyed is not None:
            self.keyed.clear()
        self.forget()

    def forget(self) -> None:
        """Drop domain state that rolled-back work may have skewed (reserved
        indices stay: their reservation was committed on its own)."""
        assert self.state is not None
        self.state.clear()

    def reparent(self) -> None:
        """Draw every parent sample again: one of their rows was deleted under us."""
        for cache in self.caches.values():
            cache.expire()
        self._rows.clear()
