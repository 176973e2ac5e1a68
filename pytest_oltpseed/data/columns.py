"""Column generators: each field defined once, producing one value or a column.

A declaration such as ``Col(Weighted(STATUS))`` drives three paths from one
definition:

* per object (``create()``, the stream): the generator draws its uniforms from
  the context's ``random.Random`` and returns one Python value;
* the bulk seed, column-wise (NumPy, the "fast path"): a chunk's uniforms come
  from a counter-based stream and the generator maps whole arrays at once;
* the bulk seed without NumPy (or with ``OLTPSEED_FAST=0``): the same
  counter-based uniforms, mapped one row at a time by the scalar code.

The counter-based stream (splitmix64 of a per-column key plus the row number)
is exact in both integer arithmetics, and every mapping uses only operations
that round identically in Python floats and NumPy ``float64``, so the last two
paths give the same rows for a seed, with or without workers.

Timestamps travel as whole seconds since the (naive UTC) epoch.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
import unicodedata
import weakref
from bisect import bisect
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import accumulate
from typing import Any

np: Any = None  # NumPy (optional extra ``fast``), imported on first column-wise use

EPOCH = datetime(1970, 1, 1)
_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_SCALE = 2.0**-53


FAST_AT = 10_000
"""Stages smaller than this skip NumPy: its import (~0.25 s) costs more than the
column-wise path saves on fewer rows, and the rows are the same either way."""
FAST_LOADED_AT = 1_000
"""Once an earlier stage imported NumPy, stages from this size use it too."""
RUN_FAST_AT = 30_000
"""A seeding run of this many rows in all (items included) imports NumPy up
front (:func:`warm`), so that its many mid-sized stages (retail LARGE: 5,000
products, 2,000 entries with 9,000 items) go column-wise too."""


def load_numpy() -> bool:
    """Import NumPy on first use; False when it is not installed."""
    global np
    if _PREFETCH and threading.current_thread() is not _PREFETCH[0]:
        numpy_settled()
    if np is None:
        try:
            import numpy
        except ImportError:
            return False
        np = numpy
    return True


_PREFETCH: list[threading.Thread] = []


def warm(run_rows: int, largest: int) -> None:
    """Start importing NumPy on a thread when the run will use it: a stage of
    :data:`FAST_AT` rows, or a run of :data:`RUN_FAST_AT` rows in all (its
    mid-sized stages then go column-wise too). The ~0.25 s of the import
    overlap the small stages before, whose time is mostly spent waiting on
    the server; :func:`load_numpy` waits for it."""
    if np is not None or _PREFETCH or not fast_enabled(0):
        return
    if run_rows < RUN_FAST_AT and largest < FAST_AT:
        return
    thread = threading.Thread(target=load_numpy, name="oltpseed-numpy", daemon=True)
    _PREFETCH.append(thread)
    thread.start()


def numpy_settled() -> None:
    """Wait for a prefetch to finish (before forking: no import half done)."""
    for thread in _PREFETCH:
        thread.join()


def fast_enabled(rows: int = FAST_AT) -> bool:
    """The column-wise path runs for a stage of ``rows`` when NumPy is
    importable and the fast path is not switched off (``OLTPSEED_FAST=0``).
    ``rows`` 0 asks only whether it is switched on."""
    if os.environ.get("OLTPSEED_FAST", "1") == "0":
        return False
    if rows == 0:
        return True
    if rows < FAST_AT:
        loaded = np is not None or (bool(_PREFETCH) and load_numpy())
        return loaded and rows >= min(FAST_LOADED_AT, FAST_AT)
    return load_numpy()


def fast_expected(rows: int) -> bool:
    """What :func:`fast_enabled` will answer for a stage of ``rows``, without
    waiting for a NumPy import under way: the seeder plans its lanes before
    the first stage, and waiting there would hold back the small stages the
    import is meant to overlap (~0.2 s at LARGE)."""
    if not fast_enabled(0) or not _importable():
        return False
    if rows >= FAST_AT:
        return True
    return (np is not None or bool(_PREFETCH)) and rows >= FAST_LOADED_AT


def _importable() -> bool:
    if np is None and not _FOUND:
        _FOUND.append(importlib.util.find_spec("numpy") is not None)
    return np is not None or _FOUND[0]


_FOUND: list[bool] = []  # whether NumPy is installed, once looked up


_SECOND = timedelta(seconds=1)
_SECONDS: dict[datetime, int] = {}
SECONDS_CACHE = 65_536
"""Timestamps remembered by :func:`to_seconds`: a batch's rows read the same
few (a patient's data_cadastro, the run's as_of) again and again, and the
lookup costs a fifth of the arithmetic."""


def to_seconds(moment: datetime) -> int:
    seconds = _SECONDS.get(moment)
    if seconds is None:
        seconds = (moment - EPOCH) // _SECOND
        if len(_SECONDS) >= SECONDS_CACHE:
            _SECONDS.clear()
        _SECONDS[moment] = seconds
    return seconds


def to_moment(seconds: int) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


# -- counter-based uniforms ---------------------------------------------------------
def stream_key(*parts: object) -> int:
    """A 64-bit key for one random stream, stable across runs and machines."""
    text = ":".join(map(str, parts)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def uniform(key: int, i: int) -> float:
    """Row ``i`` of stream ``key``: splitmix64, top 53 bits, in [0, 1)."""
    z = (key + (i + 1) * _GOLDEN) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return ((z ^ (z >> 31)) >> 11) * _SCALE


def uniforms(key: int, start: int, n: int) -> Any:
    """Rows ``start .. start+n-1`` of stream ``key`` as a float64 array."""
    return uniforms_at(key, np.arange(start, start + n, dtype=np.uint64))


def uniforms_at(key: int, rows: Any) -> Any:
    """:func:`uniform` of stream ``key`` at each of ``rows`` (an integer array),
    for draws keyed by something other than a range of rows (a patient's
    index among those still eligible)."""
    i = rows.astype(np.uint64, copy=False) + np.uint64(1)
    with np.errstate(over="ignore"):
        z = np.uint64(key) + i * np.uint64(_GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * _SCALE


def pick(u: float, size: int) -> int:
    """A uniform index in ``range(size)``: the one rule for every pick."""
    return int(u * size)


def picks(u: Any, size: int) -> Any:
    return (u * size).astype(np.int64)


# -- what a column generator sees ---------------------------------------------------
class Frame:
    """A chunk's columns so far, for generators that read other columns.

    ``columns`` holds arrays by column name (picked parents as indices into
    their pool); ``parents`` maps an FK column to its pool, whose carried
    columns are read through :meth:`carried`.
    """

    def __init__(self, as_of: datetime, size: int, pools: Any, start: int = 0) -> None:
        """``pools`` are the seed's value pools (names, streets: ``ctx.pools``);
        ``start`` is the chunk's first row number in its stage."""
        self.as_of = to_seconds(as_of)
        self.today = (as_of.date() - EPOCH.date()).days
        self.size = size
        self.pools = pools
        self.start = start
        self.columns: dict[str, Any] = {}
        self.parents: dict[str, Any] = {}
        self.used: dict[tuple[str, str], int] = {}
        self.fresh: dict[tuple[str, str], Any] = {}
        """Reserved indices of ``fresh`` keys for this chunk's rows."""
        self.children: dict[str, Frame] = {}
        """A header's item frames by Items name (``header`` column: row number)."""

    def carried(self, fk: str, column: str) -> Any:
        values = self.parents[fk].seconds(column)
        return values[self.columns[fk]]


