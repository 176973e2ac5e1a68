"""Generator choice: which generator of the column vocabulary writes each column.

The choice is made from the column's type, its constraints and its name, in
this order:

1. a CHECK that lists the allowed values (``col IN (...)``) or an enum: one
   of those values; a CHECK range (``col >= 1 AND col <= 5``, a domain's
   ``VALUE`` bounds): a number inside it;
2. the name table :data:`NAME_RULES` (first match wins; a pattern is searched
   in ``table.column``), for columns whose type family fits the rule:
   ``email`` -> an e-mail, ``price`` -> a price...;
3. the type: integers, numerics (within precision and scale), text within its
   length, dates and times, booleans, uuid, json/jsonb, tsvector, inet,
   bytea, arrays of any of those.

``introspect --rule PATTERN=GENERATOR`` puts rules of your own before the
table (``--rule 'sku$=code'``); :data:`GENERATORS` lists the names a rule
may give. The writer makes UNIQUE and PRIMARY KEY columns unique by
construction on top of this choice, and writes FK columns from parent keys.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pytest_oltpseed.errors import UsageError
from pytest_oltpseed.introspect.catalog import Column

TEXT, INTEGER, DECIMAL, MOMENT, DAY = "text", "integer", "decimal", "moment", "day"

NAME_RULES: list[tuple[str, str, str]] = [
    # (pattern searched in table.column, type family, generator)
    (r"e_?mail", TEXT, "email"),
    (r"phone|fone|mobile|celular", TEXT, "phone"),
    (r"\.first_?name$|\.given_?name$", TEXT, "first_name"),
    (r"\.last_?name$|\.surname$|\.family_?name$", TEXT, "last_name"),
    (
        r"(customer|client|staff|actor|user|person|employee|author|contact|member|"
        r"patient|student|driver|owner|people)s?\.(full_?)?(name|nome)$",
        TEXT,
        "full_name",
    ),
    (r"\.(customer|contact|person|full)_?name$", TEXT, "full_name"),
    (r"city|cidade", TEXT, "city"),
    (r"\.state$|\.uf$|province", TEXT, "state"),
    (r"country|pais", TEXT, "country"),
    (r"postal|zip|cep", TEXT, "postal_code"),
    (r"district|bairro|neighbou?rhood", TEXT, "district"),
    (r"address|street|endereco", TEXT, "street"),
    (r"url|website|link|homepage", TEXT, "url"),
    (r"price|amount|cost|total|balance|fee|rate$|valor|preco", DECIMAL, "price"),
    (r"quantity|qty|quantidade|count$|stock", INTEGER, "quantity"),
    (r"year|ano", INTEGER, "year"),
    (r"birth|nascimento|dob$", DAY, "birth_date"),
    (r"\.(created|updated|modified|last_update|inserted)", MOMENT, "moment"),
]

GENERATORS = {
    "email": "V.email({length})",
    "phone": "V.phone({length})",
    "first_name": "V.first_name({length})",
    "last_name": "V.last_name({length})",
    "full_name": "V.full_name({length})",
    "city": "V.city({length})",
    "state": "V.state({length})",
    "country": "V.country({length})",
    "postal_code": "V.postal_code({length})",
    "district": "V.district({length})",
    "street": "V.street({length})",
    "url": "V.url({length})",
    "code": "V.code({length})",
    "words": "V.words(1, 4, {length})",
    "text": "V.text({length})",
    "price": "V.number({low}, {high}, {scale})",
    "quantity": "C.Number({low}, {high})",
    "year": "C.Number({low}, {high})",
    "birth_date": "V.birth_date()",
    "moment": "V.moment({ranges})",
}
"""Each generator as the declaration the writer emits (``C``: the column
vocabulary, :mod:`pytest_oltpseed.data.columns`; ``V``: its generators for
generated domains, :mod:`pytest_oltpseed.introspect.vocabulary`)."""
DEFAULT_BOUNDS = {"price": (1, 500), "quantity": (1, 20), "year": (1950, 2025)}


@dataclass
class Choice:
    """The generator of a column (a vocabulary expression), and what was
    noticed choosing it."""

    expression: str
    family: str
    note: str = ""


_INTEGERS = {"smallint": 32767, "integer": 2147483647, "bigint": 2**63 - 1}


def family(column: Column) -> str | None:
    base = column.base
    if column.labels:
        return "label"
    if base in _INTEGERS:
        return INTEGER
    if base.startswith(("numeric", "real", "double precision", "money")):
        return DECIMAL
    if base.startswith(("character", "text", "citext", "name")):
        return TEXT
    if base.startswith("timestamp"):
        return MOMENT
    if base == "date":
        return DAY
    simple = {"boolean": "boolean", "uuid": "uuid", "json": "document",
              "jsonb": "document", "tsvector": "tsvector", "inet": "inet",
              "cidr": "inet", "bytea": "bytes", "interval": "interval"}  # fmt: skip
    if base in simple:
        return simple[base]
    if base.startswith("time"):
        return "clock"
    return None


def parse_rules(given: Sequence[str]) -> list[tuple[str, str, str]]:
    """``--rule PATTERN=GENERATOR`` values, checked (one line, exit 2 if bad)."""
    rules = []
    for text in given:
        pattern, sep, generator = text.rpartition("=")
        if not sep or not pattern or generator not in GENERATORS:
            raise UsageError(
                f"--rule {text!r}: expected PATTERN=GENERATOR, GENERATOR one of "
                + ", ".join(GENERATORS)
            )
        try:
            re.compile(pattern)
        except re.error as exc:
            raise UsageError(f"--rule {text!r}: bad pattern: {exc}") from None
        rules.append((pattern, "any", generator))
    return rules


def choose(
    column: Column,
    *,
    table: str = "",
    labels: Sequence[str] = (),
    bounds: tuple[float | None, float | None] = (None, None),
    ranges: str = "",
    rules: Sequence[tuple[str, str, str]] = (),
) -> Choice | None:
    """The generator of ``column``; ``None`` when no generator fits its type.

    ``labels`` and ``bounds`` come from CHECK constraints (the table's and
    its domain's); ``ranges`` names the partition ranges constant.
    """
    kind = family(column)
    allowed = tuple(labels) or column.labels
    if allowed:
        return Choice(f"C.Choice({tuple(allowed)!r})", "label", "from CHECK/enum")
    if column.kind == "array":
        element = _scalar(table, column, kind, bounds, ranges, rules, element=True)
        if element is None:
            return None
        return Choice(f"V.array({element.expression})", "array")
    return _scalar(table, column, kind, bounds, ranges, rules)


def _scalar(
    table: str,
    column: Column,
    kind: str | None,
    bounds: tuple[float | None, float | None],
    ranges: str,
    rules: Sequence[tuple[str, str, str]],
    element: bool = False,
) -> Choice | None:
    if kind is None:
        return None
    length = None if element else column.length
    for pattern, fam, generator in [*rules, *NAME_RULES]:
        where = f"{table}.{column.name}"
        if re.search(pattern, where, re.IGNORECASE) and fam in ("any", kind):
            low, high = _bounds(column, kind, bounds, DEFAULT_BOUNDS.get(generator))
            scale = _scale(column)
            text = GENERATORS[generator].format(
                length=length, low=low, high=high, scale=scale,
                ranges=ranges,
            )  # fmt: skip
            return Choice(text, kind, f"name rule {generator}")
    if kind == INTEGER:
        low, high = _bounds(column, kind, bounds, (0, 1000))
        return Choice(f"C.Number({low}, {high})", kind)
    if kind == DECIMAL:
        low, high = _bounds(column, kind, bounds, (0, 1000))
        return Choice(f"V.number({low}, {high}, {_scale(column)})", kind)
    if kind == TEXT:
        if length is not None and length <= 3:
            return Choice(f"V.code({length})", kind)
        return Choice(f"V.words(1, 4, {length})", kind)
    if kind == MOMENT:
        return Choice(f"V.moment({ranges})", kind)
    if kind == DAY:
        return Choice(f"V.day({ranges})", kind)
    calls = {"boolean": "C.Flag(0.5)", "uuid": "V.uuid()",
             "document": "V.document()", "tsvector": "V.tsvector()",
             "inet": "V.inet()", "bytes": "V.bytes_()",
             "interval": "V.interval()", "clock": "V.clock()"}  # fmt: skip
    return Choice(calls[kind], kind)


def _scale(column: Column) -> int | None:
    """Digits after the point: the numeric's scale (2 when unconstrained);
    ``None`` for floating point."""
    if column.base.startswith(("real", "double")):
        return None
    return 2 if column.scale is None else column.scale


def _bounds(
    column: Column,
    kind: str,
    checked: tuple[float | None, float | None],
    default: tuple[float, float] | None,
) -> tuple[float, float]:
    """Default bounds, narrowed by CHECK bounds and by the type's own limits."""
    low, high = default or (0, 1000)
    if kind == DECIMAL and column.length is not None and column.scale is not None:
        limit = 10 ** (column.length - column.scale) - 10 ** (-column.scale)
        high = min(high, limit)
    if kind == INTEGER:
        high = min(high, _INTEGERS.get(column.base, high))
    c_low, c_high = checked
    if c_low is not None:
        low = max(low, c_low)
        if c_low > high:
            high = c_low + (high - low if high > low else 1000)
    if c_high is not None:
        high = min(high, c_high)
        if low > high:
            low = high if c_low is None else c_low
    if kind == INTEGER:
        return int(low), int(high)
    return low, high


# -- CHECK constraints ---------------------------------------------------------
_IN_LIST = re.compile(
    r"^\(*(?:upper\(\(?)?\(?(?P<col>\"?[A-Za-z_][\w$]*\"?|VALUE)\)?(?:::[\w\s]+)?"
    r"\)?\s*=\s*ANY\s*\(+"
    r"\s*ARRAY\[(?P<items>.*)\](?:::[\w\s\[\]]+)?\)+$",
    re.DOTALL,
)
_ITEM = re.compile(r"'((?:[^']|'')*)'(?:::[\w\s]+)?|(-?\d+(?:\.\d+)?)")
_COMPARE = re.compile(
    r"^\(*(?P<col>\"?[A-Za-z_][\w$]*\"?|VALUE)\)?(?:::[\w\s]+)?\s*"
    r"(?P<op>>=|<=|>|<)\s*\(?'?(?P<num>-?\d+(?:\.\d+)?)'?\)?(?:::[\w\s]+)?\)*$"
)


@dataclass
class Understood:
    column: str
    labels: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None


_IS_NULL = re.compile(r"^\(*\"?(?P<col>[A-Za-z_][\w$]*)\"?\)?\s+IS\s+NULL\)*$")


def understand(expression: str) -> Understood | None:
    """An IN-list or a conjunction of bounds on one column, else ``None``.

    ``upper(col) = ANY (...)`` lists upper-case values (written as they are),
    and ``... OR col IS NULL`` is understood as its other part (a value the
    generator writes satisfies it; NULL does too).
    """
    text = _strip(expression)
    parts = _split(text, " OR ")
    if len(parts) == 2:
        nulls = [_IS_NULL.match(_strip(p)) for p in parts]
        for i, found_null in enumerate(nulls):
            if found_null:
                rest = understand(parts[1 - i])
                column = found_null.group("col")
                return rest if rest and rest.column == column else None
        return None
    found = _IN_LIST.match(text)
    if found:
        items = tuple(
            a.replace("''", "'") if a or not b else b
            for a, b in _ITEM.findall(found.group("items"))
        )
        return Understood(found.group("col").strip('"'), labels=items)
    parts = _conjuncts(text)
    result: Understood | None = None
    for part in parts:
        compared = _COMPARE.match(_strip(part))
        if compared is None:
            return None
        name = compared.group("col").strip('"')
        if result is None:
            result = Understood(name)
        elif result.column != name:
            return None
        value = float(compared.group("num"))
        op = compared.group("op")
        if op in (">=", ">"):
            value += (
                1 if op == ">" and value.is_integer() else (0.01 if op == ">" else 0)
            )
            result.low = value if result.low is None else max(result.low, value)
        else:
            value -= (
                1 if op == "<" and value.is_integer() else (0.01 if op == "<" else 0)
            )
            result.high = value if result.high is None else min(result.high, value)
    return result


def _strip(text: str) -> str:
    text = text.strip()
    while text.startswith("(") and _balanced(text[1:-1]) and text.endswith(")"):
        text = text[1:-1].strip()
    return text


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def _conjuncts(text: str) -> list[str]:
    return _split(text, " AND ")


def _split(text: str, word: str) -> list[str]:
    """``text`` cut at ``word`` (`` AND ``, `` OR ``) outside parentheses."""
    parts, depth, start = [], 0, 0
    upper = text.upper()
    i = 0
    while i < len(text):
        char = text[i]
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and upper.startswith(word, i):
            parts.append(text[start:i])
            start = i + len(word)
            i += len(word)
            continue
        i += 1
    parts.append(text[start:])
    return parts


def referenced(expression: str, columns: Sequence[str]) -> list[str]:
    """The table's columns an expression names (outside string literals)."""
    code = re.sub(r"'(?:[^']|'')*'", "''", expression)
    names = set(re.findall(r'"((?:[^"]|"")+)"|\b([A-Za-z_]\w*)\b', code))
    flat = {a or b for a, b in names}
    return [c for c in columns if c in flat]


_ORDERED = re.compile(
    r"^\(*\"?(?P<late>[A-Za-z_]\w*)\"?\s*(?P<op>>=|>)\s*\"?(?P<early>[A-Za-z_]\w*)"
    r"\"?\)*$"
)


def ordered(expression: str, columns: Sequence[str]) -> tuple[str, str, bool] | None:
    """``late >= early`` (or ``>``), optionally ``OR late IS NULL`` / ``OR
    early IS NULL``: (late, early, strict), so the writer derives ``late``
    from ``early`` (an end date after its start); else ``None``."""
    parts = [_strip(p) for p in _split(_strip(expression), " OR ")]
    compared = [p for p in parts if _ORDERED.match(p)]
    if len(compared) != 1:
        return None
    found = _ORDERED.match(compared[0])
    assert found is not None
    late, early = found.group("late"), found.group("early")
    for extra in (p for p in parts if p is not compared[0]):
        null = _IS_NULL.match(extra)
        if null is None or null.group("col") not in (late, early):
            return None
    if late not in columns or early not in columns or late == early:
        return None
    return late, early, found.group("op") == ">"


def null_escape(expression: str) -> str | None:
    """The column of a top-level ``col IS NULL`` alternative (``... OR col IS
    NULL``): writing that column NULL makes the CHECK hold, whatever else."""
    for part in _split(_strip(expression), " OR "):
        found = _IS_NULL.match(_strip(part))
        if found:
            return found.group("col")
    return None


_EQUALITY = re.compile(
    r"^\(*\s*\"?(?P<col>[A-Za-z_]\w*)\"?\s*=\s*(?P<expr>.+)$", re.DOTALL
)
_CAST = re.compile(r"::[a-z ]+(\(\d+(,\s*\d+)?\))?")


def derived(expression: str, columns: Sequence[str]) -> tuple[str, str] | None:
    """``col = <arithmetic of other columns>`` as (col, Python expression over
    ``r``), e.g. ``subtotal = quantity * unit_price``; else ``None``."""
    found = _EQUALITY.match(_strip(expression))
    if found is None or found.group("col") not in columns:
        return None
    code = _CAST.sub("", _strip(found.group("expr")))
    if not re.fullmatch(r"[\w\s().+*/-]+", code):
        return None
    names = set(re.findall(r"[A-Za-z_]\w*", code))
    if not names or not names <= set(columns) - {found.group("col")}:
        return None
    python = re.sub(r"[A-Za-z_]\w*", lambda m: f"r.{m.group(0)}", code)
    return found.group("col"), python
