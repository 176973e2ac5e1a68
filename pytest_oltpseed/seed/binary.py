"""A column-wise chunk as binary COPY, built from its arrays without a loop
over rows.

Text COPY makes the server parse every field (a timestamp's text is the
costliest); binary COPY hands it the values in their stored form
(``bench/copy_forms.py``: 1.20 -> 0.78 us of server CPU a row for a
``consultas``-shaped table). Each field is a 4-byte length and its bytes,
each row a 2-byte field count: fixed-width columns are written as a
``(rows, width)`` block of big-endian bytes, text as its UTF-8 bytes
scattered to their offsets, all with NumPy.

Only for columns whose kind has one exact binary form in the column's type
(:data:`FORMS`) over a UTF-8 connection; anything else (money as ``numeric``, a
``timestamptz``, whose text the server reads in the session's time zone, a
type of a generated domain) keeps text COPY for the whole stage. The rows
are the same either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from pytest_oltpseed.data import columns
from pytest_oltpseed.db import table_ident
from pytest_oltpseed.errors import OltpseedError

FORMS: dict[tuple[str, str], str] = {
    ("int", "bigint"): "int8",
    ("int", "integer"): "int4",
    ("int", "smallint"): "int2",
    ("timestamp", "timestamp without time zone"): "timestamp",
    ("date", "date"): "date",
    ("bool", "boolean"): "bool",
    ("text", "text"): "text",
    ("text", "character varying"): "text",
}
"""(generator kind, column type without its modifier) -> the field's form."""

_FIXED = {
    "int8": ">i8",
    "int4": ">i4",
    "int2": ">i2",
    "timestamp": ">i8",
    "date": ">i4",
}
_SINCE_2000_S = 946_684_800  # PostgreSQL's epoch, 2000-01-01, in Unix seconds
_SINCE_2000_D = 10_957  # ... and in Unix days
_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no extension
_TRAILER = b"\xff\xff"


def forms(
    conn: psycopg.Connection, table: str, names: Sequence[str], kinds: Sequence[str]
) -> tuple[str, ...] | None:
    """Each written column's form, or ``None`` when one has no binary form
    here (the stage then copies text). Text goes as UTF-8, which the server
    reads in the connection's client encoding: only where that is UTF-8."""
    if conn.info.encoding.lower().replace("-", "") != "utf8":
        return None
    types = dict(
        conn.execute(
            "SELECT attname::text, format_type(atttypid, NULL) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            (table_ident(table).as_string(conn),),
        ).fetchall()
    )
    found = [
        FORMS.get((kind, types.get(name, "")))
        for name, kind in zip(names, kinds, strict=True)
    ]
    return None if None in found else tuple(f for f in found if f is not None)


def encode(forms: Sequence[str], values: Sequence[Any], rows: int) -> bytes:
    """``rows`` rows of ``values`` (one array a column) as a binary COPY stream."""
    if not columns.load_numpy():
        raise RuntimeError("binary COPY is built with NumPy (extra 'fast')")
    np = columns.np
    fields = [
        _field(np, form, array, rows) for form, array in zip(forms, values, strict=True)
    ]
    widths = sum(np.maximum(lengths, 0) for lengths, _ in fields)
    sizes = 2 + 4 * len(fields) + widths
    starts = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(sizes, out=starts[1:])
    body = np.empty(int(starts[-1]), dtype=np.uint8)
    at = starts[:-1].copy()
    _put(np, body, at, np.full(rows, len(fields), dtype=">i2").view(np.uint8))
    at += 2
    for lengths, payload in fields:
        _put(np, body, at, lengths.astype(">i4").view(np.uint8))
        at += 4
        present = np.maximum(lengths, 0)
        if payload.size:
            # byte k of the column's payload goes to its row's field, at the
            # byte's offset within its value
            offsets = np.repeat(at - (np.cumsum(present) - present), present)
            body[offsets + np.arange(payload.size)] = payload
        at += present
    return _HEADER + body.tobytes() + _TRAILER


def _put(np: Any, body: Any, at: Any, data: Any) -> None:
    """Fixed-width bytes (``data``: rows x width, flattened) at each row's ``at``."""
    width = data.size // len(at)
    body[(at[:, None] + np.arange(width)).ravel()] = data


def _field(np: Any, form: str, array: Any, rows: int) -> tuple[Any, Any]:
    """(lengths, payload bytes) of a column: length -1 for a NULL."""
    if form == "text":
        strings = array.tolist()
        encoded = [b"" if s is None else s.encode() for s in strings]
        lengths = np.fromiter(map(len, encoded), dtype=np.int32, count=rows)
        if None in strings:
            lengths[np.equal(array, None)] = -1
        return lengths, np.frombuffer(b"".join(encoded), dtype=np.uint8)
    nulls = np.equal(array, None) if array.dtype == object else np.zeros(rows, bool)
    values = np.where(nulls, 0, array).astype(np.int64)
    if form == "timestamp":  # Unix seconds -> microseconds since 2000
        nulls |= values == columns.NULL_TIME
        values = np.where(nulls, 0, values - _SINCE_2000_S) * 1_000_000
    elif form == "date":  # Unix days -> days since 2000
        values = values - _SINCE_2000_D
    elif form in ("int4", "int2"):
        limit = 2 ** (31 if form == "int4" else 15)
        if values.size and (values.min() < -limit or values.max() >= limit):
            raise OltpseedError(f"a value is out of range for the {form} column")
    data = values.astype(np.uint8) if form == "bool" else values.astype(_FIXED[form])
    width = data.itemsize
    lengths = np.full(rows, width, dtype=np.int32)
    if nulls.any():
        lengths[nulls] = -1
        data = data[~nulls]
    return lengths, np.ascontiguousarray(data).view(np.uint8).ravel()
