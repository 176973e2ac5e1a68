"""Per-table plan: each column's generator, FK helpers, unique keys, the
CHECKs honoured, the columns stream updates may change."""

from __future__ import annotations

import hashlib
import keyword
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from pytest_oltpseed.errors import UsageError
from pytest_oltpseed.introspect import generators
from pytest_oltpseed.introspect.catalog import Catalog, Column, ForeignKey, Table
from pytest_oltpseed.introspect.writer.honour import honour, written
from pytest_oltpseed.introspect.writer.order import nullable_fk

NULL_SHARE = 0.1  # nullable columns (and FKs) left NULL this often
UNIQUABLE = (generators.TEXT, generators.INTEGER, generators.DECIMAL,
             generators.MOMENT, "uuid")  # fmt: skip
"""Families a generator can make unique by construction (an index in it)."""


@dataclass
class Plan:
    """What the writer decided for one table."""

    table: Table
    lines: list[str] = field(default_factory=list)  # declarations, in order
    helpers: list[str] = field(default_factory=list)  # excluded helper columns
    natural_key: tuple[str, ...] = ()
    parents: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    updatable: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    combinations: list[tuple[str, ...]] = field(default_factory=list)
    """Parent tables of each key made only of FKs (its rows: distinct tuples)."""


def _ident(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


def class_name(table: str) -> str:
    words = re.split(r"[^0-9A-Za-z]+", table)
    name = "".join(w[:1].upper() + w[1:] for w in words if w) or "Table"
    return name if name[0].isalpha() else f"T{name}"


def plan_table(
    table: Table,
    catalog: Catalog,
    domain: str,
    broken: set[str],
    rules: Sequence[tuple[str, str, str]],
) -> Plan:
    plan = Plan(table)
    found = honour(table, plan.notes)
    labels, bounds, forced_null = found.labels, found.bounds, found.forced_null
    computed, after, frozen = found.computed, found.after, found.frozen
    # Foreign keys: one helper per FK holds the parent key; its columns read it.
    fk_of: dict[str, tuple[str, int, ForeignKey, int | None]] = {}
    helper_of: dict[str, str] = {}
    for number, fk in enumerate(table.foreign_keys, 1):
        if fk.parent not in catalog.tables:
            if nullable_fk(table, fk):
                plan.notes.append(
                    f"{table.name}.{fk.name}: parent {fk.parent} is not introspected:"
                    " written NULL"
                )
                for c in fk.columns:
                    forced_null.add(c)
                continue
            raise UsageError(
                f"{table.name} references {fk.parent}, which --table-filter leaves "
                f"out ({fk.name}, NOT NULL): include {fk.parent}"
            )
        if fk.parent == table.name and not nullable_fk(table, fk):
            raise UsageError(
                f"{table.name}.{fk.name} references its own table with NOT NULL "
                "columns: the first row can have no parent"
            )
        if any(c in fk_of for c in fk.columns):
            plan.notes.append(
                f"{table.name}.{fk.name}: shares columns with another FK; the first "
                "one decides them"
            )
            continue
        helper = f"oltpseed_fk{number}"
        helper_of[fk.name] = helper
        for i, c in enumerate(fk.columns):
            fk_of[c] = (helper, i, fk, None)
        plan.parents.append((fk.parent, fk.parent_columns))
    # Unique sets: made unique by construction, never by retrying.
    unique_by: dict[str, str] = {}
    combos: dict[str, list[ForeignKey]] = {}
    for key in (
        [table.primary_key, *table.uniques] if table.primary_key else [*table.uniques]
    ):
        if not key:
            continue
        columns = [table.column(c) for c in key]
        if any(c.serial for c in columns) or any(c in unique_by for c in key):
            continue
        candidate = next(
            (
                c
                for c in columns
                if c.name not in fk_of
                and c.kind != "array"
                and generators.family(c) in UNIQUABLE
                and not c.labels
                and c.name not in labels
                and written(table, c.name)
            ),
            None,
        )
        if candidate is not None:
            unique_by[candidate.name] = "/".join(key)
            plan.natural_key = plan.natural_key or tuple(key)
            continue
        involved = [
            fk
            for fk in table.foreign_keys
            if fk.name in helper_of and set(fk.columns) <= set(key)
        ]
        if involved and {c for fk in involved for c in fk.columns} == set(key):
            combo = f"oltpseed_combo_{len(combos) + 1}"
            combos[combo] = involved
            plan.combinations.append(tuple(fk.parent for fk in involved))
            for fk in involved:
                helper_of[fk.name] = combo
            for position, fk in enumerate(involved):
                for i, c in enumerate(fk.columns):
                    fk_of[c] = (combo, i, fk, position)
            plan.natural_key = plan.natural_key or tuple(key)
            continue
        plan.notes.append(
            f"{table.name}: UNIQUE ({', '.join(key)}) cannot be made unique by "
            "construction: duplicates are possible"
        )
    ranges = ranges_name(table.name) if table.partition_ranges else ""
    # Helpers first (FK parents, combinations), then the columns in table order.
    for combo, fks in combos.items():
        parents = ", ".join(f"({fk.parent!r}, {fk.parent_columns!r})" for fk in fks)
        plan.helpers.append(combo)
        combined = tuple(c for fk in fks for c in fk.columns)
        plan.lines.append(
            f"{combo} = Col(V.combination(DOMAIN, "
            f"{index_key(domain, table.name, combo)!r}, ({parents},), "
            f"({table.name!r}, {combined!r})))"
        )
    for fk in table.foreign_keys:
        fk_helper = helper_of.get(fk.name)
        if fk_helper is None or fk_helper.startswith("oltpseed_combo_"):
            continue
        self_or_cycle = fk.parent == table.name or fk.name in broken
        share = NULL_SHARE if nullable_fk(table, fk) else 0.0
        call = "V.optional_parent" if self_or_cycle else "V.parent"
        plan.helpers.append(fk_helper)
        plan.lines.append(
            f"{fk_helper} = Col({call}({fk.parent!r}, {fk.parent_columns!r}, {share}))"
        )
    kinds = _Kinds(domain, table)
    for column in table.columns:
        if not written(table, column.name):
            continue
        name = column.name
        if name in forced_null:  # before its FK: the note promised NULL
            expression = "V.null()"
        elif name in fk_of:
            expression = _key(column, *fk_of[name])
        elif name in computed and kinds.known(computed[name]):
            expression = _computed(computed[name], kinds)
        else:
            choice = generators.choose(
                column,
                table=table.name,
                labels=labels.get(name, ()),
                bounds=bounds.get(name, (None, None)),
                ranges=ranges if name == table.partitioned_by else "",
                rules=rules,
            )
            if choice is None:
                if column.default is not None or not column.not_null:
                    plan.notes.append(
                        f"{table.name}.{name}: no generator for {column.type}: "
                        + ("left to its default" if column.default else "NULL")
                    )
                    if column.default is not None:
                        continue
                    expression = "V.null()"
                else:
                    raise UsageError(
                        f"{table.name}.{name}: no generator for type {column.type} "
                        "(NOT NULL, no default)"
                    )
            else:
                expression = choice.expression
                if name in after and after[name][0] in kinds:
                    early, strict = after[name]
                    expression = (
                        f"V.after({early!r}, {kinds[early]!r}, {strict}, {expression})"
                    )
                if name in unique_by:
                    expression = _unique(table, column, choice, domain, ranges)
                elif not column.not_null:
                    expression = f"C.Maybe({NULL_SHARE}, {expression})"
            if (
                name not in unique_by
                and name not in table.primary_key
                and name != table.partitioned_by
                and name not in after
                and name not in frozen
            ):
                plan.updatable.append(name)
        kinds.declare(name, expression)
        plan.lines.append(_declare(name, f"Col({expression})"))
    return plan


class _Kinds:
    """The kind of each column's generator (what its arrays hold), for the
    generators that read other columns: found by building the declared
    generator, so it is the one the domain will run."""

    def __init__(self, domain: str, table: Table) -> None:
        from pytest_oltpseed.data import columns
        from pytest_oltpseed.introspect import vocabulary

        self.scope: dict[str, object] = {"C": columns, "V": vocabulary,
                                          "DOMAIN": domain}  # fmt: skip
        if table.partition_ranges:
            self.scope[ranges_name(table.name)] = tuple(table.partition_ranges)
        self.kinds: dict[str, str] = {}

    def declare(self, name: str, expression: str) -> None:
        gen = eval(expression, dict(self.scope))  # our own text, written above
        self.kinds[name] = gen.kind

    def __getitem__(self, name: str) -> str:
        return self.kinds[name]

    def __contains__(self, name: object) -> bool:
        return name in self.kinds

    def known(self, python: str) -> bool:
        """Whether every column an expression over ``r.<column>`` reads is
        declared (written, with a generator) already."""
        return all(n in self.kinds for n in re.findall(r"\br\.(\w+)", python))


def _key(
    column: Column, helper: str, i: int, fk: ForeignKey, position: int | None
) -> str:
    """The FK column ``column``: part ``i`` of the key its helper picked."""
    extra = "" if position is None else f", position={position}"
    if generators.family(column) == generators.INTEGER:
        extra += ", kind='int'"
    return f"V.key({helper!r}, {fk.parent!r}, {fk.parent_columns!r}, {i}{extra})"


def _computed(python: str, kinds: _Kinds) -> str:
    """``V.computed`` of a CHECK's arithmetic (``r.quantity * r.unit_price``):
    a function of the columns it reads, each with its generator's kind."""
    names = list(dict.fromkeys(re.findall(r"\br\.(\w+)", python)))
    body = re.sub(r"\br\.(\w+)", r"\1", python)
    inputs = ", ".join(f"({n!r}, {kinds[n]!r})" for n in names)
    return f"V.computed(lambda {', '.join(names)}: {body}, {inputs})"


def ranges_name(table: str) -> str:
    """The constant holding a partitioned table's ranges (a Python name)."""
    return "RANGES_" + re.sub(r"\W", "_", table).upper()


def index_key(domain: str, table: str, column: str) -> str:
    """The index key of a value unique by construction, as a sequence name
    allows it (``oltpseed_<domain>_idx_<key>``: lower-case, 63 bytes at most);
    a long or unusual name keeps a readable head and a stable hash."""
    key = ".".join(re.sub(r"[^a-z0-9_]", "_", p.lower()) for p in (table, column))
    room = 63 - len(f"oltpseed_{domain}_idx_") - 1  # "." becomes "__"
    if len(key) > room:
        digest = hashlib.sha1(f"{table}.{column}".encode()).hexdigest()[:8]
        key = f"{key[: max(1, room - 9)]}_{digest}".replace(".", "_")
    return key


def _unique(
    table: Table, column: Column, choice: generators.Choice, domain: str, ranges: str
) -> str:
    key = index_key(domain, table.name, column.name)
    family = choice.family
    if family in (generators.INTEGER, generators.DECIMAL):
        return f"V.unique_int(DOMAIN, {key!r})"
    if family == generators.MOMENT:
        extra = f", {ranges}" if ranges else ""
        return f"V.unique_moment(DOMAIN, {key!r}{extra})"
    if family == "uuid":
        return f"V.unique_uuid(DOMAIN, {key!r})"
    return f"V.unique_text(DOMAIN, {key!r}, {column.length}, {choice.expression})"


def _declare(name: str, value: str) -> str:
    if _ident(name) and not name.startswith("_"):
        return f"{name} = {value}"
    return f"locals()[{name!r}] = {value}  # not a Python name"
