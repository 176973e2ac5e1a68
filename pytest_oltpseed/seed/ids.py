"""A large stage's keys numbered by the seeder, from a block of its table's
sequence, instead of by the column's ``nextval()`` default per copied row.

A serial key's default costs the server a function call a row (and a WAL
record every 32 values); numbering the rows in the COPY text costs nothing
there (``bench/copy_forms.py``: 1.37 -> 1.20 us of server CPU a row with
the key built after the load). The block must be one no other writer can
take, so the sequence is locked as :func:`pytest_oltpseed.data.indices.bump`
locks its own: a no-op ``ALTER SEQUENCE`` blocks every other ``nextval``
until the stage's transaction ends. The sequence moves past the block only
once the rows are in (:meth:`IdBlock.finish`): a stage that fails leaves it
where it was. Only for a role that owns the sequence, on a one-column key
filled by a plain serial counting up by one; anything else keeps the default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from pytest_oltpseed.db import table_ident

_SERIAL_KEY = """
SELECT a.attname::text, s.oid::regclass::text, q.seqincrement, q.seqmax
FROM pg_constraint k
JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
JOIN pg_class s ON s.oid = to_regclass(pg_get_serial_sequence(%(t)s, a.attname))
JOIN pg_sequence q ON q.seqrelid = s.oid
WHERE k.conrelid = %(t)s::regclass AND k.contype = 'p'
AND cardinality(k.conkey) = 1 AND a.attidentity = '' AND NOT q.seqcycle
AND a.attname <> ALL(%(written)s::text[])
AND pg_get_expr(d.adbin, d.adrelid)
    = format('nextval(%%L::regclass)', s.oid::regclass::text)
AND NOT EXISTS (SELECT 1 FROM pg_depend o  -- another column's default
    WHERE o.refobjid = s.oid AND o.classid = 'pg_attrdef'::regclass
    AND o.objid <> d.oid)
AND pg_has_role(s.relowner, 'USAGE')
"""
"""A table's one-column primary key filled by its own serial (the column's
default is ``nextval`` of it, no other column's is), which the factory does
not write and the role owns, not cycling: the column, the sequence (as a
regclass name), its increment and its maximum."""


@dataclass
class IdBlock:
    """Keys ``first``, ``first + 1``, ... for one stage's rows of ``table``."""

    conn: psycopg.Connection
    column: str
    sequence: str
    first: int

    @classmethod
    def take(
        cls,
        conn: psycopg.Connection,
        table: str,
        count: int,
        written: Sequence[str] = (),
    ) -> IdBlock | None:
        """A block for ``count`` rows from the sequence's next value, the
        sequence locked until the transaction ends; ``None`` where the
        column's default stays: no such key (see :data:`_SERIAL_KEY`; a key
        in ``written``, the columns the factory writes, is its own), or a
        sequence without ``count`` values left (the default then fails on
        the row that passes its maximum, as it always would)."""
        ident = table_ident(table).as_string(conn)
        found = conn.execute(
            _SERIAL_KEY, {"t": ident, "written": list(written)}
        ).fetchone()
        if found is None or found[2] != 1:
            return None
        column, sequence, _, maximum = found
        conn.execute(sql.SQL("ALTER SEQUENCE {} NO CYCLE").format(sql.SQL(sequence)))
        row = conn.execute(
            sql.SQL("SELECT last_value, is_called FROM {}").format(sql.SQL(sequence))
        ).fetchone()
        assert row is not None
        last, called = row
        first = last + 1 if called else last
        if first + count - 1 > maximum:
            return None
        return cls(conn, column, sequence, first)

    def finish(self, used: int) -> None:
        """Move the sequence past the ``used`` keys the stage wrote (the
        lock is still held: nothing took a value meanwhile)."""
        if used:
            self.conn.execute(
                "SELECT setval(%s::regclass, %s, true)",
                (self.sequence, self.first + used - 1),
            )


def next_values(conn: psycopg.Connection, table: str, count: int) -> list[int]:
    """``count`` values of ``table``'s ``id`` sequence, one ``nextval`` each
    (ascending; where no :class:`IdBlock` may be taken)."""
    rows = conn.execute(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
        (table, count),
    ).fetchall()
    return sorted(int(r[0]) for r in rows)
