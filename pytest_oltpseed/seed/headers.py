"""Header stages column-wise: a chunk of headers and their items at once.

A sale and its items, an entry and its items: the header's columns come first
(its parents, its status), then each :class:`~pytest_oltpseed.data.factory.Items`
declaration's children for the whole chunk (their number per header, their
columns), then the header columns that read the items (a total). Every field
is the factories' one declaration (:mod:`pytest_oltpseed.data.columns`);
values come from the counter-based streams keyed by (seed, table, chunk,
column), so NumPy (arrays) and pure Python (one row at a time) give the same
rows.

Rules across rows are a stage's :class:`ItemRule` (the retail stock): it picks
the header's and the items' parents from what is in stock and grants each
item's quantity from what remains. Its state runs from chunk to chunk, so
chunks are generated in order in this process (never in workers); the
grants of a chunk are one vectorised pass. Header ids (the items' FK) and
``fresh`` identifiers (invoice numbers) are reserved for the whole stage up
front, so a chunk never waits on the connection its COPY is using.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from pytest_oltpseed.data import columns, indices
from pytest_oltpseed.data.factory import (
    Context,
    Items,
    Parent,
    Ref,
    Row,
    SQLFactory,
    _Attrs,
    factory_for,
)
from pytest_oltpseed.data.factory import pools as value_pools
from pytest_oltpseed.db import table_ident
from pytest_oltpseed.seed import chunks
from pytest_oltpseed.seed.ids import IdBlock, next_values

if TYPE_CHECKING:
    from pytest_oltpseed.seed.seeder import Seeder, Stage, StageResult


class ItemRule(Protocol):
    """A rule across a header stage's rows (see ``domains/retail/seeding.py``).

    Lists or arrays: ``fast`` says which (NumPy arrays, or Python lists).
    """

    items: str  # the Items declaration it governs
    header_fk: str | None  # the header's FK it picks (None: uniform)
    item_fk: str  # the items' FK it picks
    quantity: str  # the items' column it grants
    status: str  # the header's status column ...
    cancelled: str  # ... and its value for a header that moves nothing

    def load(self, seeder: Seeder, stage: Stage, fast: bool) -> None:
        """Read what the rule needs from the database (stock at stage start)."""

    def pick_headers(self, us: Any, fast: bool) -> Any:
        """Pool indices of the headers' ``header_fk`` from uniforms ``us``."""

    def pick_items(self, us: Any, groups: Any, fast: bool) -> tuple[Any, Any]:
        """(pool indices of ``item_fk``, rule keys) per item; ``groups`` are
        the items' headers' ``header_fk`` indices (None without one)."""

    def allocate(self, keys: Any, wanted: Any, fast: bool) -> Any:
        """Granted quantities, in order, for items that move stock."""


def columnar(table: str) -> bool:
    """Whether ``table`` is a header stage this module generates: it has
    items, no natural key, and every column of it and of its items is a
    column generator or a parent."""
    factory = factory_for(table)

    def plain(each: type[SQLFactory], items_allowed: bool) -> bool:
        for _, kind, declaration in each._plan():
            if kind is Parent:
                continue
            if kind is Items:
                if not items_allowed or not plain(
                    factory_for(declaration.table), False
                ):
                    return False
            elif not isinstance(declaration.fn, columns.Gen):
                return False
        return True

    return bool(factory._items()) and not factory._natural_key and plain(factory, True)


def expected_rows(factory: type[SQLFactory], count: int) -> int:
    """Rows a stage of ``count`` headers writes, items included (on average):
    what decides the fast path and deferred constraints."""
    per_header = sum((items.low + items.high) / 2 for _, items in factory._items())
    return int(count * (1 + per_header))


@dataclass
class HeaderPlan:
    factory: type[SQLFactory]
    pools: chunks.PoolSource
    ids: Any  # the stage's header ids, in row order
    fresh: dict[tuple[str, str], Any] = field(default_factory=dict)
    rule: ItemRule | None = None


Text = tuple[str, list[str], bytes, int]  # table, columns, COPY text, rows


