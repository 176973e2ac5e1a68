"""Seeding: plan x profile -> ordered stages, one transaction per stage, COPY.

Stages run in FK order (spec 000 §6.2 for retail; spec 002's order for the
hospital), each in its own transaction: a stage commits whole or leaves
nothing. Rows come from the factories' declarations through
:meth:`SQLFactory.make_row` (no second definition), parents are picked from
ids fetched once per stage (spec 000 §4.1), and rows stream into COPY in
batches of the profile's batch size, so memory stays flat as volume grows.

Idempotency (spec 000 §4.1): tables with a natural key (``_natural_key`` on
the factory) go through a temporary staging table and ``INSERT ... SELECT ...
ON CONFLICT DO NOTHING`` (or straight in when the table is empty); their
identifiers restart at index 0 on every run, so a rerun repeats them and adds
nothing. Transactional tables always insert. Rules that span rows (stock, at
most 3 convênios) live in the domain's ``seeding`` module as stage hooks;
stages without such rules are generated in chunks (:mod:`.chunks`), in worker
processes when they are large.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import random
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol, runtime_checkable

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.pq import TransactionStatus

from pytest_oltpseed import logs
from pytest_oltpseed.data import columns, indices
from pytest_oltpseed.data.factory import (
    Context,
    Parent,
    Ref,
    Row,
    SQLFactory,
    factory_for,
)
from pytest_oltpseed.db import table_ident
from pytest_oltpseed.domains import Domain
from pytest_oltpseed.errors import OltpseedError, UsageError
from pytest_oltpseed.profiles import DEFAULT_AS_OF, Profile
from pytest_oltpseed.seed import chunks, headers

Picker = Callable[[Any], Ref]


@dataclass(frozen=True)
class Stage:
    """One table to fill: ``count`` header rows (items follow their headers)."""

    domain: Domain
    table: str
    count: int
    batch_size: int

    @property
    def factory(self) -> type[SQLFactory]:
        return factory_for(self.table)

    @property
    def idempotent(self) -> bool:
        return bool(self.factory._natural_key)

    @property
    def item_tables(self) -> list[str]:
        return [items.table for _, items in self.factory._items()]


def plan(
    domains: Sequence[Domain], profile: Profile, only: Sequence[str] = ()
) -> list[Stage]:
    """The stages for ``domains`` at ``profile``, parents before children.

    ``only`` (``seed --only``) keeps the named stages, to finish an
    interrupted seed without inserting the committed stages a second time.
    """
    stages = [
        Stage(domain, table, profile.count(table), profile.batch_size)
        for domain in domains
        for table in domain.tables
        if table in profile.counts
    ]
    if not only:
        return stages
    names = [s.table for s in stages]
    unknown = [name for name in only if name not in names]
    if unknown:
        raise UsageError(
            f"unknown stage(s) in --only: {', '.join(unknown)} "
            f"(stages: {', '.join(names)})"
        )
    return [s for s in stages if s.table in only]


def parse_only(text: str | None) -> list[str]:
    """``--only a,b`` -> ``["a", "b"]``; given but empty is a usage error."""
    names = [name.strip() for name in (text or "").split(",") if name.strip()]
    if text is not None and not names:
        raise UsageError("--only needs stage names, e.g. --only consultas,exames")
    return names


def interrupted(stages: Sequence[Stage], done: Sequence[StageResult]) -> str:
    """What an interrupted seed left, and the exact way to finish it.

    Stages commit one by one, so the committed ones stay; a plain rerun would
    skip the upsert stages but insert the transactional ones again, so the
    message names the ``--only`` list that completes the run instead.
    """
    committed = [r.table for r in done]
    rest = [s for s in stages if s.table not in committed]
    again = [s.table for s in stages if s.table in committed and not s.idempotent]
    parts = [
        f"interrupted during {rest[0].table} (rolled back)" if rest else "interrupted",
        f"committed: {', '.join(committed) or 'no stage'}",
    ]
    if rest:
        parts.append(
            "to finish, run seed with the same options and --only "
            + ",".join(s.table for s in rest)
        )
    if again:
        parts.append(f"a plain rerun would insert {', '.join(again)} a second time")
    return "; ".join(parts)


@dataclass
class StageResult:
    table: str
    written: int = 0
    skipped: int = 0
    items: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class Hook(Protocol):
    """A domain's cross-row rule for one stage (see ``domains/*/seeding.py``)."""

    def prepare(self, seeder: Seeder, stage: Stage, pickers: dict[str, Picker]) -> int:
        """Load what the rule needs, adjust ``pickers``; return the rows to write."""

    def accept(self, row: Row) -> None:
        """Record a generated header row (after its items are final)."""


# Any hook may also define ``finish(seeder, stage)``: called in the stage's
# transaction once its rows are written (a generated domain fills an FK that
# closes a cycle there).


@runtime_checkable
class PlannedParents(Protocol):
    """A hook that decides each row's parents up front (rows stay rule-free)."""

    def plan(self, seeder: Seeder, stage: Stage) -> tuple[chunks.Positional, int]:
        """FK column -> (row number -> Ref), and the number of rows to write."""


