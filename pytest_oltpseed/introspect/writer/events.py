"""``events.py``: inserts per table, updates of non-key columns, rare
deletes of rows no FK references."""

from __future__ import annotations

from pytest_oltpseed.introspect.catalog import Catalog
from pytest_oltpseed.introspect.writer.plan import Plan, class_name


def events_py(
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
