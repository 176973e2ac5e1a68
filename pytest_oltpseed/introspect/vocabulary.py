"""The column vocabulary of generated domains: every column one generator.

A domain written by ``oltpseed introspect`` declares each written column as
``Col(gen)``, ``gen`` a :class:`~pytest_oltpseed.data.columns.Gen`: the
vocabulary the built-in domains use (``C.Number``, ``C.Choice``,
``C.Maybe``...), plus the generators here for what a schema nobody here wrote
needs (parent keys of any shape, values unique by construction, numerics of
any scale, uuids, arrays). So one declaration drives every path: one value
per object (``create()``, the stream), one array per chunk when seeding
column-wise (NumPy), and one row at a time from the same counter-based
uniforms without NumPy, which gives the same rows.

Arrays of the column-wise path hold each kind's compact form (see
:func:`pytest_oltpseed.data.columns.column_text`); kind ``"value"`` holds the
Python values themselves (a Decimal of any scale, a parent's key columns, a
computed value), written exactly as a row is. :func:`python_values` turns
any column back into what ``one`` returns, for generators that read other
columns (an end after its start, a column computed from others).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from pytest_oltpseed.data import columns as C
from pytest_oltpseed.data.columns import Frame, Gen, pick, picks
from pytest_oltpseed.errors import OltpseedError
from pytest_oltpseed.introspect import runtime

WORDS = (
    "alpha", "amber", "anchor", "aurora", "bamboo", "beacon", "breeze", "canyon",
    "cedar", "comet", "coral", "delta", "ember", "falcon", "fjord", "garnet",
    "harbor", "indigo", "jasper", "lagoon", "maple", "meadow", "nimbus", "oasis",
    "onyx", "orchid", "pebble", "prairie", "quartz", "raven", "river", "saffron",
    "sierra", "summit", "tundra", "velvet", "willow", "zephyr",
)  # fmt: skip
TLDS = ("com", "com.br", "net", "org", "io")
COUNTRIES = ("Brasil", "Portugal", "Argentina", "Chile", "Uruguai", "Paraguai",
             "Peru", "Colômbia", "México")  # fmt: skip
LETTERS = tuple(chr(65 + i) for i in range(26))
HISTORY = timedelta(days=730)
"""Plain times fall in the two years before the run's "now"."""

_WORD = C.Choice(WORDS)
_CAPITAL = C.Choice(tuple(w.capitalize() for w in WORDS))
_LETTER = C.Choice(LETTERS)
_EPOCH_DAY = C.EPOCH.date()


def _np() -> Any:
    return C.np


# -- a column back to Python values ------------------------------------------------
_FROM: dict[str, Callable[[Any], Any]] = {
    "int": int,
    "bool": bool,
    "money": C.to_money,
    "timestamp": C.to_moment,
    "date": lambda days: _EPOCH_DAY + timedelta(days=days),
    "interval": lambda seconds: timedelta(seconds=seconds),
}


def python_values(kind: str, values: Any) -> list[Any]:
    """A column array as the values its generator's ``one`` returns (None kept)."""
    items = values.tolist()
    convert = _FROM.get(kind)
    if convert is None:  # text, value: the values themselves
        return items  # type: ignore[no-any-return]
    null = C.NULL_TIME if kind == "timestamp" else None
    return [None if v is None or v == null else convert(v) for v in items]


def fit(text: str, length: int | None) -> str:
    return text if length is None else text[:length]


def _fit_many(text: Any, length: int | None) -> Any:
    if length is None or not any(len(v) > length for v in set(text.tolist())):
        return text
    out = _np().empty(len(text), dtype=object)
    out[:] = [v[:length] for v in text.tolist()]
    return out