POOL_PAGE = 50_000
_ID_SPAN = """
SELECT min(id), max(id), count(id), EXISTS (
    SELECT 1 FROM pg_index i
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
    WHERE i.indrelid = {name}::regclass AND i.indisunique AND i.indnatts = 1
    AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = 'id')
FROM {table}
"""
"""The ids' span and count, and whether they are unique (then a span as
long as the count is every id)."""
_MICROSECOND = timedelta(microseconds=1)


class ParentPool:
    """Ids and carried columns of a parent table: compact, picked uniformly."""

    def __init__(self, conn: psycopg.Connection, table: str, carry: Sequence[str]):
        self.table = table
        self.carry = tuple(carry)
        self.ids = array("q")
        self.values: dict[str, list[Any]] = {c: [] for c in self.carry}
        if not self.carry and self._contiguous(conn):
            pass  # a freshly seeded table: its ids are one range, none fetched
        else:
            self._fetch(conn)
        self._index: dict[int, int] | None = None
        self._id_array: Any = None
        self._seconds: dict[str, Any] = {}

    def _contiguous(self, conn: psycopg.Connection) -> bool:
        """Take the ids as ``range(min, max + 1)`` when they are exactly that
        (a table seeded in one go: its ``bigserial`` numbered it without a
        gap): one aggregate instead of every id through the wire (200,000
        patients: ~0.5 s of server and transfer under load)."""
        ident = table_ident(self.table)
        row = conn.execute(
            sql.SQL(_ID_SPAN).format(
                table=ident, name=sql.Literal(ident.as_string(conn))
            )
        ).fetchone()
        if not row or not row[3] or not row[2] or row[1] - row[0] + 1 != row[2]:
            return False
        self.ids = array("q", range(row[0], row[1] + 1))
        return True

    def _fetch(self, conn: psycopg.Connection) -> None:
        # Pages by id: a round trip per 50,000 rows, not a wait per row (what
        # ``cursor.stream`` costs), and memory bounded by a page.
        query = sql.SQL("SELECT {} FROM {} WHERE id > %s ORDER BY id LIMIT %s").format(
            sql.SQL(", ").join(map(sql.Identifier, ("id", *self.carry))),
            table_ident(self.table),
        )
        carried = [self.values[c] for c in self.carry]
        last = -(2**63)  # the smallest bigint (ids are integers: see ``ids``)
        with conn.cursor() as cur:
            while True:
                rows = cur.execute(query, (last, POOL_PAGE)).fetchall()
                if not rows:
                    break
                for row in rows:
                    self.ids.append(row[0])
                    for values, value in zip(carried, row[1:], strict=True):
                        values.append(value)
                last = rows[-1][0]
                if len(rows) < POOL_PAGE:
                    break

    def __len__(self) -> int:
        return len(self.ids)

    def ref(self, i: int) -> Ref:
        row = Row(id=self.ids[i])
        for column, values in self.values.items():
            row[column] = values[i]
        return Ref(self.table, row)

    def ref_for(self, parent_id: int) -> Ref:
        if self._index is None:
            self._index = {pid: i for i, pid in enumerate(self.ids)}
        return self.ref(self._index[parent_id])

    def id_array(self) -> Any:
        """The ids as a NumPy array (the column-wise path), built once."""
        if self._id_array is None:
            import numpy as np

            self._id_array = np.frombuffer(self.ids, dtype=np.int64)
        return self._id_array

    def seconds(self, column: str) -> Any:
        """A carried timestamp column as NumPy seconds since the epoch."""
        if column not in self._seconds:
            import numpy as np

            # Exact microseconds since the epoch, floored to seconds as
            # :func:`columns.to_seconds` does. (``np.array(values,
            # "datetime64[us]")`` gives the same in ~9x the time: 1 s for
            # 200,000 patients under load.)
            values = self.values[column]
            try:
                micros = np.fromiter(
                    ((v - columns.EPOCH) // _MICROSECOND for v in values),
                    dtype=np.int64,
                    count=len(values),
                )
            except TypeError:  # a NULL or a date: NumPy's own conversion
                micros = np.array(values, dtype="datetime64[us]").astype(np.int64)
            self._seconds[column] = micros // 1_000_000
        return self._seconds[column]

    def picker(self, rng: random.Random) -> Picker:
        if not self.ids:
            raise OltpseedError(
                f"{self.table} is empty: seed it first (its profile count is 0?)"
            )
        size, draw = len(self.ids), rng.random
        return lambda _row: self.ref(int(draw() * size))


class Seeder:
    """Runs stages in FK order; a stage sees what the stages before it wrote."""

    def __init__(
        self,
        conn: psycopg.Connection,
        *,
        seed: int = 0,
        as_of: datetime | None = None,
        progress: Callable[[Stage, int], None] | None = None,
        workers: int = 0,
    ) -> None:
        """``workers`` > 0 generates large rule-free stages in that many forked
        processes, and runs independent stages on up to that many connections
        at once (see :meth:`run`); the rows are the same as without them."""
        self.conn = conn
        self.seed = seed
        self.as_of = as_of or DEFAULT_AS_OF
        self.ctx = Context(conn, seed=seed, as_of=self.as_of, sequences="local")
        self.workers = workers
        self.ctx.reserve_block = 1000  # invoice numbers & co: one UPDATE a thousand
        self.progress = progress
        self.done: list[StageResult] = []
        self._pools: dict[tuple[str, tuple[str, ...]], ParentPool] = {}
        self._pools_lock = threading.Lock()
        self._stop: threading.Event | None = None  # set on a lane (see _lane)

    def pool(self, table: str, carry: Sequence[str] = ()) -> ParentPool:
        """The parent ids of ``table`` (and ``carry``'s values), loaded once:
        a pool carrying more columns of the same table serves too (its ids
        are the same, in the same order)."""
        key = (table, tuple(carry))
        with self._pools_lock:  # lanes share the pools (see :meth:`_lane`)
            if key not in self._pools:
                wider = [
                    pool
                    for (name, carried), pool in self._pools.items()
                    if name == table and set(carry) <= set(carried)
                ]
                self._pools[key] = (
                    wider[0] if wider else ParentPool(self.conn, table, carry)
                )
            return self._pools[key]

    def run(self, stages: Iterable[Stage]) -> list[StageResult]:
        """Run ``stages``; :attr:`done` tells, after an interruption, which of
        them committed (each stage commits whole or not at all).

        With ``workers`` > 1, stages whose parents are all committed run at
        once, each in its own transaction on its own connection (lanes): the
        server copies, indexes and checks one table while the client generates
        the next. Only stages that cannot see each other run together (no FK
        between them, no hook with rules across its domain's tables beside
        that domain's other stages, no trigger of the domain's own); the rest
        wait for what they depend on (see :class:`_Lanes`).
        """
        stages = list(stages)
        self.done = []
        columns.warm(
            sum(headers.expected_rows(s.factory, s.count) for s in stages),
            max((s.count for s in stages), default=0),
        )
        if self.workers > 1 and len(stages) > 1:
            lanes = _Lanes(self, stages, self.workers)
            if lanes.useful():
                logs.get("seed").info("independent stages on %d lanes", lanes.lanes)
                lanes.run()
                order = {s.table: i for i, s in enumerate(stages)}
                return sorted(self.done, key=lambda r: order[r.table])
        for stage in stages:
            self.done.append(self.run_stage(stage))
        return list(self.done)

    def _lane(self, conn: psycopg.Connection, stop: threading.Event) -> Seeder:
        """A seeder for one lane: its own connection and context, this one's
        parent pools (read-only, loaded once for all lanes). It gives up at
        its next chunk once ``stop`` is set (another lane failed, or Ctrl-C)."""
        report = self.progress

        def progress(stage: Stage, done: int) -> None:
            if stop.is_set():
                raise _Stopped(stage.table)
            if report:
                report(stage, done)

        lane = Seeder(conn, seed=self.seed, as_of=self.as_of, progress=progress)
        lane._pools, lane._pools_lock = self._pools, self._pools_lock
        lane._stop = stop
        for key, next_index in self.ctx.local_indices():
            lane.ctx.note_index(key, next_index)
        return lane

    def run_stage(self, stage: Stage) -> StageResult:
        """Write one stage in one transaction; on any error it leaves nothing."""
        started = time.perf_counter()
        result = StageResult(stage.table, items={t: 0 for t in stage.item_tables})
        # Each stage has its own random stream: a table's rows do not depend on
        # which other domains or tables are seeded in the same run.
        self.ctx.rng = random.Random(f"{self.seed}:{stage.table}")
        before = dict(self.ctx.local_indices())
        with self.conn.transaction():
            hook = _hook(stage)
            run: Callable[[], None]
            if isinstance(hook, PlannedParents):
                positional, count = hook.plan(self, stage)
                run = partial(self._run_chunks, stage, result, count, positional)
            elif hook is None and not stage.item_tables:
                count = stage.count
                run = partial(self._run_chunks, stage, result, count)
            elif headers.columnar(stage.table):  # headers + items, column-wise
                count = headers.expected_rows(stage.factory, stage.count)
                run = partial(headers.run, self, stage, result, hook)
            else:
                pickers = self._pickers(stage.factory)
                count = hook.prepare(self, stage, pickers) if hook else stage.count
                run = partial(self._run_rows, stage, result, count, pickers, hook)
            checked = _SetChecked.start(self.conn, stage)
            deferred = (
                _Deferred(self.conn, stage, keep_foreign_keys=checked is not None)
                if count >= DEFER_AT and _Deferred.allowed(self.conn, stage)
                else None
            )
            run()
            if checked:
                checked.triggers_back()
            finish = getattr(hook, "finish", None)
            if finish is not None:  # a rule on rows already written (a cycle's FK)
                finish(self, stage)
            if deferred:
                deferred.restore()
            if checked:
                checked.validate()
            self._bump_sequences(stage.domain, before)
            if self._stop is not None and self._stop.is_set():
                raise _Stopped(stage.table)  # another lane failed: not this one
        with self._pools_lock:
            for table in (stage.table, *stage.item_tables):
                for key in [k for k in self._pools if k[0] == table]:
                    del self._pools[key]
        result.seconds = time.perf_counter() - started
        logs.get("seed").info(
            "%s: +%d (skipped=%d%s) in %.2fs",
            stage.table,
            result.written,
            result.skipped,
            "".join(f", {t} +{n}" for t, n in result.items.items()),
            result.seconds,
        )
        return result

    def _run_chunks(
        self,
        stage: Stage,
        result: StageResult,
        count: int,
        positional: chunks.Positional | None = None,
    ) -> None:
        """A stage without rules across rows (or with its parents planned):
        chunks of COPY text, from workers when it is large."""
        parts = chunks.plan_chunks(stage.table, count, self.seed, self.as_of)
        writer = _Writer(self.conn, stage)
        if (
            self.workers > 0
            and count >= PARALLEL_AT
            and _CAN_FORK
            and not chunks.column_wise(stage.table, count, positional)
        ):
            columns.numpy_settled()  # never fork with an import half done
            chunks.STAGE_POOLS.clear()
            for name, kind, declaration in stage.factory._plan():
                if kind is Parent and name not in (positional or {}):
                    key = (declaration.table, declaration.carry)
                    chunks.STAGE_POOLS[key] = self.pool(*key)
            chunks.STAGE_POSITIONAL.clear()
            chunks.STAGE_POSITIONAL.update(positional or {})
            context = multiprocessing.get_context("fork")
            try:
                with ProcessPoolExecutor(
                    self.workers, mp_context=context, initializer=chunks.quiet_worker
                ) as procs:
                    self._land_chunks(
                        stage, result, writer, parts, procs.map(chunks.work, parts)
                    )
            finally:
                chunks.STAGE_POOLS.clear()
                chunks.STAGE_POSITIONAL.clear()
        else:
            rendered = (chunks.render(part, self.pool, positional) for part in parts)
            self._land_chunks(stage, result, writer, parts, rendered)

    def _land_chunks(
        self,
        stage: Stage,
        result: StageResult,
        writer: _Writer,
        parts: list[chunks.Chunk],
        rendered: Iterable[tuple[bytes, list[tuple[tuple[str, str], int]]]],
    ) -> None:
        """COPY chunk n on a writer thread while chunk n+1 is generated (here or
        received from a worker): the server ingests as the client generates."""
        done = 0
        with ThreadPoolExecutor(1, thread_name_prefix="oltpseed-copy") as pool:
            pending: Future[None] | None = None
            try:
                for part, (data, used) in zip(parts, rendered, strict=True):
                    if pending:
                        pending.result()
                    pending = pool.submit(writer.write_text, data, part.size, result)
                    for key, next_index in used:
                        self.ctx.note_index(key, next_index)
                    done += part.size
                    if self.progress:
                        self.progress(stage, done)
                if pending:
                    pending.result()
            finally:
                if pending and not pending.done():
                    wait([pending])

    def _run_rows(
        self,
        stage: Stage,
        result: StageResult,
        count: int,
        pickers: dict[str, Picker],
        hook: Hook | None,
    ) -> None:
        """A stage with rules across rows: rows in order, COPY on a writer thread."""
        writer = _Writer(self.conn, stage)
        with ThreadPoolExecutor(1, thread_name_prefix="oltpseed-copy") as pool:
            pending: Future[None] | None = None
            try:
                done = 0
                while done < count:
                    size = min(stage.batch_size, count - done)
                    rows = []
                    for _ in range(size):
                        row = stage.factory.make_row(self.ctx, pickers)
                        if hook:
                            hook.accept(row)  # before the next row picks stock
                        rows.append(row)
                    if pending:
                        pending.result()
                    # COPY this batch on the writer thread while the next one is
                    # generated: the server's core works as ours does.
                    pending = pool.submit(writer.write, rows, result)
                    done += size
                    if self.progress:
                        self.progress(stage, done)
                if pending:
                    pending.result()
            finally:
                if pending and not pending.done():
                    wait([pending])

    def _pickers(self, factory: type[SQLFactory]) -> dict[str, Picker]:
        pickers: dict[str, Picker] = {}
        factories = [(factory, None)] + [
            (factory_for(items.table), items.fk) for _, items in factory._items()
        ]
        for each, header_fk in factories:
            for name, declaration in each._declarations():
                if isinstance(declaration, Parent) and name != header_fk:
                    pool = self.pool(declaration.table, declaration.carry)
                    pickers[name] = pool.picker(self.ctx.rng)
        return pickers

    def _bump_sequences(
        self, domain: Domain, before: Mapping[tuple[str, str], int]
    ) -> None:
        """Leave the identifier sequences past what this run numbered itself,
        so factories and streams never hand out a seeded identifier again.

        Only the keys this stage moved (``before``: the indices at its start):
        the others were bumped by the stage that used them. In sorted order,
        so stages bumping on several connections at once lock alike.
        """
        for (name, key), next_index in sorted(self.ctx.local_indices()):
            if name == domain.name and before.get((name, key)) != next_index:
                indices.bump(self.conn, name, key, next_index)


class _Stopped(Exception):
    """A lane's stage given up because another lane failed (it rolls back)."""


class _Lanes:
    """Stages run at once on several connections (see :meth:`Seeder.run`).

    A stage may start once every stage it depends on has committed: the
    stages of its FKs' parent tables. A stage whose rules reach its domain's
    other tables (items, a hook with rules across rows) keeps its domain's
    order, and may run beside other domains' stages (domains share no
    tables). A stage with a domain trigger on INSERT (it may touch anything)
    or that forks generation workers runs alone: all before it have
    committed and none starts until it has. Rows are the same as in order:
    a stage's rows depend only on the seed, its table and its parents (and,
    for the ordered ones, its domain's stages before it).
    """

    def __init__(self, seeder: Seeder, stages: list[Stage], lanes: int) -> None:
        self.seeder = seeder
        self.stages = stages
        self.lanes = lanes
        conn = seeder.conn
        # Only from outside a transaction: other connections must see the
        # schema and the parents, and each stage must commit on its own.
        self.possible = conn.info.transaction_status == TransactionStatus.IDLE
        self.after: list[set[int]] = []
        self.alone: list[bool] = []
        if not self.possible:
            return
        tables = [t for s in stages for t in (s.table, *s.item_tables)]
        parents: dict[str, set[str]] = {}
        for child, parent in conn.execute(_PARENTS, (tables,)):
            parents.setdefault(child, set()).add(parent)
        triggered = {t for (t,) in conn.execute(_OWN_TRIGGERS, (tables,))}
        path, role, user = conn.execute(
            "SELECT current_setting('search_path'), current_user, session_user"
        ).fetchone() or ("", "", "")
        if conn.info.transaction_status != TransactionStatus.IDLE:
            conn.rollback()  # only catalog reads: leave the caller as it was
        self.session = (path, role if role != user else None)
        serial: list[bool] = []
        for i, stage in enumerate(stages):
            mine = {stage.table, *stage.item_tables}
            needs = set().union(*(parents.get(t, set()) for t in mine)) - mine
            self.after.append({j for j in range(i) if stages[j].table in needs})
            self.alone.append(self._forks(stage) or bool(mine & triggered))
            serial.append(self._reads_its_domain(stage))
        # A stage whose rules read or write its domain's other tables runs in
        # its domain's order: after all of its domain's stages before it, and
        # before all after it. Other domains' stages may share its time.
        for i, stage in enumerate(stages):
            same = [
                j for j, s in enumerate(stages) if s.domain.name == stage.domain.name
            ]
            if serial[i]:
                self.after[i] |= {j for j in same if j < i}
                for k in same:
                    if k > i:
                        self.after[k].add(i)

    @staticmethod
    def _reads_its_domain(stage: Stage) -> bool:
        """Items, a hook with rules across rows (retail's stock reads the
        entries before it), or a ``finish`` hook (a cycle's FK)."""
        hook = _hook(stage)
        if stage.item_tables or getattr(hook, "finish", None) is not None:
            return True
        return hook is not None and not isinstance(hook, PlannedParents)

    def _forks(self, stage: Stage) -> bool:
        """Whether the stage forks generation workers: never beside a lane's
        thread (a fork copies its locks and its connection mid-statement)."""
        return (
            self.seeder.workers > 0
            and stage.count >= PARALLEL_AT
            and _CAN_FORK
            and not (
                chunks.columnar(stage.table) and columns.fast_expected(stage.count)
            )
        )

    def useful(self) -> bool:
        """Whether two stages could ever run at once (else: plain order)."""
        return self.possible and any(
            not self.alone[i] and not self.alone[j] and j not in self.after[i]
            for i in range(len(self.stages))
            for j in range(i)
        )

    def run(self) -> None:
        seeder = self.seeder
        idle: list[psycopg.Connection] = [seeder.conn]
        opened: list[psycopg.Connection] = []
        running: dict[Future[StageResult], tuple[int, psycopg.Connection, Seeder]] = {}
        finished: set[int] = set()
        started: set[int] = set()
        stop = threading.Event()
        with ThreadPoolExecutor(self.lanes, thread_name_prefix="oltpseed-lane") as pool:
            try:
                while len(finished) < len(self.stages):
                    for i in self._ready(started, finished, running):
                        started.add(i)
                        if self.alone[i]:  # here, with forked workers if any
                            seeder.done.append(seeder.run_stage(self.stages[i]))
                            finished.add(i)
                            continue
                        if not idle:
                            conn = _connect_like(seeder.conn, *self.session)
                            opened.append(conn)
                            idle.append(conn)
                        conn = idle.pop()
                        lane = seeder._lane(conn, stop)
                        future = pool.submit(lane.run_stage, self.stages[i])
                        running[future] = (i, conn, lane)
                    if not running:
                        continue
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        i, conn, lane = running.pop(future)
                        idle.append(conn)
                        seeder.done.append(future.result())  # a failure: raise
                        finished.add(i)
                        for key, next_index in lane.ctx.local_indices():
                            seeder.ctx.note_index(key, next_index)
            except BaseException:
                # Ctrl-C or a failed stage: the other lanes stop at their next
                # chunk and their running statement is cancelled, so their
                # stages roll back whole; the committed ones stay (``done``).
                stop.set()
                for _, conn, _ in running.values():
                    with contextlib.suppress(Exception):
                        conn.cancel_safe()
                for future in list(running):
                    with contextlib.suppress(BaseException):
                        seeder.done.append(future.result())
                raise
            finally:
                for conn in opened:
                    with contextlib.suppress(Exception):
                        conn.close()

    def _ready(
        self, started: set[int], finished: set[int], running: Mapping[Any, Any]
    ) -> list[int]:
        """Stages that may start now, in plan order, within the free lanes."""
        ready: list[int] = []
        free = self.lanes - len(running)
        for i in range(len(self.stages)):
            if i in started:
                if self.alone[i] and i not in finished:
                    break  # nothing passes a stage that runs alone
                continue
            if self.alone[i]:
                if not running and not ready and all(j in finished for j in range(i)):
                    ready.append(i)
                break
            if len(ready) < free and self.after[i] <= finished:
                ready.append(i)
        return ready


def _connect_like(
    conn: psycopg.Connection, search_path: str, role: str | None
) -> psycopg.Connection:
    """Another connection as ``conn``: same server, database, user and
    options, with its search_path and role (a lane of :class:`_Lanes`)."""
    info = conn.info
    conninfo = make_conninfo(info.dsn, password=info.password or None)
    other = psycopg.connect(conninfo)
    other.execute("SELECT set_config('search_path', %s, false)", (search_path,))
    if role:
        other.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    other.commit()
    return other


_PARENTS = """
SELECT f.conrelid::regclass::text, f.confrelid::regclass::text
FROM pg_constraint f
WHERE f.contype = 'f' AND f.conrelid = ANY(SELECT unnest(%s::text[])::regclass)
"""
_OWN_TRIGGERS = """
SELECT DISTINCT g.tgrelid::regclass::text FROM pg_trigger g
WHERE NOT g.tgisinternal AND g.tgenabled <> 'D' AND (g.tgtype & 4) <> 0
AND g.tgrelid = ANY(SELECT unnest(%s::text[])::regclass)
"""

DEFER_AT = 20_000
"""Stages this large drop their FKs and secondary indexes and restore them after."""
PARALLEL_AT = 20_000
"""Rule-free stages this large are generated by worker processes (when enabled)."""
_CAN_FORK = "fork" in multiprocessing.get_all_start_methods()


class _Deferred:
    """Spec 000 §5.3, made safe: FKs and secondary indexes of a large stage's
    tables are dropped inside the stage's transaction and re-created at its
    end. Re-adding a FK validates every row in one set-based check, so a bad
    row still fails the stage, and the whole change is atomic: on any error
    PostgreSQL restores the constraints with the rollback. While the stage
    runs, its tables are locked against other writers.
    """

    @staticmethod
    def allowed(conn: psycopg.Connection, stage: Stage) -> bool:
        """Whether this role may drop and re-add the stage's FKs and indexes.

        That needs ownership of the stage's tables (and REFERENCES on their
        parents); a DML-only role seeds without the speed-up instead of failing.
        """
        row = conn.execute(
            "WITH t AS (SELECT unnest(%s::text[])::regclass AS oid) "
            "SELECT (SELECT bool_and(pg_has_role(c.relowner, 'USAGE')) "
            "FROM pg_class c JOIN t USING (oid)) "
            "AND (SELECT coalesce(bool_and(has_table_privilege("
            "f.confrelid, 'REFERENCES')), true) "
            "FROM pg_constraint f JOIN t ON f.conrelid = t.oid "
            "WHERE f.contype = 'f')",
            ([stage.table, *stage.item_tables],),
        ).fetchone()
        return bool(row and row[0])

    def __init__(
        self, conn: psycopg.Connection, stage: Stage, *, keep_foreign_keys: bool
    ) -> None:
        """``keep_foreign_keys``: their triggers are off (:class:`_SetChecked`),
        so only the indexes are dropped."""
        self.conn = conn
        tables = [stage.table, *stage.item_tables]
        self.constraints = (
            []
            if keep_foreign_keys
            else conn.execute(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
                "FROM pg_constraint WHERE contype = 'f' AND conrelid = ANY("
                "SELECT unnest(%s::text[])::regclass)",
                (tables,),
            ).fetchall()
        )
        self.indexes = conn.execute(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) "
            "FROM pg_index i WHERE NOT i.indisunique AND NOT i.indisprimary "
            "AND i.indrelid = ANY(SELECT unnest(%s::text[])::regclass)",
            (tables,),
        ).fetchall()
        for table, name, _ in self.constraints:
            conn.execute(
                sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                    sql.SQL(table), sql.Identifier(name)
                )
            )
        for name, _ in self.indexes:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.SQL(name)))

    def restore(self) -> None:
        for _, definition in self.indexes:
            self.conn.execute(definition)  # type: ignore[arg-type]
        for table, name, definition in self.constraints:
            self.conn.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                    sql.SQL(table), sql.Identifier(name), sql.SQL(definition)
                )
            )


