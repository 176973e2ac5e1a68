"""SQLFactory: factory_boy factories whose declarations are the only column definitions.

Each column of each table is declared once, as a :class:`Col` (a function of
a :class:`Gen` and the row built so far) or a :class:`Parent` (an FK). Two
paths use those declarations:

* factory_boy's ``build()``/``create()`` (``create`` inserts with
  ``INSERT ... RETURNING *`` and returns the row as a :class:`Row`);
* :meth:`SQLFactory.make_row`, which evaluates the same declarations directly,
  without factory_boy's per-object machinery, for bulk COPY.

Both draw from the same seeded random stream in the same order, so for one
seed they produce the same rows. Values come from pools built once per seed
from Faker pt_BR (Faker costs 5-15 us a call; a pool pick well under 1 us),
and unique identifiers from per-domain index sequences mapped bijectively onto
CPF/CNPJ/CRM (see :mod:`pytest_oltpseed.data.brazil`), so uniqueness never relies
on retrying.

This module is the public face; the work lives in small modules by job:
:mod:`~pytest_oltpseed.data.rows` (rows, references, writes),
:mod:`~pytest_oltpseed.data.pools`, :mod:`~pytest_oltpseed.data.context` (the
bound context, :func:`bind`), :mod:`~pytest_oltpseed.data.declarations` (the
vocabulary), :mod:`~pytest_oltpseed.data.registry` (table -> factory) and
:mod:`~pytest_oltpseed.data.sqlfactory` (the class).
"""

from __future__ import annotations

from pytest_oltpseed.data.context import (
    ID_BLOCK,
    OFFLINE_INDEX,
    ROW_CACHE,
    Context,
    _current,
    bind,
    current,
    offline,
)
from pytest_oltpseed.data.declarations import (
    PREFER_TRIES,
    Col,
    FieldError,
    Items,
    Param,
    Parent,
    Trait,
    _identity,
    _parent_value,
)
from pytest_oltpseed.data.pools import Pools, pools
from pytest_oltpseed.data.registry import _FACTORIES, all_factories, factory_for
from pytest_oltpseed.data.rows import (
    Ref,
    Returning,
    Row,
    Statement,
    _Attrs,
    _insert_query,
    changed_keys,
    insert,
    ref_id,
)
from pytest_oltpseed.data.sqlfactory import SQLFactory
from pytest_oltpseed.profiles import DEFAULT_AS_OF

__all__ = [
    "DEFAULT_AS_OF",
    "ID_BLOCK",
    "OFFLINE_INDEX",
    "PREFER_TRIES",
    "ROW_CACHE",
    "_FACTORIES",
    "Col",
    "Context",
    "FieldError",
    "Items",
    "Param",
    "Parent",
    "Pools",
    "Ref",
    "Returning",
    "Row",
    "SQLFactory",
    "Statement",
    "Trait",
    "_Attrs",
    "_current",
    "_identity",
    "_insert_query",
    "_parent_value",
    "all_factories",
    "bind",
    "changed_keys",
    "current",
    "factory_for",
    "insert",
    "offline",
    "pools",
    "ref_id",
]
