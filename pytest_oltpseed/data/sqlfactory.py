"""SQLFactory: a factory_boy factory whose declarations are the only column
definitions, persisted in one ``write`` and evaluated directly by ``make_row``
for bulk COPY.

Its jobs live in mixins, a module each: :mod:`~pytest_oltpseed.data.keywords`
(the keywords it accepts, traits), :mod:`~pytest_oltpseed.data.making`
(``make_row``) and :mod:`~pytest_oltpseed.data.persisting` (``write``,
``create_batch``, the hooks)."""

from __future__ import annotations

from typing import Any, ClassVar

import factory
from factory import enums

from pytest_oltpseed.data.context import _current, current, offline
from pytest_oltpseed.data.making import Making
from pytest_oltpseed.data.persisting import Persisting
from pytest_oltpseed.data.registry import _FACTORIES
from pytest_oltpseed.data.rows import Row


class SQLFactory(Persisting, Making, factory.Factory):
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