# -- text ---------------------------------------------------------------------------
class Words(Gen):
    """``low`` to ``high`` words (``low`` >= 1), the first capitalised, cut to
    ``length``."""

    def __init__(self, low: int, high: int, length: int | None = None) -> None:
        self.low, self.high, self.length = low, high, length
        self.draws = 1 + high

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        n = self.low + pick(us[0], self.high - self.low + 1)
        text = " ".join(WORDS[pick(us[j], len(WORDS))] for j in range(1, n + 1))
        return fit(text.capitalize(), self.length)

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        np = _np()
        n = self.low + picks(us[0], self.high - self.low + 1)
        text = _CAPITAL.many(f, us[1:2])
        for j in range(2, self.high + 1):
            text = np.where(n >= j, text + " " + _WORD.many(f, us[j : j + 1]), text)
        return _fit_many(text, self.length)


def words(low: int = 1, high: int = 4, length: int | None = None) -> Gen:
    return Words(low, high, length)


def text(length: int | None = None) -> Gen:
    return Words(2, 6, length)


def code(length: int | None = None) -> Gen:
    """A short upper-case code (``char(n)`` columns, SKUs, states)."""
    return C.Join(*[_LETTER] * min(length or 6, 6))


def _cut(*parts: str | Gen, length: int | None) -> Gen:
    return C.Join(*parts, limit=length)


def first_name(length: int | None = None) -> Gen:
    return _cut(C.PoolChoice("first_names"), length=length)


def last_name(length: int | None = None) -> Gen:
    return _cut(C.PoolChoice("last_names"), length=length)


def full_name(length: int | None = None) -> Gen:
    """First name and two surnames (``ctx.person_name``)."""
    last = C.PoolChoice("last_names")
    return _cut(C.PoolChoice("first_names"), " ", last, " ", last, length=length)


def email(length: int | None = None) -> Gen:
    return _cut(_WORD, ".", _WORD, C.Int(1, 9999), "@", C.PoolChoice("email_domains"),
                length=length)  # fmt: skip


def phone(length: int | None = None) -> Gen:
    return _cut("+55 ", C.Int(11, 99), " 9", C.Int(1000, 9999), "-",
                C.Int(1000, 9999), length=length)  # fmt: skip


def _city(pair: tuple[str, str]) -> str:
    return pair[0]


def _state(pair: tuple[str, str]) -> str:
    return pair[1]


def city(length: int | None = None) -> Gen:
    return _cut(C.PoolChoice("cities", _city), length=length)


def state(length: int | None = None) -> Gen:
    return _cut(C.PoolChoice("cities", _state), length=length)


def country(length: int | None = None) -> Gen:
    return _cut(C.Choice(COUNTRIES), length=length)


def street(length: int | None = None) -> Gen:
    return _cut(C.PoolChoice("streets"), ", ", C.Int(1, 3999), length=length)


def district(length: int | None = None) -> Gen:
    return _cut(C.PoolChoice("bairros"), length=length)


def postal_code(length: int | None = None) -> Gen:
    return _cut(C.Int(10000, 99999), "-", C.Int(0, 999, 3), length=length)


def url(length: int | None = None) -> Gen:
    return _cut("https://", _WORD, ".", C.Choice(TLDS), "/", _WORD, length=length)


def document() -> Gen:
    """A small JSON object (json/jsonb columns), as ``json.dumps`` writes it."""
    return C.Join('{"source": "oltpseed", "tag": "', _WORD, '", "score": ',
                  C.Int(0, 100), "}")  # fmt: skip


def inet() -> Gen:
    return C.Join("10.", C.Int(0, 255), ".", C.Int(0, 255), ".", C.Int(1, 254))


def interval() -> Gen:
    return C.Join(C.Int(0, 30), " days ", C.Int(0, 23), " hours")


def clock() -> Gen:
    """A time of day (``HH:MM:SS``)."""
    return C.Join(C.Int(0, 23, 2), ":", C.Int(0, 59, 2), ":", C.Int(0, 59, 2))


class Hex(Gen):
    """``width`` (at most 13) random hexadecimal digits."""

    def __init__(self, width: int) -> None:
        self.width, self.space = width, 16**width

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        return f"{int(us[0] * self.space):0{self.width}x}"

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        out = _np().empty(f.size, dtype=object)
        out[:] = [f"{v:0{self.width}x}" for v in picks(us[0], self.space).tolist()]
        return out


