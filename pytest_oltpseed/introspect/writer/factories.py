"""``factories.py`` (a factory a table) and ``seeding.py`` (stage hooks)."""

from __future__ import annotations

from pytest_oltpseed.introspect.catalog import Catalog
from pytest_oltpseed.introspect.writer.plan import (
    Plan,
    class_name,
    ranges_name,
    written,
)


def factories_py(
    name: str, header: str, catalog: Catalog, ordered: list[str],
    plans: dict[str, Plan],
) -> str:  # fmt: skip
    out = [
        f'"""Factories of the {name} domain: a factory a table, a Col a column.\n',
        f"{header}\n",
        "Each column is one generator of the column vocabulary (C: the built-in",
        "domains' own, V: the generators for generated domains), which makes",
        "one value for create() and the stream, or a whole column when seeding",
        "column-wise: the same rows either way. Serial/identity columns are left",
        "to the server and generated columns are never written. FK columns read",
        "their parent's key from an excluded helper column (oltpseed_fk*,",
        "oltpseed_combo_*).",
        '"""\n',
        "import datetime  # noqa: F401 (partition ranges)\n",
        "from pytest_oltpseed.data import columns as C  # noqa: F401",
        "from pytest_oltpseed.data.factory import Col, SQLFactory",
        "from pytest_oltpseed.introspect import vocabulary as V\n",
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
        skipped = [c.name for c in table.columns if not written(table, c.name)]
        if skipped:
            out.append(f"\n    # left to the server: {', '.join(skipped)}")
        out.append("")
        out.extend(f"    {line}" for line in plan.lines)
    return "\n".join(out) + "\n"


def seeding_py(
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