# -- bounds: small expressions over seconds -----------------------------------------
class Expr:
    def one(self, g: Any, r: Any) -> int:
        raise NotImplementedError

    def many(self, f: Frame) -> Any:
        raise NotImplementedError


class AsOf(Expr):
    """The run's "now" (``ctx.as_of``), shifted by ``offset``."""

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.offset = offset // timedelta(seconds=1)

    def one(self, g: Any, r: Any) -> int:
        return to_seconds(g.as_of) + self.offset

    def many(self, f: Frame) -> Any:
        return np.full(f.size, f.as_of + self.offset, dtype=np.int64)


class ParentCol(Expr):
    """A timestamp column of the row's parent (carried by the FK's ``carry``)."""

    def __init__(self, fk: str, column: str, table: str) -> None:
        self.fk, self.column, self.table = fk, column, table

    def one(self, g: Any, r: Any) -> int:
        return to_seconds(g.parent(getattr(r, self.fk), self.table)[self.column])

    def many(self, f: Frame) -> Any:
        return f.carried(self.fk, self.column)


class DayStart(Expr):
    """Midnight of a date column of the same row."""

    def __init__(self, column: str) -> None:
        self.column = column

    def one(self, g: Any, r: Any) -> int:
        day = getattr(r, self.column)
        return to_seconds(datetime(day.year, day.month, day.day))

    def many(self, f: Frame) -> Any:
        return f.columns[self.column] * 86_400


