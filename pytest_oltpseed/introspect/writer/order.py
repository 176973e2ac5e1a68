"""Table order: parents before children, and the FKs that close a cycle."""

from __future__ import annotations

from pytest_oltpseed.errors import UsageError
from pytest_oltpseed.introspect.catalog import Catalog, ForeignKey, Table


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
                        if f is not None and nullable_fk(tables[a], f)
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


def nullable_fk(table: Table, fk: ForeignKey) -> bool:
    return any(not table.column(c).not_null for c in fk.columns)
