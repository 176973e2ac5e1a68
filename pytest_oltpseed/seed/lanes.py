"""Lanes: independent stages run at once on several connections (see
:meth:`.seeder.Seeder.run`). Moved out of :mod:`.seeder`; it imports that
module inside functions (the seeder imports this one), and reads
``seeder.PARALLEL_AT`` there so a changed threshold takes effect here too."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.pq import TransactionStatus

from pytest_oltpseed.data import columns
from pytest_oltpseed.db import regclass_names
from pytest_oltpseed.seed import chunks

if TYPE_CHECKING:
    from pytest_oltpseed.seed.seeder import Seeder, Stage, StageResult


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
        named = (tables, regclass_names(conn, tables))  # answers in our names
        parents: dict[str, set[str]] = {}
        for child, parent in conn.execute(_PARENTS, named):
            parents.setdefault(child, set()).add(parent)
        triggered = {t for (t,) in conn.execute(_OWN_TRIGGERS, named)}
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
            self.after.append(
                {
                    j
                    for j in range(i)
                    if needs & {stages[j].table, *stages[j].item_tables}
                }
            )
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
        self.priority = self._critical_paths()

    def _critical_paths(self) -> list[int]:
        """Each stage's rows plus the most rows on any chain of stages that
        waits for it: free lanes take the longest chain first, so the largest
        stage does not start last and run alone while the other lanes idle."""
        from pytest_oltpseed.seed import headers

        rows = [headers.expected_rows(s.factory, s.count) for s in self.stages]
        waiting: list[list[int]] = [[] for _ in self.stages]
        for i, needs in enumerate(self.after):
            for j in needs:
                waiting[j].append(i)
        priority = [0] * len(self.stages)
        for i in reversed(range(len(self.stages))):  # a stage waits only on earlier
            priority[i] = rows[i] + max((priority[k] for k in waiting[i]), default=0)
        return priority

    @staticmethod
    def _reads_its_domain(stage: Stage) -> bool:
        """Items, a hook with rules across rows (retail's stock reads the
        entries before it), or a ``finish`` hook (a cycle's FK)."""
        from pytest_oltpseed.seed import seeder as seed_module

        hook = seed_module._hook(stage)
        if stage.item_tables or getattr(hook, "finish", None) is not None:
            return True
        return hook is not None and not isinstance(hook, seed_module.PlannedParents)

    def _forks(self, stage: Stage) -> bool:
        """Whether the stage forks generation workers: never beside a lane's
        thread (a fork copies its locks and its connection mid-statement).
        The thresholds are read from :mod:`.seeder`, which forks (or not).
        Only chunked stages fork: headers with items and stages with rules
        across rows are generated in order, on their lane's thread."""
        from pytest_oltpseed.seed import seeder as seed_module

        hook = seed_module._hook(stage)
        if stage.item_tables or not (
            hook is None or isinstance(hook, seed_module.PlannedParents)
        ):
            return False
        return (
            self.seeder.workers > 0
            and stage.count >= seed_module.PARALLEL_AT
            and seed_module._CAN_FORK
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
        pool = ThreadPoolExecutor(self.lanes, thread_name_prefix="oltpseed-lane")
        try:
            with pool:
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
                        # A timed wait: Ctrl-C may reach a lane's thread, and
                        # the main thread runs the handler only once it wakes.
                        done, _ = wait(
                            running, timeout=_TICK, return_when=FIRST_COMPLETED
                        )
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
        finally:  # after the pool's shutdown: no lane still uses them
            for conn in opened:
                with contextlib.suppress(Exception):
                    conn.close()

    def _ready(
        self, started: set[int], finished: set[int], running: Mapping[Any, Any]
    ) -> list[int]:
        """Stages that may start now within the free lanes, the longest chain
        first (see :meth:`_critical_paths`); none passes a stage that runs
        alone, which starts once all before it have finished."""
        ready: list[int] = []
        for i in range(len(self.stages)):
            if i in started:
                if self.alone[i] and i not in finished:
                    break  # nothing passes a stage that runs alone
                continue
            if self.alone[i]:
                if not running and not ready and all(j in finished for j in range(i)):
                    return [i]
                break
            if self.after[i] <= finished:
                ready.append(i)
        ready.sort(key=lambda i: -self.priority[i])
        return ready[: self.lanes - len(running)]


_TICK = 0.2
"""Seconds between the main thread's looks at a pending signal while lanes run."""


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


_NAMED = """
WITH t AS (SELECT u.name, u.quoted::regclass AS oid
           FROM unnest(%s::text[], %s::text[]) AS u(name, quoted))
"""
_PARENTS = (
    _NAMED
    + """
SELECT c.name, p.name FROM pg_constraint f
JOIN t c ON c.oid = f.conrelid JOIN t p ON p.oid = f.confrelid
WHERE f.contype = 'f'
"""
)
"""(child, parent) pairs among the stages' tables, by oid: ``regclass::text``
may differ from a stage's name (quoted, or without a schema on the path)."""
_OWN_TRIGGERS = (
    _NAMED
    + """
SELECT DISTINCT t.name FROM pg_trigger g JOIN t ON g.tgrelid = t.oid
WHERE NOT g.tgisinternal AND g.tgenabled <> 'D' AND (g.tgtype & 4) <> 0
"""
)