class Before(Expr):
    """A bound minus a duration column of the same row (seconds)."""

    def __init__(self, bound: Expr, column: str) -> None:
        self.bound, self.column = bound, column

    def one(self, g: Any, r: Any) -> int:
        return self.bound.one(g, r) - getattr(r, self.column) // timedelta(seconds=1)

    def many(self, f: Frame) -> Any:
        return self.bound.many(f) - f.columns[self.column]


class Latest(Expr):
    """The latest of several bounds (``max``)."""

    def __init__(self, *parts: Expr) -> None:
        self.parts = parts

    def one(self, g: Any, r: Any) -> int:
        parts = self.parts
        out = parts[0].one(g, r)
        for p in parts[1:]:  # no generator expression: this runs per row
            value = p.one(g, r)
            if value > out:
                out = value
        return out

    def many(self, f: Frame) -> Any:
        out = self.parts[0].many(f)
        for p in self.parts[1:]:
            out = np.maximum(out, p.many(f))
        return out


class Plus(Expr):
    """A bound shifted by a fixed ``offset`` (which may be negative)."""

    def __init__(self, bound: Expr, offset: timedelta) -> None:
        self.bound, self.offset = bound, offset // timedelta(seconds=1)

    def one(self, g: Any, r: Any) -> int:
        return self.bound.one(g, r) + self.offset

    def many(self, f: Frame) -> Any:
        return self.bound.many(f) + self.offset


# -- generators -----------------------------------------------------------------------
class Gen:
    """A column generator: ``draws`` uniforms in, one value (or one array) out.

    Instances are callables ``(ctx, row) -> value``, so ``Col(gen)`` is the
    per-object path; :meth:`one` and :meth:`many` are the two bulk forms.
    ``kind`` says how :meth:`many`'s array becomes COPY text.
    """

    draws = 1
    kind = "text"

    def __call__(self, g: Any, r: Any) -> Any:
        draws = self.draws
        if draws == 1:  # most generators: skip the list comprehension
            return self.one(g, (g.rng.random(),), r)
        return self.one(g, [g.rng.random() for _ in range(draws)], r)

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        raise NotImplementedError

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        raise NotImplementedError


class Choice(Gen):
    """Uniform choice from a fixed tuple."""

    def __init__(self, options: Sequence[Any]) -> None:
        self.options = tuple(options)
        self._array: Any = None

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        return self.options[pick(us[0], len(self.options))]

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        if self._array is None:
            self._array = np.array(self.options, dtype=object)
        return self._array[picks(us[0], len(self.options))]


class Weighted(Gen):
    """A key of ``choices`` drawn with its weight (like ``ctx.weighted``)."""

    def __init__(self, choices: Mapping[Any, float]) -> None:
        self.keys = tuple(choices)
        self.cumulative = list(accumulate(choices.values()))
        self.total = self.cumulative[-1] + 0.0
        self._array: Any = None
        if all(type(k) is int for k in self.keys):
            self.kind = "int"  # e.g. a quantity: 1 most of the time

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        x = us[0] * self.total
        return self.keys[bisect(self.cumulative, x, 0, len(self.keys) - 1)]

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        if self._array is None:
            dtype = np.int64 if self.kind == "int" else object
            self._array = np.array(self.keys, dtype=dtype)
        edges = np.array(self.cumulative[:-1], dtype=np.float64)
        return self._array[np.searchsorted(edges, us[0] * self.total, side="right")]


class Maybe(Gen):
    """``None`` with probability ``p`` (a pending result), else ``then``."""

    def __init__(self, p: float, then: Gen) -> None:
        self.p, self.then = p, then
        self.draws = 1 + then.draws
        self.kind = then.kind

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        return None if us[0] < self.p else self.then.one(g, us[1:], r)

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        values = self.then.many(f, us[1:]).astype(object)
        values[us[0] < self.p] = None
        return values


