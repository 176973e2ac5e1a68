"""Chunked generation: a stage's rows as COPY text, here or in worker processes.

Stages without cross-row rules (no hook, no items) are cut into chunks of
:data:`CHUNK` rows. Each chunk has its own random stream and its own range of
identifier indices (``chunk.start`` onwards), so its rows depend only on
(seed, table, chunk number): generating chunks in this process or in workers,
in any number, yields the same rows in the same order. Workers open their own
connection only to read the parents' ids; all writing stays in the stage's
one transaction in the main process, which receives ready COPY text. Workers
are forked per stage and inherit the parents' ids the main process fetched:
they never connect, so they cannot wait on the stage's own locks.

Python generates a row in ~10-30 us on one core while PostgreSQL ingests it
in a few; workers put the machine's other cores to work on generation.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from pytest_oltpseed.data import columns
from pytest_oltpseed.data.factory import Context, Parent, Ref, Row, _Attrs, factory_for
from pytest_oltpseed.data.factory import pools as value_pools
from pytest_oltpseed.seed import binary

CHUNK = 5_000

PoolSource = Callable[[str, tuple[str, ...]], Any]  # (table, carry) -> ParentPool


@dataclass(frozen=True)
class Chunk:
    table: str
    number: int
    start: int
    size: int
    seed: int
    as_of: datetime
    stage_rows: int = 0  # the stage's size: NumPy pays off only on large ones
    first_id: int | None = None  # the key of its first row, when the seeder numbers
    binary: tuple[str, ...] | None = None  # each column's binary form (column-wise)


def plan_chunks(
    table: str,
    count: int,
    seed: int,
    as_of: datetime,
    first_id: int | None = None,
    binary_forms: tuple[str, ...] | None = None,
) -> list[Chunk]:
    """A stage's chunks; with ``first_id`` (see :mod:`.ids`), rows carry their
    key, ``first_id`` onwards in row order; with ``binary_forms``, column-wise
    chunks are binary COPY (see :mod:`.binary`)."""
    return [
        Chunk(
            table, number, start, min(CHUNK, count - start), seed, as_of, count,
            None if first_id is None else first_id + start, binary_forms,
        )
        for number, start in enumerate(range(0, count, CHUNK))
    ]  # fmt: skip


def _key_texts(chunk: Chunk) -> list[str]:
    """The chunk's keys as COPY text (none when the column's default numbers)."""
    if chunk.first_id is None:
        return []
    return list(map(str, range(chunk.first_id, chunk.first_id + chunk.size)))


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text(value: str) -> str:
    # isprintable() is False for tab, newline and CR: most strings skip translate
    if value.isprintable() and "\\" not in value:
        return value
    return value.translate(_ESCAPES)


_FORMATS: dict[type, Callable[[Any], str]] = {
    str: _text,
    int: int.__repr__,
    Decimal: str,
    float: repr,
    bool: lambda v: "t" if v else "f",
    datetime: str,  # "YYYY-MM-DD HH:MM:SS[.ffffff]", what COPY reads
    date: date.isoformat,
    time: time.isoformat,  # "HH:MM:SS[.ffffff]" (a generated time column)
    type(None): lambda v: "\\N",
    Ref: lambda v: str(v.row["id"]),
}


def copy_text(value: Any) -> str:
    """One value in COPY's text format."""
    try:
        return _FORMATS[type(value)](value)
    except KeyError:
        raise TypeError(f"no COPY text form for {type(value).__name__}") from None


Positional = Mapping[str, Callable[[int], Ref]]  # FK column -> (row number -> Ref)


class Planned:
    """Parents a hook planned for a stage: row number -> index in ``pool``.

    Callable (row number -> Ref) for the per-row path; the column-wise path
    slices ``indices`` for a whole chunk.
    """

    def __init__(self, pool: Any, indices: Any) -> None:
        self.pool, self.indices = pool, indices

    def __call__(self, n: int) -> Ref:
        return self.pool.ref(self.indices[n])  # type: ignore[no-any-return]


Rendered = tuple[bytes, list[tuple[tuple[str, str], int]]]  # text, indices used


