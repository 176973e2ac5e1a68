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

import multiprocessing
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Protocol, runtime_checkable

import psycopg

from pytest_oltpseed import logs
from pytest_oltpseed.data import columns, indices
from pytest_oltpseed.data.factory import (
    Context,
    Parent,
    Row,
    SQLFactory,
    factory_for,
)
from pytest_oltpseed.domains import Domain
from pytest_oltpseed.errors import UsageError
from pytest_oltpseed.profiles import DEFAULT_AS_OF, Profile
from pytest_oltpseed.seed import chunked, chunks, headers
from pytest_oltpseed.seed.constraints import _Deferred, _SetChecked
from pytest_oltpseed.seed.ids import IdBlock
from pytest_oltpseed.seed.lanes import _Lanes, _Stopped
from pytest_oltpseed.seed.parents import ParentPool, Picker
from pytest_oltpseed.seed.writer import _Writer, pipeline


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


DEFER_AT = 20_000
"""Stages this large drop their FKs and secondary indexes and restore them after."""
PARALLEL_AT = 20_000
"""Rule-free stages this large are generated by worker processes (when enabled)."""
_CAN_FORK = "fork" in multiprocessing.get_all_start_methods()


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
            in_chunks = isinstance(hook, PlannedParents) or (
                hook is None and not stage.item_tables
            )
            if isinstance(hook, PlannedParents):
                positional, count = hook.plan(self, stage)
                run = partial(chunked.run, self, stage, result, count, positional)
            elif in_chunks:
                count = stage.count
                run = partial(chunked.run, self, stage, result, count)
            elif headers.columnar(stage.table):  # headers + items, column-wise
                count = headers.expected_rows(stage.factory, stage.count)
                run = partial(headers.run, self, stage, result, hook)
            else:
                pickers = self._pickers(stage.factory)
                count = hook.prepare(self, stage, pickers) if hook else stage.count
                run = partial(self._run_rows, stage, result, count, pickers, hook)
            if in_chunks and count >= DEFER_AT:  # before its key may be dropped
                block = IdBlock.take(
                    self.conn, stage.table, count, stage.factory.column_names()
                )
                run = partial(run, block=block)
            checked = _SetChecked.start(self.conn, stage)
            finish = getattr(hook, "finish", None)
            deferred = (
                _Deferred(
                    self.conn,
                    stage,
                    keep_foreign_keys=checked is not None,
                    keys=finish is None,  # finish() updates rows by key
                )
                if count >= DEFER_AT and _Deferred.allowed(self.conn, stage)
                else None
            )
            run()
            if checked:
                checked.triggers_back()
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

    def _run_rows(
        self,
        stage: Stage,
        result: StageResult,
        count: int,
        pickers: dict[str, Picker],
        hook: Hook | None,
    ) -> None:
        """A stage with rules across rows: rows in order, each batch copied on
        a writer thread while the next is generated."""
        writer = _Writer(self.conn, stage)

        def jobs() -> Iterator[tuple[int, Callable[[], None]]]:
            for at in range(0, count, stage.batch_size):
                rows = []
                for _ in range(min(stage.batch_size, count - at)):
                    row = stage.factory.make_row(self.ctx, pickers)
                    if hook:
                        hook.accept(row)  # before the next row picks stock
                    rows.append(row)
                yield len(rows), partial(writer.write, rows, result)

        pipeline(self, stage, jobs())

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


def _hook(stage: Stage) -> Hook | PlannedParents | None:
    module = stage.domain.load_seeding()
    hooks: Mapping[str, Callable[[], Hook | PlannedParents]] = getattr(
        module, "HOOKS", {}
    )
    make = hooks.get(stage.table)
    return make() if make else None