class _SetChecked:
    """A stage's FKs checked once, set-based, instead of by a trigger per row.

    Inside the stage's transaction, ``session_replication_role = replica``
    (``SET LOCAL``: it ends with the transaction) keeps the FK triggers from
    firing on every copied row; at the end one anti-join per FK finds any row
    without its parent (the query ``ALTER TABLE ... ADD FOREIGN KEY`` runs),
    and a violation fails the stage, which rolls back whole. Nothing in the
    schema changes, so no lock is taken on the parent tables: stages that
    reference the same parents can run at once on several connections (see
    :meth:`Seeder.run`), where dropping and re-adding their FKs would queue
    them one behind the other on the parent's lock.

    Used only when the role may set the parameter (a superuser, or granted
    it), when every trigger firing on INSERT on the stage's tables is an FK's
    own (a domain's would be skipped too; ``updated_at`` ones fire on UPDATE),
    and when those tables and their parents
    are plain tables with validated FKs; otherwise the triggers fire as usual.
    """

    @classmethod
    def start(cls, conn: psycopg.Connection, stage: Stage) -> _SetChecked | None:
        tables = [stage.table, *stage.item_tables]
        row = conn.execute(_SET_CHECKABLE, (tables,)).fetchone()
        if not (row and row[0]):
            return None
        try:
            with conn.transaction():
                conn.execute("SET LOCAL session_replication_role = replica")
        except psycopg.errors.InsufficientPrivilege:
            return None
        return cls(conn, tables)

    def __init__(self, conn: psycopg.Connection, tables: Sequence[str]) -> None:
        self.conn = conn
        self.foreign_keys = conn.execute(_FOREIGN_KEYS, (list(tables),)).fetchall()

    def triggers_back(self) -> None:
        """Triggers fire again (a hook's ``finish`` updates rows as usual)."""
        self.conn.execute("SET LOCAL session_replication_role = DEFAULT")

    def validate(self) -> None:
        """Every FK holds for every row (MATCH SIMPLE or FULL, as declared)."""
        # As ALTER TABLE does for this check: the anti-join may hash in memory.
        self.conn.execute(
            "SELECT set_config('work_mem', current_setting('maintenance_work_mem'),"
            " true)"
        )
        for fk in self.foreign_keys:
            schema, table, name, parent_schema, parent, fk_columns, keys, full = fk
            child_cols = [sql.SQL("c.{}").format(sql.Identifier(c)) for c in fk_columns]
            match = sql.SQL(" AND ").join(
                sql.SQL("p.{} = {}").format(sql.Identifier(k), c)
                for k, c in zip(keys, child_cols, strict=True)
            )
            all_set = sql.SQL(" AND ").join(
                sql.SQL("{} IS NOT NULL").format(c) for c in child_cols
            )
            violation = sql.SQL(
                "({all_set} AND NOT EXISTS (SELECT 1 FROM ONLY {parent} p "
                "WHERE {match}))"
            ).format(
                all_set=all_set,
                parent=sql.Identifier(parent_schema, parent),
                match=match,
            )
            if full:  # MATCH FULL: some columns null and others not
                any_set = sql.SQL(" OR ").join(
                    sql.SQL("{} IS NOT NULL").format(c) for c in child_cols
                )
                violation = sql.SQL("{} OR (({}) AND NOT ({}))").format(
                    violation, any_set, all_set
                )
            query = sql.SQL("SELECT {} FROM ONLY {} c WHERE {} LIMIT 1").format(
                sql.SQL(", ").join(child_cols), sql.Identifier(schema, table), violation
            )
            bad = self.conn.execute(query).fetchone()
            if bad is not None:
                raise OltpseedError(
                    f"{table}: a seeded row violates {name} ({', '.join(fk_columns)}"
                    f" = {', '.join(map(str, bad))} is not in {parent}); "
                    "the stage was rolled back"
                )


