"""The factory vocabulary: how a column, a parent, a header's items are declared.

Each column of each table is declared once, as a :class:`Col` (a function of
a :class:`~pytest_oltpseed.data.columns.Gen` and the row built so far), a
:class:`Parent` (an FK) or :class:`Items` (a header's child rows). Both
factory_boy's ``build()``/``create()`` and the bulk path evaluate them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import factory
import factory.random
from factory import enums
from psycopg import sql

from pytest_oltpseed.data.context import Context, current
from pytest_oltpseed.data.registry import factory_for
from pytest_oltpseed.data.rows import Ref, Row, ref_id
from pytest_oltpseed.errors import OltpseedError

_T = TypeVar("_T")

PREFER_TRIES = 8  # extra picks for a preferred parent (Parent(prefer=...))


class Col(factory.declarations.BaseDeclaration):
    """A column: ``fn(ctx, row)`` where ``row`` holds the columns declared above."""

    def __init__(self, fn: Callable[[Context, Any], Any]) -> None:
        super().__init__()
        self.fn = fn

    def evaluate(self, instance: Any, step: Any, extra: Any) -> Any:
        return self.fn(current(), instance)


class Parent(factory.declarations.BaseDeclaration):
    """An FK column. Evaluates to a :class:`Ref` to an existing or new parent.

    A parent is picked among existing rows when the context reuses parents or
    the declaration ``prefer_existing`` (few, shared rows such as convênios);
    otherwise, and when none qualifies, the parent's factory creates one
    (persisted first, so the child is FK-consistent). ``where(ctx, row)``
    may restrict the pick with SQL over alias ``t``. ``carry`` names the
    parent columns the child's rules read, which the bulk path fetches.
    """

    def __init__(
        self,
        table: str,
        *,
        carry: Sequence[str] = (),
        prefer_existing: bool = False,
        where: Callable[[Context, Any], tuple[sql.Composable, Sequence[Any]]]
        | None = None,
        prefer: Callable[[Context, Any, Mapping[str, Any]], bool] | None = None,
    ) -> None:
        super().__init__()
        self.table = table
        self.carry = tuple(carry)
        self.prefer_existing = prefer_existing
        self.where = where
        self.prefer = prefer

    def resolve(
        self,
        ctx: Context,
        row: Any,
        create: bool,
        fields: Mapping[str, Any] | None = None,
    ) -> Ref:
        """A Ref to the parent; ``fields`` (``paciente__nome="Ana"``) make a
        new parent with those values instead of picking an existing one."""
        parent = factory_for(self.table)
        if fields:
            overrides = parent.normalize(fields)
            made = parent.make_row(ctx, create=create, overrides=overrides)
            if create:
                parent.write(ctx, made)
            return Ref(self.table, made)
        if create and (self.prefer_existing or ctx.reuse_parents):
            condition, params = self.where(ctx, row) if self.where else (None, ())
            picked = ctx.pick(self.table, condition, params)
            # ``prefer(ctx, row, parent)``: a few more picks (in memory) for a
            # parent it likes better, e.g. a product the store has on its shelf.
            for _ in range(PREFER_TRIES if self.prefer and picked else 0):
                if self.prefer(ctx, row, picked):  # type: ignore[misc, arg-type]
                    break
                picked = ctx.pick(self.table, condition, params) or picked
            if picked is not None:
                return Ref(self.table, picked)
        made = parent.make_row(ctx, create=create)
        if create:
            parent.write(ctx, made)
        return Ref(self.table, made)

    def evaluate(self, instance: Any, step: Any, extra: Any) -> Any:
        create = step.builder.strategy == enums.CREATE_STRATEGY
        return self.resolve(current(), instance, create, dict(extra or {}))


class Items(factory.declarations.BaseDeclaration):
    """A header's child rows (a sale's items), generated with it, written after it.

    Children come from the child table's own factory declarations; their FK
    to the header is a :class:`Ref` to the header's values named in
    ``header`` (so an item can see its sale's store and time) and becomes the
    header's id once it is inserted. Children repeating the value of the
    child factory's ``_distinct`` column (a product already in the sale) are
    dropped, so UNIQUE (header, product) holds.

    ``count`` names a :class:`Param` of the header's factory: given, it asks
    for exactly that many children (a sale with 3 items), drawn until that
    many distinct ones are found.
    """

    def __init__(
        self,
        table: str,
        fk: str,
        low: int,
        high: int,
        header: Sequence[str] = (),
        *,
        count: str | None = None,
    ) -> None:
        super().__init__()
        self.table, self.fk, self.low, self.high = table, fk, low, high
        self.header = tuple(header)
        self.count = count

    def make(
        self,
        ctx: Context,
        head: Row,
        create: bool,
        parents: Mapping[str, Callable[[Any], Ref]] | None = None,
        count: int | None = None,
    ) -> list[Row]:
        child = factory_for(self.table)
        items: list[Row] = []
        seen: set[object] = set()
        if count is None:
            draws, wanted = ctx.randint(self.low, self.high), None
        else:
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise FieldError(f"{self.count} must be a whole number >= 0")
            draws, wanted = count * DISTINCT_TRIES, count
        for _ in range(draws):
            if wanted is not None and len(items) == wanted:
                break
            item = child.make_row(
                ctx, parents, create=create, overrides={self.fk: Ref("", head)}
            )
            if child._distinct:
                key = _identity(item[child._distinct])
                if key in seen:
                    continue
                seen.add(key)
            items.append(item)
        if wanted is not None and len(items) < wanted:
            raise OltpseedError(
                f"{self.count}={wanted}: found only {len(items)} distinct "
                f"{child._distinct or 'rows'} for one {self.fk.removesuffix('_id')}"
            )
        return items

    def evaluate(self, instance: Any, step: Any, extra: Any) -> Any:
        # factory_boy resolves lazily: snapshot the header fields children read
        head = Row({name: getattr(instance, name) for name in self.header})
        create = step.builder.strategy == enums.CREATE_STRATEGY
        count = getattr(instance, self.count, None) if self.count else None
        return self.make(current(), head, create, count=count)


class Trait(factory.declarations.Parameter):
    """A named state of a row, declared in a factory's ``class Params`` as in
    factory_boy: ``cancelada = Trait(status="cancelada")``, then
    ``Consulta.create(cancelada=True)``.

    Its ``overrides`` are keywords as a caller would give them (values,
    ``parent__field`` keys, a :class:`Col` evaluated per row, another trait's
    name). Unlike factory_boy's ``Trait``, which rewrites the factory's
    declarations into conditional ones, it is expanded into those keywords
    before either path runs (:meth:`SQLFactory.normalize`), so ``build``,
    ``create``, ``create_batch`` and the COPY path evaluate the same
    declarations, each field still defined once. Keywords given next to it win.
    """

    def __init__(self, **overrides: Any) -> None:
        super().__init__()
        self.overrides = overrides

    def as_declarations(self, field_name: str, declarations: Any) -> dict[str, Any]:
        return {}  # expanded into keywords instead (see the class doc)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.overrides.items())
        return f"Trait({shown})"


class Param(factory.declarations.Parameter):
    """A keyword that is no column but steers declarations, declared in
    ``class Params``: ``item_count = Param()`` read by
    ``Items(..., count="item_count")`` (a sale with exactly N items). Never
    written; ``default`` applies when it is not given."""

    def __init__(self, default: Any = None) -> None:
        super().__init__()
        self.default = default

    def as_declarations(self, field_name: str, declarations: Any) -> dict[str, Any]:
        return {}  # read by the declarations that name it, not a column


DISTINCT_TRIES = 20
"""Draws per wanted child before ``Items(count=...)`` gives up: with a
distinct column, repeats are dropped (a product already in the sale)."""


class FieldError(OltpseedError, TypeError):
    """A factory was called with a keyword it does not declare."""


def _parent_value(table: str, value: Any) -> Any:
    """An FK value as the factories keep it: a Ref for a row, the id otherwise.

    A factory's own row (a :class:`Row`) is kept whole; another mapping with
    an id is taken for that id and looked up when a rule needs the parent's
    values (it may hold only some columns); one without an id is a new row.
    """
    if isinstance(value, Ref) or value is None:
        return value
    if isinstance(value, Mapping):
        if "id" in value and not isinstance(value, Row):
            return _parent_value(table, value["id"])
        return Ref(table, value if isinstance(value, Row) else Row(value))
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(
            f"a {table} parent must be a row, a Ref or an id, not {value!r}"
        )
    return value


def _identity(value: Any) -> object:
    if isinstance(value, Ref):
        return value.row.get("id") or id(value.row)
    return ref_id(value)


def per_class(method: Callable[[Any], _T]) -> classmethod[Any, [], _T]:
    """A class method whose value is computed once per class, on first use.

    Kept in the class's own ``__dict__``: a subclass declares fields of its
    own, so it never reads its parent's value."""
    attr = f"_{method.__name__.lstrip('_')}_cache"

    @functools.wraps(method)
    def once(cls: Any) -> _T:
        cached = cls.__dict__.get(attr)
        if cached is None:
            cached = method(cls)
            setattr(cls, attr, cached)
        return cached

    return classmethod(once)
