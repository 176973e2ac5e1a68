"""How a factory's rows reach the database: ``create()`` (one ``write``, parents
first, a header's items after), ``create_batch`` (COPY) and the hooks that keep
cross-row rules. A part of :class:`~pytest_oltpseed.data.sqlfactory.SQLFactory`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pytest_oltpseed.data.context import Context, _current, current
from pytest_oltpseed.data.declarations import Items, per_class
from pytest_oltpseed.data.keywords import Keywords
from pytest_oltpseed.data.registry import factory_for
from pytest_oltpseed.data.rows import Ref, Row, ref_id
from pytest_oltpseed.errors import OltpseedError


class Persisting(Keywords):
    """SQLFactory's writes (a mixin; ``_table`` is the factory's)."""

    _table: ClassVar[str]

    @classmethod
    def create_batch(cls, size: int, **kwargs: Any) -> list[Row]:
        """``size`` rows inserted with COPY (see :mod:`pytest_oltpseed.seed.bulk`):
        the same rows ``create()`` would make, FK-consistent, at bulk speed."""
        ctx = current()
        if ctx.conn is None:
            raise OltpseedError(f"{cls.__name__}: writing needs a bound connection")
        from pytest_oltpseed.seed.bulk import create_batch

        return create_batch(cls, ctx, size, kwargs)  # type: ignore[arg-type]

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Row:
        return cls.write(current(), Row(kwargs))

    @classmethod
    def write(cls, ctx: Context, row: Row, *, standalone: bool = True) -> Row:
        """Insert ``row`` (made by this factory): unsaved parents first, items after.

        ``row`` is updated in place with what the database returned (id,
        defaults), so :class:`Ref` values pointing at it see the id.
        """
        if ctx.conn is None:
            raise OltpseedError(f"{cls.__name__}: writing needs a bound connection")
        token = _current.set(ctx)  # hooks may call other factories: same context
        try:
            return cls._write(ctx, row, standalone)
        finally:
            _current.reset(token)

    @classmethod
    def _write(cls, ctx: Context, row: Row, standalone: bool) -> Row:
        cls._prepare(ctx, row)
        if ctx.allocate_ids and cls._write_with_items(ctx, row):
            if standalone:
                cls._after_insert(ctx, row)
            return row
        row.update(ctx.insert(cls._table, cls.columns(row)))
        ctx.forget_ids(cls._table)
        for name, items in cls._items():
            child = factory_for(items.table)
            batch = []
            for given in row[name]:
                item = given if isinstance(given, Row) else Row(given)
                item[items.fk] = row["id"]
                child._prepare(ctx, item)
                batch.append(item)
            values = [child.columns(item) for item in batch]
            for item, written in zip(
                batch, ctx.insert_many(child._table, values), strict=True
            ):
                item.update(written)
            ctx.forget_ids(child._table)
            row[name] = batch
        if standalone:
            cls._after_insert(ctx, row)
        return row

    @classmethod
    def _write_with_items(cls, ctx: Context, row: Row) -> bool:
        """With allocated ids, a header and its items in one statement
        (:meth:`Context.insert_with_items`); False when it does not apply (no
        or several item lists, none given, items with differing columns).

        The ids come first, so the items' hooks (a restock before a sale
        item) find their header through a :class:`Ref` before it is written.
        """
        found = cls._items()
        if len(found) != 1 or not row.get(found[0][0]):
            return False
        name, items = found[0]
        child = factory_for(items.table)
        batch = [g if isinstance(g, Row) else Row(g) for g in row[name]]
        if any(set(item) != set(batch[0]) for item in batch):
            return False
        row["id"] = ctx.new_id(cls._table)
        for item in batch:
            item[items.fk] = Ref(cls._table, row)
            child._prepare(ctx, item)
        values = [{"id": ctx.new_id(child._table), **child.columns(i)} for i in batch]
        head = {"id": row["id"], **cls.columns(row)}
        ctx.insert_with_items(cls._table, head, child._table, values)
        row.update(head)  # FKs as ids, as an insert leaves them
        for item, written in zip(batch, values, strict=True):
            item.update(written)
        ctx.forget_ids(cls._table)
        ctx.forget_ids(child._table)
        row[name] = batch
        return True

    @classmethod
    def _prepare(cls, ctx: Context, row: Row) -> None:
        """Before inserting ``row``: its unsaved parents, then the domain's hook.

        Items of one header are all prepared before they are inserted together;
        their hooks never depend on each other (an item's product is unique in
        its header, see ``_distinct``).
        """
        for value in list(row.values()):
            if isinstance(value, Ref) and value.table and "id" not in value.row:
                assert isinstance(value.row, Row)
                factory_for(value.table).write(ctx, value.row)
        cls._before_insert(ctx, row)

    @classmethod
    def column_names(cls) -> list[str]:
        """The columns this factory writes, in declaration order."""
        return list(cls._written())

    @per_class
    def _written(cls: Any) -> tuple[str, ...]:
        """:meth:`column_names`, computed once per class (a stream asks for
        them at every row it writes)."""
        excluded = set(cls._meta.exclude)  # type: ignore[attr-defined]
        return tuple(
            n
            for n, d in cls._declarations()
            if n not in excluded and not isinstance(d, Items)
        )

    @per_class
    def _items(cls: Any) -> list[tuple[str, Items]]:
        return [(n, d) for n, d in cls._declarations() if isinstance(d, Items)]

    @classmethod
    def _before_insert(cls, ctx: Context, row: Row) -> None:
        """Hook: make the database ready for this row (e.g. stock for a sale)."""

    @classmethod
    def _after_insert(cls, ctx: Context, row: Row) -> None:
        """Hook, when the row is created on its own (not as a header's item):
        keep what depends on it right (e.g. the sale's total)."""

    @classmethod
    def columns(cls, row: Mapping[str, Any]) -> dict[str, Any]:
        """The values to write: the written columns present in ``row``, FKs as ids."""
        return {k: ref_id(row[k]) for k in cls._written() if k in row}