def render(
    chunk: Chunk, pools: PoolSource, positional: Positional | None = None
) -> tuple[bytes, list[tuple[tuple[str, str], int]]]:
    """The chunk's rows as COPY text, and the identifier indices it used.

    ``positional`` FKs take their parent from the row's number in the stage
    (a hook planned them, e.g. the convênio memberships); others pick at
    random among the parents' ids.
    """
    factory = factory_for(chunk.table)
    planned = dict(positional or {})
    if counter_based(chunk.table, positional):
        if columns.fast_enabled(chunk.stage_rows):
            return render_columns(chunk, pools, planned)  # type: ignore[arg-type]
        return render_counter_rows(chunk, pools, planned)  # type: ignore[arg-type]
    ctx = Context(None, seed=chunk.seed, as_of=chunk.as_of, index_base=chunk.start)
    ctx.rng = random.Random(f"{chunk.seed}:{chunk.table}:{chunk.number}")
    number = [chunk.start]  # the row being made, for positional parents
    pickers: dict[str, Callable[[Any], Ref]] = {}
    for name, kind, declaration in factory._plan():
        if kind is not Parent:
            continue
        if positional and name in positional:
            pickers[name] = _by_number(positional[name], number)
        else:
            pool = pools(declaration.table, declaration.carry)
            pickers[name] = pool.picker(ctx.rng)
    names = factory.column_names()
    formats, make_row = _FORMATS, factory.make_row
    lines = []
    for row_number in range(chunk.start, chunk.start + chunk.size):
        number[0] = row_number
        row = make_row(ctx, pickers)
        values = [row[c] for c in names]
        lines.append("\t".join([formats[type(v)](v) for v in values]))
    lines = _keyed(chunk, lines)
    lines.append("")
    return "\n".join(lines).encode(), ctx.local_indices()


def columnar(table: str) -> bool:
    """Whether a table's rows are defined column-wise: every column a
    :class:`columns.Gen`, parents picked uniformly, nothing excluded or nested.

    Such tables are generated from counter-based streams (see
    :mod:`.columns`), the same rows with NumPy or without.
    """
    factory = factory_for(table)
    return all(
        kind is Parent or (kind.__name__ == "Col" and isinstance(d.fn, columns.Gen))
        for _, kind, d in factory._plan()
    )


def counter_based(table: str, positional: Positional | None) -> bool:
    """Whether a stage's rows come from the counter-based streams."""
    planned = (positional or {}).values()
    return columnar(table) and all(isinstance(p, Planned) for p in planned)


def column_wise(table: str, count: int, positional: Positional | None) -> bool:
    """Whether a stage of ``count`` rows will be generated with NumPy: then
    forking workers costs more than it saves (generation takes ~1-4 us a row
    and the server needs the other core)."""
    return counter_based(table, positional) and columns.fast_enabled(count)


def _keys(chunk: Chunk, name: str, draws: int) -> list[int]:
    return [
        columns.stream_key(chunk.seed, chunk.table, chunk.number, name, j)
        for j in range(draws)
    ]


def render_columns(
    chunk: Chunk, pools: PoolSource, planned: Mapping[str, Planned] | None = None
) -> Rendered:
    """The chunk for COPY, built a column at a time (the NumPy path): text,
    or binary when the stage's columns all have a binary form
    (``chunk.binary``, see :mod:`.binary`)."""
    if not columns.load_numpy():
        raise RuntimeError("the column-wise path needs NumPy (extra 'fast')")
    np = columns.np
    factory = factory_for(chunk.table)
    excluded = set(factory._meta.exclude)  # type: ignore[attr-defined]
    frame = columns.Frame(chunk.as_of, chunk.size, value_pools(chunk.seed), chunk.start)
    written: list[tuple[str, Any]] = []  # (kind, values) of each written column
    if chunk.first_id is not None:
        ids = np.arange(chunk.first_id, chunk.first_id + chunk.size, dtype=np.int64)
        written.append(("int", ids))
    for name, kind, declaration in factory._plan():
        if kind is Parent:
            if planned and name in planned:
                pool = planned[name].pool
                index = columns.np.asarray(planned[name].indices, dtype="int64")[
                    chunk.start : chunk.start + chunk.size
                ]
            else:
                pool = pools(declaration.table, declaration.carry)
                _require(pool)
                (key,) = _keys(chunk, name, 1)
                index = columns.picks(columns.uniforms(key, 0, chunk.size), len(pool))
            frame.columns[name] = index
            frame.parents[name] = pool
            written.append(("int", pool.id_array()[index]))
            continue
        gen = declaration.fn
        us = [columns.uniforms(k, 0, chunk.size) for k in _keys(chunk, name, gen.draws)]
        values = gen.many(frame, us)
        frame.columns[name] = values
        if name not in excluded:
            written.append((gen.kind, values))
    used = sorted(frame.used.items())
    if chunk.binary:
        if len(chunk.binary) != len(written):  # kinds() and this loop disagree
            raise AssertionError(f"{chunk.table}: binary forms do not match columns")
        return binary.encode(chunk.binary, [v for _, v in written], chunk.size), used
    texts = [columns.column_text(kind, values) for kind, values in written]
    lines = list(map("\t".join, zip(*texts, strict=True)))
    lines.append("")
    return "\n".join(lines).encode(), used