def bytes_() -> Gen:
    """Eight random bytes as bytea's hex text."""
    return C.Join("\\x", Hex(8), Hex(8))


class Tsvector(Gen):
    """Two to five words at positions 1, 2, ... (``'word':1 'word':2``)."""

    draws = 6

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        n = 2 + pick(us[0], 4)
        return " ".join(
            f"'{WORDS[pick(us[i], len(WORDS))]}':{i}" for i in range(1, n + 1)
        )

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        np = _np()
        n = 2 + picks(us[0], 4)
        pieces = [
            np.array([f"'{w}':{i}" for w in WORDS], dtype=object)[
                picks(us[i], len(WORDS))
            ]
            for i in range(1, 6)
        ]
        text = pieces[0] + " " + pieces[1]
        for i in range(3, 6):
            text = np.where(n >= i, text + " " + pieces[i - 1], text)
        return text


def tsvector() -> Gen:
    return Tsvector()


class Uuid(Gen):
    """A version-4 UUID from three uniforms (53 bits each): the same seed
    gives the same UUIDs."""

    draws = 3

    @staticmethod
    def text(a: int, b: int, c: int) -> str:
        bits = a | b << 53 | (c >> 31) << 106
        bits = (bits & ~(0xF << 76)) | (4 << 76)
        bits = (bits & ~(0x3 << 62)) | (0x2 << 62)
        h = f"{bits:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        return self.text(*(int(u * 2**53) for u in us))

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        out = _np().empty(f.size, dtype=object)
        parts = [(u * 2.0**53).astype("int64").tolist() for u in us]
        out[:] = [self.text(*p) for p in zip(*parts, strict=True)]
        return out


def uuid() -> Gen:
    return Uuid()


# -- numbers, times, labels ----------------------------------------------------------
class Numeric(Gen):
    """A number in [low, high] with ``scale`` digits after the point (a
    ``numeric(p, s)``), or a float when ``scale`` is None.

    Whole units of the scale travel as integers: scale 0 is kind ``int``, a
    non-negative scale 2 is ``money`` (cents); any other scale is a column of
    Decimals, made by the same :meth:`value` as one value is.
    """

    def __init__(self, low: float, high: float, scale: int | None = 2) -> None:
        self.scale = scale
        if scale is None:
            self.low, self.span = float(low), float(high) - float(low)
            self.kind = "value"
            return
        unit = Decimal(10) ** scale
        self.low = int((Decimal(str(low)) * unit).to_integral_value(ROUND_CEILING))
        top = int((Decimal(str(high)) * unit).to_integral_value(ROUND_FLOOR))
        self.size = max(1, top - self.low + 1)
        if scale == 0:
            self.kind = "int"
        elif scale == 2 and self.low >= 0:
            self.kind = "money"
        else:
            self.kind = "value"

    def value(self, units: int) -> Any:
        if self.kind == "int":
            return units
        if self.kind == "money":
            return C.to_money(units)
        return Decimal(units).scaleb(-(self.scale or 0))

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        if self.scale is None:
            return self.low + us[0] * self.span
        return self.value(int(self.low) + pick(us[0], self.size))

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        if self.scale is None:
            return self.low + us[0] * self.span
        units = self.low + picks(us[0], self.size)
        if self.kind != "value":
            return units
        out = _np().empty(f.size, dtype=object)
        out[:] = [self.value(u) for u in units.tolist()]
        return out


def number(low: float, high: float, scale: int | None = 2) -> Gen:
    return Numeric(low, high, scale)


class InRanges(Gen):
    """A whole-second time inside one of ``ranges`` (a partitioned table's
    bounds, end excluded), the range picked uniformly."""

    kind = "timestamp"
    draws = 2

    def __init__(self, ranges: Sequence[tuple[datetime, datetime]]) -> None:
        self.ranges = tuple(ranges)
        self.starts = [C.to_seconds(a) for a, _ in self.ranges]
        self.sizes = [
            max(0, C.to_seconds(b) - 1 - C.to_seconds(a)) + 1 for a, b in self.ranges
        ]

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        i = pick(us[0], len(self.ranges))
        return C.to_moment(self.starts[i] + int(us[1] * self.sizes[i]))

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        np = _np()
        i = picks(us[0], len(self.ranges))
        starts = np.array(self.starts, dtype=np.int64)[i]
        sizes = np.array(self.sizes, dtype=np.float64)[i]
        return starts + (us[1] * sizes).astype(np.int64)


