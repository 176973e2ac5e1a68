"""Domain writer: a catalog becomes a domain package a person can read and edit.

The package is plain Python and SQL with a header saying what it came from
and how to regenerate it; it uses only the public domain API
(docs/domains.md) and :mod:`pytest_oltpseed.introspect.runtime`.
"""

from __future__ import annotations

import hashlib
import keyword
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pytest_oltpseed.errors import UsageError
from pytest_oltpseed.introspect import generators
from pytest_oltpseed.introspect.catalog import Catalog, Column, ForeignKey, Table
from pytest_oltpseed.introspect.ddl import Owned, drop_sql, install_sql

MARKER = "A domain written by oltpseed introspect."
PROFILES = {"SMALL": 0.1, "MEDIUM": 1, "LARGE": 10, "STRESS": 100}
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


@dataclass
class Written:
    """What ``introspect`` wrote and what the user should know about it."""

    package: Path
    tables: list[str]
    volumes: dict[str, int]
    notes: list[str]


def order(catalog: Catalog) -> tuple[list[str], set[str], list[str]]:
    """Tables parents first; FKs that close a cycle (written NULL at first,
    hence nullable ones only); notes. A cycle of NOT NULL FKs is refused."""
    tables = catalog.tables
    notes: list[str] = []
    broken: set[str] = set()
    edges = {
        name: {
            fk.parent: fk
            for fk in t.foreign_keys
            if fk.parent in tables and fk.parent != name
        }
        for name, t in tables.items()
    }

    class _Cycle(Exception):
        pass

    def attempt() -> list[str]:
        done: list[str] = []
        state: dict[str, int] = {}

        def visit(name: str, path: list[str]) -> None:
            state[name] = 1
            for parent, fk in sorted(edges[name].items()):
                if fk.name in broken:
                    continue
                if state.get(parent) == 1:  # a cycle: break it at a nullable FK
                    cycle = [*path[path.index(parent) :], name]
                    shown = " -> ".join([*cycle, cycle[0]])
                    candidates = [
                        f
                        for a, b in zip(cycle, cycle[1:] + cycle[:1], strict=True)
                        for f in [edges[a].get(b)]
                        if f is not None and _nullable(tables[a], f)
                    ]
                    if not candidates:
                        raise UsageError(
                            f"FK cycle {shown} has NOT NULL on every edge: it "
                            "cannot be seeded row by row"
                        )
                    broken.add(candidates[0].name)
                    notes.append(
                        f"FK cycle {shown}: {candidates[0].name} is written NULL, "
                        "then filled once its parent table is seeded"
                    )
                    raise _Cycle
                if state.get(parent) is None:
                    visit(parent, [*path, parent])
            state[name] = 2
            done.append(name)

        for name in sorted(tables):
            if state.get(name) is None:
                visit(name, [name])
        return done

    while True:  # each cycle found breaks one more edge, then order again
        try:
            return attempt(), broken, notes
        except _Cycle:
            continue