def kinds(table: str, numbered: bool) -> list[str]:
    """The generator kind of each column a column-wise chunk of ``table``
    writes, in order (``numbered``: its key first, see :mod:`.ids`)."""
    factory = factory_for(table)
    excluded = set(factory._meta.exclude)  # type: ignore[attr-defined]
    out = ["int"] if numbered else []
    for name, kind, declaration in factory._plan():
        if kind is Parent:
            out.append("int")
        elif name not in excluded:
            out.append(declaration.fn.kind)
    return out


def render_counter_rows(
    chunk: Chunk, pools: PoolSource, planned: Mapping[str, Planned] | None = None
) -> Rendered:
    """The same rows as :func:`render_columns`, one at a time in pure Python."""
    factory = factory_for(chunk.table)
    ctx = Context(None, seed=chunk.seed, as_of=chunk.as_of, index_base=chunk.start)
    plan: list[tuple[str, Any, list[int]]] = []
    for name, kind, declaration in factory._plan():
        if planned and name in planned:
            plan.append((name, planned[name], []))
        elif kind is Parent:
            pool = pools(declaration.table, declaration.carry)
            _require(pool)
            plan.append((name, pool, _keys(chunk, name, 1)))
        else:
            plan.append(
                (name, declaration.fn, _keys(chunk, name, declaration.fn.draws))
            )
    uniform, pick, lines = columns.uniform, columns.pick, []
    names = factory.column_names()
    for i in range(chunk.size):
        row = Row()
        view = _Attrs(row)
        for name, source, keys in plan:
            us = [uniform(k, i) for k in keys]
            if isinstance(source, columns.Gen):
                row[name] = source.one(ctx, us, view)
            elif isinstance(source, Planned):
                row[name] = source(chunk.start + i)
            else:
                row[name] = source.ref(pick(us[0], len(source)))
        lines.append("\t".join([_FORMATS[type(row[c])](row[c]) for c in names]))
    lines = _keyed(chunk, lines)
    lines.append("")
    return "\n".join(lines).encode(), ctx.local_indices()


def _keyed(chunk: Chunk, lines: list[str]) -> list[str]:
    """``lines`` with the chunk's keys in front, when the seeder numbers them."""
    keys = _key_texts(chunk)
    if not keys:
        return lines
    return [f"{key}\t{line}" for key, line in zip(keys, lines, strict=True)]


def _require(pool: Any) -> None:
    if not len(pool):
        from pytest_oltpseed.errors import OltpseedError

        raise OltpseedError(
            f"{pool.table} is empty: seed it first (its profile count is 0?)"
        )


def _by_number(at: Callable[[int], Ref], number: list[int]) -> Callable[[Any], Ref]:
    return lambda _row: at(number[0])


# -- worker side -------------------------------------------------------------------
STAGE_POOLS: dict[tuple[str, tuple[str, ...]], Any] = {}
"""Parent pools of the running stage, set before workers fork (they inherit it)."""
STAGE_POSITIONAL: dict[str, Callable[[int], Ref]] = {}
"""Positional parents of the running stage, inherited the same way."""


def quiet_worker() -> None:
    """Workers leave Ctrl-C to the parent, which rolls the stage back and
    reports; otherwise each worker prints its own KeyboardInterrupt traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def work(chunk: Chunk) -> tuple[bytes, list[tuple[tuple[str, str], int]]]:
    """Render a chunk in a forked worker from the inherited parent pools."""
    return render(
        chunk, lambda table, carry: STAGE_POOLS[(table, carry)], STAGE_POSITIONAL
    )
