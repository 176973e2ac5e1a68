"""The changes file: one JSON line per committed row change (``stream --changes``).

It is the row-level ledger a CDC pipeline is held to: ``oltpseed cdc verify
--changes`` and ``oltpseed cdc diff --expected`` read it. Each line is one
JSON object, in commit order (a batch's lines are together, in the order its
statements ran)::

    {"run": "3f9c2a1b7d04", "batch": 12, "xid": 74512, "table": "consultas",
     "op": "update", "key": {"id": 42}}

* ``run`` - the stream's run id (the report's ``run_id``);
* ``batch`` - the batch number, the one the stream tags the transaction with
  in the WAL (``pg_logical_emit_message``, prefix ``oltpseed.stream``);
* ``xid`` - the transaction id as pgoutput's Begin and Debezium's
  ``source.txId`` carry it (32 bits: ``pg_current_xact_id()`` modulo 2**32);
* ``table`` - the table's name, without schema;
* ``op`` - ``insert``, ``update``, ``delete`` or ``truncate``;
* ``key`` - primary-key column -> value; integers are JSON numbers, other
  types PostgreSQL's text form (strings); ``{}`` for a truncate;
* ``at`` - the wall-clock time (ns since the epoch) the batch's COMMIT was
  sent; readers that do not need it ignore it.

Only committed batches are written (a COMMIT settled after a lost connection
included, a rolled-back or lost batch never), each flushed once committed, so
the file is complete up to the last committed batch even if the run is killed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, NamedTuple

from pytest_oltpseed.errors import OltpseedError, UsageError

OPS = ("insert", "update", "delete", "truncate")
Key = tuple[tuple[str, Any], ...]
"""A key in comparable form: (column, value) pairs sorted by column."""


class RowChange(NamedTuple):
    """One line of a changes file (a named tuple: millions are read at once)."""

    run: str
    batch: int
    xid: int
    table: str
    op: str
    key: Mapping[str, Any]

    def as_key(self) -> Key:
        key = self.key
        return tuple(key.items()) if len(key) < 2 else tuple(sorted(key.items()))


def key_of(key: Mapping[str, Any]) -> Key:
    """A key mapping in the comparable form both sides of a check share."""
    if len(key) == 1:
        return tuple(key.items())
    return tuple(sorted(key.items()))


def json_value(value: Any) -> Any:
    """A key value as the file stores it: ints stay numbers, the rest is text."""
    if value is None or isinstance(value, int | str):
        return value
    return str(value)


def short_xid(xid: int | str) -> int:
    """``pg_current_xact_id()`` (64 bits, with epoch) -> the 32-bit xid in the WAL."""
    return int(xid) & 0xFFFFFFFF


class ChangesWriter:
    """Appends committed batches to a changes file; constant memory.

    :meth:`open` creates (truncates) the file at once, so an unwritable path
    fails before anything is written to the database (one line, exit 2).
    """

    def __init__(self, path: Path, handle: IO[str]) -> None:
        self.path = path
        self._handle = handle
        self.lines = 0

    @classmethod
    def open(cls, path: Path) -> ChangesWriter:
        if path.is_dir():
            raise UsageError(f"cannot write --changes {path}: it is a directory")
        try:
            handle = path.open("w", encoding="utf-8")
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise UsageError(f"cannot write --changes {path}: {reason}") from None
        return cls(path, handle)

    def write_batch(
        self,
        run: str,
        batch: int,
        xid: int,
        changes: Iterable[tuple[str, str, Iterable[Mapping[str, Any]]]],
        at: int | None = None,
    ) -> int:
        """Write one committed batch: (table, op, keys) groups in statement
        order; flushed before returning. Returns the lines written.

        ``at`` (wall clock, ns, taken just before COMMIT) is written as the
        line's ``at`` when given: it orders the batches of several clients'
        files by commit (:func:`~pytest_oltpseed.stream.merging.merge_changes`).
        """
        stamp = f', "at": {at}' if at is not None else ""
        head = f'{{"run": {json.dumps(run)}, "batch": {batch}, "xid": {xid}{stamp}, '
        dumps = json.dumps
        out: list[str] = []
        for table, op, keys in changes:
            middle = f'{head}"table": {dumps(table)}, "op": "{op}", "key": '
            out.extend(f"{middle}{dumps(key, default=str)}}}\n" for key in keys)
        if out:
            try:
                self._handle.write("".join(out))
                self._handle.flush()
            except OSError as exc:
                raise OltpseedError(
                    f"cannot write --changes {self.path}: {exc.strerror or exc}; "
                    f"it holds the batches before {batch}, the database has every "
                    "committed batch (the report counts them)"
                ) from None
            self.lines += len(out)
        return len(out)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> ChangesWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_changes(path: Path, flag: str = "--changes") -> Iterator[RowChange]:
    """The file's lines in order; one clear line (exit 2) for a malformed one,
    or for a file that cannot be read (naming ``flag``, the option that gave it).

    Lines are parsed a megabyte at a time in one ``json.loads`` (the per-line
    cost dominated verification); a chunk that fails is parsed again line by
    line to name the bad line.
    """
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {flag} {path}: {exc.strerror or exc}") from None
    with handle:
        number = 0
        while lines := handle.readlines(1 << 20):
            yield from _chunk(path, lines, number)
            number += len(lines)


def _chunk(path: Path, lines: list[str], before: int) -> list[RowChange]:
    try:
        items = json.loads("[" + ",".join(x for x in lines if not x.isspace()) + "]")
        found = [
            RowChange(i["run"], i["batch"], i["xid"], i["table"], i["op"], i["key"])
            for i in items
        ]
    except (ValueError, KeyError, TypeError):
        found = None
    if found is not None and all(map(_valid, found)):
        return found
    return [
        change
        for number, line in enumerate(lines, before + 1)
        if (change := _line(path, number, line)) is not None
    ]


def _valid(change: RowChange) -> bool:
    return (
        type(change.batch) is int
        and type(change.xid) is int
        and type(change.key) is dict
        and type(change.run) is str
        and type(change.table) is str
        and change.op in OPS
    )


def _line(path: Path, number: int, line: str) -> RowChange | None:
    """One line, checked; None for a blank one."""
    if line.isspace() or not line:
        return None
    try:
        item = json.loads(line)
        change = RowChange(
            item["run"], item["batch"], item["xid"], item["table"], item["op"],
            item["key"],
        )  # fmt: skip
    except (ValueError, KeyError, TypeError):
        change = None
    if change is None or not _valid(change):
        if change is not None and change.op not in OPS:
            raise UsageError(f"{path}:{number}: unknown op {change.op!r}")
        raise UsageError(
            f"{path}:{number}: not a changes line (expected JSON with run, "
            "batch, xid, table, op, key, as oltpseed stream --changes writes)"
        )
    return change