def _nullable(table: Table, fk: ForeignKey) -> bool:
    return any(not table.column(c).not_null for c in fk.columns)


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
    names = [c.name for c in table.columns]
    labels: dict[str, tuple[str, ...]] = {}
    bounds: dict[str, tuple[float | None, float | None]] = {}
    forced_null: set[str] = set()
    computed: dict[str, str] = {}  # column -> Python expression (CHECK col = ...)
    after: dict[str, tuple[str, bool]] = {}  # CHECK late >= early: late -> early
    frozen: set[str] = set()  # inputs of a derived column: never updated alone
    for check in table.checks:
        understood = generators.understand(check.expression)
        if understood and understood.column in names:
            if understood.labels:
                labels[understood.column] = understood.labels
            else:
                low, high = bounds.get(understood.column, (None, None))
                bounds[understood.column] = (
                    understood.low if low is None else max(low, understood.low or low),
                    understood.high
                    if high is None
                    else min(high, understood.high or high),
                )
            continue
        found = generators.derived(check.expression, names)
        if found and _before(table, found[0], found[1]):
            target, python = found
            inputs = generators.referenced(python.replace("r.", ""), names)
            guard = " or ".join(f"r.{c} is None" for c in inputs)
            computed[target] = f"None if {guard} else {python}"
            frozen.update(inputs)
            continue
        order = generators.ordered(check.expression, names)
        if (
            order
            and _before(table, order[0], f"r.{order[1]}")
            and _written(table, order[0])
            and order[0] not in after
        ):
            after[order[0]] = (order[1], order[2])
            frozen.add(order[1])
            continue
        used = generators.referenced(check.expression, names)
        nullable = [
            c for c in used if not table.column(c).not_null and _written(table, c)
        ]
        escape = generators.null_escape(check.expression)
        if escape in nullable:
            nullable = [escape]
        elif _null_tested(check.expression):
            nullable = []
        if nullable:
            forced_null.add(nullable[0])
            plan.notes.append(
                f"{table.name}: CHECK {check.name} {check.expression} is not "
                f"understood: {nullable[0]} is written NULL, which satisfies it"
            )
        else:
            plan.notes.append(
                f"{table.name}: CHECK {check.name} {check.expression} is not "
                "understood and names no nullable column: rows may violate it "
                "(edit the generated factory)"
            )
    for column in table.columns:
        for expression in column.checks:
            understood = generators.understand(expression)
            if understood and understood.column == "VALUE":
                if understood.labels:
                    labels[column.name] = understood.labels
                else:
                    bounds[column.name] = (understood.low, understood.high)
            elif understood is None:
                plan.notes.append(
                    f"{table.name}.{column.name}: domain CHECK {expression} is not "
                    "understood: rows may violate it"
                )
    # Foreign keys: one helper per FK holds the parent key; its columns read it.
    fk_of: dict[str, tuple[str, int]] = {}
    helper_of: dict[str, str] = {}
    for number, fk in enumerate(table.foreign_keys, 1):
        if fk.parent not in catalog.tables:
            if _nullable(table, fk):
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
        if fk.parent == table.name and not _nullable(table, fk):
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
            fk_of[c] = (helper, i)
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
                and _written(table, c.name)
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
                    fk_of[c] = (f"{combo}[{position}]", i)
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
        plan.lines.append(
            f"{combo} = Col(lambda g, r: R.combination(g, DOMAIN, "
            f"{index_key(domain, table.name, combo)!r}, ({parents},)))"
        )
    for fk in table.foreign_keys:
        fk_helper = helper_of.get(fk.name)
        if fk_helper is None or fk_helper.startswith("oltpseed_combo_"):
            continue
        self_or_cycle = fk.parent == table.name or fk.name in broken
        share = NULL_SHARE if _nullable(table, fk) else 0.0
        call = "R.optional_parent" if self_or_cycle else "R.parent"
        plan.helpers.append(fk_helper)
        plan.lines.append(
            f"{fk_helper} = Col(lambda g, r: {call}(g, {fk.parent!r}, "
            f"{fk.parent_columns!r}, {share}))"
        )
    for column in table.columns:
        if not _written(table, column.name):
            continue
        name = column.name
        if name in forced_null:  # before its FK: the note promised NULL
            expression = "None"
        elif name in fk_of:
            helper, i = fk_of[name]
            expression = f"R.at(r.{helper}, {i})"
        elif name in computed:
            expression = computed[name]
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
                    expression = "None"
                else:
                    raise UsageError(
                        f"{table.name}.{name}: no generator for type {column.type} "
                        "(NOT NULL, no default)"
                    )
            else:
                expression = choice.expression
                if name in after:
                    early, strict = after[name]
                    expression = (
                        f"R.after(g, r.{early}, {strict}, lambda g: {expression})"
                    )
                if name in unique_by:
                    expression = _unique(table, column, choice, domain, ranges)
                elif not column.not_null:
                    expression = f"R.maybe(g, {NULL_SHARE}, {expression})"
            if (
                name not in unique_by
                and name not in table.primary_key
                and name != table.partitioned_by
                and name not in after
                and name not in frozen
            ):
                plan.updatable.append(name)
        plan.lines.append(_declare(name, f"Col(lambda g, r: {expression})"))
    return plan