def moment(ranges: Sequence[tuple[datetime, datetime]] = ()) -> Gen:
    """A time in the two years before ``as_of``, or inside ``ranges``."""
    if ranges:
        return InRanges(ranges)
    return C.Moment(C.AsOf(-HISTORY), C.AsOf())


class DayOf(Gen):
    """The date of a time generator's value."""

    kind = "date"

    def __init__(self, inner: Gen) -> None:
        self.inner, self.draws = inner, inner.draws

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        return self.inner.one(g, us, r).date()

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        return self.inner.many(f, us) // 86_400


def day(ranges: Sequence[tuple[datetime, datetime]] = ()) -> Gen:
    return DayOf(moment(ranges))


def birth_date() -> Gen:
    """An adult's birth date: 18 to 90 years before ``as_of``."""
    return C.Day(-90 * 365, -18 * 365)


class Const(Gen):
    """The same value on every row (NULL for a column a CHECK wants NULL)."""

    draws = 0
    kind = "value"

    def __init__(self, value: Any) -> None:
        self.value = value

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        return self.value

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        return _np().full(f.size, self.value, dtype=object)


def null() -> Gen:
    return Const(None)


class ArrayOf(Gen):
    """A PostgreSQL array literal of ``low`` to ``high`` distinct values of
    ``element``, quoted."""

    kind = "text"

    def __init__(self, element: Gen, low: int = 0, high: int = 3) -> None:
        self.element, self.low, self.high = element, low, high
        self.draws = 1 + high * element.draws

    @staticmethod
    def literal(values: Sequence[Any]) -> str:
        distinct = dict.fromkeys(str(v) for v in values)
        quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
                  for v in distinct)  # fmt: skip
        return "{" + ",".join(quoted) + "}"

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        n, d = self.low + pick(us[0], self.high - self.low + 1), self.element.draws
        return self.literal(
            [self.element.one(g, us[1 + k * d : 1 + (k + 1) * d], r) for k in range(n)]
        )

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        counts = (self.low + picks(us[0], self.high - self.low + 1)).tolist()
        d, kind = self.element.draws, self.element.kind
        slots = [
            python_values(kind, self.element.many(f, us[1 + k * d : 1 + (k + 1) * d]))
            for k in range(self.high)
        ]
        out = _np().empty(f.size, dtype=object)
        out[:] = [
            self.literal(values[:n])
            for values, n in zip(zip(*slots, strict=True), counts, strict=True)
        ]
        return out


def array(element: Gen, low: int = 0, high: int = 3) -> Gen:
    return ArrayOf(element, low, high)


# -- rules between columns -----------------------------------------------------------
STEP = {"timestamp": 30 * 86_400, "date": 30, "int": 100, "money": 100}
"""How far past its start an end goes, per kind of the start column (in its
units: seconds, days, units)."""


def later(early: Any, u: float, strict: bool) -> Any:
    """A value up to 30 days (or 100 units) after ``early``; ``None`` for a
    type that has no "after"."""
    low = 1 if strict else 0
    if isinstance(early, datetime):
        return early + timedelta(seconds=low + pick(u, STEP["timestamp"] - low + 1))
    if isinstance(early, date):
        return early + timedelta(days=low + pick(u, STEP["date"] - low + 1))
    if isinstance(early, Decimal | int | float) and not isinstance(early, bool):
        return early + low + pick(u, STEP["int"] - low + 1)
    return None


