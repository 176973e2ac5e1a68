"""Integrity and domain checks: the rules behind ``oltpseed check``.

Three kinds of rule, each defined once and declared by the domain that owns
it (``domains/<name>/checks.py``):

* :class:`RowRule` - a predicate on one row (and the parent columns it names,
  e.g. ``paciente_id.data_cadastro``). The same function checks rows made in
  memory (hypothesis strategies) and every row of a database.
* :class:`QueryRule` - a set-based SQL rule returning the ids that break it
  (totals, stock, per-patient limits).
* :class:`ShareRule` - a proportion that must sit near its target (status
  mixes), checked only on enough rows for the proportion to mean something.

FK orphans are checked for every FK the factories declare.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pytest_oltpseed.data.factory import Parent, Ref, factory_for
from pytest_oltpseed.db import table_ident
from pytest_oltpseed.domains import Domain, tables_of


@dataclass(frozen=True)
class RowRule:
    """``ok(row)`` must hold for every row of ``table``; ``None`` values skip it."""

    name: str
    table: str
    ok: Callable[[Mapping[str, Any]], bool]
    needs: tuple[str, ...] = ()  # parent columns, as "fk_column.parent_column"


@dataclass(frozen=True)
class QueryRule:
    """``query`` selects one column: the ids of the rows that break the rule."""

    name: str
    table: str
    query: str


@dataclass(frozen=True)
class ShareRule:
    """The share of ``table`` rows where ``condition`` holds stays near ``target``."""

    name: str
    table: str
    condition: str
    target: float
    tolerance: float = 0.03
    min_rows: int = 200


Rule = RowRule | QueryRule | ShareRule


@dataclass
class Finding:
    """One rule's outcome on a database."""

    rule: str
    violations: int = 0
    example: str | None = None
    note: str = ""
    checked: bool = field(default=True)

    @property
    def ok(self) -> bool:
        return self.violations == 0


def rules(domains: Iterable[Domain]) -> list[Rule]:
    return [rule for domain in domains for rule in domain.load_checks().RULES]


def _flatten(row: Mapping[str, Any], needs: Sequence[str]) -> dict[str, Any]:
    """The row plus the parent values a rule needs, read from :class:`Ref` values."""
    flat = dict(row)
    for need in needs:
        fk, column = need.split(".", 1)
        value = row.get(fk)
        flat[need] = value.row.get(column) if isinstance(value, Ref) else None
    return flat


def row_problems(
    table: str, row: Mapping[str, Any], domains: Iterable[Domain] | None = None
) -> list[str]:
    """Names of the row rules that ``row`` (a factory or strategy row) breaks.

    Parent-dependent rules are checked when the FK holds a :class:`Ref`
    (the parent's values are then known) and skipped for a bare id.
    """
    from pytest_oltpseed.domains import registry

    found = []
    for rule in rules(domains or registry().values()):
        if not isinstance(rule, RowRule) or rule.table != table:
            continue
        flat = _flatten(row, rule.needs)
        if any(flat.get(need) is None for need in rule.needs):
            continue
        if not rule.ok(flat):
            found.append(rule.name)
    return found


@dataclass(frozen=True)
class Coverage:
    """What ``check`` can look at: the domains with data, and why not the rest.

    A gate pointed at the wrong (empty) database must fail, not report that
    "all 0 rules hold": ``problem`` is then the one line to fail with.
    """

    domains: list[Domain]
    skipped: list[str] = field(default_factory=list)
    problem: str | None = None


_LOOKUP = re.compile(r"\bINSERT\s+INTO\s+([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)


def coverage(
    conn: psycopg.Connection, domains: Sequence[Domain], *, every: bool = False
) -> Coverage:
    """Which of ``domains`` are installed and hold data; read-only.

    ``every`` is ``--domain all``: a domain with none of its tables is then
    skipped with a note (a database may hold one domain only); a domain named
    on its own must be there. A partly installed domain, or one whose tables
    hold nothing but the install's lookup rows, always fails.
    """
    where = f"{conn.info.host}:{conn.info.port}/{conn.info.dbname}"
    present = {
        row[0]
        for row in conn.execute(
            "SELECT t FROM unnest(%s::text[]) t WHERE to_regclass(t) IS NOT NULL",
            (tables_of(domains),),
        )
    }
    found, skipped = [], []
    for domain in domains:
        absent = [t for t in domain.tables if t not in present]
        if len(absent) == len(domain.tables):
            if every:
                skipped.append(f"{domain.name}: not installed in {where}, not checked")
                continue
            return Coverage(
                [],
                problem=f"nothing to check: the {domain.name} tables "
                f"are not installed in {where} (wrong database? seed "
                f"first: oltpseed seed --domain {domain.name})",
            )
        if absent:
            return Coverage(
                [],
                problem=f"{domain.name} is partly installed in "
                f"{where}: missing {', '.join(absent)} (oltpseed "
                f"init-db --domain {domain.name})",
            )
        lookups = {
            name.lower()
            for path in domain.install_files()
            for name in _LOOKUP.findall(path.read_text(encoding="utf-8"))
        }
        filled = [
            table
            for table in domain.tables
            if table not in lookups and _has_rows(conn, table)
        ]
        if not filled:
            return Coverage(
                [],
                problem=f"nothing to check: the {domain.name} "
                f"tables in {where} are empty (seed first: oltpseed "
                f"seed --domain {domain.name})",
            )
        found.append(domain)
    if not found:
        return Coverage(
            [],
            skipped,
            f"nothing to check: no oltpseed tables in "
            f"{where} (wrong database? seed first: oltpseed seed)",
        )
    return Coverage(found, skipped)


def _has_rows(conn: psycopg.Connection, table: str) -> bool:
    row = conn.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(table_ident(table))
    ).fetchone()
    return bool(row and row[0])