def _null_tested(expression: str) -> bool:
    """Whether a CHECK tests NULL itself (``x IS NULL AND ...``): writing a
    column NULL then does not make it hold, as it does a comparison."""
    return bool(re.search(r"\bIS\s+(NOT\s+)?NULL\b|coalesce|nullif|\bCASE\b",
                          expression, re.IGNORECASE))  # fmt: skip


def _before(table: Table, column: str, python: str) -> bool:
    """Whether every column ``python`` reads is declared before ``column``."""
    names = [c.name for c in table.columns]
    used = generators.referenced(python.replace("r.", ""), names)
    return all(names.index(u) < names.index(column) for u in used)


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


def _written(table: Table, name: str) -> bool:
    column = table.column(name)
    return not column.serial and not column.generated


def _unique(
    table: Table, column: Column, choice: generators.Choice, domain: str, ranges: str
) -> str:
    key = index_key(domain, table.name, column.name)
    family = choice.family
    if family in (generators.INTEGER, generators.DECIMAL):
        return f"R.unique_int(g, DOMAIN, {key!r})"
    if family == generators.MOMENT:
        extra = f", {ranges}" if ranges else ""
        return f"R.unique_moment(g, DOMAIN, {key!r}{extra})"
    if family == "uuid":
        return f"R.unique_uuid(g, DOMAIN, {key!r})"
    return (
        f"R.unique_text(g, DOMAIN, {key!r}, {column.length}, "
        f"lambda g: {choice.expression})"
    )


def _declare(name: str, value: str) -> str:
    if _ident(name) and not name.startswith("_"):
        return f"{name} = {value}"
    return f"locals()[{name!r}] = {value}  # not a Python name"


FANOUT = 3  # children per parent row when the source has no rows to go by


