"""The package's SQL files: the captured DDL wrapped in the ownership rule
(:mod:`pytest_oltpseed.introspect.ddl`), and its drop."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_oltpseed.introspect.catalog import Catalog
from pytest_oltpseed.introspect.ddl import Owned, drop_sql, install_sql


def schema_sql(
    name: str, header: str, catalog: Catalog, ordered: list[str], ddl: str,
    objects: list[Owned], extensions: Sequence[str],
) -> str:  # fmt: skip
    """``sql/01_schema.sql``: install into an empty target, mark what it made."""
    tables = [catalog.tables[t].ident for t in ordered]
    return _sql_header(header) + install_sql(name, ddl, objects, tables, extensions)


def drop_all_sql(name: str, header: str, objects: list[Owned]) -> str:
    """``sql/99_drop_all.sql``: drop what bears the mark, never with CASCADE."""
    return _sql_header(header) + drop_sql(name, objects)


def _sql_header(header: str) -> str:
    return "".join(f"-- {line}\n" for line in header.splitlines())