def check_database(
    conn: psycopg.Connection, domains: Sequence[Domain]
) -> list[Finding]:
    """Run every rule of ``domains`` plus FK-orphan checks; read-only."""
    present = {
        row[0]
        for row in conn.execute(
            "SELECT t FROM unnest(%s::text[]) t WHERE to_regclass(t) IS NOT NULL",
            (tables_of(domains),),
        )
    }
    findings = [f for d in domains for f in _orphans(conn, d, present)]
    by_table: dict[str, list[RowRule]] = {}
    for rule in rules(domains):
        if rule.table not in present:
            findings.append(
                Finding(rule.name, note="table not installed", checked=False)
            )
        elif isinstance(rule, RowRule):
            by_table.setdefault(rule.table, []).append(rule)
        elif isinstance(rule, QueryRule):
            findings.append(_query(conn, rule))
        else:
            findings.append(_share(conn, rule))
    for table, table_rules in by_table.items():
        findings.extend(_rows(conn, table, table_rules))
    return findings


def _foreign_keys(table: str) -> dict[str, str]:
    return {
        name: declaration.table
        for name, declaration in factory_for(table)._declarations()
        if isinstance(declaration, Parent)
    }


def _orphans(
    conn: psycopg.Connection, domain: Domain, present: set[str]
) -> list[Finding]:
    found = []
    for table in domain.tables:
        for fk, parent in _foreign_keys(table).items():
            if table not in present or parent not in present:
                continue
            query = sql.SQL(
                "SELECT t.id FROM {t} t WHERE NOT EXISTS "
                "(SELECT 1 FROM {p} p WHERE p.id = t.{fk}) ORDER BY t.id"
            ).format(
                t=sql.Identifier(table), p=sql.Identifier(parent), fk=sql.Identifier(fk)
            )
            found.append(_ids(conn, f"{table}.{fk} -> {parent} (no orphans)", query))
    return found


def _ids(conn: psycopg.Connection, name: str, query: sql.Composable | str) -> Finding:
    ids = [row[0] for row in conn.execute(query)]  # type: ignore[arg-type]
    return Finding(name, len(ids), str(ids[0]) if ids else None)


def _query(conn: psycopg.Connection, rule: QueryRule) -> Finding:
    return _ids(conn, rule.name, rule.query)


def _share(conn: psycopg.Connection, rule: ShareRule) -> Finding:
    row = conn.execute(
        sql.SQL("SELECT count(*), count(*) FILTER (WHERE {c}) FROM {t}").format(
            c=sql.SQL(rule.condition), t=table_ident(rule.table)
        )  # type: ignore[arg-type]
    ).fetchone()
    total, hits = (int(row[0]), int(row[1])) if row else (0, 0)
    if total < rule.min_rows:
        return Finding(
            rule.name, note=f"skipped: {total} rows (< {rule.min_rows})", checked=False
        )
    share = hits / total
    noise = 4 * math.sqrt(rule.target * (1 - rule.target) / total)
    allowed = max(rule.tolerance, noise)
    note = f"{share:.1%} (target {rule.target:.0%} ± {allowed:.1%})"
    bad = abs(share - rule.target) > allowed
    return Finding(rule.name, 1 if bad else 0, None, note)


def _rows(
    conn: psycopg.Connection, table: str, table_rules: list[RowRule]
) -> list[Finding]:
    needs = sorted({need for rule in table_rules for need in rule.needs})
    fks = _foreign_keys(table)
    joins, extra = [], []
    for i, need in enumerate(needs):
        fk, column = need.split(".", 1)
        alias = sql.Identifier(f"p{i}")
        joins.append(
            sql.SQL("LEFT JOIN {p} {a} ON {a}.id = t.{fk}").format(
                p=sql.Identifier(fks[fk]), a=alias, fk=sql.Identifier(fk)
            )
        )
        extra.append(
            sql.SQL(", {a}.{c} AS {n}").format(
                a=alias, c=sql.Identifier(column), n=sql.Identifier(need)
            )
        )
    query = sql.SQL("SELECT t.*{extra} FROM {t} t {joins} ORDER BY t.id").format(
        extra=sql.SQL("").join(extra),
        t=sql.Identifier(table),
        joins=sql.SQL(" ").join(joins),
    )
    findings = {rule.name: Finding(rule.name) for rule in table_rules}
    with conn.cursor(name=f"check_{table}", row_factory=dict_row) as cur:
        cur.itersize = 5000
        cur.execute(query)
        for row in cur:
            for rule in table_rules:
                if any(row.get(n) is None for n in rule.needs) or rule.ok(row):
                    continue
                finding = findings[rule.name]
                finding.violations += 1
                if finding.example is None:
                    finding.example = str(row["id"])
    return list(findings.values())


def optional(
    check: Callable[[Any], bool], column: str
) -> Callable[[Mapping[str, Any]], bool]:
    """A row predicate on ``column`` that accepts NULL (for nullable columns)."""
    return lambda row: row.get(column) is None or check(row[column])
