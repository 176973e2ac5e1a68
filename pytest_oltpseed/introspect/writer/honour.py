"""The CHECK constraints a plan honours: value lists and bounds, columns
computed from others (``subtotal = quantity * unit_price``), an end after
its start (``enddate >= startdate``), and a nullable column written NULL
for a CHECK that is not understood (when NULL satisfies it)."""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field

from pytest_oltpseed.introspect import generators
from pytest_oltpseed.introspect.catalog import Table


@dataclass
class Honoured:
    """What the CHECKs of one table ask of its columns' generators."""

    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    bounds: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    forced_null: set[str] = field(default_factory=set)
    computed: dict[str, str] = field(default_factory=dict)
    """column -> Python expression over ``r.<column>`` (CHECK col = ...)"""
    after: dict[str, tuple[str, bool]] = field(default_factory=dict)
    """CHECK late >= early: late -> (early, strict)"""
    frozen: set[str] = field(default_factory=set)
    """inputs of a derived column: never updated alone"""


def honour(table: Table, notes: list[str]) -> Honoured:
    """Read the table's and its columns' domains' CHECKs; what cannot be
    honoured is said in ``notes``."""
    names = [c.name for c in table.columns]
    result = Honoured()
    labels, bounds, forced_null = result.labels, result.bounds, result.forced_null
    computed, after, frozen = result.computed, result.after, result.frozen
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
        inputs = re.findall(r"\br\.(\w+)", found[1]) if found else []
        if found and _before(table, found[0], found[1]) and _readable(table, inputs):
            computed[found[0]] = found[1]
            frozen.update(inputs)
            continue
        order = generators.ordered(check.expression, names)
        if (
            order
            and _before(table, order[0], f"r.{order[1]}")
            and written(table, order[0])
            and order[0] not in after
        ):
            after[order[0]] = (order[1], order[2])
            frozen.add(order[1])
            continue
        used = generators.referenced(check.expression, names)
        nullable = [
            c for c in used if not table.column(c).not_null and written(table, c)
        ]
        escape = generators.null_escape(check.expression)
        if escape in nullable:
            nullable = [escape]
        elif _null_tested(check.expression):
            nullable = []
        if nullable:
            forced_null.add(nullable[0])
            notes.append(
                f"{table.name}: CHECK {check.name} {check.expression} is not "
                f"understood: {nullable[0]} is written NULL, which satisfies it"
            )
        else:
            notes.append(
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
                notes.append(
                    f"{table.name}.{column.name}: domain CHECK {expression} is not "
                    "understood: rows may violate it"
                )
    return result


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


def _readable(table: Table, inputs: list[str]) -> bool:
    """Whether a rule may read ``inputs``: columns the factory writes, whose
    names are Python names (they become a function's parameters)."""
    return all(
        written(table, c) and c.isidentifier() and not keyword.iskeyword(c)
        for c in inputs
    )


def written(table: Table, name: str) -> bool:
    column = table.column(name)
    return not column.serial and not column.generated
