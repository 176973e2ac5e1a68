"""The stream's connections: opened, lost, remade with backoff, settled.

A critical error (connection lost, server shut down) drops both connections
and reconnects with exponential backoff, :class:`GaveUp` after the last
attempt (``fail_fast``). A COMMIT whose acknowledgement was lost is settled
after reconnecting: the transaction id, read before COMMIT, is looked up with
``pg_xact_status()`` so the ledger counts exactly the committed batches.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import psycopg

from pytest_oltpseed.db import first_line
from pytest_oltpseed.errors import DatabaseUnavailable, OltpseedError
from pytest_oltpseed.stream.faults import (
    CONCURRENT_LOCK_TIMEOUT_MS,
    CRITICAL,
    RETRIES,
    RETRY_BACKOFF_S,
    GaveUp,
    StopRequested,
    retryable,
)
from pytest_oltpseed.stream.ledger import Ledger
from pytest_oltpseed.stream.options import StreamOptions
from pytest_oltpseed.stream.stopping import Stop

SETTLE_S = 30.0  # how long to wait for a COMMIT still "in progress" after a loss


class Link:
    """The batch connection (``conn``) and the autocommit one for identifier
    reservations (``reserve``) of one stream.

    ``reconnected(conn, reserve)`` hands new connections to their users and
    ``rebased()`` restarts the clock after the outage: the runner sets both.
    """

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection],
        options: StreamOptions,
        log: logging.Logger,
        stop: Stop,
        ledger: Ledger,
    ) -> None:
        self.connect, self.options, self.log = connect, options, log
        self.stop, self.ledger = stop, ledger
        self.conn: psycopg.Connection | None = None
        self.reserve: psycopg.Connection | None = None
        self.unsettled: str | None = None  # a COMMIT whose fate is not known yet
        self.reconnected: Callable[[psycopg.Connection, psycopg.Connection], None] = (
            lambda conn, reserve: None
        )
        self.rebased: Callable[[], None] = lambda: None

    def run_setup(
        self, setup: Callable[[psycopg.Connection], Any], rng: random.Random
    ) -> None:
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
                if cause is None or not retryable(cause) or attempt > RETRIES:
                    raise
                self.conn.rollback()
                self.log.warning(
                    "stream: setup: %s - retrying (%d/%d)",
                    first_line(cause),
                    attempt,
                    RETRIES,
                )
                if self.stop.sleep(
                    RETRY_BACKOFF_S * 5 * attempt * (0.5 + rng.random())
                ):
                    raise

    def settle(self, xid: str, exc: BaseException) -> bool:
        """COMMIT sent, answer lost: ask the server what became of ``xid``."""
        self.unsettled = xid
        status: str | None = None
        for _ in range(self.options.reconnect_attempts):
            self.reconnect(exc)
            try:
                status = self.xact_status(xid)
                break
            except CRITICAL as again:  # lost again while asking: reconnect, ask again
                exc = again
        else:
            raise GaveUp(
                f"stream: gave up settling the COMMIT of xid {xid}: {first_line(exc)}"
            )
        self.unsettled = None
        self.ledger.settled[str(status)] += 1
        self.log.warning(
            "stream: the COMMIT of xid %d lost its acknowledgement; the server "
            "says %s: batch %s",
            int(xid),
            status,
            "counted" if status == "committed" else "not counted",
        )
        return status == "committed"

    def xact_status(self, xid: str) -> str | None:
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
            self.stop.sleep(0.2)

    def reconnect(self, exc: BaseException) -> None:
        """Reconnect with exponential backoff; :class:`GaveUp` after the last try."""
        o = self.options
        reason = first_line(exc)
        self.drop()
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
            if self.stop.sleep(delay):
                raise StopRequested(self._gave_up_line(attempt - 1, began, reason))
            try:
                self.open()
                break
            except (DatabaseUnavailable, *CRITICAL) as error:
                reason = first_line(error).removeprefix("cannot connect to ")
            if o.fail_fast and attempt >= o.reconnect_attempts:
                raise GaveUp(
                    "stream: gave up " + self._gave_up_line(attempt, began, reason)
                )
        assert self.conn is not None and self.reserve is not None
        self.reconnected(self.conn, self.reserve)
        self.ledger.reconnects += 1
        self.log.warning(
            "stream: reconnected after %.1fs (attempt %d)",
            time.monotonic() - began,
            attempt,
        )
        self.rebased()

    def _gave_up_line(self, attempts: int, began: float, reason: str) -> str:
        unsettled = (
            f"; the last COMMIT (xid {self.unsettled}) could not be settled "
            "and is not counted"
            if self.unsettled
            else ""
        )
        return (
            f"after {attempts} reconnect attempt(s) over "
            f"{time.monotonic() - began:.0f}s: {reason}{unsettled}"
        )

    def open(self) -> None:
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
        self.conn, self.reserve = conn, reserve

    def drop(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.rollback()
        for conn in (self.conn, self.reserve):
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