class Moment(Gen):
    """A whole-second time uniformly in [start, end] (``ctx.moment``)."""

    kind = "timestamp"

    def __init__(self, start: Expr, end: Expr) -> None:
        self.start, self.end = start, end

    def seconds(self, g: Any, u: float, r: Any) -> int:
        start = self.start.one(g, r)
        span = max(0, self.end.one(g, r) - start)
        return start + int(u * (span + 1))

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        return to_moment(self.seconds(g, us[0], r))

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        start = self.start.many(f)
        span = np.maximum(0, self.end.many(f) - start)
        return start + (us[0] * (span + 1).astype(np.float64)).astype(np.int64)


class Flag(Gen):
    """True with probability ``p`` (a helper column, e.g. a stay still open)."""

    kind = "bool"

    def __init__(self, p: float) -> None:
        self.p = p

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        return us[0] < self.p

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        return us[0] < self.p


class Span(Gen):
    """A duration of whole seconds uniformly in [low, high]."""

    kind = "interval"

    def __init__(self, low: timedelta, high: timedelta) -> None:
        self.low = low // timedelta(seconds=1)
        self.span = high // timedelta(seconds=1) - self.low

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        return timedelta(seconds=self.low + int(us[0] * (self.span + 1)))

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        return self.low + (us[0] * float(self.span + 1)).astype(np.int64)


class EndAfter(Gen):
    """``start`` + ``length`` (both columns of the row), or None when ``unless``."""

    kind = "timestamp"
    draws = 0

    def __init__(self, start: str, length: str, unless: str) -> None:
        self.start, self.length, self.unless = start, length, unless

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        if getattr(r, self.unless):
            return None
        return getattr(r, self.start) + getattr(r, self.length)

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        end = f.columns[self.start] + f.columns[self.length]
        return np.where(f.columns[self.unless], NULL_TIME, end)


NULL_TIME = -(2**63)
"""A NULL in a timestamp column (NumPy's NaT once viewed as datetime64)."""


class Day(Gen):
    """A date uniformly in [today+first, today+last] days (``ctx.day``)."""

    kind = "date"

    def __init__(self, first: int, last: int) -> None:
        self.first, self.span = first, max(0, last - first)

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        today = g.as_of.date()
        return today + timedelta(days=self.first + int(us[0] * (self.span + 1)))

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        start = f.today + self.first
        return start + (us[0] * float(self.span + 1)).astype(np.int64)


class PoolChoice(Gen):
    """Uniform choice from one of the seed's value pools (``ctx.pools.<name>``),
    shown through ``show`` (e.g. a (city, UF) pair as ``"city - UF"``)."""

    def __init__(self, name: str, show: Any = None) -> None:
        self.name, self.show = name, show
        self._cache: tuple[Any, Any] | None = None

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        options = getattr(g.pools, self.name)
        value = options[pick(us[0], len(options))]
        return self.show(value) if self.show else value

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        options = getattr(f.pools, self.name)
        if self._cache is None or self._cache[0] is not options:
            shown = [self.show(o) for o in options] if self.show else options
            self._cache = (options, np.array(list(shown), dtype=object))
        return self._cache[1][picks(us[0], len(options))]


class Join(Gen):
    """Text joined from literal pieces and generators (each its own draws)."""

    def __init__(self, *parts: str | Gen, limit: int | None = None) -> None:
        self.parts, self.limit = parts, limit
        self.draws = sum(p.draws for p in parts if isinstance(p, Gen))

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        out, at = [], 0
        for part in self.parts:
            if isinstance(part, Gen):
                out.append(str(part.one(g, us[at : at + part.draws], r)))
                at += part.draws
            else:
                out.append(part)
        text = "".join(out)
        return text[: self.limit] if self.limit else text

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        out: Any = None
        at = 0
        for part in self.parts:
            if isinstance(part, Gen):
                piece = part.many(f, us[at : at + part.draws])
                at += part.draws
            else:
                piece = part
            out = piece if out is None else out + piece
        if self.limit and any(len(v) > self.limit for v in set(out.tolist())):
            out = np.array([v[: self.limit] for v in out.tolist()], dtype=object)
        return out


class Int(Gen):
    """An integer in [low, high] as text, zero-padded to ``width`` (``randint``)."""

    def __init__(self, low: int, high: int, width: int = 0) -> None:
        self.low, self.high, self.width = low, high, width
        self._table: Any = None

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        value = self.low + pick(us[0], self.high - self.low + 1)
        return f"{value:0{self.width}d}"

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        if self._table is None:
            self._table = np.array(
                [f"{v:0{self.width}d}" for v in range(self.low, self.high + 1)],
                dtype=object,
            )
        return self._table[picks(us[0], self.high - self.low + 1)]


