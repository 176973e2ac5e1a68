"""The generation context: connection, seed, "now", identifier indices, writes.

Bound with :func:`bind` (a context variable, never a module global), which the
plugin, the seeder and the stream all use; factory declarations read it with
:func:`current`. Its jobs live in mixins, a module each:
:mod:`~pytest_oltpseed.data.numbering` (identifier indices),
:mod:`~pytest_oltpseed.data.lookups` (parent rows),
:mod:`~pytest_oltpseed.data.writing` (inserts, statements, the ledger) and
:mod:`~pytest_oltpseed.data.drawing` (value helpers).
"""

from __future__ import annotations

import contextlib
import contextvars
import random
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import factory
import factory.random
import psycopg

from pytest_oltpseed.data.lookups import ROW_CACHE
from pytest_oltpseed.data.numbering import Numbering
from pytest_oltpseed.data.pools import pools
from pytest_oltpseed.data.rows import Statement
from pytest_oltpseed.data.writing import ID_BLOCK, ID_BLOCK_MAX, Writing
from pytest_oltpseed.errors import OltpseedError
from pytest_oltpseed.profiles import DEFAULT_AS_OF

__all__ = [
    "ID_BLOCK",
    "ID_BLOCK_MAX",
    "OFFLINE_INDEX",
    "ROW_CACHE",
    "Context",
    "bind",
    "current",
    "offline",
]

_current: contextvars.ContextVar[Context] = contextvars.ContextVar("oltpseed_context")


class Context(Numbering, Writing):
    """What a generation run shares: connection, seed, "now", index sequences.

    ``sequences="reserve"`` takes identifier indices from the key's
    PostgreSQL sequence (``oltpseed_<domain>_idx_<key>``, see
    :mod:`pytest_oltpseed.data.indices`), so factories, the stream and a
    previous seeding never hand out the same CPF twice; ``"local"`` counts
    from ``index_base`` in memory (the seeder, whose reruns must repeat their
    identifiers to stay idempotent, and generation without a database).

    ``allocate_ids`` takes primary keys from each table's sequence in blocks
    and inserts without ``RETURNING``, so a writer in pipeline mode never
    waits for a round trip per row (the stream). When ``ledger`` is a list,
    every write appends ``(table, op, rows)`` to it, ``rows`` being a count
    or the cursor whose ``rowcount`` says it once the results are in. When
    ``keyed`` is a list too (``stream --changes``), it gets, entry for entry,
    the ids of the rows each write changed: a tuple, or a :class:`Returning`
    whose rows hold them (see :func:`changed_keys`).
    """

    def __init__(
        self,
        conn: psycopg.Connection | None = None,
        *,
        seed: int = 0,
        as_of: datetime = DEFAULT_AS_OF,
        reuse_parents: bool = False,
        sequences: str = "reserve",
        index_base: int = 0,
        pool_seed: int | None = None,
        allocate_ids: bool = False,
        ledger: list[tuple[str, str, Any]] | None = None,
        offline: bool = False,
    ) -> None:
        if sequences not in ("reserve", "local"):
            raise ValueError(
                f"sequences must be 'reserve' or 'local', not {sequences!r}"
            )
        self.conn = conn
        self.seed = seed
        self.as_of = as_of
        self.reuse_parents = reuse_parents
        self.sequences = sequences if conn is not None else "local"
        # no database at all: parents are built in memory, never looked up
        self.offline = offline and conn is None
        self.rng = random.Random(seed)
        self.pools = pools(seed if pool_seed is None else pool_seed)
        self.index_base = index_base
        self.reserve_block = 1
        self._local: dict[tuple[str, str], int] = {}
        self._blocks: dict[tuple[str, str], list[int]] = {}
        self._id_range: dict[str, tuple[int, int]] = {}
        self._rows: OrderedDict[tuple[str, int], Mapping[str, Any]] = OrderedDict()
        self.allocate_ids = allocate_ids
        self._ids: dict[str, list[int]] = {}
        self._id_block: dict[str, int] = {}
        self.ledger = ledger
        self.keyed: list[Any] | None = None
        self.reserve_conn: psycopg.Connection | None = None
        # The writes of the current stream event, to replay them exactly.
        self.journal: list[Statement] | None = None
        # Derived state a domain may keep between writes (the stream's stock
        # tally); ``None`` means "always ask the database".
        self.state: dict[str, Any] | None = None


def current() -> Context:
    """The context bound by :func:`bind` (or the plugin); a clear error if none."""
    try:
        return _current.get()
    except LookupError:
        raise OltpseedError(
            "no data context bound: wrap factory calls in "
            "`with pytest_oltpseed.data.factory.bind(conn):` or use the oltp_factories "
            "fixture"
        ) from None


@contextlib.contextmanager
def bind(conn: psycopg.Connection | None = None, **options: Any) -> Iterator[Context]:
    """Bind a connection and a seed for factory calls inside the ``with`` block.

    Also reseeds factory_boy's own random generator, so a user's
    ``factory.Faker``/``factory.fuzzy`` declarations follow the same seed.
    Without a connection, rows are built in memory only (parents too), and
    identifiers count from ``index_base`` (0) in the block: the same seed
    gives the same rows.
    """
    if conn is None:
        options.setdefault("offline", True)
    context = Context(conn, **options)
    factory.random.reseed_random(context.seed)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


OFFLINE_INDEX = 12_000_000
"""First identifier index of rows built with no context bound: above the
seeder's (from 0) and the strategies' (10-11 million) ranges, so such a row
can later be inserted next to seeded data."""
_offline: list[Context] = []


def offline() -> Context:
    """The context of ``build()`` when none is bound: no database, parents built
    in memory, and identifier indices counted once for the whole process, so
    every row built this way has unique CPFs, CNPJs, codes (no server's
    sequences needed)."""
    if not _offline:
        _offline.append(Context(None, index_base=OFFLINE_INDEX, offline=True))
    return _offline[0]
