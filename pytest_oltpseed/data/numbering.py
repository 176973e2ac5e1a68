"""Identifier indices a context hands out (CPF, CNPJ, CRM... are mapped from
them, see :mod:`pytest_oltpseed.data.brazil`): counted in memory, or reserved
from the database's sequences. A part of
:class:`~pytest_oltpseed.data.context.Context`."""

from __future__ import annotations

import psycopg

from pytest_oltpseed.data import indices


class Numbering:
    """Context's identifier indices (a mixin; state set by ``Context``)."""

    conn: psycopg.Connection | None
    reserve_conn: psycopg.Connection | None
    sequences: str
    index_base: int
    reserve_block: int
    _local: dict[tuple[str, str], int]
    _blocks: dict[tuple[str, str], list[int]]

    def next_index(self, domain: str, key: str, *, fresh: bool = False) -> int:
        """The next unused index of ``key`` (e.g. ``pacientes.cpf``) in ``domain``.

        ``fresh`` keys (numbers that are not natural keys, such as invoice
        numbers) are always reserved from the database when one is bound, so
        even a seeder's rerun never repeats them.
        """
        if self.sequences == "local" and not (fresh and self.conn is not None):
            index = self._local.get((domain, key), self.index_base)
            self._local[(domain, key)] = index + 1
            return index
        block = self._blocks.get((domain, key))
        if not block:
            block = self._blocks[(domain, key)] = self._reserve(domain, key)
        return block.pop()

    def _reserve(self, domain: str, key: str) -> list[int]:
        """Take ``reserve_block`` indices at once from the key's sequence
        (:mod:`pytest_oltpseed.data.indices`), in the order to hand them out.

        ``nextval`` survives a rollback of the work that used it: an index
        that collided is never handed out again. A ``reserve_conn``
        (autocommit) keeps even a sequence's creation out of that work.
        """
        conn = self.reserve_conn or self.conn
        assert conn is not None
        return indices.reserve(conn, domain, key, self.reserve_block)[::-1]

    def note_index(self, key: tuple[str, str], next_index: int) -> None:
        """Record that indices below ``next_index`` of ``key`` were used elsewhere."""
        self._local[key] = max(self._local.get(key, 0), next_index)

    def local_indices(self) -> list[tuple[tuple[str, str], int]]:
        """((domain, key), next index) counted in memory so far."""
        return list(self._local.items())
