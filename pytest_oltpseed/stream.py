"""``oltpseed stream``: scheduler, batches, error policy, signals, ledger.

A batch is one transaction. Its events are first sent in pipeline mode (no
wait on the server per event); if one of them hits a soft error (a unique,
check or FK violation, a deadlock) the batch is rolled back and replayed
event by event, each inside a savepoint, so only the failing event is lost
and logged. A critical error (connection lost, server shut down) rolls the
batch back and reconnects with exponential backoff. The transaction id is
read before COMMIT, so a COMMIT whose acknowledgement was lost is settled
with ``pg_xact_status()`` after reconnecting: the ledger counts exactly the
committed batches.

SIGINT/SIGTERM: the current event finishes, the completed part of the open
batch is committed, the report is written and the run ends (exit 0). A
second signal aborts at once: the open batch is rolled back (exit 130).
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import threading
import time
import uuid
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
from pytest_oltpseed.db import first_line, table_counts
from pytest_oltpseed.domains import Domain, tables_of
from pytest_oltpseed.errors import DatabaseUnavailable, OltpseedError
from pytest_oltpseed.events import (
    Event,
    Mix,
    NotApplicable,
    StreamContext,
    resolve_every,
)
from pytest_oltpseed.factory import Statement, changed_keys
from pytest_oltpseed.ledger import Ledger, write_report
from pytest_oltpseed.profiles import DEFAULT_AS_OF
from pytest_oltpseed.progress import Progress
from pytest_oltpseed.schedule import IntervalSchedule, RateSchedule, Schedule

SOFT = (pg_errors.IntegrityError, pg_errors.TransactionRollback)
CRITICAL = (psycopg.OperationalError, psycopg.InterfaceError)
RESYNC_S = 60.0  # totals re-counted from the tables this often
SETTLE_S = 30.0  # how long to wait for a COMMIT still "in progress" after a loss
NAP_S = 0.05  # sleeps are cut in naps so a signal is noticed at once


class GaveUp(OltpseedError):
    """The server stayed unreachable through every reconnect attempt."""


class Aborted(OltpseedError):
    """A second SIGINT/SIGTERM: the open batch was rolled back."""

    exit_code = 130


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
    pause_file: Path = Path(".paused")
    reconnect_base: float = 1.0
    reconnect_max: float = 30.0
    reconnect_attempts: int = 6
    fail_fast: bool = True
    seed: int = 0
    pool_seed: int = 0
    floor: datetime = DEFAULT_AS_OF
    every: tuple[tuple[str, int], ...] = ()  # (event, N): once every N batches

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
        )
        given = {k: v for k, v in flags.items() if v is not None}
        return cls(**{**asdict(base), **given})

    def describe(self) -> dict[str, Any]:
        shown = asdict(self)
        for key in ("report", "changes", "pause_file", "floor"):
            shown[key] = str(shown[key]) if shown[key] is not None else None
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
        self._batches_begun = 0
        self.log = logs.get("stream")
        self.tables = tables_of(self.domains)
        self.ledger = Ledger(self.tables, run_id=uuid.uuid4().hex[:12])
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
        try:
            with self._signals():
                self.conn, reserve_conn = self._open()
                if self.setup is not None:
                    self.setup(self.conn)
                    self.conn.commit()
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
        try:
            try:
                with conn.pipeline():
                    self._fill(plan)
                    xid = self._xid() if plan else None
            except (*SOFT, OltpseedError) as exc:
                if isinstance(exc, OltpseedError) and not _parent_missing(exc):
                    raise
                conn.rollback()
                ctx.rolled_back()
                plan[:] = self._replay(plan)
                xid = self._xid() if plan else None
        except psycopg.Error as exc:
            if isinstance(exc, CRITICAL):
                raise
            self._fatal(exc)
        if xid is None:
            conn.rollback()
            return
        self._commit(xid, plan)

    def _wait_for_next(self) -> bool:
        """Sleep until the first event of the batch is due; False if stopped."""
        wait = self.schedule.peek(time.monotonic()) - time.monotonic()
        return wait <= 0 or not self._sleep(wait)

    def _fill(self, plan: list[_Planned]) -> None:
        """Run events until the batch is over (full, idle, stopped or bounded)."""
        limit = self.options.max_events
        room = None if limit is None else limit - self.ledger.attempted
        self._batches_begun += 1
        for event, every in self.every:
            if self._batches_begun % every == 0 and (room is None or room > 0):
                started = time.monotonic()
                planned = _Planned(started, started)
                plan.append(planned)
                self._run_event(planned, event)
        while room is None or len(plan) < room:
            now = time.monotonic()
            due = self.schedule.peek(now)
            wait = due - now
            if self.schedule.batch_over(len(plan), wait) or self._finished():
                return
            if wait > 0 and self._sleep(wait):
                return
            started = time.monotonic()
            if self._deadline is not None and started >= self._deadline:
                return
            self.schedule.take(started)
            planned = _Planned(due, started)
            plan.append(planned)
            self._run_event(planned)

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
        try:
            conn.commit()
            committed = True
        except CRITICAL as exc:
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
                self.ledger.run_id, self._batch_number, short_xid(xid), keys
            )
        lags = [max(0.0, p.started - p.due) * 1000 for p in plan]
        for lag in lags:
            self.ledger.lag.add(lag)
        self.output.committed(changes, ((acked - p.due) * 1000 for p in plan), lags)
        for table, op, rows in changes:
            if op == "truncate":
                self.totals[table] = 0
            elif op != "update" and not settled:  # a settled batch: in the resync
                self.totals[table] = self.totals.get(table, 0) + (
                    rows if op == "insert" else -rows
                )

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
            "stream: the COMMIT of xid %s lost its acknowledgement; the server "
            "says %s: batch %s",
            xid,
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
        path = self.options.pause_file
        if not path.exists():
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

        previous = {
            s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    # -- lines, progress, totals, report ----------------------------------------
    def _tick(self) -> None:
        self.output.lines(self.totals)
        if self.output.due():
            self.output.progress(self.ledger)
            self._write_report()
        if time.monotonic() - self._resync_at >= RESYNC_S and self.conn is not None:
            with contextlib.suppress(*CRITICAL):
                self._resync()

    def _resync(self) -> None:
        """Totals from COUNT(*) (other writers' rows included)."""
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
                    {
                        "changes": {
                            "path": str(self.changes.path),
                            "lines": self.changes.lines,
                        }
                    }
                    if self.changes is not None
                    else {}
                ),
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


def _parent_missing(exc: BaseException) -> bool:
    """An FK violation or a vanished cached row: the parent was deleted under us."""
    if isinstance(exc, pg_errors.ForeignKeyViolation):
        return True
    return isinstance(exc, OltpseedError) and "has no row with id" in str(exc)


def pause(path: Path) -> bool:
    """Create the pause sentinel; False when it already existed."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"paused at {datetime.now().isoformat(timespec='seconds')}\n")
    return True


def resume(path: Path) -> bool:
    """Remove the pause sentinel; False when there was none."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
