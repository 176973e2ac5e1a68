"""How the stream classifies what goes wrong, and what it raises.

* soft (a unique, check or FK violation): the failing event is skipped, the
  rest of the batch kept (replayed event by event in savepoints);
* retryable (SQLSTATE class 40, or a lock waited for too long): the server
  rolled the batch back and it is replayed whole, a few times at most;
* critical (connection lost, server shut down): the batch is lost and the
  connection remade with backoff (:mod:`~pytest_oltpseed.stream.link`).
"""

from __future__ import annotations

import logging

import psycopg
from psycopg import errors as pg_errors

from pytest_oltpseed.errors import OltpseedError

SOFT = (pg_errors.IntegrityError,)  # the failing event is skipped, the rest kept
CRITICAL = (psycopg.OperationalError, psycopg.InterfaceError)  # see retryable
RETRIES = 5  # replays of a batch after a deadlock or serialization failure
RETRY_BACKOFF_S = 0.02  # times the attempt, jittered, before a replay
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


class StopRequested(Exception):
    """A stop signal arrived while reconnecting: end the run without a server."""


class AbortSignal(KeyboardInterrupt):
    """Raised by the signal handler; a KeyboardInterrupt so psycopg cancels
    the running query before letting it through."""


def retryable(exc: BaseException) -> bool:
    """SQLSTATE class 40 (deadlock, serialization failure): the server rolled
    the transaction back and it may simply be run again. psycopg makes these
    OperationalErrors, like a lost connection, so the class is read first."""
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return isinstance(exc, psycopg.Error) and (
        sqlstate.startswith("40") or sqlstate == LOCK_NOT_AVAILABLE
    )


class PipelineTeardown(logging.Filter):
    """Drops psycopg's "error ignored terminating <Pipeline [BAD]>" warning:
    it repeats the error that left the pipeline, which the stream handles
    (replay or reconnect) and logs itself, and it would reach stderr raw."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("error ignored terminating")


TEARDOWN = PipelineTeardown()


def parent_missing(exc: BaseException) -> bool:
    """An FK violation or a vanished cached row: the parent was deleted under us."""
    if isinstance(exc, pg_errors.ForeignKeyViolation):
        return True
    return isinstance(exc, OltpseedError) and "has no row with id" in str(exc)