def run(seeder: Seeder, stage: Stage, result: StageResult, rule: Any) -> None:
    """Generate and land a header stage chunk by chunk, COPY overlapping the
    next chunk's generation."""
    from pytest_oltpseed.seed import seeder as seed_module

    conn, count = seeder.conn, stage.count
    expected = expected_rows(stage.factory, count)
    fast = columns.fast_enabled(expected)
    # A large stage takes its header ids as one block (see :mod:`.ids`).
    block = (
        IdBlock.take(conn, stage.table, count, stage.factory.column_names())
        if expected >= seed_module.DEFER_AT
        else None
    )
    if block is not None and block.column == "id":
        ids = list(range(block.first, block.first + count))
    else:
        block = None
        ids = next_values(conn, stage.table, count)
    fresh = {
        (d.fn.domain, d.fn.key): indices.reserve(conn, d.fn.domain, d.fn.key, count)
        for _, kind, d in stage.factory._plan()
        if kind is not Parent
        and kind is not Items
        and isinstance(d.fn, columns.Indexed)
        and d.fn.fresh
    }
    if fast:
        np = columns.np
        ids = np.array(ids, dtype=np.int64)
        fresh = {k: np.array(v, dtype=np.int64) for k, v in fresh.items()}
    if rule is not None:
        rule.load(seeder, stage, fast)
    plan = HeaderPlan(stage.factory, seeder.pool, ids, fresh, rule)
    parts = chunks.plan_chunks(stage.table, count, seeder.seed, seeder.as_of)
    from pytest_oltpseed.seed.writer import _Writer, pipeline

    writer = _Writer(conn, stage)
    pipeline(
        seeder,
        stage,
        (
            (part.size, partial(_land, writer, render(plan, part, fast), result))
            for part in parts
        ),
    )
    if block is not None:
        block.finish(count)


def _land(writer: Any, texts: list[Text], result: StageResult) -> None:
    (_, names, data, rows), *items = texts
    writer._land(rows, result, lambda copy: copy.write(data), names)
    for table, names, data, rows in items:
        writer._copy(table_ident(table), names, lambda copy, d=data: copy.write(d))
        result.items[table] += rows


def render(plan: HeaderPlan, chunk: chunks.Chunk, fast: bool) -> list[Text]:
    """The chunk's headers, then each Items table, as COPY texts."""
    if fast:
        return _Fast(plan, chunk).render()
    return _Slow(plan, chunk).render()


def _key(chunk: chunks.Chunk, table: str, name: str, j: int) -> int:
    return columns.stream_key(chunk.seed, table, chunk.number, name, j)


