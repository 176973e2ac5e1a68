"""SQLFactory: a factory_boy factory whose declarations are the only column
definitions, persisted in one ``write`` and evaluated directly by ``make_row``
for bulk COPY."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import factory
import factory.random
from factory import enums

from pytest_oltpseed.data.context import Context, _current, current, offline
from pytest_oltpseed.data.declarations import (
    Col,
    FieldError,
    Items,
    Param,
    Parent,
    Trait,
    _parent_value,
)
from pytest_oltpseed.data.registry import _FACTORIES, factory_for
from pytest_oltpseed.data.rows import Ref, Row, _Attrs, ref_id
from pytest_oltpseed.errors import OltpseedError


class SQLFactory(factory.Factory):
    """Base factory: ``create()`` inserts the row and returns it with its id.

    Subclasses set ``_table`` and ``_domain``; columns listed in
    ``Meta.exclude`` are computed but not written (helpers), and
    :class:`Items` columns are written as child rows after the header.
    Hooks ``_before_insert``/``_after_insert`` keep cross-row rules (stock,
    totals) in the domain that owns them.
    """

    _table: ClassVar[str] = ""
    _domain: ClassVar[str] = ""
    _distinct: ClassVar[str | None] = None  # column unique within a header
    _natural_key: ClassVar[tuple[str, ...]] = ()  # UNIQUE columns: seeding upserts

    class Meta:
        model = Row
        abstract = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # a suite's subclass of a domain's factory (register(MyPaciente)) does
        # not replace it: parents of other tables keep the domain's own
        if cls._table and "_table" in cls.__dict__:
            _FACTORIES.setdefault(cls._table, {})[cls._domain] = cls

    @classmethod
    def _generate(cls, strategy: Any, params: dict[str, Any]) -> Any:
        """factory_boy's entry for build/create/batches: keywords checked first.

        factory_boy keeps an unknown keyword as an extra attribute, so a
        misspelt ``stauts=`` or a parent passed as ``paciente=`` would be
        silently ignored; here the first raises and the second links.

        ``build()`` with no context bound runs in :func:`offline`'s: a unit
        test needs no database to build rows.
        """
        params = cls.normalize(params)
        if strategy == enums.BUILD_STRATEGY and _current.get(None) is None:
            token = _current.set(offline())
            try:
                return super()._generate(strategy, params)
            finally:
                _current.reset(token)
        current()  # create() with nothing bound: the clear error, not a KeyError
        return super()._generate(strategy, params)

    @classmethod
    def _fields(cls) -> dict[str, Any]:
        """Keyword name -> declaration: every declared column, helper or items
        (computed once per class)."""
        cached = cls.__dict__.get("_fields_cache")
        if cached is None:
            cached = dict(cls._declarations()) | dict(cls._meta.parameters)
            cls._fields_cache = cached  # type: ignore[attr-defined]
        return cached

    @classmethod
    def _aliases(cls) -> dict[str, str]:
        """``paciente`` -> ``paciente_id``: an FK column also answers to its
        name without ``_id``, where that name is not a field of its own."""
        cached = cls.__dict__.get("_aliases_cache")
        if cached is None:
            fields = cls._fields()
            cached = {
                name.removesuffix("_id"): name
                for name, declaration in fields.items()
                if isinstance(declaration, Parent)
                and name.endswith("_id")
                and name.removesuffix("_id") not in fields
            }
            cls._aliases_cache = cached  # type: ignore[attr-defined]
        return cached

    @classmethod
    def valid_fields(cls) -> str:
        """The keywords this factory accepts, for error messages."""
        aliases = {column: alias for alias, column in cls._aliases().items()}
        return ", ".join(
            f"{name} (or {aliases[name]})" if name in aliases else name
            for name in sorted(cls._fields())
        )

    @classmethod
    def check_fields(cls, fields: Mapping[str, Any]) -> None:
        """Raise :class:`FieldError` naming the valid fields if one is unknown."""
        known = cls._fields()
        aliases = cls._aliases()
        for key in fields:
            root, nested, _ = key.partition("__")
            if root not in known and root not in aliases:
                raise FieldError(
                    f"{cls.__name__} has no field {root!r}: valid fields are "
                    f"{cls.valid_fields()}"
                )
            if nested and not isinstance(known[aliases.get(root, root)], Parent):
                raise FieldError(
                    f"{cls.__name__}.{root} is not a parent: {key}= sets a field "
                    "of a parent row (an FK field such as paciente_id)"
                )

    @classmethod
    def normalize(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """Check keywords, expand traits, resolve FK aliases, and make a parent
        given as a row a :class:`Ref` (an unsaved one is inserted before the
        child). Every path (build, create, create_batch) starts here, so a
        trait means the same keywords on each."""
        return cls._normalize(params, ())

    @classmethod
    def _normalize(
        cls, params: Mapping[str, Any], expanding: tuple[str, ...]
    ) -> dict[str, Any]:
        traits = cls._traits()
        if traits and any(key in traits for key in params):
            cls.check_fields(params)
            expanded: dict[str, Any] = {}
            for name, trait in traits.items():  # declaration order
                if params.get(name):
                    if name in expanding:
                        raise FieldError(
                            f"{cls.__name__}: trait {name} includes itself "
                            f"(through {' -> '.join(expanding)})"
                        )
                    expanded.update(cls._normalize(trait.overrides, (*expanding, name)))
            given = {k: v for k, v in params.items() if k not in traits}
            return expanded | cls._normalize(given, expanding)  # the caller's win
        cls.check_fields(params)
        aliases = cls._aliases()
        fields = cls._fields()
        out: dict[str, Any] = {}
        for key, value in params.items():
            root, _, rest = key.partition("__")
            name = aliases.get(root, root)
            full = f"{name}__{rest}" if rest else name
            if full in out:
                raise FieldError(
                    f"{cls.__name__}: {name} given twice (as {root!r} and {name!r})"
                )
            declaration = fields[name]
            if not rest and isinstance(declaration, Parent):
                value = _parent_value(declaration.table, value)
            out[full] = value
        for name, param in cls._params().items():
            if name not in out and param.default is not None:
                out[name] = param.default
        return out

    @classmethod
    def _traits(cls) -> dict[str, Trait]:
        """The factory's traits by name, in declaration order (computed once)."""
        cached = cls.__dict__.get("_traits_cache")
        if cached is None:
            cached = {}
            for name, parameter in cls._meta.parameters.items():
                if isinstance(parameter, factory.Trait):
                    raise OltpseedError(
                        f"{cls.__name__}.Params.{name}: use "
                        "pytest_oltpseed.data.factory.Trait, not factory.Trait "
                        "(whose conditional declarations the COPY path cannot run)"
                    )
                if isinstance(parameter, Trait):
                    cached[name] = parameter
            cls._traits_cache = cached  # type: ignore[attr-defined]
        return cached

    @classmethod
    def _params(cls) -> dict[str, Param]:
        """The factory's :class:`Param` keywords by name (computed once)."""
        cached = cls.__dict__.get("_params_cache")
        if cached is None:
            cached = {
                name: parameter
                for name, parameter in cls._meta.parameters.items()
                if isinstance(parameter, Param)
            }
            cls._params_cache = cached  # type: ignore[attr-defined]
        return cached

    @classmethod
    def create_batch(cls, size: int, **kwargs: Any) -> list[Row]:
        """``size`` rows inserted with COPY (see :mod:`pytest_oltpseed.seed.bulk`):
        the same rows ``create()`` would make, FK-consistent, at bulk speed."""
        ctx = current()
        if ctx.conn is None:
            raise OltpseedError(f"{cls.__name__}: writing needs a bound connection")
        from pytest_oltpseed.seed.bulk import create_batch

        return create_batch(cls, ctx, size, kwargs)

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
    def _declarations(cls) -> list[tuple[str, Any]]:
        """(name, declaration) in declaration order, computed once per class."""
        cached = cls.__dict__.get("_declaration_cache")
        if cached is None:
            declarations = cls._meta.pre_declarations
            cached = [(n, declarations[n].declaration) for n in declarations.sorted()]
            cls._declaration_cache = cached  # type: ignore[attr-defined]
        return cached

    @classmethod
    def column_names(cls) -> list[str]:
        """The columns this factory writes, in declaration order."""
        return list(cls._written())

    @classmethod
    def _written(cls) -> tuple[str, ...]:
        """:meth:`column_names`, computed once per class (a stream asks for
        them at every row it writes)."""
        cached = cls.__dict__.get("_written_cache")
        if cached is None:
            excluded = set(cls._meta.exclude)  # type: ignore[attr-defined]
            cached = tuple(
                n
                for n, d in cls._declarations()
                if n not in excluded and not isinstance(d, Items)
            )
            cls._written_cache = cached  # type: ignore[attr-defined]
        return cached

    @classmethod
    def _items(cls) -> list[tuple[str, Items]]:
        cached = cls.__dict__.get("_items_cache")
        if cached is None:
            cached = [(n, d) for n, d in cls._declarations() if isinstance(d, Items)]
            cls._items_cache = cached  # type: ignore[attr-defined]
        return cached

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

    @classmethod
    def make_row(
        cls,
        ctx: Context,
        parents: Mapping[str, Callable[[Any], Ref]] | None = None,
        *,
        create: bool = False,
        overrides: Mapping[str, Any] | None = None,
    ) -> Row:
        """Evaluate the declarations directly (no factory_boy step): the bulk path.

        ``parents`` maps an FK column to a picker ``pick(row) -> Ref`` (the
        seeder picks among ids it fetched; ``row`` is the row so far), also
        for the children of :class:`Items`; other Parent columns are created
        when ``create`` (persisted first) and built otherwise. ``overrides``
        win over declarations; a ``parent__field`` key sets a field of a new
        parent (keys already checked by :meth:`normalize`).
        """
        row = Row()
        view = _Attrs(row)
        overrides = overrides or {}
        parents = parents or {}
        nested: dict[str, dict[str, Any]] = {}
        for key in overrides if any("__" in k for k in overrides) else ():
            root, _, rest = key.partition("__")
            if rest:
                nested.setdefault(root, {})[rest] = overrides[key]
        for name, kind, declaration in cls._plan():
            if name in overrides:
                given = overrides[name]
                # a trait may set a column to a declaration, evaluated per row
                row[name] = given.fn(ctx, view) if type(given) is Col else given
            elif kind is Col:
                row[name] = declaration.fn(ctx, view)
            elif kind is Parent:
                pick = parents.get(name)
                row[name] = (
                    pick(view)
                    if pick
                    else declaration.resolve(ctx, view, create, nested.get(name))
                )
            else:
                count = overrides.get(declaration.count) if declaration.count else None
                row[name] = declaration.make(ctx, row, create, parents, count)
        return row

    @classmethod
    def _plan(cls) -> list[tuple[str, type, Any]]:
        """(name, declaration kind, declaration): make_row's loop, checked once."""
        cached = cls.__dict__.get("_plan_cache")
        if cached is None:
            cached = []
            for name, declaration in cls._declarations():
                kind = next(
                    (k for k in (Col, Parent, Items) if isinstance(declaration, k)),
                    None,
                )
                if kind is None:
                    raise OltpseedError(
                        f"{cls.__name__}.{name}: only Col, Parent and Items are "
                        "supported by the bulk path"
                    )
                cached.append((name, kind, declaration))
            cls._plan_cache = cached  # type: ignore[attr-defined]
        return cached
