"""``checks.py``: the rules ``oltpseed check`` runs on a generated domain."""

from __future__ import annotations

from pytest_oltpseed.introspect.catalog import Catalog, Table


def checks_py(header: str, catalog: Catalog, ordered: list[str]) -> str:
    rules = []
    for t in ordered:
        table = catalog.tables[t]
        ident = table.ident
        key = _example(table)
        for fk in table.foreign_keys:
            if fk.parent not in catalog.tables:
                continue
            joined = " AND ".join(
                f'p."{pc}" = c."{cc}"'
                for cc, pc in zip(fk.columns, fk.parent_columns, strict=True)
            )
            present = " AND ".join(f'c."{cc}" IS NOT NULL' for cc in fk.columns)
            query = (
                f"SELECT {key.format(a='c')} FROM {ident} c WHERE {present} AND NOT "
                f"EXISTS (SELECT 1 FROM {catalog.tables[fk.parent].ident} p "
                f"WHERE {joined})"
            )
            rules.append((f"{t}.{fk.name}: no orphans", t, query))
        for unique in [table.primary_key, *table.uniques]:
            if not unique:
                continue
            cols = ", ".join(f'"{c}"' for c in unique)
            filled = " AND ".join(f'"{c}" IS NOT NULL' for c in unique)
            rules.append((
                f"{t}: ({', '.join(unique)}) unique", t,
                f"SELECT min({cols.split(', ')[0]}::text) FROM {ident} "
                f"WHERE {filled} GROUP BY {cols} HAVING count(*) > 1",
            ))  # fmt: skip
        for column in table.columns:
            if column.not_null:
                rules.append((
                    f"{t}.{column.name} NOT NULL", t,
                    f'SELECT {key.format(a="t")} FROM {ident} t '
                    f'WHERE t."{column.name}" IS NULL',
                ))  # fmt: skip
        for check in table.checks:
            rules.append((
                f"{t}: CHECK {check.name}", t,
                f"SELECT {key.format(a='t')} FROM {ident} t "
                f"WHERE NOT ({check.expression})",
            ))  # fmt: skip
    body = "\n".join(
        f"    QueryRule({n!r}, {t!r},\n              {q!r})," for n, t, q in rules
    )
    return "\n".join([
        '"""Checks: FK orphans (composite included), unique keys, NOT NULL, CHECKs.',
        "", header, "", "Each query selects an example key of every row that breaks",
        'its rule."""\n',
        "from pytest_oltpseed.validators import QueryRule, Rule\n",
        "RULES: list[Rule] = [", body, "]",
    ]) + "\n"  # fmt: skip


def _example(table: Table) -> str:
    """How a breaking row is named: its primary key as text, else its ctid."""
    if table.primary_key:
        parts = " || ', ' || ".join(f'{{a}}."{c}"::text' for c in table.primary_key)
        return parts
    return "{a}.ctid::text"