# -- column-wise (NumPy) ---------------------------------------------------------
class _Fast:
    def __init__(self, plan: HeaderPlan, chunk: chunks.Chunk) -> None:
        if not columns.load_numpy():
            raise RuntimeError("the column-wise path needs NumPy (extra 'fast')")
        self.plan, self.chunk, self.np = plan, chunk, columns.np
        self.rule = plan.rule
        end = chunk.start + chunk.size
        self.ids = plan.ids[chunk.start : end]
        self.frame = columns.Frame(
            chunk.as_of, chunk.size, value_pools(chunk.seed), chunk.start
        )
        self.frame.fresh = {k: v[chunk.start : end] for k, v in plan.fresh.items()}

    def _us(self, table: str, name: str, draws: int, size: int) -> list[Any]:
        return [
            columns.uniforms(_key(self.chunk, table, name, j), 0, size)
            for j in range(draws)
        ]

    def render(self) -> list[Text]:
        factory, frame = self.plan.factory, self.frame
        excluded = set(factory._meta.exclude)  # type: ignore[attr-defined]
        shown: list[tuple[str, str]] = []
        item_texts: list[Text] = []
        for name, kind, declaration in factory._plan():
            if kind is Parent:
                pool = self.plan.pools(declaration.table, declaration.carry)
                (u,) = self._us(factory._table, name, 1, frame.size)
                if self.rule and self.rule.header_fk == name:
                    index = self.rule.pick_headers(u, True)
                else:
                    chunks._require(pool)
                    index = columns.picks(u, len(pool))
                frame.columns[name], frame.parents[name] = index, pool
                shown.append((name, "parent"))
            elif kind is Items:
                item_texts.append(self._items(name, declaration))
            else:
                gen = declaration.fn
                us = self._us(factory._table, name, gen.draws, frame.size)
                frame.columns[name] = gen.many(frame, us)
                if name not in excluded:
                    shown.append((name, gen.kind))
        texts = [columns.column_text("int", self.ids)]
        for name, shown_as in shown:
            values = frame.columns[name]
            if shown_as == "parent":
                values = frame.parents[name].id_array()[values]
                shown_as = "int"
            texts.append(columns.column_text(shown_as, values))
        names = ["id", *factory.column_names()]
        return [(factory._table, names, _join(texts), frame.size), *item_texts]

    def _items(self, name: str, items: Items) -> Text:
        np, head, chunk = self.np, self.frame, self.chunk
        child = factory_for(items.table)
        (u,) = self._us(self.plan.factory._table, name, 1, head.size)
        counts = items.low + columns.picks(u, items.high - items.low + 1)
        header = np.repeat(np.arange(head.size, dtype=np.int64), counts)
        size = len(header)
        f = columns.Frame(chunk.as_of, size, head.pools, 0)
        keep = np.ones(size, dtype=bool)
        rule = self.rule if self.rule and self.rule.items == name else None
        keys: Any = None
        for cname, kind, declaration in child._plan():
            if cname == items.fk:
                f.columns[cname] = header
                continue
            if kind is Parent:
                pool = self.plan.pools(declaration.table, declaration.carry)
                (u,) = self._us(child._table, cname, 1, size)
                if rule and rule.item_fk == cname:
                    groups = (
                        head.columns[rule.header_fk][header] if rule.header_fk else None
                    )
                    index, keys = rule.pick_items(u, groups, True)
                else:
                    chunks._require(pool)
                    index = columns.picks(u, len(pool))
                f.columns[cname], f.parents[cname] = index, pool
            else:
                gen = declaration.fn
                us = self._us(child._table, cname, gen.draws, size)
                f.columns[cname] = gen.many(f, us)
            if cname == child._distinct:
                values = f.columns[cname].astype(np.int64)
                pair = header * (int(values.max(initial=0)) + 1) + values
                keep[:] = False
                keep[np.unique(pair, return_index=True)[1]] = True
                if rule:
                    self._grant(rule, f, header, keep, keys)
        for cname in list(f.columns):
            f.columns[cname] = f.columns[cname][keep]
        header = header[keep]
        f.size = len(header)
        f.columns["header"] = header
        head.children[name] = f
        excluded = set(child._meta.exclude)  # type: ignore[attr-defined]
        texts = []
        for cname, kind, declaration in child._plan():
            if cname in excluded:
                continue
            if cname == items.fk:
                texts.append(columns.column_text("int", self.ids[header]))
            elif kind is Parent:
                ids = f.parents[cname].id_array()[f.columns[cname]]
                texts.append(columns.column_text("int", ids))
            else:
                texts.append(columns.column_text(declaration.fn.kind, f.columns[cname]))
        return (child._table, child.column_names(), _join(texts), f.size)

    def _grant(
        self, rule: ItemRule, f: columns.Frame, header: Any, keep: Any, keys: Any
    ) -> None:
        """Grant quantities in order; a header none of whose items got any is
        cancelled (its items keep their quantities: a cancelled header moves no
        stock); other items granted nothing are dropped."""
        np, head = self.np, self.frame
        status = head.columns[rule.status]
        live = keep & (status[header] != rule.cancelled)
        wanted = f.columns[rule.quantity]
        granted = rule.allocate(keys[live], wanted[live], True)
        got = np.zeros(head.size, dtype=bool)
        got[header[live][granted > 0]] = True
        moving = np.zeros(head.size, dtype=bool)
        moving[header[live]] = True
        cancel = moving & ~got
        status[cancel] = rule.cancelled
        quantity = wanted.copy()
        quantity[live] = granted
        back = live & cancel[header]
        quantity[back] = wanted[back]
        keep &= ~(live & ~cancel[header] & (quantity == 0))
        f.columns[rule.quantity] = quantity


def _join(texts: list[list[str]]) -> bytes:
    lines = list(map("\t".join, zip(*texts, strict=True)))
    lines.append("")
    return "\n".join(lines).encode()


# -- one row at a time (pure Python) ----------------------------------------------
class _ChunkContext(Context):
    """Hands out the reserved ``fresh`` indices of the chunk's rows in order."""

    def __init__(self, chunk: chunks.Chunk, fresh: dict[Any, Iterator[int]]) -> None:
        super().__init__(None, seed=chunk.seed, as_of=chunk.as_of)
        self._fresh = fresh

    def next_index(self, domain: str, key: str, *, fresh: bool = False) -> int:
        if fresh:
            return int(next(self._fresh[(domain, key)]))
        return super().next_index(domain, key)