class After(Gen):
    """At or after column ``early`` (``CHECK (enddate >= startdate)``), strictly
    when ``strict``; the column's own generator ``otherwise`` when ``early`` is
    NULL. ``early_kind`` is the kind of ``early``'s generator."""

    def __init__(self, early: str, early_kind: str, strict: bool, otherwise: Gen):
        self.early, self.early_kind, self.strict = early, early_kind, strict
        self.otherwise = otherwise
        self.draws = 1 + otherwise.draws
        typed = early_kind == otherwise.kind and early_kind in STEP
        self.kind = early_kind if typed else "value"

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        early = getattr(r, self.early)
        value = None if early is None else later(early, us[0], self.strict)
        return self.otherwise.one(g, us[1:], r) if value is None else value

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        np = _np()
        early = f.columns[self.early]
        if self.kind == "value":
            others = python_values(self.otherwise.kind, self.otherwise.many(f, us[1:]))
            out = np.empty(f.size, dtype=object)
            found = (
                None if e is None else later(e, u, self.strict)
                for e, u in zip(
                    python_values(self.early_kind, early), us[0].tolist(), strict=True
                )
            )
            out[:] = [o if v is None else v for v, o in zip(found, others, strict=True)]
            return out
        nulls = np.equal(early, None) if early.dtype == object else None
        if self.kind == "timestamp":
            null_time = early == C.NULL_TIME
            nulls = null_time if nulls is None else nulls | null_time
        base = early if nulls is None else np.where(nulls, 0, early).astype(np.int64)
        low = 1 if self.strict else 0
        step = low + picks(us[0], STEP[self.kind] - low + 1)
        out = base + (step * 100 if self.kind == "money" else step)
        if nulls is not None and nulls.any():
            out = np.where(nulls, self.otherwise.many(f, us[1:]), out)
        return out


def after(early: str, early_kind: str, strict: bool, otherwise: Gen) -> Gen:
    return After(early, early_kind, strict, otherwise)


class Computed(Gen):
    """A column computed from others (``CHECK (subtotal = quantity *
    unit_price)``): ``fn`` of the named columns, NULL when one of them is.
    ``inputs`` are (column, kind of its generator) pairs."""

    draws = 0
    kind = "value"

    def __init__(self, fn: Callable[..., Any], *inputs: tuple[str, str]) -> None:
        self.fn, self.inputs = fn, inputs

    def _value(self, values: Sequence[Any]) -> Any:
        return None if any(v is None for v in values) else self.fn(*values)

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        return self._value([getattr(r, c) for c, _ in self.inputs])

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        given = [python_values(k, f.columns[c]) for c, k in self.inputs]
        out = _np().empty(f.size, dtype=object)
        out[:] = [self._value(v) for v in zip(*given, strict=True)]
        return out


def computed(fn: Callable[..., Any], *inputs: tuple[str, str]) -> Gen:
    return Computed(fn, *inputs)


# -- foreign keys ---------------------------------------------------------------------
class ParentKey(Gen):
    """One parent key tuple of ``table`` (its ``columns``), uniformly; ``None``
    (every FK column NULL) at ``null_share``. ``optional`` parents may have no
    rows yet (a self-reference, an FK closing a cycle): then ``None``.

    An excluded helper column: column-wise it is an index into the stage's
    keys (-1 for NULL), which :class:`KeyPart` columns read.
    """

    seeding_only = True  # column-wise only from a seeding stage's keys

    kind = "int"

    def __init__(
        self,
        table: str,
        columns: tuple[str, ...],
        null_share: float = 0.0,
        *,
        optional: bool = False,
    ) -> None:
        self.table, self.columns = table, tuple(columns)
        self.share, self.optional = null_share, optional
        self.draws = 2 if null_share else 1

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        if self.share and us[0] < self.share:
            return None
        if self.optional:
            keys = runtime.optional_keys(g, self.table, self.columns)
            if not keys:
                return None
        else:
            keys = runtime.parent_keys(g, self.table, self.columns)
            _require(keys, self.table)
        return keys[pick(us[-1], len(keys))]

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        np = _np()
        keys = runtime.stage_keys(self.table, self.columns, self.optional)
        if not keys:
            if self.optional:
                return np.full(f.size, -1, dtype=np.int64)
            _require(keys, self.table)
        index = picks(us[-1], len(keys))
        if self.share:
            index = np.where(us[0] < self.share, -1, index)
        return index


