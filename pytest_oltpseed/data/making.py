"""Rows made straight from the declarations, without factory_boy's per-object
machinery: the bulk path (seeding, ``create_batch``, the stream). A part of
:class:`~pytest_oltpseed.data.sqlfactory.SQLFactory`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pytest_oltpseed.data.context import Context
from pytest_oltpseed.data.declarations import Col, Items, Parent, per_class
from pytest_oltpseed.data.keywords import Keywords
from pytest_oltpseed.data.rows import Ref, Row, _Attrs
from pytest_oltpseed.errors import OltpseedError


class Making(Keywords):
    """SQLFactory's ``make_row`` (a mixin)."""

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

    @per_class
    def _plan(cls: Any) -> list[tuple[str, type, Any]]:
        """(name, declaration kind, declaration): make_row's loop, checked once."""
        plan: list[tuple[str, type, Any]] = []
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
            plan.append((name, kind, declaration))
        return plan
