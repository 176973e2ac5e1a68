"""``oltpseed stream --clients N``: N worker processes, one merged ledger.

Generation is CPU-bound Python, so clients are processes (fork), not threads.
Each client is a whole :class:`~pytest_oltpseed.stream.Streamer`: its own
connection, batches, error policy, reconnects and COMMIT settlement, and its
own random stream (:func:`~pytest_oltpseed.stream.stream_seed`). They share
the event mix; ``--rate`` and ``--max-events`` are split between them and
``--duration`` holds for each, so the totals are the run's. Rows one client
commits are in the database for the others to pick as parents and update;
identifiers come from PostgreSQL sequences (:mod:`~pytest_oltpseed.data.indices`),
so no two clients ever draw the same one.

Each client warms up (connections, counts, parent samples) and then waits
for the others: the clocks start together (:class:`Starting`), so the clients
stream side by side from the first event.

Each client writes its part of the ledger (report and changes file) in a
private directory; the parent shows one progress line from the parts' reports
and merges them at the end (:mod:`~pytest_oltpseed.stream.merging`): one report, one
changes file in commit order.

Signals: SIGINT/SIGTERM reach the parent only (clients run in their own
process group); it sends SIGTERM to every client, each commits its finished
part as a one-client run does, and the run exits 0. A second signal is passed
on too: every client rolls back its open batch (exit 130).

A client that dies (killed, out of memory) stops the run: the others are
stopped as on SIGTERM, their ledgers are merged with what the dead client had
written, and the run exits 1 with a line naming it. The dead client's open
batch died with its connection (rolled back, never counted); its batches
committed after its last part report (written every second) are in the
database and in its changes part, not in the report's counts: the report
says ``exit: client_killed``, so no one reconciles it as complete.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg

from pytest_oltpseed import logs
from pytest_oltpseed.cdc.changes import ChangesWriter
from pytest_oltpseed.db import table_counts
from pytest_oltpseed.domains import Domain, tables_of
from pytest_oltpseed.errors import OltpseedError
from pytest_oltpseed.stream.events import Mix
from pytest_oltpseed.stream.ledger import Ledger, write_report
from pytest_oltpseed.stream.merging import merge_changes, merge_reports, read_report
from pytest_oltpseed.stream.progress import Progress
from pytest_oltpseed.stream.runner import (
    Aborted,
    Streamer,
    StreamOptions,
    new_run_id,
    shard_label,
    stop_signals,
    stream_seed,
)

PART_REPORT_S = 1.0  # how often a client rewrites its part report
TICK_S = 0.2  # the parent's watch over its clients
START_NAP_S = 0.01  # ... while they warm up, and a warm client's wait for the others

Connect = Callable[[], psycopg.Connection]


class ClientFailed(OltpseedError):
    """A client was killed or failed: the others were stopped, the run exits 1."""


class Starting:
    """Every client's clock starts at once, once all of them are warm.

    A client's start-up (its connections, the COUNT(*) of every table, the
    parent samples, retail's stock tally) costs a good part of a second of
    client and server CPU. Started as each was ready, the first clients
    streamed on a machine busy warming the others, and the last ones alone
    once the first had finished: the clients overlapped less the shorter the
    run, and a ``--rate`` run's total first fell behind, then ran ahead.
    """

    def __init__(self, context: Any) -> None:
        self.ready = context.Value("i", 0)  # clients warm and waiting
        self.go = context.Event()
        self.parent = os.getpid()

    def wait(self, stopped: Callable[[], bool]) -> None:
        """In a client: say it is warm, wait for the others (not after a stop,
        nor if the parent is gone)."""
        with self.ready.get_lock():
            self.ready.value += 1
        while not self.go.wait(START_NAP_S):
            if stopped() or os.getppid() != self.parent:
                return

    def release(self, alive: int) -> bool:
        """In the parent: start the clocks once every live client is warm (a
        client that died while warming is not waited for)."""
        if not self.go.is_set() and self.ready.value >= alive:
            self.go.set()
        return self.go.is_set()


def make_stream(
    connect: Connect,
    domains: Sequence[Domain],
    mix: Mix,
    options: StreamOptions,
    *,
    setup: Callable[[psycopg.Connection], Any] | None = None,
) -> Streamer | Pool:
    """The stream ``options`` ask for: one client in this process, or a pool."""
    if options.clients <= 1:
        seeded = replace(options, seed=stream_seed(options.seed, options.shard, 0))
        return Streamer(connect, domains, mix, seeded, setup=setup)
    return Pool(connect, domains, mix, options, setup=setup)


def client_options(options: StreamOptions, clients: int, index: int) -> StreamOptions:
    """Client ``index``'s share of the run: rate and event budget split (the
    remainder to the first clients), its own seed, its part files set later."""
    budget = options.max_events
    if budget is not None:
        budget = budget // clients + (1 if index < budget % clients else 0)
    return replace(
        options,
        rate=options.rate / clients if options.rate else None,
        max_events=budget,
        seed=stream_seed(options.seed, options.shard, index),
        progress_s=PART_REPORT_S,
    )


class Pool:
    """Runs ``options.clients`` clients; ``run()`` returns the merged report.

    Quacks like :class:`~pytest_oltpseed.stream.Streamer` where the CLI looks
    (``report()``, ``totals``, ``options``)."""

    def __init__(
        self,
        connect: Connect,
        domains: Sequence[Domain],
        mix: Mix,
        options: StreamOptions,
        *,
        setup: Callable[[psycopg.Connection], Any] | None = None,
    ) -> None:
        self.connect, self.domains, self.mix = connect, list(domains), mix
        self.setup = setup
        clients = options.clients
        if options.max_events is not None:
            clients = min(clients, options.max_events)  # no client with nothing to do
        self.options = replace(options, clients=clients)
        self.log = logs.get("stream")
        self.tables = tables_of(self.domains)
        self.run_id = new_run_id(options.shard)
        self.totals: dict[str, int] = {}
        self.stop_signal: int | None = None
        self.signals = 0
        self._document: dict[str, Any] | None = None
        self._processes: list[Any] = []
        self._killed: list[str] = []  # one line per client that was killed
        self._dead: set[int] = set()
        self.starting: Starting | None = None  # made before the clients fork

    # -- the run -------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        o = self.options
        regular = o.changes is not None and (
            o.changes.is_file() or not o.changes.exists()
        )
        if o.changes is not None and regular:  # unwritable: one line, no client
            ChangesWriter.open(o.changes).close()  # (a FIFO is opened once, merged)
        if self.setup is not None:
            try:
                with contextlib.closing(self.connect()) as conn:
                    self.setup(conn)
                    conn.commit()
            except OltpseedError as exc:  # a report on every exit path, as ever
                self._document = {**self._empty(), "error": str(exc)}
                if o.report is not None:
                    with contextlib.suppress(OSError):
                        write_report(o.report, self._document)
                raise
        base = o.changes.absolute().parent if o.changes and regular else None
        parts = Path(tempfile.mkdtemp(prefix=".oltpseed-clients-", dir=base))
        try:
            plans = [self._plan(parts, k) for k in range(o.clients)]
            with self._signals():
                self._start(plans)
                self._watch(plans)
            return self._finish(plans)
        finally:
            shutil.rmtree(parts, ignore_errors=True)

    def _plan(self, parts: Path, index: int) -> StreamOptions:
        mine = client_options(self.options, self.options.clients, index)
        return replace(
            mine,
            report=parts / f"report.{index}.json",
            changes=parts / f"changes.{index}.jsonl" if mine.changes else None,
        )

    def _start(self, plans: Sequence[StreamOptions]) -> None:
        context = multiprocessing.get_context("fork")  # closures and the mix as is
        self.starting = Starting(context)
        self.log.info(
            "stream %s: %d clients%s",
            self.run_id,
            len(plans),
            f", shard {shard_label(self.options.shard)}" if self.options.shard else "",
        )
        for index, plan in enumerate(plans):
            process = context.Process(
                target=_client,
                args=(self, index, plan),
                name=f"oltpseed-client-{index}",
                daemon=False,
            )
            process.start()
            self._processes.append(process)

    def _watch(self, plans: Sequence[StreamOptions]) -> None:
        """Wait for the clients; progress from their parts; a dead one stops all."""
        every = self.options.progress_s
        shown_at, window = time.monotonic(), (0, 0.0)
        refreshed_at = time.monotonic()
        assert self.starting is not None
        while any(p.is_alive() for p in self._processes):
            alive = sum(p.is_alive() for p in self._processes)
            time.sleep(TICK_S if self.starting.release(alive) else START_NAP_S)
            if time.monotonic() - refreshed_at >= PART_REPORT_S:
                self._refresh(plans)
                refreshed_at = time.monotonic()
            for index, process in enumerate(self._processes):
                code = process.exitcode
                if code is not None and code < 0 and index not in self._dead:
                    self._dead.add(index)
                    line = f"client {index} was killed ({signal.Signals(-code).name})"
                    self._killed.append(line)
                    self.log.error("stream: %s; stopping the others", line)
                    self._forward(signal.SIGTERM)
            if every and time.monotonic() - shown_at >= every:
                window = self._progress(plans, window, time.monotonic() - shown_at)
                shown_at = time.monotonic()
        for process in self._processes:
            process.join()

    def _refresh(self, plans: Sequence[StreamOptions]) -> None:
        """The merged report so far (``exit: running``), as a one-client run
        keeps its report fresh: a watcher reads one file either way."""
        if self.options.report is None:
            return
        parts = [r for r in (_read_part(p.report) for p in plans) if r is not None]
        if parts:
            document = merge_reports(parts, self.run_id, clients=len(plans))
            with contextlib.suppress(OSError):  # the final write says it
                write_report(self.options.report, document)

    def _progress(
        self,
        plans: Sequence[StreamOptions],
        window: tuple[int, float],
        span: float,
    ) -> tuple[int, float]:
        parts = [r for r in (_read_part(p.report) for p in plans) if r is not None]
        if not parts:
            return window
        merged = merge_reports(parts, self.run_id)
        committed = merged["events"]["committed"]
        self.log.info(
            "progress: %.1f s, %.1f events/s over %d clients, latency p95 %.1f ms "
            "(worst client), skipped %d, reconnects %d",
            merged["duration_s"],
            (committed - window[0]) / max(span, 1e-9),
            sum(p.is_alive() for p in self._processes),
            merged["latency_ms"].get("p95", 0.0),
            merged["events"]["skipped"],
            merged["reconnects"],
        )
        return committed, span

    def _finish(self, plans: Sequence[StreamOptions]) -> dict[str, Any]:
        o = self.options
        parts, missing = [], []
        for index, plan in enumerate(plans):
            part = _read_part(plan.report)
            if part is None:
                missing.append(f"client {index}")
            else:
                parts.append(part)
        codes = [p.exitcode for p in self._processes]
        extra: dict[str, Any] = {"clients": o.clients}
        if o.shard:
            extra["shard"] = shard_label(o.shard)
        merge_failed = ""
        if o.changes is not None:
            try:
                lines = merge_changes(
                    [p.changes for p in plans if p.changes and p.changes.exists()],
                    o.changes,
                )
                extra["changes"] = {"path": str(o.changes), "lines": lines}
            except OltpseedError as exc:  # the report is still written, exit 1
                merge_failed = f"merging --changes: {exc}"
        if parts:
            document = merge_reports(parts, self.run_id, **extra)
        else:
            document = {**self._empty(), "runs": {}, **extra}
        problems = self._killed + [
            f"client {i} exited {code}"
            for i, code in enumerate(codes)
            if code not in (0, None, 130) and code is not None and code > 0
        ]
        problems += [f"{name} wrote no report" for name in missing]
        problems += [merge_failed] if merge_failed else []
        if self._killed:
            document["exit"] = "client_killed"
        if problems:
            document["error"] = "; ".join(
                [*problems, *([document["error"]] if document.get("error") else [])]
            )
        self._document = document
        if o.report is not None:
            write_report(o.report, document)
        with contextlib.suppress(Exception), contextlib.closing(self.connect()) as c:
            c.autocommit = True
            self.totals = {t: n or 0 for t, n in table_counts(c, self.tables).items()}
        if self.stop_signal is not None and not problems:
            self.log.warning(
                "stream: %s received: every client committed its finished part",
                signal.Signals(self.stop_signal).name,
            )
        if problems:
            stopped = "; the others were stopped" if self._killed else ""
            raise ClientFailed(
                f"stream: {'; '.join(problems)}{stopped}"
                + (f"; the ledgers are merged in {o.report}" if o.report else "")
            )
        if any(code == 130 for code in codes):
            raise Aborted(
                "aborted by a second signal: the open batches were rolled back"
            )
        return document

    def report(self) -> dict[str, Any]:
        return self._document if self._document is not None else self._empty()

    def _empty(self) -> dict[str, Any]:
        """The report of a run no client got to write a part of (setup failed,
        or every client died first): zero counts, ``exit: failed``."""
        ledger = Ledger(self.tables, run_id=self.run_id)
        ledger.exit, ledger.ended = "failed", ledger.started
        return ledger.report({"clients": self.options.clients})

    # -- signals ---------------------------------------------------------------------
    def _forward(self, signum: int) -> None:
        for process in self._processes:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signum)

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        parent = os.getpid()

        def handler(signum: int, frame: Any) -> None:
            if os.getpid() != parent:  # a client not yet past its start (fork)
                self.stop_signal = self.stop_signal or signum
                return
            self.signals += 1
            if self.stop_signal is None:
                self.stop_signal = signum
            self._forward(signal.SIGTERM)  # the second one aborts every client

        with stop_signals(handler):
            yield


def _client(pool: Pool, index: int, options: StreamOptions) -> None:
    """A client process (forked): one Streamer on its share; exits with its code."""
    os.setpgrp()  # a terminal's Ctrl-C reaches the parent, which forwards it
    run_id = f"{pool.run_id}.c{index}"  # WAL tags name the run and the client
    streamer = Streamer(pool.connect, pool.domains, pool.mix, options, run_id=run_id)

    def early(signum: int, frame: Any) -> None:  # until the Streamer's own
        streamer.stop_signal = streamer.stop_signal or signum

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, early)
    streamer.stop_signal = pool.stop_signal  # asked before this client started
    if pool.starting is not None:
        starting = pool.starting
        streamer.warmed = lambda: starting.wait(
            lambda: streamer.stop_signal is not None
        )
    streamer.labels = {"client": index}
    if options.shard:
        streamer.labels["shard"] = shard_label(options.shard)
    quiet = logging.getLogger(f"{logs.LOGGER_NAME}.client-progress")
    quiet.propagate = False
    quiet.addHandler(logging.NullHandler())
    streamer.output = Progress(quiet, streamer.tables, PART_REPORT_S)
    code = 0
    try:
        streamer.run()
    except OltpseedError as exc:
        streamer.log.error("stream: client %d: %s", index, exc)
        code = exc.exit_code
    except BaseException as exc:  # the parent names the client; no traceback
        streamer.log.error("stream: client %d: %r", index, exc)
        code = 1
    raise SystemExit(code)


def _read_part(path: Path | None) -> dict[str, Any] | None:
    if path is None or not path.exists():
        return None
    with contextlib.suppress(OltpseedError):
        return read_report(path)
    return None
