"""The keywords a factory accepts: fields, FK aliases, traits and parameters,
checked and expanded into the plain keywords both paths evaluate (factory_boy's
``build``/``create`` and the bulk ``make_row``). A part of
:class:`~pytest_oltpseed.data.sqlfactory.SQLFactory`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import factory

from pytest_oltpseed.data.declarations import (
    FieldError,
    Param,
    Parent,
    Trait,
    _parent_value,
    per_class,
)
from pytest_oltpseed.errors import OltpseedError


class Keywords:
    """SQLFactory's keywords (a mixin: the class methods read ``cls._meta``,
    which factory_boy's metaclass sets on the factory)."""

    _meta: Any

    @per_class
    def _fields(cls: Any) -> dict[str, Any]:
        """Keyword name -> declaration: every declared column, helper or items
        (computed once per class)."""
        return dict(cls._declarations()) | dict(cls._meta.parameters)

    @per_class
    def _aliases(cls: Any) -> dict[str, str]:
        """``paciente`` -> ``paciente_id``: an FK column also answers to its
        name without ``_id``, where that name is not a field of its own."""
        fields = cls._fields()
        return {
            name.removesuffix("_id"): name
            for name, declaration in fields.items()
            if isinstance(declaration, Parent)
            and name.endswith("_id")
            and name.removesuffix("_id") not in fields
        }

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

    @per_class
    def _traits(cls: Any) -> dict[str, Trait]:
        """The factory's traits by name, in declaration order (computed once)."""
        traits: dict[str, Trait] = {}
        for name, parameter in cls._meta.parameters.items():
            if isinstance(parameter, factory.Trait):
                raise OltpseedError(
                    f"{cls.__name__}.Params.{name}: use "
                    "pytest_oltpseed.data.factory.Trait, not factory.Trait "
                    "(whose conditional declarations the COPY path cannot run)"
                )
            if isinstance(parameter, Trait):
                traits[name] = parameter
        return traits

    @per_class
    def _params(cls: Any) -> dict[str, Param]:
        """The factory's :class:`Param` keywords by name (computed once)."""
        return {
            name: parameter
            for name, parameter in cls._meta.parameters.items()
            if isinstance(parameter, Param)
        }

    @per_class
    def _declarations(cls: Any) -> list[tuple[str, Any]]:
        """(name, declaration) in declaration order, computed once per class."""
        declarations = cls._meta.pre_declarations
        return [(n, declarations[n].declaration) for n in declarations.sorted()]
