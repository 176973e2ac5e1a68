"""``oltpseed stream``: scheduler, batches, error policy, signals, ledger.

A batch is one transaction. Its events are first sent in pipeline mode (no
wait on the server per event); if one of them hits a soft error (a unique,
check or FK violation) the batch is rolled back and replayed event by event,
each inside a savepoint, so only the failing event is lost and logged. A
deadlock or serialization failure (SQLSTATE class 40) rolls the whole batch
back and replays it, a few times at most. A critical error (connection lost,
server shut down) rolls the batch back and reconnects with exponential
backoff. The transaction id is
read before COMMIT, so a COMMIT whose acknowledgement was lost is settled
with ``pg_xact_status()`` after reconnecting: the ledger counts exactly the
committed batches.

SIGINT/SIGTERM: the current event finishes, the completed part of the open
batch is committed, the report is written and the run ends (exit 0). A
second signal aborts at once: the open batch is rolled back (exit 130).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import random
import re
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from pytest_oltpseed import logs
from pytest_oltpseed.cdc import TAG
from pytest_oltpseed.cdc.changes import ChangesWriter, short_xid
from pytest_oltpseed.config import StreamSettings
from pytest_oltpseed.data.factory import Statement, changed_keys
from pytest_oltpseed.db import first_line, table_counts
from pytest_oltpseed.domains import Domain, tables_of
from pytest_oltpseed.errors import DatabaseUnavailable, OltpseedError, UsageError
from pytest_oltpseed.profiles import DEFAULT_AS_OF
from pytest_oltpseed.stream import pausing
from pytest_oltpseed.stream.events import (
    Event,
    Mix,
    NotApplicable,
    StreamContext,
    domain_warmers,
    resolve_every,
)
from pytest_oltpseed.stream.ledger import Ledger, write_report
from pytest_oltpseed.stream.progress import Progress
from pytest_oltpseed.stream.schedule import IntervalSchedule, RateSchedule, Schedule

SOFT = (pg_errors.IntegrityError,)  # the failing event is skipped, the rest kept
CRITICAL = (psycopg.OperationalError, psycopg.InterfaceError)  # see _retryable
RETRIES = 5  # replays of a batch after a deadlock or serialization failure
RETRY_BACKOFF_S = 0.02  # times the attempt, jittered, before a replay
RESYNC_S = 60.0  # totals re-counted from the tables this often
SETTLE_S = 30.0  # how long to wait for a COMMIT still "in progress" after a loss
NAP_S = 0.05  # sleeps are cut in naps so a signal is noticed at once
# Concurrent streams (--clients, --shard) update the same rows in batches, in
# no common order: deadlocks. PostgreSQL finds one only after deadlock_timeout
# (1 s, superuser-only to change), and every client waits meanwhile. A row
# lock waited for longer than this instead fails the batch at once (55P03),
# which is rolled back and replayed like a deadlock.
CONCURRENT_LOCK_TIMEOUT_MS = 100
LOCK_NOT_AVAILABLE = "55P03"


class GaveUp(OltpseedError):
    """The server stayed unreachable through every reconnect attempt."""


class Aborted(OltpseedError):
    """A second SIGINT/SIGTERM: the open batch was rolled back."""

    exit_code = 130


class _Recount:
    """The periodic COUNT(*) of the tables, on a connection of its own in a
    thread: on a big database it takes a good part of a second, which a batch
    must not wait for (it was a latency spike every minute). Our own commits
    made while it counted are added on top (the totals are for display)."""

    def __init__(
        self, connect: Callable[[], psycopg.Connection], tables: Sequence[str]
    ) -> None:
        self.connect, self.tables = connect, list(tables)
        self.thread: threading.Thread | None = None
        self.counts: dict[str, int] | None = None
        self.base: Counter[str] = Counter()

    def start(self, own: Counter[str]) -> None:
        if self.thread is not None and self.thread.is_alive():
            return
        self.base, self.counts = Counter(own), None
        self.thread = threading.Thread(
            target=self._count, name="oltpseed-recount", daemon=True
        )
        self.thread.start()

    def _count(self) -> None:
        with contextlib.suppress(Exception):  # the stream's own errors say more
            conn = self.connect()
            try:
                conn.autocommit = True  # no COMMIT of ours on the wire
                counts = table_counts(conn, self.tables)
            finally:
                conn.close()
            self.counts = {t: n or 0 for t, n in counts.items()}

    def take(self, own: Counter[str]) -> dict[str, int] | None:
        """The fresh totals once counted (then None until the next count)."""
        if self.counts is None or (self.thread and self.thread.is_alive()):
            return None
        counts, self.counts = self.counts, None
        return {t: n + own[t] - self.base[t] for t, n in counts.items()}


class _StopRequested(Exception):
    """A stop signal arrived while reconnecting: end the run without a server."""


class _Abort(KeyboardInterrupt):
    """Raised by the signal handler; a KeyboardInterrupt so psycopg cancels
    the running query before letting it through."""


@dataclass(frozen=True)
class StreamOptions:
    """A run's knobs: the settings' ``[stream]`` values with the flags on top."""

    interval: float = 2.0
    jitter_ms: int = 400
    batch_size: int = 50
    rate: float | None = None
    duration: float | None = None
    max_events: int | None = None
    report: Path | None = None
    changes: Path | None = None
    progress_s: float = 10.0
    pause_file: Path | None = None  # watched besides the database's own sentinel
    pause_home: Path | None = None  # where that one lives (None: the oltpseed home)
    reconnect_base: float = 1.0
    reconnect_max: float = 30.0
    reconnect_attempts: int = 6
    fail_fast: bool = True
    seed: int = 0
    pool_seed: int = 0
    floor: datetime = DEFAULT_AS_OF
    every: tuple[tuple[str, int], ...] = ()  # (event, N): once every N batches
    clients: int = 1  # concurrent worker processes (workers.py)
    shard: tuple[int, int] | None = None  # (i, K): one of K independent streams

    @property
    def stamped(self) -> bool:
        """Changes lines carry their commit time: the file will be merged."""
        return self.clients > 1 or self.shard is not None

    @classmethod
    def from_settings(cls, stream: StreamSettings, **flags: Any) -> StreamOptions:
        base = cls(
            interval=stream.interval_seconds,
            jitter_ms=stream.max_jitter_ms,
            batch_size=stream.batch_size,
            progress_s=stream.progress_seconds,
            pause_file=stream.pause_file,
            reconnect_base=stream.reconnect_base_seconds,
            reconnect_max=stream.reconnect_max_seconds,
            reconnect_attempts=stream.reconnect_attempts,
            fail_fast=stream.fail_fast_on_critical,
            clients=stream.clients,
        )
        given = {k: v for k, v in flags.items() if v is not None}
        return cls(**{**asdict(base), **given})

    def outputs(self) -> dict[str, Path | None]:
        """The files the run replaces whole, by flag (for
        :func:`~.ledger.check_outputs`). ``--changes`` is not one: it is
        appended to as batches commit, so a FIFO or ``/dev/stdout`` is fine,
        and :meth:`ChangesWriter.open` (when the streamer is made, before any
        write) refuses a path it cannot open."""
        return {"--report": self.report}

    def describe(self) -> dict[str, Any]:
        shown = asdict(self)
        for key in ("report", "changes", "pause_file", "pause_home", "floor"):
            shown[key] = str(shown[key]) if shown[key] is not None else None
        shown["shard"] = shard_label(self.shard) if self.shard else None
        return shown


@dataclass
class _Planned:
    """An event of the open batch: when it was due and started, and what it
    wrote (``journal``) and learnt (``actions``) once ``complete``."""

    due: float
    started: float
    name: str = ""
    journal: list[Statement] = field(default_factory=list)
    actions: list[Callable[[], None]] = field(default_factory=list)
    complete: bool = False


class Streamer:
    """Runs the stream on one connection; ``run()`` returns the ledger.

    ``connect`` opens a new connection (used again after each loss). Lines,
    progress and errors go to the logger ``oltp.simulator.stream``.
    """

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection],
        domains: Sequence[Domain],
        mix: Mix,
        options: StreamOptions,
        *,
        setup: Callable[[psycopg.Connection], Any] | None = None,
        run_id: str | None = None,
    ) -> None:
        """``setup`` runs once on the first connection (the CLI installs the
        schema there), inside the run, so its failure still gets a report.

        ``options.changes`` is opened here, before anything is written: an
        unwritable path is one line and exit 2. The run closes it.
        """
        self.connect = connect
        self.changes = ChangesWriter.open(options.changes) if options.changes else None
        self.setup = setup
        self.domains = list(domains)
        self.mix = mix
        self.options = options
        self.every = resolve_every(self.domains, options.every)
        # events run last in their batch when other streams run at once
        self._late = (
            {e.name: e for e in mix.events if e.late} if options.stamped else {}
        )
        self._batches_begun = 0
        self.log = logs.get("stream")
        self.tables = tables_of(self.domains)
        self.ledger = Ledger(self.tables, run_id=run_id or new_run_id(options.shard))
        self.rng = random.Random(options.seed)
        self.conn: psycopg.Connection | None = None
        self.ctx: StreamContext | None = None
        self.stop_signal: int | None = None
        self.schedule: Schedule = self._schedule(time.monotonic())
        self.totals: dict[str, int] = {}
        self._deadline: float | None = None
        self.output = Progress(self.log, self.tables, options.progress_s)
        self._resync_at = time.monotonic()
        self._plan: list[_Planned] = []
        self._unsettled: str | None = None
        self.tagged = False  # set when the server runs wal_level=logical
        self._batch_number = 0
        self._pause_paths: list[Path] = []
        self._own: Counter[str] = Counter()  # rows added by our commits, per table
        self._recount = _Recount(connect, self.tables)
        self.labels: dict[str, Any] = {}  # added to the report (a client's number)

    def _schedule(self, now: float) -> Schedule:
        o = self.options
        if o.rate:
            return RateSchedule(o.rate, o.batch_size, now)
        return IntervalSchedule(
            o.interval, o.jitter_ms / 1000, o.batch_size, self.rng, now
        )

    # -- the run ---------------------------------------------------------------------
    def run(self) -> Ledger:
        ledger = self.ledger
        logging.getLogger("psycopg").addFilter(_TEARDOWN)  # once: same instance
        try:
            with self._signals():
                self.conn, reserve_conn = self._open()
                self._pause_paths = pausing.watched(
                    self.conn, self.options.pause_file, self.options.pause_home
                )
                if self.setup is not None:
                    self._setup(self.setup)
                self.ctx = StreamContext(
                    self.conn,
                    reserve_conn=reserve_conn,
                    seed=self.options.seed,
                    pool_seed=self.options.pool_seed,
                    floor=self.options.floor,
                )
                if self.changes is not None:
                    self.ctx.keyed = []  # the changed rows' ids, per write
                self._resync()
                self._warm()
                level = self.conn.execute("SHOW wal_level").fetchone()
                self.conn.rollback()
                self.tagged = bool(level and level[0] == "logical")
                self.log.info(
                    "stream %s: %s, %s, seed %d, events %s",
                    ledger.run_id,
                    ", ".join(d.name for d in self.domains),
                    self._pace(),
                    self.options.seed,
                    ", ".join(f"{e.name}={e.weight}" for e in self.mix.events),
                )
                began = time.monotonic()
                ledger.setup_s = began - ledger.started
                if self.options.duration:
                    self._deadline = began + self.options.duration
                self.schedule = self._schedule(began)
                try:
                    self._loop()
                except _StopRequested as stop:
                    ledger.error = f"stopped while reconnecting, {stop}"
            ledger.exit = "stopped" if self.stop_signal else "completed"
            if self.stop_signal:
                self.log.warning(
                    "stream: %s received: the current event finished and the "
                    "completed part of the batch was committed",
                    signal.Signals(self.stop_signal).name,
                )
            return ledger
        except _Abort:
            ledger.exit, ledger.error = (
                "aborted",
                "second signal: open batch rolled back",
            )
            self._drop_connection()
            raise Aborted(
                "aborted by a second signal: the open batch was rolled back"
            ) from None
        except BaseException as exc:
            ledger.exit = "gave_up" if isinstance(exc, GaveUp) else "failed"
            ledger.error = str(exc) if isinstance(exc, OltpseedError) else repr(exc)
            raise
        finally:
            ledger.ended = time.monotonic()
            self.output.lines(self.totals, force=True)
            self._write_report()
            self._drop_connection()
            if self.changes is not None:
                self.changes.close()

    def _setup(self, setup: Callable[[psycopg.Connection], Any]) -> None:
        """Run ``setup`` (atomic), again after a deadlock with another stream's
        batches or setup, a few times at most."""
        assert self.conn is not None
        for attempt in itertools.count(1):
            try:
                setup(self.conn)
                self.conn.commit()
                return
            except (psycopg.Error, OltpseedError) as exc:
                cause = exc if isinstance(exc, psycopg.Error) else exc.__context__
                if cause is None or not _retryable(cause) or attempt > RETRIES:
                    raise
                self.conn.rollback()
                self.log.warning(
                    "stream: setup: %s - retrying (%d/%d)",
                    first_line(cause),
                    attempt,
                    RETRIES,
                )
                if self._sleep(
                    RETRY_BACKOFF_S * 5 * attempt * (0.5 + self.rng.random())
                ):
                    raise

    def _warm(self) -> None:
        """Load the parent samples and the domains' derived state before the
        clock starts: on a big database the first batch would otherwise take
        seconds, and a rate stream would spend the next half minute catching
        up (the latency of every event meanwhile)."""
        assert self.conn is not None and self.ctx is not None
        self.ctx.warm(self.tables)
        for domain in self.domains:
            for warm in domain_warmers(domain):
                warm(self.ctx)
        self.conn.rollback()

    def _pace(self) -> str:
        o = self.options
        if o.rate:
            return f"{o.rate:g} events/s in batches of up to {o.batch_size}"
        return f"{o.batch_size} events every {o.interval:g}s +- {o.jitter_ms}ms"

    def _loop(self) -> None:
        while not self._finished():
            self._pause_if_asked()
            if self._finished():
                break
            try:
                self._batch()
            except CRITICAL as exc:
                self._lost(exc)
            self._tick()

    def _finished(self) -> bool:
        if self.stop_signal is not None:
            return True
        if self._deadline is not None and time.monotonic() >= self._deadline:
            return True
        limit = self.options.max_events
        return limit is not None and self.ledger.attempted >= limit

    # -- one batch -------------------------------------------------------------------
    def _batch(self) -> None:
        conn, ctx = self.conn, self.ctx
        assert conn is not None and ctx is not None
        if not self._wait_for_next():
            return
        ctx.tick()
        plan: list[_Planned] = []
        self._plan = plan
        for attempt in itertools.count(1):
            try:
                xid = self._write(plan, replay=attempt > 1)
                if xid is None:
                    conn.rollback()
                    return
                self._commit(xid, plan)
                return
            except psycopg.Error as exc:
                if not _retryable(exc):
                    if isinstance(exc, CRITICAL):
                        raise
                    self._fatal(exc)
                conn.rollback()
                ctx.rolled_back()
                if not self._retry(exc, attempt, len(plan)):
                    return

    def _write(self, plan: list[_Planned], *, replay: bool) -> str | None:
        """Run the batch's events (or replay them); its xid, None when empty.

        First pass: pipeline mode. A unique/check/FK violation, or a parent
        deleted under us, rolls back and replays event by event. A class 40
        error (deadlock, serialization failure) goes up to :meth:`_batch`,
        which rolls the whole batch back and replays it.
        """
        conn, ctx = self.conn, self.ctx
        assert conn is not None and ctx is not None
        if not replay:
            try:
                with conn.pipeline():
                    self._fill(plan)
                    return self._xid() if plan else None
            except (*SOFT, OltpseedError) as exc:
                if isinstance(exc, OltpseedError) and not _parent_missing(exc):
                    raise
                conn.rollback()
                ctx.rolled_back()
        plan[:] = self._replay(plan)
        return self._xid() if plan else None

    def _retry(self, exc: psycopg.Error, attempt: int, events: int) -> bool:
        """After a deadlock or serialization failure (rolled back): wait a
        little and say True to replay the batch; False once retries ran out
        (the batch is counted lost and the stream goes on)."""
        reason = f"{first_line(exc)} ({exc.sqlstate})"
        where = re.search(r'in relation "([^"]+)"', exc.diag.context or "")
        if where:  # which parent is hot: the row lock's or the deadlock's table
            reason += f" on {where.group(1)}"
        if exc.sqlstate == LOCK_NOT_AVAILABLE:  # waited as long as the lock lasts
            self.ledger.retried += 1
            if attempt == 1 or attempt % 50 == 0:
                self.log.warning(
                    "stream: a row lock held over %d ms (%s) - batch rolled back, "
                    "replaying it (attempt %d; replays while the lock is held)",
                    CONCURRENT_LOCK_TIMEOUT_MS,
                    reason,
                    attempt,
                )
            pause = RETRY_BACKOFF_S * min(attempt, 10) * (0.5 + self.rng.random())
            return not self._sleep(pause)
        if attempt > RETRIES:
            self.ledger.lost_batches += 1
            self.ledger.lost_events += events
            self.log.error(
                "stream: %s - batch of %d events rolled back after %d replays, "
                "not counted",
                reason,
                events,
                RETRIES,
            )
            return False
        self.ledger.retried += 1
        self.log.warning(
            "stream: %s - batch rolled back, replaying it (retry %d/%d)",
            reason,
            attempt,
            RETRIES,
        )
        return not self._sleep(RETRY_BACKOFF_S * attempt * (0.5 + self.rng.random()))

    def _wait_for_next(self) -> bool:
        """Sleep until the first event of the batch is due; False if stopped."""
        wait = self.schedule.peek(time.monotonic()) - time.monotonic()
        return wait <= 0 or not self._sleep(wait)

    def _fill(self, plan: list[_Planned]) -> None:
        """Run events until the batch is over (full, idle, stopped or bounded);
        with concurrent streams, the ``late`` ones last (see :class:`Event`)."""
        deferred: list[_Planned] = []
        try:
            self._fill_events(plan, deferred)
        except BaseException:
            plan.extend(deferred)  # not run yet: a replay makes them anew
            raise
        for planned in deferred:
            plan.append(planned)
            self._run_event(planned, self._late[planned.name])

    def _fill_events(self, plan: list[_Planned], deferred: list[_Planned]) -> None:
        limit = self.options.max_events
        room = None if limit is None else limit - self.ledger.attempted
        self._batches_begun += 1
        for event, every in self.every:
            if self._batches_begun % every == 0 and (room is None or room > 0):
                started = time.monotonic()
                planned = _Planned(started, started)
                plan.append(planned)
                self._run_event(planned, event)
        ctx = self.ctx
        assert ctx is not None
        while room is None or len(plan) + len(deferred) < room:
            now = time.monotonic()
            due = self.schedule.peek(now)
            wait = due - now
            in_batch = len(plan) + len(deferred)
            if self.schedule.batch_over(in_batch, wait) or self._finished():
                return
            if wait > 0 and self._sleep(wait):
                return
            started = time.monotonic()
            if self._deadline is not None and started >= self._deadline:
                return
            self.schedule.take(started)
            planned = _Planned(due, started)
            drawn = self.mix.draw(ctx.rng) if self._late else None
            if drawn is not None and drawn.name in self._late:
                planned.name = drawn.name
                deferred.append(planned)
                continue
            plan.append(planned)
            self._run_event(planned, drawn)

    def _run_event(self, planned: _Planned, first: Event | None = None) -> None:
        """Run one event (drawing another when it has nothing to act on),
        journaling its writes into ``planned``."""
        ctx = self.ctx
        assert ctx is not None
        tried: list[str] = []
        event = first or self.mix.draw(ctx.rng)
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
                event = self.mix.draw(ctx.rng, tried)
            finally:
                ctx.journal = None
        raise OltpseedError(
            "stream: no event can run (every weighted event needs rows that do "
            "not exist): give an event that inserts rows a weight "
            "(`oltpseed stream --dry-run` lists them)"
        )

    def _replay(self, plan: list[_Planned]) -> list[_Planned]:
        """The batch again, each event in a savepoint; the failing ones dropped.

        A complete event is replayed from its journal, statement for statement,
        so the event that failed fails again and alone; the event cut short
        when the error surfaced is made anew. An event whose cached parent was
        deleted is made anew once, with freshly drawn parents.
        """
        conn, ctx = self.conn, self.ctx
        assert conn is not None and ctx is not None
        by_name = {e.name: e for e in self.mix.events}
        by_name.update((e.name, e) for e, _ in self.every)
        kept: list[_Planned] = []
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
                    if isinstance(exc, OltpseedError) and not _parent_missing(exc):
                        raise
                    conn.execute("ROLLBACK TO SAVEPOINT oltpseed_event")
                    ctx.undo(mark)
                    if attempt == 1 and _parent_missing(exc):
                        ctx.reparent()  # a cached parent was deleted: pick again
                        exact = False
                        continue
                    self._skipped(planned.name, exc)
                    break
        return kept

    def _skipped(self, name: str, exc: BaseException) -> None:
        self.ledger.skip(name)
        diag = getattr(exc, "diag", None)
        table = getattr(diag, "table_name", None) or "stream"
        detail = getattr(diag, "message_detail", None) or ""
        constraint = getattr(diag, "constraint_name", None)
        self.log.warning(
            "%s: %s%s%s - event %s skipped",
            table,
            type(exc).__name__,
            f" on {constraint}" if constraint else "",
            f" ({detail})" if detail else f" ({first_line(exc)})",
            name,
        )

    def _xid(self) -> str:
        """The batch's transaction id (to settle a lost COMMIT), read just before
        COMMIT; with wal_level=logical the batch is also tagged in the WAL with
        the run id and its number, so ``oltpseed cdc verify`` can trace it."""
        assert self.conn is not None
        self._batch_number += 1
        if not self.tagged:
            row = self.conn.execute("SELECT pg_current_xact_id()::text").fetchone()
        else:
            tag = json.dumps({"run": self.ledger.run_id, "batch": self._batch_number})
            row = self.conn.execute(
                "SELECT pg_current_xact_id()::text, "
                "pg_logical_emit_message(true, %s, %s)",
                (TAG, tag),
            ).fetchone()
        assert row is not None
        return str(row[0])

    def _commit(self, xid: str, plan: list[_Planned]) -> None:
        conn, ctx = self.conn, self.ctx
        assert conn is not None and ctx is not None
        assert ctx.ledger is not None
        changes = [
            (t, op, n if isinstance(n, int) else max(n.rowcount, 0))
            for t, op, n in ctx.ledger
        ]
        keys = None if ctx.keyed is None else changed_keys(ctx.ledger, ctx.keyed)
        settled = False
        at = time.time_ns() if self.options.stamped else None  # orders clients' files
        try:
            conn.commit()
            committed = True
        except CRITICAL as exc:
            if _retryable(exc):  # the server answered: rolled back, replay it
                raise
            committed, settled = self._settle(xid, exc), True
        acked = time.monotonic()
        if not committed:
            self.ledger.lost_batches += 1
            self.ledger.lost_events += len(plan)
            ctx.rolled_back()
            return
        ctx.committed()
        self.ledger.record_batch(
            changes, (p.name for p in plan), ((acked - p.due) * 1000 for p in plan)
        )
        if self.changes is not None and keys is not None:  # committed: write it
            self.changes.write_batch(
                self.ledger.run_id, self._batch_number, short_xid(xid), keys, at
            )
        lags = [max(0.0, p.started - p.due) * 1000 for p in plan]
        for lag in lags:
            self.ledger.lag.add(lag)
        self.output.committed(changes, ((acked - p.due) * 1000 for p in plan), lags)
        for table, op, rows in changes:
            if op == "truncate":  # the table is empty now, whatever it held
                self._own[table] -= self.totals.get(table, 0)
                self.totals[table] = 0
            elif op != "update" and not settled:  # a settled batch: in the resync
                delta = rows if op == "insert" else -rows
                self.totals[table] = self.totals.get(table, 0) + delta
                self._own[table] += delta

    # -- critical errors -------------------------------------------------------------
    def _lost(self, exc: BaseException) -> None:
        """The batch died with the connection: count it lost, reconnect."""
        plan = self._plan
        self.ledger.lost_batches += 1
        self.ledger.lost_events += len(plan)
        if self.ctx is not None:
            self.ctx.rolled_back()
        self._reconnect(exc)

    def _settle(self, xid: str, exc: BaseException) -> bool:
        """COMMIT sent, answer lost: ask the server what became of ``xid``."""
        self._unsettled = xid
        status: str | None = None
        for _ in range(self.options.reconnect_attempts):
            self._reconnect(exc)
            try:
                status = self._xact_status(xid)
                break
            except CRITICAL as again:  # lost again while asking: reconnect, ask again
                exc = again
        else:
            raise GaveUp(
                f"stream: gave up settling the COMMIT of xid {xid}: {first_line(exc)}"
            )
        self._unsettled = None
        self.ledger.settled[str(status)] += 1
        self.log.warning(
            "stream: the COMMIT of xid %d lost its acknowledgement; the server "
            "says %s: batch %s",
            int(xid),
            status,
            "counted" if status == "committed" else "not counted",
        )
        return status == "committed"

    def _xact_status(self, xid: str) -> str | None:
        """``pg_xact_status``, waiting while the old backend still finishes."""
        assert self.conn is not None
        deadline = time.monotonic() + SETTLE_S
        while True:
            row = self.conn.execute(
                "SELECT pg_xact_status(%s::xid8)", (xid,)
            ).fetchone()
            self.conn.rollback()
            status = row[0] if row else None
            if status != "in progress" or time.monotonic() > deadline:
                return status
            self._sleep(0.2)

    def _reconnect(self, exc: BaseException) -> None:
        """Reconnect with exponential backoff; :class:`GaveUp` after the last try."""
        o = self.options
        reason = first_line(exc)
        self._drop_connection()
        began = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            delay = min(o.reconnect_base * 2 ** (attempt - 1), o.reconnect_max)
            total = str(o.reconnect_attempts) if o.fail_fast else "unbounded"
            self.log.error(
                "stream: connection lost (%s) - reconnecting in %.1fs (attempt %d/%s)",
                reason,
                delay,
                attempt,
                total,
            )
            if self._sleep(delay):
                raise _StopRequested(self._gave_up_line(attempt - 1, began, reason))
            try:
                self.conn, reserve_conn = self._open()
                break
            except (DatabaseUnavailable, *CRITICAL) as error:
                reason = first_line(error).removeprefix("cannot connect to ")
            if o.fail_fast and attempt >= o.reconnect_attempts:
                raise GaveUp(
                    "stream: gave up " + self._gave_up_line(attempt, began, reason)
                )
        assert self.ctx is not None
        self.ctx.conn, self.ctx.reserve_conn = self.conn, reserve_conn
        self.ledger.reconnects += 1
        self.log.warning(
            "stream: reconnected after %.1fs (attempt %d)",
            time.monotonic() - began,
            attempt,
        )
        self.schedule.rebase(time.monotonic())
        with contextlib.suppress(*CRITICAL):  # lost again: the next batch says so
            self._resync()

    def _gave_up_line(self, attempts: int, began: float, reason: str) -> str:
        unsettled = (
            f"; the last COMMIT (xid {self._unsettled}) could not be settled "
            "and is not counted"
            if self._unsettled
            else ""
        )
        return (
            f"after {attempts} reconnect attempt(s) over "
            f"{time.monotonic() - began:.0f}s: {reason}{unsettled}"
        )

    def _open(self) -> tuple[psycopg.Connection, psycopg.Connection]:
        """The batch connection and an autocommit one for identifier reservations."""
        conn = self.connect()
        try:
            if self.options.stamped:  # one of several concurrent streams
                conn.execute(f"SET lock_timeout = {CONCURRENT_LOCK_TIMEOUT_MS}")
                conn.commit()
            reserve = self.connect()
            reserve.autocommit = True
        except BaseException:
            conn.close()
            raise
        return conn, reserve

    def _drop_connection(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.rollback()
        for conn in (self.conn, self.ctx.reserve_conn if self.ctx else None):
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

    def _fatal(self, exc: psycopg.Error) -> None:
        diag = getattr(exc, "diag", None)
        table = getattr(diag, "table_name", None)
        with contextlib.suppress(Exception):
            assert self.conn is not None
            self.conn.rollback()
        raise OltpseedError(
            f"stream: {table + ': ' if table else ''}{first_line(exc)} "
            "(the open batch was rolled back)"
        ) from None

    # -- pause, signals, sleeping -----------------------------------------------
    def _pause_if_asked(self) -> None:
        """Park while a sentinel exists (see :mod:`~pytest_oltpseed.stream.pausing`)."""
        path = next((p for p in self._pause_paths if p.exists()), None)
        if path is None:
            return
        self.log.info("stream: paused (%s exists; `oltpseed resume` removes it)", path)
        began = time.monotonic()
        while path.exists() and self.stop_signal is None:
            self._sleep(0.25)
            self._tick()
        paused = time.monotonic() - began
        self.ledger.paused_s += paused
        if self.stop_signal is None:
            self.log.info("stream: resumed after %.1fs", paused)
        self.schedule.rebase(time.monotonic())

    def _sleep(self, seconds: float) -> bool:
        """Sleep in naps; True as soon as a stop was asked for."""
        end = time.monotonic() + seconds
        while self.stop_signal is None:
            left = end - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, NAP_S))
        return True

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self.stop_signal is not None:
                raise _Abort()
            self.stop_signal = signum

        with stop_signals(handler):
            yield

    # -- lines, progress, totals, report ----------------------------------------
    def _tick(self) -> None:
        self.output.lines(self.totals)
        if self.output.due():
            self.output.progress(self.ledger)
            self._write_report()
        if time.monotonic() - self._resync_at >= RESYNC_S:
            self._recount.start(self._own)
            self._resync_at = time.monotonic()
        fresh = self._recount.take(self._own)
        if fresh is not None:
            self.totals = fresh

    def _resync(self) -> None:
        """Totals from COUNT(*) (other writers' rows included), at once: at the
        start and after a reconnect. (The periodic one runs in the background:
        see :class:`_Recount`.)"""
        assert self.conn is not None
        counts = table_counts(self.conn, self.tables)
        self.conn.rollback()
        if self.ctx is not None:  # re-read derived state (others' writes) as well
            assert self.ctx.state is not None
            self.ctx.state.clear()
        self.totals = {t: n or 0 for t, n in counts.items()}
        self._resync_at = time.monotonic()

    def report(self) -> dict[str, Any]:
        return self.ledger.report(
            {
                "domains": [d.name for d in self.domains],
                "mode": "rate" if self.options.rate else "interval",
                "options": self.options.describe(),
                "weights": {e.name: e.weight for e in self.mix.events},
                "cdc_tagged": self.tagged,
                **(
                    {"shard": shard_label(self.options.shard)}
                    if self.options.shard
                    else {}
                ),
                **(
                    {
                        "changes": {
                            "path": str(self.changes.path),
                            "lines": self.changes.lines,
                        }
                    }
                    if self.changes is not None
                    else {}
                ),
                **self.labels,
            }
        )

    def _write_report(self) -> None:
        if self.options.report is None:
            return
        try:
            write_report(self.options.report, self.report())
        except OSError as exc:
            self.log.error(
                "stream: cannot write report %s: %s", self.options.report, exc
            )


def new_run_id(shard: tuple[int, int] | None = None) -> str:
    """A run id; a shard's says which shard it is (``3f9c2a1b-s1of4``), so
    ``cdc verify`` on merged files attributes each transaction to its shard."""
    base = uuid.uuid4().hex[: 8 if shard else 12]
    return f"{base}-s{shard[0]}of{shard[1]}" if shard else base


def shard_label(shard: tuple[int, int]) -> str:
    return f"{shard[0]}/{shard[1]}"


def parse_shard(text: str) -> tuple[int, int]:
    """``i/K`` (0 <= i < K) -> (i, K); one line (exit 2) otherwise."""
    head, _, tail = text.partition("/")
    try:
        index, count = int(head), int(tail)
    except ValueError:
        index, count = -1, 0
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"--shard {text!r}: expected i/K with 0 <= i < K, e.g. 0/4")
    return index, count


def stream_seed(seed: int, shard: tuple[int, int] | None, client: int) -> int:
    """The random seed of one stream of a run: independent per shard and client
    (a hash, not seed+i: neighbouring seeds of two runs must not overlap), and
    ``seed`` itself for a plain run (a seed repeats a one-client run)."""
    if shard is None and client == 0:
        return seed
    text = f"{seed}/{shard[0] if shard else 0}/{shard[1] if shard else 1}/{client}"
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest())


@contextlib.contextmanager
def stop_signals(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """``handler`` for SIGINT and SIGTERM during the block, the previous
    handlers restored after it (the one stream and the client pool share it)."""
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _retryable(exc: BaseException) -> bool:
    """SQLSTATE class 40 (deadlock, serialization failure): the server rolled
    the transaction back and it may simply be run again. psycopg makes these
    OperationalErrors, like a lost connection, so the class is read first."""
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return isinstance(exc, psycopg.Error) and (
        sqlstate.startswith("40") or sqlstate == LOCK_NOT_AVAILABLE
    )


class _PipelineTeardown(logging.Filter):
    """Drops psycopg's "error ignored terminating <Pipeline [BAD]>" warning:
    it repeats the error that left the pipeline, which the stream handles
    (replay or reconnect) and logs itself, and it would reach stderr raw."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("error ignored terminating")


_TEARDOWN = _PipelineTeardown()


def _parent_missing(exc: BaseException) -> bool:
    """An FK violation or a vanished cached row: the parent was deleted under us."""
    if isinstance(exc, pg_errors.ForeignKeyViolation):
        return True
    return isinstance(exc, OltpseedError) and "has no row with id" in str(exc)