_SET_CHECKABLE = """
WITH t AS (SELECT unnest(%s::text[])::regclass AS oid),
fk AS (SELECT f.* FROM pg_constraint f JOIN t ON f.conrelid = t.oid
       WHERE f.contype = 'f')
SELECT NOT EXISTS (
    SELECT 1 FROM pg_trigger g JOIN t ON g.tgrelid = t.oid
    LEFT JOIN pg_constraint c ON c.oid = g.tgconstraint
    WHERE g.tgenabled <> 'D' AND (g.tgtype & 4) <> 0  -- fires on INSERT
    AND NOT (g.tgisinternal AND c.contype = 'f'))
AND NOT EXISTS (SELECT 1 FROM fk WHERE NOT fk.convalidated)
AND NOT EXISTS (
    SELECT 1 FROM pg_class r
    WHERE (r.oid IN (SELECT oid FROM t) OR r.oid IN (SELECT confrelid FROM fk))
    AND (r.relkind <> 'r' OR EXISTS (
        SELECT 1 FROM pg_inherits i WHERE r.oid IN (i.inhrelid, i.inhparent))))
"""
"""Whether the stage's FKs can be checked set-based (see :class:`_SetChecked`)."""

_FOREIGN_KEYS = """
SELECT cn.nspname::text, c.relname::text, f.conname::text, pn.nspname::text,
       p.relname::text,
       ARRAY(SELECT a.attname::text FROM unnest(f.conkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = f.conrelid AND a.attnum = k.n
             ORDER BY k.i),
       ARRAY(SELECT a.attname::text FROM unnest(f.confkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = f.confrelid AND a.attnum = k.n
             ORDER BY k.i),
       f.confmatchtype = 'f'
FROM pg_constraint f
JOIN pg_class c ON c.oid = f.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
JOIN pg_class p ON p.oid = f.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace
WHERE f.contype = 'f' AND f.conrelid = ANY(SELECT unnest(%s::text[])::regclass)
ORDER BY 1, 2, 3
"""


