"""``oltpseed stream`` on one connection: the run, from setup to report.

The run opens its connections, installs the schema (``setup``), warms the
samples, then loops: pause while asked, write a batch, show progress, until
stopped, out of time or out of events; the report is written on every exit
path. The parts have modules of their own:

* :mod:`~pytest_oltpseed.stream.batches` - a batch: pipeline, replays,
  retries; :mod:`~pytest_oltpseed.stream.settlement` - its COMMIT, a lost
  acknowledgement settled, the ledger and changes file fed;
* :mod:`~pytest_oltpseed.stream.link` - connections, reconnects with backoff;
* :mod:`~pytest_oltpseed.stream.stopping` - SIGINT/SIGTERM: the first stops
  after the current event (the completed part of the batch committed, exit
  0), a second aborts (the open batch rolled back, exit 130);
* :mod:`~pytest_oltpseed.stream.faults` - which errors are soft, retryable,
  critical; :mod:`~pytest_oltpseed.stream.totals` - the rows shown;
* :mod:`~pytest_oltpseed.stream.options` - the knobs, run ids and shards.
"""

from __future__ import annotations

import contextlib
import logging
import random
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg

from pytest_oltpseed import logs
from pytest_oltpseed.cdc.changes import ChangesWriter
from pytest_oltpseed.domains import Domain, tables_of
from pytest_oltpseed.errors import OltpseedError
from pytest_oltpseed.stream import pausing
from pytest_oltpseed.stream.batches import Batches
from pytest_oltpseed.stream.events import (
    Event,
    Mix,
    StreamContext,
    domain_warmers,
    resolve_every,
)
from pytest_oltpseed.stream.faults import (
    CRITICAL,
    TEARDOWN,
    Aborted,
    AbortSignal,
    GaveUp,
    StopRequested,
)
from pytest_oltpseed.stream.ledger import Ledger, write_report
from pytest_oltpseed.stream.link import Link
from pytest_oltpseed.stream.options import (
    StreamOptions,
    new_run_id,
    parse_shard,
    shard_label,
    stream_seed,
)
from pytest_oltpseed.stream.progress import Progress
from pytest_oltpseed.stream.schedule import IntervalSchedule, RateSchedule, Schedule
from pytest_oltpseed.stream.stopping import Stop, stop_signals
from pytest_oltpseed.stream.totals import Totals

__all__ = [  # the names the client pool, the CLI and tests import from here
    "Aborted",
    "GaveUp",
    "StreamOptions",
    "Streamer",
    "new_run_id",
    "parse_shard",
    "shard_label",
    "stop_signals",
    "stream_seed",
]