class Digits(Gen):
    """``width`` random decimal digits (a card or account number)."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.space = 10**width

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        return f"{int(us[0] * self.space):0{self.width}d}"

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        numbers = (us[0] * float(self.space)).astype(np.int64).astype(str)
        return np.strings.zfill(numbers, self.width).astype(object)


class Chance(Gen):
    """``then`` with probability ``p``, else ``other`` (same later draws)."""

    def __init__(self, p: float, then: Gen, other: Gen) -> None:
        self.p, self.then, self.other = p, then, other
        self.draws = 1 + max(then.draws, other.draws)

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        gen = self.then if us[0] < self.p else self.other
        return gen.one(g, us[1:], r)

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        return np.where(
            us[0] < self.p, self.then.many(f, us[1:]), self.other.many(f, us[1:])
        )


class Indexed(Gen):
    """A unique identifier from the row's index in ``key``'s sequence
    (``ctx.next_index``): ``make(n)`` per value, ``make_many(array)`` per column."""

    def __init__(
        self, domain: str, key: str, make: Any, make_many: Any, *, fresh: bool = False
    ) -> None:
        """``fresh`` keys (invoice numbers: not natural keys) are reserved from
        the database even by the seeder, so a rerun never repeats them; the
        bulk path reads them from ``Frame.fresh``."""
        self.domain, self.key = domain, key
        self.make, self.make_many = make, make_many
        self.fresh = fresh
        self.draws = 0

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        return self.make(g.next_index(self.domain, self.key, fresh=self.fresh))

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        if self.fresh:
            return self.make_many(f.fresh[(self.domain, self.key)])
        f.used[(self.domain, self.key)] = f.start + f.size
        return self.make_many(np.arange(f.start, f.start + f.size, dtype=np.int64))


class IndexedBy(Gen):
    """A unique identifier whose kind depends on another column (a client's
    CNPJ when a company, else CPF): ``cases`` maps that column's value to
    ``(key, make, make_many)``, ``default`` the rest.

    Row ``n`` of a seeded chunk takes index ``n`` of its own key, so the per
    row and column forms agree; per object every key advances once a row
    (one index of the unused keys is skipped: the spaces are vast).
    """

    draws = 0

    def __init__(
        self, domain: str, column: str, cases: Mapping[Any, Any], default: Any
    ) -> None:
        self.domain, self.column = domain, column
        self.cases, self.default = dict(cases), default
        self.keys = [spec[0] for spec in (*self.cases.values(), default)]

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        index = {key: g.next_index(self.domain, key) for key in self.keys}
        key, make, _ = self.cases.get(getattr(r, self.column), self.default)
        return make(index[key])

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        for key in self.keys:
            f.used[(self.domain, key)] = f.start + f.size
        n = np.arange(f.start, f.start + f.size, dtype=np.int64)
        out = np.empty(f.size, dtype=object)
        rest = np.ones(f.size, dtype=bool)
        for value, (_, _, make_many) in self.cases.items():
            mask = f.columns[self.column] == value
            if mask.any():
                out[mask] = make_many(n[mask])
            rest &= ~mask
        if rest.any():
            out[rest] = self.default[2](n[rest])
        return out


class Number(Gen):
    """An integer uniformly in [low, high] (``ctx.randint``)."""

    kind = "int"

    def __init__(self, low: int, high: int) -> None:
        self.low, self.size = low, high - low + 1

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        return self.low + pick(us[0], self.size)

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        return self.low + picks(us[0], self.size)


class PoolIndex(Gen):
    """The index of a uniform pick from a value pool (a helper column, so that
    several columns read one pick: a city and its UF)."""

    kind = "int"

    def __init__(self, name: str) -> None:
        self.name = name

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        return pick(us[0], len(getattr(g.pools, self.name)))

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        return picks(us[0], len(getattr(f.pools, self.name)))


class PoolItem(Gen):
    """Field ``field`` of the pool entry a :class:`PoolIndex` column picked."""

    draws = 0

    def __init__(self, column: str, name: str, field: int) -> None:
        self.column, self.name, self.field = column, name, field
        self._cache: tuple[Any, Any] | None = None

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        return getattr(g.pools, self.name)[getattr(r, self.column)][self.field]

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        options = getattr(f.pools, self.name)
        if self._cache is None or self._cache[0] is not options:
            values = np.empty(len(options), dtype=object)
            values[:] = [o[self.field] for o in options]
            self._cache = (options, values)
        return self._cache[1][f.columns[self.column]]


class Derived(Gen):
    """``fn`` of other columns of the row (a SKU from the product's name):
    a Python call per row in both forms, for what arrays cannot express."""

    draws = 0

    def __init__(
        self, fn: Any, *columns: str, kind: str = "text", many: Any = None
    ) -> None:
        """``many`` maps the columns' arrays at once, where that can be done."""
        self.fn, self.columns, self.kind, self.fn_many = fn, columns, kind, many

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        return self.fn(*(getattr(r, c) for c in self.columns))

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        if self.fn_many is not None:
            return self.fn_many(*(f.columns[c] for c in self.columns))
        values = zip(*(f.columns[c].tolist() for c in self.columns), strict=True)
        out = np.empty(f.size, dtype=object if self.kind == "text" else np.int64)
        out[:] = [self.fn(*v) for v in values]
        return out


class Email(Gen):
    """``first.last123@domain`` from a name column (``ctx.email``)."""

    draws = 2

    def __init__(self, column: str) -> None:
        self.column = column
        self.number = Int(1, 999)
        self.domain = PoolChoice("email_domains")

    @staticmethod
    def user(name: str) -> str:
        ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore")
        parts = ascii_name.decode().lower().split()
        return f"{parts[0]}.{parts[-1]}"

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        number = self.number.one(g, us[:1], r)
        return f"{self.user(getattr(r, self.column))}{number}@" + self.domain.one(
            g, us[1:], r
        )

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        users = np.empty(f.size, dtype=object)
        users[:] = [self.user(v) for v in f.columns[self.column].tolist()]
        return users + self.number.many(f, us[:1]) + "@" + self.domain.many(f, us[1:])


# -- money: whole cents per column, Decimal per value ---------------------------------
def to_money(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def to_cents(value: Decimal) -> int:
    return int(value * 100)


class Cents(Gen):
    """An amount uniformly in [low, high] (reais), to the cent; ``by`` (a
    column holding small ints) picks the row's range from ``ranges``."""

    kind = "money"

    def __init__(self, ranges: Sequence[tuple[float, float]], by: str) -> None:
        self.by = by
        self.low = [round(low * 100) for low, _ in ranges]
        self.size = [round(high * 100) - round(low * 100) + 1 for low, high in ranges]

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        k = getattr(r, self.by)
        return to_money(self.low[k] + int(us[0] * self.size[k]))

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        k = f.columns[self.by]
        low = np.array(self.low, dtype=np.int64)[k]
        size = np.array(self.size, dtype=np.float64)[k]
        return low + (us[0] * size).astype(np.int64)


class Scaled(Gen):
    """A money column times a uniform factor in [low, high) (a price from its
    cost), truncated to the cent."""

    kind = "money"

    def __init__(self, column: str, low: float, high: float) -> None:
        self.column, self.low, self.span = column, low, high - low

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        cents = to_cents(getattr(r, self.column))
        return to_money(int(cents * (self.low + us[0] * self.span)))

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        factor = self.low + us[0] * self.span
        return (f.columns[self.column] * factor).astype(np.int64)


_PARENT_MONEY: weakref.WeakKeyDictionary[Any, dict[str, Any]] = (
    weakref.WeakKeyDictionary()
)


class ParentValue(Gen):
    """A carried money column of the row's parent (an item's unit price)."""

    draws = 0
    kind = "money"

    def __init__(self, fk: str, column: str, table: str) -> None:
        self.fk, self.column, self.table = fk, column, table

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        return g.parent(getattr(r, self.fk), self.table)[self.column]

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        pool = f.parents[self.fk]
        cached = _PARENT_MONEY.setdefault(pool, {})
        if self.column not in cached:
            cached[self.column] = np.fromiter(
                (to_cents(v) for v in pool.values[self.column]),
                dtype=np.int64,
                count=len(pool),
            )
        return cached[self.column][f.columns[self.fk]]


class Times(Gen):
    """An int column times a money column (a subtotal)."""

    draws = 0
    kind = "money"

    def __init__(self, count: str, amount: str) -> None:
        self.count, self.amount = count, amount

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        return getattr(r, self.count) * getattr(r, self.amount)

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        return f.columns[self.count] * f.columns[self.amount]


class Total(Gen):
    """The sum over a header's items of the product of ``fields`` (a sale's
    total, an entry's cost): always equal to its items, by construction."""

    draws = 0
    kind = "money"

    def __init__(self, items: str, *fields: str) -> None:
        self.items, self.fields = items, fields

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        total = Decimal("0.00")
        for item in getattr(r, self.items):
            amount = item[self.fields[0]]
            for name in self.fields[1:]:
                amount = amount * item[name]
            total += amount
        return total

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        child = f.children[self.items]
        amount = child.columns[self.fields[0]]
        for name in self.fields[1:]:
            amount = amount * child.columns[name]
        sums = np.bincount(
            child.columns["header"], weights=amount, minlength=f.size
        )  # float64: exact below 2**53 cents
        return sums.astype(np.int64)


class Switch(Gen):
    """A generator chosen by another column's value (same uniforms for all)."""

    def __init__(self, column: str, cases: Mapping[Any, Gen], default: Gen) -> None:
        self.column, self.cases, self.default = column, dict(cases), default
        gens = [*self.cases.values(), default]
        self.draws = max(gen.draws for gen in gens)
        kinds = {gen.kind for gen in gens}
        if len(kinds) != 1:
            raise TypeError("Switch cases must share one kind")
        self.kind = kinds.pop()

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        gen = self.cases.get(getattr(r, self.column), self.default)
        return gen.one(g, us, r)

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        out = self.default.many(f, us)
        key = f.columns[self.column]
        for value, gen in self.cases.items():
            mask = key == value
            if mask.any():
                out = np.where(mask, gen.many(f, us), out)
        return out


_CENTS = [f"{c:02d}" for c in range(100)]


# -- COPY text of a column ------------------------------------------------------------
_TYPED = {"int": "int64", "money": "int64", "date": "int64", "timestamp": "int64",
          "bool": "bool"}  # fmt: skip
"""Kinds whose arrays hold numbers; such an array of objects holds None too
(a nullable column: :class:`Maybe`)."""


def column_text(kind: str, values: Any) -> list[str]:
    """A column array as COPY text fields (``\\N`` for None).

    Kind ``"value"`` holds Python values (a Decimal of any scale, a parent's
    key), written exactly as the one-row-at-a-time path writes them.
    """
    if kind == "value":
        from pytest_oltpseed.seed.chunks import copy_text

        return [copy_text(v) for v in values.tolist()]
    if kind in _TYPED and values.dtype == object:
        nulls = np.equal(values, None)
        if nulls.any():
            out = np.full(len(values), "\\N", dtype=object)
            present = values[~nulls]
            if len(present):
                out[~nulls] = column_text(kind, present.astype(_TYPED[kind]))
            return out.tolist()  # type: ignore[no-any-return]
        values = values.astype(_TYPED[kind])
    if kind == "timestamp":
        text = np.datetime_as_string(values.astype("datetime64[s]"))
        if (values == NULL_TIME).any():
            text = text.astype(object)
            text[values == NULL_TIME] = "\\N"
        return text.tolist()
    if kind == "int":
        return values.astype(str).tolist()
    if kind == "bool":
        return np.where(values, "t", "f").tolist()
    if kind == "money":  # whole cents; Python's formatting beats NumPy's here
        return [
            f"{whole}.{_CENTS[cents]}"
            for whole, cents in zip(
                (values // 100).tolist(), (values % 100).tolist(), strict=True
            )
        ]
    if kind == "date":
        return np.datetime_as_string(values.astype("datetime64[D]")).tolist()
    nulls = np.equal(values, None) if values.dtype == object else None
    if nulls is not None and nulls.any():
        values = values.copy()
        values[nulls] = "\\N"
    else:
        nulls = None
    out = values.tolist()
    # One pass in C over the joined column instead of a test per value: a
    # string is printable and free of backslashes iff every part is; each
    # null brings exactly one backslash.
    joined = "".join(out)
    expected = 0 if nulls is None else int(nulls.sum())
    if joined.isprintable() and joined.count("\\") == expected:
        return out
    from pytest_oltpseed.seed.chunks import copy_text

    if nulls is None:
        return [copy_text(v) for v in out]
    return [
        "\\N" if null else copy_text(v)
        for v, null in zip(out, nulls.tolist(), strict=True)
    ]
