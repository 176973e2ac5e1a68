"""One batch of a stream: events written in one transaction, replayed when
something fails, committed and fed to the ledger.

The events are first sent in pipeline mode (no wait on the server per
event); a soft error (a unique, check or FK violation) rolls the batch back
and replays it event by event, each in a savepoint, so only the failing event
is lost and logged. A retryable error (deadlock, serialization failure, a
lock held too long) rolls the whole batch back and replays it, a few times at
most. A critical one goes up to the runner, which counts the batch lost
(:meth:`Batches.lost`) and reconnects.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import time
from typing import TYPE_CHECKING

import psycopg

from pytest_oltpseed.db import first_line
from pytest_oltpseed.errors import OltpseedError
from pytest_oltpseed.stream.events import Event, NotApplicable
from pytest_oltpseed.stream.faults import (
    CONCURRENT_LOCK_TIMEOUT_MS,
    CRITICAL,
    LOCK_NOT_AVAILABLE,
    RETRIES,
    RETRY_BACKOFF_S,
    SOFT,
    parent_missing,
    retryable,
)
from pytest_oltpseed.stream.settlement import Planned, Settlement

if TYPE_CHECKING:
    from pytest_oltpseed.stream.runner import Streamer


class Batches:
    """Writes a stream's batches on its connection, one at a time.

    Reads the run's state (connection, context, schedule, ledger, options)
    from ``run`` at each use: a reconnect replaces the connection, and the
    client pool replaces the progress output after the runner is made.
    """

    def __init__(self, run: Streamer) -> None:
        self.run = run
        self.plan: list[Planned] = []  # the open batch, counted lost with it
        self.settlement = Settlement(run)
        self.begun = 0  # batches begun (for --every)

    def batch(self) -> None:
        """Write the next batch: due events, one transaction, replays if need be."""
        conn, ctx = self.run.conn, self.run.ctx
        assert conn is not None and ctx is not None
        if not self._wait_for_next():
            return
        ctx.tick()
        plan: list[Planned] = []
        self.plan = plan
        for attempt in itertools.count(1):
            try:
                xid = self._write(plan, replay=attempt > 1)
                if xid is None:
                    conn.rollback()
                    return
                self.settlement.commit(xid, plan)
                return
            except psycopg.Error as exc:
                if not retryable(exc):
                    if isinstance(exc, CRITICAL):
                        raise
                    self._fatal(exc)
                conn.rollback()
                ctx.rolled_back()
                if not self._retry(exc, attempt, len(plan)):
                    return

    def _write(self, plan: list[Planned], *, replay: bool) -> str | None:
        """Run the batch's events (or replay them); its xid, None when empty.

        First pass: pipeline mode. A unique/check/FK violation, or a parent
        deleted under us, rolls back and replays event by event. A class 40
        error (deadlock, serialization failure) goes up to :meth:`_batch`,
        which rolls the whole batch back and replays it.
        """
        conn, ctx = self.run.conn, self.run.ctx
        assert conn is not None and ctx is not None
        if not replay:
            try:
                with conn.pipeline():
                    self._fill(plan)
                    return self.settlement.xid() if plan else None
            except (*SOFT, OltpseedError) as exc:
                if isinstance(exc, OltpseedError) and not parent_missing(exc):
                    raise
                conn.rollback()
                ctx.rolled_back()
        plan[:] = self._replay(plan)
        return self.settlement.xid() if plan else None

    def _retry(self, exc: psycopg.Error, attempt: int, events: int) -> bool:
        """After a deadlock or serialization failure (rolled back): wait a
        little and say True to replay the batch; False once retries ran out
        (the batch is counted lost and the stream goes on)."""
        reason = f"{first_line(exc)} ({exc.sqlstate})"
        where = re.search(r'in relation "([^"]+)"', exc.diag.context or "")
        if where:  # which parent is hot: the row lock's or the deadlock's table
            reason += f" on {where.group(1)}"
        if exc.sqlstate == LOCK_NOT_AVAILABLE:  # waited as long as the lock lasts
            self.run.ledger.retried += 1
            if attempt == 1 or attempt % 50 == 0:
                self.run.log.warning(
                    "stream: a row lock held over %d ms (%s) - batch rolled back, "
                    "replaying it (attempt %d; replays while the lock is held)",
                    CONCURRENT_LOCK_TIMEOUT_MS,
                    reason,
                    attempt,
                )
            pause = RETRY_BACKOFF_S * min(attempt, 10) * (0.5 + self.run.rng.random())
            return not self.run.stop.sleep(pause)
        if attempt > RETRIES:
            self.run.ledger.lost_batches += 1
            self.run.ledger.lost_events += events
            self.run.log.error(
                "stream: %s - batch of %d events rolled back after %d replays, "
                "not counted",
                reason,
                events,
                RETRIES,
            )
            return False
        self.run.ledger.retried += 1
        self.run.log.warning(
            "stream: %s - batch rolled back, replaying it (retry %d/%d)",
            reason,
            attempt,
            RETRIES,
        )
        return not self.run.stop.sleep(
            RETRY_BACKOFF_S * attempt * (0.5 + self.run.rng.random())
        )

    def _wait_for_next(self) -> bool:
        """Sleep until the first event of the batch is due; False if stopped."""
        wait = self.run.schedule.peek(time.monotonic()) - time.monotonic()
        return wait <= 0 or not self.run.stop.sleep(wait)

    def _fill(self, plan: list[Planned]) -> None:
        """Run events until the batch is over (full, idle, stopped or bounded);
        with concurrent streams, the ``late`` ones last (see :class:`Event`)."""
        deferred: list[Planned] = []
        try:
            self._fill_events(plan, deferred)
        except BaseException:
            plan.extend(deferred)  # not run yet: a replay makes them anew
            raise
        for planned in deferred:
            plan.append(planned)
            self._run_event(planned, self.run.late[planned.name])

    def _fill_events(self, plan: list[Planned], deferred: list[Planned]) -> None:
        limit = self.run.options.max_events
        room = None if limit is None else limit - self.run.ledger.attempted
        self.begun += 1
        for event, every in self.run.every:
            if self.begun % every == 0 and (room is None or room > 0):
                started = time.monotonic()
                planned = Planned(started, started)
                plan.append(planned)
                self._run_event(planned, event)
        ctx = self.run.ctx
        assert ctx is not None
        while room is None or len(plan) + len(deferred) < room:
            now = time.monotonic()
            due = self.run.schedule.peek(now)
            wait = due - now
            in_batch = len(plan) + len(deferred)
            if self.run.schedule.batch_over(in_batch, wait) or self.run.finished():
                return
            if wait > 0 and self.run.stop.sleep(wait):
                return
            started = time.monotonic()
            if self.run.deadline is not None and started >= self.run.deadline:
                return
            self.run.schedule.take(started)
            planned = Planned(due, started)
            drawn = self.run.mix.draw(ctx.rng) if self.run.late else None
            if drawn is not None and drawn.name in self.run.late:
                planned.name = drawn.name
                deferred.append(planned)
                continue
            plan.append(planned)
            self._run_event(planned, drawn)

    def _run_event(self, planned: Planned, first: Event | None = None) -> None:
        """Run one event (drawing another when it has nothing to act on),
        journaling its writes into ``planned``."""
        ctx = self.run.ctx
        assert ctx is not None
        tried: list[str] = []
        event = first or self.run.mix.draw(ctx.rng)
        while event is not None:
            planned.name, planned.journal = event.name, []
            mark = ctx.checkpoint()
            ctx.journal = planned.journal
            try:
                event.run(ctx)
                planned.actions = ctx.actions_since(mark)
                planned.complete = True
                return
            except NotApplicable:
                tried.append(event.name)
                event = self.run.mix.draw(ctx.rng, tried)
            finally:
                ctx.journal = None
        raise OltpseedError(
            "stream: no event can run (every weighted event needs rows that do "
            "not exist): give an event that inserts rows a weight "
            "(`oltpseed stream --dry-run` lists them)"
        )

    def _replay(self, plan: list[Planned]) -> list[Planned]:
        """The batch again, each event in a savepoint; the failing ones dropped.

        A complete event is replayed from its journal, statement for statement,
        so the event that failed fails again and alone; the event cut short
        when the error surfaced is made anew. An event whose cached parent was
        deleted is made anew once, with freshly drawn parents.
        """
        conn, ctx = self.run.conn, self.run.ctx
        assert conn is not None and ctx is not None
        by_name = {e.name: e for e in self.run.mix.events}
        by_name.update((e.name, e) for e, _ in self.run.every)
        kept: list[Planned] = []
        for planned in plan:
            exact = planned.complete
            for attempt in (1, 2):
                mark = ctx.checkpoint()
                conn.execute("SAVEPOINT oltpseed_event")
                try:
                    if exact:
                        for statement in planned.journal:
                            ctx.apply(statement)
                        for action in planned.actions:
                            ctx.after_commit(action)
                    else:
                        self._run_event(planned, by_name[planned.name])
                    conn.execute("RELEASE SAVEPOINT oltpseed_event")
                    kept.append(planned)
                    break
                except (*SOFT, OltpseedError) as exc:
                    if isinstance(exc, OltpseedError) and not parent_missing(exc):
                        raise
                    conn.execute("ROLLBACK TO SAVEPOINT oltpseed_event")
                    ctx.undo(mark)
                    if attempt == 1 and parent_missing(exc):
                        ctx.reparent()  # a cached parent was deleted: pick again
                        exact = False
                        continue
                    self._skipped(planned.name, exc)
                    break
        return kept

    def _skipped(self, name: str, exc: BaseException) -> None:
        self.run.ledger.skip(name)
        diag = getattr(exc, "diag", None)
        table = getattr(diag, "table_name", None) or "stream"
        detail = getattr(diag, "message_detail", None) or ""
        constraint = getattr(diag, "constraint_name", None)
        self.run.log.warning(
            "%s: %s%s%s - event %s skipped",
            table,
            type(exc).__name__,
            f" on {constraint}" if constraint else "",
            f" ({detail})" if detail else f" ({first_line(exc)})",
            name,
        )

    def lost(self, exc: BaseException) -> None:
        """The batch died with the connection: count it lost, reconnect."""
        plan = self.plan
        self.run.ledger.lost_batches += 1
        self.run.ledger.lost_events += len(plan)
        if self.run.ctx is not None:
            self.run.ctx.rolled_back()
        self.run.link.reconnect(exc)

    def _fatal(self, exc: psycopg.Error) -> None:
        diag = getattr(exc, "diag", None)
        table = getattr(diag, "table_name", None)
        with contextlib.suppress(Exception):
            assert self.run.conn is not None
            self.run.conn.rollback()
        raise OltpseedError(
            f"stream: {table + ': ' if table else ''}{first_line(exc)} "
            "(the open batch was rolled back)"
        ) from None