def _rows(values: Iterable[Sequence[Any]]) -> Callable[[psycopg.Copy], None]:
    """A COPY feed writing ``values`` row by row (psycopg adapts each value)."""

    def feed(copy: psycopg.Copy) -> None:
        for value in values:
            copy.write_row(value)

    return feed


def _has_rows(conn: psycopg.Connection, table: str) -> bool:
    row = conn.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(table_ident(table))
    ).fetchone()
    return bool(row and row[0])


def _hook(stage: Stage) -> Hook | PlannedParents | None:
    module = stage.domain.load_seeding()
    hooks: Mapping[str, Callable[[], Hook | PlannedParents]] = getattr(
        module, "HOOKS", {}
    )
    make = hooks.get(stage.table)
    return make() if make else None


class _Writer:
    """COPY for one stage: straight in, or through staging for idempotent tables."""

    def __init__(self, conn: psycopg.Connection, stage: Stage) -> None:
        self.conn = conn
        self.stage = stage
        self.factory = stage.factory
        self.columns = self.factory.column_names()
        self.items = [
            (name, items, factory_for(items.table))
            for name, items in self.factory._items()
        ]
        self.staging: sql.Identifier | None = None
        # An empty table cannot conflict with rows whose keys are unique by
        # construction: COPY straight in. Otherwise stage, then upsert.
        if stage.idempotent and _has_rows(conn, stage.table):
            self.staging = sql.Identifier(f"oltpseed_stage_{stage.table}")
            conn.execute(
                sql.SQL(
                    "CREATE TEMP TABLE {s} ON COMMIT DROP AS SELECT {c} FROM {t} "
                    "WITH NO DATA"
                ).format(
                    s=self.staging,
                    c=self._cols(self.columns),
                    t=table_ident(stage.table),
                )
            )

    @staticmethod
    def _cols(names: Sequence[str]) -> sql.Composable:
        return sql.SQL(", ").join(map(sql.Identifier, names))

    def _copy(
        self,
        table: sql.Identifier,
        columns: Sequence[str],
        feed: Callable[[psycopg.Copy], object],
    ) -> None:
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            table, self._cols(columns)
        )
        with self.conn.cursor() as cur, cur.copy(statement) as copy:
            feed(copy)

    def write(self, rows: list[Row], result: StageResult) -> None:
        """Land header rows (allocating ids when they have items), then items."""
        columns = list(self.columns)
        if self.items:
            ids = self._allocate(len(rows))
            for row, new_id in zip(rows, ids, strict=True):
                row["id"] = new_id
            columns = ["id", *columns]
        self._land(
            len(rows), result, _rows(self._values(rows, columns, self.factory)), columns
        )
        for name, items, child in self.items:
            child_columns = child.column_names()
            children = []
            for row in rows:
                for item in row[name]:
                    item[items.fk] = row["id"]
                    children.append(item)
            self._copy(
                table_ident(items.table),
                child_columns,
                _rows(self._values(children, child_columns, child)),
            )
            result.items[items.table] += len(children)

    def write_text(self, data: bytes, rows: int, result: StageResult) -> None:
        """Land ``rows`` rows given as COPY text (the chunked path)."""
        self._land(rows, result, lambda copy: copy.write(data), self.columns)

    def _land(
        self,
        rows: int,
        result: StageResult,
        feed: Callable[[psycopg.Copy], object],
        columns: Sequence[str],
    ) -> None:
        """COPY into the table, or into staging then upsert; count what landed."""
        self._copy(self.staging or table_ident(self.stage.table), columns, feed)
        if self.staging is None:
            result.written += rows
            return
        with self.conn.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "INSERT INTO {t} ({c}) SELECT {c} FROM {s} ON CONFLICT DO NOTHING"
                ).format(
                    t=table_ident(self.stage.table),
                    c=self._cols(columns),
                    s=self.staging,
                )
            )
            inserted = max(cur.rowcount, 0)
            cur.execute(sql.SQL("TRUNCATE {}").format(self.staging))
        result.written += inserted
        result.skipped += rows - inserted

    @staticmethod
    def _values(
        rows: list[Row], columns: Sequence[str], factory: type[SQLFactory]
    ) -> Iterator[list[Any]]:
        """Rows as COPY values; FK columns holding a Ref become the parent id."""
        parents = {n for n, kind, _ in factory._plan() if kind is Parent}
        refs = [i for i, c in enumerate(columns) if c in parents]
        for row in rows:
            values = [row[c] for c in columns]
            for i in refs:
                if type(values[i]) is Ref:
                    values[i] = values[i].row["id"]
            yield values

    def _allocate(self, n: int) -> list[int]:
        rows = self.conn.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) "
            "FROM generate_series(1, %s)",
            (self.stage.table, n),
        ).fetchall()
        return [int(r[0]) for r in rows]