RESYNC_S = 60.0  # totals re-counted from the tables this often


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
        self.late: dict[str, Event] = (
            {e.name: e for e in mix.events if e.late} if options.stamped else {}
        )
        self.log = logs.get("stream")
        self.tables = tables_of(self.domains)
        self.ledger = Ledger(self.tables, run_id=run_id or new_run_id(options.shard))
        self.rng = random.Random(options.seed)
        self.stop = Stop()
        self.link = Link(connect, options, self.log, self.stop, self.ledger)
        self.link.reconnected, self.link.rebased = self._reconnected, self._rebased
        self.ctx: StreamContext | None = None
        self.schedule: Schedule = self._schedule(time.monotonic())
        self.counts = Totals(connect, self.tables)
        self.deadline: float | None = None
        self.output = Progress(self.log, self.tables, options.progress_s)
        self._resync_at = time.monotonic()
        self.tagged = False  # set when the server runs wal_level=logical
        self._pause_paths: list[Path] = []
        self.batches = Batches(self)
        self.labels: dict[str, Any] = {}  # added to the report (a client's number)
        # called once warm, before the clock starts: the client pool starts
        # every client's clock at once (see workers.Starting)
        self.warmed: Callable[[], None] | None = None

    @property
    def conn(self) -> psycopg.Connection | None:
        """The batch connection (a new one after each reconnect)."""
        return self.link.conn

    @property
    def stop_signal(self) -> int | None:
        """The signal that asked for a stop; the client pool sets it too."""
        return self.stop.signal

    @stop_signal.setter
    def stop_signal(self, signum: int | None) -> None:
        self.stop.signal = signum

    @property
    def totals(self) -> dict[str, int]:
        """Rows per table now, for the progress lines and the summary."""
        return self.counts.current

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
        logging.getLogger("psycopg").addFilter(TEARDOWN)  # once: same instance
        try:
            with self.stop.handling():
                self.link.open()
                assert self.conn is not None and self.link.reserve is not None
                self._pause_paths = pausing.watched(
                    self.conn, self.options.pause_file, self.options.pause_home
                )
                if self.setup is not None:
                    self.link.run_setup(self.setup, self.rng)
                self.ctx = StreamContext(
                    self.conn,
                    reserve_conn=self.link.reserve,
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
                    self.options.pace(),
                    self.options.seed,
                    ", ".join(f"{e.name}={e.weight}" for e in self.mix.events),
                )
                if self.warmed is not None:
                    self.warmed()
                began = time.monotonic()
                ledger.setup_s = began - ledger.started
                if self.options.duration:
                    self.deadline = began + self.options.duration
                self.schedule = self._schedule(began)
                try:
                    self._loop()
                except StopRequested as stop:
                    ledger.error = f"stopped while reconnecting, {stop}"
            ledger.exit = "stopped" if self.stop_signal else "completed"
            if self.stop_signal:
                self.log.warning(
                    "stream: %s received: the current event finished and the "
                    "completed part of the batch was committed",
                    signal.Signals(self.stop_signal).name,
                )
            return ledger
        except AbortSignal:
            ledger.exit, ledger.error = (
                "aborted",
                "second signal: open batch rolled back",
            )
            self.link.drop()
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
            self.link.drop()
            if self.changes is not None:
                self.changes.close()

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

    def _loop(self) -> None:
        while not self.finished():
            self._pause_if_asked()
            if self.finished():
                break
            try:
                self.batches.batch()
            except CRITICAL as exc:
                self.batches.lost(exc)
            self._tick()

    def finished(self) -> bool:
        """Whether the run is over: stopped, out of time or out of events."""
        if self.stop_signal is not None:
            return True
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return True
        limit = self.options.max_events
        return limit is not None and self.ledger.attempted >= limit

    # -- pause, signals, sleeping -----------------------------------------------
    def _pause_if_asked(self) -> None:
        """Park while a sentinel exists (see :mod:`~pytest_oltpseed.stream.pausing`)."""
        path = next((p for p in self._pause_paths if p.exists()), None)
        if path is None:
            return
        self.log.info("stream: paused (%s exists; `oltpseed resume` removes it)", path)
        began = time.monotonic()
        while path.exists() and self.stop_signal is None:
            self.stop.sleep(0.25)
            self._tick()
        paused = time.monotonic() - began
        self.ledger.paused_s += paused
        if self.stop_signal is None:
            self.log.info("stream: resumed after %.1fs", paused)
        self.schedule.rebase(time.monotonic())

    # -- lines, progress, totals, report ----------------------------------------
    def _tick(self) -> None:
        self.output.lines(self.totals)
        if self.output.due():
            self.output.progress(self.ledger)
            self._write_report()
        if time.monotonic() - self._resync_at >= RESYNC_S:
            self.counts.start_recount()
            self._resync_at = time.monotonic()
        self.counts.take_recount()

    def _resync(self) -> None:
        """Totals from COUNT(*) (other writers' rows included), at once: at the
        start and after a reconnect. (The periodic one runs in the background:
        see :class:`~pytest_oltpseed.stream.totals.Recount`.)"""
        assert self.conn is not None
        self.counts.resync(self.conn)
        if self.ctx is not None:  # re-read derived state (others' writes) as well
            assert self.ctx.state is not None
            self.ctx.state.clear()
        self._resync_at = time.monotonic()

    def _reconnected(
        self, conn: psycopg.Connection, reserve: psycopg.Connection
    ) -> None:
        assert self.ctx is not None
        self.ctx.conn, self.ctx.reserve_conn = conn, reserve

    def _rebased(self) -> None:
        """After a reconnect: the clock restarts and the totals are re-read."""
        self.schedule.rebase(time.monotonic())
        with contextlib.suppress(*CRITICAL):  # lost again: the next batch says so
            self._resync()

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