def volumes(
    catalog: Catalog, ordered: list[str], base: int, plans: dict[str, Plan]
) -> dict[str, int]:
    """MEDIUM rows per table.

    With rows in the source: its proportions, the largest table at ``base``.
    On an empty source, from the FK graph: tables nobody references (the
    events: rentals, payments) get up to ``base`` rows, deeper ones more; a
    parent gets a third of its largest child (lookups stay few); a table
    made of two parents' keys never asks for more pairs than exist.
    """
    tables = catalog.tables
    largest = max(t.rows for t in tables.values())
    if largest:
        return {t: max(1, round(base * tables[t].rows / largest)) for t in ordered}
    depth: dict[str, int] = {}
    for name in ordered:
        parents = [p for p, _ in plans[name].parents if p != name and p in depth]
        depth[name] = 1 + max((depth[p] for p in parents), default=-1)
    deepest = max(depth.values()) + 1
    children: dict[str, set[str]] = {t: set() for t in ordered}
    for name in ordered:
        for parent, _ in plans[name].parents:
            if parent != name and parent in children:
                children[parent].add(name)
    medium: dict[str, int] = {}
    for name in reversed(ordered):
        if children[name]:
            biggest = max(medium.get(c, 0) for c in children[name])
            medium[name] = max(5, -(-biggest // FANOUT))
        else:
            medium[name] = max(5, base * (depth[name] + 1) // deepest)
    return {t: medium[t] for t in ordered}


def profiles(
    ordered: list[str], medium: dict[str, int], plans: dict[str, Plan]
) -> dict[str, dict[str, int]]:
    """Rows per table at each profile: MEDIUM scaled, and a table whose key is
    made only of FKs capped at the distinct combinations its parents offer
    at that profile (scaling is linear, combinations are not)."""
    result = {}
    for profile, factor in PROFILES.items():
        counts = {t: max(1, round(medium[t] * factor)) for t in ordered}
        for t in ordered:
            for parents in plans[t].combinations:
                pairs = 1
                for parent in parents:
                    pairs *= counts.get(parent, 1)
                counts[t] = min(counts[t], pairs)
        result[profile] = counts
    return result


def render(
    catalog: Catalog,
    name: str,
    source: str,
    command: str,
    ddl: str,
    objects: list[Owned],
    *,
    extensions: Sequence[str] = (),
    base: int = 2000,
    rules: Sequence[tuple[str, str, str]] = (),
) -> tuple[dict[str, str], Written]:
    """Every file of the package (relative path -> text) and a summary."""
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,29}", name) or name == "all":
        raise UsageError(
            f"--name {name!r}: lower-case letters, digits and _ (30 at most)"
        )
    ordered, broken, notes = order(catalog)
    plans = {
        t: plan_table(catalog.tables[t], catalog, name, broken, rules) for t in ordered
    }
    for plan in plans.values():
        notes.extend(plan.notes)
    medium = volumes(catalog, ordered, base, plans)
    header = _header(catalog, source, command)
    files = {
        "__init__.py": _init(name, header, ordered, profiles(ordered, medium, plans)),
        "factories.py": _factories(name, header, catalog, ordered, plans),
        "seeding.py": _seeding(header, catalog, ordered, plans, broken),
        "events.py": _events(name, header, catalog, ordered, plans, medium),
        "checks.py": _checks(header, catalog, ordered),
        "sql/01_schema.sql": _sql_header(header)
        + install_sql(
            name, ddl, objects, [catalog.tables[t].ident for t in ordered], extensions
        ),
        "sql/99_drop_all.sql": _sql_header(header) + drop_sql(name, objects),
    }
    return files, Written(Path(), ordered, medium, notes)


def _header(catalog: Catalog, source: str, command: str) -> str:
    stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return (
        f"{MARKER}\nGenerated by `{command}` on {stamp}\n"
        f"from schema {', '.join(map(repr, catalog.schemas))} of {source} "
        "(PostgreSQL "
        f"{catalog.server_version}). Edit freely; run the command again to "
        "regenerate (it overwrites these files)."
    )


def _sql_header(header: str) -> str:
    return "".join(f"-- {line}\n" for line in header.splitlines())


def _init(
    name: str, header: str, ordered: list[str], volumes: dict[str, dict[str, int]]
) -> str:
    lines = [
        f'"""The {name} domain.\n\n{header}\n"""\n',
        "from pytest_oltpseed.domains import Domain\n",
        "# Rows per table and profile: SMALL is a tenth of MEDIUM, LARGE ten times,",
        "# STRESS a hundred times (a table keyed by its parents' keys is capped at",
        "# the combinations they offer).",
        "VOLUMES = {",
    ]
    for profile, counts in volumes.items():
        lines.append(f"    {profile!r}: {{")
        lines.extend(f"        {t!r}: {n}," for t, n in counts.items())
        lines.append("    },")
    lines += [
        "}\n",
        "DOMAIN = Domain(",
        f"    name={name!r},",
        "    tables=(  # parents before children",
        *(f"        {t!r}," for t in ordered),
        "    ),",
        "    volumes=VOLUMES,",
        "    opt_in=True,  # only when named: --domain all means the built-in ones",
        ")",
    ]
    return "\n".join(lines) + "\n"


def _factories(
    name: str, header: str, catalog: Catalog, ordered: list[str],
    plans: dict[str, Plan],
) -> str:  # fmt: skip
    out = [
        f'"""Factories of the {name} domain: a factory a table, a Col a column.\n',
        f"{header}\n",
        "Serial/identity columns are left to the server and generated columns are",
        "never written. FK columns read their parent's key from an excluded",
        "helper column (oltpseed_fk*, oltpseed_combo_*).",
        '"""\n',
        "import datetime  # noqa: F401 (partition ranges)\n",
        "from pytest_oltpseed.data.factory import Col, SQLFactory",
        "from pytest_oltpseed.introspect import runtime as R\n",
        f"DOMAIN = {name!r}",
    ]  # fmt: skip
    for t in ordered:
        table = catalog.tables[t]
        if table.partition_ranges:
            ranges = ",\n    ".join(
                f"({a!r}, {b!r})" for a, b in table.partition_ranges
            )
            out.append(
                f"# {t} is partitioned by RANGE ({table.partitioned_by}): rows fall "
                "inside its partitions"
            )
            out.append(f"{ranges_name(t)} = (\n    {ranges},\n)")
    for t in ordered:
        plan = plans[t]
        table = catalog.tables[t]
        out.append("\n")
        out.append(f"class {class_name(t)}(SQLFactory):")
        out.append(f"    _table, _domain = {t!r}, DOMAIN")
        if plan.natural_key:
            out.append(f"    _natural_key = {plan.natural_key!r}")
        if plan.helpers:
            out.append("")
            out.append("    class Meta:")
            out.append(f"        exclude = {tuple(plan.helpers)!r}")
        skipped = [c.name for c in table.columns if not _written(table, c.name)]
        if skipped:
            out.append(f"\n    # left to the server: {', '.join(skipped)}")
        out.append("")
        out.extend(f"    {line}" for line in plan.lines)
    return "\n".join(out) + "\n"


def _seeding(
    header: str, catalog: Catalog, ordered: list[str], plans: dict[str, Plan],
    broken: set[str],
) -> str:  # fmt: skip
    fixups: dict[str, list[tuple[str, tuple[str, ...], tuple[str, ...]]]] = {}
    for t in ordered:
        for fk in catalog.tables[t].foreign_keys:
            if fk.name in broken and fk.parent != t:
                fixups.setdefault(fk.parent, []).append(
                    (t, fk.columns, fk.parent_columns)
                )
    hooks = []
    for t in ordered:
        parents = tuple(dict.fromkeys(plans[t].parents))
        extra = f", fixups={tuple(fixups[t])!r}" if t in fixups else ""
        hooks.append(f"    {t!r}: lambda: R.LoadParents({parents!r}{extra}),")
    return "\n".join([
        '"""Stage hooks: each stage loads its parents\' keys before generating rows.',
        "", header, '"""\n',
        "from pytest_oltpseed.introspect import runtime as R\n",
        "HOOKS = {", *hooks, "}",
    ]) + "\n"  # fmt: skip


def _events(
    name: str, header: str, catalog: Catalog, ordered: list[str],
    plans: dict[str, Plan], medium: dict[str, int],
) -> str:  # fmt: skip
    referenced = {fk.parent for t in catalog.tables.values() for fk in t.foreign_keys}
    total = sum(medium.values()) or 1
    events = []
    for t in ordered:
        table = catalog.tables[t]
        cls = class_name(t)
        weight = max(1, round(60 * medium[t] / total))
        events.append(
            f"    Event('{t}_insert', {weight}, "
            f"lambda c: R.insert(c, {cls}, {table.primary_key!r}), "
            f"({t!r},), 'new {t} row'),"
        )
        key = table.primary_key
        if key and plans[t].updatable:
            events.append(
                f"    Event('{t}_update', {max(1, round(weight * 0.7))}, "
                f"lambda c: R.update(c, {cls}, {key!r}, "
                f"{tuple(plans[t].updatable)!r}), ({t!r},), "
                f"'{t}: one non-key column changed'),"
            )
        if key and t not in referenced:
            events.append(
                f"    Event('{t}_delete', 1, lambda c: R.delete(c, {t!r}, {key!r}), "
                f"({t!r},), '{t}: a row deleted (no FK references it)'),"
            )
    classes = ", ".join(sorted({class_name(t) for t in ordered}))
    return "\n".join([
        f'"""Stream events of the {name} domain: inserts per table, updates of',
        "non-key columns, rare deletes of rows no FK references. Weights follow",
        "the MEDIUM volumes; override them with --weights / STREAM_WEIGHTS.",
        "", header, '"""\n',
        "from pytest_oltpseed.stream.events import Event",
        "from pytest_oltpseed.introspect import runtime as R\n",
        f"from {name}.factories import {classes}  # noqa: I001\n",
        "EVENTS = (", *events, ")",
    ]) + "\n"  # fmt: skip


def _checks(header: str, catalog: Catalog, ordered: list[str]) -> str:
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