class _Slow:
    def __init__(self, plan: HeaderPlan, chunk: chunks.Chunk) -> None:
        self.plan, self.chunk, self.rule = plan, chunk, plan.rule
        end = chunk.start + chunk.size
        fresh = {k: iter(v[chunk.start : end]) for k, v in plan.fresh.items()}
        self.ctx = _ChunkContext(chunk, fresh)
        self.rows = [Row(id=int(i)) for i in plan.ids[chunk.start : end]]
        self.index: dict[str, list[int]] = {}

    def _us(self, table: str, name: str, draws: int, size: int) -> list[list[float]]:
        uniform = columns.uniform
        keys = [_key(self.chunk, table, name, j) for j in range(draws)]
        return [[uniform(k, i) for i in range(size)] for k in keys]

    def _values(
        self, gen: columns.Gen, table: str, name: str, rows: Sequence[Row]
    ) -> None:
        keys = [_key(self.chunk, table, name, j) for j in range(gen.draws)]
        uniform, ctx = columns.uniform, self.ctx
        for i, row in enumerate(rows):
            row[name] = gen.one(ctx, [uniform(k, i) for k in keys], _Attrs(row))

    def _pick(self, pool: Any, us: list[float]) -> list[int]:
        chunks._require(pool)
        return [columns.pick(u, len(pool)) for u in us]

    def render(self) -> list[Text]:
        factory, rows = self.plan.factory, self.rows
        item_texts: list[Text] = []
        for name, kind, declaration in factory._plan():
            if kind is Parent:
                pool = self.plan.pools(declaration.table, declaration.carry)
                (us,) = self._us(factory._table, name, 1, len(rows))
                if self.rule and self.rule.header_fk == name:
                    index = list(self.rule.pick_headers(us, False))
                else:
                    index = self._pick(pool, us)
                self.index[name] = index
                for row, i in zip(rows, index, strict=True):
                    row[name] = pool.ref(i)
            elif kind is Items:
                item_texts.append(self._items(name, declaration))
            else:
                self._values(declaration.fn, factory._table, name, rows)
        names = ["id", *factory.column_names()]
        return [(factory._table, names, _lines(rows, names), len(rows)), *item_texts]

    def _items(self, name: str, items: Items) -> Text:
        rows, rule = self.rows, self.rule
        rule = rule if rule and rule.items == name else None
        child = factory_for(items.table)
        (us,) = self._us(self.plan.factory._table, name, 1, len(rows))
        span = items.high - items.low + 1
        header = [
            i
            for i, u in enumerate(us)
            for _ in range(items.low + columns.pick(u, span))
        ]
        made = [Row({items.fk: Ref("", rows[h])}) for h in header]
        keep = [True] * len(made)
        keys: list[int] = []
        index: dict[str, list[int]] = {}
        for cname, kind, declaration in child._plan():
            if cname == items.fk:
                continue
            if kind is Parent:
                pool = self.plan.pools(declaration.table, declaration.carry)
                (us,) = self._us(child._table, cname, 1, len(made))
                if rule and rule.item_fk == cname:
                    groups = (
                        [self.index[rule.header_fk][h] for h in header]
                        if rule.header_fk
                        else None
                    )
                    picked, keys = rule.pick_items(us, groups, False)
                    index[cname] = list(picked)
                else:
                    index[cname] = self._pick(pool, us)
                for item, i in zip(made, index[cname], strict=True):
                    item[cname] = pool.ref(i)
            else:
                self._values(declaration.fn, child._table, cname, made)
            if cname == child._distinct:
                values = index.get(cname) or [item[cname] for item in made]
                seen: set[tuple[int, Any]] = set()
                for s, pair in enumerate(zip(header, values, strict=True)):
                    keep[s] = pair not in seen
                    seen.add(pair)
                if rule:
                    self._grant(rule, made, header, keep, list(keys))
        kept: list[list[Row]] = [[] for _ in rows]
        for s, item in enumerate(made):
            if keep[s]:
                kept[header[s]].append(item)
        for row, mine in zip(rows, kept, strict=True):
            row[name] = mine
        every = [item for mine in kept for item in mine]
        names = child.column_names()
        return (child._table, names, _lines(every, names), len(every))

    def _grant(
        self,
        rule: ItemRule,
        made: list[Row],
        header: list[int],
        keep: list[bool],
        keys: list[int],
    ) -> None:
        rows = self.rows
        live = [
            s
            for s in range(len(made))
            if keep[s] and rows[header[s]][rule.status] != rule.cancelled
        ]
        granted = rule.allocate(
            [keys[s] for s in live], [made[s][rule.quantity] for s in live], False
        )
        got = {header[s] for s, g in zip(live, granted, strict=True) if g > 0}
        cancel = {header[s] for s in live} - got
        for h in cancel:
            rows[h][rule.status] = rule.cancelled
        for s, g in zip(live, granted, strict=True):
            if header[s] in cancel:
                continue
            if g == 0:
                keep[s] = False
            else:
                made[s][rule.quantity] = g


def _lines(rows: Sequence[Row], names: Sequence[str]) -> bytes:
    formats: dict[type, Callable[[Any], str]] = chunks._FORMATS
    lines = ["\t".join([formats[type(row[c])](row[c]) for c in names]) for row in rows]
    lines.append("")
    return "\n".join(lines).encode()
