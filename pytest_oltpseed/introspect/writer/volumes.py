"""Rows per table: MEDIUM from the source's counts or its FK graph, and the
other profiles scaled from it."""

from __future__ import annotations

from pytest_oltpseed.introspect.catalog import Catalog
from pytest_oltpseed.introspect.writer.plan import Plan

PROFILES = {"SMALL": 0.1, "MEDIUM": 1, "LARGE": 10, "STRESS": 100}
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