def _require(keys: Sequence[Any], table: str) -> None:
    if not keys:
        raise OltpseedError(
            f"{table} is empty: seed it first (its profile count is 0?)"
        )


def parent(table: str, columns: tuple[str, ...], null_share: float = 0.0) -> Gen:
    return ParentKey(table, columns, null_share)


def optional_parent(
    table: str, columns: tuple[str, ...], null_share: float = 0.0
) -> Gen:
    return ParentKey(table, columns, null_share, optional=True)


class Combination(Gen):
    """Distinct parent keys for a UNIQUE made only of FK columns (film_actor):
    row n takes combination n in mixed radix (see
    :func:`~pytest_oltpseed.introspect.runtime.combination`). Column-wise, a
    two-dimensional index: a row per row, a column per parent."""

    seeding_only = True  # column-wise only from a seeding stage's keys

    draws = 0
    kind = "int"

    def __init__(
        self,
        domain: str,
        key: str,
        parents: Sequence[tuple[str, tuple[str, ...]]],
        child: tuple[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.domain, self.key, self.child = domain, key, child
        self.parents = tuple((t, tuple(c)) for t, c in parents)

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        return runtime.combination(g, self.domain, self.key, self.parents, self.child)

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        np = _np()
        f.used[(self.domain, self.key)] = f.start + f.size
        n = np.arange(f.start, f.start + f.size, dtype=np.int64)
        out = np.empty((f.size, len(self.parents)), dtype=np.int64)
        for position, (table, columns) in enumerate(self.parents):
            keys = runtime.stage_keys(table, columns)
            _require(keys, table)
            out[:, position] = n % len(keys)
            n = n // len(keys)
        if n.any():
            raise runtime.too_many(self.key, self.parents)
        return out


def combination(
    domain: str,
    key: str,
    parents: Sequence[tuple[str, tuple[str, ...]]],
    child: tuple[str, tuple[str, ...]] | None = None,
) -> Gen:
    return Combination(domain, key, parents, child)


class KeyPart(Gen):
    """Column ``i`` of the parent key a helper column picked (``position``: which
    parent of a combination). ``kind`` is ``"int"`` for an integer column,
    else ``"value"``."""

    seeding_only = True  # column-wise only from a seeding stage's keys

    draws = 0

    def __init__(
        self,
        helper: str,
        table: str,
        columns: tuple[str, ...],
        i: int,
        *,
        position: int | None = None,
        kind: str = "value",
    ) -> None:
        self.helper, self.table, self.columns = helper, table, tuple(columns)
        self.i, self.position, self.kind = i, position, kind
        self._cache: tuple[Any, Any, Any] | None = None

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        key = getattr(r, self.helper)
        if key is not None and self.position is not None:
            key = key[self.position]
        return runtime.at(key, self.i)

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        np = _np()
        index = f.columns[self.helper]
        if self.position is not None:
            index = index[:, self.position]
        keys = runtime.stage_keys(self.table, self.columns, True)
        if self._cache is None or self._cache[0] is not keys:
            values = np.empty(len(keys) + 1, dtype=object)  # the last: NULL
            values[:-1] = [k[self.i] for k in keys]
            values[-1] = None
            typed = values[:-1].astype(np.int64) if self.kind == "int" else None
            self._cache = (keys, values, typed)
        _, values, typed = self._cache
        if typed is not None and (index >= 0).all():
            return typed[index]
        return values[index]


key = KeyPart
"""The vocabulary's name for :class:`KeyPart`, as generated domains write it
(``V.key(helper, table, columns, i)``)."""


# -- unique by construction ------------------------------------------------------------
def unique_text_of(n: int, head: Any, length: int | None, key: str) -> str:
    """Index ``n`` as a readable value: ``head`` and ``-<hex n>`` (the suffix
    before the ``@`` of an e-mail), cut to ``length``; packed in base 36 once
    the suffix alone no longer fits."""
    suffix = f"-{n:x}"
    if length is not None and len(suffix) > length:
        return _packed(n, length, key)
    text = str(head)
    if length is not None:
        text = text[: max(0, length - len(suffix))]
    if "@" in text:  # an e-mail stays one: the suffix goes before the domain
        user, _, host = text.partition("@")
        return fit(f"{user}{suffix}@{host}", length)
    return f"{text}{suffix}"


_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _packed(n: int, length: int, key: str) -> str:
    """``n`` in base 36, ``length`` characters, for a short key (``char(3)``)
    once ``-<hex>`` no longer fits: it has no ``-``, so it never equals a
    value of the readable form."""
    if n >= 36**length:
        raise OltpseedError(
            f"{key}: more than {36**length:,} unique values do not fit in "
            f"{length} characters (lower the profile's count)"
        )
    digits = ""
    for _ in range(length):
        n, digit = divmod(n, 36)
        digits = _DIGITS[digit] + digits
    return digits


class _Unique(Gen):
    """A value made from the row's index in ``key``'s sequence (``ctx.next_index``
    per object, the chunk's row numbers column-wise): unique, never retried."""

    seeding_only = True  # column-wise only from a seeding stage's keys

    draws = 0

    def __init__(self, domain: str, key: str) -> None:
        self.domain, self.key = domain, key

    def index(self, g: Any) -> int:
        return g.next_index(self.domain, self.key)  # type: ignore[no-any-return]

    def indices(self, f: Frame) -> Any:
        f.used[(self.domain, self.key)] = f.start + f.size
        return _np().arange(f.start, f.start + f.size, dtype=_np().int64)


class UniqueInt(_Unique):
    kind = "int"

    def __init__(self, domain: str, key: str, low: int = 1) -> None:
        super().__init__(domain, key)
        self.low = low

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        return self.low + self.index(g)

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        return self.low + self.indices(f)


class UniqueMoment(_Unique):
    """Distinct times one second apart, from the first range's start (or two
    years before ``as_of``)."""

    kind = "timestamp"

    def __init__(
        self, domain: str, key: str, ranges: Sequence[tuple[datetime, datetime]] = ()
    ) -> None:
        super().__init__(domain, key)
        self.start = C.to_seconds(ranges[0][0]) if ranges else None

    def _start(self, as_of: int) -> int:
        return (
            as_of - HISTORY // timedelta(seconds=1)
            if self.start is None
            else self.start
        )

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        return C.to_moment(self._start(C.to_seconds(g.as_of)) + self.index(g))

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        return self._start(f.as_of) + self.indices(f)


class UniqueUuid(_Unique):
    @staticmethod
    def text(n: int) -> str:
        h = f"{n:032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        return self.text(self.index(g))

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        out = _np().empty(f.size, dtype=object)
        out[:] = [self.text(n) for n in self.indices(f).tolist()]
        return out


class UniqueText(_Unique):
    """``head``'s value made unique by the index (:func:`unique_text_of`)."""

    kind = "text"

    def __init__(self, domain: str, key: str, length: int | None, head: Gen) -> None:
        super().__init__(domain, key)
        self.length, self.head = length, head
        self.draws = head.draws

    def one(self, g: Any, us: Sequence[float], r: Any) -> Any:
        n = self.index(g)
        return unique_text_of(n, self.head.one(g, us, r), self.length, self.key)

    def many(self, f: Frame, us: Sequence[Any]) -> Any:
        heads = python_values(self.head.kind, self.head.many(f, us))
        out = _np().empty(f.size, dtype=object)
        out[:] = [
            unique_text_of(n, h, self.length, self.key)
            for n, h in zip(self.indices(f).tolist(), heads, strict=True)
        ]
        return out


def unique_int(domain: str, key: str, low: int = 1) -> Gen:
    return UniqueInt(domain, key, low)


def unique_moment(
    domain: str, key: str, ranges: Sequence[tuple[datetime, datetime]] = ()
) -> Gen:
    return UniqueMoment(domain, key, ranges)


def unique_uuid(domain: str, key: str) -> Gen:
    return UniqueUuid(domain, key)


def unique_text(domain: str, key: str, length: int | None, head: Gen) -> Gen:
    return UniqueText(domain, key, length, head)
